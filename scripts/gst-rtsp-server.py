#!/usr/bin/python3
"""GStreamer's RTSP server as a peer for Vigil's benchmarks (and as a stand-in third-party camera).

Serves one H.264 stream at rtsp://127.0.0.1:PORT/main, shared between all clients, over UDP or
TCP-interleaved RTP. Two sources:

  --file PATH              an MP4 (or Annex B .h264) with H.264, looped in real time, no re-encode
  --testsrc WxH@FPS        a live videotestsrc encoded with x264enc (--bitrate KBPS), or with
                           x265enc and RFC 7798 payloading given --codec h265

Why an appsrc for files: gst-rtsp-server has no looping file source, and seeking a shared media back to
the start (EOS / segment seeks) resets payloader state under the clients' feet. So the file's access
units are read into memory once with a small demux pipeline, then pushed into the media's appsrc by a
pacing thread, one per frame interval, timestamped on arrival like a camera (`do-timestamp`). The
server-side work per client (payloading, fan-out, socket writes) is the same as for any live source.

With --user/--password the server requires RTSP Digest authentication (MD5, RFC 2617), like Vigil,
so both servers carry the same per-request handicap.

Must run with the system python (python3-gi lives in /usr/lib/python3/dist-packages).
Prints `listening rtsp 127.0.0.1:PORT` on stdout (flushed) once the socket is bound.
"""

import argparse
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def load_access_units(path):
    """Demux + parse the whole file once; returns (list of Annex B access units as bytes, fps)."""
    if path.endswith(".mp4") or path.endswith(".mov"):
        demux = "qtdemux ! h264parse"
    else:
        demux = "h264parse"
    desc = (
        f'filesrc location="{path}" ! {demux} config-interval=-1 ! '
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
    )
    pipe = Gst.parse_launch(desc)
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    units = []
    fps = None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        if fps is None:
            caps = sample.get_caps().get_structure(0)
            ok, num, den = caps.get_fraction("framerate")
            if ok and num > 0 and den > 0:
                fps = num / den
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            units.append(bytes(info.data))
            buf.unmap(info)
    pipe.set_state(Gst.State.NULL)
    if not units:
        raise SystemExit(f"no H.264 access units found in {path}")
    return units, fps or 30.0


class LoopingFileFactory(GstRtspServer.RTSPMediaFactory):
    """A media factory whose media pushes the preloaded access units in a loop, paced in real time."""

    def __init__(self, units, fps):
        super().__init__()
        self.units = units
        self.frame_dur = 1.0 / fps
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            'caps="video/x-h264,stream-format=byte-stream,alignment=au" '
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media):
        appsrc = media.get_element().get_child_by_name("src")
        stop = threading.Event()
        media.connect("unprepared", lambda _m: stop.set())
        threading.Thread(target=self.pump, args=(appsrc, stop), daemon=True).start()

    def pump(self, appsrc, stop):
        dur = int(self.frame_dur * Gst.SECOND)
        # Start at the first access unit (a key frame) once the media plays: frames pushed while
        # PAUSED would queue up and burst out at PLAY, which no camera does.
        while not stop.is_set():
            _, state, _ = appsrc.get_state(0)
            if state == Gst.State.PLAYING:
                break
            time.sleep(0.005)
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            data = self.units[i % len(self.units)]
            # Sleep to the frame's due time (absolute, so pacing does not drift).
            delay = start + i * self.frame_dur - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            buf = Gst.Buffer.new_wrapped(data)
            buf.duration = dur
            ret = appsrc.emit("push-buffer", buf)
            if ret not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
                break
            i += 1


# A sine tone as the camera's microphone (--audio), payloaded as a second stream.
AUDIO = {
    "aac": "audio/x-raw,rate=48000,channels=1 ! audioconvert ! voaacenc ! rtpmp4gpay name=pay1 pt=97",
    "pcmu": "audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1",
}


def testsrc_factory(spec, bitrate_kbps, codec="h264", audio=None, pattern="ball"):
    size, _, fps = spec.partition("@")
    w, _, h = size.partition("x")
    fps = int(fps or 30)
    if codec == "h265":
        enc = (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} "
            f"key-int-max={2 * fps} ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=1"
        )
    else:
        enc = (
            f"x264enc tune=zerolatency speed-preset=veryfast bitrate={bitrate_kbps} "
            f"key-int-max={2 * fps} ! rtph264pay name=pay0 pt=96 config-interval=1"
        )
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={int(w)},height={int(h)},"
        f"framerate={fps}/1,format=I420 ! {enc}"
        + (f" audiotestsrc is-live=true wave=sine ! {AUDIO[audio]}" if audio else "")
        + " )"
    )
    return f


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8554, help="0 = pick a free port")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="MP4 or Annex B file with H.264, served looping, no re-encode")
    src.add_argument("--testsrc", metavar="WxH@FPS", help="live test pattern encoded with x264enc")
    p.add_argument("--bitrate", type=int, default=2000, help="encoder bitrate in kbit/s (--testsrc)")
    p.add_argument("--codec", choices=["h264", "h265"], default="h264", help="encoder of --testsrc")
    p.add_argument("--audio", choices=sorted(AUDIO), help="add an audio stream to --testsrc")
    p.add_argument("--pattern", choices=["ball", "snow"], default="ball",
                   help="videotestsrc pattern of --testsrc (snow: noise that fills the bit rate)")
    p.add_argument("--user", help="require RTSP Digest auth with this user name")
    p.add_argument("--password", help="password for --user")
    args = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    # The default listen backlog is 5: a hundred clients connecting at once would see handshakes
    # dropped and retried for seconds. Vigil (tokio) listens with a backlog of 1024.
    server.set_backlog(1024)

    if args.file:
        units, fps = load_access_units(args.file)
        factory = LoopingFileFactory(units, fps)
    else:
        factory = testsrc_factory(args.testsrc, args.bitrate, args.codec, args.audio, args.pattern)
    factory.set_shared(True)

    if args.user:
        if args.password is None:
            p.error("--user needs --password")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )[0]
        )

    server.get_mount_points().add_factory("/main", factory)
    if server.attach(None) == 0:
        raise SystemExit("could not bind the RTSP socket")
    print(f"listening rtsp 127.0.0.1:{server.get_bound_port()}", flush=True)

    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

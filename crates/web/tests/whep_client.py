#!/usr/bin/env python3
"""A scripted WHEP client (RFC 9725) on aiortc, an independent WebRTC implementation.

  whep_client.py offer
      prints aiortc's SDP offer (recvonly video) as JSON {"offer": SDP} and exits.
  whep_client.py token BASE SETUP_TOKEN
      Creates the first admin with the one-time setup token (POST BASE/api/setup), then an
      API token with the view scope, and prints it: for a test that can reach the recorder
      only from inside a network namespace.
  whep_client.py play URL TOKEN FRAMES [--ice-servers-from-options] [--audio N]
      POSTs an offer to URL (HTTPS, the test's self-signed certificate is not verified)
      with the bearer TOKEN, receives the video track, decodes FRAMES pictures with
      aiortc's H.264 decoder (FFmpeg via PyAV), DELETEs the session and prints one JSON
      line: frames, decode errors, size, time to the first picture, statuses, and the
      types of the ICE candidate pair that carried the media.
      With --ice-servers-from-options, first asks OPTIONS on URL for the STUN/TURN servers
      (Link: <url>; rel="ice-server"; username=…; credential=…) and gathers with them.
      With --audio N, also offers a recvonly audio section (aiortc offers Opus, PCMU and
      PCMA) and waits for N decoded audio frames too (aiortc decodes G.711 itself); the
      JSON line adds audio_frames, audio_codec, audio_rate and audio_decode_errors.

Decode errors are counted from aiortc's own H.264 decoder, which logs and skips what FFmpeg
refuses ("H264Decoder() failed to decode").
"""

import asyncio
import json
import logging
import os
import ssl
import sys
import time
import urllib.request

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription


class Count(logging.Handler):
    def __init__(self, needle="decode"):
        super().__init__(logging.WARNING)
        self.needle = needle
        self.n = 0
        self.last = ""

    def emit(self, record):
        if self.needle in record.getMessage():
            self.n += 1
            self.last = record.getMessage()


async def new_offer(ice_servers=(), audio=False):
    # No STUN server unless given: aiortc would otherwise ask a public one.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


def http(method, url, token, body=None, headers=None, content_type="application/sdp"):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = "Bearer " + token
    if body is not None:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def ice_servers_from_links(headers):
    """RFC 9725 §4.6 Link headers -> aiortc's RTCIceServer list."""
    servers = []
    for link in headers.get_all("Link") or []:
        parts = [p.strip() for p in link.split(";")]
        if not parts[0].startswith("<") or 'rel="ice-server"' not in parts:
            continue
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        unq = lambda v: v.strip('"') if v else None
        servers.append(
            RTCIceServer(
                urls=parts[0][1:-1],
                username=unq(params.get("username")),
                credential=unq(params.get("credential")),
            )
        )
    return servers


def answer_codecs(sdp, kind):
    """The a=rtpmap encodings (e.g. PCMU/8000) of the answer's first `kind` section."""
    codecs, inside = [], False
    for line in sdp.splitlines():
        if line.startswith("m="):
            if inside:
                break
            inside = line.startswith(f"m={kind} ")
        elif inside and line.startswith("a=rtpmap:"):
            codecs.append(line.split(" ", 1)[1])
    return codecs


def selected_pair(pc):
    """Types of the nominated ICE pair (aioice's state; aiortc has no getStats for it)."""
    for t in pc.getTransceivers():
        conn = t.receiver.transport.transport._connection
        for pair in conn._nominated.values():
            return {
                "local": pair.local_candidate.type,
                "remote": pair.remote_candidate.type,
                "remote_addr": f"{pair.remote_candidate.host}:{pair.remote_candidate.port}",
            }
    return None


async def count_audio(track, want, out):
    """Receives decoded audio frames (av.AudioFrame) until `want` arrived."""
    n = 0
    while n < want:
        frame = await asyncio.wait_for(track.recv(), 10)
        n += 1
        out["audio_frames"] = n
        out["audio_rate"] = frame.sample_rate


async def play(url, token, want, ice_from_options=False, audio_want=0):
    errors = Count()
    logging.getLogger("aiortc.codecs.h264").addHandler(errors)
    # The receiver logs "RTCRtpReceiver(audio) failed to decode PCMU frame" for what FFmpeg
    # refuses.
    audio_errors = Count("(audio) failed to decode")
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(audio_errors)
    ice_servers = []
    out = {}
    if ice_from_options:
        status, headers, _ = await asyncio.to_thread(http, "OPTIONS", url, token)
        out["options"] = status
        ice_servers = ice_servers_from_links(headers)
        out["ice_servers"] = [s.urls for s in ice_servers]
    pc = await new_offer(ice_servers, audio=audio_want > 0)
    track_ready = asyncio.get_running_loop().create_future()
    audio_ready = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track):
        if track.kind == "video" and not track_ready.done():
            track_ready.set_result(track)
        if track.kind == "audio" and not audio_ready.done():
            audio_ready.set_result(track)

    started = time.monotonic()
    status, headers, answer = await asyncio.to_thread(
        http, "POST", url, token, pc.localDescription.sdp.encode()
    )
    out["post"] = status
    if status != 201:
        out["body"] = answer
        print(json.dumps(out), flush=True)
        return
    location = headers.get("Location", "")
    out["location"] = location
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    track = await asyncio.wait_for(track_ready, 10)
    audio_task = None
    if audio_want > 0:
        out["audio_frames"] = 0
        audio_track = await asyncio.wait_for(audio_ready, 10)
        audio_task = asyncio.create_task(count_audio(audio_track, audio_want, out))
    frames, size, first_ms = 0, None, None
    while frames < want:
        frame = await asyncio.wait_for(track.recv(), 10)
        if first_ms is None:
            first_ms = round((time.monotonic() - started) * 1000)
        frames += 1
        size = [frame.width, frame.height]
    if audio_task is not None:
        await audio_task
        out["audio_codec"] = answer_codecs(answer, "audio")
        out["audio_decode_errors"] = audio_errors.n
    out["pair"] = selected_pair(pc)
    out.update(
        frames=frames,
        decode_errors=errors.n,
        last_error=errors.last,
        size=size,
        first_frame_ms=first_ms,
        seconds=round(time.monotonic() - started, 2),
    )
    base = url.split("/api/")[0]
    out["delete"], _, _ = await asyncio.to_thread(http, "DELETE", base + location, token)
    await pc.close()
    print(json.dumps(out), flush=True)


def api_token(base, setup_token):
    origin = {"Origin": base}
    body = json.dumps({"token": setup_token, "username": "admin", "password": "a long admin pass phrase"})
    status, headers, text = http("POST", base + "/api/setup", None, body.encode(), origin, "application/json")
    if status != 200:
        raise SystemExit(f"POST /api/setup: {status} {text}")
    cookie = next(
        c.split(";")[0]
        for c in headers.get_all("Set-Cookie") or []
        if c.startswith("vigil_session=")
    )
    session = dict(origin, Cookie=cookie)
    status, _, text = http("GET", base + "/api/session", None, None, session)
    session["X-CSRF-Token"] = json.loads(text)["csrf_token"]
    body = json.dumps({"name": "whep", "scopes": ["view"]})
    status, _, text = http("POST", base + "/api/tokens", None, body.encode(), session, "application/json")
    if status != 201:
        raise SystemExit(f"POST /api/tokens: {status} {text}")
    print(json.loads(text)["token"], flush=True)


async def main():
    if sys.argv[1] == "token":
        api_token(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "offer":
        pc = await new_offer()
        print(json.dumps({"offer": pc.localDescription.sdp}), flush=True)
        await pc.close()
    else:
        await play(
            sys.argv[2],
            sys.argv[3],
            int(sys.argv[4]),
            ice_from_options="--ice-servers-from-options" in sys.argv[5:],
            audio_want=int(sys.argv[sys.argv.index("--audio") + 1]) if "--audio" in sys.argv else 0,
        )


if __name__ == "__main__":
    if os.environ.get("WHEP_CLIENT_DEBUG"):
        # aioice's checks and TURN client, for a failing test's stderr.
        logging.basicConfig(level=logging.DEBUG)
    asyncio.run(main())

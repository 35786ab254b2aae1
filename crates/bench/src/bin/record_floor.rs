//! The recording floor: the least work any recorder must do to keep N RTSP streams on disk with
//! a one-second crash bound. The `record` bench runs it beside Vigil, Moonfire NVR and ffmpeg
//! and reports each one's CPU as a multiple of this (issue 18: Vigil within 1.5x).
//!
//! Per stream, one thread: it sets the session up over TCP (RFC 2326: DESCRIBE, SETUP with
//! `interleaved=0-1`, PLAY, no `Range` so a shared GStreamer media is never seeked), then reads
//! the socket in blocking 64 KiB reads and appends every byte read, `$` framing and RTP headers
//! included, to `DIR/streamNNN.bin`, with one `fdatasync` per file per second. Reads are batched
//! the way Vigil's ingest batches them (`SO_RCVLOWAT` at `--batch-ms` of the bit rate measured
//! over the first second, 4 KiB to 256 KiB; `vigil_ingest::batching`), so the floor wakes as
//! rarely as the recorder does and the comparison is of the work, not of the wake-ups. Nothing is
//! parsed, indexed, timestamped or muxed: it is the socket-to-disk copy plus the sync that any
//! recorder which promises a bounded loss pays, and no more. A real recorder must also parse
//! the RTP packets, find frame boundaries and keep an index; the gap between this floor and a
//! recorder is what that costs.
//!
//! Prints `up N` once every session plays, then runs until killed (SIGTERM ends it; the files
//! hold what was synced).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use clap::Parser;
use vigil_ingest::batching::{MAX_BATCH, MIN_BATCH};
use vigil_testkit::rtsp::{take_item, video_control_url, Item, Response};

#[derive(Parser, Debug)]
#[command(about = "Minimal recorder: N RTSP/TCP sessions appended raw to N files, fdatasync 1/s")]
struct Args {
    /// The RTSP URL every session plays.
    #[arg(long)]
    url: String,
    /// Number of sessions (1 to 128).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Directory for the files (created).
    #[arg(long)]
    dir: PathBuf,
    /// Read batching in milliseconds of media (0: wake for every packet); Vigil's default.
    #[arg(long, default_value_t = 50)]
    batch_ms: u64,
}

/// Read size per `read(2)`: the socket buffer rarely holds more at 4 Mbit/s.
const READ_SIZE: usize = 64 * 1024;

/// How often each file is made durable: the same bound as Vigil's fragment sync.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// `host:port` of an `rtsp://` URL.
fn authority(url: &str) -> anyhow::Result<&str> {
    let rest = url
        .strip_prefix("rtsp://")
        .context("the URL must start with rtsp://")?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// A session in setup: the socket, what was read past the last response, the CSeq.
struct Setup {
    stream: TcpStream,
    buf: BytesMut,
    cseq: u32,
}

impl Setup {
    /// Sends one request and returns its response; bytes read past it stay in `buf` (after
    /// PLAY they are the first media bytes).
    fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("User-Agent: vigil-record-floor\r\n\r\n");
        self.stream.write_all(req.as_bytes())?;
        let mut chunk = [0u8; 4096];
        loop {
            match take_item(&mut self.buf).map_err(anyhow::Error::msg)? {
                Some(Item::Response(r)) if r.status == 200 => return Ok(r),
                Some(Item::Response(r)) => bail!("{method} {url}: {}", r.head),
                // Media of an earlier PLAY cannot come before this response; skip defensively.
                Some(Item::Frame(..)) => continue,
                None => {}
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("{method} {url}: connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Connects and plays `url` over TCP interleaved; returns the socket and the media bytes that
/// came with the PLAY response.
fn play(url: &str) -> anyhow::Result<(TcpStream, BytesMut)> {
    let stream = TcpStream::connect(authority(url)?).with_context(|| format!("connect {url}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = Setup {
        stream,
        buf: BytesMut::new(),
        cseq: 0,
    };
    let d = s.request("DESCRIBE", url, &[("Accept", "application/sdp")])?;
    let control = video_control_url(&String::from_utf8_lossy(&d.body), d.content_base(url));
    let setup = s.request(
        "SETUP",
        &control,
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    )?;
    let session = setup.session_id().context("SETUP without a Session")?;
    s.request("PLAY", url, &[("Session", &session)])?;
    Ok((s.stream, s.buf))
}

/// The copy loop of one session: read, append, `fdatasync` once a second. Returns only on an
/// error (the camera went away, the disk failed).
fn record(mut stream: TcpStream, first: &[u8], path: &Path, batch_ms: u64) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(first)?;
    let mut buf = vec![0u8; READ_SIZE];
    let mut last_sync = Instant::now();
    let start = Instant::now();
    let (mut first_second, mut batching) = (0usize, batch_ms == 0);
    loop {
        let n = stream.read(&mut buf).context("reading the session")?;
        if n == 0 {
            bail!("the camera closed the session");
        }
        file.write_all(&buf[..n])?;
        if !batching {
            first_second += n;
            if start.elapsed() >= Duration::from_secs(1) {
                let mark = (first_second as u64 * batch_ms / 1000) as usize;
                vigil_ingest::socket::set_recv_low_water(
                    stream.as_fd(),
                    mark.clamp(MIN_BATCH, MAX_BATCH),
                )?;
                batching = true;
            }
        }
        if last_sync.elapsed() >= SYNC_EVERY {
            file.sync_data()?;
            last_sync = Instant::now();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams == 0 || args.streams > 128 {
        bail!("--streams must be between 1 and 128");
    }
    std::fs::create_dir_all(&args.dir)?;
    let mut sessions = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        sessions.push(play(&args.url).with_context(|| format!("session {i}"))?);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let batch_ms = args.batch_ms;
    for (i, (stream, first)) in sessions.into_iter().enumerate() {
        let path = args.dir.join(format!("stream{i:03}.bin"));
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("floor-{i}"))
            .spawn(move || {
                let r = record(stream, &first, &path, batch_ms);
                let _ = tx.send((i, r));
            })?;
    }
    drop(tx);
    println!("up {}", args.streams);
    // Every thread runs until its session fails; the first failure ends the process.
    match rx.recv() {
        Ok((i, Err(e))) => bail!("stream {i}: {e:#}"),
        Ok((i, Ok(()))) => bail!("stream {i} ended"),
        Err(_) => bail!("no session left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_of_urls() {
        assert_eq!(
            authority("rtsp://127.0.0.1:8554/main").ok(),
            Some("127.0.0.1:8554")
        );
        assert_eq!(authority("rtsp://cam:554").ok(), Some("cam:554"));
        assert!(authority("http://x/").is_err());
    }
}

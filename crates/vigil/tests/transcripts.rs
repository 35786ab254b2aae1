//! Records what real peers (ffmpeg, GStreamer) say to our server, through a logging TCP proxy.
//!
//! Ignored by default because it writes into the source tree; refresh the checked-in evidence
//! under `crates/rtsp/testdata/` with:
//!
//! ```sh
//! cargo test -p vigil --test transcripts -- --ignored
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{run_peer, Camera, CameraOpts, PASSWORD, USER};

type Log = Arc<Mutex<Vec<(&'static str, String)>>>;

/// Copies `from` to `to`, logging each complete RTSP message (interleaved `$` frames skipped).
fn pump(mut from: TcpStream, mut to: TcpStream, dir: &'static str, log: Log) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Log complete messages before forwarding the bytes that complete them, so that a
        // request is always logged before the response it causes.
        buf.extend_from_slice(&chunk[..n]);
        loop {
            if buf.first() == Some(&b'$') {
                if buf.len() < 4 {
                    break;
                }
                let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() < len {
                    break;
                }
                buf.drain(..len);
                continue;
            }
            let Some(pos) = common::find(&buf, b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let body_len: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < pos + 4 + body_len {
                break;
            }
            let msg = String::from_utf8_lossy(&buf[..pos + 4 + body_len]).into_owned();
            buf.drain(..pos + 4 + body_len);
            log.lock().unwrap().push((dir, msg));
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A logging proxy in front of `upstream`; returns its address.
fn proxy(upstream: SocketAddr, log: Log) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(upstream) else {
                break;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (l1, l2) = (Arc::clone(&log), Arc::clone(&log));
            thread::spawn(move || pump(client, server, "C->S", l1));
            thread::spawn(move || pump(s2, c2, "S->C", l2));
        }
    });
    addr
}

fn tool_version(cmd: &str, arg: &str) -> String {
    let out = run_peer(Command::new(cmd).arg(arg), Duration::from_secs(10));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn write_transcript(name: &str, header: &str, log: &Log, real_port: u16, proxy_port: u16) {
    let mut text = format!("# {header}\n# Captured by crates/vigil/tests/transcripts.rs through a logging proxy. Line ends are\n# shown as LF (CRLF on the wire); ports rewritten to 8554; interleaved RTP/RTCP left out.\n\n");
    for (dir, msg) in log.lock().unwrap().iter() {
        text.push_str(&format!("{dir}\n"));
        let msg = msg
            .replace("\r\n", "\n")
            .replace(&format!(":{proxy_port}"), ":8554")
            .replace(&format!(":{real_port}"), ":8554");
        text.push_str(msg.trim_end());
        text.push_str("\n\n");
    }
    text.truncate(text.trim_end().len());
    text.push('\n');
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rtsp/testdata");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
#[ignore = "writes crates/rtsp/testdata/*.txt; run by hand to refresh the evidence"]
fn capture_peer_transcripts() {
    let cam = Camera::start(CameraOpts::default());
    let ffmpeg = tool_version("ffmpeg", "-version");
    let gst = tool_version("gst-launch-1.0", "--version");
    for transport in ["tcp", "udp"] {
        let log: Log = Arc::default();
        let addr = proxy(cam.rtsp, Arc::clone(&log));
        let url = format!("rtsp://{USER}:{PASSWORD}@{addr}/main");
        let out = run_peer(
            Command::new("ffmpeg").args([
                "-nostdin",
                "-v",
                "error",
                "-rtsp_transport",
                transport,
                "-i",
                &url,
                "-t",
                "2",
                "-f",
                "null",
                "-",
            ]),
            Duration::from_secs(20),
        );
        assert!(out.success(), "ffmpeg {transport}: {}", out.stderr);
        thread::sleep(Duration::from_millis(300));
        write_transcript(
            &format!("ffmpeg-{transport}.txt"),
            &format!("{ffmpeg}, -rtsp_transport {transport}"),
            &log,
            cam.rtsp.port(),
            addr.port(),
        );

        let log: Log = Arc::default();
        let addr = proxy(cam.rtsp, Arc::clone(&log));
        let out = run_peer(
            Command::new("gst-launch-1.0").args([
                "-q",
                "rtspsrc",
                &format!("location=rtsp://{addr}/main"),
                &format!("user-id={USER}"),
                &format!("user-pw={PASSWORD}"),
                &format!("protocols={transport}"),
                "!",
                "rtph264depay",
                "!",
                "fakesink",
                "num-buffers=30",
            ]),
            Duration::from_secs(20),
        );
        assert!(out.success(), "gst-launch {transport}: {}", out.stderr);
        thread::sleep(Duration::from_millis(300));
        write_transcript(
            &format!("gstreamer-{transport}.txt"),
            &format!("{gst}, rtspsrc protocols={transport}"),
            &log,
            cam.rtsp.port(),
            addr.port(),
        );
    }
}

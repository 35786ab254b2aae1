//! Hostile input on the RTSP port: malformed, oversized and binary requests each get a 4xx answer
//! (never a silent drop, never a crash), the server keeps serving real clients afterwards, and a
//! connection that sends nothing (or half a request) is closed after the idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{parse_head, play_interleaved, Camera, CameraOpts, RtspConn};

/// Sends `bytes` (from a second thread, so a server that answers early and closes cannot block
/// us) and returns the status line of the first response.
fn answer_to(addr: SocketAddr, bytes: Vec<u8>) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let w = thread::spawn(move || {
        // The server may answer and close before it has read everything: a write error is fine.
        let _ = writer.write_all(&bytes);
    });
    let mut reader = stream;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let result = loop {
        if let Some(pos) = common::find(&got, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..pos]).into_owned();
            break match parse_head(&head) {
                Some((status, _)) => Ok(status),
                None => Err(format!("unparsable response head {head:?}")),
            };
        }
        match reader.read(&mut buf) {
            Ok(0) => {
                break Err(format!(
                    "connection closed without a (complete) response; got {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                break Err(format!(
                    "read error {e} without a response; got {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    };
    // Unblock the writer if the server stopped reading without closing.
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let _ = w.join();
    result
}

/// Deterministic pseudo-random bytes (xorshift), never starting with `$` (interleaved data).
fn junk(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    if v.first() == Some(&b'$') {
        v[0] = 0;
    }
    v
}

fn hostile_requests(url: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("garbage line", b"GARBAGE\r\n\r\n".to_vec()),
        (
            "request line without version",
            format!("OPTIONS {url}\r\nCSeq: 1\r\n\r\n").into_bytes(),
        ),
        (
            "NUL bytes in the request line",
            format!("OPTIONS {url}\0\0\0 RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
        ),
        (
            "header without colon",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nthis is no header\r\n\r\n").into_bytes(),
        ),
        (
            "negative Content-Length",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n").into_bytes(),
        ),
        (
            "overflowing Content-Length",
            format!(
                "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999999999999999\r\n\r\n"
            )
            .into_bytes(),
        ),
        (
            "non-numeric CSeq",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: abc\r\n\r\n").into_bytes(),
        ),
    ];
    let mut big_line = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Big: ").into_bytes();
    big_line.extend(std::iter::repeat_n(b'a', 1 << 20));
    big_line.extend_from_slice(b"\r\n\r\n");
    cases.push(("1 MiB header line", big_line));

    let mut long_uri = b"OPTIONS rtsp://127.0.0.1/".to_vec();
    long_uri.extend(std::iter::repeat_n(b'x', 256 << 10));
    long_uri.extend_from_slice(b" RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    cases.push(("256 KiB request URI", long_uri));

    let mut many = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n");
    for i in 0..1000 {
        many.push_str(&format!("X-Header-{i}: value-{i}\r\n"));
    }
    many.push_str("\r\n");
    cases.push(("1000 headers", many.into_bytes()));

    let mut body = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 10485760\r\n\r\n")
        .into_bytes();
    body.extend(std::iter::repeat_n(b'b', 10 << 20));
    cases.push(("10 MB body", body));

    cases.push((
        "64 KiB of binary junk",
        junk(64 << 10, 0x9e37_79b9_7f4a_7c15),
    ));
    cases.push(("4 KiB of binary junk + CRLFCRLF", {
        let mut j = junk(4 << 10, 42);
        j.extend_from_slice(b"\r\n\r\n");
        j
    }));
    cases
}

/// The camera still answers OPTIONS and streams to an authenticated client.
fn assert_still_serving(cam: &mut Camera, after: &str) {
    assert!(cam.is_alive(), "camera died after {after}");
    let url = cam.bare_url("main");
    let mut conn = RtspConn::connect(cam.rtsp);
    let r = conn.request("OPTIONS", &url, &[]);
    assert_eq!(r.status, 200, "OPTIONS after {after}:\n{}", r.head);
    play_interleaved(&mut conn, &url);
    let (channel, packet) = conn
        .read_interleaved()
        .unwrap_or_else(|e| panic!("no RTP after {after}: {e}"));
    assert_eq!(channel, 0, "first interleaved packet on channel {channel}");
    assert!(packet.len() > 12, "RTP packet of {} bytes", packet.len());
}

#[test]
fn malformed_requests_get_4xx_and_the_server_survives() {
    let mut cam = Camera::start(CameraOpts::default());
    let url = cam.bare_url("main");
    let mut bad = Vec::new();
    for (name, bytes) in hostile_requests(&url) {
        match answer_to(cam.rtsp, bytes) {
            Ok(status) if (400..500).contains(&status) => {}
            Ok(status) => bad.push(format!("{name}: status {status}, want 4xx")),
            Err(e) => bad.push(format!("{name}: {e}")),
        }
        if !cam.is_alive() {
            panic!("camera died on {name}");
        }
    }
    assert!(bad.is_empty(), "hostile requests:\n{}", bad.join("\n"));
    assert_still_serving(&mut cam, "malformed requests");
}

#[test]
fn burst_of_concurrent_garbage_does_not_stop_the_server() {
    let mut cam = Camera::start(CameraOpts::default());
    let addr = cam.rtsp;
    let threads: Vec<_> = (0..64u64)
        .map(|i| {
            thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(&junk(16 << 10, i + 1));
                let mut sink = [0u8; 1024];
                let _ = s.read(&mut sink);
                // Half the connections vanish abruptly, mid-conversation.
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_still_serving(&mut cam, "64 concurrent junk connections");
}

/// Waits until the server closes `stream`; returns how long that took, or None if it stayed
/// open for `max`.
fn wait_closed(mut stream: TcpStream, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(max)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            // A polite server may say 408 Request Timeout before it closes.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
        if start.elapsed() > max {
            return None;
        }
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed() {
    let cam = Camera::start(CameraOpts::default());
    let max = Duration::from_secs(25);
    let silent = TcpStream::connect(cam.rtsp).unwrap();
    let mut half = TcpStream::connect(cam.rtsp).unwrap();
    half.write_all(format!("OPTIONS {} RTSP/1.0\r\nCSeq: 1\r\n", cam.bare_url("main")).as_bytes())
        .unwrap();
    let t1 = thread::spawn(move || wait_closed(silent, max));
    let t2 = thread::spawn(move || wait_closed(half, max));
    let silent = t1.join().unwrap();
    let half = t2.join().unwrap();
    assert!(
        silent.is_some(),
        "a connection that sent nothing is still open after {max:?}"
    );
    assert!(
        half.is_some(),
        "a connection that sent half a request is still open after {max:?}"
    );
}

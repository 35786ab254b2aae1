//! A cheap liveness probe of a camera's RTSP server, used while backing off: connect, send
//! `OPTIONS` (RFC 2326 §10.1) without credentials and read the status line. Any status
//! (200, 401, 404, 501 …) means the server runs and a reconnect can succeed; a connection
//! that is accepted but never answered is a camera that hangs (the kernel keeps accepting
//! connections for a stopped process), which a bare TCP connect could not tell apart.
//!
//! The decision what to do with the result is sans-IO ([`super::backoff::ComeBack`]); the
//! status-line check is a pure function ([`is_status_line`]).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::backoff::Liveness;

/// Longest status line we wait for; a real one is about 15 bytes.
const MAX_LINE: usize = 256;

/// Probes `host:port` with `OPTIONS <url>`, giving up after `timeout` in all. `url` must
/// carry no credentials (the request is sent without authentication).
pub(crate) async fn probe(host: &str, port: u16, url: &str, timeout: Duration) -> Liveness {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream =
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect((host, port))).await
        {
            Ok(Ok(s)) => s,
            // Refused, unreachable, or no SYN-ACK in time: nothing is listening for us.
            _ => return Liveness::Closed,
        };
    let request = options_request(url);
    let answered = tokio::time::timeout_at(deadline, async {
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 64];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return Some(buf);
            }
            buf.extend_from_slice(chunk.get(..n)?);
            if buf.contains(&b'\n') || buf.len() >= MAX_LINE {
                return Some(buf);
            }
        }
    })
    .await;
    match answered {
        Ok(Some(buf)) if is_status_line(&buf) => Liveness::Answering,
        _ => Liveness::Silent,
    }
}

/// The probe request: RFC 2326 §10.1 OPTIONS with the mandatory CSeq (§12.17).
fn options_request(url: &str) -> String {
    format!(
        "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: vigil/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether `buf` starts with an RTSP status line, RFC 2326 §7.1:
/// `Status-Line = RTSP-Version SP Status-Code SP Reason-Phrase CRLF`, with
/// `RTSP-Version = "RTSP/" 1*DIGIT "." 1*DIGIT` (§3.1) and a 3-digit `Status-Code`.
/// Only the version and the status code are checked; the reason phrase may be cut off.
pub(crate) fn is_status_line(buf: &[u8]) -> bool {
    let Some(rest) = buf.strip_prefix(b"RTSP/") else {
        return false;
    };
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let major = digits(rest);
    let Some(rest) = rest.get(major..).filter(|_| major > 0) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b".") else {
        return false;
    };
    let minor = digits(rest);
    let Some(rest) = rest.get(minor..).filter(|_| minor > 0) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b" ") else {
        return false;
    };
    digits(rest) == 3 && matches!(rest.get(3), Some(b' ' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_rtsp_status_counts_as_alive() {
        assert!(is_status_line(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"));
        assert!(is_status_line(b"RTSP/1.0 401 Unauthorized\r\n"));
        assert!(is_status_line(b"RTSP/2.0 501 Not Implemented\r\n"));
        // Cut off after the status code.
        assert!(is_status_line(b"RTSP/1.0 404\r\n"));
    }

    #[test]
    fn anything_else_does_not() {
        for bad in [
            &b""[..],
            b"RTSP/1.0",
            b"HTTP/1.1 200 OK\r\n",
            b"RTSP/1.0 20 OK\r\n",
            b"RTSP/1.0 2000 OK\r\n",
            b"RTSP/.0 200 OK\r\n",
            b"RTSP/1. 200 OK\r\n",
            b"RTSP/1.0200 OK\r\n",
            b"\xff\xfe\x00garbage",
        ] {
            assert!(!is_status_line(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_request_is_well_formed_and_carries_no_credentials() {
        let r = options_request("rtsp://192.0.2.1:554/main");
        assert!(r.starts_with("OPTIONS rtsp://192.0.2.1:554/main RTSP/1.0\r\nCSeq: 1\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        assert!(!r.to_ascii_lowercase().contains("authorization"));
    }

    #[tokio::test]
    async fn tells_a_closed_port_a_silent_one_and_an_rtsp_server_apart() {
        use tokio::net::TcpListener;
        // Closed: bind, learn the port, close.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let t = Duration::from_millis(300);
        assert_eq!(
            probe("127.0.0.1", port, "rtsp://x/", t).await,
            Liveness::Closed
        );

        // Silent: accepts (the kernel does, through the backlog) but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        assert_eq!(
            probe("127.0.0.1", port, "rtsp://x/", t).await,
            Liveness::Silent
        );

        // Answering with 401 (no credentials sent).
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        assert_eq!(
            probe(
                "127.0.0.1",
                port,
                "rtsp://127.0.0.1/main",
                Duration::from_secs(2)
            )
            .await,
            Liveness::Answering
        );
        assert!(task
            .await
            .unwrap()
            .starts_with("OPTIONS rtsp://127.0.0.1/main RTSP/1.0"));
        drop(silent);
    }
}

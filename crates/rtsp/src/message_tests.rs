use super::*;

const FFMPEG_OPTIONS: &[u8] =
    b"OPTIONS rtsp://127.0.0.1:8554/main RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf61.7.100\r\n\r\n";

fn lim() -> Limits {
    Limits::default()
}

fn req(p: Parsed) -> (Request, usize) {
    match p {
        Parsed::Request(r, n) => (r, n),
        other => panic!("expected request, got {other:?}"),
    }
}

#[test]
fn parses_ffmpeg_options() {
    let (r, n) = req(parse(FFMPEG_OPTIONS, &lim()).unwrap());
    assert_eq!(n, FFMPEG_OPTIONS.len());
    assert_eq!(r.method, "OPTIONS");
    assert_eq!(r.uri, "rtsp://127.0.0.1:8554/main");
    assert_eq!(r.cseq(), Some("1"));
    assert_eq!(r.headers.get("user-agent"), Some("Lavf61.7.100"));
}

#[test]
fn every_strict_prefix_needs_more() {
    for i in 0..FFMPEG_OPTIONS.len() {
        assert_eq!(
            parse(&FFMPEG_OPTIONS[..i], &lim()),
            Ok(Parsed::NeedMore),
            "prefix {i}"
        );
    }
}

#[test]
fn pipelined_requests_and_interleaved_frames() {
    let mut buf = Vec::new();
    buf.extend_from_slice(FFMPEG_OPTIONS);
    buf.extend_from_slice(b"$\x01\x00\x03abc");
    buf.extend_from_slice(b"\r\nGET_PARAMETER /main RTSP/1.0\nCSeq: 2\nSession: 12345678\n\n");
    let (r1, n1) = req(parse(&buf, &lim()).unwrap());
    assert_eq!(r1.method, "OPTIONS");
    let rest = &buf[n1..];
    let Parsed::Interleaved { channel, payload } = parse(rest, &lim()).unwrap() else {
        panic!("expected interleaved frame");
    };
    assert_eq!(channel, 1);
    assert_eq!(&rest[payload.clone()], b"abc");
    let rest = &rest[payload.end..];
    // LF-only line endings and a stray CRLF before the request are tolerated.
    let (r3, n3) = req(parse(rest, &lim()).unwrap());
    assert_eq!(r3.method, "GET_PARAMETER");
    assert_eq!(r3.headers.get("SESSION"), Some("12345678"));
    assert_eq!(n3, rest.len());
}

#[test]
fn body_waits_for_content_length() {
    let msg = b"SET_PARAMETER /main RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(parse(&msg[..msg.len() - 1], &lim()), Ok(Parsed::NeedMore));
    let (r, _) = req(parse(msg, &lim()).unwrap());
    assert_eq!(r.body, b"hello");
}

#[test]
fn folded_header_is_joined() {
    let msg = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-A: one\r\n  two\r\n\r\n";
    let (r, _) = req(parse(msg, &lim()).unwrap());
    assert_eq!(r.headers.get("x-a"), Some("one two"));
}

#[test]
fn limits_give_typed_errors_with_status() {
    let long_uri = format!("DESCRIBE /{} RTSP/1.0\r\n\r\n", "a".repeat(5000));
    let e = parse(long_uri.as_bytes(), &lim()).unwrap_err();
    assert_eq!((e, e.status()), (ParseError::RequestLineTooLong, 414));
    // Even before the line ends, a line over the limit is refused.
    assert_eq!(
        parse(&long_uri.as_bytes()[..4200], &lim()),
        Err(ParseError::RequestLineTooLong)
    );

    let mut many = String::from("OPTIONS * RTSP/1.0\r\n");
    for i in 0..65 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        parse(many.as_bytes(), &lim()),
        Err(ParseError::TooManyHeaders)
    );

    let mut big = String::from("OPTIONS * RTSP/1.0\r\n");
    while big.len() < 9000 {
        big.push_str(&format!("X-Pad: {}\r\n", "0".repeat(1000)));
    }
    assert_eq!(parse(big.as_bytes(), &lim()), Err(ParseError::HeadTooLarge));

    let body = b"ANNOUNCE /main RTSP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    let e = parse(body, &lim()).unwrap_err();
    assert_eq!((e, e.status()), (ParseError::BodyTooLarge, 413));

    let crlfs = vec![b'\n'; 9000];
    assert_eq!(parse(&crlfs, &lim()), Err(ParseError::HeadTooLarge));
}

#[test]
fn malformed_requests_are_400_and_version_505() {
    for bad in [
        &b"OPTIONS\r\n\r\n"[..],
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"OPT IONS * RTSP/1.0 x\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nNoColon\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nBad Name: v\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nA: b\x00c\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let e = parse(bad, &lim()).unwrap_err();
        assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(
        parse(b"OPTIONS * RTSP/2.0\r\n\r\n", &lim()),
        Err(ParseError::BadVersion)
    );
}

#[test]
fn response_serialization_echoes_cseq_and_sets_length() {
    let r = Response::new(200)
        .with("Public", "OPTIONS, DESCRIBE")
        .with_body("application/sdp", b"v=0\r\n".to_vec());
    let mut out = Vec::new();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
    r.write_to(Some("7"), t, &mut out);
    let s = String::from_utf8(out).unwrap();
    assert!(
        s.starts_with("RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: Vigil/"),
        "{s}"
    );
    assert!(s.contains("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), "{s}");
    assert!(
        s.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"),
        "{s}"
    );
}

#[test]
fn http_date_handles_leap_years() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
}

/// RFC 2326 §10.12: `$`, channel, 16-bit big-endian length, data; one encoder and one
/// decoder for the server, the bench client and the tests.
#[test]
fn interleaved_framing_round_trips() {
    let mut out = Vec::new();
    write_interleaved(&mut out, 1, &[9, 8, 7]).unwrap();
    assert_eq!(out, [b'$', 1, 0, 3, 9, 8, 7]);
    assert_eq!(decode_interleaved(&out), Some((1, 4..7)));
    for cut in 0..out.len() {
        assert_eq!(decode_interleaved(&out[..cut]), None, "incomplete at {cut}");
    }
    out.extend_from_slice(b"RTSP/1.0");
    assert_eq!(
        decode_interleaved(&out),
        Some((1, 4..7)),
        "the frame ends at 7"
    );
    assert_eq!(decode_interleaved(b"OPTIONS"), None);

    let big = vec![0u8; 65_535];
    out.clear();
    write_interleaved(&mut out, 255, &big).unwrap();
    assert_eq!(&out[..4], &[b'$', 255, 0xff, 0xff]);
    assert_eq!(decode_interleaved(&out), Some((255, 4..65_539)));
    assert_eq!(interleaved_header(0, 65_536), Err(FrameTooLong(65_536)));
    let mut untouched = vec![1];
    assert!(write_interleaved(&mut untouched, 0, &[0; 65_536]).is_err());
    assert_eq!(untouched, [1], "nothing written on error");
}

#[test]
fn methods_are_case_sensitive_tokens() {
    let (r, _) = req(parse(b"play rtsp://h/m RTSP/1.0\r\nCSeq: 1\r\n\r\n", &lim()).unwrap());
    assert_eq!(r.method, Method::Other("play".into()));
    let (r, _) = req(parse(b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 2\r\n\r\n", &lim()).unwrap());
    assert_eq!(r.method, Method::GetParameter);
    for m in [
        Method::Options,
        Method::Describe,
        Method::Announce,
        Method::Setup,
        Method::Play,
        Method::Pause,
        Method::Teardown,
        Method::GetParameter,
        Method::SetParameter,
        Method::Redirect,
        Method::Record,
        Method::Other("X_VENDOR".into()),
    ] {
        assert_eq!(Method::from(m.as_str()), m);
        assert_eq!(m.to_string(), m.as_str());
    }
}

//! Fuzzing entry points (used by `fuzz/fuzz_targets/rtsp_message.rs` and corpus tests).

use crate::message::{parse, Limits, ParseError, Parsed};

/// What a byte stream parses into, item by item.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Request(crate::message::Request),
    Interleaved(u8, Vec<u8>),
    Error(ParseError),
}

/// Feeds `input` to the parser as a connection would, split at `splits` (ascending,
/// deduplicated offsets), and returns the items plus the count of bytes never consumed.
fn drive(input: &[u8], splits: &[usize], limits: &Limits) -> (Vec<Item>, usize) {
    let mut buf: Vec<u8> = Vec::new();
    let mut items = Vec::new();
    let mut fed = 0;
    for &end in splits.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(fed, input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match parse(&buf, limits) {
                Ok(Parsed::NeedMore) => break,
                Ok(Parsed::Request(req, n)) => {
                    assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
                    check_request(&req, limits);
                    items.push(Item::Request(req));
                    buf.drain(..n);
                }
                Ok(Parsed::Interleaved { channel, payload }) => {
                    assert!(payload.end <= buf.len() && payload.start <= payload.end);
                    assert!(payload.end > 0);
                    // The one encoder re-frames it to exactly the bytes consumed (after any
                    // blank lines before it).
                    let data = buf[payload.clone()].to_vec();
                    let mut again = Vec::new();
                    crate::message::write_interleaved(&mut again, channel, &data)
                        .expect("a decoded frame fits the length field");
                    assert!(buf[..payload.end].ends_with(&again), "re-framing differs");
                    items.push(Item::Interleaved(channel, data));
                    buf.drain(..payload.end);
                }
                Err(e) => {
                    items.push(Item::Error(e));
                    // Unconsumed: what is buffered plus what was never fed.
                    return (items, buf.len() + input.len() - fed);
                }
            }
        }
    }
    (items, buf.len())
}

/// Limits are respected, and serializing then re-parsing gives the same request.
fn check_request(req: &crate::message::Request, limits: &Limits) {
    assert!(req.headers.len() <= limits.max_headers);
    assert!(req.body.len() <= limits.max_body);
    assert!(req.method.as_str().len() + req.uri.len() + 10 <= limits.max_line + 2);
    let mut wire = Vec::new();
    req.write_to(&mut wire);
    // Re-serialized heads are never longer than the original (whitespace only shrinks)
    // except for folded lines; parse with roomy limits so only the grammar is compared.
    let roomy = Limits {
        max_line: usize::MAX / 4,
        max_headers: usize::MAX / 4,
        max_head: usize::MAX / 4,
        max_body: limits.max_body,
    };
    match parse(&wire, &roomy) {
        Ok(Parsed::Request(again, n)) => {
            assert_eq!(n, wire.len(), "round trip consumed");
            assert_eq!(again.method, req.method);
            assert_eq!(again.uri, req.uri);
            assert_eq!(again.headers, req.headers);
            assert_eq!(again.body, req.body);
        }
        other => panic!("round trip failed: {other:?}"),
    }
}

/// Parses `data` whole and in chunks derived from its bytes, and checks that both give
/// the same items, that consumption stays within the input, and that requests round-trip.
pub fn rtsp_message(data: &[u8]) {
    // Small limits so the fuzzer reaches them; the first byte picks how to chunk.
    let limits = Limits {
        max_line: 256,
        max_headers: 8,
        max_head: 1024,
        max_body: 512,
    };
    let (whole, left_whole) = drive(data, &[], &limits);
    assert!(left_whole <= data.len());
    let step = usize::from(data.first().copied().unwrap_or(1) % 17) + 1;
    let mut splits = Vec::new();
    let mut at = 0;
    for (i, b) in data.iter().enumerate() {
        at += step + usize::from(b % 5) * (i % 3);
        if at >= data.len() {
            break;
        }
        splits.push(at);
    }
    let (chunked, left_chunked) = drive(data, &splits, &limits);
    assert_eq!(whole, chunked, "result depends on chunking");
    assert_eq!(left_whole, left_chunked);
    let bytewise: Vec<usize> = (1..data.len().min(2048)).collect();
    let (bytes, _) = drive(data, &bytewise, &limits);
    assert_eq!(whole, bytes, "result depends on byte-wise feeding");
}

#[cfg(test)]
mod tests {
    /// Replays every seed and every past crash through the invariant checks.
    #[test]
    fn corpus_and_regressions_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut n = 0;
        for dir in ["corpus/rtsp_message", "regressions/rtsp_message"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                // Dot files (`.gitkeep`) only keep the directory in git.
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                let data = std::fs::read(&path).unwrap();
                super::rtsp_message(&data);
                n += 1;
            }
        }
        assert!(n >= 10, "expected the seed corpus, found {n} files");
    }
}

//! Fuzz entry points, shared by `fuzz/fuzz_targets/` and the corpus-replay unit tests.
//! Not a stable API.

use crate::h264::{
    annexb_to_avcc, avcc_from_nals, nal_type, parse_sps, split_annexb, AccessUnitSplitter,
    AvccNalIter, NAL_SPS,
};
use crate::rtp::{parse_rtp_header, H264Depacketizer, H264Packetizer, RTP_HEADER_LEN};

/// RTP timestamp step between the access units of one input (30 fps at 90 kHz).
const TS_STEP: u32 = 3000;

/// Derives access units and packetizer settings from `data`, packetizes, depacketizes and
/// panics if an invariant breaks.
///
/// Layout of `data`: `max_payload` (u16 BE, taken modulo 1600 so values below the
/// packetizer's minimum occur), initial sequence number (u16 BE), first timestamp (u32 BE),
/// then NAL records: a u16 BE whose top bit ends the access unit after this NAL unit and
/// whose low 12 bits give the NAL unit length, then that many bytes (fewer at the end).
pub fn rtp_packetizer_roundtrip(data: &[u8]) {
    let Some((head, mut rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let max_payload = usize::from(u16::from_be_bytes([head[0], head[1]])) % 1600;
    let initial_seq = u16::from_be_bytes([head[2], head[3]]);
    let ts0 = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);

    let mut aus: Vec<Vec<&[u8]>> = vec![Vec::new()];
    while let Some((rec, tail)) = rest.split_first_chunk::<2>() {
        let rec = u16::from_be_bytes(*rec);
        let len = usize::from(rec & 0x0fff).min(tail.len());
        let (nal, tail) = tail.split_at(len);
        rest = tail;
        if let Some(au) = aus.last_mut() {
            au.push(nal);
        }
        if rec & 0x8000 != 0 {
            aus.push(Vec::new());
        }
    }

    let mut p = H264Packetizer::new(0x5eed_0001, 96, initial_seq, max_payload);
    let max = p.max_payload();
    assert!((3..=usize::from(u16::MAX) - RTP_HEADER_LEN).contains(&max));
    let mut d = H264Depacketizer::new();
    let mut ts = ts0;
    let mut seq = initial_seq;
    let mut total_packets = 0u32;
    let mut total_octets = 0u32;
    for au in &aus {
        check_avcc_roundtrip(au);
        let expected: Vec<&[u8]> = au
            .iter()
            .copied()
            .filter(|n| matches!(n.first(), Some(h) if matches!(h & 0x1f, 1..=23)))
            .collect();
        let skipped_before = p.skipped_nals();

        let mut packets: Vec<Vec<u8>> = Vec::new();
        p.packetize(ts, au.iter().copied(), |header, payload| {
            assert!(
                header.len() == RTP_HEADER_LEN || header.len() == RTP_HEADER_LEN + 2,
                "header of {} bytes",
                header.len()
            );
            assert!(!payload.is_empty(), "empty payload slice");
            let packet = [header, payload].concat();
            assert!(
                packet.len() <= RTP_HEADER_LEN + max,
                "packet over max_payload"
            );
            packets.push(packet);
        });
        assert_eq!(
            p.skipped_nals() - skipped_before,
            (au.len() - expected.len()) as u64
        );
        assert_eq!(packets.is_empty(), expected.is_empty());

        for (i, packet) in packets.iter().enumerate() {
            let last = i + 1 == packets.len();
            let (h, payload) = match parse_rtp_header(packet) {
                Ok(v) => v,
                Err(e) => panic!("our own packet does not parse: {e}"),
            };
            assert_eq!(
                h.sequence_number, seq,
                "sequence numbers must increase by one"
            );
            assert_eq!(h.timestamp, ts, "timestamp must be constant within an AU");
            assert_eq!(h.marker, last, "marker exactly on the last packet");
            assert_eq!((h.payload_type, h.ssrc), (96, 0x5eed_0001));
            assert!(!h.padding && !h.extension && h.csrc_count == 0);
            seq = seq.wrapping_add(1);
            total_packets = total_packets.wrapping_add(1);
            total_octets = total_octets.wrapping_add(payload.len() as u32);

            match d.push(packet) {
                Ok(None) => assert!(!last, "no access unit after the marker packet"),
                Ok(Some(got)) => {
                    assert!(last, "access unit completed before its last packet");
                    assert!(got.marker && !got.loss_before);
                    assert_eq!(got.timestamp, ts);
                    let got_nals: Vec<&[u8]> = got.nals.iter().map(|n| &n[..]).collect();
                    assert_eq!(got_nals, expected, "depacketized NAL units differ");
                }
                Err(e) => panic!("depacketizer rejected our packet: {e}"),
            }
        }
        assert_eq!(p.next_seq(), seq);
        assert_eq!(p.packet_count(), total_packets);
        assert_eq!(p.octet_count(), total_octets);
        ts = ts.wrapping_add(TS_STEP);
    }
    assert_eq!(d.pull(), None);
    assert_eq!(d.lost_packets(), 0);

    // The same bytes as hostile packets: whatever they hold, no panic and bounded output.
    let mut hostile = H264Depacketizer::new().with_max_au_bytes(1 << 16);
    for chunk in data.chunks(max.max(RTP_HEADER_LEN + 1)) {
        if let Ok(Some(au)) = hostile.push(chunk) {
            assert!(au.nals.iter().map(|n| n.len()).sum::<usize>() <= 1 << 16);
        }
    }
    while hostile.flush().is_some() {}

    h264_framing(data);
}

/// The same bytes as an Annex B stream: framing conversions agree, the access-unit
/// splitter loses and reorders no NAL unit, and SPS parsing of hostile bytes returns.
fn h264_framing(data: &[u8]) {
    let nals: Vec<&[u8]> = split_annexb(data).collect();
    assert!(nals.iter().all(|n| !n.is_empty() && n.len() <= data.len()));
    let avcc = annexb_to_avcc(data);
    assert_eq!(AvccNalIter::new(&avcc).collect::<Vec<_>>(), nals);

    let mut splitter = AccessUnitSplitter::new();
    let mut aus: Vec<_> = nals.iter().filter_map(|n| splitter.push_nal(n)).collect();
    aus.extend(splitter.flush());
    let regrouped: Vec<&[u8]> = aus
        .iter()
        .flat_map(|au| au.nals.iter().map(|n| &n[..]))
        .collect();
    assert_eq!(regrouped, nals, "splitter lost or reordered NAL units");
    for au in &aus {
        assert!(!au.nals.is_empty());
        assert_eq!(au.is_idr, au.nals.iter().any(|n| nal_type(n) == Some(5)));
    }
    for nal in nals.iter().filter(|n| nal_type(n) == Some(NAL_SPS)) {
        if let Ok(info) = parse_sps(nal) {
            assert!(info.width > 0 && info.height > 0);
        }
    }
}

/// Length-prefixing and iterating gives back the non-empty NAL units.
fn check_avcc_roundtrip(nals: &[&[u8]]) {
    let avcc = avcc_from_nals(nals.iter().copied());
    let back: Vec<&[u8]> = AvccNalIter::new(&avcc).collect();
    let want: Vec<&[u8]> = nals.iter().copied().filter(|n| !n.is_empty()).collect();
    assert_eq!(back, want, "AVCC roundtrip differs");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn replay_dir(dir: &Path) -> usize {
        let mut n = 0;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| rtp_packetizer_roundtrip(&data));
                assert!(r.is_ok(), "{} fails", path.display());
                n += 1;
            }
        }
        n
    }

    #[test]
    fn replays_seed_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/rtp_packetizer");
        assert!(
            replay_dir(&dir) >= 10,
            "seed corpus missing in {}",
            dir.display()
        );
    }

    #[test]
    fn replays_regressions() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/rtp_packetizer");
        replay_dir(&dir);
    }

    #[test]
    fn short_and_odd_inputs() {
        for len in 0..64 {
            rtp_packetizer_roundtrip(&vec![0x80; len]);
            rtp_packetizer_roundtrip(&vec![0xff; len]);
            rtp_packetizer_roundtrip(&vec![0; len]);
        }
    }

    #[test]
    fn packets_exercise_fu_a_and_sequence_wrap() {
        // max_payload 3 (clamped from 0), seq 0xfffe, one 200-byte IDR NAL, then an AU of two.
        let mut data = vec![0, 0, 0xff, 0xfe, 0, 0, 0, 1];
        data.extend_from_slice(&(0x8000u16 | 200).to_be_bytes());
        data.push(0x65);
        data.extend(1..200u8);
        data.extend_from_slice(&[0, 2, 0x41, 7, 0x80, 1, 0x06]);
        rtp_packetizer_roundtrip(&data);
    }
}

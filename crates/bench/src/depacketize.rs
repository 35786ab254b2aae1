//! A minimal RTP → H.264 access-unit depacketizer for the latency client.
//!
//! The bench keeps its own (rather than the server's crate) so that what measures the server is
//! independent of what it measures. Handles what any conformant server sends in
//! packetization-mode 1: single NAL units, STAP-A and FU-A.

use bytes::{BufMut, Bytes, BytesMut};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The parts of an RTP packet the depacketizer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp (90 kHz for video).
    pub timestamp: u32,
    /// Marker bit: last packet of an access unit (RFC 6184 §5.1).
    pub marker: bool,
    /// Payload after header, CSRCs, extension and padding.
    pub payload: &'a [u8],
}

/// Parses an RTP packet (RFC 3550 §5.1); `None` if it is malformed.
pub fn parse_rtp(pkt: &[u8]) -> Option<RtpPacket<'_>> {
    let b0 = *pkt.first()?;
    if b0 >> 6 != 2 {
        return None;
    }
    let b1 = *pkt.get(1)?;
    let seq = u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]);
    let timestamp = u32::from_be_bytes(pkt.get(4..8)?.try_into().ok()?);
    let mut start = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile field, 16-bit length in 32-bit words.
        let ext = pkt.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = pkt.len();
    if b0 & 0x20 != 0 {
        end = end.checked_sub(usize::from(*pkt.last()?))?;
    }
    Some(RtpPacket {
        seq,
        timestamp,
        marker: b1 & 0x80 != 0,
        payload: pkt.get(start..end)?,
    })
}

/// Reassembles Annex B access units from RTP packets.
#[derive(Debug, Default)]
pub struct Depacketizer {
    au: BytesMut,
    au_ts: Option<u32>,
    next_seq: Option<u16>,
    /// The current access unit lost a packet; drop it.
    broken: bool,
    in_fu: bool,
    /// Packets lost (sequence gaps) so far.
    pub lost_packets: u64,
}

impl Depacketizer {
    /// A depacketizer with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one RTP packet; returns a complete Annex B access unit when this packet ends one.
    pub fn push(&mut self, pkt: &RtpPacket<'_>) -> Option<Bytes> {
        let mut done = None;
        let gap = self.next_seq.is_some_and(|expected| expected != pkt.seq);
        if let Some(expected) = self.next_seq.filter(|_| gap) {
            self.lost_packets += u64::from(pkt.seq.wrapping_sub(expected));
            self.broken = true;
        }
        self.next_seq = Some(pkt.seq.wrapping_add(1));
        // A new timestamp starts a new access unit even if the marker of the last one was lost.
        if self.au_ts.is_some_and(|ts| ts != pkt.timestamp) {
            done = self.finish();
            // The lost packets may have been this unit's first ones: drop it too.
            self.broken = gap;
        }
        self.au_ts = Some(pkt.timestamp);
        if !self.add_payload(pkt.payload) {
            self.broken = true;
        }
        if pkt.marker {
            // If a timestamp change also finished the previous unit (its marker was lost), the
            // newer, complete one is returned: the latency client wants the freshest frame.
            if let Some(au) = self.finish() {
                done = Some(au);
            }
        }
        done
    }

    fn finish(&mut self) -> Option<Bytes> {
        let au = std::mem::take(&mut self.au).freeze();
        let ok = !self.broken && !au.is_empty();
        self.broken = false;
        self.in_fu = false;
        self.au_ts = None;
        ok.then_some(au)
    }

    /// Appends a payload's NAL units; false if it is malformed.
    fn add_payload(&mut self, p: &[u8]) -> bool {
        let Some(&hdr) = p.first() else {
            return false;
        };
        match hdr & 0x1f {
            1..=23 => {
                self.au.put_slice(&START_CODE);
                self.au.put_slice(p);
                true
            }
            // RFC 6184 §5.7.1: STAP-A, NAL units each preceded by a 16-bit size.
            24 => {
                let mut rest = p.get(1..).unwrap_or_default();
                while !rest.is_empty() {
                    let Some(len) = rest
                        .get(..2)
                        .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
                    else {
                        return false;
                    };
                    let Some(nal) = rest.get(2..2 + len) else {
                        return false;
                    };
                    self.au.put_slice(&START_CODE);
                    self.au.put_slice(nal);
                    rest = &rest[2 + len..];
                }
                true
            }
            // RFC 6184 §5.8: FU-A; the NAL header is rebuilt from the indicator's F/NRI and the
            // FU header's type.
            28 => {
                let Some(&fu) = p.get(1) else {
                    return false;
                };
                let data = p.get(2..).unwrap_or_default();
                if fu & 0x80 != 0 {
                    self.au.put_slice(&START_CODE);
                    self.au.put_u8((hdr & 0xe0) | (fu & 0x1f));
                    self.in_fu = true;
                } else if !self.in_fu {
                    return false;
                }
                self.au.put_slice(data);
                if fu & 0x40 != 0 {
                    self.in_fu = false;
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, if marker { 0xe0 } else { 0x60 }];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn single_stap_and_fu_reassemble_to_annex_b() {
        let mut d = Depacketizer::new();
        let stap = [24, 0, 2, 0x67, 0xaa, 0, 2, 0x68, 0xbb];
        let p1 = rtp(10, 900, false, &stap);
        assert_eq!(d.push(&parse_rtp(&p1).unwrap()), None);
        let p2 = rtp(11, 900, false, &[0x7c, 0x85, 1, 2]);
        assert_eq!(d.push(&parse_rtp(&p2).unwrap()), None);
        let p3 = rtp(12, 900, true, &[0x7c, 0x45, 3]);
        let au = d.push(&parse_rtp(&p3).unwrap()).unwrap();
        assert_eq!(
            &au[..],
            &[0, 0, 0, 1, 0x67, 0xaa, 0, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 1, 0x65, 1, 2, 3]
        );
        let p4 = rtp(13, 3900, true, &[0x41, 9]);
        assert_eq!(
            &d.push(&parse_rtp(&p4).unwrap()).unwrap()[..],
            &[0, 0, 0, 1, 0x41, 9]
        );
        assert_eq!(d.lost_packets, 0);
    }

    #[test]
    fn a_lost_packet_drops_only_its_access_unit() {
        let mut d = Depacketizer::new();
        let p1 = rtp(1, 0, false, &[0x7c, 0x85, 1]);
        assert_eq!(d.push(&parse_rtp(&p1).unwrap()), None);
        // seq 2 (the FU end) is lost; seq 3 starts the next AU.
        let p3 = rtp(3, 3000, true, &[0x41, 7]);
        assert_eq!(d.push(&parse_rtp(&p3).unwrap()), None);
        assert_eq!(d.lost_packets, 1);
        let p4 = rtp(4, 6000, true, &[0x41, 8]);
        assert_eq!(
            &d.push(&parse_rtp(&p4).unwrap()).unwrap()[..],
            &[0, 0, 0, 1, 0x41, 8]
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        assert_eq!(parse_rtp(&[]), None);
        assert_eq!(parse_rtp(&[0x40; 12]), None); // version 1
        assert_eq!(parse_rtp(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None); // 15 CSRCs missing
        assert_eq!(
            parse_rtp(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
            None
        ); // padding > len
        let mut d = Depacketizer::new();
        for payload in [&[24u8, 0, 9, 1][..], &[28], &[28, 0x05, 1], &[0], &[]] {
            let p = rtp(0, 0, true, payload);
            if let Some(pkt) = parse_rtp(&p) {
                d.next_seq = None;
                assert_eq!(d.push(&pkt), None);
            }
        }
    }
}

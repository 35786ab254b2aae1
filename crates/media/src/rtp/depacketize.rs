//! RTP → H.264 access units (RFC 6184 §5.6–§5.8), for tests, fuzzing and test clients.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{parse_rtp_header, RtpError, FU_A, STAP_A};

/// An access unit reassembled by [`H264Depacketizer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepacketizedAu {
    /// RTP timestamp shared by the access unit's packets.
    pub timestamp: u32,
    /// Synchronization source of the packets.
    pub ssrc: u32,
    /// NAL units, each with its header byte, in transmission order.
    pub nals: Vec<Bytes>,
    /// Packets were lost, or a damaged access unit was dropped, since the previous access
    /// unit returned: a decoder should wait for the next IDR picture.
    pub loss_before: bool,
    /// The marker bit closed the access unit (rather than a timestamp change or `flush`).
    pub marker: bool,
}

impl DepacketizedAu {
    /// Whether the access unit holds an IDR slice.
    pub fn is_idr(&self) -> bool {
        self.nals
            .iter()
            .any(|n| crate::h264::nal_type(n) == Some(crate::h264::NAL_IDR))
    }

    /// The NAL units as 4-byte length-prefixed data.
    pub fn to_avcc(&self) -> Vec<u8> {
        crate::h264::avcc_from_nals(self.nals.iter().map(|n| &n[..]))
    }
}

#[derive(Debug)]
struct Pending {
    timestamp: u32,
    ssrc: u32,
    nals: Vec<Bytes>,
    bytes: usize,
}

/// Reassembles H.264 access units from RTP packets (packetization-mode 1: single NAL
/// unit packets, STAP-A and FU-A).
///
/// [`push`](Self::push) returns an access unit when the packet with the marker bit
/// completes it, or when a packet with a new timestamp shows it complete. A sequence
/// number gap (loss, reordering or duplication: this is for in-order transports) drops the
/// access unit in progress and flags the next one returned with
/// [`DepacketizedAu::loss_before`]; a malformed packet does the same and returns an error.
///
/// One push can complete two access units (a sender that never sets the marker bit); the
/// second then waits in a queue: call [`pull`](Self::pull) after `push` to drain it.
#[derive(Debug)]
pub struct H264Depacketizer {
    next_seq: Option<u16>,
    pending: Option<Pending>,
    /// The NAL unit being reassembled from FU-A fragments, header byte first.
    fu: Option<Vec<u8>>,
    /// Remaining packets of a dropped access unit carry this timestamp; ignore them.
    skip_ts: Option<u32>,
    loss: bool,
    ready: VecDeque<DepacketizedAu>,
    max_au_bytes: usize,
    lost_packets: u64,
    dropped_aus: u64,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

/// Default bound on one access unit: far above any real picture (a 4K IDR is a few MB),
/// low enough that a hostile sender cannot make us buffer without end.
pub const DEFAULT_MAX_AU_BYTES: usize = 16 << 20;

impl H264Depacketizer {
    /// A depacketizer with the default access-unit size limit.
    pub fn new() -> Self {
        H264Depacketizer {
            next_seq: None,
            pending: None,
            fu: None,
            skip_ts: None,
            loss: false,
            ready: VecDeque::new(),
            max_au_bytes: DEFAULT_MAX_AU_BYTES,
            lost_packets: 0,
            dropped_aus: 0,
        }
    }

    /// Sets the largest access unit (sum of NAL unit sizes) accepted.
    pub fn with_max_au_bytes(mut self, max: usize) -> Self {
        self.max_au_bytes = max;
        self
    }

    /// Packets missing according to sequence numbers so far.
    pub fn lost_packets(&self) -> u64 {
        self.lost_packets
    }

    /// Access units dropped because of loss or malformed packets.
    pub fn dropped_aus(&self) -> u64 {
        self.dropped_aus
    }

    /// Takes the next completed access unit still queued, if any.
    pub fn pull(&mut self) -> Option<DepacketizedAu> {
        self.ready.pop_front()
    }

    /// Ends the stream: returns queued access units and the one in progress, if it is not
    /// in the middle of a fragmented NAL unit.
    pub fn flush(&mut self) -> Option<DepacketizedAu> {
        if let Some(au) = self.ready.pop_front() {
            return Some(au);
        }
        self.finish(false);
        self.ready.pop_front()
    }

    /// Feeds one RTP packet (RFC 3550 §5.1, header included).
    pub fn push(&mut self, packet: &[u8]) -> Result<Option<DepacketizedAu>, RtpError> {
        let (h, payload) = parse_rtp_header(packet)?;

        if let Some(expected) = self.next_seq {
            if h.sequence_number != expected {
                self.lost_packets += u64::from(h.sequence_number.wrapping_sub(expected));
                self.drop_pending(h.timestamp);
            }
        }
        self.next_seq = Some(h.sequence_number.wrapping_add(1));

        if let Some(skip) = self.skip_ts {
            if skip == h.timestamp {
                if h.marker {
                    self.skip_ts = None;
                }
                return Ok(self.ready.pop_front());
            }
            self.skip_ts = None;
        }
        if let Some(p) = &self.pending {
            if p.ssrc != h.ssrc {
                self.drop_pending(h.timestamp);
                self.skip_ts = None;
            } else if p.timestamp != h.timestamp {
                // The previous access unit's marker was never set: close it now.
                self.finish(false);
            }
        }

        if let Err(e) = self.add_payload(h.timestamp, h.ssrc, payload) {
            self.drop_pending(h.timestamp);
            if h.marker {
                self.skip_ts = None;
            }
            return Err(e);
        }
        if h.marker {
            if self.fu.is_some() {
                self.drop_pending(h.timestamp);
                self.skip_ts = None;
                return Err(RtpError::BadFragment(
                    "marker bit inside a fragmented NAL unit",
                ));
            }
            self.finish(true);
        }
        Ok(self.ready.pop_front())
    }

    /// Drops the access unit in progress (if any) as damaged; later packets with its
    /// timestamp are ignored.
    fn drop_pending(&mut self, current_ts: u32) {
        self.loss = true;
        self.fu = None;
        if let Some(p) = self.pending.take() {
            self.dropped_aus += 1;
            if p.timestamp == current_ts {
                self.skip_ts = Some(current_ts);
            }
        }
    }

    /// Moves the access unit in progress to the ready queue.
    fn finish(&mut self, marker: bool) {
        if self.fu.take().is_some() {
            // Its last fragment never came.
            if self.pending.take().is_some() {
                self.dropped_aus += 1;
                self.loss = true;
            }
            return;
        }
        if let Some(p) = self.pending.take() {
            if p.nals.is_empty() {
                return;
            }
            self.ready.push_back(DepacketizedAu {
                timestamp: p.timestamp,
                ssrc: p.ssrc,
                nals: p.nals,
                loss_before: std::mem::take(&mut self.loss),
                marker,
            });
        }
    }

    fn add_payload(&mut self, timestamp: u32, ssrc: u32, payload: &[u8]) -> Result<(), RtpError> {
        let max = self.max_au_bytes;
        let pending = self.pending.get_or_insert_with(|| Pending {
            timestamp,
            ssrc,
            nals: Vec::new(),
            bytes: 0,
        });
        let (&first, rest) = payload.split_first().ok_or(RtpError::EmptyPayload)?;
        let grow = |pending: &mut Pending, n: usize| {
            pending.bytes = pending.bytes.saturating_add(n);
            if pending.bytes > max {
                Err(RtpError::AuTooLarge(max))
            } else {
                Ok(())
            }
        };
        match first & 0x1f {
            1..=23 => {
                if self.fu.is_some() {
                    return Err(RtpError::BadFragment("NAL unit inside a fragmented one"));
                }
                grow(pending, payload.len())?;
                pending.nals.push(Bytes::copy_from_slice(payload));
            }
            STAP_A => {
                // RFC 6184 §5.7.1: STAP-A header, then (16-bit size, NAL unit)+.
                if self.fu.is_some() {
                    return Err(RtpError::BadFragment("STAP-A inside a fragmented NAL unit"));
                }
                let mut rest = rest;
                if rest.is_empty() {
                    return Err(RtpError::BadStapA);
                }
                while !rest.is_empty() {
                    let (size, tail) = rest.split_first_chunk::<2>().ok_or(RtpError::BadStapA)?;
                    let size = usize::from(u16::from_be_bytes(*size));
                    if size == 0 || size > tail.len() {
                        return Err(RtpError::BadStapA);
                    }
                    let (nal, tail) = tail.split_at(size);
                    grow(pending, nal.len())?;
                    pending.nals.push(Bytes::copy_from_slice(nal));
                    rest = tail;
                }
            }
            FU_A => {
                // RFC 6184 §5.8: FU indicator (F, NRI, 28), FU header (S, E, R, type).
                let (&fu_header, data) = rest
                    .split_first()
                    .ok_or(RtpError::BadFragment("FU-A without FU header"))?;
                let start = fu_header & 0x80 != 0;
                let end = fu_header & 0x40 != 0;
                let nal_header = (first & 0xe0) | (fu_header & 0x1f);
                grow(pending, data.len() + usize::from(start))?;
                match (&mut self.fu, start) {
                    (Some(_), true) => {
                        return Err(RtpError::BadFragment("start fragment while one is open"))
                    }
                    (None, false) => {
                        return Err(RtpError::BadFragment("fragment without a start fragment"))
                    }
                    (None, true) => {
                        if end {
                            return Err(RtpError::BadFragment("start and end bit both set"));
                        }
                        let mut nal = Vec::with_capacity(1 + data.len() * 4);
                        nal.push(nal_header);
                        nal.extend_from_slice(data);
                        self.fu = Some(nal);
                    }
                    (Some(nal), false) => {
                        if nal.first().map(|h| h & 0x1f) != Some(nal_header & 0x1f) {
                            return Err(RtpError::BadFragment("NAL unit type changed mid-unit"));
                        }
                        nal.extend_from_slice(data);
                        if end {
                            if let Some(nal) = self.fu.take() {
                                pending.nals.push(Bytes::from(nal));
                            }
                        }
                    }
                }
            }
            t => return Err(RtpError::UnsupportedNalType(t)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::H264Packetizer;

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn stap_a() {
        let mut d = H264Depacketizer::new();
        // STAP-A (NRI 3): SPS (3 bytes), PPS (2 bytes).
        let pk = rtp(1, 90, false, &[0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3]);
        assert_eq!(d.push(&pk).unwrap(), None);
        let au = d.push(&rtp(2, 90, true, &[0x65, 9])).unwrap().unwrap();
        let nals: Vec<&[u8]> = au.nals.iter().map(|n| &n[..]).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9]]);
        assert!(au.is_idr() && au.marker && !au.loss_before);
        assert_eq!(au.timestamp, 90);
    }

    #[test]
    fn malformed_stap_a_is_rejected() {
        for bad in [
            &[0x78][..],
            &[0x78, 0],
            &[0x78, 0, 4, 0x67, 1],
            &[0x78, 0, 0],
        ] {
            let mut d = H264Depacketizer::new();
            assert_eq!(d.push(&rtp(1, 0, true, bad)), Err(RtpError::BadStapA));
        }
    }

    #[test]
    fn fu_a_roundtrip_and_errors() {
        let nal: Vec<u8> = (0..50u8).map(|i| if i == 0 { 0x65 } else { i }).collect();
        let mut p = H264Packetizer::new(7, 96, 100, 20);
        let mut pkts = Vec::new();
        p.packetize(3000, [&nal[..]], |h, b| pkts.push([h, b].concat()));
        assert_eq!(pkts.len(), 3);
        let mut d = H264Depacketizer::new();
        assert_eq!(d.push(&pkts[0]).unwrap(), None);
        assert_eq!(d.push(&pkts[1]).unwrap(), None);
        let au = d.push(&pkts[2]).unwrap().unwrap();
        assert_eq!(&au.nals[0][..], &nal[..]);

        // A middle fragment with no start.
        let mut d = H264Depacketizer::new();
        assert!(matches!(d.push(&pkts[1]), Err(RtpError::BadFragment(_))));
        // Start and end in one FU.
        let mut d = H264Depacketizer::new();
        let r = d.push(&rtp(1, 0, true, &[0x7c, 0xc5, 1]));
        assert!(matches!(r, Err(RtpError::BadFragment(_))));
        // Reserved / interleaved-mode types.
        for t in [0u8, 25, 26, 27, 29, 30, 31] {
            let mut d = H264Depacketizer::new();
            assert_eq!(
                d.push(&rtp(1, 0, true, &[t, 1])),
                Err(RtpError::UnsupportedNalType(t))
            );
        }
        assert_eq!(
            H264Depacketizer::new().push(&rtp(1, 0, true, &[])),
            Err(RtpError::EmptyPayload)
        );
    }

    #[test]
    fn sequence_gap_drops_broken_au_and_flags_next() {
        let nal: Vec<u8> = (0..50u8).map(|i| if i == 0 { 0x65 } else { i }).collect();
        let mut p = H264Packetizer::new(7, 96, 0xffff, 20);
        let mut pkts = Vec::new();
        p.packetize(0, [&nal[..]], |h, b| pkts.push([h, b].concat()));
        p.packetize(3000, [&[0x41u8, 1][..]], |h, b| pkts.push([h, b].concat()));
        p.packetize(6000, [&[0x41u8, 2][..]], |h, b| pkts.push([h, b].concat()));
        let mut d = H264Depacketizer::new();
        assert_eq!(d.push(&pkts[0]).unwrap(), None);
        // pkts[1] lost: the end fragment belongs to a dropped AU and is ignored.
        assert_eq!(d.push(&pkts[2]).unwrap(), None);
        let au = d.push(&pkts[3]).unwrap().unwrap();
        assert_eq!((au.timestamp, au.loss_before), (3000, true));
        let au = d.push(&pkts[4]).unwrap().unwrap();
        assert_eq!((au.timestamp, au.loss_before), (6000, false));
        assert_eq!((d.lost_packets(), d.dropped_aus()), (1, 1));
    }

    #[test]
    fn timestamp_change_closes_au_without_marker() {
        let mut d = H264Depacketizer::new();
        assert_eq!(d.push(&rtp(1, 0, false, &[0x41, 1])).unwrap(), None);
        let au = d.push(&rtp(2, 3000, false, &[0x41, 2])).unwrap().unwrap();
        assert_eq!((au.timestamp, au.marker), (0, false));
        // Both the old (by timestamp) and the new (by marker) AU complete here.
        let au = d.push(&rtp(3, 6000, true, &[0x41, 3])).unwrap().unwrap();
        assert_eq!(au.timestamp, 3000);
        let au = d.pull().unwrap();
        assert_eq!((au.timestamp, au.marker), (6000, true));
        assert_eq!(d.flush(), None);
    }

    #[test]
    fn size_limit() {
        let mut d = H264Depacketizer::new().with_max_au_bytes(4);
        assert_eq!(d.push(&rtp(1, 0, false, &[0x41, 1, 2])).unwrap(), None);
        assert_eq!(
            d.push(&rtp(2, 0, false, &[0x41, 1, 2])),
            Err(RtpError::AuTooLarge(4))
        );
        // The rest of the broken AU is ignored; the next one is flagged.
        assert_eq!(d.push(&rtp(3, 0, true, &[0x41])).unwrap(), None);
        let au = d.push(&rtp(4, 1, true, &[0x41])).unwrap().unwrap();
        assert!(au.loss_before);
    }
}

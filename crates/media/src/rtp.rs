//! RTP (RFC 3550) and the H.264 RTP payload format (RFC 6184) in packetization-mode 1:
//! single NAL unit packets (§5.6) and FU-A fragments (§5.8) out; STAP-A (§5.7.1) also in.
//!
//! [`H264Packetizer`] is the hot path of every RTSP viewer: it writes headers into a
//! stack buffer and hands out slices of the caller's NAL units, so sending a picture
//! costs no heap allocation.

mod depacketize;

pub use depacketize::{DepacketizedAu, H264Depacketizer};

/// Length of the fixed RTP header (RFC 3550 §5.1) without CSRCs.
pub const RTP_HEADER_LEN: usize = 12;

/// `nal_unit_type` values RFC 6184 §5.4 gives to aggregation and fragmentation units.
pub(crate) const STAP_A: u8 = 24;
pub(crate) const FU_A: u8 = 28;

/// Largest `max_payload` a packetizer accepts: header plus payload must fit the 16-bit
/// length of RTSP interleaved framing (RFC 2326 §10.12).
pub const MAX_PAYLOAD_LIMIT: usize = u16::MAX as usize - RTP_HEADER_LEN;
/// Smallest `max_payload`: an FU-A packet needs its two-byte FU indicator and header plus
/// at least one byte of the NAL unit.
pub const MIN_PAYLOAD_LIMIT: usize = 3;

/// Errors of RTP parsing and depacketization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRC list or header extension need.
    #[error("RTP packet truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed to go on.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// Version field other than 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The padding count is zero or larger than the payload.
    #[error("invalid RTP padding length {0}")]
    BadPadding(u8),
    /// The packet carries no payload at all.
    #[error("empty RTP payload")]
    EmptyPayload,
    /// A payload structure RFC 6184 packetization-mode 1 does not allow (STAP-B, MTAP,
    /// FU-B, reserved types) or a `nal_unit_type` of 0.
    #[error("unsupported H.264 RTP payload type {0}")]
    UnsupportedNalType(u8),
    /// A STAP-A whose NAL unit sizes overrun the packet, or that holds an empty unit.
    #[error("malformed STAP-A aggregation packet")]
    BadStapA,
    /// FU-A fragments out of order: a middle/end fragment without a start, a start while
    /// another NAL unit is still open, a start-and-end fragment, or a type change.
    #[error("malformed FU-A fragment sequence: {0}")]
    BadFragment(&'static str),
    /// An access unit grew beyond the depacketizer's size limit.
    #[error("access unit larger than {0} bytes")]
    AuTooLarge(usize),
}

/// The fixed part of an RTP header (RFC 3550 §5.1), as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// The P bit: the packet ended with padding (already removed from the payload).
    pub padding: bool,
    /// The X bit: a header extension followed the CSRCs (already skipped).
    pub extension: bool,
    /// Number of CSRC identifiers that followed the fixed header (skipped).
    pub csrc_count: u8,
    /// The M bit; for H.264, set on the last packet of an access unit.
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Media timestamp (90 kHz for video).
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

/// Parses an RTP packet (RFC 3550 §5.1): returns its header and payload, the payload
/// without CSRC list, header extension (§5.3.1) or padding.
pub fn parse_rtp_header(packet: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
    let truncated = |need| RtpError::Truncated {
        need,
        have: packet.len(),
    };
    let (fixed, _) = packet
        .split_first_chunk::<RTP_HEADER_LEN>()
        .ok_or(truncated(RTP_HEADER_LEN))?;
    let version = fixed[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = fixed[0] & 0x20 != 0;
    let extension = fixed[0] & 0x10 != 0;
    let csrc_count = fixed[0] & 0x0f;
    let header = RtpHeader {
        padding,
        extension,
        csrc_count,
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7f,
        sequence_number: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    };
    let mut start = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
    if extension {
        // §5.3.1: 16-bit profile-defined id, 16-bit length in 32-bit words, then the data.
        let ext = packet.get(start..start + 4).ok_or(truncated(start + 4))?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
    }
    let mut end = packet.len();
    if end < start {
        return Err(truncated(start));
    }
    if padding {
        // The last octet counts the padding octets, itself included.
        let pad = packet.last().copied().unwrap_or(0);
        if pad == 0 || usize::from(pad) > end - start {
            return Err(RtpError::BadPadding(pad));
        }
        end -= usize::from(pad);
    }
    Ok((header, packet.get(start..end).unwrap_or_default()))
}

/// Splits access units into RTP packets per RFC 6184 packetization-mode 1.
///
/// A NAL unit that fits in `max_payload` bytes goes out as a single NAL unit packet
/// (§5.6); a larger one as FU-A fragments (§5.8). Aggregation (STAP-A) is not used: the
/// few small NAL units of a picture are not worth the latency of holding them back.
#[derive(Clone, Debug)]
pub struct H264Packetizer {
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    max_payload: usize,
    packet_count: u32,
    octet_count: u32,
    last_timestamp: Option<u32>,
    skipped_nals: u64,
}

impl H264Packetizer {
    /// A packetizer for one stream.
    ///
    /// `max_payload` is the largest RTP payload per packet, excluding the 12-byte RTP
    /// header (e.g. 1400 for UDP on a 1500-byte MTU); it is clamped to
    /// [`MIN_PAYLOAD_LIMIT`]..=[`MAX_PAYLOAD_LIMIT`]. `payload_type` is masked to 7 bits.
    pub fn new(ssrc: u32, payload_type: u8, initial_seq: u16, max_payload: usize) -> Self {
        H264Packetizer {
            ssrc,
            payload_type: payload_type & 0x7f,
            seq: initial_seq,
            max_payload: max_payload.clamp(MIN_PAYLOAD_LIMIT, MAX_PAYLOAD_LIMIT),
            packet_count: 0,
            octet_count: 0,
            last_timestamp: None,
            skipped_nals: 0,
        }
    }

    /// Packetizes one access unit given as NAL units (header byte first, no start codes or
    /// length prefixes) at RTP timestamp `ts`.
    ///
    /// Calls `emit(header, payload)` once per RTP packet, in order: `header` is the 12-byte
    /// RTP header, followed for FU-A by the FU indicator and FU header (14 bytes in all);
    /// `payload` is a slice of a NAL unit. The packet is `header` then `payload`. The marker
    /// bit is set on the last packet of the access unit.
    ///
    /// NAL units that cannot be sent are skipped and counted in
    /// [`skipped_nals`](Self::skipped_nals): empty ones, and those with `nal_unit_type` 0
    /// or 24..=31, which receivers would take for RFC 6184 payload structures.
    pub fn packetize<'a>(
        &mut self,
        ts: u32,
        nals: impl IntoIterator<Item = &'a [u8]>,
        mut emit: impl FnMut(&[u8], &[u8]),
    ) {
        let mut hdr = [0u8; RTP_HEADER_LEN + 2];
        hdr[0] = 0x80; // V=2, P=0, X=0, CC=0
        hdr[4..8].copy_from_slice(&ts.to_be_bytes());
        hdr[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.last_timestamp = Some(ts);

        let mut skipped = 0u64;
        let mut nals = nals
            .into_iter()
            .filter(|nal| {
                let ok = matches!(nal.first(), Some(h) if matches!(h & 0x1f, 1..=23));
                skipped += u64::from(!ok);
                ok
            })
            .peekable();
        while let Some(nal) = nals.next() {
            let last_nal = nals.peek().is_none();
            let Some((&nal_header, body)) = nal.split_first() else {
                continue;
            };
            if nal.len() <= self.max_payload {
                // §5.6: single NAL unit packet; the payload is the NAL unit itself.
                self.emit_one(&mut hdr, RTP_HEADER_LEN, last_nal, nal, &mut emit);
                continue;
            }
            // §5.8: FU indicator keeps F and NRI, type 28; FU header has S, E, R=0 and the
            // original type. The NAL header byte itself is not sent.
            hdr[12] = (nal_header & 0xe0) | FU_A;
            let fu_type = nal_header & 0x1f;
            let mut chunks = body.chunks(self.max_payload - 2).peekable();
            let mut first = true;
            while let Some(chunk) = chunks.next() {
                let end = chunks.peek().is_none();
                hdr[13] = fu_type | if first { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
                first = false;
                self.emit_one(
                    &mut hdr,
                    RTP_HEADER_LEN + 2,
                    last_nal && end,
                    chunk,
                    &mut emit,
                );
            }
        }
        self.skipped_nals = self.skipped_nals.wrapping_add(skipped);
    }

    fn emit_one(
        &mut self,
        hdr: &mut [u8; RTP_HEADER_LEN + 2],
        hdr_len: usize,
        marker: bool,
        payload: &[u8],
        emit: &mut impl FnMut(&[u8], &[u8]),
    ) {
        hdr[1] = self.payload_type | if marker { 0x80 } else { 0 };
        hdr[2..4].copy_from_slice(&self.seq.to_be_bytes());
        let header = hdr.get(..hdr_len).unwrap_or_default();
        emit(header, payload);
        self.seq = self.seq.wrapping_add(1);
        self.packet_count = self.packet_count.wrapping_add(1);
        // RFC 3550 §6.4.1: octets of RTP payload, which includes the FU indicator/header.
        // Payloads are at most 64 KiB, so the cast cannot truncate.
        let octets = (hdr_len - RTP_HEADER_LEN + payload.len()) as u32;
        self.octet_count = self.octet_count.wrapping_add(octets);
    }

    /// Sequence number the next packet will carry (for the RTSP `RTP-Info` header).
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The stream's synchronization source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The effective `max_payload` after clamping.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Packets sent so far, wrapping (the RTCP SR sender's packet count, RFC 3550 §6.4.1).
    pub fn packet_count(&self) -> u32 {
        self.packet_count
    }

    /// Payload octets sent so far, wrapping (the RTCP SR sender's octet count).
    pub fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// Timestamp of the last access unit packetized, if any.
    pub fn last_timestamp(&self) -> Option<u32> {
        self.last_timestamp
    }

    /// NAL units skipped because they cannot be sent (see [`packetize`](Self::packetize)).
    pub fn skipped_nals(&self) -> u64 {
        self.skipped_nals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packetizes and returns whole packets.
    fn packets(p: &mut H264Packetizer, ts: u32, nals: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        p.packetize(ts, nals.iter().copied(), |h, b| {
            out.push([h, b].concat());
        });
        out
    }

    fn nal(len: usize, header: u8) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len).map(|i| i as u8).collect();
        v[0] = header;
        v
    }

    #[test]
    fn header_layout_rfc3550() {
        let mut p = H264Packetizer::new(0x1122_3344, 96, 0xfffe, 1400);
        let pk = packets(&mut p, 0xaabb_ccdd, &[&[0x67, 1, 2], &[0x65, 3]]);
        assert_eq!(
            pk[0],
            [0x80, 96, 0xff, 0xfe, 0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44, 0x67, 1, 2]
        );
        // Marker on the last packet; sequence wraps.
        assert_eq!(&pk[1][..4], &[0x80, 96 | 0x80, 0xff, 0xff]);
        assert_eq!(p.next_seq(), 0);
        assert_eq!((p.packet_count(), p.octet_count()), (2, 5));
        let (h, payload) = parse_rtp_header(&pk[1]).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.sequence_number, h.timestamp, h.ssrc),
            (0xffff, 0xaabb_ccdd, 0x1122_3344)
        );
        assert_eq!(payload, &[0x65, 3]);
    }

    #[test]
    fn nal_of_exactly_max_payload_is_single_packet() {
        let mut p = H264Packetizer::new(1, 96, 0, 100);
        let n = nal(100, 0x65);
        let pk = packets(&mut p, 0, &[&n]);
        assert_eq!(pk.len(), 1);
        assert_eq!(pk[0].len(), 112);
        assert_eq!(&pk[0][12..], &n[..]);
    }

    #[test]
    fn nal_of_max_payload_plus_one_is_fu_a() {
        let mut p = H264Packetizer::new(1, 96, 0, 100);
        let n = nal(101, 0x65); // NRI=3, type 5
        let pk = packets(&mut p, 0, &[&n]);
        // 100 body bytes in chunks of 98: 98 + 2.
        assert_eq!(pk.len(), 2);
        assert_eq!(pk[0].len(), 112);
        assert_eq!(&pk[0][12..14], &[0x60 | 28, 0x80 | 5]);
        assert_eq!(&pk[0][14..], &n[1..99]);
        assert_eq!(&pk[1][12..14], &[0x60 | 28, 0x40 | 5]);
        assert_eq!(&pk[1][14..], &n[99..]);
        assert_eq!(pk[0][1] & 0x80, 0);
        assert_eq!(pk[1][1] & 0x80, 0x80);
        // Octets count the FU indicator and header.
        assert_eq!(p.octet_count(), 100 + 4);
    }

    #[test]
    fn fu_a_middle_fragments_and_marker_only_at_au_end() {
        let mut p = H264Packetizer::new(1, 96, 10, 10);
        let big = nal(30, 0x41); // body 29 bytes → 8 + 8 + 8 + 5
        let pk = packets(&mut p, 5, &[&big, &[0x41, 9]]);
        let fu: Vec<u8> = pk.iter().map(|p| p[13]).take(4).collect();
        assert_eq!(fu, vec![0x81, 0x01, 0x01, 0x41]);
        assert!(pk[..4].iter().all(|p| p[1] & 0x80 == 0));
        assert_eq!(pk[4][1] & 0x80, 0x80);
        let seqs: Vec<u16> = pk
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(seqs, vec![10, 11, 12, 13, 14]);
    }

    #[test]
    fn unsendable_nals_are_skipped() {
        let mut p = H264Packetizer::new(1, 96, 0, 1400);
        let pk = packets(&mut p, 0, &[&[0x41, 1], &[], &[0x1c, 1], &[0x00]]);
        assert_eq!(pk.len(), 1);
        assert_eq!(
            pk[0][1] & 0x80,
            0x80,
            "marker on the last packet actually sent"
        );
        assert_eq!(p.skipped_nals(), 3);
    }

    #[test]
    fn max_payload_is_clamped() {
        assert_eq!(H264Packetizer::new(1, 96, 0, 0).max_payload(), 3);
        assert_eq!(H264Packetizer::new(1, 96, 0, 1 << 20).max_payload(), 65523);
    }

    #[test]
    fn parse_header_with_csrc_extension_padding() {
        let mut pk = vec![0xb2, 0xe0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1];
        pk.extend_from_slice(&[0, 0, 0, 0xa, 0, 0, 0, 0xb]); // 2 CSRCs
        pk.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        pk.extend_from_slice(&[0x41, 0x42]); // payload
        pk.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let (h, payload) = parse_rtp_header(&pk).unwrap();
        assert_eq!(payload, &[0x41, 0x42]);
        assert!(h.padding && h.extension && h.marker);
        assert_eq!(
            (h.csrc_count, h.payload_type, h.sequence_number),
            (2, 96, 7)
        );

        for cut in 0..pk.len() - 3 {
            assert!(parse_rtp_header(&pk[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = pk.clone();
        *bad.last_mut().unwrap() = 0;
        assert_eq!(parse_rtp_header(&bad), Err(RtpError::BadPadding(0)));
        *bad.last_mut().unwrap() = 200;
        assert_eq!(parse_rtp_header(&bad), Err(RtpError::BadPadding(200)));
        bad[0] = 0x40;
        assert_eq!(parse_rtp_header(&bad), Err(RtpError::BadVersion(1)));
    }
}

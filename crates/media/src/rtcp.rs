//! RTCP (RFC 3550 §6): the sender report + SDES CNAME compound packet a sender emits
//! every few seconds, and a parser for SR/RR/SDES/BYE so the server can recognise a
//! viewer's BYE and tests can check our reports.

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// RTCP packet types (RFC 3550 §12.1).
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
/// SDES item type of the canonical name (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;

/// Errors of RTCP parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// No packet at all.
    #[error("empty RTCP datagram")]
    Empty,
    /// A packet or one of its parts runs past the end of its data.
    #[error("truncated RTCP packet")]
    Truncated,
    /// Version field other than 2.
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    /// Padding count of zero or beyond the packet.
    #[error("invalid RTCP padding")]
    BadPadding,
}

/// Converts microseconds since the Unix epoch into a 64-bit NTP timestamp (RFC 3550 §4):
/// seconds since 1900 in the high 32 bits, binary fraction of a second in the low 32.
/// The seconds wrap modulo 2^32 (NTP eras), as RFC 5905 §6 prescribes.
pub fn ntp_from_unix_micros(us: i64) -> u64 {
    let secs = us.div_euclid(1_000_000).wrapping_add(NTP_UNIX_OFFSET_SECS);
    let micros = us.rem_euclid(1_000_000) as u64; // 0..1_000_000 after rem_euclid
    let frac = (micros << 32) / 1_000_000;
    (u64::from(secs as u32) << 32) | frac
}

/// Appends an RTCP compound packet to `out`: a sender report (RFC 3550 §6.4.1) with no
/// report blocks, then an SDES packet (§6.5) with one chunk holding the CNAME item.
///
/// `cname` longer than 255 bytes is cut at a character boundary (the item length is 8 bits).
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packet_count: u32,
    octet_count: u32,
    cname: &str,
) {
    // SR: header, SSRC, NTP (2 words), RTP timestamp, packet count, octet count = 7 words.
    out.extend_from_slice(&[0x80, PT_SR, 0, 6]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packet_count.to_be_bytes());
    out.extend_from_slice(&octet_count.to_be_bytes());

    let mut end = cname.len().min(255);
    while !cname.is_char_boundary(end) {
        end -= 1;
    }
    let cname = cname.as_bytes().get(..end).unwrap_or_default();
    // Chunk: SSRC, CNAME item (type, length, text), then the null item ending the list,
    // padded with zeros to a 32-bit boundary (§6.5: at least one null octet).
    let chunk_len = 4 + 2 + cname.len();
    let padded = (chunk_len + 1).div_ceil(4) * 4;
    let words = (4 + padded) / 4 - 1; // at most (4 + 264) / 4, fits in u16
    out.extend_from_slice(&[0x81, PT_SDES]);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&[SDES_CNAME, cname.len() as u8]);
    out.extend_from_slice(cname);
    out.resize(out.len() + (padded - chunk_len), 0);
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 seconds.
    pub delay_since_last_sr: u32,
}

/// A sender report (RFC 3550 §6.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// 64-bit NTP timestamp of the report.
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception report blocks.
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk (RFC 3550 §6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesChunk {
    /// Source described.
    pub ssrc: u32,
    /// The CNAME item, if present (lossily decoded as UTF-8).
    pub cname: Option<String>,
}

/// One packet of an RTCP compound packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR, type 200.
    SenderReport(SenderReport),
    /// RR, type 201.
    ReceiverReport {
        /// The receiver's SSRC.
        ssrc: u32,
        /// Reception report blocks.
        reports: Vec<ReportBlock>,
    },
    /// SDES, type 202.
    SourceDescription(Vec<SdesChunk>),
    /// BYE, type 203 (RFC 3550 §6.6).
    Goodbye {
        /// Sources leaving.
        ssrcs: Vec<u32>,
        /// Reason for leaving, if given.
        reason: Option<String>,
    },
    /// Any other packet type (APP, feedback, XR ...), kept unparsed.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/subtype field.
        count: u8,
        /// Packet body after the 4-byte header, padding removed.
        body: Vec<u8>,
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    let w = b.get(at..at + 4).ok_or(RtcpError::Truncated)?;
    Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

fn report_blocks(body: &[u8], count: u8) -> Result<Vec<ReportBlock>, RtcpError> {
    (0..usize::from(count))
        .map(|i| {
            let b = body.get(i * 24..i * 24 + 24).ok_or(RtcpError::Truncated)?;
            let lost = be32(b, 4)?;
            Ok(ReportBlock {
                ssrc: be32(b, 0)?,
                fraction_lost: (lost >> 24) as u8,
                // Sign-extend the 24-bit field.
                cumulative_lost: ((lost << 8) as i32) >> 8,
                highest_seq: be32(b, 8)?,
                jitter: be32(b, 12)?,
                last_sr: be32(b, 16)?,
                delay_since_last_sr: be32(b, 20)?,
            })
        })
        .collect()
}

fn sdes_chunks(mut body: &[u8], count: u8) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::new();
    for _ in 0..count {
        let ssrc = be32(body, 0)?;
        let mut i = 4;
        let mut cname = None;
        // Items until the null item, then padding to the next 32-bit boundary.
        loop {
            match body.get(i) {
                None => return Err(RtcpError::Truncated),
                Some(0) => break,
                Some(&item) => {
                    let len = usize::from(*body.get(i + 1).ok_or(RtcpError::Truncated)?);
                    let text = body.get(i + 2..i + 2 + len).ok_or(RtcpError::Truncated)?;
                    if item == SDES_CNAME {
                        cname = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    i += 2 + len;
                }
            }
        }
        let next = (i + 1).div_ceil(4) * 4;
        body = body.get(next..).ok_or(RtcpError::Truncated)?;
        chunks.push(SdesChunk { ssrc, cname });
    }
    Ok(chunks)
}

/// Parses an RTCP compound packet (RFC 3550 §6.1) into its packets. Packet types other
/// than SR, RR, SDES and BYE come back as [`RtcpPacket::Other`]; profile-specific
/// extensions after the report blocks are ignored.
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (hdr, _) = rest.split_first_chunk::<4>().ok_or(RtcpError::Truncated)?;
        let version = hdr[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let count = hdr[0] & 0x1f;
        let packet_type = hdr[1];
        let len = (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::Truncated)?;
        rest = rest.get(len..).unwrap_or_default();
        let mut body = packet.get(4..).unwrap_or_default();
        if hdr[0] & 0x20 != 0 {
            let pad = usize::from(body.last().copied().unwrap_or(0));
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = body.get(..body.len() - pad).unwrap_or_default();
        }
        out.push(match packet_type {
            PT_SR => RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0)?,
                ntp: (u64::from(be32(body, 4)?) << 32) | u64::from(be32(body, 8)?),
                rtp_ts: be32(body, 12)?,
                packet_count: be32(body, 16)?,
                octet_count: be32(body, 20)?,
                reports: report_blocks(body.get(24..).unwrap_or_default(), count)?,
            }),
            PT_RR => RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0)?,
                reports: report_blocks(body.get(4..).unwrap_or_default(), count)?,
            },
            PT_SDES => RtcpPacket::SourceDescription(sdes_chunks(body, count)?),
            PT_BYE => {
                let ssrcs = (0..usize::from(count))
                    .map(|i| be32(body, 4 * i))
                    .collect::<Result<Vec<_>, _>>()?;
                let after = body.get(4 * usize::from(count)..).unwrap_or_default();
                let reason = match after.split_first() {
                    Some((&n, text)) if n > 0 => {
                        let text = text.get(..usize::from(n)).ok_or(RtcpError::Truncated)?;
                        Some(String::from_utf8_lossy(text).into_owned())
                    }
                    _ => None,
                };
                RtcpPacket::Goodbye { ssrcs, reason }
            }
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body: body.to_vec(),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix_micros(0), 2_208_988_800u64 << 32);
        assert_eq!(
            ntp_from_unix_micros(500_000),
            (2_208_988_800u64 << 32) | 0x8000_0000
        );
        assert_eq!(
            ntp_from_unix_micros(-500_000),
            (2_208_988_799u64 << 32) | 0x8000_0000
        );
        // 2036-02-07T06:28:16Z starts NTP era 1: seconds wrap to 0.
        let era1 = (1u64 << 32) as i64 - NTP_UNIX_OFFSET_SECS;
        assert_eq!(
            ntp_from_unix_micros(era1 * 1_000_000 + 250_000),
            0x4000_0000
        );
        let _ = ntp_from_unix_micros(i64::MIN);
        let _ = ntp_from_unix_micros(i64::MAX);
    }

    #[test]
    fn sender_report_layout_rfc3550() {
        let mut out = Vec::new();
        let ntp = 0x0102_0304_0506_0708;
        write_sender_report(
            &mut out,
            0xdead_beef,
            ntp,
            0x1111_2222,
            42,
            0x3333_4444,
            "cam",
        );
        // §6.4.1: V=2 P=0 RC=0, PT=200, length 6 words-minus-one, then the sender info.
        assert_eq!(&out[0..4], &[0x80, 200, 0, 6]);
        assert_eq!(&out[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&out[8..16], &ntp.to_be_bytes());
        assert_eq!(&out[16..20], &0x1111_2222u32.to_be_bytes());
        assert_eq!(&out[20..24], &42u32.to_be_bytes());
        assert_eq!(&out[24..28], &0x3333_4444u32.to_be_bytes());
        // §6.5: V=2 SC=1, PT=202; chunk = SSRC, CNAME(1) len 3 "cam", null item + padding.
        assert_eq!(
            &out[28..],
            &[0x81, 202, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 3, b'c', b'a', b'm', 0, 0, 0]
        );
        assert_eq!(out.len() % 4, 0);

        let parsed = parse_compound(&out).unwrap();
        assert_eq!(
            parsed,
            vec![
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: 0xdead_beef,
                    ntp,
                    rtp_ts: 0x1111_2222,
                    packet_count: 42,
                    octet_count: 0x3333_4444,
                    reports: vec![],
                }),
                RtcpPacket::SourceDescription(vec![SdesChunk {
                    ssrc: 0xdead_beef,
                    cname: Some("cam".into()),
                }]),
            ]
        );
    }

    #[test]
    fn cname_lengths_keep_alignment() {
        for n in 0..300 {
            let cname = "é".repeat(n);
            let mut out = vec![];
            write_sender_report(&mut out, 1, 0, 0, 0, 0, &cname);
            assert_eq!(out.len() % 4, 0);
            let parsed = parse_compound(&out).unwrap();
            let RtcpPacket::SourceDescription(chunks) = &parsed[1] else {
                panic!("no SDES");
            };
            let got = chunks[0].cname.as_deref().unwrap();
            assert!(cname.starts_with(got) && got.len() >= cname.len().min(254));
        }
    }

    #[test]
    fn receiver_report_and_bye() {
        let mut d = vec![0x81, 201, 0, 7, 0, 0, 0, 5];
        d.extend_from_slice(&[0, 0, 0, 9, 0x40, 0xff, 0xff, 0xfe]); // lost 1/4, cum -2
        d.extend_from_slice(&[0, 1, 0, 10, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]);
        d.extend_from_slice(&[0x81, 203, 0, 3, 0, 0, 0, 5, 3, b'b', b'y', b'e', 0, 0, 0, 0]);
        let p = parse_compound(&d).unwrap();
        let RtcpPacket::ReceiverReport { ssrc, reports } = &p[0] else {
            panic!("not RR: {p:?}");
        };
        assert_eq!(*ssrc, 5);
        assert_eq!((reports[0].ssrc, reports[0].fraction_lost), (9, 0x40));
        assert_eq!(reports[0].cumulative_lost, -2);
        assert_eq!(
            (reports[0].highest_seq, reports[0].delay_since_last_sr),
            (65546, 5)
        );
        assert_eq!(
            p[1],
            RtcpPacket::Goodbye {
                ssrcs: vec![5],
                reason: Some("bye".into())
            }
        );
    }

    #[test]
    fn malformed_compounds_are_errors() {
        let mut good = vec![];
        write_sender_report(&mut good, 1, 2, 3, 4, 5, "x");
        for cut in 1..good.len() {
            if cut == 28 {
                continue; // a lone SR is a valid (reduced) packet
            }
            assert!(parse_compound(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(parse_compound(&[]), Err(RtcpError::Empty));
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion(1))
        );
        assert_eq!(
            parse_compound(&[0xa0, 204, 0, 0]),
            Err(RtcpError::BadPadding)
        );
        // Unknown type kept; padding stripped.
        assert_eq!(
            parse_compound(&[0xa1, 204, 0, 1, 7, 0, 0, 3]).unwrap(),
            vec![RtcpPacket::Other {
                packet_type: 204,
                count: 1,
                body: vec![7]
            }]
        );
        // An RR claiming more blocks than it holds.
        assert_eq!(
            parse_compound(&[0x85, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
    }
}

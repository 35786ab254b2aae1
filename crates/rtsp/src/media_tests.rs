//! The media core without sockets: these pin down what the connection sent before the
//! core was split out of `conn.rs` (same packets, same report schedule, same resume rule).

use std::sync::Arc;

use bytes::Bytes;
use vigil_media::rtcp::{parse_compound, RtcpPacket, SenderReport};
use vigil_media::rtp::{parse_rtp_header, RtpHeader};
use vigil_media::{Codec, StreamParams};

use super::*;
use crate::message::decode_interleaved;

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
const SSRC: u32 = 0x1234_5678;
const INTERVAL: Duration = Duration::from_secs(5);
const TCP: SessionTransport = SessionTransport::Tcp { channels: (2, 3) };
const UDP: SessionTransport = SessionTransport::Udp {
    client: (5000, 5001),
    server: (6970, 6971),
};
const SEED: Seed = Seed {
    seq: 0xfff0,
    ts_offset: 0xffff_0000,
};

fn params() -> Arc<StreamParams> {
    Arc::new(StreamParams {
        codec: Codec::H264,
        vps: None,
        sps: Bytes::from_static(SPS),
        pps: Bytes::from_static(PPS),
        width: 320,
        height: 240,
        fps: Some(25.0),
    })
}

/// Frame `n` of a 25 fps stream (pts 3600 apart): one `len`-byte NAL unit, IDR when `key`.
fn au(n: i64, key: bool, len: usize) -> AccessUnit {
    let mut data = (len as u32).to_be_bytes().to_vec();
    data.push(if key { 0x65 } else { 0x41 });
    data.extend((1..len).map(|i| (i % 251) as u8));
    AccessUnit {
        params: params(),
        pts: n * 3600,
        capture_us: 1_700_000_000_000_000 + n * 40_000,
        key,
        data: Bytes::from(data),
    }
}

/// An IDR that carries its own SPS and PPS in-band.
fn au_with_parameter_sets(n: i64) -> AccessUnit {
    let mut data = Vec::new();
    for nal in [SPS, PPS, &[0x65, 1, 2, 3][..]] {
        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        data.extend_from_slice(nal);
    }
    AccessUnit {
        data: Bytes::from(data),
        ..au(n, true, 4)
    }
}

struct Fixture {
    core: MediaCore,
    t0: Instant,
    generation: u64,
}

impl Fixture {
    /// A core with session "s" set up on `transport` and playing; returns the RTP-Info
    /// (seq, rtptime) PLAY announced for a stream starting at pts 0.
    fn playing(transport: SessionTransport) -> (Self, (u16, u32)) {
        let t0 = Instant::now();
        let mut core = MediaCore::new(t0, 1400, INTERVAL);
        let info = core.play_position("s", SSRC, 0, SEED);
        core.handle_input(Input::Play {
            session: "s",
            transport,
        });
        let generation = match core.poll_output() {
            Output::Subscribe {
                session,
                generation,
            } if session == "s" => generation,
            other => panic!("PLAY must subscribe, got {other:?}"),
        };
        assert_eq!(core.poll_output(), Output::Timeout(t0));
        (
            Fixture {
                core,
                t0,
                generation,
            },
            info,
        )
    }

    fn send(&mut self, au: &AccessUnit) -> Vec<Output> {
        self.core.handle_input(Input::AccessUnit {
            session: "s",
            generation: self.generation,
            au,
        });
        self.outputs()
    }

    /// Everything up to the [`Output::Timeout`], which is left out.
    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| match self.core.poll_output() {
            Output::Timeout(_) => None,
            o => Some(o),
        })
        .collect()
    }

    fn timeout(&mut self) -> Instant {
        match self.core.poll_output() {
            Output::Timeout(at) => at,
            other => panic!("expected the timeout, got {other:?}"),
        }
    }

    fn pause(&mut self) {
        self.core.handle_input(Input::Pause { session: "s" });
        assert_eq!(
            self.outputs(),
            vec![Output::Unsubscribe {
                session: "s".into()
            }]
        );
    }

    fn play_again(&mut self, first_pts: i64) -> (u16, u32) {
        let info = self.core.play_position(
            "s",
            SSRC,
            first_pts,
            Seed {
                seq: 1,
                ts_offset: 1,
            },
        );
        self.core.handle_input(Input::Play {
            session: "s",
            transport: TCP,
        });
        match self.outputs().as_slice() {
            [Output::Subscribe {
                session,
                generation,
            }] if session == "s" => {
                assert_eq!(
                    *generation,
                    self.generation + 1,
                    "a new forwarder each PLAY"
                );
                self.generation = *generation;
            }
            other => panic!("PLAY must subscribe, got {other:?}"),
        }
        info
    }
}

/// Unframes an interleaved transmit into (channel, packet) pairs, checking the framing.
fn frames(out: &[Output]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    for o in out {
        let Output::Transmit(t) = o else {
            panic!("expected a transmit, got {o:?}");
        };
        assert_eq!(t.to, Destination::Interleaved);
        for p in &t.packets {
            let wire = p.to_vec();
            let (channel, data) = decode_interleaved(&wire).expect("one whole frame");
            assert_eq!(data.end, wire.len(), "exactly one frame per packet");
            frames.push((channel, wire[data].to_vec()));
        }
    }
    frames
}

fn rtp(frames: &[(u8, Vec<u8>)]) -> Vec<(RtpHeader, Vec<u8>)> {
    frames
        .iter()
        .filter(|(ch, _)| *ch == 2)
        .map(|(_, d)| {
            let (h, p) = parse_rtp_header(d).expect("RTP");
            (h, p.to_vec())
        })
        .collect()
}

fn reports(frames: &[(u8, Vec<u8>)]) -> Vec<SenderReport> {
    frames
        .iter()
        .filter(|(ch, _)| *ch == 3)
        .map(|(_, d)| match parse_compound(d).expect("RTCP").as_slice() {
            [RtcpPacket::SenderReport(sr), RtcpPacket::SourceDescription(sdes)] => {
                assert_eq!(sdes[0].cname.as_deref(), Some("vigil"));
                sr.clone()
            }
            other => panic!("not SR + SDES: {other:?}"),
        })
        .collect()
}

#[test]
fn rtp_info_matches_the_first_packet() {
    let (mut fx, (seq, rtptime)) = Fixture::playing(TCP);
    assert_eq!((seq, rtptime), (SEED.seq, SEED.ts_offset));
    let f = frames(&fx.send(&au(0, true, 100)));
    let packets = rtp(&f);
    assert_eq!(packets[0].0.sequence_number, seq);
    assert_eq!(packets[0].0.timestamp, rtptime);
    assert_eq!(packets[0].0.ssrc, SSRC);
    assert_eq!(packets[0].0.payload_type, crate::PAYLOAD_TYPE);
}

#[test]
fn key_frames_get_parameter_sets_in_band_unless_they_carry_them() {
    let (mut fx, _) = Fixture::playing(TCP);
    // RFC 6184 §8.4: SPS, PPS, then the IDR, all at the IDR's timestamp; marker on the last.
    let packets = rtp(&frames(&fx.send(&au(0, true, 100))));
    let payloads: Vec<&[u8]> = packets.iter().map(|(_, p)| &p[..]).collect();
    assert_eq!(payloads.len(), 3);
    assert_eq!((payloads[0], payloads[1]), (SPS, PPS));
    assert_eq!(payloads[2].first(), Some(&0x65));
    assert!(packets.iter().all(|(h, _)| h.timestamp == SEED.ts_offset));
    assert_eq!(
        packets.iter().map(|(h, _)| h.marker).collect::<Vec<_>>(),
        [false, false, true]
    );
    // A P frame: no parameter sets.
    let packets = rtp(&frames(&fx.send(&au(1, false, 100))));
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].1.first(), Some(&0x41));
    // An IDR that has its own: not repeated.
    let packets = rtp(&frames(&fx.send(&au_with_parameter_sets(2))));
    let types: Vec<u8> = packets.iter().map(|(_, p)| p[0] & 0x1f).collect();
    assert_eq!(types, [7, 8, 5]);
}

#[test]
fn sequence_numbers_wrap_and_large_units_are_fragmented() {
    let (mut fx, _) = Fixture::playing(TCP);
    let mut next = SEED.seq;
    for n in 0..10 {
        for (h, _) in rtp(&frames(&fx.send(&au(n, n == 0, 5000)))) {
            assert_eq!(h.sequence_number, next);
            assert_eq!(h.timestamp, SEED.ts_offset.wrapping_add((n * 3600) as u32));
            next = next.wrapping_add(1);
        }
    }
    assert!(next < SEED.seq, "the test must cross the 16-bit wrap");
}

#[test]
fn payloads_are_shared_with_the_access_unit_not_copied() {
    let (mut fx, _) = Fixture::playing(TCP);
    let unit = au(0, false, 3000);
    let out = fx.send(&unit);
    let Some(Output::Transmit(t)) = out.first() else {
        panic!("no transmit: {out:?}");
    };
    let range = unit.data.as_ptr_range();
    // FU-A fragments of a P frame, then the first sender report (which is built here):
    // every RTP payload points into the access unit.
    let (report, media) = t.packets.split_last().expect("packets");
    assert_eq!(report.head[1], 3, "the report on the RTCP channel");
    assert!(media.len() >= 3);
    assert!(media
        .iter()
        .all(|p| !p.payload.is_empty() && range.contains(&p.payload.as_ptr())));
}

/// The schedule: the first access unit after PLAY carries a report; later ones only after
/// the connection's report timer fired (at creation, then every interval).
#[test]
fn sender_reports_follow_play_and_the_report_timer() {
    let (mut fx, _) = Fixture::playing(TCP);
    assert_eq!(fx.timeout(), fx.t0, "the timer fires at once");
    let first = frames(&fx.send(&au(0, true, 100)));
    let sr = reports(&first);
    assert_eq!(sr.len(), 1, "report with the first access unit after PLAY");
    // It maps this access unit's capture time to its RTP timestamp and counts its packets.
    let packets = rtp(&first);
    assert_eq!(sr[0].ssrc, SSRC);
    assert_eq!(sr[0].rtp_ts, SEED.ts_offset);
    assert_eq!(sr[0].ntp, rtcp::ntp_from_unix_micros(1_700_000_000_000_000));
    assert_eq!(sr[0].packet_count, packets.len() as u32);
    let octets: usize = packets.iter().map(|(_, p)| p.len()).sum();
    assert_eq!(sr[0].octet_count, octets as u32);
    // The report is the last packet of the same transmit.
    assert_eq!(first.last().map(|(ch, _)| *ch), Some(3));

    assert!(reports(&frames(&fx.send(&au(1, false, 100)))).is_empty());
    // The timer's first tick (at creation) marks a report due again.
    fx.core.handle_input(Input::Timeout(fx.t0));
    assert_eq!(
        fx.timeout(),
        fx.t0 + INTERVAL,
        "a tick sends nothing by itself"
    );
    let sr = reports(&frames(&fx.send(&au(2, false, 100))));
    assert_eq!(sr.len(), 1);
    assert_eq!(sr[0].rtp_ts, SEED.ts_offset.wrapping_add(2 * 3600));
    assert!(reports(&frames(&fx.send(&au(3, false, 100)))).is_empty());
    // Early wake-ups change nothing.
    fx.core
        .handle_input(Input::Timeout(fx.t0 + INTERVAL - Duration::from_millis(1)));
    assert!(reports(&frames(&fx.send(&au(4, false, 100)))).is_empty());
    // A late tick marks one report and the timer moves past `now`.
    fx.core.handle_input(Input::Timeout(
        fx.t0 + INTERVAL * 3 + Duration::from_millis(1),
    ));
    assert_eq!(fx.timeout(), fx.t0 + INTERVAL * 4);
    assert_eq!(reports(&frames(&fx.send(&au(5, false, 100)))).len(), 1);
    assert!(reports(&frames(&fx.send(&au(6, false, 100)))).is_empty());
}

#[test]
fn udp_sends_rtp_and_reports_to_the_client_ports() {
    let (mut fx, _) = Fixture::playing(UDP);
    let out = fx.send(&au(0, false, 3000));
    let [Output::Transmit(media), Output::Transmit(report)] = out.as_slice() else {
        panic!("expected RTP then RTCP: {out:?}");
    };
    assert_eq!(media.to, Destination::UdpRtp { port: 5000 });
    assert_eq!(report.to, Destination::UdpRtcp { port: 5001 });
    assert_eq!(
        (media.session.as_str(), report.session.as_str()),
        ("s", "s")
    );
    // Datagrams are bare packets: no `$` framing.
    let mut seq = SEED.seq;
    for p in &media.packets {
        let wire = p.to_vec();
        let (h, _) = parse_rtp_header(&wire).expect("RTP");
        assert_eq!(h.sequence_number, seq);
        seq = seq.wrapping_add(1);
    }
    assert!(matches!(
        parse_compound(&report.packets[0].to_vec()).as_deref(),
        Ok([
            RtcpPacket::SenderReport(_),
            RtcpPacket::SourceDescription(_)
        ])
    ));
    let out = fx.send(&au(1, false, 100));
    assert_eq!(out.len(), 1, "no report due: RTP only");
}

/// RFC 7826 §13.5 (RFC 2326 §10.5): PLAY after PAUSE resumes the same RTP stream. Sequence
/// numbers continue from the last packet sent, and after resuming nothing at or before the
/// last picture sent goes out: the new subscription starts at the current GOP, so the core
/// waits for the first key frame later than it.
#[test]
fn pause_then_play_continues_sequence_and_timestamps() {
    let (mut fx, _) = Fixture::playing(TCP);
    let mut last = None;
    for n in 0..5 {
        last = rtp(&frames(&fx.send(&au(n, n == 0, 100)))).last().cloned();
    }
    let (last, _) = last.expect("packets");
    fx.pause();
    // Paused: what an aborted forwarder still delivers is dropped.
    assert_eq!(fx.send(&au(5, false, 100)), vec![]);

    // The hub's GOP now starts at frame 0 again (pts 0); RTP-Info still continues.
    let (seq, rtptime) = fx.play_again(0);
    assert_eq!(seq, last.sequence_number.wrapping_add(1));
    assert_eq!(
        rtptime, SEED.ts_offset,
        "rtptime of the GOP start, same offset"
    );
    // Replayed frames (key or not, at or before the last sent) and P frames are skipped.
    assert_eq!(fx.send(&au(0, true, 100)), vec![]);
    assert_eq!(fx.send(&au(4, true, 100)), vec![]);
    assert_eq!(fx.send(&au(6, false, 100)), vec![]);
    // The first later key frame goes out: SPS/PPS first, continuing the sequence, with a
    // report (PLAY made one due).
    let f = frames(&fx.send(&au(10, true, 100)));
    let packets = rtp(&f);
    assert_eq!(packets[0].0.sequence_number, seq);
    assert_eq!((&packets[0].1[..], &packets[1].1[..]), (SPS, PPS));
    assert!(packets
        .iter()
        .all(|(h, _)| h.timestamp == SEED.ts_offset.wrapping_add(10 * 3600)));
    assert_eq!(reports(&f).len(), 1);
    // Then everything flows again, P frames included.
    let packets = rtp(&frames(&fx.send(&au(11, false, 100))));
    assert_eq!(
        packets[0].0.sequence_number,
        seq.wrapping_add(3),
        "SPS, PPS, IDR, then this"
    );
}

#[test]
fn access_units_of_an_earlier_play_are_dropped() {
    let (mut fx, _) = Fixture::playing(TCP);
    let old = fx.generation;
    fx.pause();
    fx.play_again(0);
    fx.core.handle_input(Input::AccessUnit {
        session: "s",
        generation: old,
        au: &au(20, true, 100),
    });
    assert_eq!(fx.outputs(), vec![]);
    assert!(!fx.send(&au(20, true, 100)).is_empty());
}

#[test]
fn pause_before_any_media_resumes_at_once() {
    let (mut fx, _) = Fixture::playing(TCP);
    fx.pause();
    fx.play_again(0);
    // Nothing was sent, so nothing to skip past: the GOP start goes out.
    assert!(!fx.send(&au(0, true, 100)).is_empty());
}

#[test]
fn rtcp_bye_ends_the_session_other_rtcp_does_not() {
    let (mut fx, _) = Fixture::playing(TCP);
    // A receiver report alone, garbage, and an empty packet: the session lives on.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
    for data in [&rr[..], &[0xff, 0, 0], &[]] {
        fx.core.handle_input(Input::Rtcp { session: "s", data });
        assert_eq!(fx.outputs(), vec![]);
    }
    // RR + BYE (RFC 3550 §6.6), as ffmpeg sends when it stops.
    let mut bye = rr.to_vec();
    bye.extend_from_slice(&[0x81, 203, 0, 1, 0, 0, 0, 7]);
    fx.core.handle_input(Input::Rtcp {
        session: "s",
        data: &bye,
    });
    assert_eq!(
        fx.outputs(),
        vec![Output::Ended {
            session: "s".into(),
            reason: EndReason::Bye
        }]
    );
    assert_eq!(fx.send(&au(1, true, 100)), vec![], "nothing after BYE");
}

/// TEARDOWN ends the session and sends nothing more: no RTCP BYE of our own (the server
/// never sent one; the TEARDOWN response ends the stream for the client).
#[test]
fn teardown_ends_the_session_without_sending() {
    let (mut fx, _) = Fixture::playing(TCP);
    assert!(!fx.send(&au(0, true, 100)).is_empty());
    fx.core.handle_input(Input::Teardown { session: "s" });
    assert_eq!(
        fx.outputs(),
        vec![Output::Ended {
            session: "s".into(),
            reason: EndReason::Teardown
        }]
    );
    assert_eq!(fx.send(&au(1, true, 100)), vec![]);
    // A session the core never saw (SETUP, then TEARDOWN) ends the same way.
    fx.core.handle_input(Input::Teardown { session: "ready" });
    assert_eq!(
        fx.outputs(),
        vec![Output::Ended {
            session: "ready".into(),
            reason: EndReason::Teardown
        }]
    );
}

#[test]
fn sessions_are_independent() {
    let (mut fx, _) = Fixture::playing(TCP);
    fx.core.play_position(
        "t",
        7,
        0,
        Seed {
            seq: 100,
            ts_offset: 0,
        },
    );
    fx.core.handle_input(Input::Play {
        session: "t",
        transport: SessionTransport::Tcp { channels: (0, 1) },
    });
    let Output::Subscribe { generation, .. } = fx.core.poll_output() else {
        panic!("no subscribe");
    };
    fx.core.handle_input(Input::AccessUnit {
        session: "t",
        generation,
        au: &au(0, false, 100),
    });
    let f = frames(&fx.outputs());
    assert_eq!(
        f.iter().map(|(ch, _)| *ch).collect::<Vec<_>>(),
        [0, 1],
        "t's channels, with its first report"
    );
    // Ending t leaves s playing.
    fx.core.handle_input(Input::Teardown { session: "t" });
    fx.outputs();
    assert!(!fx.send(&au(0, true, 100)).is_empty());
}

//! The sans-IO media engine of one RTSP connection: what each of its sessions sends.
//!
//! [`MediaCore`] holds the per-session sending state — RTP packetizer (sequence numbers),
//! timestamp offset, where to resume after PAUSE, the RTCP sender-report schedule — and
//! never touches a socket or a clock, in the style of str0m:
//!
//! ```text
//! core.handle_input(Input::Play { .. } | Input::AccessUnit { .. } | Input::Rtcp { .. }
//!                   | Input::Timeout(now) | Input::Pause { .. } | Input::Teardown { .. });
//! let deadline = loop {
//!     match core.poll_output() {
//!         Output::Transmit(t) => write t.packets to the connection or the UDP port t.to,
//!         Output::Subscribe { .. } / Output::Unsubscribe { .. } => start / stop the hub forwarder,
//!         Output::Ended { .. } => forget the session (its sockets, its forwarder),
//!         Output::Timeout(at) => break at,
//!     }
//! };
//! wait for the next input, or until `deadline` and then feed Input::Timeout(now)
//! ```
//!
//! The tokio edge (`conn.rs`) only moves bytes and access units; everything it used to
//! decide — which frames to skip after PAUSE, when a sender report is due, when parameter
//! sets go in-band, whether an RTCP packet ends the session — is decided here and unit
//! tested without sockets.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use vigil_media::rtcp::{self, RtcpPacket};
use vigil_media::rtp::H264Packetizer;
use vigil_media::AccessUnit;

use crate::message::interleaved_header;
use crate::session::SessionTransport;

/// CNAME of our sender reports' SDES item (RFC 3550 §6.5.1).
const CNAME: &str = "vigil";

/// What happens to a connection's media.
#[derive(Debug)]
pub enum Input<'a> {
    /// PLAY took a session from Ready to Playing, on `transport`.
    Play {
        /// Session id.
        session: &'a str,
        /// Where its media goes.
        transport: SessionTransport,
    },
    /// PAUSE took a session from Playing to Ready.
    Pause {
        /// Session id.
        session: &'a str,
    },
    /// The session ends (TEARDOWN, timeout, its stream ended, a write failed).
    Teardown {
        /// Session id.
        session: &'a str,
    },
    /// An access unit from the session's stream, tagged by the forwarder that
    /// [`Output::Subscribe`] started.
    AccessUnit {
        /// Session id.
        session: &'a str,
        /// The [`Output::Subscribe`] generation of the forwarder that delivered it.
        generation: u64,
        /// The picture.
        au: &'a AccessUnit,
    },
    /// An RTCP compound packet from the client for the session (interleaved or UDP).
    Rtcp {
        /// Session id.
        session: &'a str,
        /// The packet as received.
        data: &'a [u8],
    },
    /// The time is now `now` (at or after the last [`Output::Timeout`]).
    Timeout(Instant),
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// [`Input::Teardown`].
    Teardown,
    /// The client sent an RTCP BYE (RFC 3550 §6.6).
    Bye,
}

/// Where a [`Transmit`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The RTSP connection; each packet's `head` starts with its `$` frame header.
    Interleaved,
    /// From the session's RTP socket to the client's `port`.
    UdpRtp {
        /// Client port.
        port: u16,
    },
    /// From the session's RTCP socket to the client's `port`.
    UdpRtcp {
        /// Client port.
        port: u16,
    },
}

/// One packet as two parts, so a payload can stay in the shared access unit (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Framing and headers (`$` header when interleaved, RTP header, FU-A bytes).
    pub head: Bytes,
    /// The rest of the packet.
    pub payload: Bytes,
}

impl Packet {
    /// The packet as one buffer (a UDP datagram, or one interleaved frame).
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.payload[..]].concat()
    }
}

/// Packets for one destination, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Session id (selects the UDP sockets).
    pub session: String,
    /// Where they go.
    pub to: Destination,
    /// The packets.
    pub packets: Vec<Packet>,
}

/// What the edge must do. [`MediaCore::poll_output`] returns these until it returns
/// [`Output::Timeout`], which means "nothing more until the next input or that time".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Nothing more to do now; feed [`Input::Timeout`] at this time at the latest.
    Timeout(Instant),
    /// Send packets.
    Transmit(Transmit),
    /// Start delivering the session's stream as [`Input::AccessUnit`] with `generation`.
    Subscribe {
        /// Session id.
        session: String,
        /// Tag for the access units of this subscription; earlier ones are dropped.
        generation: u64,
    },
    /// Stop delivering the session's stream.
    Unsubscribe {
        /// Session id.
        session: String,
    },
    /// The session is over: forget it (protocol state, sockets, forwarder).
    Ended {
        /// Session id.
        session: String,
        /// Why.
        reason: EndReason,
    },
}

/// Sending state of one session.
#[derive(Debug)]
struct SessionMedia {
    packetizer: H264Packetizer,
    /// Added to presentation times to make RTP timestamps (RFC 3550 §5.1: random start).
    ts_offset: u32,
    transport: SessionTransport,
    playing: bool,
    /// (capture time µs, RTP timestamp) of the last access unit sent: the SR's NTP/RTP pair.
    last_pair: Option<(i64, u32)>,
    /// Presentation time of the last access unit sent.
    last_pts: Option<i64>,
    /// Bumped at each PLAY; access units of an earlier PLAY's forwarder are dropped.
    generation: u64,
    /// After PAUSE: resume only at a key frame later than this presentation time.
    resume_after: Option<i64>,
    /// A sender report goes out after the next access unit.
    sr_due: bool,
}

/// Random starting points of a new session's RTP stream (RFC 3550 §5.1).
#[derive(Clone, Copy, Debug)]
pub struct Seed {
    /// First sequence number.
    pub seq: u16,
    /// Offset added to presentation times.
    pub ts_offset: u32,
}

/// The media engine of one connection: see the module documentation.
#[derive(Debug)]
pub struct MediaCore {
    sessions: HashMap<String, SessionMedia>,
    max_payload: usize,
    report_interval: Duration,
    /// When every session's next sender report falls due (one schedule per connection).
    next_report: Instant,
    outputs: VecDeque<Output>,
}

impl MediaCore {
    /// An engine with no sessions. Sender reports fall due at `now` and every
    /// `report_interval` after it, each sent with a session's next access unit; PLAY also
    /// makes one due, so the first access unit after PLAY carries a report.
    pub fn new(now: Instant, max_payload: usize, report_interval: Duration) -> Self {
        MediaCore {
            sessions: HashMap::new(),
            max_payload,
            report_interval,
            next_report: now,
            outputs: VecDeque::new(),
        }
    }

    /// The sequence number and RTP timestamp PLAY announces in `RTP-Info` for `session`,
    /// whose stream currently starts at presentation time `first_pts`. A session seen for
    /// the first time starts its RTP stream from `seed`; a known one (PLAY after PAUSE)
    /// continues where it stopped.
    pub fn play_position(
        &mut self,
        session: &str,
        ssrc: u32,
        first_pts: i64,
        seed: Seed,
    ) -> (u16, u32) {
        let max_payload = self.max_payload;
        let m = self
            .sessions
            .entry(session.to_owned())
            .or_insert_with(|| SessionMedia {
                packetizer: H264Packetizer::new(ssrc, crate::PAYLOAD_TYPE, seed.seq, max_payload),
                ts_offset: seed.ts_offset,
                // Placeholder: nothing is sent before Input::Play sets the real one.
                transport: SessionTransport::Tcp { channels: (0, 1) },
                playing: false,
                last_pair: None,
                last_pts: None,
                generation: 0,
                resume_after: None,
                sr_due: true,
            });
        (
            m.packetizer.next_seq(),
            m.ts_offset.wrapping_add(first_pts as u32),
        )
    }

    /// The next thing the edge must do; [`Output::Timeout`] once everything is done.
    pub fn poll_output(&mut self) -> Output {
        self.outputs
            .pop_front()
            .unwrap_or(Output::Timeout(self.next_report))
    }

    /// Feeds one input; its results come out of [`MediaCore::poll_output`].
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Play { session, transport } => self.play(session, transport),
            Input::Pause { session } => {
                if let Some(m) = self.sessions.get_mut(session) {
                    m.playing = false;
                    m.resume_after = m.last_pts;
                    self.outputs.push_back(Output::Unsubscribe {
                        session: session.to_owned(),
                    });
                }
            }
            Input::Teardown { session } => self.end(session, EndReason::Teardown),
            Input::AccessUnit {
                session,
                generation,
                au,
            } => self.send(session, generation, au),
            Input::Rtcp { session, data } => {
                // RFC 3550 §6.6: a BYE means the client has left. Anything else (receiver
                // reports) only shows it is alive, which the session layer tracks.
                let bye = rtcp::parse_compound(data).is_ok_and(|packets| {
                    packets
                        .iter()
                        .any(|p| matches!(p, RtcpPacket::Goodbye { .. }))
                });
                if bye {
                    self.end(session, EndReason::Bye);
                }
            }
            Input::Timeout(now) => {
                if now >= self.next_report {
                    for m in self.sessions.values_mut() {
                        m.sr_due = true;
                    }
                    // One due mark however late the tick: reports are not worth a burst.
                    while self.next_report <= now {
                        self.next_report += self.report_interval.max(Duration::from_millis(1));
                    }
                }
            }
        }
    }

    fn play(&mut self, session: &str, transport: SessionTransport) {
        let Some(m) = self.sessions.get_mut(session) else {
            return; // PLAY always asks for its position first; nothing to play otherwise.
        };
        m.transport = transport;
        m.playing = true;
        m.sr_due = true;
        m.generation += 1;
        self.outputs.push_back(Output::Subscribe {
            session: session.to_owned(),
            generation: m.generation,
        });
    }

    fn end(&mut self, session: &str, reason: EndReason) {
        self.sessions.remove(session);
        self.outputs.push_back(Output::Ended {
            session: session.to_owned(),
            reason,
        });
    }

    fn send(&mut self, session: &str, generation: u64, au: &AccessUnit) {
        let Some(m) = self
            .sessions
            .get_mut(session)
            .filter(|m| m.playing && m.generation == generation)
        else {
            return; // Paused or gone: a stale frame from a stopped forwarder.
        };
        // After PAUSE and PLAY the new subscriber starts again at the current GOP, which may
        // repeat what was already sent: skip to the first key frame past it, so RTP timestamps
        // never go backwards and the decoder never sees a broken reference chain (RFC 7826
        // §13.5: a resumed stream continues its sequence numbers and timestamps).
        // (Only then: in decode order B-frames have non-increasing presentation times.)
        if let Some(after) = m.resume_after {
            if !(au.key && au.pts > after) {
                return;
            }
            m.resume_after = None;
        }
        m.last_pts = Some(au.pts);
        let ts = m.ts_offset.wrapping_add(au.pts as u32);
        let params = &au.params;
        // RFC 6184 §8.4: parameter sets in-band before each IDR so a receiver that missed the
        // SDP (or whose decoder reset) can start at any key frame.
        let has_ps = au
            .nal_units()
            .any(|n| matches!(n.first().map(|h| h & 0x1f), Some(7 | 8)));
        let in_band: Vec<&[u8]> = if au.key && !has_ps {
            vec![&params.sps[..], &params.pps[..]]
        } else {
            Vec::new()
        };
        let sources: [&Bytes; 3] = [&au.data, &params.sps, &params.pps];
        let channels = match m.transport {
            SessionTransport::Tcp { channels } => Some(channels),
            SessionTransport::Udp { .. } => None,
        };
        // Heads go into one buffer; payloads stay in the shared access unit.
        let mut heads = BytesMut::new();
        let mut parts: Vec<(std::ops::Range<usize>, Bytes)> = Vec::new();
        m.packetizer.packetize(
            ts,
            in_band.iter().copied().chain(au.nal_units()),
            |header, payload| {
                let start = heads.len();
                if let Some((rtp, _)) = channels {
                    // Packets are at most 65535 bytes (the packetizer's payload limit).
                    let Ok(frame) = interleaved_header(rtp, header.len() + payload.len()) else {
                        return;
                    };
                    heads.extend_from_slice(&frame);
                }
                heads.extend_from_slice(header);
                let payload = match locate(&sources, payload) {
                    Some(p) => p,
                    None => {
                        heads.extend_from_slice(payload);
                        Bytes::new()
                    }
                };
                parts.push((start..heads.len(), payload));
            },
        );
        m.last_pair = Some((au.capture_us, ts));
        let heads = heads.freeze();
        let mut packets: Vec<Packet> = parts
            .into_iter()
            .map(|(h, payload)| Packet {
                head: heads.slice(h),
                payload,
            })
            .collect();
        let report = m.sr_due.then(|| sender_report(m));
        match m.transport {
            SessionTransport::Tcp { channels } => {
                // The report rides in the same write as the access unit.
                if let Some(sr) = report {
                    if let Ok(frame) = interleaved_header(channels.1, sr.len()) {
                        packets.push(Packet {
                            head: Bytes::copy_from_slice(&frame),
                            payload: Bytes::from(sr),
                        });
                    }
                }
                self.outputs.push_back(Output::Transmit(Transmit {
                    session: session.to_owned(),
                    to: Destination::Interleaved,
                    packets,
                }));
            }
            SessionTransport::Udp { client, .. } => {
                self.outputs.push_back(Output::Transmit(Transmit {
                    session: session.to_owned(),
                    to: Destination::UdpRtp { port: client.0 },
                    packets,
                }));
                if let Some(sr) = report {
                    self.outputs.push_back(Output::Transmit(Transmit {
                        session: session.to_owned(),
                        to: Destination::UdpRtcp { port: client.1 },
                        packets: vec![Packet {
                            head: Bytes::new(),
                            payload: Bytes::from(sr),
                        }],
                    }));
                }
            }
        }
    }
}

/// The part of the access unit or of a parameter set that `payload` is, shared rather
/// than copied.
fn locate(sources: &[&Bytes; 3], payload: &[u8]) -> Option<Bytes> {
    let p = payload.as_ptr() as usize;
    sources.iter().find_map(|src| {
        let off = p.checked_sub(src.as_ptr() as usize)?;
        let end = off.checked_add(payload.len())?;
        (end <= src.len()).then(|| src.slice(off..end))
    })
}

/// RFC 3550 §6.4.1 sender report mapping the last access unit's capture time to its RTP
/// timestamp, so receivers can place frames on the wall clock.
fn sender_report(m: &mut SessionMedia) -> Vec<u8> {
    m.sr_due = false;
    let (capture_us, rtp_ts) = m.last_pair.unwrap_or((0, 0));
    let mut pkt = Vec::with_capacity(64);
    rtcp::write_sender_report(
        &mut pkt,
        m.packetizer.ssrc(),
        rtcp::ntp_from_unix_micros(capture_us),
        rtp_ts,
        m.packetizer.packet_count(),
        m.packetizer.octet_count(),
        CNAME,
    );
    pkt
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;

//! One viewer's WebRTC session: str0m's [`Rtc`] in sans-IO form plus the gate that decides
//! which of the hub's access units go out. No sockets, no clock: the edge feeds datagrams
//! and timeouts in and sends what [`Session::poll`] returns.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Mid, Pt};
use str0m::net::Transmit;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig, RtcError};
use vigil_media::audio::{AudioFrame, AudioParams};
use vigil_media::{AccessUnit, StreamParams};

use crate::audio::{g711_codec, G711Track};
use crate::check::{check_stream, Declined};
use crate::gate::Gate;

/// How long a session may take from the answer to a connected ICE pair before it is
/// dropped: a browser that reaches a host candidate connects in well under a second; one
/// that cannot reach any never will, and holds a session slot until then.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Payload types in the answer. RFC 3551 §6 leaves 96-127 dynamic; any free pair works,
/// str0m rewrites them to the offer's numbers when it matches the codec.
const PT_H264: u8 = 102;
const PT_RTX: u8 = 103;

/// Label of the data channel on which a session tells the viewer each frame's capture time
/// (docs/webrtc.md, "Latency from the capture time"). The browser opens it in its offer.
pub const CAPTURE_TIME_CHANNEL: &str = "vigil-capture-time";

/// Why a session could not be set up or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream cannot be passed through to a browser.
    #[error(transparent)]
    Declined(#[from] Declined),
    /// The offer has no video section str0m could match with the camera's H.264 profile.
    #[error(
        "the offer does not accept the camera's H.264 profile {0:06x} in packetization mode 1"
    )]
    NoMatchingCodec(u32),
    /// A host candidate address was refused (e.g. unspecified).
    #[error("host candidate {0} refused: {1}")]
    Candidate(SocketAddr, String),
    /// The answer did not parse back after its rejected sections got a format.
    #[error("WebRTC answer: {0}")]
    Answer(String),
    /// str0m refused the offer or failed while running.
    #[error("WebRTC: {0}")]
    Rtc(#[from] RtcError),
}

/// What the edge does next for a session.
#[derive(Debug)]
pub enum Poll {
    /// Send this datagram.
    Transmit(Transmit),
    /// Nothing to send: call [`Session::handle_timeout`] at this instant, or earlier when a
    /// datagram for this session arrives.
    Wait(Instant),
    /// ICE and DTLS are up: subscribe to the hub now, so the viewer starts on the hub's
    /// current key frame (str0m drops media written before this point).
    Connected,
    /// The session is over (peer gone, ICE failed or timed out); drop it.
    Closed,
}

/// One viewer of one camera stream over WebRTC.
pub struct Session {
    rtc: Rtc,
    video: Option<(Mid, Pt)>,
    /// The accepted G.711 audio section, if the offer could receive the hub's codec.
    audio: Option<(Mid, Pt, G711Track)>,
    gate: Gate,
    annexb: Vec<u8>,
    connect_deadline: Option<Instant>,
    closed: bool,
    frames_sent: u64,
    audio_frames_sent: u64,
    /// The time of the latest input: str0m's events carry none.
    now: Instant,
    /// The viewer's [`CAPTURE_TIME_CHANNEL`], once open.
    capture_channel: Option<ChannelId>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("video", &self.video)
            .field("audio", &self.audio.as_ref().map(|(mid, pt, _)| (mid, pt)))
            .field("connected", &self.connect_deadline.is_none())
            .field("closed", &self.closed)
            .field("frames_sent", &self.frames_sent)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Answers a (checked, see [`crate::check_offer`]) offer for a stream with `params`,
    /// offering `candidates` as host candidates (RFC 8445 §5.1.1.1): the addresses of the
    /// shared UDP socket the client can reach.
    ///
    /// The answer advertises exactly the camera's `profile-level-id` (RFC 6184 §8.1), so
    /// the browser knows truthfully what it will decode.
    pub fn accept(
        offer: SdpOffer,
        params: &StreamParams,
        candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<(Session, SdpAnswer), SessionError> {
        Session::accept_with_reflexive(offer, params, candidates, &[], now)
    }

    /// [`Session::accept`], also offering server-reflexive candidates (RFC 8445 §5.1.1.2):
    /// `(public address, base)` pairs, the base being the host candidate the mapping was
    /// learnt from. Behind a NAT this is the address a viewer's TURN relay can reach.
    pub fn accept_with_reflexive(
        offer: SdpOffer,
        params: &StreamParams,
        candidates: &[SocketAddr],
        reflexive: &[(SocketAddr, SocketAddr)],
        now: Instant,
    ) -> Result<(Session, SdpAnswer), SessionError> {
        Session::accept_with_audio(offer, params, None, candidates, reflexive, now)
    }

    /// [`Session::accept_with_reflexive`] for a stream whose hub carries audio with
    /// `audio` parameters (the latest frame's, [`vigil_hub::Hub::audio_params`]).
    ///
    /// G.711 (PCMU or PCMA, 8000 Hz mono) is offered in exactly that codec, with its static
    /// payload type (RFC 3551 §6), so an offer's audio section that can receive it is
    /// accepted `sendonly`; [`Session::write_audio`] then sends the hub's frames. Any other
    /// audio (AAC; or no audio, or an offer without that codec) leaves the audio section
    /// rejected and the video plays alone: we never transcode.
    pub fn accept_with_audio(
        offer: SdpOffer,
        params: &StreamParams,
        audio: Option<&AudioParams>,
        candidates: &[SocketAddr],
        reflexive: &[(SocketAddr, SocketAddr)],
        now: Instant,
    ) -> Result<(Session, SdpAnswer), SessionError> {
        check_stream(params)?;
        crate::install_crypto();
        let [p, c, l] = params.profile_level_id();
        let plid = u32::from_be_bytes([0, p, c, l]);
        let mut config = RtcConfig::new().clear_codecs();
        config
            .codec_config()
            .add_h264(PT_H264.into(), Some(PT_RTX.into()), true, plid);
        let g711 = audio.and_then(g711_codec);
        // No RED (RFC 2198): it would send each sample twice, and the camera's G.711 is
        // passed through as it comes.
        match g711 {
            Some(RtcCodec::PCMU) => config.codec_config().enable_pcmu(true, false),
            Some(RtcCodec::PCMA) => config.codec_config().enable_pcma(true, false),
            _ => {}
        }
        let mut rtc = config.build(now);
        for addr in candidates {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| SessionError::Candidate(*addr, e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        for (addr, base) in reflexive {
            let c = Candidate::server_reflexive(*addr, *base, "udp")
                .map_err(|e| SessionError::Candidate(*addr, e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        let answer = with_placeholder_formats(rtc.sdp_api().accept_offer(offer)?)?;
        let mut session = Session {
            rtc,
            video: None,
            audio: None,
            gate: Gate::new(),
            annexb: Vec::new(),
            connect_deadline: Some(now + ICE_TIMEOUT),
            closed: false,
            frames_sent: 0,
            audio_frames_sent: 0,
            now,
            capture_channel: None,
        };
        // str0m reports accepted media as events only once the session runs; the answer
        // already says which video section we send on, so a mismatch is known before the
        // answer goes out.
        let sdp = answer.to_sdp_string();
        session.video = sending_mid(&sdp, "video").and_then(|mid| {
            let pt = session
                .rtc
                .writer(mid)
                .and_then(|w| h264_pt(w.payload_params()));
            pt.map(|pt| (mid, pt))
        });
        if session.video.is_none() {
            return Err(SessionError::NoMatchingCodec(plid));
        }
        if let Some(codec) = g711 {
            session.audio = sending_mid(&sdp, "audio").and_then(|mid| {
                let pt = session.rtc.writer(mid).and_then(|w| {
                    w.payload_params()
                        .find(|p| p.spec().codec == codec)
                        .map(|p| p.pt())
                });
                pt.map(|pt| (mid, pt, G711Track::new(codec)))
            });
        }
        Ok((session, answer))
    }

    /// Whether `input` (a datagram on the shared socket) belongs to this session: str0m
    /// matches ICE credentials and the remote address of the selected pair.
    pub fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
    }

    /// Feeds a datagram or a timeout.
    pub fn handle_input(&mut self, input: Input) -> Result<(), SessionError> {
        let now = match &input {
            Input::Timeout(now) | Input::Receive(now, _) => *now,
        };
        self.now = self.now.max(now);
        if self.connect_deadline.is_some_and(|d| now >= d) {
            self.closed = true;
        }
        self.rtc.handle_input(input)?;
        Ok(())
    }

    /// Feeds the timeout from [`Poll::Wait`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.handle_input(Input::Timeout(now))
    }

    /// The next thing to do; call until it returns [`Poll::Wait`].
    pub fn poll(&mut self) -> Result<Poll, SessionError> {
        loop {
            if self.closed || !self.rtc.is_alive() {
                self.closed = true;
                return Ok(Poll::Closed);
            }
            match self.rtc.poll_output()? {
                Output::Transmit(t) => return Ok(Poll::Transmit(t)),
                Output::Timeout(t) => {
                    // Wake for the connect deadline too, even if str0m would sleep longer.
                    let wake = self.connect_deadline.map_or(t, |d| t.min(d));
                    return Ok(Poll::Wait(wake));
                }
                Output::Event(e) => {
                    if let Some(p) = self.handle_event(e) {
                        return Ok(p);
                    }
                }
            }
        }
    }

    fn handle_event(&mut self, e: Event) -> Option<Poll> {
        match e {
            Event::Connected => {
                self.connect_deadline = None;
                Some(Poll::Connected)
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.closed = true;
                Some(Poll::Closed)
            }
            Event::KeyframeRequest(_) => {
                self.gate.keyframe_requested(self.now);
                None
            }
            Event::ChannelOpen(id, label) if label == CAPTURE_TIME_CHANNEL => {
                self.capture_channel = Some(id);
                None
            }
            Event::ChannelClose(id) if self.capture_channel == Some(id) => {
                self.capture_channel = None;
                None
            }
            _ => None,
        }
    }

    /// Sends one access unit from the hub, if the gate admits it: SPS and PPS in front of
    /// every key frame (so a decoder can start on any of them, RFC 6184 §8.4), Annex B as
    /// str0m's packetizer expects. Returns whether it was sent.
    ///
    /// `wall_us` is the server's wall clock now (µs since the epoch): with the frame's RTP
    /// timestamp and capture time it goes to the viewer on [`CAPTURE_TIME_CHANNEL`] when
    /// that is open, so the page can show the latency from the capture time.
    pub fn write(
        &mut self,
        au: &AccessUnit,
        now: Instant,
        wall_us: i64,
    ) -> Result<bool, SessionError> {
        let Some((mid, pt)) = self.video else {
            return Ok(false);
        };
        if self.connect_deadline.is_some() || !self.gate.admit(au.key) {
            return Ok(false);
        }
        au.write_decoder_input(&mut self.annexb);
        let rtp_time = self.gate.rtp_time(au.pts);
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(false);
        };
        // str0m copies into its own Arc<[u8]>; one copy per viewer per frame.
        writer.write(pt, now, rtp_time, self.annexb.as_slice())?;
        self.frames_sent += 1;
        if let Some(id) = self.capture_channel {
            if let Some(mut ch) = self.rtc.channel(id) {
                // str0m puts `rtp_time` as is in the RTP header's 32-bit timestamp
                // (RFC 3550 §5.1), which the browser reports per frame
                // (requestVideoFrameCallback's `rtpTimestamp`). A full SCTP buffer (a viewer
                // that cannot keep up) loses the message: the next frame carries its own.
                let rtp = rtp_time.numer() as u32;
                let msg = capture_message(rtp, au.capture_us, wall_us);
                let _accepted = ch.write(false, msg.as_bytes())?;
            }
        }
        Ok(true)
    }

    /// Whether the answer accepted an audio section: the hub's audio frames should go to
    /// [`Session::write_audio`].
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Sends one audio frame from the hub on the accepted audio section, untouched (split
    /// into packets of at most [`crate::audio::MAX_G711_PAYLOAD`] bytes, each with the RTP
    /// time of its first sample, 8 kHz). Returns whether anything was sent: nothing
    /// before ICE and DTLS are up, without an audio section, or for a frame of another
    /// codec than the answer's.
    pub fn write_audio(&mut self, frame: &AudioFrame, now: Instant) -> Result<bool, SessionError> {
        if self.connect_deadline.is_some() {
            return Ok(false);
        }
        let Some((mid, pt, track)) = &mut self.audio else {
            return Ok(false);
        };
        let mut sent = false;
        for (rtp_time, payload) in track.packets(frame) {
            let Some(writer) = self.rtc.writer(*mid) else {
                return Ok(false);
            };
            writer.write(*pt, now, rtp_time, payload)?;
            sent = true;
        }
        if sent {
            self.audio_frames_sent += 1;
        }
        Ok(sent)
    }

    /// Audio frames sent so far.
    pub fn audio_frames_sent(&self) -> u64 {
        self.audio_frames_sent
    }

    /// Replaces the connect deadline ([`ICE_TIMEOUT`] after `accept`) with `timeout` after
    /// `now`; no effect once connected.
    pub fn set_connect_timeout(&mut self, timeout: Duration, now: Instant) {
        if self.connect_deadline.is_some() {
            self.connect_deadline = Some(now + timeout);
        }
    }

    /// Ends the session (WHEP DELETE): str0m stops; the next [`Session::poll`] returns
    /// [`Poll::Closed`].
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.closed = true;
    }

    /// Access units sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Key-frame requests (PLI/FIR) received, after debouncing.
    pub fn keyframe_requests(&self) -> u64 {
        self.gate.keyframe_requests()
    }
}

/// One message of [`CAPTURE_TIME_CHANNEL`] (text, JSON): the frame's RTP timestamp, its
/// capture time and the server's clock when sent (µs since the epoch; the page estimates
/// its clock offset from the latter, as over the live WebSocket).
fn capture_message(rtp: u32, capture_us: i64, server_time_us: i64) -> String {
    format!(r#"{{"rtp":{rtp},"capture_us":{capture_us},"server_time_us":{server_time_us}}}"#)
}

/// Gives each format-less `m=` line of `answer` the placeholder format `0`.
///
/// str0m rejects a section it has no codec for (port 0, RFC 3264 §6: an offered audio
/// section of a stream without G.711) but leaves its format list empty, which RFC 4566 §5.14
/// does not allow: browsers then refuse the whole answer ("Failed to parse
/// SessionDescription") and the video would not play either. The section stays rejected,
/// so the placeholder is never used.
fn with_placeholder_formats(answer: SdpAnswer) -> Result<SdpAnswer, SessionError> {
    let sdp = answer.to_sdp_string();
    let formatless = |l: &str| l.starts_with("m=") && l.split_whitespace().count() < 4;
    if !sdp.lines().any(formatless) {
        return Ok(answer);
    }
    let fixed: String = sdp
        .lines()
        .map(|l| match formatless(l) {
            true => format!("{} 0\r\n", l.trim_end()),
            false => format!("{l}\r\n"),
        })
        .collect();
    SdpAnswer::from_sdp_string(&fixed).map_err(|e| SessionError::Answer(e.to_string()))
}

/// The `a=mid` (RFC 8843 §15) of the first `kind` (`video`, `audio`) section of an answer
/// that we send on: accepted (port not 0, RFC 3264 §6) and `sendonly` or `sendrecv`.
fn sending_mid(answer: &str, kind: &str) -> Option<Mid> {
    let open = format!("m={kind} ");
    let rejected = format!("m={kind} 0 ");
    let mut in_section = false;
    let mut mid = None;
    let mut sending = false;
    for line in answer.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            if in_section && sending {
                return mid;
            }
            in_section = line.starts_with(&open) && !line.starts_with(&rejected);
            mid = None;
            sending = false;
        } else if in_section {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(Mid::from(m));
            } else if line == "a=sendonly" || line == "a=sendrecv" {
                sending = true;
            }
        }
    }
    if in_section && sending {
        mid
    } else {
        None
    }
}

/// The payload type of H.264 in packetization mode 1 among a section's negotiated ones.
fn h264_pt<'a>(mut params: impl Iterator<Item = &'a str0m::format::PayloadParams>) -> Option<Pt> {
    params
        .find(|p| p.spec().codec == RtcCodec::H264 && p.spec().format.packetization_mode == Some(1))
        .map(|p| p.pt())
}

#[cfg(test)]
#[path = "session_audio_tests.rs"]
mod audio_tests;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use str0m::media::{Direction, KeyframeRequestKind, MediaKind};
    use str0m::net::{Protocol, Receive};
    use vigil_media::Codec;

    use super::*;

    /// A minimal constrained-baseline SPS (ITU-T H.264 §7.3.2.1.1) for 320x240, profile
    /// 42e01e.
    pub(super) fn params() -> Arc<StreamParams> {
        let sps = crate::check::tests::sps(66, 0xe0, 2);
        assert_eq!(sps[1..4], [0x42, 0xe0, 30]);
        Arc::new(StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::from(sps),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 320,
            height: 240,
            fps: Some(25.0),
        })
    }

    pub(super) fn au(params: &Arc<StreamParams>, n: i64, key: bool) -> AccessUnit {
        let nal: Vec<u8> = if key {
            [&[0x65u8, 0x88][..], &[n as u8; 3000]].concat()
        } else {
            [&[0x41u8, 0x9a][..], &[n as u8; 400]].concat()
        };
        AccessUnit {
            params: params.clone(),
            pts: 1_000_000 + n * 3600,
            capture_us: 0,
            key,
            data: vigil_media::h264::avcc_from_nals([nal.as_slice()]).into(),
        }
    }

    fn deliver(to: &mut Rtc, t: &Transmit, now: Instant) {
        let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
            .expect("a datagram str0m made parses");
        to.handle_input(Input::Receive(now, r))
            .expect("client takes input");
    }

    /// Two real str0m peers over an in-memory network: the browser's part is played by a
    /// str0m client with a recvonly H.264 section. The viewer gets nothing before the first
    /// key frame, and that key frame comes with SPS and PPS in front. A PLI makes the
    /// session skip to the next key frame.
    #[test]
    fn str0m_client_starts_on_key_frame_and_pli_skips_to_the_next() {
        crate::install_crypto();
        let t0 = Instant::now();
        let client_addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let server_addr: SocketAddr = "127.0.0.1:6000".parse().expect("addr");
        let mut client = RtcConfig::new().clear_codecs().enable_h264(true).build(t0);
        client.add_local_candidate(Candidate::host(client_addr, "udp").expect("cand"));
        let mut api = client.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let offer = crate::check_offer(&offer.to_sdp_string()).expect("offer passes checks");
        let params = params();
        let (mut server, answer) =
            Session::accept(offer, &params, &[server_addr], t0).expect("accepted");
        assert!(answer.to_sdp_string().contains("profile-level-id=42e01e"));
        client
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");

        let mut now = t0;
        let mut connected_at = None;
        let mut received: Vec<Vec<u8>> = Vec::new();
        let mut n = 0;
        let mut pli_sent = false;
        for _ in 0..2000 {
            loop {
                match client.poll_output().expect("client runs") {
                    Output::Transmit(t) => {
                        let input = Input::Receive(
                            now,
                            Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                                .expect("parses"),
                        );
                        assert!(server.accepts(&input));
                        server.handle_input(input).expect("server takes input");
                    }
                    Output::Timeout(_) => break,
                    Output::Event(Event::MediaData(d)) => received.push(d.data.to_vec()),
                    Output::Event(_) => {}
                }
            }
            loop {
                match server.poll().expect("server runs") {
                    Poll::Transmit(t) => deliver(&mut client, &t, now),
                    Poll::Wait(_) => break,
                    Poll::Connected => connected_at = Some(now),
                    Poll::Closed => panic!("session closed"),
                }
            }
            if received.len() >= 20 && !pli_sent {
                // The browser's decoder lost its references (RFC 4585 §6.3.1).
                client
                    .direct_api()
                    .stream_rx_by_mid(mid, None)
                    .expect("receive stream")
                    .request_keyframe(KeyframeRequestKind::Pli);
                pli_sent = true;
            }
            if connected_at.is_some() && received.len() < 40 {
                // Two P-frames before the first key frame: the gate must hold them back.
                let key = n % 10 == 2;
                server.write(&au(&params, n, key), now, 0).expect("write");
                n += 1;
            }
            if received.len() >= 40 {
                break;
            }
            now += Duration::from_millis(5);
            client
                .handle_input(Input::Timeout(now))
                .expect("client timeout");
            server.handle_timeout(now).expect("server timeout");
        }
        let connected_at = connected_at.expect("ICE and DTLS connected");
        assert!(connected_at - t0 < ICE_TIMEOUT);
        assert!(received.len() >= 40, "received {} frames", received.len());
        // First frame: SPS, PPS, IDR (Annex B as str0m's depacketizer hands it out).
        let first = &received[0];
        let nal_types: Vec<u8> = vigil_media::h264::split_annexb(first)
            .filter_map(vigil_media::h264::nal_type)
            .collect();
        assert_eq!(nal_types, [7, 8, 5], "first frame is SPS, PPS, IDR");
        // Every frame sent arrived, except perhaps the last one still in flight; the two
        // P-frames before the first key frame were never sent.
        assert!(server.frames_sent() - received.len() as u64 <= 1);
        assert_eq!(received.len(), 40);
        // After the PLI the gate dropped P-frames up to the hub's next key frame: the frame
        // numbers (each frame's fill byte) have exactly one gap, and it ends on a key frame.
        assert_eq!(server.keyframe_requests(), 1);
        let numbers: Vec<u8> = received.iter().filter_map(|f| f.last().copied()).collect();
        let gaps: Vec<(u8, u8)> = numbers
            .windows(2)
            .filter(|w| w[1] != w[0].wrapping_add(1))
            .map(|w| (w[0], w[1]))
            .collect();
        assert_eq!(gaps.len(), 1, "one gap, after the PLI: {numbers:?}");
        assert_eq!(gaps[0].1 % 10, 2, "resumes on a key frame: {numbers:?}");
    }
    /// The capture-time channel: a viewer that opens it gets, for every frame, its RTP
    /// timestamp exactly as in the frame's RTP header and its capture time, so the page can
    /// look up each displayed frame's capture time.
    #[test]
    fn capture_time_channel_names_each_frames_rtp_timestamp() {
        crate::install_crypto();
        let t0 = Instant::now();
        let client_addr: SocketAddr = "127.0.0.1:5001".parse().expect("addr");
        let server_addr: SocketAddr = "127.0.0.1:6001".parse().expect("addr");
        let mut client = RtcConfig::new().clear_codecs().enable_h264(true).build(t0);
        client.add_local_candidate(Candidate::host(client_addr, "udp").expect("cand"));
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_channel(CAPTURE_TIME_CHANNEL.to_string());
        let (offer, pending) = api.apply().expect("an offer");
        let offer = crate::check_offer(&offer.to_sdp_string()).expect("offer passes checks");
        let params = params();
        let (mut server, answer) =
            Session::accept(offer, &params, &[server_addr], t0).expect("accepted");
        client
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");

        let mut now = t0;
        let mut connected = false;
        let mut rtp_times: Vec<u64> = Vec::new();
        let mut messages: Vec<String> = Vec::new();
        let mut n = 0i64;
        for _ in 0..3000 {
            loop {
                match client.poll_output().expect("client runs") {
                    Output::Transmit(t) => deliver_server(&mut server, &t, now),
                    Output::Timeout(_) => break,
                    Output::Event(Event::MediaData(d)) => rtp_times.push(d.time.numer()),
                    Output::Event(Event::ChannelData(d)) => {
                        messages.push(String::from_utf8(d.data).expect("text"));
                    }
                    Output::Event(_) => {}
                }
            }
            loop {
                match server.poll().expect("server runs") {
                    Poll::Transmit(t) => deliver(&mut client, &t, now),
                    Poll::Wait(_) => break,
                    Poll::Connected => connected = true,
                    Poll::Closed => panic!("session closed"),
                }
            }
            // Frames only once the channel is open, so every one has its message.
            if connected && server.capture_channel.is_some() && n < 30 {
                let mut a = au(&params, n, n % 10 == 0);
                a.capture_us = 1_700_000_000_000_000 + n * 66_666;
                server.write(&a, now, 1_800_000_000_000_000).expect("write");
                n += 1;
            }
            if n == 30 && messages.len() >= 30 && rtp_times.len() >= 29 {
                break;
            }
            now += Duration::from_millis(5);
            client
                .handle_input(Input::Timeout(now))
                .expect("client timeout");
            server.handle_timeout(now).expect("server timeout");
        }
        assert_eq!(messages.len(), 30, "messages: {messages:?}");
        assert!(rtp_times.len() >= 29, "frames: {rtp_times:?}");
        for (i, rtp) in rtp_times.iter().enumerate() {
            let i = i as i64;
            let want = format!(
                r#"{{"rtp":{rtp},"capture_us":{},"server_time_us":1800000000000000}}"#,
                1_700_000_000_000_000 + i * 66_666
            );
            assert!(messages.contains(&want), "no {want} in {messages:?}");
        }
    }

    fn deliver_server(to: &mut Session, t: &Transmit, now: Instant) {
        let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
            .expect("a datagram str0m made parses");
        to.handle_input(Input::Receive(now, r))
            .expect("server takes input");
    }
}

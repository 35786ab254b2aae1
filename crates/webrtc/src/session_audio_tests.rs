//! G.711 pass-through in a [`Session`], with a real str0m peer in the browser's role: the
//! answer's audio section, and the audio the client depacketizes.

use std::sync::Arc;

use bytes::Bytes;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use vigil_media::audio::AudioCodec;

use super::*;

fn audio_params(codec: AudioCodec) -> AudioParams {
    AudioParams {
        codec,
        sample_rate: 8000,
        channels: 1,
    }
}

fn aac() -> AudioParams {
    audio_params(AudioCodec::Aac {
        config: Bytes::from_static(&[0x15, 0x88]),
    })
}

/// A client offering recvonly video (H.264) and recvonly audio with Opus, and PCMU and
/// PCMA as chosen (browsers offer all three, RFC 7874 §3).
fn client(
    addr: &str,
    pcmu: bool,
    pcma: bool,
) -> (Rtc, Mid, SdpOffer, str0m::change::SdpPendingOffer) {
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .enable_pcmu(pcmu, false)
        .enable_pcma(pcma, false)
        .build(Instant::now());
    let addr: SocketAddr = addr.parse().expect("addr");
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("cand"));
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    let offer = crate::check_offer(&offer.to_sdp_string()).expect("offer passes checks");
    (rtc, audio, offer, pending)
}

/// The answer's audio section: its `m=` line and whether it is rejected (port 0) or
/// carries no media our way (`inactive`/`recvonly`).
fn audio_section(answer: &str) -> (String, bool) {
    let mut lines = answer.lines().skip_while(|l| !l.starts_with("m=audio"));
    let m = lines
        .next()
        .expect("an audio section in the answer")
        .to_owned();
    let attrs: Vec<&str> = lines.take_while(|l| !l.starts_with("m=")).collect();
    let off = m.starts_with("m=audio 0 ")
        || attrs
            .iter()
            .any(|a| *a == "a=inactive" || *a == "a=recvonly");
    (m, off)
}

fn answer(audio: Option<&AudioParams>, pcmu: bool, pcma: bool) -> (Session, String) {
    let (mut rtc, _, offer, pending) = client("127.0.0.1:5002", pcmu, pcma);
    let server: SocketAddr = "127.0.0.1:6002".parse().expect("addr");
    let params = super::tests::params();
    let (session, answer) =
        Session::accept_with_audio(offer, &params, audio, &[server], &[], Instant::now())
            .expect("accepted");
    let sdp = answer.to_sdp_string();
    // The client takes the answer as it goes out, rejected sections included.
    let answer = SdpAnswer::from_sdp_string(&sdp).expect("the answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("the client accepts the answer");
    (session, sdp)
}

/// A PCMU stream: the audio section is accepted `sendonly` with PCMU on its static payload
/// type 0 alone (RFC 3551 §6), no Opus, no PCMA.
#[test]
fn pcmu_stream_answers_audio_with_pcmu_alone() {
    let (session, sdp) = answer(Some(&audio_params(AudioCodec::Pcmu)), true, true);
    let (m, off) = audio_section(&sdp);
    assert!(!off, "{sdp}");
    assert!(m.ends_with(" 0"), "only payload type 0: {m}");
    assert!(sdp.contains("a=rtpmap:0 PCMU/8000"), "{sdp}");
    assert!(!sdp.contains("PCMA") && !sdp.contains("opus"), "{sdp}");
    assert!(session.has_audio());
    // PCMA likewise, on 8.
    let (session, sdp) = answer(Some(&audio_params(AudioCodec::Pcma)), true, true);
    assert!(sdp.contains("a=rtpmap:8 PCMA/8000"), "{sdp}");
    assert!(!sdp.contains("PCMU"), "{sdp}");
    assert!(session.has_audio());
}

/// AAC (never transcoded), no audio, or an offer without the stream's G.711 law: the audio
/// section is turned down and the video is answered as before.
#[test]
fn audio_is_rejected_for_aac_no_audio_or_another_law() {
    let cases = [
        ("aac", Some(aac()), true, true),
        ("none", None, true, true),
        (
            "pcma offer, pcmu stream",
            Some(audio_params(AudioCodec::Pcmu)),
            false,
            true,
        ),
    ];
    for (name, audio, pcmu, pcma) in cases {
        let (session, sdp) = answer(audio.as_ref(), pcmu, pcma);
        let (m, off) = audio_section(&sdp);
        assert!(off, "{name}: audio not turned down: {m}\n{sdp}");
        // Rejected with a format (RFC 4566 §5.14): browsers refuse an answer without one.
        assert_eq!(m.trim_end(), "m=audio 0 UDP/TLS/RTP/SAVPF 0", "{name}");
        assert!(!session.has_audio(), "{name}");
        assert!(sdp.contains("H264/90000"), "{name}: {sdp}");
    }
}

/// Over ICE, DTLS and SRTP to a str0m client: each hub audio frame arrives as PCMU media,
/// bytes untouched, RTP time at 8 kHz advancing by each frame's samples; video alongside.
#[test]
fn str0m_client_receives_pcmu_frames_untouched() {
    crate::install_crypto();
    let t0 = Instant::now();
    let (mut client, audio_mid, offer, pending) = client("127.0.0.1:5003", true, true);
    let server_addr: SocketAddr = "127.0.0.1:6003".parse().expect("addr");
    let params = super::tests::params();
    let ap = Arc::new(audio_params(AudioCodec::Pcmu));
    let (mut server, answer) =
        Session::accept_with_audio(offer, &params, Some(&ap), &[server_addr], &[], t0)
            .expect("accepted");
    client
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");

    let mut now = t0;
    let mut connected = false;
    let mut audio: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut video = 0;
    let mut n = 0i64;
    for _ in 0..3000 {
        loop {
            match client.poll_output().expect("client runs") {
                Output::Transmit(t) => {
                    let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                        .expect("parses");
                    server
                        .handle_input(Input::Receive(now, r))
                        .expect("server takes input");
                }
                Output::Timeout(_) => break,
                Output::Event(Event::MediaData(d)) if d.mid == audio_mid => {
                    assert_eq!(d.params.spec().codec, RtcCodec::PCMU);
                    assert_eq!(*d.pt, 0);
                    audio.push((d.time.numer(), d.data.to_vec()));
                }
                Output::Event(Event::MediaData(_)) => video += 1,
                Output::Event(_) => {}
            }
        }
        loop {
            match server.poll().expect("server runs") {
                Poll::Transmit(t) => {
                    let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                        .expect("parses");
                    client
                        .handle_input(Input::Receive(now, r))
                        .expect("client takes input");
                }
                Poll::Wait(_) => break,
                Poll::Connected => connected = true,
                Poll::Closed => panic!("session closed"),
            }
        }
        if connected && n < 50 {
            // 20 ms of G.711 (160 samples), each frame filled with its own number; one
            // picture per two audio frames.
            let frame = AudioFrame {
                params: ap.clone(),
                pts: 80_000 + n * 160,
                capture_us: 0,
                duration: 160,
                data: Bytes::from(vec![n as u8; 160]),
            };
            assert!(server.write_audio(&frame, now).expect("write audio"));
            if n % 2 == 0 {
                let key = n % 20 == 0;
                server
                    .write(&super::tests::au(&params, n, key), now, 0)
                    .expect("write video");
            }
            n += 1;
        }
        if audio.len() >= 49 && n == 50 {
            break;
        }
        now += Duration::from_millis(5);
        client
            .handle_input(Input::Timeout(now))
            .expect("client timeout");
        server.handle_timeout(now).expect("server timeout");
    }
    assert_eq!(server.audio_frames_sent(), 50);
    assert!(audio.len() >= 49, "audio frames received: {}", audio.len());
    assert!(video >= 20, "video frames received: {video}");
    let first = audio[0].0;
    for (i, (time, data)) in audio.iter().enumerate() {
        assert_eq!(data.as_slice(), &[i as u8; 160][..], "frame {i} untouched");
        assert_eq!(time - first, i as u64 * 160, "frame {i}: RTP time at 8 kHz");
    }
}

//! The edge to retina: open one RTSP session (DESCRIBE, SETUP, PLAY) with bounded
//! timeouts, pick the streams to record, and turn retina's parameters into ours.

use std::sync::Arc;
use std::time::Duration;

use retina::client::{
    Credentials, Demuxed, InitialTimestampPolicy, PlayOptions, Session, SessionGroup,
    SessionOptions, SetupOptions,
};
use retina::codec::{
    FrameFormat, ParameterSetInsertion, ParametersRef, VideoParameters, VideoParametersCodec,
};
use vigil_media::StreamParams;

use super::backoff::Failure;
use super::config::{IngestConfig, Transport};
use vigil_media::audio::{AudioCodec, AudioParams};

/// Why a connection attempt or a session ended.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The RTSP exchange or the RTP stream failed (network, protocol, depacketization).
    #[error("RTSP: {0}")]
    Rtsp(#[source] retina::Error),
    /// The camera did not answer a request in time.
    #[error("{what} got no answer within {after:?}")]
    Timeout {
        /// The request.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The camera answered 401/403 even with the configured credentials.
    #[error("camera rejected the credentials (RTSP status {0}); check the user name and password")]
    Unauthorized(u16),
    /// The SDP offers no video stream Vigil can record.
    #[error("no H.264 or H.265 video stream in the camera's SDP (it offers: {0})")]
    NoVideo(String),
    /// The camera's video codec is neither H.264 nor H.265.
    #[error("unsupported video codec {0}: Vigil records H.264 and H.265; set the camera's stream to one of them")]
    UnsupportedCodec(String),
    /// The camera's parameter sets (VPS/SPS/PPS) could not be parsed.
    #[error("unusable video parameters from the camera: {0}")]
    BadParams(String),
    /// No video frame arrived for the stall timeout.
    #[error("no video frame for {0:?} (camera stalled or unreachable)")]
    Stalled(Duration),
    /// The camera ended the stream.
    #[error("camera closed the stream")]
    Closed,
}

impl IngestError {
    /// Whether retrying soon can help.
    pub(crate) fn failure(&self) -> Failure {
        match self {
            IngestError::Unauthorized(_)
            | IngestError::NoVideo(_)
            | IngestError::UnsupportedCodec(_) => Failure::Permanent,
            _ => Failure::Transient,
        }
    }
}

/// Maps a retina error, recognizing authentication failures (RFC 2326 §11.4.1).
fn rtsp_error(e: retina::Error) -> IngestError {
    match e.status_code() {
        Some(code @ (401 | 403)) => IngestError::Unauthorized(code),
        _ => IngestError::Rtsp(e),
    }
}

/// The streams of a presentation Vigil records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Picked {
    /// Index of the H.264 or H.265 video stream.
    pub video: usize,
    /// Index and codec of the audio stream, if any is recordable.
    pub audio: Option<(usize, AudioCodec)>,
}

/// Chooses the first H.264 or H.265 video stream and (if `want_audio`) the first AAC/G.711
/// audio stream from `(media, encoding name)` pairs as the SDP lists them (RFC 4566 §5.14).
pub(crate) fn pick_streams(
    streams: &[(&str, &str)],
    want_audio: bool,
) -> Result<Picked, IngestError> {
    let video = streams
        .iter()
        .position(|(m, e)| *m == "video" && matches!(*e, "h264" | "h265"));
    let Some(video) = video else {
        if let Some((_, enc)) = streams.iter().find(|(m, _)| *m == "video") {
            return Err(IngestError::UnsupportedCodec((*enc).to_owned()));
        }
        let offered: Vec<String> = streams.iter().map(|(m, e)| format!("{m}/{e}")).collect();
        let offered = if offered.is_empty() {
            "nothing".to_owned()
        } else {
            offered.join(", ")
        };
        return Err(IngestError::NoVideo(offered));
    };
    let audio = want_audio
        .then(|| {
            streams.iter().enumerate().find_map(|(i, (m, e))| {
                (*m == "audio")
                    .then(|| crate::audio::codec_of_encoding_name(e))
                    .flatten()
                    .map(|c| (i, c))
            })
        })
        .flatten();
    Ok(Picked { video, audio })
}

/// A playing session.
pub(crate) struct Connected {
    /// retina's demuxed frames.
    pub demuxed: Demuxed,
    /// Index of the video stream.
    pub video: usize,
    /// Index of the audio stream, if set up.
    pub audio: Option<usize>,
}

async fn bounded<T>(
    what: &'static str,
    after: Duration,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, IngestError> {
    tokio::time::timeout(after, f)
        .await
        .map_err(|_| IngestError::Timeout { what, after })?
        .map_err(rtsp_error)
}

/// DESCRIBE, SETUP (video, then audio), PLAY.
pub(crate) async fn connect(
    cfg: &IngestConfig,
    group: &Arc<SessionGroup>,
) -> Result<Connected, IngestError> {
    let creds = cfg.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: cfg.password.clone().unwrap_or_default(),
    });
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("vigil/{}", env!("CARGO_PKG_VERSION")))
        .session_group(group.clone());
    let t = cfg.request_timeout;
    let mut session = bounded("DESCRIBE", t, Session::describe(cfg.url.clone(), opts)).await?;
    let names: Vec<(String, String)> = session
        .streams()
        .iter()
        .map(|s| (s.media().to_owned(), s.encoding_name().to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = names
        .iter()
        .map(|(m, e)| (m.as_str(), e.as_str()))
        .collect();
    let picked = pick_streams(&refs, cfg.audio)?;

    // Access units as MP4 stores them: 4-byte lengths, raw AAC. Parameter sets are
    // repeated in each key frame (retina strips in-band ones and re-inserts its current
    // copy), so every GOP is decodable on its own, as the hub's consumers expect.
    let format = FrameFormat {
        parameter_set_insertion: ParameterSetInsertion::EachKeyFrame,
        ..FrameFormat::MP4
    };
    let setup = || {
        let transport = match cfg.transport {
            Transport::Tcp => retina::client::Transport::Tcp(Default::default()),
            Transport::Udp => retina::client::Transport::Udp(Default::default()),
        };
        SetupOptions::default()
            .transport(transport)
            .frame_format(format)
    };
    bounded("SETUP (video)", t, session.setup(picked.video, setup())).await?;
    let mut audio = None;
    if let Some((i, codec)) = &picked.audio {
        match tokio::time::timeout(t, session.setup(*i, setup())).await {
            Ok(Ok(())) => audio = Some(*i),
            // Video alone is still worth recording.
            Ok(Err(e)) => {
                tracing::warn!(stream = %cfg.name, error = %e, ?codec, "audio SETUP failed; recording video only")
            }
            Err(_) => {
                return Err(IngestError::Timeout {
                    what: "SETUP (audio)",
                    after: t,
                })
            }
        }
    }
    // Permissive: some cameras omit or botch RTP-Info's rtptime with two streams; we only
    // need each stream's own clock, and place both on the host's monotonic clock.
    let play = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
    let playing = bounded("PLAY", t, session.play(play)).await?;
    let demuxed = playing.demuxed().map_err(rtsp_error)?;
    Ok(Connected {
        demuxed,
        video: picked.video,
        audio,
    })
}

/// Our parameters from retina's, for H.264 and H.265.
pub(crate) fn video_params(p: &VideoParameters) -> Result<StreamParams, IngestError> {
    match p.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => vigil_media::h264::stream_params(sps, pps)
            .map_err(|e| IngestError::BadParams(e.to_string())),
        VideoParametersCodec::H265 { vps, sps, pps } => {
            vigil_media::h265::stream_params(vps, sps, pps)
                .map_err(|e| IngestError::BadParams(e.to_string()))
        }
        _ => Err(IngestError::UnsupportedCodec(p.rfc6381_codec().to_owned())),
    }
}

/// Our audio parameters from retina's; `codec` as picked from the SDP.
pub(crate) fn audio_params(codec: &AudioCodec, p: ParametersRef<'_>) -> Option<AudioParams> {
    let ParametersRef::Audio(a) = p else {
        return None;
    };
    let codec = match codec {
        AudioCodec::Aac { .. } => AudioCodec::Aac {
            config: bytes::Bytes::copy_from_slice(a.extra_data()),
        },
        other => other.clone(),
    };
    Some(AudioParams {
        codec,
        sample_rate: a.clock_rate(),
        channels: a.channels().get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_h264_video_and_a_recordable_audio_stream() {
        let s = [
            ("application", "vnd.onvif.metadata"),
            ("audio", "g726-32"),
            ("video", "h264"),
            ("audio", "pcma"),
            ("video", "h264"),
        ];
        let p = pick_streams(&s, true).unwrap();
        assert_eq!(p.video, 2);
        assert_eq!(p.audio, Some((3, AudioCodec::Pcma)));
        assert_eq!(pick_streams(&s, false).unwrap().audio, None);
    }

    #[test]
    fn h265_is_picked_like_h264() {
        let p = pick_streams(&[("audio", "pcmu"), ("video", "h265")], true).unwrap();
        assert_eq!(p.video, 1);
        assert_eq!(p.audio, Some((0, AudioCodec::Pcmu)));
    }

    #[test]
    fn other_video_codecs_are_refused_with_a_clear_permanent_error() {
        let err = pick_streams(&[("video", "jpeg"), ("audio", "pcmu")], true).unwrap_err();
        assert!(matches!(&err, IngestError::UnsupportedCodec(c) if c == "jpeg"));
        assert_eq!(err.failure(), Failure::Permanent);
        let msg = err.to_string();
        assert!(msg.contains("jpeg") && msg.contains("H.265"), "{msg}");
    }

    #[test]
    fn an_sdp_without_video_names_what_it_offers() {
        let err = pick_streams(&[("audio", "pcmu")], true).unwrap_err();
        assert!(err.to_string().contains("audio/pcmu"), "{err}");
        let err = pick_streams(&[], true).unwrap_err();
        assert!(err.to_string().contains("nothing"), "{err}");
    }

    #[test]
    fn network_trouble_is_transient() {
        assert_eq!(
            IngestError::Stalled(Duration::from_secs(4)).failure(),
            Failure::Transient
        );
        assert_eq!(IngestError::Closed.failure(), Failure::Transient);
        assert_eq!(IngestError::Unauthorized(401).failure(), Failure::Permanent);
    }
}

//! "Test camera" in the web app: connect to a spec's main stream with retina (DESCRIBE,
//! SETUP of the video stream, PLAY), wait for the first video frame, and report what the
//! recorder would get. Nothing is stored and the session is torn down afterwards.

use std::time::Duration;

use futures::StreamExt as _;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, ParametersRef};
use tokio::time::Instant;

use crate::{CameraSpec, NvrError, ProbeReport};

/// The whole test (connection, set-up and first frame) must finish within this.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Probes an already validated spec (URL without credentials).
pub(crate) async fn probe(spec: &CameraSpec) -> Result<ProbeReport, NvrError> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    match tokio::time::timeout_at(deadline, probe_inner(spec)).await {
        Ok(r) => r,
        Err(_) => Err(NvrError::Probe(format!(
            "no video frame within {} s",
            PROBE_TIMEOUT.as_secs()
        ))),
    }
}

async fn probe_inner(spec: &CameraSpec) -> Result<ProbeReport, NvrError> {
    let url = url::Url::parse(&spec.url).map_err(|e| NvrError::Invalid(e.to_string()))?;
    let creds = spec.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: spec
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
    });
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("vigil/{}", env!("CARGO_PKG_VERSION")));
    let mut session = Session::describe(url, opts).await.map_err(rtsp_error)?;
    let streams: Vec<(String, String)> = session
        .streams()
        .iter()
        .map(|s| (s.media().to_owned(), s.encoding_name().to_owned()))
        .collect();
    let video = streams
        .iter()
        .position(|(m, e)| m == "video" && matches!(e.as_str(), "h264" | "h265"))
        .ok_or_else(|| {
            let offered: Vec<String> = streams.iter().map(|(m, e)| format!("{m}/{e}")).collect();
            NvrError::Probe(format!(
                "no H.264 or H.265 video stream (the camera offers: {})",
                if offered.is_empty() {
                    "nothing".to_owned()
                } else {
                    offered.join(", ")
                }
            ))
        })?;
    let audio = streams
        .iter()
        .any(|(m, e)| m == "audio" && matches!(e.as_str(), "mpeg4-generic" | "pcmu" | "pcma"));
    let codec = streams
        .get(video)
        .map(|(_, e)| e.clone())
        .unwrap_or_default();
    let transport = match spec.transport {
        crate::Transport::Udp => retina::client::Transport::Udp(Default::default()),
        crate::Transport::Tcp => retina::client::Transport::Tcp(Default::default()),
    };
    session
        .setup(video, SetupOptions::default().transport(transport))
        .await
        .map_err(rtsp_error)?;
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(rtsp_error)?;
    let mut demuxed = playing.demuxed().map_err(rtsp_error)?;
    loop {
        match demuxed.next().await {
            Some(Ok(CodecItem::VideoFrame(f))) if f.stream_id() == video => {
                let dims = demuxed
                    .streams()
                    .get(video)
                    .and_then(|s| s.parameters())
                    .and_then(|p| match p {
                        ParametersRef::Video(v) => Some(v.pixel_dimensions()),
                        _ => None,
                    });
                let Some((width, height)) = dims else {
                    continue;
                };
                return Ok(ProbeReport {
                    codec,
                    width,
                    height,
                    audio,
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(rtsp_error(e)),
            None => return Err(NvrError::Probe("the camera ended the stream".into())),
        }
    }
}

/// A message for the user; authentication failures (RFC 2326 §11.4.1) said plainly.
fn rtsp_error(e: retina::Error) -> NvrError {
    match e.status_code() {
        Some(401 | 403) => NvrError::Probe(
            "the camera rejected the credentials; check the user name and password".into(),
        ),
        _ => NvrError::Probe(e.to_string()),
    }
}

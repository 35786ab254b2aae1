//! Camera thumbnails: the newest GOP of a stream's hub decoded (OpenH264, on the blocking
//! pool: a GOP of a 1080p stream is tens of milliseconds of CPU) and its last picture
//! encoded as JPEG.

use vigil_hub::Hub;

use crate::NvrError;

/// JPEG quality of snapshots: small files for a grid of thumbnails, still legible.
const QUALITY: u8 = 80;

/// A JPEG of the newest picture of `hub`.
pub(crate) async fn jpeg(camera: &str, hub: &Hub) -> Result<Vec<u8>, NvrError> {
    let gop = hub.gop();
    if gop.is_empty() {
        return Err(NvrError::Unavailable(format!(
            "camera {camera:?} has sent no picture yet"
        )));
    }
    if gop
        .first()
        .is_some_and(|au| au.params.codec != vigil_media::Codec::H264)
    {
        return Err(NvrError::Unavailable(format!(
            "camera {camera:?}: snapshots of H.265 streams are not supported; give it an H.264 sub stream"
        )));
    }
    let camera = camera.to_owned();
    tokio::task::spawn_blocking(move || vigil_camera::snapshot_jpeg(&gop, QUALITY))
        .await
        .map_err(|e| NvrError::Unavailable(format!("snapshot task failed: {e}")))?
        .map_err(|e| NvrError::Unavailable(format!("snapshot of {camera:?}: {e}")))
}

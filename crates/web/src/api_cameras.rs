//! Camera routes (list, get, add, edit, test, remove, snapshot) and `/api/system`.
//!
//! Camera passwords are write-only: no answer ever contains one (`has_password` says whether
//! one is set). Viewers only see the cameras they may view; the others are "not found".

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use vigil_nvr::{CameraSource, CameraSpec, CameraStatus, NvrError, ProbeReport};

use crate::auth::{AdminUser, Peer};
use crate::error::ApiError;
use crate::json_body::ApiJson;
use crate::onvif_routes::{self, DeviceRow, OnvifDevice};
use crate::state::{AppState, CurrentUser};

impl From<NvrError> for ApiError {
    fn from(e: NvrError) -> Self {
        match e {
            NvrError::Invalid(_) => ApiError::bad_request(e.to_string()),
            NvrError::NoSuchCamera(_) => ApiError::not_found(e.to_string()),
            NvrError::Exists(_) | NvrError::ReadOnly(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            NvrError::Probe(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            NvrError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

/// A camera as the API shows it: its spec without the password, `has_password`, `status`.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CameraView {
    /// The camera's spec; its password is never here.
    #[serde(flatten)]
    spec: CameraSpec,
    /// Whether a camera password is stored.
    has_password: bool,
    /// Live state.
    status: CameraStatus,
    /// The ONVIF device it was added from (XAddr, model, firmware), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    onvif: Option<OnvifDevice>,
}

/// The API's view of a camera ([`CameraView`]).
pub fn camera_view(spec: &CameraSpec, status: &CameraStatus, has_password: bool) -> CameraView {
    let mut spec = spec.clone();
    // Whatever the NVR hands us, the password never leaves (`None` is not serialized).
    let has_password = has_password || spec.password.take().is_some();
    CameraView {
        spec,
        has_password,
        status: status.clone(),
        onvif: None,
    }
}

/// [`camera_view`] with the camera's ONVIF record from `store`.
fn view_with(
    st: &AppState,
    store: &std::collections::BTreeMap<String, OnvifDevice>,
    spec: &CameraSpec,
    status: &CameraStatus,
) -> CameraView {
    let mut v = camera_view(spec, status, st.nvr.has_password(&spec.name));
    v.onvif = store.get(&spec.name).cloned();
    v
}

// The request body of `POST /api/cameras`, `PUT /api/cameras/{name}` and
// `POST /api/cameras/test`, for the OpenAPI document; the handlers read the JSON and check it
// with `spec_from`, which drops the read-only fields.
/// A camera; the read-only fields of an answer (`has_password`, `status`) may be sent back
/// and are ignored.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CameraBody {
    #[serde(flatten)]
    spec: CameraSpec,
    /// Ignored (read-only).
    has_password: Option<bool>,
    /// Ignored (read-only).
    status: Option<Value>,
    /// The ONVIF device the camera comes from (as `POST /api/onvif/device` read it); kept
    /// beside the camera, shown on the System page. Absent on `PUT`: the stored one stays.
    onvif: Option<OnvifDevice>,
}

/// A camera spec from a request body, and its ONVIF record if one is sent. The read-only
/// fields of [`camera_view`] (`has_password`, `status`) are dropped so a client may send back
/// what it got; anything else unknown is an error.
fn spec_from(mut v: Value) -> Result<(CameraSpec, Option<OnvifDevice>), ApiError> {
    let mut onvif = None;
    if let Some(o) = v.as_object_mut() {
        o.remove("has_password");
        o.remove("status");
        if let Some(d) = o.remove("onvif").filter(|d| !d.is_null()) {
            onvif = Some(serde_json::from_value(d).map_err(|e| {
                let msg: String = e.to_string().chars().take(200).collect();
                ApiError::bad_request(format!("invalid onvif: {msg}"))
            })?);
        }
    }
    let mut spec: CameraSpec = serde_json::from_value(v).map_err(|e| {
        let msg: String = e.to_string().chars().take(200).collect();
        ApiError::bad_request(format!("invalid camera: {msg}"))
    })?;
    // Cameras from the API are always the API's own (never "config").
    spec.source = CameraSource::Ui;
    Ok((spec, onvif))
}

/// `GET /api/cameras`.
pub async fn list(State(st): State<AppState>, user: CurrentUser) -> Json<Vec<CameraView>> {
    let store = onvif_routes::load(&st.data_dir);
    Json(
        st.nvr
            .cameras()
            .iter()
            .filter(|(s, _)| user.can_view(&s.name))
            .map(|(s, status)| view_with(&st, &store, s, status))
            .collect(),
    )
}

fn viewable(
    st: &AppState,
    user: &CurrentUser,
    name: &str,
) -> Result<(CameraSpec, CameraStatus), ApiError> {
    if !user.can_view(name) {
        return Err(ApiError::not_found("no such camera"));
    }
    st.nvr
        .camera(name)
        .ok_or_else(|| ApiError::not_found("no such camera"))
}

/// `GET /api/cameras/{name}`.
pub async fn get_one(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<CameraView>, ApiError> {
    let (spec, status) = viewable(&st, &user, &name)?;
    let store = onvif_routes::load(&st.data_dir);
    Ok(Json(view_with(&st, &store, &spec, &status)))
}

/// `GET /api/cameras/{name}/snapshot.jpg`.
pub async fn snapshot(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    viewable(&st, &user, &name)?;
    match st.nvr.snapshot_jpeg(&name).await {
        Ok(jpeg) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "image/jpeg")],
            Body::from(jpeg),
        )
            .into_response()),
        Err(NvrError::NoSuchCamera(_)) => Err(ApiError::not_found("no such camera")),
        Err(e) => {
            tracing::debug!(camera = %name.escape_debug(), error = %e, "snapshot unavailable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no picture yet",
            ))
        }
    }
}

/// `POST /api/cameras` → 201.
pub async fn add(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let (spec, onvif) = spec_from(body)?;
    let name = spec.name.clone();
    st.nvr.add_camera(spec).await?;
    st.accounts
        .audit(&admin.name, peer.0, "camera_added", &name);
    // A camera of the same name removed earlier may have left a record: replace it.
    onvif_routes::remember(&st, &peer, &name, onvif).await;
    let (spec, status) = st
        .nvr
        .camera(&name)
        .ok_or_else(|| ApiError::internal("camera vanished after adding"))?;
    let store = onvif_routes::load(&st.data_dir);
    Ok((
        StatusCode::CREATED,
        Json(view_with(&st, &store, &spec, &status)),
    )
        .into_response())
}

/// `PUT /api/cameras/{name}` (an absent password keeps the stored one).
pub async fn update(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<CameraView>, ApiError> {
    let (spec, onvif) = spec_from(body)?;
    if spec.name != name {
        return Err(ApiError::bad_request(
            "a camera cannot be renamed; add a new one",
        ));
    }
    st.nvr.update_camera(&name, spec).await?;
    st.accounts
        .audit(&admin.name, peer.0, "camera_changed", &name);
    if onvif.is_some() {
        onvif_routes::remember(&st, &peer, &name, onvif).await;
    }
    let (spec, status) = st
        .nvr
        .camera(&name)
        .ok_or_else(|| ApiError::not_found("no such camera"))?;
    let store = onvif_routes::load(&st.data_dir);
    Ok(Json(view_with(&st, &store, &spec, &status)))
}

/// `DELETE /api/cameras/{name}`.
pub async fn remove(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.nvr.remove_camera(&name).await?;
    st.accounts
        .audit(&admin.name, peer.0, "camera_removed", &name);
    onvif_routes::remember(&st, &peer, &name, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of `POST /api/cameras/test`: what the camera offers.
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub struct ProbeAnswer(ProbeReport);

/// `POST /api/cameras/test` → probe report, or 422 with the reason.
pub async fn test(
    State(st): State<AppState>,
    _a: AdminUser,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<ProbeAnswer>, ApiError> {
    let (spec, _) = spec_from(body)?;
    match st.nvr.probe_camera(&spec).await {
        Ok(report) => Ok(Json(ProbeAnswer(report))),
        Err(e @ (NvrError::Probe(_) | NvrError::Invalid(_))) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Free and total bytes of the filesystem holding `path`.
fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    let unit = s.f_frsize.max(1);
    Some((
        s.f_bavail.saturating_mul(unit),
        s.f_blocks.saturating_mul(unit),
    ))
}

/// Storage figures of `GET /api/system`.
#[derive(Serialize, JsonSchema)]
pub struct Storage {
    /// Bytes of recordings.
    pub used_bytes: u64,
    /// Free bytes of the data directory's filesystem (`null` when unknown).
    pub free_bytes: Option<u64>,
    /// Size of that filesystem (`null` when unknown).
    pub total_bytes: Option<u64>,
    /// The retention's size limit (`null`: none).
    pub max_bytes: Option<u64>,
}

/// Answer of `GET /api/system`.
#[derive(Serialize, JsonSchema)]
pub struct SystemStatus {
    /// Vigil's version.
    pub version: &'static str,
    /// Seconds since the web app started.
    pub uptime_s: u64,
    /// Recordings and disk space.
    pub storage: Storage,
    /// Status of the cameras the caller may view.
    pub cameras: Vec<CameraStatus>,
    /// Model and firmware of the cameras added over ONVIF that the caller may view, with
    /// firmware older than the camera's `min_firmware` flagged.
    pub onvif: Vec<DeviceRow>,
    /// What the rest of Vigil adds (e.g. `alerts`: the alert channels' state).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /api/system`.
pub async fn system(
    State(st): State<AppState>,
    user: CurrentUser,
) -> Result<Json<SystemStatus>, ApiError> {
    let rec = st.nvr.recorder().clone();
    let data_dir = st.data_dir.clone();
    let (used, space) = tokio::task::spawn_blocking(move || (rec.totals(), disk_space(&data_dir)))
        .await
        .map_err(ApiError::internal)?;
    let used = used.map_err(ApiError::internal)?.bytes;
    let max = st.nvr.recorder().retention().max_bytes;
    let cameras: Vec<CameraStatus> = st
        .nvr
        .cameras()
        .into_iter()
        .filter(|(s, _)| user.can_view(&s.name))
        .map(|(_, status)| status)
        .collect();
    let mut extra = match (st.status_extra)() {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    // The core fields are not overridable.
    for core in ["version", "uptime_s", "storage", "cameras", "onvif"] {
        extra.remove(core);
    }
    Ok(Json(SystemStatus {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: st.started.elapsed().as_secs(),
        storage: Storage {
            used_bytes: used,
            free_bytes: space.map(|s| s.0),
            total_bytes: space.map(|s| s.1),
            max_bytes: max,
        },
        cameras,
        onvif: onvif_routes::system_rows(&st.data_dir, |c| user.can_view(c)),
        extra,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camera_view_never_has_the_password() {
        let spec: CameraSpec = serde_json::from_value(json!({
            "name": "front", "url": "rtsp://cam/1", "username": "u", "password": "hunter2secret"
        }))
        .unwrap();
        let status = CameraStatus {
            name: "front".into(),
            streams: vec![],
            motion_active: false,
        };
        let v = serde_json::to_value(camera_view(&spec, &status, false)).unwrap();
        assert!(!v.to_string().contains("hunter2secret"));
        assert_eq!(v["has_password"], true);
        assert_eq!(v["status"]["name"], "front");
        // What the API returns can be sent back (read-only fields dropped), but nothing else unknown.
        let (back, onvif) = spec_from(v).unwrap();
        assert_eq!(back.password, None);
        assert_eq!(onvif, None);
        assert!(spec_from(json!({"name": "a", "url": "rtsp://x", "admin": true})).is_err());
        let (cfg, _) =
            spec_from(json!({"name": "a", "url": "rtsp://x", "source": "config"})).unwrap();
        assert_eq!(cfg.source, CameraSource::Ui);
    }

    #[test]
    fn disk_space_of_tmp() {
        let (free, total) = disk_space(std::path::Path::new("/")).unwrap();
        assert!(total > 0 && free <= total);
    }
}

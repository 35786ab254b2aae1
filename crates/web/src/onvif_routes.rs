//! The recorder side of ONVIF in the web API (admin only):
//! - `POST /api/discover`: a WS-Discovery Probe, and what answered;
//! - `POST /api/onvif/device`: reads a device's identity, profiles and stream URIs with the
//!   credentials given, so the UI fills in the add-camera form;
//! - the ONVIF store (`onvif_devices.json`): the XAddr, model and firmware of cameras added
//!   that way, shown in camera answers and on the System page, with a firmware older than
//!   the camera's `min_firmware` flagged.
//!
//! The camera credentials sent to `/api/onvif/device` are used for the SOAP exchange only:
//! never logged, never stored here, never in an answer (the add-camera form sends the
//! password again with `POST /api/cameras`, which stores it as it stores any camera's).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vigil_onvif::client::{ClientError, Login};

use crate::auth::{AdminUser, Peer};
use crate::json_body::ApiJson;
use crate::onvif_edge::{self, EdgeError};
use crate::{Access, ApiError, AppState, RouteDoc};

/// The ONVIF routes.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "POST",
        path: "/api/discover",
        access: Access::Admin,
        summary: "Send a WS-Discovery Probe (multicast, or unicast to `to`) and list the ONVIF \
                  devices that answered: {to?, timeout_s?}",
    },
    RouteDoc {
        method: "POST",
        path: "/api/onvif/device",
        access: Access::Admin,
        summary: "Read an ONVIF device's model, firmware, profiles and main/sub stream URIs: \
                  {xaddr, username, password}",
    },
];

/// The ONVIF routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/discover", post(discover))
        .route("/api/onvif/device", post(device))
}

/// Body of `POST /api/discover`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverBody {
    /// Send the Probe to this `ADDR:PORT` only (unicast) instead of 239.255.255.250:3702.
    #[serde(default)]
    pub to: Option<String>,
    /// Seconds to wait for answers, 0.1 to 10 (default 3).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// One device that answered the Probe.
#[derive(Serialize, JsonSchema)]
pub struct Discovered {
    /// Its WS-Addressing endpoint (`urn:uuid:…`), stable across restarts.
    pub endpoint: String,
    /// The `onvif://www.onvif.org/name/…` scope, decoded.
    pub name: Option<String>,
    /// The `onvif://www.onvif.org/hardware/…` scope, decoded.
    pub model: Option<String>,
    /// Every scope, as sent.
    pub scopes: Vec<String>,
    /// Device service addresses.
    pub xaddrs: Vec<String>,
    /// The address the answer came from.
    pub address: String,
    /// The configured camera that already uses this device's host, if any.
    pub added_as: Option<String>,
}

/// Decodes `%XX` escapes (RFC 3986 §2.1) of a scope's last segment; invalid escapes stay.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of an ONVIF scope `onvif://www.onvif.org/<kind>/<value>` (ONVIF Core §7.3.2.2).
fn scope_value(scopes: &[String], kind: &str) -> Option<String> {
    let prefix = format!("onvif://www.onvif.org/{kind}/");
    scopes
        .iter()
        .find_map(|s| s.strip_prefix(&prefix))
        .map(percent_decode)
}

/// The host of a URL (`scheme://[user@]host[:port]/…`), lower-case, without brackets.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `POST /api/discover`.
pub async fn discover(
    State(st): State<AppState>,
    _a: AdminUser,
    ApiJson(body): ApiJson<DiscoverBody>,
) -> Result<Json<Vec<Discovered>>, ApiError> {
    let to = match body.to.as_deref() {
        Some(t) => Some(
            t.parse::<SocketAddr>()
                .map_err(|_| ApiError::bad_request("`to` must be ADDR:PORT"))?,
        ),
        None => None,
    };
    let wait = body.timeout_s.unwrap_or(3.0);
    if !(0.1..=10.0).contains(&wait) {
        return Err(ApiError::bad_request(
            "timeout_s must be between 0.1 and 10",
        ));
    }
    let found = onvif_edge::probe(to, Duration::from_secs_f64(wait))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot send the WS-Discovery Probe: {e}"),
            )
        })?;
    // Which hosts configured cameras already use: their stream URLs and ONVIF XAddrs.
    let store = load(&st.data_dir);
    let mut used: Vec<(String, String)> = Vec::new();
    for (spec, _) in st.nvr.cameras() {
        for url in std::iter::once(&spec.url).chain(spec.sub_url.as_ref()) {
            if let Some(h) = host_of(url) {
                used.push((h, spec.name.clone()));
            }
        }
        if let Some(h) = store.get(&spec.name).and_then(|d| host_of(&d.xaddr)) {
            used.push((h, spec.name.clone()));
        }
    }
    let out = found
        .into_iter()
        .map(|(m, peer)| {
            let hosts: Vec<String> = m.xaddrs.iter().filter_map(|x| host_of(x)).collect();
            let added_as = used
                .iter()
                .find(|(h, _)| hosts.contains(h))
                .map(|(_, n)| n.clone());
            Discovered {
                name: scope_value(&m.scopes, "name"),
                model: scope_value(&m.scopes, "hardware"),
                endpoint: m.endpoint,
                scopes: m.scopes,
                xaddrs: m.xaddrs,
                address: peer.ip().to_string(),
                added_as,
            }
        })
        .collect();
    Ok(Json(out))
}

/// Body of `POST /api/onvif/device`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// The device service address (`http://host[:port]/onvif/device_service`).
    pub xaddr: String,
    /// The camera's ONVIF user.
    pub username: String,
    /// Its password (for a Vigil camera, the credential `vigil user onvif` printed).
    pub password: String,
}

/// One profile of the device.
#[derive(Serialize, JsonSchema)]
pub struct ProfileView {
    /// Profile token.
    pub token: String,
    /// Name.
    pub name: String,
    /// Video encoding (`H264`, …).
    pub encoding: Option<String>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
}

/// Answer of `POST /api/onvif/device`: what the add-camera form needs.
#[derive(Serialize, JsonSchema)]
pub struct DeviceAnswer {
    /// The device service address asked.
    pub xaddr: String,
    /// The media service address.
    pub media_xaddr: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Serial number.
    pub serial: String,
    /// The profiles, in the device's order.
    pub profiles: Vec<ProfileView>,
    /// Main stream RTSP URL (the largest resolution), without credentials.
    pub url: Option<String>,
    /// Sub stream RTSP URL (the next largest), without credentials.
    pub sub_url: Option<String>,
}

/// A URL without its `user:password@` part (the camera spec keeps credentials apart).
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn edge_error(e: EdgeError) -> ApiError {
    match e {
        // Not 401: that would tell the web app its own session ended.
        EdgeError::Onvif(ClientError::NotAuthorized) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NotAuthorized: the camera refused the user name or password",
        ),
        EdgeError::Onvif(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the camera's ONVIF answer is unusable: {e}"),
        ),
        EdgeError::BadXaddr(_) => ApiError::bad_request(e.to_string()),
        EdgeError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        EdgeError::Io(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// `POST /api/onvif/device`.
pub async fn device(
    _a: AdminUser,
    ApiJson(body): ApiJson<DeviceBody>,
) -> Result<Json<DeviceAnswer>, ApiError> {
    let login = Login {
        username: body.username,
        password: body.password,
    };
    let r = onvif_edge::read_device(&body.xaddr, &login, Duration::from_secs(5))
        .await
        .map_err(edge_error)?;
    Ok(Json(DeviceAnswer {
        xaddr: body.xaddr,
        media_xaddr: r.media_xaddr,
        manufacturer: r.info.manufacturer,
        model: r.info.model,
        firmware: r.info.firmware,
        serial: r.info.serial,
        profiles: r
            .profiles
            .into_iter()
            .map(|p| ProfileView {
                token: p.token,
                name: p.name,
                encoding: p.encoding,
                width: p.width,
                height: p.height,
            })
            .collect(),
        url: r.main.map(|(_, u)| without_userinfo(&u)),
        sub_url: r.sub.map(|(_, u)| without_userinfo(&u)),
    }))
}

/// What the recorder keeps about a camera added over ONVIF (`onvif_devices.json`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnvifDevice {
    /// Device service address.
    pub xaddr: String,
    /// Model, as GetDeviceInformation reported it.
    #[serde(default)]
    pub model: String,
    /// Firmware version, as GetDeviceInformation reported it.
    #[serde(default)]
    pub firmware: String,
    /// Oldest acceptable firmware (dotted numbers); older is flagged on the System page.
    #[serde(default)]
    pub min_firmware: Option<String>,
}

impl OnvifDevice {
    /// Whether the firmware is older than `min_firmware` (numeric dotted comparison);
    /// `None` when there is no minimum or either version has no number.
    pub fn outdated(&self) -> Option<bool> {
        let min = self.min_firmware.as_deref()?;
        vigil_onvif::client::compare_versions(&self.firmware, min)
            .map(|o| o == std::cmp::Ordering::Less)
    }
}

/// A camera's ONVIF identity on the System page.
#[derive(Serialize, JsonSchema)]
pub struct DeviceRow {
    /// Camera name.
    pub camera: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// The configured minimum, if any.
    pub min_firmware: Option<String>,
    /// Firmware older than the minimum (`null`: no minimum, or not comparable).
    pub outdated: Option<bool>,
}

const STORE: &str = "onvif_devices.json";
/// Serializes read-modify-write of the store within this process.
static STORE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The store, by camera name; empty when absent or unreadable (logged).
pub fn load(data_dir: &Path) -> BTreeMap<String, OnvifDevice> {
    match std::fs::read(data_dir.join(STORE)) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "{STORE} unreadable; ONVIF details not shown");
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Sets (`Some`) or removes (`None`) a camera's record. The file is replaced atomically,
/// mode 0600: written to a fresh temporary file, fsynced, renamed.
pub fn store(data_dir: &Path, camera: &str, dev: Option<OnvifDevice>) -> std::io::Result<()> {
    let _g = STORE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut all = load(data_dir);
    let changed = match dev {
        Some(d) => all.insert(camera.to_owned(), d.clone()) != Some(d),
        None => all.remove(camera).is_some(),
    };
    if !changed {
        return Ok(());
    }
    let tmp = data_dir.join(format!("{STORE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?
    };
    f.write_all(&serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(STORE))
}

/// The System page's rows, for the cameras `visible` allows.
pub fn system_rows(data_dir: &Path, visible: impl Fn(&str) -> bool) -> Vec<DeviceRow> {
    load(data_dir)
        .into_iter()
        .filter(|(name, _)| visible(name))
        .map(|(camera, d)| DeviceRow {
            outdated: d.outdated(),
            camera,
            model: d.model,
            firmware: d.firmware,
            min_firmware: d.min_firmware,
        })
        .collect()
}

/// Records (or forgets) a camera's ONVIF details after an add or change, logging failures:
/// the camera itself is saved either way.
pub async fn remember(st: &AppState, peer: &Peer, camera: &str, dev: Option<OnvifDevice>) {
    let dir = st.data_dir.clone();
    let name = camera.to_owned();
    let r = tokio::task::spawn_blocking(move || store(&dir, &name, dev)).await;
    if !matches!(r, Ok(Ok(()))) {
        tracing::warn!(camera = %camera.escape_debug(), peer = %peer.0, "could not save {STORE}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_hosts() {
        let scopes = vec![
            "onvif://www.onvif.org/name/Front%20door".to_owned(),
            "onvif://www.onvif.org/hardware/vigil%2Fcamera".to_owned(),
        ];
        assert_eq!(scope_value(&scopes, "name").as_deref(), Some("Front door"));
        assert_eq!(
            scope_value(&scopes, "hardware").as_deref(),
            Some("vigil/camera")
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(
            host_of("rtsp://u:p@Cam.local:554/x").as_deref(),
            Some("cam.local")
        );
        assert_eq!(host_of("http://[::1]:80/onvif").as_deref(), Some("::1"));
        assert_eq!(host_of("nonsense"), None);
        assert_eq!(
            without_userinfo("rtsp://u:p@h:554/a?x=@"),
            "rtsp://h:554/a?x=@"
        );
        assert_eq!(without_userinfo("rtsp://h/a"), "rtsp://h/a");
    }

    #[test]
    fn store_round_trip_and_outdated() {
        let dir = tempfile::tempdir().unwrap();
        let d = OnvifDevice {
            xaddr: "http://h/onvif/device_service".into(),
            model: "m".into(),
            firmware: "1.2.3".into(),
            min_firmware: Some("1.10".into()),
        };
        store(dir.path(), "cam", Some(d.clone())).unwrap();
        assert_eq!(load(dir.path()).get("cam"), Some(&d));
        let rows = system_rows(dir.path(), |_| true);
        assert_eq!(rows[0].outdated, Some(true));
        assert!(system_rows(dir.path(), |_| false).is_empty());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(STORE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store(dir.path(), "cam", None).unwrap();
        assert!(load(dir.path()).is_empty());
    }
}

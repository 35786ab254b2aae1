//! A sample device and user store for unit tests and the fuzz target (not for production).

use crate::device::{DeviceInfo, Interface, Profile};

/// The WS-Security credential of the sample user `admin`.
pub const ADMIN_SECRET: &str = "wsse-secret-for-tests";
/// The clear-text password of the sample user `admin`.
pub const ADMIN_PASSWORD: &str = "a test pass phrase";

/// A device with a main and a sub profile.
pub fn info() -> DeviceInfo {
    let profile = |token: &str, w, h, b| Profile {
        token: token.to_owned(),
        name: token.to_owned(),
        width: w,
        height: h,
        fps: 15,
        bitrate_kbps: b,
        gop: 30,
        rtsp_uri: Some(format!("rtsp://127.0.0.1:8554/{token}")),
        rtsps_uri: Some(format!("rtsps://127.0.0.1:8322/{token}")),
        snapshot_uri: Some(format!("https://127.0.0.1:8443/snapshot?stream={token}")),
    };
    DeviceInfo {
        manufacturer: "Vigil".into(),
        model: "vigil camera".into(),
        firmware: "0.1.0".into(),
        serial: "0123<&>".into(),
        hardware_id: "test".into(),
        hostname: "cam".into(),
        device_xaddr: "http://127.0.0.1:8000/onvif/device_service".into(),
        media_xaddr: "http://127.0.0.1:8000/onvif/media_service".into(),
        scopes: vec!["onvif://www.onvif.org/Profile/Streaming".into()],
        interfaces: vec![Interface {
            name: "lo".into(),
            ipv4: "127.0.0.1".into(),
            prefix: 8,
        }],
        protocols: vec![("HTTP".into(), 8000), ("RTSP".into(), 8554)],
        discoverable: true,
        source_size: (1280, 720),
        source_fps: 15,
        profiles: vec![
            profile("main", 1280, 720, 2000),
            profile("sub", 640, 360, 500),
        ],
    }
}

/// A store with `admin` (administrator, with a WS-Security credential) and `viewer` (without).
pub struct Creds;

impl crate::Credentials for Creds {
    fn wsse_secret(&self, user: &str) -> Option<Vec<u8>> {
        (user == "admin").then(|| ADMIN_SECRET.as_bytes().to_vec())
    }
    fn check_password(&self, user: &str, password: &str) -> bool {
        user == "admin" && password == ADMIN_PASSWORD
    }
    fn is_admin(&self, user: &str) -> bool {
        user == "admin"
    }
    fn users(&self) -> Vec<(String, bool)> {
        vec![("admin".into(), true), ("viewer".into(), false)]
    }
}

//! What the device services describe: identity, addresses, profiles. Filled by the edge.

/// One media profile (ONVIF Media Service Specification §5.2): one video encoder stream.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile token, also used for its source and encoder configuration tokens.
    pub token: String,
    /// Human-readable name.
    pub name: String,
    /// Encoded width in pixels.
    pub width: u32,
    /// Encoded height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bit rate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames between IDRs.
    pub gop: u32,
    /// `rtsp://` URI of this stream, if plain RTSP listens.
    pub rtsp_uri: Option<String>,
    /// `rtsps://` URI of this stream, if RTSPS listens.
    pub rtsps_uri: Option<String>,
    /// HTTPS JPEG snapshot URI, if the snapshot server listens.
    pub snapshot_uri: Option<String>,
}

/// One network interface (read-only view for GetNetworkInterfaces).
#[derive(Debug, Clone)]
pub struct Interface {
    /// Token (the interface name).
    pub name: String,
    /// IPv4 address.
    pub ipv4: String,
    /// Prefix length.
    pub prefix: u8,
}

/// Everything the device and media services report.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// GetDeviceInformation/Manufacturer.
    pub manufacturer: String,
    /// GetDeviceInformation/Model.
    pub model: String,
    /// GetDeviceInformation/FirmwareVersion: Vigil's version.
    pub firmware: String,
    /// GetDeviceInformation/SerialNumber.
    pub serial: String,
    /// GetDeviceInformation/HardwareId.
    pub hardware_id: String,
    /// GetHostname.
    pub hostname: String,
    /// `http(s)://host:port/onvif/device_service`.
    pub device_xaddr: String,
    /// `http(s)://host:port/onvif/media_service`.
    pub media_xaddr: String,
    /// Scopes (`onvif://www.onvif.org/...`), ONVIF Core §7.3.2.
    pub scopes: Vec<String>,
    /// Network interfaces.
    pub interfaces: Vec<Interface>,
    /// (protocol name as in tt:NetworkProtocolType, port): HTTP, HTTPS, RTSP.
    pub protocols: Vec<(String, u16)>,
    /// Whether WS-Discovery answers (GetDiscoveryMode).
    pub discoverable: bool,
    /// Video source width/height (the sensor's native size).
    pub source_size: (u32, u32),
    /// Video source frame rate.
    pub source_fps: u32,
    /// Profiles, main first.
    pub profiles: Vec<Profile>,
}

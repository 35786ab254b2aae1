//! ONVIF client, sans-IO: the recorder's side of Profile S.
//!
//! [`request`] builds a SOAP 1.2 request for one [`Call`], signed with a WS-Security
//! UsernameToken PasswordDigest (UsernameToken Profile 1.0 §3.1); the caller supplies the
//! nonce and the time, so nothing here reads a clock or a random source. The edge POSTs it to
//! [`Call::service`]'s XAddr and hands the answer's status and body to the `parse_*`
//! functions, which reuse the hardened envelope parser ([`crate::envelope::parse`]) with
//! limits sized for responses ([`response_limits`]) and match elements by namespace URI and
//! local name, never by prefix, so `tds:`, `ns2:` or a default namespace all read the same.
//!
//! The loop a caller runs to add a camera:
//! 1. `GetDeviceInformation` on the device XAddr (manufacturer, model, firmware, serial);
//! 2. `GetCapabilities` (Media) on the device XAddr, for the media service XAddr;
//! 3. `GetProfiles` on the media XAddr;
//! 4. `GetStreamUri` (RTP-Unicast over RTSP) for each profile.

use base64::Engine as _;
use time::OffsetDateTime;

use crate::envelope::{parse, Envelope, Field, Limits, ParseError, NS_SOAP12};
use crate::ops::{NS_DEVICE, NS_MEDIA};
use crate::wsse::{password_digest, NS_WSSE, NS_WSU, TYPE_DIGEST};
use crate::xml::escape;

/// `tt:` ONVIF schema namespace (profiles, encoder configurations, media URIs).
pub const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";

/// Which service an operation is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// The device service (`.../onvif/device_service`, the XAddr WS-Discovery announces).
    Device,
    /// The media service, whose XAddr GetCapabilities reports.
    Media,
}

/// One operation the client knows how to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// ONVIF Core §8.3.1 GetDeviceInformation.
    GetDeviceInformation,
    /// ONVIF Core §8.1.2.1 GetCapabilities, category Media.
    GetMediaCapabilities,
    /// Media Service §5.2.3 GetProfiles.
    GetProfiles,
    /// Media Service §5.15.1 GetStreamUri for a profile token, RTP-Unicast over RTSP.
    GetStreamUri(String),
}

impl Call {
    /// The service the operation belongs to.
    pub fn service(&self) -> ServiceKind {
        match self {
            Call::GetDeviceInformation | Call::GetMediaCapabilities => ServiceKind::Device,
            Call::GetProfiles | Call::GetStreamUri(_) => ServiceKind::Media,
        }
    }

    /// The operation's body element, in its namespace.
    fn body(&self) -> String {
        match self {
            Call::GetDeviceInformation => format!("<GetDeviceInformation xmlns=\"{NS_DEVICE}\"/>"),
            Call::GetMediaCapabilities => format!(
                "<GetCapabilities xmlns=\"{NS_DEVICE}\"><Category>Media</Category></GetCapabilities>"
            ),
            Call::GetProfiles => format!("<GetProfiles xmlns=\"{NS_MEDIA}\"/>"),
            Call::GetStreamUri(token) => format!(
                "<GetStreamUri xmlns=\"{NS_MEDIA}\"><StreamSetup>\
                 <Stream xmlns=\"{NS_SCHEMA}\">RTP-Unicast</Stream>\
                 <Transport xmlns=\"{NS_SCHEMA}\"><Protocol>RTSP</Protocol></Transport>\
                 </StreamSetup><ProfileToken>{}</ProfileToken></GetStreamUri>",
                escape(token)
            ),
        }
    }
}

/// The credentials a request is signed with. `Debug` never prints the password.
#[derive(Clone)]
pub struct Login {
    /// User name.
    pub username: String,
    /// The password (for a Vigil camera: the WS-Security credential `vigil user onvif` set).
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Builds the SOAP 1.2 request for `call`. With `login`, the header carries a UsernameToken
/// whose PasswordDigest covers `nonce` and `now` (UsernameToken Profile 1.0 §3.1); the nonce
/// must be fresh random bytes for every request (the device refuses a replay, §3.2).
pub fn request(call: &Call, login: Option<&Login>, nonce: &[u8], now: OffsetDateTime) -> String {
    let header = match login {
        Some(l) => {
            // Whole seconds, UTC, `Z`: the form every device's parser accepts.
            let created = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            let digest = password_digest(nonce, &created, l.password.as_bytes());
            let nonce64 = base64::engine::general_purpose::STANDARD.encode(nonce);
            format!(
                "<env:Header><wsse:Security xmlns:wsse=\"{NS_WSSE}\" xmlns:wsu=\"{NS_WSU}\" env:mustUnderstand=\"true\">\
                 <wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
                 <wsse:Password Type=\"{TYPE_DIGEST}\">{digest}</wsse:Password>\
                 <wsse:Nonce>{nonce64}</wsse:Nonce><wsu:Created>{created}</wsu:Created>\
                 </wsse:UsernameToken></wsse:Security></env:Header>",
                escape(&l.username)
            )
        }
        None => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{NS_SOAP12}\">{header}<env:Body>{}</env:Body></env:Envelope>",
        call.body()
    )
}

/// Limits for parsing a device's answers: larger than for requests, since a camera's
/// GetProfiles carries PTZ, analytics and audio configurations for every profile (tens of
/// KiB on common firmware), but still bounded.
pub fn response_limits() -> Limits {
    Limits {
        max_body: 1024 * 1024,
        max_depth: 64,
        max_elements: 1 << 15,
        max_text: 8192,
    }
}

/// Why an answer could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ClientError {
    /// The device refused the credentials: SOAP fault subcode `ter:NotAuthorized` (ONVIF Core
    /// §5.11.2.1), or HTTP 401 without a SOAP body.
    #[error("NotAuthorized: the camera refused the user name or password")]
    NotAuthorized,
    /// Any other SOAP fault.
    #[error("SOAP fault {code}{}: {reason}", subcode.as_deref().map(|s| format!("/{s}")).unwrap_or_default())]
    Fault {
        /// The fault code's local name (`Sender`, `Receiver`, …).
        code: String,
        /// The most specific subcode's local name, if any.
        subcode: Option<String>,
        /// The reason text, as the device wrote it.
        reason: String,
    },
    /// Not a SOAP envelope we accept.
    #[error("unreadable answer: {0}")]
    Parse(#[from] ParseError),
    /// A non-2xx HTTP status without a SOAP fault.
    #[error("HTTP status {0}")]
    Http(u16),
    /// The body is not the response to the operation asked.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// The response element expected.
        expected: &'static str,
        /// The element received.
        got: String,
    },
    /// A required element is missing.
    #[error("answer lacks {0}")]
    Missing(&'static str),
}

/// GetDeviceInformation's answer (ONVIF Core §8.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInformation {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// FirmwareVersion.
    pub firmware: String,
    /// SerialNumber.
    pub serial: String,
    /// HardwareId.
    pub hardware_id: String,
}

/// One media profile as GetProfiles describes it (Media Service §5.2.3, tt:Profile).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileInfo {
    /// `@token`, passed to GetStreamUri.
    pub token: String,
    /// tt:Name.
    pub name: String,
    /// VideoEncoderConfiguration/Encoding (`H264`, `JPEG`, `MPEG4`; H265 on Media2 devices).
    pub encoding: Option<String>,
    /// VideoEncoderConfiguration/Resolution/Width.
    pub width: Option<u32>,
    /// VideoEncoderConfiguration/Resolution/Height.
    pub height: Option<u32>,
}

impl ProfileInfo {
    /// Pixels per frame, 0 when unknown (sorts last).
    pub fn pixels(&self) -> u64 {
        u64::from(self.width.unwrap_or(0)) * u64::from(self.height.unwrap_or(0))
    }
}

/// Parses any answer: a fault becomes an error, otherwise the envelope. `status` is the HTTP
/// status; a fault travels with 400 or 500 (SOAP 1.2 Part 2 §7.5.1.2), so the body is read
/// first and the status only decides when the body is not SOAP.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Envelope, ClientError> {
    let env = match parse(body, &response_limits()) {
        Ok(env) => env,
        Err(_) if status == 401 => return Err(ClientError::NotAuthorized),
        Err(_) if !(200..300).contains(&status) => return Err(ClientError::Http(status)),
        Err(e) => return Err(e.into()),
    };
    if env.operation.is(NS_SOAP12, "Fault") {
        return Err(fault(&env));
    }
    if status == 401 {
        return Err(ClientError::NotAuthorized);
    }
    if !(200..300).contains(&status) {
        return Err(ClientError::Http(status));
    }
    Ok(env)
}

/// The local part of a QName value (`ter:NotAuthorized` → `NotAuthorized`). The prefix's
/// binding is not kept by the parser; ONVIF subcodes are unique by local name.
fn local_part(v: &str) -> &str {
    v.rsplit_once(':').map_or(v, |(_, l)| l).trim()
}

/// SOAP 1.2 Part 1 §5.4: Code/Value, then nested Subcode/Value, innermost most specific.
fn fault(env: &Envelope) -> ClientError {
    let in_code = |f: &&Field| {
        f.path.first().is_some_and(|n| n.is(NS_SOAP12, "Code"))
            && f.name().is_some_and(|n| n.is(NS_SOAP12, "Value"))
    };
    let mut values: Vec<&Field> = env.body.iter().filter(in_code).collect();
    values.sort_by_key(|f| f.path.len());
    let code = values
        .first()
        .map(|f| local_part(&f.text).to_owned())
        .unwrap_or_default();
    let subcodes: Vec<&str> = values.iter().skip(1).map(|f| local_part(&f.text)).collect();
    if subcodes.contains(&"NotAuthorized") {
        return ClientError::NotAuthorized;
    }
    let reason = env
        .body
        .iter()
        .find(|f| {
            f.path.first().is_some_and(|n| n.is(NS_SOAP12, "Reason"))
                && f.name().is_some_and(|n| n.is(NS_SOAP12, "Text"))
        })
        .map(|f| f.text.chars().take(200).collect())
        .unwrap_or_default();
    ClientError::Fault {
        code,
        subcode: subcodes.last().map(|s| (*s).to_owned()),
        reason,
    }
}

fn expect(env: &Envelope, ns: &str, local: &'static str) -> Result<(), ClientError> {
    if env.operation.is(ns, local) {
        Ok(())
    } else {
        Err(ClientError::Unexpected {
            expected: local,
            got: env.operation.local.chars().take(64).collect(),
        })
    }
}

/// Parses a GetDeviceInformationResponse (ONVIF Core §8.3.1: tds: children).
pub fn parse_device_information(
    status: u16,
    body: &[u8],
) -> Result<DeviceInformation, ClientError> {
    let env = parse_response(status, body)?;
    expect(&env, NS_DEVICE, "GetDeviceInformationResponse")?;
    let get = |local: &str| {
        env.body
            .iter()
            .find(|f| f.path.len() == 1 && f.path[0].is(NS_DEVICE, local))
            .map(|f| f.text.clone())
    };
    Ok(DeviceInformation {
        manufacturer: get("Manufacturer").unwrap_or_default(),
        model: get("Model").ok_or(ClientError::Missing("Model"))?,
        firmware: get("FirmwareVersion").unwrap_or_default(),
        serial: get("SerialNumber").unwrap_or_default(),
        hardware_id: get("HardwareId").unwrap_or_default(),
    })
}

/// Parses a GetCapabilitiesResponse for the media service XAddr (ONVIF Core §8.1.2.1:
/// Capabilities/Media/XAddr, tt: elements).
pub fn parse_media_xaddr(status: u16, body: &[u8]) -> Result<String, ClientError> {
    let env = parse_response(status, body)?;
    expect(&env, NS_DEVICE, "GetCapabilitiesResponse")?;
    env.body
        .iter()
        .find(|f| {
            f.path.len() == 3
                && f.path[0].is(NS_DEVICE, "Capabilities")
                && f.path[1].is(NS_SCHEMA, "Media")
                && f.path[2].is(NS_SCHEMA, "XAddr")
        })
        .map(|f| f.text.clone())
        .filter(|x| !x.is_empty())
        .ok_or(ClientError::Missing("Capabilities/Media/XAddr"))
}

/// Parses a GetProfilesResponse (Media Service §5.2.3: trt:Profiles of type tt:Profile).
pub fn parse_profiles(status: u16, body: &[u8]) -> Result<Vec<ProfileInfo>, ClientError> {
    let env = parse_response(status, body)?;
    expect(&env, NS_MEDIA, "GetProfilesResponse")?;
    let mut out = Vec::new();
    let mut cur = ProfileInfo::default();
    // Fields come in document order of their end tags: a profile's children, then the
    // trt:Profiles element itself (which carries the token attribute).
    for f in &env.body {
        if !f.path.first().is_some_and(|n| n.is(NS_MEDIA, "Profiles")) {
            continue;
        }
        let p = &f.path[1..];
        let is = |i: usize, local: &str| p.get(i).is_some_and(|n| n.is(NS_SCHEMA, local));
        match p.len() {
            0 => {
                let mut done = std::mem::take(&mut cur);
                done.token = f
                    .attrs
                    .iter()
                    .find(|(ns, l, _)| ns.is_empty() && l == "token")
                    .map(|(_, _, v)| v.clone())
                    .unwrap_or_default();
                if !done.token.is_empty() {
                    out.push(done);
                }
            }
            1 if is(0, "Name") => cur.name = f.text.clone(),
            2 if is(0, "VideoEncoderConfiguration") && is(1, "Encoding") => {
                cur.encoding = Some(f.text.clone())
            }
            3 if is(0, "VideoEncoderConfiguration") && is(1, "Resolution") => {
                if is(2, "Width") {
                    cur.width = f.text.parse().ok();
                } else if is(2, "Height") {
                    cur.height = f.text.parse().ok();
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Parses a GetStreamUriResponse (Media Service §5.15.1: trt:MediaUri/tt:Uri).
pub fn parse_stream_uri(status: u16, body: &[u8]) -> Result<String, ClientError> {
    let env = parse_response(status, body)?;
    expect(&env, NS_MEDIA, "GetStreamUriResponse")?;
    let uri = env
        .body
        .iter()
        .find(|f| {
            f.path.len() == 2
                && f.path[0].is(NS_MEDIA, "MediaUri")
                && f.path[1].is(NS_SCHEMA, "Uri")
        })
        .map(|f| f.text.clone())
        .ok_or(ClientError::Missing("MediaUri/Uri"))?;
    // Only RTSP is something the recorder can pull; anything else (an http:// tunnel, a
    // file: URI) is refused here rather than stored as a camera source.
    let lower = uri.to_ascii_lowercase();
    if !(lower.starts_with("rtsp://") || lower.starts_with("rtsps://")) {
        return Err(ClientError::Missing("an rtsp:// stream URI"));
    }
    Ok(uri)
}

/// Orders profiles for recording: the largest resolution is the main stream, the next one
/// the sub stream. The sort is stable, so equal sizes keep the device's order.
pub fn main_and_sub(profiles: &[ProfileInfo]) -> (Option<&ProfileInfo>, Option<&ProfileInfo>) {
    let mut v: Vec<&ProfileInfo> = profiles.iter().collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.pixels()));
    (v.first().copied(), v.get(1).copied())
}

/// Compares dotted firmware versions numerically component by component (`5.10.2` >
/// `5.9`); non-digit suffixes of a component are ignored (`V5.5.0build180205` → 5, 5, 0) and
/// missing components count as 0. Returns `None` when either has no number at all.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn parts(s: &str) -> Option<Vec<u64>> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        let v: Vec<u64> = s
            .split('.')
            .map(|c| {
                let digits: String = c.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().unwrap_or(0)
            })
            .collect();
        s.starts_with(|c: char| c.is_ascii_digit()).then_some(v)
    }
    let (mut a, mut b) = (parts(a)?, parts(b)?);
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests;

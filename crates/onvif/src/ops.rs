//! Device (ONVIF Core §8) and Media (ONVIF Media Service §5) operations, as response bodies.

use time::OffsetDateTime;

use crate::device::{DeviceInfo, Profile};
use crate::envelope::Envelope;
use crate::fault::Fault;
use crate::xml::escape as e;

/// `tds:` device management namespace.
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
/// `trt:` media (ver10) namespace.
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";

/// ONVIF Core §5.9.4.3 (access classes): operations of class PRE_AUTH, which a device
/// answers without credentials. GetSystemDateAndTime is needed before a client can build a
/// fresh UsernameToken; the others only describe the service endpoints. GetHostname is also
/// PRE_AUTH in the spec but tells an unauthenticated peer the device's name; we ask for
/// credentials (the spec allows a stricter policy).
pub const PRE_AUTH: &[&str] = &[
    "GetSystemDateAndTime",
    "GetCapabilities",
    "GetServices",
    "GetServiceCapabilities",
    "GetWsdlUrl",
    "GetEndpointReference",
];

/// Operations only an administrator may call (ONVIF Core §5.9.4.3, READ_SYSTEM_SECRET).
pub const ADMIN_ONLY: &[&str] = &["GetUsers"];

/// Device service operations we implement.
pub const DEVICE_OPS: &[&str] = &[
    "GetSystemDateAndTime",
    "GetCapabilities",
    "GetServices",
    "GetServiceCapabilities",
    "GetDeviceInformation",
    "GetScopes",
    "GetHostname",
    "GetNetworkInterfaces",
    "GetNetworkProtocols",
    "GetDNS",
    "GetNTP",
    "GetDiscoveryMode",
    "GetUsers",
];

/// Media service operations we implement.
pub const MEDIA_OPS: &[&str] = &[
    "GetServiceCapabilities",
    "GetProfiles",
    "GetProfile",
    "GetVideoSources",
    "GetVideoSourceConfigurations",
    "GetVideoSourceConfiguration",
    "GetVideoSourceConfigurationOptions",
    "GetVideoEncoderConfigurations",
    "GetVideoEncoderConfiguration",
    "GetVideoEncoderConfigurationOptions",
    "GetStreamUri",
    "GetSnapshotUri",
];

/// The video source token: there is one sensor.
const SOURCE: &str = "VideoSource_1";

/// Runs a device-service operation; `users` lists user names for GetUsers.
pub fn device(
    op: &str,
    _env: &Envelope,
    info: &DeviceInfo,
    now: OffsetDateTime,
    users: &[(String, bool)],
) -> Result<String, Fault> {
    let body = match op {
        "GetSystemDateAndTime" => {
            let u = now.to_offset(time::UtcOffset::UTC);
            format!(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>\
                 <tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>\
                 <tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>\
                 <tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time>\
                 <tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime>\
                 </tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
                u.hour(),
                u.minute(),
                u.second(),
                u.year(),
                u8::from(u.month()),
                u.day()
            )
        }
        "GetCapabilities" => format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities>\
             <tt:Device><tt:XAddr>{dev}</tt:XAddr>\
             <tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration><tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>\
             <tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye><tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>\
             <tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions></tt:System>\
             <tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2><tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false</tt:AccessPolicyConfig><tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken><tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security>\
             </tt:Device>\
             <tt:Media><tt:XAddr>{media}</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>\
             </tds:Capabilities></tds:GetCapabilitiesResponse>",
            dev = e(&info.device_xaddr),
            media = e(&info.media_xaddr)
        ),
        "GetServices" => format!(
            "<tds:GetServicesResponse>\
             <tds:Service><tds:Namespace>{NS_DEVICE}</tds:Namespace><tds:XAddr>{}</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>\
             <tds:Service><tds:Namespace>{NS_MEDIA}</tds:Namespace><tds:XAddr>{}</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>\
             </tds:GetServicesResponse>",
            e(&info.device_xaddr),
            e(&info.media_xaddr)
        ),
        "GetServiceCapabilities" => "<tds:GetServiceCapabilitiesResponse><tds:Capabilities>\
             <tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" IPVersion6=\"false\" DynDNS=\"false\" NTP=\"0\"/>\
             <tds:Security TLS1.2=\"false\" UsernameToken=\"true\" HttpDigest=\"true\" MaxUsers=\"32\" MaxUserNameLength=\"64\" MaxPasswordLength=\"128\"/>\
             <tds:System DiscoveryResolve=\"false\" DiscoveryBye=\"true\" RemoteDiscovery=\"false\" SystemBackup=\"false\" SystemLogging=\"false\" FirmwareUpgrade=\"false\"/>\
             </tds:Capabilities></tds:GetServiceCapabilitiesResponse>"
            .to_owned(),
        "GetDeviceInformation" => format!(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>{}</tds:Manufacturer><tds:Model>{}</tds:Model>\
             <tds:FirmwareVersion>{}</tds:FirmwareVersion><tds:SerialNumber>{}</tds:SerialNumber><tds:HardwareId>{}</tds:HardwareId>\
             </tds:GetDeviceInformationResponse>",
            e(&info.manufacturer),
            e(&info.model),
            e(&info.firmware),
            e(&info.serial),
            e(&info.hardware_id)
        ),
        "GetScopes" => {
            let mut s = String::from("<tds:GetScopesResponse>");
            for scope in &info.scopes {
                s.push_str(&format!(
                    "<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{}</tt:ScopeItem></tds:Scopes>",
                    e(scope)
                ));
            }
            s.push_str("</tds:GetScopesResponse>");
            s
        }
        "GetHostname" => format!(
            "<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP><tt:Name>{}</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>",
            e(&info.hostname)
        ),
        "GetNetworkInterfaces" => {
            let mut s = String::from("<tds:GetNetworkInterfacesResponse>");
            for i in &info.interfaces {
                s.push_str(&format!(
                    "<tds:NetworkInterfaces token=\"{n}\"><tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>{n}</tt:Name></tt:Info>\
                     <tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>{a}</tt:Address><tt:PrefixLength>{p}</tt:PrefixLength></tt:Manual><tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>\
                     </tds:NetworkInterfaces>",
                    n = e(&i.name),
                    a = e(&i.ipv4),
                    p = i.prefix
                ));
            }
            s.push_str("</tds:GetNetworkInterfacesResponse>");
            s
        }
        "GetNetworkProtocols" => {
            let mut s = String::from("<tds:GetNetworkProtocolsResponse>");
            for (name, port) in &info.protocols {
                s.push_str(&format!(
                    "<tds:NetworkProtocols><tt:Name>{}</tt:Name><tt:Enabled>true</tt:Enabled><tt:Port>{port}</tt:Port></tds:NetworkProtocols>",
                    e(name)
                ));
            }
            s.push_str("</tds:GetNetworkProtocolsResponse>");
            s
        }
        // Vigil does not manage the host's resolver or NTP client: report them as not set
        // by DHCP and empty, which is a valid answer (tt:DNSInformation, tt:NTPInformation).
        "GetDNS" => "<tds:GetDNSResponse><tds:DNSInformation><tt:FromDHCP>false</tt:FromDHCP></tds:DNSInformation></tds:GetDNSResponse>".to_owned(),
        "GetNTP" => "<tds:GetNTPResponse><tds:NTPInformation><tt:FromDHCP>false</tt:FromDHCP></tds:NTPInformation></tds:GetNTPResponse>".to_owned(),
        "GetDiscoveryMode" => format!(
            "<tds:GetDiscoveryModeResponse><tds:DiscoveryMode>{}</tds:DiscoveryMode></tds:GetDiscoveryModeResponse>",
            if info.discoverable { "Discoverable" } else { "NonDiscoverable" }
        ),
        "GetUsers" => {
            // Names and levels only: ONVIF Core §8.4.4 says the password is not returned.
            let mut s = String::from("<tds:GetUsersResponse>");
            for (name, admin) in users {
                s.push_str(&format!(
                    "<tds:User><tt:Username>{}</tt:Username><tt:UserLevel>{}</tt:UserLevel></tds:User>",
                    e(name),
                    if *admin { "Administrator" } else { "User" }
                ));
            }
            s.push_str("</tds:GetUsersResponse>");
            s
        }
        _ => return Err(Fault::ActionNotSupported),
    };
    Ok(body)
}

fn profile<'a>(info: &'a DeviceInfo, env: &Envelope, param: &str) -> Result<&'a Profile, Fault> {
    let token = env.param(param).ok_or(Fault::NoProfile)?;
    info.profiles
        .iter()
        .find(|p| p.token == token)
        .ok_or(Fault::NoProfile)
}

fn source_config(info: &DeviceInfo, tag: &str) -> String {
    let (w, h) = info.source_size;
    format!(
        "<{tag} token=\"VideoSourceConfig_1\"><tt:Name>VideoSourceConfig_1</tt:Name><tt:UseCount>{}</tt:UseCount>\
         <tt:SourceToken>{SOURCE}</tt:SourceToken><tt:Bounds x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\"/></{tag}>",
        info.profiles.len()
    )
}

fn encoder_config(p: &Profile, tag: &str) -> String {
    format!(
        "<{tag} token=\"{t}\"><tt:Name>{n}</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>\
         <tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>\
         <tt:RateControl><tt:FrameRateLimit>{f}</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{b}</tt:BitrateLimit></tt:RateControl>\
         <tt:H264><tt:GovLength>{g}</tt:GovLength><tt:H264Profile>Baseline</tt:H264Profile></tt:H264>\
         <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT60S</tt:SessionTimeout></{tag}>",
        t = e(&p.token),
        n = e(&p.name),
        w = p.width,
        h = p.height,
        f = p.fps,
        b = p.bitrate_kbps,
        g = p.gop
    )
}

fn profile_xml(info: &DeviceInfo, p: &Profile, tag: &str) -> String {
    format!(
        "<{tag} token=\"{t}\" fixed=\"true\"><tt:Name>{n}</tt:Name>{src}{enc}</{tag}>",
        t = e(&p.token),
        n = e(&p.name),
        src = source_config(info, "tt:VideoSourceConfiguration"),
        enc = encoder_config(p, "tt:VideoEncoderConfiguration")
    )
}

fn uri_response(tag: &str, uri: &str) -> String {
    format!(
        "<trt:{tag}Response><trt:MediaUri><tt:Uri>{}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>\
         <tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{tag}Response>",
        e(uri)
    )
}

/// Runs a media-service operation.
pub fn media(op: &str, env: &Envelope, info: &DeviceInfo) -> Result<String, Fault> {
    let body = match op {
        "GetServiceCapabilities" => "<trt:GetServiceCapabilitiesResponse><trt:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\">\
             <trt:ProfileCapabilities MaximumNumberOfProfiles=\"2\"/>\
             <trt:StreamingCapabilities RTPMulticast=\"false\" RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\"/>\
             </trt:Capabilities></trt:GetServiceCapabilitiesResponse>"
            .to_owned(),
        "GetProfiles" => {
            let mut s = String::from("<trt:GetProfilesResponse>");
            for p in &info.profiles {
                s.push_str(&profile_xml(info, p, "trt:Profiles"));
            }
            s.push_str("</trt:GetProfilesResponse>");
            s
        }
        "GetProfile" => format!(
            "<trt:GetProfileResponse>{}</trt:GetProfileResponse>",
            profile_xml(info, profile(info, env, "ProfileToken")?, "trt:Profile")
        ),
        "GetVideoSources" => {
            let (w, h) = info.source_size;
            format!(
                "<trt:GetVideoSourcesResponse><trt:VideoSources token=\"{SOURCE}\"><tt:Framerate>{}</tt:Framerate>\
                 <tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>",
                info.source_fps
            )
        }
        "GetVideoSourceConfigurations" => format!(
            "<trt:GetVideoSourceConfigurationsResponse>{}</trt:GetVideoSourceConfigurationsResponse>",
            source_config(info, "trt:Configurations")
        ),
        "GetVideoSourceConfiguration" => {
            if env.param("ConfigurationToken") != Some("VideoSourceConfig_1") {
                return Err(Fault::NoConfig);
            }
            format!(
                "<trt:GetVideoSourceConfigurationResponse>{}</trt:GetVideoSourceConfigurationResponse>",
                source_config(info, "trt:Configuration")
            )
        }
        "GetVideoSourceConfigurationOptions" => {
            let (w, h) = info.source_size;
            format!(
                "<trt:GetVideoSourceConfigurationOptionsResponse><trt:Options>\
                 <tt:BoundsRange><tt:XRange><tt:Min>0</tt:Min><tt:Max>0</tt:Max></tt:XRange><tt:YRange><tt:Min>0</tt:Min><tt:Max>0</tt:Max></tt:YRange>\
                 <tt:WidthRange><tt:Min>{w}</tt:Min><tt:Max>{w}</tt:Max></tt:WidthRange><tt:HeightRange><tt:Min>{h}</tt:Min><tt:Max>{h}</tt:Max></tt:HeightRange></tt:BoundsRange>\
                 <tt:VideoSourceTokensAvailable>{SOURCE}</tt:VideoSourceTokensAvailable></trt:Options></trt:GetVideoSourceConfigurationOptionsResponse>"
            )
        }
        "GetVideoEncoderConfigurations" => {
            let mut s = String::from("<trt:GetVideoEncoderConfigurationsResponse>");
            for p in &info.profiles {
                s.push_str(&encoder_config(p, "trt:Configurations"));
            }
            s.push_str("</trt:GetVideoEncoderConfigurationsResponse>");
            s
        }
        "GetVideoEncoderConfiguration" => {
            let p = profile(info, env, "ConfigurationToken").map_err(|_| Fault::NoConfig)?;
            format!(
                "<trt:GetVideoEncoderConfigurationResponse>{}</trt:GetVideoEncoderConfigurationResponse>",
                encoder_config(p, "trt:Configuration")
            )
        }
        "GetVideoEncoderConfigurationOptions" => {
            // Settings are fixed by the command line: the options are exactly the current values.
            let ps: Vec<&Profile> = match env.param("ConfigurationToken").or(env.param("ProfileToken")) {
                Some(_) => vec![profile(info, env, "ConfigurationToken")
                    .or_else(|_| profile(info, env, "ProfileToken"))
                    .map_err(|_| Fault::NoConfig)?],
                None => info.profiles.iter().collect(),
            };
            let mut res = String::new();
            let (mut fmin, mut fmax, mut gmin, mut gmax) = (u32::MAX, 0, u32::MAX, 0);
            for p in &ps {
                res.push_str(&format!(
                    "<tt:ResolutionsAvailable><tt:Width>{}</tt:Width><tt:Height>{}</tt:Height></tt:ResolutionsAvailable>",
                    p.width, p.height
                ));
                fmin = fmin.min(p.fps);
                fmax = fmax.max(p.fps);
                gmin = gmin.min(p.gop);
                gmax = gmax.max(p.gop);
            }
            format!(
                "<trt:GetVideoEncoderConfigurationOptionsResponse><trt:Options>\
                 <tt:QualityRange><tt:Min>5</tt:Min><tt:Max>5</tt:Max></tt:QualityRange>\
                 <tt:H264>{res}<tt:GovLengthRange><tt:Min>{gmin}</tt:Min><tt:Max>{gmax}</tt:Max></tt:GovLengthRange>\
                 <tt:FrameRateRange><tt:Min>{fmin}</tt:Min><tt:Max>{fmax}</tt:Max></tt:FrameRateRange>\
                 <tt:EncodingIntervalRange><tt:Min>1</tt:Min><tt:Max>1</tt:Max></tt:EncodingIntervalRange>\
                 <tt:H264ProfilesSupported>Baseline</tt:H264ProfilesSupported></tt:H264>\
                 </trt:Options></trt:GetVideoEncoderConfigurationOptionsResponse>"
            )
        }
        "GetStreamUri" => {
            let p = profile(info, env, "ProfileToken")?;
            // Media Service §5.15.1: StreamSetup/Transport/Protocol is UDP, TCP, RTSP or HTTP.
            // We serve RTSP (RTP over UDP or interleaved over TCP); "HTTP" (RTSP tunnelled in
            // HTTP) is not offered. With plain RTSP off, the RTSPS URI is the answer.
            let proto = env.param("Protocol").unwrap_or("RTSP");
            let (rtsp, rtsps) = (p.rtsp_uri.as_deref(), p.rtsps_uri.as_deref());
            let uri = match proto {
                // Not a ver10 tt:TransportProtocol value, but Media2's "RTSPS" (Media2 §5.2.4
                // GetStreamUri) is what TLS-aware clients send.
                "RTSPS" | "RtspsUnicast" => rtsps,
                "UDP" | "TCP" | "RTSP" | "RtspUnicast" => rtsp.or(rtsps),
                _ => return Err(Fault::InvalidArgVal),
            }
            .ok_or(Fault::InvalidArgVal)?;
            uri_response("GetStreamUri", uri)
        }
        "GetSnapshotUri" => {
            let p = profile(info, env, "ProfileToken")?;
            uri_response(
                "GetSnapshotUri",
                p.snapshot_uri.as_deref().ok_or(Fault::ActionNotSupported)?,
            )
        }
        _ => return Err(Fault::ActionNotSupported),
    };
    Ok(body)
}

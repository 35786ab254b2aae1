//! SDP session descriptions (RFC 4566) for an H.264 stream (RFC 6184 §8.2.1), as
//! returned by RTSP DESCRIBE.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::access_unit::StreamParams;

/// Caller-chosen parts of the session description.
#[derive(Clone, Debug)]
pub struct SdpOptions<'a> {
    /// `o=` session id (RFC 4566 §5.2); e.g. a per-stream random or time-based number.
    pub session_id: u64,
    /// `o=` unicast address of the originating host.
    pub origin_addr: &'a str,
    /// `s=` session name; an empty name is written as a single space, as §5.3 asks.
    pub session_name: &'a str,
    /// Media-level `a=control:` URL (absolute or relative to the content base).
    pub control: &'a str,
    /// RTP dynamic payload type (96..=127).
    pub payload_type: u8,
}

/// Keeps caller text on one SDP line: control characters (CR, LF ...) would let a
/// camera name inject lines into the description.
fn line_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Formats a frame rate without trailing zeros, e.g. `30`, `29.97`, `12.5`.
fn format_fps(fps: f64) -> String {
    let s = format!("{fps:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// Builds the session description of one H.264 video stream, CRLF line endings.
///
/// The `fmtp` line carries `packetization-mode=1`, `profile-level-id` (from the SPS)
/// and `sprop-parameter-sets` (base64 SPS and PPS), so a client can set up its decoder
/// before the first key frame arrives.
pub fn h264_session(params: &StreamParams, opts: &SdpOptions<'_>) -> String {
    let pt = opts.payload_type & 0x7f;
    let name = line_safe(opts.session_name);
    let name = if name.is_empty() {
        " ".to_owned()
    } else {
        name
    };
    let [p, c, l] = params.profile_level_id();
    let mut s = String::with_capacity(512);
    // `write!` to a String cannot fail; the results are ignored deliberately.
    let _ = write!(
        s,
        "v=0\r\n\
         o=- {id} 1 IN IP4 {addr}\r\n\
         s={name}\r\n\
         c=IN IP4 0.0.0.0\r\n\
         t=0 0\r\n\
         a=tool:vigil\r\n\
         a=range:npt=now-\r\n\
         m=video 0 RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} H264/90000\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={p:02X}{c:02X}{l:02X};\
         sprop-parameter-sets={sps},{pps}\r\n",
        id = opts.session_id,
        addr = line_safe(opts.origin_addr),
        sps = STANDARD.encode(&params.sps),
        pps = STANDARD.encode(&params.pps),
    );
    if let Some(fps) = params.fps.filter(|f| f.is_finite() && *f > 0.0) {
        let _ = write!(s, "a=framerate:{}\r\n", format_fps(fps));
    }
    let _ = write!(
        s,
        "a=x-dimensions:{},{}\r\na=control:{}\r\n",
        params.width,
        params.height,
        line_safe(opts.control)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_unit::Codec;
    use bytes::Bytes;

    fn params(fps: Option<f64>) -> StreamParams {
        StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x0f, 0xc8]),
            width: 1280,
            height: 720,
            fps,
        }
    }

    #[test]
    fn golden_h264_session() {
        let opts = SdpOptions {
            session_id: 1234567890,
            origin_addr: "192.0.2.10",
            session_name: "Front door",
            control: "trackID=0",
            payload_type: 96,
        };
        let expected = "v=0\r\n\
            o=- 1234567890 1 IN IP4 192.0.2.10\r\n\
            s=Front door\r\n\
            c=IN IP4 0.0.0.0\r\n\
            t=0 0\r\n\
            a=tool:vigil\r\n\
            a=range:npt=now-\r\n\
            m=video 0 RTP/AVP 96\r\n\
            a=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;\
            sprop-parameter-sets=Z0LAH9oB,aM4PyA==\r\n\
            a=framerate:30\r\n\
            a=x-dimensions:1280,720\r\n\
            a=control:trackID=0\r\n";
        assert_eq!(h264_session(&params(Some(30.0)), &opts), expected);
    }

    #[test]
    fn no_framerate_without_fps_and_no_line_injection() {
        let opts = SdpOptions {
            session_id: 1,
            origin_addr: "::1\r\nx=evil",
            session_name: "",
            control: "a\nb",
            payload_type: 97,
        };
        let sdp = h264_session(&params(None), &opts);
        assert!(!sdp.contains("framerate"));
        assert!(sdp.contains("\r\ns= \r\n"));
        assert!(sdp.contains("a=control:ab\r\n"));
        assert!(!sdp.contains("\r\nx="));
        assert_eq!(sdp.matches('\n').count(), sdp.matches("\r\n").count());
        assert_eq!(sdp.lines().count(), 12);
    }

    #[test]
    fn fps_formatting() {
        assert_eq!(format_fps(30.0), "30");
        assert_eq!(format_fps(29.97002997), "29.97");
        assert_eq!(format_fps(12.5), "12.5");
    }
}

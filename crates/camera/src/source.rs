//! Which source a camera reads: the test pattern, a video file or a V4L2 device.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::CameraError;

/// A camera's source, as written in configuration: `testsrc`, `file:PATH` or
/// `v4l2:/dev/videoN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in synthetic test pattern.
    TestPattern,
    /// The test pattern's scripted motion scene (`testsrc:scene`, see
    /// [`crate::testsrc::scene`]).
    TestScene,
    /// An MP4 (`.mp4`, `.m4v`, `.mov`) or Annex B H.264 (`.h264`, `.264`) file, replayed
    /// in real time in a loop.
    File(PathBuf),
    /// A Video4Linux2 capture device.
    V4l2(PathBuf),
}

const ACCEPTED: &str =
    "expected \"testsrc\", \"testsrc:scene\", \"file:PATH\" or \"v4l2:/dev/videoN\"";

impl FromStr for SourceSpec {
    type Err = CameraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| CameraError::InvalidSource {
            spec: s.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = s.trim();
        if trimmed == "testsrc" {
            return Ok(SourceSpec::TestPattern);
        }
        if trimmed == "testsrc:scene" {
            return Ok(SourceSpec::TestScene);
        }
        let (scheme, rest) = trimmed.split_once(':').ok_or_else(|| err(ACCEPTED))?;
        match scheme {
            "file" if rest.is_empty() => Err(err("file: needs a path, e.g. file:/videos/door.mp4")),
            "file" => Ok(SourceSpec::File(PathBuf::from(rest))),
            "v4l2" if rest.starts_with("/dev/") && rest.len() > "/dev/".len() => {
                Ok(SourceSpec::V4l2(PathBuf::from(rest)))
            }
            "v4l2" => Err(err(
                "v4l2: needs a device path under /dev, e.g. v4l2:/dev/video0",
            )),
            _ => Err(err(ACCEPTED)),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::TestPattern => f.write_str("testsrc"),
            SourceSpec::TestScene => f.write_str("testsrc:scene"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::V4l2(p) => write!(f, "v4l2:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_round_trips_through_display() {
        for (text, spec) in [
            ("testsrc", SourceSpec::TestPattern),
            ("testsrc:scene", SourceSpec::TestScene),
            (
                "file:/var/v/a b.mp4",
                SourceSpec::File("/var/v/a b.mp4".into()),
            ),
            ("file:rel/x.h264", SourceSpec::File("rel/x.h264".into())),
            ("v4l2:/dev/video0", SourceSpec::V4l2("/dev/video0".into())),
        ] {
            let parsed: SourceSpec = text.parse().unwrap();
            assert_eq!(parsed, spec);
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            " testsrc ".parse::<SourceSpec>().unwrap(),
            SourceSpec::TestPattern
        );
    }

    #[test]
    fn rejects_anything_else_with_a_message_that_says_what_is_accepted() {
        for bad in [
            "",
            "test",
            "rtsp://cam/1",
            "file:",
            "v4l2:",
            "v4l2:video0",
            "v4l2:/dev/",
            "FILE:/x",
        ] {
            let err = bad.parse::<SourceSpec>().unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, CameraError::InvalidSource { .. }), "{bad}");
            assert!(
                msg.contains("testsrc") || msg.contains("needs"),
                "{bad}: {msg}"
            );
        }
    }
}

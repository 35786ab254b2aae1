//! Credentials that must never reach a log, a status page, an API response or an error
//! message: one [`Secret`] string type and one rule for showing a URL ([`redact_url`]), for
//! every crate (camera passwords, broker passwords, webhook keys, camera and webhook URLs).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serializer};
use url::Url;

/// A secret string. `Debug` and `Display` print `<redacted>`, and it has no `Serialize`, so
/// it cannot slip into logs, status JSON or API responses by accident. The one store that
/// must write it back (`cameras.json`) opts in per field with
/// `#[serde(serialize_with = "vigil_auth::secret::serialize_exposed")]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used (the RTSP client, signing, the MQTT
    /// CONNECT packet, the store that keeps it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A string in JSON Schemas (an API's request bodies), write-only: it is read, never written
/// back.
impl schemars::JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "writeOnly": true})
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Serializes an optional secret in clear, for the one file that stores it; see [`Secret`].
pub fn serialize_exposed<S: Serializer>(
    secret: &Option<Secret>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(s) => serializer.serialize_some(s.expose()),
        None => serializer.serialize_none(),
    }
}

/// `raw` as it may be shown: see [`redact`]. Input that does not parse as a URL is not
/// echoed at all, since it may hold a password in a shape the parser does not recognise.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => redact(&u),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// `url` as it may be shown: without user information and fragment, and with every query
/// value replaced by `redacted` (the keys stay, so `?channel=…&subtype=…` is still
/// recognisable, while `?token=…` or a camera's `?password=…` is not shown). The path is
/// kept: it names the stream or endpoint; a service that hides a key in the path (some
/// webhook URLs do) is shown with it.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    // Both setters fail only for URLs that cannot have credentials at all.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    if u.query().is_some() {
        let keys: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        u.set_query(None);
        if !keys.is_empty() {
            let mut q = u.query_pairs_mut();
            for k in &keys {
                q.append_pair(k, "redacted");
            }
        }
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-pw");
        assert_eq!(format!("{s:?} {s}"), "\"<redacted>\" <redacted>");
        assert_eq!(s.expose(), "hunter2-pw");
        let parsed: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(parsed, Secret::new("x"));

        #[derive(serde::Serialize)]
        struct Stored {
            #[serde(serialize_with = "serialize_exposed")]
            password: Option<Secret>,
        }
        let json = serde_json::to_string(&Stored {
            password: Some(Secret::new("kept")),
        })
        .unwrap();
        assert_eq!(json, r#"{"password":"kept"}"#);
    }

    #[test]
    fn urls_lose_credentials_fragments_and_query_values() {
        assert_eq!(
            redact_url("rtsp://admin:pa%40ss@192.0.2.7:554/cam/realmonitor?channel=1&subtype=0"),
            "rtsp://192.0.2.7:554/cam/realmonitor?channel=redacted&subtype=redacted"
        );
        assert_eq!(
            redact_url("https://user@hooks.example/in?token=abc123#frag"),
            "https://hooks.example/in?token=redacted"
        );
        assert_eq!(
            redact_url("rtsp://192.0.2.7/stream1"),
            "rtsp://192.0.2.7/stream1"
        );
        assert_eq!(redact_url("rtsp://[broken"), "<unparseable URL>");
        assert_eq!(
            redact_url("not a url with password=hunter2"),
            "<unparseable URL>"
        );
        let shown = redact_url("http://a:b@h/?password=hunter2&x");
        assert!(
            !shown.contains("hunter2") && !shown.contains("a:b"),
            "{shown}"
        );
    }
}

//! Configuration of the alert channels: `[mqtt]` and `[[webhook]]` in the config file.
//!
//! Both types are validated while they are deserialized (`serde(try_from)`), so a bad value is
//! reported by the config loader with the section it belongs to, not later at run time.
//! [`crate::Alerts::start`] validates again, because code may build the structs directly.

use std::path::PathBuf;

use serde::Deserialize;

use crate::AlertsError;

pub use vigil_auth::secret::Secret;

/// The event type names a webhook's `events` filter may list (the `type` field of the JSON).
pub const EVENT_TYPES: &[&str] = &[
    "motion_start",
    "motion_end",
    "camera_online",
    "camera_offline",
];

/// `[mqtt]`: the broker Vigil publishes to (Home Assistant discovery, states, events).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RawMqttConfig")]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port; `None` = 1883, or 8883 with `tls`. See [`MqttConfig::effective_port`].
    pub port: Option<u16>,
    /// Connect with TLS (MQTT over TLS, usually port 8883).
    pub tls: bool,
    /// PEM file with the CA certificate(s) the broker's certificate must chain to; without it
    /// the system's trust store is used. Only with `tls`.
    pub ca_file: Option<PathBuf>,
    /// User name for the broker.
    pub username: Option<String>,
    /// Password for the broker (needs `username`).
    pub password: Option<Secret>,
    /// Prefix of Vigil's own topics (`<prefix>/status`, `<prefix>/events`, …). Default `vigil`.
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix. Default `homeassistant`.
    pub discovery_prefix: String,
    /// MQTT client id; `None` = `vigil-<hostname>`. See [`MqttConfig::effective_client_id`].
    pub client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttConfig {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default = "default_topic_prefix")]
    topic_prefix: String,
    #[serde(default = "default_discovery_prefix")]
    discovery_prefix: String,
    #[serde(default)]
    client_id: Option<String>,
}

fn default_topic_prefix() -> String {
    "vigil".to_owned()
}

fn default_discovery_prefix() -> String {
    "homeassistant".to_owned()
}

impl TryFrom<RawMqttConfig> for MqttConfig {
    type Error = AlertsError;

    fn try_from(r: RawMqttConfig) -> Result<Self, Self::Error> {
        let cfg = MqttConfig {
            host: r.host,
            port: r.port,
            tls: r.tls,
            ca_file: r.ca_file,
            username: r.username,
            password: r.password,
            topic_prefix: r.topic_prefix,
            discovery_prefix: r.discovery_prefix,
            client_id: r.client_id,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl MqttConfig {
    /// A configuration with the defaults for everything but the host.
    pub fn new(host: impl Into<String>) -> MqttConfig {
        MqttConfig {
            host: host.into(),
            port: None,
            tls: false,
            ca_file: None,
            username: None,
            password: None,
            topic_prefix: default_topic_prefix(),
            discovery_prefix: default_discovery_prefix(),
            client_id: None,
        }
    }

    /// The port to connect to: `port`, else 8883 with TLS, else 1883.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 8883 } else { 1883 })
    }

    /// The client id: `client_id`, else `vigil-<hostname>` (characters other than ASCII
    /// letters, digits, `-` and `_` replaced by `_`).
    pub fn effective_client_id(&self) -> String {
        match &self.client_id {
            Some(id) => id.clone(),
            None => format!("vigil-{}", crate::ha::topic_id(&hostname())),
        }
    }

    /// Checks the values a broker or Home Assistant would reject, or that would leak a password.
    pub fn validate(&self) -> Result<(), AlertsError> {
        let bad = |why: String| Err(AlertsError::Config(format!("[mqtt] {why}")));
        if self.host.trim().is_empty() {
            return bad("host is empty".into());
        }
        if self.port == Some(0) {
            return bad("port 0 is not a port".into());
        }
        for (name, value) in [
            ("topic_prefix", &self.topic_prefix),
            ("discovery_prefix", &self.discovery_prefix),
        ] {
            // MQTT 3.1.1 §4.7: `+` and `#` are wildcards, forbidden in topic names; an empty
            // level or a leading `$` would make the topics unreachable or reserved.
            if value.is_empty()
                || value.starts_with('/')
                || value.ends_with('/')
                || value.starts_with('$')
                || value.contains("//")
                || value.chars().any(|c| c == '+' || c == '#' || c == '\0')
            {
                return bad(format!(
                    "{name} {value:?} must be non-empty, without `+`, `#`, a leading `$` or empty levels"
                ));
            }
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return bad("client_id must be 1 to 128 printable characters".into());
            }
        }
        if self.ca_file.is_some() && !self.tls {
            return bad("ca_file needs tls = true".into());
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("password needs username".into());
        }
        Ok(())
    }
}

/// `[[webhook]]`: an HTTP(S) endpoint that receives every event (or those in `events`) as a
/// signed JSON POST.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RawWebhookConfig")]
pub struct WebhookConfig {
    /// `http://` or `https://` URL. User info (`https://user:pass@host/`) is sent as HTTP Basic
    /// authentication and never shown in the status.
    pub url: String,
    /// Key of the HMAC-SHA256 signature (at least 16 characters).
    pub secret: Secret,
    /// Only these event types (see [`EVENT_TYPES`]); `None` = all.
    pub events: Option<Vec<String>>,
    /// Timeout of one delivery attempt (connect + TLS + request + response head), seconds. Default 10.
    pub timeout_s: u64,
    /// An event not delivered this long after it happened is given up and counted as failed,
    /// seconds. Default 3600.
    pub give_up_after_s: u64,
    /// PEM file with the CA certificate(s) an `https` endpoint must chain to (e.g. a home
    /// server's own CA); without it the system's trust store is used.
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhookConfig {
    url: String,
    secret: Secret,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default = "default_timeout_s")]
    timeout_s: u64,
    #[serde(default = "default_give_up_after_s")]
    give_up_after_s: u64,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn default_timeout_s() -> u64 {
    10
}

fn default_give_up_after_s() -> u64 {
    3600
}

impl TryFrom<RawWebhookConfig> for WebhookConfig {
    type Error = AlertsError;

    fn try_from(r: RawWebhookConfig) -> Result<Self, Self::Error> {
        let cfg = WebhookConfig {
            url: r.url,
            secret: r.secret,
            events: r.events,
            timeout_s: r.timeout_s,
            give_up_after_s: r.give_up_after_s,
            ca_file: r.ca_file,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl WebhookConfig {
    /// A configuration with the defaults for everything but the URL and the secret.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: Secret::new(secret),
            events: None,
            timeout_s: default_timeout_s(),
            give_up_after_s: default_give_up_after_s(),
            ca_file: None,
        }
    }

    /// Checks the URL scheme and host, the secret's length, the event names and the timeouts.
    pub fn validate(&self) -> Result<(), AlertsError> {
        crate::http::Endpoint::parse(&self.url, None)?;
        let shown = vigil_auth::secret::redact_url(&self.url);
        let bad = |why: String| Err(AlertsError::Config(format!("[[webhook]] {shown}: {why}")));
        if self.secret.expose().chars().count() < 16 {
            return bad("secret must be at least 16 characters".into());
        }
        if let Some(events) = &self.events {
            if let Some(unknown) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
                return bad(format!(
                    "unknown event type {unknown:?} (known: {})",
                    EVENT_TYPES.join(", ")
                ));
            }
        }
        if self.timeout_s == 0 || self.timeout_s > 600 {
            return bad("timeout_s must be 1 to 600".into());
        }
        if self.give_up_after_s == 0 {
            return bad("give_up_after_s must be at least 1".into());
        }
        if self.ca_file.is_some() && !self.url.to_ascii_lowercase().starts_with("https:") {
            return bad("ca_file needs an https URL".into());
        }
        Ok(())
    }

    /// Whether this endpoint wants events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|e| e.iter().any(|t| t == event_type))
    }
}

/// Everything the alerts need: an optional broker and any number of webhooks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertsConfig {
    /// `[mqtt]`, if configured.
    pub mqtt: Option<MqttConfig>,
    /// `[[webhook]]` entries.
    pub webhooks: Vec<WebhookConfig>,
}

impl AlertsConfig {
    /// Validates every part (the first error found).
    pub fn validate(&self) -> Result<(), AlertsError> {
        if let Some(m) = &self.mqtt {
            m.validate()?;
        }
        self.webhooks.iter().try_for_each(WebhookConfig::validate)
    }
}

/// The machine's host name (Linux: the kernel's UTS name), `vigil` if unknown.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vigil".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        mqtt: Option<MqttConfig>,
        #[serde(default)]
        webhook: Vec<WebhookConfig>,
    }

    fn parse(s: &str) -> Result<File, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn mqtt_defaults() {
        let f = parse(r#"{"mqtt":{"host":"broker.lan"}}"#).unwrap();
        let m = f.mqtt.unwrap();
        assert_eq!(m.effective_port(), 1883);
        assert_eq!(m.topic_prefix, "vigil");
        assert_eq!(m.discovery_prefix, "homeassistant");
        assert!(m.effective_client_id().starts_with("vigil-"));
        let tls = parse(r#"{"mqtt":{"host":"b","tls":true}}"#)
            .unwrap()
            .mqtt
            .unwrap();
        assert_eq!(tls.effective_port(), 8883);
        let explicit = parse(r#"{"mqtt":{"host":"b","tls":true,"port":9000,"client_id":"x"}}"#)
            .unwrap()
            .mqtt
            .unwrap();
        assert_eq!(explicit.effective_port(), 9000);
        assert_eq!(explicit.effective_client_id(), "x");
    }

    #[test]
    fn mqtt_rejects_bad_values() {
        for bad in [
            r#"{"mqtt":{"host":"b","bogus":1}}"#,
            r#"{"mqtt":{"host":""}}"#,
            r#"{"mqtt":{"host":"b","topic_prefix":"a/+/b"}}"#,
            r#"{"mqtt":{"host":"b","topic_prefix":"a/"}}"#,
            r##"{"mqtt":{"host":"b","discovery_prefix":"#"}}"##,
            r#"{"mqtt":{"host":"b","ca_file":"/x.pem"}}"#,
            r#"{"mqtt":{"host":"b","password":"p"}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let f = parse(
            r#"{"mqtt":{"host":"b","username":"u","password":"hunter2-secret"},
            "webhook":[{"url":"https://h/x","secret":"0123456789abcdef-key"}]}"#,
        )
        .unwrap();
        let dbg = format!("{:?} {:?}", f.mqtt, f.webhook);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("0123456789abcdef-key"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn webhook_validation() {
        let ok = parse(
            r#"{"webhook":[{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef",
            "events":["motion_start"]}]}"#,
        )
        .unwrap();
        let w = &ok.webhook[0];
        assert_eq!(w.timeout_s, 10);
        assert_eq!(w.give_up_after_s, 3600);
        assert!(w.wants("motion_start"));
        assert!(!w.wants("motion_end"));
        for bad in [
            r#"{"webhook":[{"url":"ftp://h/x","secret":"0123456789abcdef"}]}"#,
            r#"{"webhook":[{"url":"file:///etc/passwd","secret":"0123456789abcdef"}]}"#,
            r#"{"webhook":[{"url":"not a url","secret":"0123456789abcdef"}]}"#,
            r#"{"webhook":[{"url":"https://h/x","secret":"short"}]}"#,
            r#"{"webhook":[{"url":"https://h/x","secret":"0123456789abcdef","events":["boom"]}]}"#,
            r#"{"webhook":[{"url":"https://h/x","secret":"0123456789abcdef","timeout_s":0}]}"#,
            r#"{"webhook":[{"url":"https://h/x","secret":"0123456789abcdef","extra":1}]}"#,
            r#"{"webhook":[{"url":"http://h/x","secret":"0123456789abcdef","ca_file":"/c.pem"}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn error_does_not_echo_the_url_secrets() {
        let e = parse(
            r#"{"webhook":[{"url":"https://user:pw-123@h/x?token=tok-456","secret":"short"}]}"#,
        )
        .unwrap_err();
        assert!(!e.contains("pw-123") && !e.contains("tok-456"), "{e}");
    }
}

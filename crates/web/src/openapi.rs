//! `GET /api/openapi.json`: an OpenAPI 3.1 document generated from [`crate::ROUTES`] and the
//! request and answer types of the handlers, so it cannot drift from what the router serves.
//!
//! Paths, methods and who may call them come from the route table. Bodies come from
//! [`bodies`], which names for every route the Rust types its handler reads and writes; their
//! JSON Schemas (2020-12, the dialect of OpenAPI 3.1) are derived by schemars from the same
//! serde types, so a field renamed in Rust is renamed in the document. Answer schemas are
//! shared under `components/schemas` and closed ([`Closed`]); request schemas are inlined,
//! because a type may read differently than it writes (a camera's password is accepted,
//! never answered).
//! `tests/openapi.rs` validates real answers against the served document.

use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::account_routes::{
    AuditQuery, LoggedIn, LoginBody, NewToken, NewTokenBody, NewUserBody, PasswordBody,
    SessionView, SetupBody, SetupStatus, UpdateUserBody, UserView,
};
use crate::accounts::{AuditRow, SessionInfo, TokenInfo};
use crate::api_cameras::{CameraBody, CameraView, ProbeAnswer, SystemStatus};
use crate::error::ErrorBody;
use crate::events_api::EventQuery;
use crate::playback::{RangeQuery, Recordings};
use crate::share_routes::{
    ClipQuery, CreateShareBody, CreatedShare, OpenBody, ShareRefusal, ShareView, SharesAnswer,
};
use crate::state::{Access, CurrentUser, RouteDoc};
use vigil_nvr::events::EventRow;

/// Names of the `{param}` segments of an axum path (`{*rest}` included).
fn params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| p.trim_start_matches('*'))
        .collect()
}

/// The OpenAPI path of an axum path (`{*path}` → `{path}`).
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// Where the answer schemas are kept in the document.
const SCHEMAS: &str = "/components/schemas/";

/// Closes every object schema that does not say otherwise (`additionalProperties: false`):
/// an answer never holds more than its type writes, so a field that appears in an answer but
/// not in the document (a leak) fails the validation of real answers. Open objects
/// (`/api/system`'s additions) say so.
#[derive(Clone)]
struct Closed;

impl Transform for Closed {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(o) = schema.as_object_mut() {
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".into(), false.into());
            }
        }
        transform_subschemas(self, schema);
    }
}

/// The two schema generators: answers are described as serde writes them, requests as serde
/// reads them (defaults, write-only fields).
struct Schemas {
    answers: SchemaGenerator,
    requests: SchemaGenerator,
}

impl Schemas {
    fn new() -> Self {
        Self {
            answers: SchemaSettings::draft2020_12()
                .for_serialize()
                .with(|s| {
                    s.definitions_path = SCHEMAS.into();
                    s.meta_schema = None;
                })
                .with_transform(Closed)
                .into_generator(),
            requests: SchemaSettings::draft2020_12()
                .for_deserialize()
                .with(|s| {
                    s.inline_subschemas = true;
                    s.meta_schema = None;
                })
                .into_generator(),
        }
    }

    /// A JSON answer of type `T`.
    fn json<T: JsonSchema>(&mut self) -> Answer {
        Answer::Json(self.answers.subschema_for::<T>().to_value())
    }

    /// A JSON request body of type `T`.
    fn request<T: JsonSchema>(&mut self) -> Value {
        self.requests.subschema_for::<T>().to_value()
    }

    /// The query parameters of a query type `T` (a struct of optional fields).
    fn query<T: JsonSchema>(&mut self) -> Vec<Value> {
        let schema = self.requests.root_schema_for::<T>().to_value();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = schema["properties"].as_object() else {
            return Vec::new();
        };
        props
            .iter()
            .map(|(name, s)| {
                let mut s = s.clone();
                let description = s
                    .as_object_mut()
                    .and_then(|o| o.remove("description"))
                    .unwrap_or(Value::Null);
                // A query parameter is absent or a value; it is never JSON `null`.
                if let Some(types) = s["type"].as_array() {
                    let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                    if kept.len() == 1 {
                        s["type"] = kept[0].clone();
                    }
                }
                let mut p = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": s,
                });
                // OpenAPI wants a string here or nothing.
                if description.is_string() {
                    p["description"] = description;
                }
                p
            })
            .collect()
    }
}

/// One kind of answer body.
enum Answer {
    /// JSON of this schema.
    Json(Value),
    /// Bytes of this media type.
    Bytes(&'static str),
    /// No body.
    Empty,
}

/// The bodies of one route: the request's, the success answers', and the error statuses
/// the handler itself may answer with (the guard's 401 and 403 are added from the route's
/// [`Access`] and method).
struct Bodies {
    request: Option<Value>,
    /// The request body's media type (JSON unless said otherwise).
    request_type: &'static str,
    query: Vec<Value>,
    ok: Vec<(u16, &'static str, Answer)>,
    errors: &'static [u16],
}

impl Bodies {
    fn ok(status: u16, description: &'static str, answer: Answer) -> Self {
        Self {
            request: None,
            request_type: "application/json",
            query: Vec::new(),
            ok: vec![(status, description, answer)],
            errors: &[],
        }
    }

    fn request(mut self, schema: Value) -> Self {
        self.request = Some(schema);
        self
    }

    /// A request body of a media type other than JSON (`application/sdp`), as a string.
    fn request_bytes(mut self, media_type: &'static str) -> Self {
        self.request = Some(json!({"type": "string"}));
        self.request_type = media_type;
        self
    }

    fn query(mut self, params: Vec<Value>) -> Self {
        self.query = params;
        self
    }

    fn also(mut self, status: u16, description: &'static str, answer: Answer) -> Self {
        self.ok.push((status, description, answer));
        self
    }

    fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
}

/// The bodies of every route, by the types its handler reads and writes; `None` for a route
/// this table does not know (a test fails on it).
fn bodies(d: &RouteDoc, s: &mut Schemas) -> Option<Bodies> {
    use Answer::{Bytes, Empty};
    Some(match (d.method, d.path) {
        ("GET", "/") | ("GET", "/index.html") => Bodies::ok(200, "The web app", Bytes("text/html")),
        ("GET", "/manifest.webmanifest") => {
            Bodies::ok(200, "The PWA manifest", Bytes("application/manifest+json"))
        }
        ("GET", "/assets/{*path}") => Bodies::ok(
            200,
            "The file (304 when If-None-Match matches)",
            Bytes("*/*"),
        ),
        ("GET", "/api/setup") => {
            Bodies::ok(200, "Whether setup is needed", s.json::<SetupStatus>())
        }
        ("POST", "/api/setup") => {
            Bodies::ok(200, "Logged in as the new admin", s.json::<LoggedIn>())
                .request(s.request::<SetupBody>())
                .errors(&[400, 403, 409, 413, 415])
        }
        ("POST", "/api/login") => Bodies::ok(200, "Logged in", s.json::<LoggedIn>())
            .also(
                202,
                "Password right; a second factor is due",
                s.json::<crate::second_factor_routes::SecondFactorDue>(),
            )
            .request(s.request::<LoginBody>())
            .errors(&[400, 401, 413, 415, 429]),
        ("POST", "/api/login/second-factor") => Bodies::ok(200, "Logged in", s.json::<LoggedIn>())
            .request(s.request::<crate::second_factor_routes::SecondStepBody>())
            .errors(&[400, 401, 413, 415, 429]),
        ("GET", "/api/account/second-factor") => Bodies::ok(
            200,
            "The caller's second factors",
            s.json::<crate::second_factor::Status>(),
        ),
        ("POST", "/api/account/second-factor/totp") => Bodies::ok(
            200,
            "The secret and its QR code",
            s.json::<crate::second_factor::Enrolment>(),
        )
        .errors(&[409]),
        ("POST", "/api/account/second-factor/totp/confirm") => Bodies::ok(
            200,
            "On; the recovery codes, shown once",
            s.json::<crate::second_factor_routes::RecoveryCodes>(),
        )
        .request(s.request::<crate::second_factor_routes::ConfirmBody>())
        .errors(&[400, 409, 413, 415]),
        ("POST", "/api/account/second-factor/remove") => Bodies::ok(204, "Off", Empty)
            .request(s.request::<crate::second_factor_routes::PasswordAgain>())
            .errors(&[400, 403, 413, 415, 429]),
        ("POST", "/api/account/second-factor/recovery-codes") => Bodies::ok(
            200,
            "The new recovery codes, shown once",
            s.json::<crate::second_factor_routes::RecoveryCodes>(),
        )
        .request(s.request::<crate::second_factor_routes::PasswordAgain>())
        .errors(&[400, 403, 409, 413, 415, 429]),
        ("GET", "/api/settings/second-factor") => Bodies::ok(
            200,
            "The policy",
            s.json::<crate::second_factor_routes::PolicyBody>(),
        ),
        ("PUT", "/api/settings/second-factor") => Bodies::ok(
            200,
            "Set",
            s.json::<crate::second_factor_routes::PolicyBody>(),
        )
        .request(s.request::<crate::second_factor_routes::PolicyBody>())
        .errors(&[400, 413, 415]),
        ("POST", "/api/users/{name}/reset-second-factor") => {
            Bodies::ok(204, "Removed", Empty).errors(&[404])
        }
        ("POST", "/api/login/passkey/options") => Bodies::ok(
            200,
            "Options for navigator.credentials.get() and the ticket",
            s.json::<crate::passkey_routes::Options>(),
        )
        .errors(&[409, 429, 503]),
        ("POST", "/api/login/passkey") => Bodies::ok(200, "Logged in", s.json::<LoggedIn>())
            .request(s.request::<crate::passkey_routes::SignInBody>())
            .errors(&[400, 401, 409, 413, 415, 429]),
        ("POST", "/api/login/second-factor/passkey") => Bodies::ok(
            200,
            "Options for navigator.credentials.get() (the ticket is the password step's)",
            s.json::<crate::passkey_routes::Options>(),
        )
        .request(s.request::<crate::passkey_routes::SecondStepOptionsBody>())
        .errors(&[400, 401, 409, 413, 415, 503]),
        ("GET", "/api/account/passkeys") => Bodies::ok(
            200,
            "The caller's passkeys",
            s.json::<Vec<crate::passkeys::PasskeyRow>>(),
        ),
        ("POST", "/api/account/passkeys/options") => Bodies::ok(
            200,
            "Options for navigator.credentials.create() and the ticket",
            s.json::<crate::passkey_routes::Options>(),
        )
        .request(s.request::<crate::second_factor_routes::PasswordAgain>())
        .errors(&[400, 403, 409, 413, 415, 429, 503]),
        ("POST", "/api/account/passkeys") => Bodies::ok(
            201,
            "Added; recovery codes when it is the first second factor",
            s.json::<crate::passkey_routes::Registered>(),
        )
        .request(s.request::<crate::passkey_routes::RegisterBody>())
        .errors(&[400, 409, 413, 415]),
        ("DELETE", "/api/account/passkeys/{id}") => {
            Bodies::ok(204, "Removed", Empty).errors(&[404])
        }
        ("POST", "/api/logout") => Bodies::ok(204, "Logged out", Empty),
        ("GET", "/api/session") => Bodies::ok(200, "The session", s.json::<SessionView>()),
        ("POST", "/api/account/password") => Bodies::ok(204, "Changed", Empty)
            .request(s.request::<PasswordBody>())
            .errors(&[400, 403, 413, 415, 429]),
        ("GET", "/api/sessions") => Bodies::ok(200, "Sessions", s.json::<Vec<SessionInfo>>()),
        ("DELETE", "/api/sessions/{id}") => Bodies::ok(204, "Ended", Empty).errors(&[404]),
        ("GET", "/api/cameras") => Bodies::ok(200, "Cameras", s.json::<Vec<CameraView>>()),
        ("POST", "/api/cameras") => Bodies::ok(201, "Added", s.json::<CameraView>())
            .request(s.request::<CameraBody>())
            .errors(&[400, 409, 413, 415, 422, 503]),
        ("POST", "/api/cameras/test") => {
            Bodies::ok(200, "What the camera offers", s.json::<ProbeAnswer>())
                .request(s.request::<CameraBody>())
                .errors(&[400, 413, 415, 422, 503])
        }
        ("GET", "/api/cameras/{name}") => {
            Bodies::ok(200, "The camera", s.json::<CameraView>()).errors(&[404])
        }
        ("PUT", "/api/cameras/{name}") => Bodies::ok(200, "Changed", s.json::<CameraView>())
            .request(s.request::<CameraBody>())
            .errors(&[400, 404, 409, 413, 415, 422, 503]),
        ("DELETE", "/api/cameras/{name}") => {
            Bodies::ok(204, "Removed", Empty).errors(&[404, 409, 503])
        }
        ("GET", "/api/cameras/{name}/snapshot.jpg") => {
            Bodies::ok(200, "The picture", Bytes("image/jpeg")).errors(&[404, 503])
        }
        ("GET", "/api/system") => Bodies::ok(200, "System status", s.json::<SystemStatus>()),
        ("GET", "/api/openapi.json") => Bodies::ok(
            200,
            "This document",
            Answer::Json(json!({"type": "object"})),
        ),
        ("GET", "/api/users") => Bodies::ok(200, "Users", s.json::<Vec<UserView>>()),
        ("POST", "/api/users") => Bodies::ok(201, "Added", s.json::<UserView>())
            .request(s.request::<NewUserBody>())
            .errors(&[400, 409, 413, 415]),
        ("PUT", "/api/users/{name}") => Bodies::ok(200, "Changed", s.json::<UserView>())
            .request(s.request::<UpdateUserBody>())
            .errors(&[400, 404, 409, 413, 415]),
        ("DELETE", "/api/users/{name}") => Bodies::ok(204, "Removed", Empty).errors(&[404, 409]),
        ("GET", "/api/audit") => Bodies::ok(200, "Audit rows", s.json::<Vec<AuditRow>>())
            .query(s.query::<AuditQuery>())
            .errors(&[400]),
        ("GET", "/api/tokens") => Bodies::ok(200, "Tokens", s.json::<Vec<TokenInfo>>()),
        ("POST", "/api/tokens") => Bodies::ok(201, "Created", s.json::<NewToken>())
            .request(s.request::<NewTokenBody>())
            .errors(&[400, 413, 415]),
        ("DELETE", "/api/tokens/{id}") => Bodies::ok(204, "Deleted", Empty).errors(&[404]),
        ("GET", "/api/cameras/{name}/live") => Bodies::ok(
            101,
            "WebSocket: JSON text messages (init, ping) and fMP4 binary messages",
            Empty,
        )
        .query(
            s.query::<RangeQuery>()
                .into_iter()
                .filter(|p| p["name"] == "stream")
                .collect(),
        )
        .errors(&[400, 403, 404, 426]),
        ("GET", "/api/cameras/{name}/recordings") => {
            Bodies::ok(200, "Ranges and gaps", s.json::<Recordings>())
                .query(
                    s.query::<RangeQuery>()
                        .into_iter()
                        .filter(|p| p["name"] != "download")
                        .collect(),
                )
                .errors(&[400, 403, 404])
        }
        ("GET", "/api/cameras/{name}/export.mp4") => {
            Bodies::ok(200, "The whole file", Bytes("video/mp4"))
                .also(206, "The asked byte range", Bytes("video/mp4"))
                .query(s.query::<RangeQuery>())
                .errors(&[400, 403, 404, 416])
        }
        ("GET", "/api/events") => Bodies::ok(200, "Events", s.json::<Vec<EventRow>>())
            .query(s.query::<EventQuery>())
            .errors(&[400, 403]),
        ("GET", "/s/") => Bodies::ok(200, "The share viewer page", Bytes("text/html")),
        ("GET", "/api/shares") => Bodies::ok(200, "Shares", s.json::<SharesAnswer>()),
        ("POST", "/api/shares") => Bodies::ok(201, "Created", s.json::<CreatedShare>())
            .request(s.request::<CreateShareBody>())
            .errors(&[400, 404, 413, 415, 502, 503]),
        ("DELETE", "/api/shares/{id}") => Bodies::ok(204, "Revoked", Empty).errors(&[404]),
        ("POST", "/api/share/open") => Bodies::ok(200, "Opened; the media session cookie is set", s.json::<ShareView>())
            .also(401, "Password required or wrong", s.json::<ShareRefusal>())
            .also(404, "No such link", s.json::<ShareRefusal>())
            .also(410, "The share ended (expired, revoked, used up, footage deleted)", s.json::<ShareRefusal>())
            .request(s.request::<OpenBody>())
            .errors(&[400, 413, 415, 429]),
        ("GET", "/api/share/{id}/info") => Bodies::ok(200, "The share", s.json::<ShareView>())
            .also(410, "The share ended", s.json::<ShareRefusal>()),
        ("GET", "/api/share/{id}/clip.mp4") => {
            Bodies::ok(200, "The whole clip", Bytes("video/mp4"))
                .also(206, "The asked byte range", Bytes("video/mp4"))
                .also(410, "The share ended", s.json::<ShareRefusal>())
                .query(s.query::<ClipQuery>())
                .errors(&[400, 403, 416])
        }
        ("GET", "/api/share/{id}/live") => Bodies::ok(
            101,
            "WebSocket: the live protocol of /api/cameras/{name}/live; close 4410 when the share ends",
            Empty,
        )
        .also(410, "The share ended", s.json::<ShareRefusal>())
        .errors(&[403, 426]),
        ("POST", "/api/cameras/{name}/whep") => Bodies::ok(
            201,
            "The SDP answer; Location names the session, Link headers the ICE servers",
            Bytes("application/sdp"),
        )
        .also(
            422,
            "The stream cannot play over WebRTC as is (use MSE)",
            s.json::<crate::whep::WhepDeclined>(),
        )
        .request_bytes("application/sdp")
        .query(s.query::<crate::whep::WhepQuery>())
        .errors(&[400, 403, 404, 413, 415, 501, 503]),
        ("OPTIONS", "/api/cameras/{name}/whep") => Bodies::ok(
            204,
            "Link headers name the STUN and TURN servers (with TURN credentials)",
            Empty,
        )
        .query(s.query::<crate::whep::WhepQuery>())
        .errors(&[403, 404, 501]),
        ("DELETE", "/api/cameras/{name}/whep/{id}") => {
            Bodies::ok(204, "Ended", Empty).errors(&[404])
        }
        ("GET", "/api/events/{id}/thumbnail.jpg") => {
            Bodies::ok(200, "The thumbnail", Bytes("image/jpeg")).errors(&[400, 403, 404])
        }
        ("POST", "/api/discover") => Bodies::ok(
            200,
            "The ONVIF devices that answered",
            s.json::<Vec<crate::onvif_routes::Discovered>>(),
        )
        .request(s.request::<crate::onvif_routes::DiscoverBody>())
        .errors(&[400, 413, 415, 503]),
        ("POST", "/api/onvif/device") => Bodies::ok(
            200,
            "Model, firmware, profiles and main/sub stream URLs",
            s.json::<crate::onvif_routes::DeviceAnswer>(),
        )
        .request(s.request::<crate::onvif_routes::DeviceBody>())
        // 422 names NotAuthorized when the camera refused the credentials.
        .errors(&[400, 413, 415, 422, 502, 504]),
        _ => return None,
    })
}

/// The OpenAPI operation of route `d`.
fn operation(d: &RouteDoc, s: &mut Schemas, error: &Value) -> Value {
    let mut op = Map::new();
    let mut summary = d.summary.to_owned();
    if d.access == Access::Admin {
        summary.push_str(" (admin)");
        op.insert("x-vigil-role".into(), "admin".into());
    }
    op.insert("summary".into(), summary.into());
    op.insert(
        "operationId".into(),
        format!("{} {}", d.method, d.path).into(),
    );
    if d.access == Access::Public {
        op.insert("security".into(), json!([]));
    }
    if d.access == Access::Share {
        op.insert("security".into(), json!([{"shareSession": []}]));
        op.insert("x-vigil-role".into(), "share".into());
    }
    let b = bodies(d, s);
    let mut parameters: Vec<Value> = params(d.path)
        .into_iter()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let mut responses = Map::new();
    let mut errors: Vec<u16> = Vec::new();
    if let Some(b) = b {
        parameters.extend(b.query);
        if let Some(r) = b.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {b.request_type: {"schema": r}}}),
            );
        }
        for (status, description, answer) in b.ok {
            let content = match answer {
                Answer::Json(schema) => json!({"application/json": {"schema": schema}}),
                Answer::Bytes(mime) => {
                    let mut m = Map::new();
                    m.insert(mime.into(), json!({}));
                    Value::Object(m)
                }
                Answer::Empty => Value::Null,
            };
            let mut r = json!({"description": description});
            if !content.is_null() {
                r["content"] = content;
            }
            responses.insert(status.to_string(), r);
        }
        errors.extend(b.errors);
    }
    if d.path.starts_with("/api/") {
        if d.access != Access::Public {
            errors.push(401);
        }
        // Admin-only routes refuse viewers; state changes refuse other origins and a
        // missing CSRF token.
        if d.access == Access::Admin || d.method != "GET" {
            errors.push(403);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({"description": reason(status), "content": {"application/json": {"schema": error}}}),
            );
        }
        responses.insert(
            "default".into(),
            json!({"description": "Other errors (500 …)", "content": {"application/json": {"schema": error}}}),
        );
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    op.insert("responses".into(), responses.into());
    Value::Object(op)
}

/// The reason phrase of an error status, for its description.
fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// The document for `routes`.
pub fn document(routes: &[RouteDoc]) -> Value {
    let mut s = Schemas::new();
    let error = s.answers.subschema_for::<ErrorBody>().to_value();
    let mut paths = Map::new();
    for d in routes {
        let op = operation(d, &mut s, &error);
        let entry = paths
            .entry(openapi_path(d.path))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(e) = entry.as_object_mut() {
            e.insert(d.method.to_ascii_lowercase(), op);
        }
    }
    let schemas = s.answers.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Vigil's JSON API. Times are microseconds since the epoch (*_us). Requests other than GET/HEAD with a session cookie need a same-origin Origin header and X-CSRF-Token (from GET /api/session); API tokens are exempt. Every API error is {\"error\": \"…\"}."
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"session": []}, {"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE},
                "token": {"type": "http", "scheme": "bearer"},
                "shareSession": {"type": "apiKey", "in": "cookie", "name": "vigil_share_{id}", "description": "A share link's media session, set by POST /api/share/open"}
            },
            "schemas": schemas,
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn handler(_user: CurrentUser) -> Json<Value> {
    Json(document(crate::ROUTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_with_its_bodies() {
        let doc = document(crate::ROUTES);
        assert_eq!(doc["openapi"], "3.1.0");
        let mut s = Schemas::new();
        for d in crate::ROUTES {
            assert!(
                bodies(d, &mut s).is_some(),
                "{} {} has no entry in openapi::bodies",
                d.method,
                d.path
            );
            let op = &doc["paths"][openapi_path(d.path)][d.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", d.method, d.path);
            assert_eq!(
                op["security"].is_array(),
                matches!(d.access, Access::Public | Access::Share),
                "{d:?}"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(p.get("description").is_none_or(Value::is_string), "{p}");
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses
                    .keys()
                    .any(|k| k.starts_with('1') || k.starts_with('2')),
                "{} {} has no success answer",
                d.method,
                d.path
            );
            if d.path.starts_with("/api/") && d.access != Access::Public {
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{d:?}"
                );
            }
        }
        let snap = &doc["paths"]["/api/cameras/{name}/snapshot.jpg"]["get"]["parameters"][0];
        assert_eq!(snap["name"], "name");
        assert_eq!(params("/assets/{*path}"), ["path"]);
    }

    /// Every `$ref` points at a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("local reference");
                        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
                    }
                    o.values().for_each(|v| walk(v, doc));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        let doc = document(crate::ROUTES);
        walk(&doc, &doc);
    }

    #[test]
    fn bodies_are_described_by_their_types() {
        let doc = document(crate::ROUTES);
        let login = &doc["paths"]["/api/login"]["post"];
        let req = &login["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(req["additionalProperties"], false, "{req}");
        assert_eq!(req["required"], json!(["username", "password"]));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["LoggedIn"]["properties"]["role"]["$ref"],
            "#/components/schemas/Role"
        );
        let roles: Vec<&Value> = schemas["Role"]["oneOf"]
            .as_array()
            .expect("Role is one of its values")
            .iter()
            .map(|v| &v["const"])
            .collect();
        assert_eq!(roles, [&json!("admin"), &json!("viewer")]);
        // The camera password is accepted, never answered.
        let add = &doc["paths"]["/api/cameras"]["post"];
        let body = &add["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"]["password"].is_object(), "{body}");
        assert!(schemas["CameraView"]["properties"]["password"].is_null());
        assert_eq!(
            schemas["CameraView"]["properties"]["has_password"]["type"],
            "boolean"
        );
        let audit = &doc["paths"]["/api/audit"]["get"]["parameters"][0];
        assert_eq!(audit["name"], "limit");
        assert_eq!(audit["in"], "query");
        assert_eq!(audit["schema"]["type"], "integer");
    }
}

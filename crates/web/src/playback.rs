//! Recordings: the timeline's ranges and gaps, and `export.mp4`, a standard progressive MP4
//! of any wall-clock range (the recorder's [`ExportPlan`]) served with HTTP Range support so a
//! `<video>` element can seek in it.
//!
//! The export's length is known from the index before a media byte is read, so a request is
//! answered from the plan alone: `Content-Length`, `Accept-Ranges: bytes`, and for a single
//! `Range` a 206 with exactly those bytes (RFC 9110 §14). The body is produced on the blocking
//! pool in chunks of [`CHUNK`] bytes through a bounded channel: an hour of video is never held
//! in memory, and a client that stops reading stops the reads.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vigil_recorder::{Error as RecError, ExportPlan};

use crate::{Access, ApiError, AppState, CurrentUser, RouteDoc};

/// The playback routes.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/cameras/{name}/recordings",
        access: Access::User,
        summary: "Recorded ranges and gaps of a stream in [start_us, end_us)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/cameras/{name}/export.mp4",
        access: Access::User,
        summary: "A recorded range as a standard MP4 (HTTP Range supported; download=1 for an attachment)",
    },
];

/// Longest range one request may ask for.
pub const MAX_SPAN_US: i64 = 24 * 3600 * 1_000_000;

/// Bytes read per step when streaming an export.
pub const CHUNK: u64 = 256 * 1024;

/// Response header of `export.mp4`: wall-clock time (µs since the epoch) of the file's first
/// picture, the key frame at or before the requested start.
pub const START_HEADER: &str = "x-vigil-start-us";

/// Chunks buffered between the reading thread and the socket.
const CHANNEL_CHUNKS: usize = 4;

/// The playback routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/cameras/{name}/recordings", get(recordings))
        .route("/api/cameras/{name}/export.mp4", get(export))
}

/// Query of both routes.
#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct RangeQuery {
    /// Start of the range, µs since the epoch (required).
    start_us: Option<i64>,
    /// End of the range (exclusive), µs since the epoch, at most 24 h after the start (required).
    end_us: Option<i64>,
    /// `main` (default) or `sub`.
    stream: Option<String>,
    /// `1`: answer as an attachment (`export.mp4` only).
    download: Option<String>,
}

/// Validated query of both routes.
struct Span {
    start_us: i64,
    end_us: i64,
    stream: String,
}

fn validate(q: &RangeQuery) -> Result<Span, ApiError> {
    let (Some(start_us), Some(end_us)) = (q.start_us, q.end_us) else {
        return Err(ApiError::bad_request("start_us and end_us are required"));
    };
    if start_us >= end_us {
        return Err(ApiError::bad_request("start_us must be before end_us"));
    }
    if end_us.saturating_sub(start_us) > MAX_SPAN_US {
        return Err(ApiError::bad_request("the range may span at most 24 hours"));
    }
    let stream = q.stream.clone().unwrap_or_else(|| "main".to_owned());
    if stream != "main" && stream != "sub" {
        return Err(ApiError::bad_request("stream must be main or sub"));
    }
    Ok(Span {
        start_us,
        end_us,
        stream,
    })
}

/// A query string that does not parse (a number that is none, …) is a 400 with the API's JSON
/// error body, like every other error, not axum's plain-text rejection.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn check_camera(user: &CurrentUser, name: &str) -> Result<(), ApiError> {
    if !user.can_view(name) {
        return Err(ApiError::forbidden());
    }
    // Recordings outlive a removed camera, and its name is only used as an index key
    // (never as a path), so an unknown camera is simply one with nothing recorded.
    vigil_recorder::check_name(name).map_err(|_| ApiError::not_found("no such camera"))
}

/// A recorded range, µs since the epoch.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct TimeRange {
    /// Start.
    start_us: i64,
    /// End (exclusive).
    end_us: i64,
}

/// A gap in the recordings and its cause.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Gap {
    /// Start, µs since the epoch.
    start_us: i64,
    /// End, µs since the epoch.
    end_us: i64,
    /// Why nothing was recorded.
    reason: String,
}

/// Answer of `GET /api/cameras/{name}/recordings`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Recordings {
    /// Recorded ranges within the asked range.
    ranges: Vec<TimeRange>,
    /// Ranges only the cloud tier still holds (their local files were deleted after upload);
    /// `export.mp4` plays them from the bucket. Empty unless the recorder keeps an identity.
    cloud_ranges: Vec<TimeRange>,
    /// Gaps within the asked range.
    gaps: Vec<Gap>,
}

async fn recordings(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Recordings>, ApiError> {
    check_camera(&user, &name)?;
    let q = query(q)?;
    let span = validate(&q)?;
    let recorder = state.nvr.recorder().clone();
    let cloud = state.cloud.clone();
    let (camera, stream) = (name.clone(), span.stream.clone());
    let cloud_ranges = tokio::task::spawn_blocking(move || match cloud {
        Some(c) => c.ranges(&camera, &stream, span.start_us, span.end_us),
        None => Ok(Vec::new()),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let result = tokio::task::spawn_blocking(move || {
        let ranges = recorder.ranges(&name, &span.stream, span.start_us, span.end_us)?;
        let gaps = recorder.gaps(&name, &span.stream, span.start_us, span.end_us)?;
        Ok::<_, RecError>((ranges, gaps))
    })
    .await
    .map_err(ApiError::internal)?;
    let (ranges, gaps) = match result {
        Ok(r) => r,
        // Never recorded: an empty timeline, not an error.
        Err(RecError::UnknownStream { .. }) => (Vec::new(), Vec::new()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(Json(Recordings {
        cloud_ranges: cloud_ranges
            .into_iter()
            .map(|(start_us, end_us)| TimeRange { start_us, end_us })
            .collect(),
        ranges: ranges
            .into_iter()
            .map(|r| TimeRange {
                start_us: r.start_wall_us,
                end_us: r.end_wall_us,
            })
            .collect(),
        gaps: gaps
            .into_iter()
            .map(|g| Gap {
                start_us: g.start_wall_us,
                end_us: g.end_wall_us,
                reason: g.reason,
            })
            .collect(),
    }))
}

async fn export(
    user: CurrentUser,
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_camera(&user, &name)?;
    let q = query(q)?;
    let span = validate(&q)?;
    let download = q.download.as_deref() == Some("1");
    serve_export(
        &state,
        &method,
        &headers,
        ExportAsk {
            camera: name,
            stream: span.stream,
            start_us: span.start_us,
            end_us: span.end_us,
            download,
        },
        None,
    )
    .await
}

/// What an export answers: one camera's stream over a range.
pub(crate) struct ExportAsk {
    /// Camera name (checked by the caller).
    pub camera: String,
    /// `main` or `sub`.
    pub stream: String,
    /// Start, µs since the epoch.
    pub start_us: i64,
    /// End (exclusive).
    pub end_us: i64,
    /// Answer as an attachment.
    pub download: bool,
}

/// Whether a streaming answer may go on (a share link not revoked since); asked between
/// chunks, at most once a second.
pub(crate) type StillAllowed = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// The export answer for `ask` (the app's `export.mp4` and a share's `clip.mp4`): HTTP Range,
/// disk first then cloud. With `allowed`, the body ends early once it says no.
pub(crate) async fn serve_export(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    ask: ExportAsk,
    allowed: Option<StillAllowed>,
) -> Result<Response, ApiError> {
    let ExportAsk {
        camera: name,
        stream,
        start_us,
        end_us,
        download,
    } = ask;
    let span = Span {
        start_us,
        end_us,
        stream,
    };
    let recorder = state.nvr.recorder().clone();
    let camera = name.clone();
    let cloud = state.cloud.clone();
    // The disk first; footage that only the cloud holds (deleted locally after upload)
    // is read from the bucket.
    let (plan, reader) = tokio::task::spawn_blocking(move || {
        match recorder.export(&camera, &span.stream, span.start_us, span.end_us) {
            Ok(p) => Ok((p, None)),
            Err(RecError::UnknownStream { .. } | RecError::NothingRecorded) => match cloud {
                Some(c) => match c.plan(&camera, &span.stream, span.start_us, span.end_us) {
                    Ok((p, r)) => Ok((p, Some(r))),
                    Err(vigil_cloud::Error::NotFound(_))
                    | Err(vigil_cloud::Error::Recorder(RecError::NothingRecorded)) => Err(
                        ApiError::not_found("nothing recorded in the requested time range"),
                    ),
                    Err(e) => Err(ApiError::internal(e)),
                },
                None => Err(ApiError::not_found(
                    "nothing recorded in the requested time range",
                )),
            },
            Err(e) => Err(ApiError::internal(e)),
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let total = plan.total_len;
    let first_us = plan.start_wall_us;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, total));
    let (status, start, end) = match range {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0, total),
        Some(RangeSpec::Bytes(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(RangeSpec::Unsatisfiable) => {
            let mut resp =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable")
                    .into_response();
            // RFC 9110 §15.5.17: a 416 says the current length.
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            resp.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(resp);
        }
    };
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        stream_body(plan, reader, start, end, allowed)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    // The export starts at the key frame at or before the requested start: the player needs
    // that time to place the playhead (and to seek to the moment that was asked for).
    h.insert(
        HeaderName::from_static(START_HEADER),
        HeaderValue::from(first_us),
    );
    // Recordings of the newest minutes still grow; never reuse a stale copy.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        // RFC 9110 §14.4: first-last/complete-length, last inclusive.
        let v = format!("bytes {start}-{}/{total}", end - 1);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if download {
        let file = download_name(&name, start_us);
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// Streams bytes `[start, end)` of the export, read on the blocking pool one chunk at a time.
fn stream_body(
    plan: ExportPlan,
    cloud: Option<vigil_cloud::playback::CloudReader>,
    start: u64,
    end: u64,
    allowed: Option<StillAllowed>,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut pos = start;
        let mut checked = std::time::Instant::now();
        while pos < end {
            if let Some(ok) = &allowed {
                if checked.elapsed() >= std::time::Duration::from_secs(1) {
                    checked = std::time::Instant::now();
                    if !ok() {
                        // Revoked mid-download: the connection is cut, the client keeps a
                        // truncated file it can tell from its Content-Length.
                        let _ = tx.blocking_send(Err(std::io::Error::new(
                            std::io::ErrorKind::PermissionDenied,
                            "share ended",
                        )));
                        return;
                    }
                }
            }
            let next = end.min(pos.saturating_add(CHUNK));
            let mut buf = Vec::with_capacity((next - pos) as usize);
            let r = match &cloud {
                None => plan.write_range(pos, next, &mut buf),
                Some(c) => {
                    plan.write_range_with(pos, next, &mut buf, |p, o, l| c.read_range(p, o, l))
                }
            };
            let item = match r {
                Ok(()) if buf.len() as u64 == next - pos => Ok(Bytes::from(buf)),
                Ok(()) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "export shorter than planned",
                )),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if let Err(e) = &item {
                // The status line is out already: the connection is cut, and the log says why.
                tracing::warn!("export read failed at byte {pos}: {e}");
            }
            // A send error means the client went away: stop reading.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
            pos = next;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

/// `CAMERA-YYYYMMDD-HHMMSS.mp4` (UTC) with only `[A-Za-z0-9_-]` from the camera name, so the
/// header needs no quoting rules and no path can be smuggled into a browser's download.
pub(crate) fn download_name(camera: &str, start_us: i64) -> String {
    let safe: String = camera
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    let safe = if safe.is_empty() {
        "camera".into()
    } else {
        safe
    };
    let when = time::OffsetDateTime::from_unix_timestamp(start_us.div_euclid(1_000_000))
        .map(|t| {
            format!(
                "{:04}{:02}{:02}-{:02}{:02}{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| "export".into());
    format!("{safe}-{when}.mp4")
}

/// What a `Range` header asks of a representation of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Serve the whole representation with 200 (no usable single byte range: other units,
    /// several ranges, bad syntax — RFC 9110 §14.2 lets a server ignore Range).
    Ignore,
    /// Serve `[start, end)` with 206.
    Bytes(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// RFC 9110 §14.1.2 `bytes=first-last`, `bytes=first-`, `bytes=-suffix`, one range only.
fn parse_range(value: &str, total: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // suffix-range: the last N bytes; N = 0 cannot be satisfied (§14.1.3).
        (true, false) => {
            let Some(n) = last.parse::<u64>().ok().filter(|_| digits(last)) else {
                return RangeSpec::Ignore;
            };
            if n == 0 || total == 0 {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Bytes(total - n.min(total), total)
        }
        (false, _) => {
            let Some(a) = first.parse::<u64>().ok().filter(|_| digits(first)) else {
                return RangeSpec::Ignore;
            };
            let b = if last.is_empty() {
                u64::MAX
            } else {
                match last.parse::<u64>().ok().filter(|_| digits(last)) {
                    Some(b) if b >= a => b,
                    // last < first is an invalid range-spec: ignore the header.
                    _ => return RangeSpec::Ignore,
                }
            };
            if a >= total {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Bytes(a, b.saturating_add(1).min(total))
        }
        (true, true) => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_per_rfc_9110() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Bytes(0, 100));
        assert_eq!(parse_range("bytes=500-", 1000), Bytes(500, 1000));
        assert_eq!(parse_range("bytes=900-5000", 1000), Bytes(900, 1000));
        assert_eq!(parse_range("bytes=-100", 1000), Bytes(900, 1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Bytes(0, 1000));
        assert_eq!(parse_range("bytes=999-999", 1000), Bytes(999, 1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ignore);
        assert_eq!(parse_range("items=0-1", 1000), Ignore);
        assert_eq!(parse_range("bytes=5-1", 1000), Ignore);
        assert_eq!(parse_range("bytes=+1-2", 1000), Ignore);
        assert_eq!(parse_range("bytes=-", 1000), Ignore);
        assert_eq!(parse_range("bytes=99999999999999999999-", 1000), Ignore);
    }

    #[test]
    fn download_names_are_safe() {
        // 2026-11-25 23:41:40 UTC
        let t = 1_795_650_100_000_000;
        assert_eq!(download_name("front", t), "front-20261125-234140.mp4");
        assert_eq!(download_name("../x\"; y", t), "xy-20261125-234140.mp4");
        assert_eq!(download_name("\"", t), "camera-20261125-234140.mp4");
    }

    #[test]
    fn spans_are_validated() {
        let q = |s: Option<i64>, e: Option<i64>, stream: Option<&str>| RangeQuery {
            start_us: s,
            end_us: e,
            stream: stream.map(str::to_owned),
            download: None,
        };
        assert!(validate(&q(Some(1), Some(2), None)).is_ok());
        assert!(validate(&q(Some(2), Some(2), None)).is_err());
        assert!(validate(&q(None, Some(2), None)).is_err());
        assert!(validate(&q(Some(0), Some(MAX_SPAN_US + 1), None)).is_err());
        assert!(validate(&q(Some(0), Some(MAX_SPAN_US), Some("sub"))).is_ok());
        assert!(validate(&q(Some(0), Some(1), Some("../x"))).is_err());
    }
}

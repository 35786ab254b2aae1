//! Motion events: `GET /api/events` (newest first, only cameras the user may view) and each
//! event's JPEG thumbnail.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use vigil_nvr::events::{EventFilter, EventRow};

use crate::{Access, ApiError, AppState, CurrentUser, RouteDoc};

/// The event routes.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/events",
        access: Access::User,
        summary: "Motion events, newest first (query camera, zone, start_us, end_us, limit)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/events/{id}/thumbnail.jpg",
        access: Access::User,
        summary: "JPEG thumbnail of a motion event",
    },
];

/// Most events one request returns.
pub const MAX_LIMIT: u32 = 1000;

/// The event routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/events", get(list))
        .route("/api/events/{id}/thumbnail.jpg", get(thumbnail))
}

/// Query of `GET /api/events`.
#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct EventQuery {
    /// Only this camera.
    camera: Option<String>,
    /// Only events touching this zone.
    zone: Option<String>,
    /// Events overlapping `[start_us, end_us)`, µs since the epoch.
    start_us: Option<i64>,
    /// See `start_us`.
    end_us: Option<i64>,
    /// At most this many (default 200, at most 1000).
    limit: Option<u32>,
}

/// The store's filter for this user and query: a named camera must be viewable (403), and
/// without one a viewer sees only their cameras.
fn filter_for(user: &CurrentUser, q: EventQuery) -> Result<EventFilter, ApiError> {
    if let (Some(s), Some(e)) = (q.start_us, q.end_us) {
        if s >= e {
            return Err(ApiError::bad_request("start_us must be before end_us"));
        }
    }
    let cameras = match q.camera {
        Some(c) if !user.can_view(&c) => return Err(ApiError::forbidden()),
        Some(c) => Some(vec![c]),
        None if user.is_admin() => None,
        None => user.cameras.clone(),
    };
    Ok(EventFilter {
        cameras,
        zone: q.zone.filter(|z| !z.is_empty()),
        start_us: q.start_us,
        end_us: q.end_us,
        limit: Some(q.limit.unwrap_or(200).clamp(1, MAX_LIMIT)),
    })
}

async fn list(
    user: CurrentUser,
    State(state): State<AppState>,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Json<Vec<EventRow>>, ApiError> {
    let filter = filter_for(&user, crate::playback::query(q)?)?;
    let store = state.nvr.event_store().clone();
    let rows = tokio::task::spawn_blocking(move || store.list(&filter))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    // The store filtered already; this keeps the promise even if a filter is ever ignored.
    Ok(Json(
        rows.into_iter()
            .filter(|r| user.can_view(&r.camera))
            .collect(),
    ))
}

async fn thumbnail(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("event ids are numbers"))?;
    let store = state.nvr.event_store().clone();
    let (row, jpeg) = tokio::task::spawn_blocking(move || {
        let row = store.get(id)?;
        let jpeg = match &row {
            Some(_) => store.thumbnail(id)?,
            None => None,
        };
        Ok::<_, vigil_nvr::NvrError>((row, jpeg))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let Some(row) = row else {
        return Err(ApiError::not_found("no such event"));
    };
    if !user.can_view(&row.camera) {
        return Err(ApiError::forbidden());
    }
    let Some(jpeg) = jpeg else {
        return Err(ApiError::not_found("this event has no thumbnail"));
    };
    let mut resp = jpeg.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // A stored thumbnail never changes; it is private to the logged-in user.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_auth::Role;

    fn q(camera: Option<&str>) -> EventQuery {
        EventQuery {
            camera: camera.map(str::to_owned),
            zone: Some(String::new()),
            start_us: None,
            end_us: None,
            limit: Some(5000),
        }
    }

    #[test]
    fn viewers_see_only_their_cameras() {
        let viewer = CurrentUser {
            name: "v".into(),
            role: Role::Viewer,
            cameras: Some(vec!["front".into()]),
        };
        let f = filter_for(&viewer, q(None)).unwrap();
        assert_eq!(f.cameras, Some(vec!["front".to_owned()]));
        assert_eq!(f.limit, Some(MAX_LIMIT));
        assert_eq!(f.zone, None);
        assert_eq!(
            filter_for(&viewer, q(Some("yard"))).unwrap_err().status,
            403
        );
        let admin = CurrentUser {
            name: "a".into(),
            role: Role::Admin,
            cameras: None,
        };
        assert_eq!(filter_for(&admin, q(None)).unwrap().cameras, None);
        assert_eq!(
            filter_for(&admin, q(Some("yard"))).unwrap().cameras,
            Some(vec!["yard".to_owned()])
        );
    }
}

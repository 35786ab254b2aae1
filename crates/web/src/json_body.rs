//! The extractor of JSON request bodies ([`ApiJson`]), shared by every route that takes one.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body: `Content-Type: application/json`, within the body limit, unknown
/// fields refused by the target types; every failure is a JSON error.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "request body too large or unreadable"))?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let msg: String = e.to_string().chars().take(200).collect();
            ApiError::bad_request(format!("invalid request: {msg}"))
        })
    }
}

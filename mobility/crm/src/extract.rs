//! Request extractors whose refusals are [`ApiError`]s, so that a client
//! mistake in the body or the path gets the same JSON error shape as
//! everything else (axum's own rejections are plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::validation::kind_of;

/// The largest request body accepted. Records are a few hundred bytes; the
/// limit only guards the mock against runaway clients.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body that is a JSON object, sent as `application/json`
/// (parameters such as `charset` allowed). Refuses with 415 for another or
/// no content type, 413 over [`MAX_BODY_BYTES`] (enforced by the
/// `DefaultBodyLimit` layer of the app), 400 for malformed JSON or JSON
/// that is not an object.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers().get(CONTENT_TYPE))?;
        let body =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                    ),
                    status => ApiError::new(status, rejection.body_text()),
                })?;
        match serde_json::from_slice(&body) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(other) => Err(ApiError::bad_request(format!(
                "request body must be a JSON object, got {}",
                kind_of(&other)
            ))),
            Err(error) => Err(ApiError::bad_request(format!("malformed JSON: {error}"))),
        }
    }
}

fn check_content_type(value: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
    let unsupported = |message: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    let Some(value) = value else {
        return Err(unsupported(
            "missing Content-Type: send the body as application/json".to_owned(),
        ));
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(unsupported(format!(
            "Content-Type must be application/json, got {value:?}"
        ))),
    }
}

/// The `{id}` segment of a record's path, percent-decoded.
pub struct RecordId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RecordId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

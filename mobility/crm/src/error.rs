//! The one error type of the service. Every refusal, whatever produced it
//! (validation, a missing record, a bad request line, an injected fault), is
//! rendered the same way so that clients parse a single shape:
//! `{"error": "...", "problems": ["Field: what is wrong", ...]}`, with
//! `problems` present only when a body failed validation.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error response: a status and a JSON body.
#[derive(Debug, Serialize, ToSchema, thiserror::Error)]
#[error("{status}: {error}")]
#[schema(example = json!({
    "error": "invalid user",
    "problems": ["Email: required", "LastTripDate: not an RFC 3339 date-time: \"yesterday\""]
}))]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// What went wrong, in one sentence.
    error: String,
    /// Every problem found in the request body, each naming its field.
    /// Present only for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            problems: Vec::new(),
        }
    }

    /// A 400 listing every problem found in a body; `what` names the kind of
    /// record, as in "invalid user".
    pub fn invalid(what: &str, problems: Vec<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: format!("invalid {what}"),
            problems,
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

//! The ingest API: `POST /ingest/{route}` with JSON Lines (one record per
//! line) runs each line through an HTTP-sourced route's chain and publishes
//! what it emits; `200` once the broker has acknowledged all of it, with the
//! lines the chain refused and why.
//!
//! It is the way into Kafka for data that must not reach it as it is: the
//! route's chain encrypts personal fields per subject first (`redact` with
//! `encrypt`), so a topic never holds them in plaintext. Producers
//! authenticate with a bearer token; lines of one request keep their order.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::AdminToken;
use super::body::{self, BodyError};
use super::{ApiError, AppState};
use crate::route::ingest::{self, IngestError};

/// Default largest body of `POST /ingest/{route}`.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The ingest API as configured, its tokens resolved.
pub struct IngestApi {
    pub routes: Vec<String>,
    pub tokens: Vec<AdminToken>,
    pub max_body_bytes: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ingest/{route}", post(ingest_lines))
        .with_state(state)
}

#[derive(Serialize)]
struct Ingested {
    /// Lines published (or dropped on purpose by the chain).
    accepted: usize,
    /// Lines the chain refused, with every reason; not published.
    rejected: Vec<RejectedLine>,
}

#[derive(Serialize)]
struct RejectedLine {
    /// From 1.
    line: usize,
    reasons: Vec<String>,
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Why a request was refused.
enum Refusal {
    Unauthorized(&'static str),
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Api(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized(message) => unauthorized(message),
            Refusal::Api(e) => e.into_response(),
        }
    }
}

fn authorized(api: &IngestApi, headers: &HeaderMap) -> Result<(), Refusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::auth::bearer_token);
    match presented {
        Some(token) if api.tokens.iter().any(|t| t.matches(token.trim())) => Ok(()),
        Some(_) => Err(Refusal::Unauthorized("the bearer token is not valid")),
        None => Err(Refusal::Unauthorized(
            "this endpoint needs `Authorization: Bearer <ingest token>`",
        )),
    }
}

async fn ingest_lines(
    State(state): State<AppState>,
    Path(route_name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let api: &Arc<IngestApi> = state.ingest_api.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the ingest API is not enabled (no [ingest_api] in the routes file)",
        )
    })?;
    authorized(api, &headers)?;
    if !api.routes.contains(&route_name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no ingest route `{route_name}` (the ingest API serves: {})",
                api.routes.join(", ")
            ),
        )
        .into());
    }
    let bytes = body::read(&headers, body, "application/x-ndjson", api.max_body_bytes)
        .await
        .map_err(|e: BodyError| ApiError::new(e.status(), e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    // Blank lines (a trailing newline, say) are not records.
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    if lines.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body holds no records (one JSON value per line)",
        )
        .into());
    }
    let route = state.control.route(&route_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the ingest route `{route_name}` is not running"),
        )
    })?;
    let values = lines.iter().map(|(_, l)| l.as_bytes().to_vec()).collect();
    let results = match ingest::ingest_batch(&route, &state.producer, values).await {
        Ok(results) => results,
        Err(e @ (IngestError::NotRunning(_) | IngestError::Unavailable(_))) => {
            return Err(
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; post again")).into(),
            )
        }
        Err(e) => {
            tracing::error!(route = %route_name, "an ingest batch could not be processed: {e}");
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into());
        }
    };
    let mut answer = Ingested {
        accepted: 0,
        rejected: Vec::new(),
    };
    for ((line, _), result) in lines.iter().zip(results) {
        match result {
            Ok(()) => answer.accepted += 1,
            Err(IngestError::Rejected(reasons)) => answer.rejected.push(RejectedLine {
                line: *line,
                reasons,
            }),
            Err(e) => answer.rejected.push(RejectedLine {
                line: *line,
                reasons: vec![e.to_string()],
            }),
        }
    }
    Ok((StatusCode::OK, Json(answer)).into_response())
}

//! The events API:
//!
//! - `POST /events`: a JSON event, run through the ingest route's chain
//!   (validation) while the client waits, then published; `202 Accepted`
//!   once the broker has acknowledged it.
//! - `GET /events?limit=N`: the most recent events the recent-events route
//!   has processed, newest first.
//!
//! Those events say who did what (the bundled routes decrypt the user ids
//! for it), so reads may need a bearer token (`events_api.read_tokens`),
//! and without one switchyard refuses to serve them beyond loopback unless
//! the operator declares them public (`events_api.public_reads`): see
//! [`EventsApi::open`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{bearer_token, AdminToken};
use super::body::{self, BodyError};
use super::{ApiError, AppState};
use crate::config::{secrets, EventsApiConfig};
use crate::route::ingest::{self, IngestError};

/// `GET /events` without `limit` (or `max_limit`, if that is smaller).
pub const DEFAULT_LIMIT: usize = 20;

/// The events API as configured, its read tokens resolved.
pub struct EventsApi {
    pub config: EventsApiConfig,
    /// Empty: reads are open.
    read_tokens: Vec<AdminToken>,
}

/// Why the events API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EventsApiError {
    /// A read token is missing or unfit.
    #[error("invalid routes file {path}: {at}: {why}")]
    ReadToken {
        path: std::path::PathBuf,
        at: String,
        why: String,
    },
    /// Reads would be open beyond loopback without the operator saying so.
    #[error(
        "refusing to start: GET /events would be open to anyone who reaches {addr} (not a \
         loopback address), and it shows what users did. Either require a token for reads \
         (`events_api.read_tokens = [{{ \"$env\" = \"NAME\" }}]`, then `Authorization: Bearer \
         <token>`), or declare them public on purpose (`events_api.public_reads = true`)"
    )]
    OpenReads { addr: SocketAddr },
}

impl EventsApi {
    /// The events API of `config` (none without `[events_api]`), with its
    /// read tokens read from their references; refused if its reads would
    /// be open on one of `listeners` beyond loopback without
    /// `public_reads`. Called before anything else starts, so that a
    /// refusal costs nothing.
    pub fn open(
        config: Option<&EventsApiConfig>,
        config_path: &Path,
        listeners: &[SocketAddr],
    ) -> Result<Option<Arc<EventsApi>>, EventsApiError> {
        let Some(config) = config else {
            return Ok(None);
        };
        let base = config_path.parent().unwrap_or(Path::new("."));
        let read_tokens = config
            .read_tokens
            .iter()
            .enumerate()
            .map(|(i, reference)| {
                let at = format!("events_api.read_tokens[{i}]");
                let invalid = |why: String| EventsApiError::ReadToken {
                    path: config_path.to_owned(),
                    at: at.clone(),
                    why,
                };
                let token = secrets::resolve_string(reference, &at, base)
                    // The resolver's message starts with where it is.
                    .map_err(|e| invalid(e.trim_start_matches(&format!("{at}: ")).to_owned()))?;
                AdminToken::new(&token).map_err(|e| invalid(e.replace("admin token", "token")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if read_tokens.is_empty() {
            if let Some(addr) = listeners.iter().find(|a| !a.ip().is_loopback()) {
                if !config.public_reads {
                    return Err(EventsApiError::OpenReads { addr: *addr });
                }
                tracing::warn!(
                    %addr,
                    "GET /events is open to anyone who reaches {addr} \
                     (`events_api.public_reads = true`)"
                );
            }
        }
        Ok(Some(Arc::new(EventsApi {
            config: config.clone(),
            read_tokens,
        })))
    }

    /// Whether `GET /events` needs a bearer token.
    pub fn reads_need_token(&self) -> bool {
        !self.read_tokens.is_empty()
    }

    /// Largest `limit` of `GET /events`.
    pub fn max_limit(&self) -> usize {
        self.config.max_limit()
    }

    /// `Ok` if reads are open or `headers` carry a read token.
    fn authorize_read(&self, headers: &HeaderMap) -> Result<(), ReadRefusal> {
        if self.read_tokens.is_empty() {
            return Ok(());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(str::trim);
        let Some(presented) = presented else {
            return Err(ReadRefusal::Unauthorized(
                "GET /events needs `Authorization: Bearer <read token>`",
            ));
        };
        // Every token is compared, so the time taken says nothing of which
        // one matched.
        let matched = self
            .read_tokens
            .iter()
            .fold(false, |found, token| found | token.matches(presented));
        if matched {
            Ok(())
        } else {
            Err(ReadRefusal::Unauthorized("the bearer token is not valid"))
        }
    }
}

/// Why a read was refused.
pub enum ReadRefusal {
    /// 401: no valid read token.
    Unauthorized(&'static str),
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for ReadRefusal {
    fn from(e: ApiError) -> ReadRefusal {
        ReadRefusal::Api(e)
    }
}

impl IntoResponse for ReadRefusal {
    fn into_response(self) -> Response {
        match self {
            // What a 401 must say (RFC 9110): how to authenticate.
            ReadRefusal::Unauthorized(message) => {
                let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            ReadRefusal::Api(e) => e.into_response(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", post(post_event).get(recent_events))
        .with_state(state)
}

/// A user activity event, as posted. What is required and allowed is the
/// ingest route's validation; these are the rules of the bundled example
/// (and of `make run`). Other fields are kept as they are.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserEvent {
    /// Who did it.
    #[schema(example = "u1", min_length = 1)]
    pub user_id: String,
    /// What happened.
    #[serde(rename = "type")]
    #[schema(example = "login")]
    pub kind: EventType,
    /// When (RFC 3339); the server's time when missing.
    #[schema(example = "2025-11-06T18:00:00Z", format = DateTime)]
    pub timestamp: Option<String>,
    /// Anything else, as an object.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// What a user did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Login,
    Logout,
    Purchase,
}

/// `202 Accepted`: the event is on the broker.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
}

/// An event the validation refused: every reason.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invalid {
    #[schema(example = "invalid event")]
    pub error: String,
    #[schema(example = json!(["type: must be one of login, logout, purchase (got \"signup\")"]))]
    pub reasons: Vec<String>,
}

/// Any other error: what is wrong.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    #[schema(example = "limit must be a whole number from 1 to 1000 (got \"abc\")")]
    pub error: String,
}

/// The 400 of `POST /events`: the event was refused with every reason, or
/// the body is not JSON at all (then only `error` says where).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the two shapes the handler writes
pub enum RefusedEvent {
    Invalid(Invalid),
    Malformed(ErrorBody),
}

/// The partition key of a posted event: its `userId`, when it is a
/// string. Anything else is judged by the ingest route's chain, not here.
#[derive(Deserialize)]
struct KeyOf<'a> {
    #[serde(rename = "userId", borrow)]
    user_id: Option<std::borrow::Cow<'a, str>>,
}

fn api(state: &AppState) -> Result<&EventsApi, ApiError> {
    state.events_api.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the events API is not enabled (no [events_api] in the routes file)",
        )
    })
}

fn body_error(e: BodyError) -> ApiError {
    ApiError::new(e.status(), e.to_string())
}

/// Publish an event.
///
/// The event is checked by the ingest route's plugins before anything is
/// stored: an invalid event is a 400 naming every reason. `202 Accepted`
/// means the event was written to Kafka and acknowledged by the broker
/// (with the producer's `acks=all`, by every in-sync replica): it will be
/// processed even if this server stops now. It does not mean it was
/// processed yet; `GET /events` shows it a few milliseconds later. (A
/// chain may also drop an event on purpose: that is a 202 too, with
/// nothing published.)
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    request_body(content = UserEvent, content_type = "application/json"),
    responses(
        (status = 202, description = "Acknowledged by Kafka", body = Accepted),
        (status = 400, description = "The event is invalid (every reason given); for malformed JSON the body is `{\"error\": ...}` only", body = RefusedEvent),
        (status = 413, description = "Body larger than the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 503, description = "Kafka did not acknowledge in time, or the ingest route is paused; retry", body = ErrorBody),
        (status = 500, description = "A plugin failed on the event (trap, deadline, broken contract)", body = ErrorBody),
    )
)]
pub async fn post_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api = &api(&state)?.config;
    let limit = api.max_body_bytes.unwrap_or(body::DEFAULT_MAX_BODY);
    let bytes = body::read(&headers, body, "application/json", limit)
        .await
        .map_err(body_error)?;
    // The syntax, checked without building the document.
    let _: &serde_json::value::RawValue = body::json(&bytes).map_err(body_error)?;
    // Events of one user keep their order: they share a partition.
    let key = serde_json::from_slice::<KeyOf>(&bytes)
        .ok()
        .and_then(|k| k.user_id)
        .map(|user| user.into_owned().into_bytes());
    let route = state.control.route(&api.ingest_route).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the ingest route `{}` is not running", api.ingest_route),
        )
    })?;
    match ingest::ingest(&route, &state.producer, key, bytes.to_vec(), Vec::new()).await {
        Ok(_) => Ok((StatusCode::ACCEPTED, Json(Accepted { status: "accepted" })).into_response()),
        Err(IngestError::Rejected(reasons)) => Ok((
            StatusCode::BAD_REQUEST,
            Json(Invalid {
                error: "invalid event".into(),
                reasons,
            }),
        )
            .into_response()),
        Err(e @ (IngestError::NotRunning(_) | IngestError::Unavailable(_))) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
        Err(IngestError::Failed(e)) => {
            tracing::error!(route = %api.ingest_route, "an event could not be processed: {e}");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
        }
    }
}

/// The most recent processed events.
///
/// Newest first. The events are those the recent-events route has
/// processed since this server started (kept in memory, a bounded number).
/// When the server has read tokens (`events_api.read_tokens`), reads need
/// one as a bearer token; this document then says so.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(("limit" = Option<usize>, Query, description = "How many, 1 to 1000; default 20. A larger one is a 400 naming the largest", minimum = 1, maximum = 1000)),
    responses(
        (status = 200, description = "Newest first", body = [UserEvent]),
        (status = 400, description = "Bad `limit`", body = ErrorBody),
        (status = 401, description = "No valid read token (only when the server has read tokens)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
    )
)]
pub async fn recent_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ReadRefusal> {
    let api = api(&state)?;
    api.authorize_read(&headers)?;
    let refuse = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let Query(query) = query.map_err(|e| refuse(e.body_text()))?;
    let max = api.max_limit();
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT.min(max),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(refuse(format!(
                    "limit must be a whole number from 1 to {max} (got {text:?})"
                ))
                .into())
            }
        },
    };
    let events = match state.buffers.get(&api.config.recent_buffer) {
        Some(buffer) => buffer.recent(limit),
        None => Vec::new(),
    };
    let body = serde_json::to_vec(&events).expect("raw JSON values serialise");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

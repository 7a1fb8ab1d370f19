//! The HTTP server: health and readiness, the admin API, and the routes
//! the event APIs mount.
//!
//! - `GET /livez`: 200 while the process serves HTTP.
//! - `GET /metrics`: Prometheus metrics (see [`crate::metrics`]).
//! - `GET /readyz`: 503 while a route starts, connects, or cannot make
//!   progress (see [`crate::route::health`]), with the reasons; a halted or
//!   paused route does not make the instance unready.
//! - `GET /healthz`: the detailed view, 200 only when every route runs (or
//!   is paused) and none is stalled.
//! - `/admin/...`: see [`admin`].
//! - `/events`: see [`events`]; `/api/v1/streams/...`: see [`streams`];
//!   `/ingest/{route}`: see [`ingest`].
//! - `/admin/subjects/{id}`: see [`subjects`].
//! - `/openapi.json` and Swagger UI at `/swagger`: see [`openapi`].
//!
//! Both listeners serve through [`serve`], which bounds how long a client
//! may take to send a request and how many connections are open.

pub mod admin;
pub mod auth;
pub mod body;
pub mod events;
pub mod ingest;
pub mod openapi;
pub mod serve;
pub mod streams;
pub mod subjects;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

use crate::control::ControlPlane;
use crate::route::buffer::Buffers;
use crate::route::status::{RouteReport, StatusBoard};
use crate::route::Producer;
pub use auth::{AdminCredential, AdminToken};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub board: StatusBoard,
    pub kafka: KafkaInfo,
    pub control: ControlPlane,
    /// Unset: admin changes are refused (403).
    pub admin_token: AdminCredential,
    /// Publishes what HTTP-sourced routes emit.
    pub producer: Producer,
    pub buffers: Buffers,
    /// `None`: the events API answers 404.
    pub events_api: Option<Arc<events::EventsApi>>,
    /// `None`: the streams API answers 404.
    pub streams_api: Option<Arc<streams::StreamsHttp>>,
    /// `None`: the ingest API answers 404.
    pub ingest_api: Option<Arc<ingest::IngestApi>>,
    /// `None`: subject encryption is not configured.
    pub subjects: Option<Arc<crate::subjects::Subjects>>,
}

/// Which cluster this instance talks to; shown on `/healthz` so that tools
/// (and people) can find the development broker.
#[derive(Clone, Debug, Serialize)]
pub struct KafkaInfo {
    pub brokers: String,
    /// True for the in-memory development broker.
    pub embedded: bool,
}

/// An error answer: its status, and `{"error": "..."}` saying what is wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

#[derive(Serialize)]
struct Health {
    /// `"ok"` when every route runs, else `"unavailable"`.
    status: &'static str,
    /// Why the instance is not ready (`/readyz`) or not healthy
    /// (`/healthz`); empty when it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    kafka: KafkaInfo,
    routes: Vec<RouteReport>,
}

/// The router, separate from the listener so tests can drive it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .route("/healthz", get(healthz))
        .with_state(state.clone())
        .merge(admin::router(state.clone()))
        .merge(subjects::router(state.clone()))
        .merge(public_app(state))
}

/// The event APIs and their docs only: what the public listener serves.
pub fn public_app(state: AppState) -> Router {
    Router::new()
        .merge(openapi::router(&state))
        .merge(events::router(state.clone()))
        .merge(ingest::router(state.clone()))
        .merge(streams::router(state))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
}

/// Prometheus scrape, in the OpenMetrics text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.board.publish_states();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::global().encode(),
    )
}

/// Readiness: 503 while a route is starting, connecting, or cannot make
/// progress for `[health] stall_after_s` (Kafka unreachable, a source topic
/// missing, records waiting while nothing is committed), with the reasons.
/// A route halted by its error policy or paused by an operator is shown
/// but keeps the instance ready: the HTTP APIs stay in service.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let reasons = state.board.unready_reasons();
    answer(&state, reasons.is_empty(), reasons)
}

/// The detailed view: 200 only when every route runs (or is paused) and
/// none is stalled; a halted route makes it 503.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let ok = state.board.all_running();
    answer(&state, ok, state.board.unready_reasons())
}

fn answer(state: &AppState, ok: bool, reasons: Vec<String>) -> (StatusCode, Json<Health>) {
    let body = Health {
        status: if ok { "ok" } else { "unavailable" },
        reasons,
        kafka: state.kafka.clone(),
        routes: state.board.report(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

//! The HTTP server: health now; the admin and event APIs mount here too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::route::status::{RouteReport, StatusBoard};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub board: StatusBoard,
    pub kafka: KafkaInfo,
}

/// Which cluster this instance talks to; shown on `/healthz` so that tools
/// (and people) can find the development broker.
#[derive(Clone, Debug, Serialize)]
pub struct KafkaInfo {
    pub brokers: String,
    /// True for the in-memory development broker.
    pub embedded: bool,
}

#[derive(Serialize)]
struct Health {
    /// `"ok"` when every route runs, else `"unavailable"`.
    status: &'static str,
    kafka: KafkaInfo,
    routes: Vec<RouteReport>,
}

/// The router, separate from the listener so tests can drive it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// 200 once every route is running; 503 with each route's state otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let ok = state.board.all_running();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" },
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

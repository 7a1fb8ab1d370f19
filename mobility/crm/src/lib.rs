//! An in-memory mock of the CRM's REST API (users and trips) that the
//! mobility integration syncs to, for development and tests: the contract
//! exactly, strict validation that reports every problem at once, fault
//! injection under `/_mock`, and an OpenAPI document with Swagger UI.
//!
//! Run it with the `mock-crm` binary, or in-process with [`serve`] (tests,
//! other binaries); [`app`] is the bare router. The controls that change
//! the mock (`/_mock/faults`, `/_mock/reset`) need the control token given
//! to [`app`] or [`serve`]; without one they are disabled.

mod contracts;
mod error;
mod extract;
mod mock;
mod openapi;
mod records;
mod state;
mod store;
mod validation;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::http::header::LOCATION;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

pub use crate::mock::{ControlToken, ShortToken};

/// Where the API explorer (Swagger UI) is, as a path.
pub const EXPLORER_PATH: &str = "/swagger/";

/// The mock's routes over fresh, empty state; `control_token` unlocks the
/// controls that change it (none: they answer 403).
pub fn app(control_token: Option<ControlToken>) -> Router {
    let state = AppState::new(control_token);
    // Injecting faults and resetting take the CRM down or wipe it.
    let controls = Router::new()
        .route(
            "/_mock/faults",
            post(mock::set_fault).delete(mock::clear_fault),
        )
        .route("/_mock/reset", post(mock::reset))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            mock::require_control_token,
        ));
    Router::new()
        .route(
            "/users",
            get(records::list_users).post(records::create_user),
        )
        .route(
            "/users/{id}",
            get(records::get_user).post(records::replace_user),
        )
        .route(
            "/trips",
            get(records::list_trips).post(records::create_trip),
        )
        .route(
            "/trips/{id}",
            get(records::get_trip).post(records::replace_trip),
        )
        .merge(controls)
        .route("/_mock/stats", get(mock::stats))
        .route("/", get(to_explorer))
        .merge(openapi::router())
        // After every route, so that it applies to all of them.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mock::crm_api_traffic,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    control_token: Option<ControlToken>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(control_token))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /`: people opening the mock in a browser want the explorer.
async fn to_explorer() -> impl IntoResponse {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(LOCATION, EXPLORER_PATH)],
        Json(serde_json::json!({ "explorer": EXPLORER_PATH })),
    )
}

/// axum keeps the `Allow` header it computed for the path.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed on {}", uri.path()),
    )
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

//! An in-memory mock of the CRM's REST API (users and trips) that the
//! mobility integration syncs to, for development and tests: the contract
//! exactly, strict validation that reports every problem at once, fault
//! injection under `/_mock`, and an OpenAPI document with Swagger UI.
//!
//! Run it with the `mock-crm` binary, or in-process with [`serve`] (tests,
//! other binaries); [`app`] is the bare router.

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

/// Where the API explorer (Swagger UI) is, as a path.
pub const EXPLORER_PATH: &str = "/swagger/";

/// The mock's routes over fresh, empty state.
pub fn app() -> Router {
    let state = AppState::default();
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
        .route(
            "/_mock/faults",
            post(mock::set_fault).delete(mock::clear_fault),
        )
        .route("/_mock/stats", get(mock::stats))
        .route("/_mock/reset", post(mock::reset))
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app())
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

//! The admin API, under `/admin`: what routes and plugins run, and changes
//! to them. Reads are open; changes need the admin token.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::{auth, ApiError, AppState};
use crate::control::ReloadOutcome;
use crate::route::status::RouteReport;

/// Largest plugin upload: a Python component is ~18 MiB.
const MAX_PLUGIN_BYTES: usize = 64 << 20;

pub fn router(state: AppState) -> Router {
    let writes = Router::new()
        .route("/admin/plugins/{name}", axum::routing::put(upload_plugin))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES))
        .layer(middleware::from_fn_with_state(
            state.admin_token.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/admin/routes", get(list_routes))
        .route("/admin/plugins", get(list_plugins))
        .route("/admin/plugins/{name}", get(get_plugin))
        .merge(writes)
        .with_state(state)
}

async fn list_routes(State(state): State<AppState>) -> Json<Vec<RouteReport>> {
    Json(state.board.report())
}

async fn list_plugins(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "plugins": state.catalog.statuses() }))
}

async fn get_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.catalog.status(&name) {
        Some(status) => Ok(Json(json!(status))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no plugin named `{name}`"),
        )),
    }
}

/// `PUT /admin/plugins/NAME` with the component's bytes: written into the
/// plugins directory (atomically) and reloaded at once. 200 when it serves
/// (or was already serving), 422 with the reason when it is refused; the
/// routes then keep the version they run.
async fn upload_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_plugin_name(&name)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty: send the component's bytes \
             (e.g. curl --data-binary @NAME.wasm)",
        ));
    }
    let noticed = std::time::Instant::now();
    let path = state.catalog.plugins_dir().join(format!("{name}.wasm"));
    let write =
        tokio::task::spawn_blocking(move || crate::plugin_build::write_atomically(&path, &body))
            .await
            .expect("plugin write panicked");
    if let Err(e) = write {
        tracing::error!(plugin = %name, error = %e, "cannot store an uploaded plugin");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the plugin into the plugins directory: {e}"),
        ));
    }
    match state.catalog.reload(&name, noticed).await {
        ReloadOutcome::Swapped { version, routes } => Ok(Json(json!({
            "outcome": "swapped", "version": version, "routes": routes,
        }))),
        ReloadOutcome::Unchanged | ReloadOutcome::Missing => Ok(Json(json!({
            "outcome": "unchanged", "status": state.catalog.status(&name),
        }))),
        ReloadOutcome::Refused(refusal) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "plugin `{name}` refused; the serving version stays: {}",
                refusal.reason
            ),
        )),
    }
}

/// A plugin name becomes a file name: letters, digits, `-` and `_` only.
fn check_plugin_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid plugin name {name:?}: use 1 to 64 letters, digits, '-' or '_'"),
        ))
    }
}

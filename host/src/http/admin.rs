//! The admin API, under `/admin`: what routes and plugins run, and changes
//! to them. Changes need the admin token, and so do reads that can show a
//! record's contents: shadow reports (their samples), and the details of a
//! halted route, which the open reads leave out.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /admin/routes` | every route: state, chain versions, counters |
//! | `GET /admin/routes/NAME` | one route |
//! | `POST /admin/routes` | create a route (JSON, as in the routes file) |
//! | `PUT /admin/routes/NAME` | replace a route |
//! | `DELETE /admin/routes/NAME` | delete a route |
//! | `POST /admin/routes/NAME/pause`, `/resume` | stop or restart consuming; `resume` starts a halted route again |
//! | `POST /admin/routes/NAME/skip` | skip the record a route halted on: `{"topic": "...", "partition": N, "offset": N}` |
//! | `GET /admin/plugins`, `GET /admin/plugins/NAME` | plugin versions, users, refusals |
//! | `PUT /admin/plugins/NAME` | upload a component (64 MiB at most) and swap it in |
//! | `PUT /admin/candidates/NAME` | upload a candidate component (checked, not served; 64 MiB at most) |
//! | `POST /admin/routes/NAME/shadow` | attach a candidate to a step: `{"candidate": "...", "step": 1}` |
//! | `GET /admin/routes/NAME/shadow` | agreement so far, with sample differences (token) |
//! | `POST /admin/routes/NAME/shadow/promote` | the candidate becomes the plugin's serving version |
//! | `DELETE /admin/routes/NAME/shadow` | discard the candidate |
//!
//! Route changes are written to the routes file, so a restart keeps them.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::auth::{self, Reader};
use super::{ApiError, AppState};
use crate::control::{ReloadOutcome, RouteChangeError, ShadowError, SkipError};
use crate::route::status::{RecordPlace, RouteReport};

/// Who a change made with the admin token is recorded as (the token is
/// one shared credential).
const ADMIN: &str = "admin-token";

/// Largest plugin upload: a Python component is ~18 MiB.
const MAX_PLUGIN_BYTES: usize = 64 << 20;

pub fn router(state: AppState) -> Router {
    let changes = Router::new()
        .route(
            "/admin/plugins/{name}",
            put(upload_plugin).layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES)),
        )
        .route("/admin/routes", post(create_route))
        .route(
            "/admin/routes/{name}",
            put(replace_route).delete(delete_route),
        )
        .route(
            "/admin/candidates/{name}",
            put(upload_candidate).layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES)),
        )
        .route(
            "/admin/routes/{name}/shadow",
            post(attach_shadow).delete(discard_shadow),
        )
        .route("/admin/routes/{name}/shadow/promote", post(promote_shadow))
        .route("/admin/routes/{name}/shadow", get(shadow_report))
        .route(
            "/admin/routes/{name}/pause",
            post(|state, name| set_paused(state, name, true)),
        )
        .route(
            "/admin/routes/{name}/resume",
            post(|state, name| set_paused(state, name, false)),
        )
        .route("/admin/routes/{name}/skip", post(skip_record))
        .layer(middleware::from_fn_with_state(
            state.admin_token.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/admin/routes", get(list_routes))
        .route("/admin/routes/{name}", get(get_route))
        .route("/admin/plugins", get(list_plugins))
        .route("/admin/plugins/{name}", get(get_plugin))
        .merge(changes)
        .with_state(state)
}

/// The routes as `reader` may see them.
fn reports(state: &AppState, reader: Reader) -> Vec<RouteReport> {
    match reader {
        Reader::Admin => state.board.report_with_details(),
        Reader::Anyone => state.board.report(),
    }
}

async fn list_routes(State(state): State<AppState>, reader: Reader) -> Json<Value> {
    Json(json!({
        "routes": reports(&state, reader),
        "routes_file": state.control.config_path(),
        "routes_file_refused": state.control.routes_file_refused(),
    }))
}

async fn get_route(
    State(state): State<AppState>,
    reader: Reader,
    Path(name): Path<String>,
) -> Result<Json<RouteReport>, ApiError> {
    reports(&state, reader)
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| no_route(&name))
}

async fn create_route(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let route = json_route(&body)?;
    let applied = state
        .control
        .create_route(&route)
        .await
        .map_err(change_error)?;
    Ok((StatusCode::CREATED, Json(json!({ "applied": applied }))))
}

async fn replace_route(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut route = json_route(&body)?;
    // The URL names the route; the body may leave its name out.
    if let Value::Object(fields) = &mut route {
        fields
            .entry("name")
            .or_insert_with(|| Value::String(name.clone()));
    }
    let applied = state
        .control
        .replace_route(&name, &route)
        .await
        .map_err(change_error)?;
    Ok(Json(json!({ "applied": applied })))
}

async fn delete_route(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let applied = state
        .control
        .delete_route(&name)
        .await
        .map_err(change_error)?;
    Ok(Json(json!({ "applied": applied })))
}

/// `POST .../pause` and `.../resume`.
async fn set_paused(
    State(state): State<AppState>,
    Path(name): Path<String>,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    let applied = state
        .control
        .set_paused(&name, paused)
        .await
        .map_err(change_error)?;
    Ok(Json(json!({ "applied": applied })))
}

/// `POST .../skip` with the place of the record the route halted on.
async fn skip_record(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let place: RecordPlace = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be {{\"topic\": \"...\", \"partition\": N, \"offset\": N}}, \
                 the record the halt reported: {e}"
            ),
        )
    })?;
    let skipped = state
        .control
        .skip_record(&name, place, ADMIN)
        .await
        .map_err(|e| {
            let status = match &e {
                SkipError::NoRoute(_) => StatusCode::NOT_FOUND,
                SkipError::Conflict(_) => StatusCode::CONFLICT,
                SkipError::Kafka(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, e.to_string())
        })?;
    Ok(Json(json!(skipped)))
}

async fn list_plugins(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "plugins": state.control.plugin_statuses() }))
}

async fn get_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.control.plugin_status(&name) {
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    check_plugin_name(&name)?;
    let body = component_upload(body)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty: send the component's bytes \
             (e.g. curl --data-binary @NAME.wasm)",
        ));
    }
    match state.control.upload_plugin(&name, body.to_vec()).await {
        ReloadOutcome::Swapped { version, routes } => Ok(Json(json!({
            "outcome": "swapped", "version": version, "routes": routes,
        }))),
        ReloadOutcome::Unchanged | ReloadOutcome::Missing => Ok(Json(json!({
            "outcome": "unchanged", "status": state.control.plugin_status(&name),
        }))),
        ReloadOutcome::Refused(refusal) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "plugin `{name}` refused, nothing was written; the serving version stays: {}",
                refusal.reason
            ),
        )),
        ReloadOutcome::NotWritten(why) => {
            tracing::error!(plugin = %name, "an accepted upload was not stored: {why}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("plugin `{name}` not swapped in, the serving version stays: {why}"),
            ))
        }
    }
}

/// `PUT /admin/candidates/NAME`: store a component for shadowing, once it
/// is checked (see `ControlPlane::check_candidate`): 422 with the reason
/// otherwise, and nothing is written.
async fn upload_candidate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_plugin_name(&name)?;
    let body = component_upload(body)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty: send the component's bytes",
        ));
    }
    if let Err(reason) = state.control.check_candidate(&name, body.to_vec()).await {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("candidate `{name}` refused: {reason}"),
        ));
    }
    let dir = state.control.candidates_dir();
    let path = dir.join(format!("{name}.wasm"));
    let hash = crate::plugin::cache::content_hash(&body);
    let write = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        crate::plugin_build::write_atomically(&path, &body)
    })
    .await
    .expect("candidate write panicked");
    if let Err(e) = write {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the candidate: {e:#}"),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "candidate": name, "hash": hash })),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachShadow {
    /// A candidate's name (a file in the candidates directory).
    candidate: String,
    /// The chain step, from 1; may be left out for a one-step chain.
    step: Option<usize>,
}

async fn attach_shadow(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: AttachShadow = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"candidate\": \"NAME\", \"step\": N}}: {e}"),
        )
    })?;
    check_plugin_name(&request.candidate)?;
    let report = state
        .control
        .attach_shadow(&name, request.step, &request.candidate)
        .await
        .map_err(shadow_error)?;
    Ok(Json(json!(report)))
}

async fn shadow_report(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = state.control.shadow_report(&name).map_err(shadow_error)?;
    Ok(Json(json!(report)))
}

async fn discard_shadow(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = state
        .control
        .discard_shadow(&name)
        .await
        .map_err(shadow_error)?;
    Ok(Json(json!({ "discarded": report })))
}

async fn promote_shadow(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (report, outcome) = state
        .control
        .promote_shadow(&name)
        .await
        .map_err(shadow_error)?;
    let serving = match outcome {
        ReloadOutcome::Swapped { version, .. } => Some(version),
        _ => None,
    };
    Ok(Json(json!({ "promoted": report, "serving": serving })))
}

fn shadow_error(e: ShadowError) -> ApiError {
    let status = match &e {
        ShadowError::NoRoute(_) | ShadowError::NoShadow(_) | ShadowError::NoCandidate(_) => {
            StatusCode::NOT_FOUND
        }
        ShadowError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ShadowError::CannotRun(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ShadowError::Changed(_) => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.to_string())
}

/// A plugin name becomes a file name: letters, digits, `-` and `_` only.
/// An uploaded component's bytes, or why they were not taken: too large
/// (413, naming the limit) or cut off.
fn component_upload(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than a plugin may be ({} MiB)",
                MAX_PLUGIN_BYTES >> 20
            ),
        ),
        status => ApiError::new(
            status,
            format!("the upload could not be read: {}", rejection.body_text()),
        ),
    })
}

fn check_plugin_name(name: &str) -> Result<(), ApiError> {
    crate::config::check_name("plugin", name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

fn no_route(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route named `{name}`"))
}

/// The body as JSON, whatever its `Content-Type` says (`curl -d @route.json`
/// sends a form type).
fn json_route(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON route: {e}"),
        )
    })
}

fn change_error(e: RouteChangeError) -> ApiError {
    let status = match &e {
        RouteChangeError::NotFound(_) => StatusCode::NOT_FOUND,
        RouteChangeError::Exists(_) => StatusCode::CONFLICT,
        RouteChangeError::Invalid(_) => StatusCode::BAD_REQUEST,
        RouteChangeError::CannotStart(_) => StatusCode::UNPROCESSABLE_ENTITY,
        RouteChangeError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

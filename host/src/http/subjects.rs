//! Data subjects, under `/admin/subjects` (admin token required, reads
//! too: whether a subject has keys is itself personal data).
//!
//! | method and path | does |
//! |---|---|
//! | `DELETE /admin/subjects/{id}` | erase the subject: keys destroyed, later data suppressed, tombstones written, buffers purged, copies at HTTP sinks' endpoints overwritten, audit recorded; the report |
//! | `GET /admin/subjects/{id}` | the subject's live keys (references only), and whether it is suppressed |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::{auth, ApiError, AppState};
use crate::subjects::{EraseError, ErasureReport, Subjects};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/subjects/{id}", get(subject_keys).delete(erase))
        .layer(middleware::from_fn_with_state(
            state.admin_token.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

fn subjects(state: &AppState) -> Result<&std::sync::Arc<Subjects>, ApiError> {
    state.subjects.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "subject encryption is not configured (no [subjects] in the routes file), so there \
             is nothing to erase: personal data is stored as the routes write it",
        )
    })
}

async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ErasureReport>, ApiError> {
    let subjects = subjects(&state)?;
    if id.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the subject id is empty",
        ));
    }
    let sinks = state.control.erasure_sinks();
    match subjects
        .erase(&id, &state.producer, &state.buffers, &sinks)
        .await
    {
        Ok(report) => Ok(Json(report)),
        Err(e @ (EraseError::Store(_) | EraseError::Write { .. })) => {
            tracing::error!(error = %e, "an erasure did not finish; erasing again completes it");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{e}; what was done stays done: erase again to complete it"),
            ))
        }
    }
}

async fn subject_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let subjects = subjects(&state)?.clone();
    let (ids, suppressed) = tokio::task::spawn_blocking(move || {
        let ids = subjects.keys.key_ids(&id)?;
        Ok::<_, crate::subjects::keys::StoreError>((ids, subjects.keys.is_suppressed(&id)))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({
        "keys": ids.len(),
        "key_refs": ids.iter().map(|id| id.key_ref()).collect::<Vec<_>>(),
        "suppressed": suppressed,
    })))
}

//! Liveness and readiness probes; no token needed.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "The process is up: status `ok`.", body = super::openapi::Health)),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Storage is open and the writer is running. `wal_truncation_pending`:
/// a WAL truncation owed after an erasure or key destruction is still
/// being retried (a reader holds an old snapshot); it does not make the
/// node unready.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready: status `ready`, and whether a WAL truncation is owed.", body = super::openapi::Readiness),
        (status = 503, description = "`unavailable`: storage is not open, or the server is stopping.", body = c24_api::ErrorBody),
    ),
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    if app.store.ready() && !*app.shutdown.borrow() {
        Ok(Json(json!({
            "status": "ready",
            "wal_truncation_pending": app.store.wal_truncation_pending(),
        })))
    } else {
        Err(ApiError::unavailable("storage is not ready"))
    }
}

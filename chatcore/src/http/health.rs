//! Liveness and readiness probes; no token needed.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Storage is open and the writer is running.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    if app.store.ready() && !*app.shutdown.borrow() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::unavailable("storage is not ready"))
    }
}

//! `GET /admin/v1/retention` and `POST /admin/v1/retention/purge`.

use axum::Json;
use axum::extract::State;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::retention::{self, PurgeRun, RetentionReport};

pub async fn report(State(app): State<AppState>) -> Result<Json<RetentionReport>, ApiError> {
    Ok(Json(retention::report(&app).await?))
}

/// Runs one purge now and answers with what it did.
pub async fn purge(State(app): State<AppState>) -> Result<Json<PurgeRun>, ApiError> {
    Ok(Json(retention::run_purge(&app, "manual").await?))
}

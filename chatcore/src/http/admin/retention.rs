//! `GET /admin/v1/retention` and `POST /admin/v1/retention/purge`.

use axum::Json;
use axum::extract::State;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::retention::{self, PurgeRun, RetentionReport};

/// Per retention category: what is held, what is due, the last purge.
#[utoipa::path(
    get,
    path = "/admin/v1/retention",
    tag = "admin",
    operation_id = "retentionReport",
    responses(
        (status = 200, description = "The retention report.", body = RetentionReport),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn report(State(app): State<AppState>) -> Result<Json<RetentionReport>, ApiError> {
    Ok(Json(retention::report(&app).await?))
}

/// Runs one purge now and answers with what it did.
#[utoipa::path(
    post,
    path = "/admin/v1/retention/purge",
    tag = "admin",
    operation_id = "purge",
    responses(
        (status = 200, description = "What the purge run deleted.", body = PurgeRun),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn purge(State(app): State<AppState>) -> Result<Json<PurgeRun>, ApiError> {
    Ok(Json(retention::run_purge(&app, "manual").await?))
}

//! `GET /admin/v1/audit`: the audit log, newest first, paged.

use axum::Json;
use axum::extract::State;
use c24_api::admin::audit::{AuditEntry, AuditPage};
use serde::Deserialize;

use crate::clock::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::QueryParams;
use crate::http::page;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    before: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "admin",
    operation_id = "auditLog",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of audit entries.", body = AuditPage),
        (status = 400, description = "`invalid_query`: bad limit, cursor or query string.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn list(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page::limit(q.limit)?;
    let rows = app.store.audit(limit, q.before).await?;
    let next = page::next_cursor(&rows, limit, |r| r.id);
    Ok(Json(AuditPage {
        items: rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: rfc3339(r.at),
                actor: r.actor,
                role: r.role,
                action: r.action,
                target: r.target,
                status: r.status,
                outcome: r.outcome,
                purge_after: rfc3339(r.purge_after),
            })
            .collect(),
        next,
    }))
}

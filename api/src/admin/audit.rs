//! The audit log (`GET /admin/v1/audit`): every admin write, allowed or refused.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub status: u16,
    pub outcome: String,
    /// RFC 3339: access logs are kept 90 days.
    pub purge_after: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next: Option<i64>,
}

//! Retention (`GET /admin/v1/retention`, `POST /admin/v1/retention/purge`):
//! per category of the privacy policy's schedule, what is held and what is due.

use serde::{Deserialize, Serialize};

/// What one purge run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PurgeRun {
    /// RFC 3339, by the core's clock.
    pub at: String,
    pub rows_deleted: u64,
    pub duration_ms: u64,
    /// Tenants whose data key was destroyed in this run.
    pub keys_destroyed: Vec<String>,
    /// What triggered it: `schedule` or `manual`.
    pub trigger: String,
}

/// One category in `GET /admin/v1/retention`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CategoryReport {
    pub category: String,
    pub label: String,
    /// The policy's period, in its words, and in days.
    pub policy: String,
    pub period_days: i64,
    pub records: i64,
    pub bytes: i64,
    /// Due now (purge_after passed): overdue until the next purge deletes them.
    pub overdue: i64,
    pub due_24h: i64,
    pub due_7d: i64,
    /// Age in seconds of the oldest overdue item.
    pub oldest_overdue_age_s: Option<i64>,
    /// Whether this core stores anything of this kind yet.
    pub tracked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RetentionReport {
    /// RFC 3339, by the core's clock.
    pub now: String,
    pub categories: Vec<CategoryReport>,
    pub last_purge: Option<PurgeRun>,
    /// RFC 3339: the next scheduled run.
    pub next_purge_at: Option<String>,
    pub purge_interval_s: u64,
    /// Terminated tenants whose key is not yet destroyed.
    pub tenants_pending_purge: usize,
}

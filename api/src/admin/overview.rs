//! Platform totals (`GET /admin/v1/overview`), also sent every second as the
//! `throughput.tick` event.

use serde::{Deserialize, Serialize};

use super::throughput::OverviewFigures;

/// Platform totals: the live figures plus tenant, retention and registry counts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overview {
    #[serde(flatten)]
    pub live: OverviewFigures,
    pub tenants: TenantCounts,
    /// Overdue records over all retention categories (as of the last refresh).
    pub retention_overdue: i64,
    /// Sub-processor entries proposed or with a change announced.
    pub registry_pending: usize,
    /// Entries flagged (e.g. a transfer without safeguard).
    pub registry_flagged: usize,
    /// Of those, entries whose proposal or change waits for an admin's
    /// approval (it cannot take effect until approved).
    #[serde(default)]
    pub registry_awaiting_approval: usize,
    /// Data-subject requests past their deadline, not completed (tenants
    /// whose contract has ended are not counted).
    #[serde(default)]
    pub dsr_overdue: usize,
    /// Breach records with a notification still to be recorded; `null`
    /// when the core does not track incidents (a reader shows "—", not 0).
    #[serde(default)]
    pub incidents_open: Option<usize>,
    /// RFC 3339, by the core's clock.
    pub now: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantCounts {
    pub total: usize,
    pub active: usize,
    pub suspended: usize,
    pub terminated: usize,
    pub purged: usize,
    pub without_dpa: usize,
}

//! Personal-data breaches (`/admin/v1/incidents`, privacy policy §11): the
//! record of each breach and its notification clocks — every affected
//! tenant's controller within 48 hours of awareness, the supervisory
//! authority within 72 hours where the platform is the controller, and the
//! people themselves without undue delay when the risk to them is high.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /admin/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    /// RFC 3339: when the platform became aware of the breach; `null`
    /// means now. Not in the future. Every clock runs from here.
    #[serde(default)]
    pub aware_at: Option<String>,
    /// What happened.
    pub nature: String,
    /// Categories of personal data affected (e.g. `message bodies`).
    pub categories: Vec<String>,
    /// Approximate number of records affected.
    pub records: u64,
    /// Approximate number of people affected.
    pub subjects: u64,
    /// Tenants whose end users' data is affected: each controller has a 48 h clock.
    #[serde(default)]
    pub affected_tenants: Vec<String>,
    /// The likely consequences.
    pub consequences: String,
    /// Measures taken or proposed.
    pub measures: String,
    /// The platform's own customer data is affected (it is the controller):
    /// the authority must be notified within 72 h.
    #[serde(default)]
    pub platform_is_controller: bool,
    /// Likely high risk to the people: they are to be told without undue delay.
    #[serde(default)]
    pub high_risk: bool,
}

/// Who a notification went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyTarget {
    /// An affected tenant (the controller); needs `tenant_id`.
    Controller,
    /// The supervisory authority (Autoriteit Persoonsgegevens).
    Authority,
    /// The affected people directly.
    Subjects,
}

/// Body of `POST /admin/v1/incidents/{id}/notifications`: records that a
/// notification was sent, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordNotification {
    pub to: NotifyTarget,
    /// With `"to": "controller"`: which affected tenant was notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// One notification deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentClock {
    /// RFC 3339.
    pub deadline_at: String,
    /// RFC 3339, once notified.
    pub notified_at: Option<String>,
    /// Past the deadline with no notification recorded.
    pub overdue: bool,
    /// deadline_at minus notified_at (or now while not notified), in
    /// seconds: negative when overdue, or when the notification was late.
    pub seconds_left: i64,
}

/// An affected tenant's controller clock (48 h).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ControllerClock {
    pub tenant_id: String,
    /// RFC 3339.
    pub deadline_at: String,
    /// RFC 3339, once notified.
    pub notified_at: Option<String>,
    pub overdue: bool,
    pub seconds_left: i64,
}

/// Every clock of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentClocks {
    /// One per affected tenant: aware_at + 48 h.
    pub controllers: Vec<ControllerClock>,
    /// Only where the platform is controller: aware_at + 72 h.
    pub authority: Option<IncidentClock>,
    /// Only for a high risk: "without undue delay", so the deadline is
    /// aware_at itself and the clock is overdue until notified.
    pub subjects: Option<IncidentClock>,
}

/// A recorded notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentNotification {
    pub to: NotifyTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// The staff token's name.
    pub by: String,
}

/// A breach record, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: String,
    /// RFC 3339.
    pub aware_at: String,
    /// RFC 3339: when it was recorded.
    pub recorded_at: String,
    pub recorded_by: String,
    pub nature: String,
    pub categories: Vec<String>,
    pub records: u64,
    pub subjects: u64,
    pub affected_tenants: Vec<String>,
    pub consequences: String,
    pub measures: String,
    pub platform_is_controller: bool,
    pub high_risk: bool,
    pub clocks: IncidentClocks,
    /// Some clock is still waiting for its notification.
    pub open: bool,
    /// Some clock is overdue.
    pub overdue: bool,
    pub notifications: Vec<IncidentNotification>,
    /// RFC 3339: incident records are kept 3 years from awareness.
    pub purge_after: String,
}

/// `GET /admin/v1/incidents`: newest recorded first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentList {
    pub items: Vec<Incident>,
    /// Cursor for the next page (`?cursor=`), `null` on the last.
    pub next: Option<String>,
}

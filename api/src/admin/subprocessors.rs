//! The sub-processor registry (`/admin/v1/subprocessors`): entries, the
//! requests that announce or change them, and the list answer. The rules
//! (notice period, flags, effective dates) are the chat core's `registry`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------
// Categories, status, location classes
// ---------------------------------------------------------------------------

/// The five sub-processor categories of privacy policy section 8, serialised
/// exactly as the policy writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Category {
    #[serde(rename = "Cloud Infrastructure")]
    CloudInfrastructure,
    #[serde(rename = "Security & Anti-malware")]
    SecurityAntiMalware,
    #[serde(rename = "Collaboration Tools")]
    CollaborationTools,
    #[serde(rename = "Monitoring & Logging")]
    MonitoringLogging,
    #[serde(rename = "Communication Channels")]
    CommunicationChannels,
}

impl Category {
    /// In the policy's table order.
    pub const ALL: [Category; 5] = [
        Category::CloudInfrastructure,
        Category::SecurityAntiMalware,
        Category::CollaborationTools,
        Category::MonitoringLogging,
        Category::CommunicationChannels,
    ];

    /// The policy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::CloudInfrastructure => "Cloud Infrastructure",
            Category::SecurityAntiMalware => "Security & Anti-malware",
            Category::CollaborationTools => "Collaboration Tools",
            Category::MonitoringLogging => "Monitoring & Logging",
            Category::CommunicationChannels => "Communication Channels",
        }
    }

    /// The policy's spelling, exactly or ignoring case and surrounding
    /// whitespace.
    pub fn parse(s: &str) -> Option<Category> {
        let s = s.trim();
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .or_else(|| {
                Category::ALL
                    .into_iter()
                    .find(|c| c.as_str().eq_ignore_ascii_case(s))
            })
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SubProcessorStatus)]
pub enum Status {
    /// Announced, not yet effective: tenants are in their notice period.
    Proposed,
    Active,
    Retired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Active => "active",
            Status::Retired => "retired",
        }
    }
}

/// Whether an announced entry or change has been approved by an admin. An
/// unapproved one never takes effect, whatever its effective date says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Waiting for `POST /admin/v1/subprocessors/{id}/approve`.
    Pending,
    /// Approved: it takes effect at its effective date (or at once, if that
    /// has passed).
    Approved,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Pending => "pending",
            Approval::Approved => "approved",
        }
    }
}

/// Where a location stands under GDPR Chapter V, ordered from inside the EEA
/// outwards, so a list of locations takes its farthest member.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LocationClass {
    /// The EU 27 plus Iceland, Liechtenstein, Norway: no transfer at all.
    Eea,
    /// A country with a European Commission adequacy decision.
    Adequate,
    /// Any other country, and anything not recognised (unknown is treated as
    /// the risky case, so it gets looked at).
    ThirdCountry,
    /// Anywhere in the world, which includes third countries.
    Global,
}

// ---------------------------------------------------------------------------
// Wire and persisted types
// ---------------------------------------------------------------------------

/// Body of `POST /admin/v1/subprocessors`: announces a new sub-processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    pub name: String,
    /// One of [`Category::ALL`] as the policy writes it (case-insensitive).
    pub category: String,
    pub purpose: String,
    pub location: String,
    pub safeguard: String,
    pub data_categories: Vec<String>,
    /// RFC 3339; at least the notice period after the announcement.
    pub effective_at: String,
}

/// Body of `POST /admin/v1/subprocessors/{id}/changes`: the new values of
/// what changes (absent fields stay as they are) and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safeguard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_categories: Option<Vec<String>>,
    /// RFC 3339; at least the notice period after the announcement.
    pub effective_at: String,
}

/// Body of `POST /admin/v1/subprocessors/{id}/objections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectionRequest {
    pub tenant_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `POST /admin/v1/subprocessors/{id}/approve` (optional: none or
/// `{}` approves whatever waits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The `announced_at` of the proposal or change the admin reviewed (the
    /// pending change's if there is one, else the entry's). Anything else
    /// pending is refused with 409 `stale_approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_at: Option<String>,
}

/// A tenant's objection; at most one per tenant per entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Objection {
    pub tenant_id: String,
    pub reason: Option<String>,
    /// When the current reason was given.
    pub at: String,
}

/// One line of an entry's append-only history. The feed item id is the
/// entry id plus the index here, so entries are never removed or reordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub at: String,
    /// One of the `EVENT_*` constants.
    pub event: String,
    /// Event-specific: a snapshot of the terms, the changed fields, etc.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub detail: Value,
    /// For announcements, the date announced; for `effective`, the date applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
}

/// An announced change waiting for its effective date. Only the fields that
/// change are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingChange {
    pub announced_at: String,
    pub effective_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safeguard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_categories: Option<Vec<String>>,
    /// The entry's flags once the change applies, so tenants see a risky
    /// change while they can still object.
    #[serde(default)]
    pub flags: Vec<String>,
    /// A change applies only once approved (a change stored before approvals
    /// existed reads as pending).
    #[serde(default = "pending")]
    pub approval: Approval,
    /// RFC 3339, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// The staff member who approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

fn pending() -> Approval {
    Approval::Pending
}

/// A registry entry, persisted as JSON and returned by the API as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubProcessor {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub purpose: String,
    pub location: String,
    pub location_class: LocationClass,
    pub safeguard: String,
    pub data_categories: Vec<String>,
    pub status: Status,
    pub announced_at: String,
    /// When the entry took (or takes) effect; a later change keeps this date
    /// and is recorded in `history`.
    pub effective_at: String,
    #[serde(default)]
    pub retired_at: Option<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub pending_change: Option<PendingChange>,
    #[serde(default)]
    pub objections: Vec<Objection>,
    #[serde(default)]
    pub objection_count: usize,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The approval of the entry itself: `pending` while a proposed entry
    /// waits for an admin, `approved` once one approved it; absent for
    /// entries that needed none (seeded from the privacy policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// RFC 3339, when the entry was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// The staff member who approved the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

impl SubProcessor {
    /// Whether something on this entry (the proposal or its pending change)
    /// waits for an admin's approval.
    pub fn awaits_approval(&self) -> bool {
        (self.status == Status::Proposed && self.approval != Some(Approval::Approved))
            || self
                .pending_change
                .as_ref()
                .is_some_and(|c| c.approval == Approval::Pending)
    }

    /// What one tenant may see of the entry (the answer to its own
    /// objection): its own objection only, and no staff names. Other
    /// tenants' objections, who objected in the history, and who approved
    /// stay with staff; `objection_count` stays the total.
    pub fn for_tenant(mut self, tenant_id: &str) -> Self {
        self.objections.retain(|o| o.tenant_id == tenant_id);
        self.approved_by = None;
        if let Some(c) = self.pending_change.as_mut() {
            c.approved_by = None;
        }
        for h in &mut self.history {
            if let Some(d) = h.detail.as_object_mut() {
                d.remove("approved_by");
                if d.get("tenant_id").and_then(Value::as_str) != Some(tenant_id) {
                    d.remove("tenant_id");
                }
            }
        }
        self
    }
}

/// `GET /admin/v1/subprocessors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryList {
    pub items: Vec<SubProcessor>,
    /// Entries still proposed, or with a change announced.
    pub pending: usize,
    /// Entries carrying any flag (e.g. `transfer_without_safeguard`).
    pub flagged: usize,
    pub notice_days: u32,
    /// Entries with a proposal or change waiting for an admin's approval.
    #[serde(default)]
    pub awaiting_approval: usize,
}

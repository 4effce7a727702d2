//! Data-subject requests (`/admin/v1/tenants/{id}/dsr`), filed by a
//! controller (a tenant) with the platform as its processor (privacy policy
//! §9.2): access, rectification, erasure, restriction, portability and
//! objection, each with its one-month deadline, optional extension, status
//! and history.
//!
//! The person is named by one identifier ([`DsrSubject`]); the chat core
//! turns it into a blind index at once and never stores it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the person asks for (GDPR Articles 15 to 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DsrType {
    /// A copy of everything held (Art. 15): a JSON export.
    Access,
    /// Correcting a stored field (Art. 16).
    Rectification,
    /// Deleting the person's messages, conversations and contact (Art. 17).
    Erasure,
    /// Stopping further processing, data kept (Art. 18).
    Restriction,
    /// The data in a machine-readable format (Art. 20): a JSON export.
    Portability,
    /// Objecting to processing (Art. 21): further processing stops, as for restriction.
    Objection,
}

impl DsrType {
    pub const ALL: [DsrType; 6] = [
        DsrType::Access,
        DsrType::Rectification,
        DsrType::Erasure,
        DsrType::Restriction,
        DsrType::Portability,
        DsrType::Objection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DsrType::Access => "access",
            DsrType::Rectification => "rectification",
            DsrType::Erasure => "erasure",
            DsrType::Restriction => "restriction",
            DsrType::Portability => "portability",
            DsrType::Objection => "objection",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Access and portability answer with an export.
    pub fn has_export(self) -> bool {
        matches!(self, DsrType::Access | DsrType::Portability)
    }
}

/// The one identifier a person is known by: exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsrSubject {
    /// An email address (inbound email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A phone number (WhatsApp); only its digits count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A web-chat visitor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
}

impl DsrSubject {
    pub fn email(v: &str) -> Self {
        Self {
            email: Some(v.to_string()),
            ..Self::default()
        }
    }

    pub fn phone(v: &str) -> Self {
        Self {
            phone: Some(v.to_string()),
            ..Self::default()
        }
    }

    pub fn visitor_id(v: &str) -> Self {
        Self {
            visitor_id: Some(v.to_string()),
            ..Self::default()
        }
    }
}

/// Which kind of identifier a request or consent names (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Email,
    Phone,
    VisitorId,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Email => "email",
            SubjectKind::Phone => "phone",
            SubjectKind::VisitorId => "visitor_id",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SubjectKind::Email,
            SubjectKind::Phone,
            SubjectKind::VisitorId,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Body of `POST /admin/v1/tenants/{id}/dsr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDsr {
    #[serde(rename = "type")]
    pub kind: DsrType,
    pub subject: DsrSubject,
    /// RFC 3339: when the controller received the request, if before
    /// filing (not in the future, at most a month ago); default now. The
    /// deadline runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
}

/// `received`, `extended` (deadline moved by an extension) or `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DsrStatus {
    Received,
    Extended,
    Completed,
}

/// Body of `POST /admin/v1/tenants/{id}/dsr/{dsr_id}/extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendDsr {
    /// 1 or 2; all extensions of a request add up to at most 2 months.
    pub months: u32,
    /// Why (the request is complex, or there are many).
    pub reason: String,
    /// RFC 3339: when the person was told of the extension; within the
    /// first month, and not in the future.
    pub person_informed_at: String,
}

/// One recorded extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrExtension {
    pub months: u32,
    pub reason: String,
    /// RFC 3339.
    pub person_informed_at: String,
    /// RFC 3339: when it was recorded.
    pub recorded_at: String,
    /// The deadline it set, RFC 3339.
    pub due_at: String,
}

/// Body of `POST /admin/v1/tenants/{id}/dsr/{dsr_id}/complete`: `{}`, or for
/// a rectification the field and its correct value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteDsr {
    /// Rectification only: `name`, `email` or `phone` (`email`/`phone` only
    /// on a contact known by that identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Rectification only: the correct value (never stored in the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What completing a request did. The counts are of what the action
/// touched: deleted by an erasure, put in the export by access or
/// portability, found for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrOutcome {
    /// Contact records of the identifier (0 or 1).
    pub contacts: u64,
    pub conversations: u64,
    pub messages: u64,
    /// Rectification: the field corrected (never its value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectified_field: Option<String>,
    /// Restriction and objection: ingress for the identifier now answers 403.
    #[serde(default)]
    pub processing_restricted: bool,
    /// Access and portability: an export was built.
    #[serde(default)]
    pub export_built: bool,
}

/// `ready` (downloadable once), `downloaded`, or `expired` (not fetched in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportState {
    Ready,
    Downloaded,
    Expired,
}

/// The export of an access or portability request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrExportInfo {
    pub state: ExportState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: deleted unfetched at this time.
    pub expires_at: String,
    /// RFC 3339.
    #[serde(default)]
    pub downloaded_at: Option<String>,
    /// Who may fetch it: `tenant` (its api key), or a staff role at least.
    pub download_role: String,
}

/// One line of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrEvent {
    /// RFC 3339.
    pub at: String,
    /// `filed`, `extended`, `completed`, `export_downloaded`.
    pub event: String,
    /// `tenant:{id}` or a staff token's name.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A data-subject request, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dsr {
    pub id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: DsrType,
    /// Which identifier names the person (the value is not kept).
    pub subject_kind: SubjectKind,
    pub status: DsrStatus,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339: the deadline now (received_at + 1 month, plus any extension).
    pub due_at: String,
    /// RFC 3339: received_at + 1 calendar month.
    pub initial_due_at: String,
    /// Not completed and past due_at.
    pub overdue: bool,
    /// due_at minus completion (or now while open); negative: late.
    pub seconds_left: i64,
    #[serde(default)]
    pub extensions: Vec<DsrExtension>,
    /// RFC 3339.
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub outcome: Option<DsrOutcome>,
    #[serde(default)]
    pub export: Option<DsrExportInfo>,
    /// `tenant:{id}` or a staff token's name.
    pub requested_by: String,
    pub history: Vec<DsrEvent>,
}

/// `GET /admin/v1/tenants/{id}/dsr`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrList {
    pub items: Vec<Dsr>,
    /// Cursor for the next page (`?cursor=`), `null` on the last.
    pub next: Option<String>,
    /// Open requests of the tenant past their deadline (all pages).
    pub overdue: usize,
    /// Requests not completed (all pages).
    pub open: usize,
}

/// The export document (`GET .../dsr/{dsr_id}/export`): everything held on
/// the person, decrypted, across channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DsrExport {
    /// `c24-dsr-export/1`.
    pub format: String,
    pub dsr_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: DsrType,
    /// RFC 3339.
    pub generated_at: String,
    /// The contact records held for the identifier.
    pub contacts: Vec<ExportContact>,
    pub conversations: Vec<ExportConversation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportContact {
    /// `visitor`, `phone` or `email`.
    pub kind: String,
    pub identifier: String,
    #[serde(default)]
    pub name: Option<String>,
    /// RFC 3339.
    pub first_seen_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportConversation {
    pub id: String,
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_activity_at: String,
    pub messages: Vec<ExportMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportMessage {
    pub id: String,
    pub seq: i64,
    /// `inbound` (from the person) or `outbound` (an agent's reply).
    pub direction: String,
    pub content: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// RFC 3339.
    pub at: String,
}

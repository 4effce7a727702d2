//! Consent records (`/admin/v1/tenants/{id}/consents`, privacy policy §4.4
//! and §6): consent given and withdrawn, per purpose, with timestamps. The
//! fields follow the Kantara Initiative consent receipt (purposes,
//! collection method, policy version). A record is kept for the duration
//! of the consent plus 3 years.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dsr::{DsrSubject, SubjectKind};

/// Body of `POST /admin/v1/tenants/{id}/consents`: consent given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordConsent {
    /// Who consented: exactly one identifier (kept as a blind index only).
    pub subject: DsrSubject,
    /// What the consent is for, one entry per purpose (e.g. `marketing email`).
    pub purposes: Vec<String>,
    /// How it was collected (e.g. `web form checkbox`, `chat widget banner`).
    pub collection_method: String,
    /// The version of the privacy notice the person was shown.
    pub policy_version: String,
    /// RFC 3339: when it was given; default now; not in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_at: Option<String>,
}

/// Body of `POST /admin/v1/tenants/{id}/consents/{consent_id}/withdraw`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsent {
    /// The purposes withdrawn; absent or empty: all that still stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<Vec<String>>,
}

/// One purpose of a consent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentPurpose {
    pub purpose: String,
    /// RFC 3339.
    pub given_at: String,
    /// RFC 3339, once withdrawn.
    pub withdrawn_at: Option<String>,
}

/// `given` (some purpose stands), `withdrawn` (every purpose withdrawn) or
/// `ended` (the tenant's contract ended while it stood).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    Given,
    Withdrawn,
    Ended,
}

/// A consent record, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    pub id: String,
    pub tenant_id: String,
    /// Which identifier names the person (the value is not kept).
    pub subject_kind: SubjectKind,
    pub purposes: Vec<ConsentPurpose>,
    pub collection_method: String,
    pub policy_version: String,
    /// RFC 3339.
    pub given_at: String,
    /// RFC 3339: when the last standing purpose was withdrawn.
    pub withdrawn_at: Option<String>,
    pub status: ConsentStatus,
    /// RFC 3339: consent end + 3 years; `null` while the consent stands.
    pub purge_after: Option<String>,
    /// `tenant:{id}` or a staff token's name.
    pub recorded_by: String,
}

/// Per purpose, over all of the tenant's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurposeCount {
    pub purpose: String,
    pub given: u64,
    pub withdrawn: u64,
}

/// `GET /admin/v1/tenants/{id}/consents`: newest first, with counts over
/// every record of the tenant (or of the person, when one is named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentList {
    pub items: Vec<Consent>,
    /// Cursor for the next page (`?cursor=`), `null` on the last.
    pub next: Option<String>,
    pub total: u64,
    /// Records with every purpose withdrawn.
    pub withdrawn: u64,
    /// Purposes withdrawn, over all records.
    pub withdrawals: u64,
    pub by_purpose: Vec<PurposeCount>,
}

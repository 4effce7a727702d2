//! Consent records (privacy policy §4.4, §6), independent of HTTP: a
//! receipt after the Kantara consent receipt (purposes, collection method,
//! policy version), each purpose given and withdrawn with its own
//! timestamp. A record is kept for the duration of consent plus 3 years:
//! `purge_after` is set once the last standing purpose is withdrawn (or the
//! tenant's contract ends), never while the consent stands.

use c24_api::admin::consents::{Consent, ConsentPurpose, ConsentStatus};
use c24_api::admin::dsr::SubjectKind;
use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};
use crate::compliance::add_months;
use crate::http::error::ApiError;
use crate::store::ConsentRecord;

/// Consent records are kept for the consent's duration plus 3 years.
pub const RETENTION_MONTHS: u32 = 36;

/// The stored receipt (timestamps in ms). `purposes[].purpose` and
/// `purposes[].withdrawn_at` are read by SQL (`json_each`) for the counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentDoc {
    pub subject_kind: SubjectKind,
    pub purposes: Vec<PurposeDoc>,
    pub collection_method: String,
    pub policy_version: String,
    pub given_at: Millis,
    pub recorded_at: Millis,
    pub recorded_by: String,
    #[serde(default)]
    pub withdrawn_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurposeDoc {
    pub purpose: String,
    pub given_at: Millis,
    pub withdrawn_at: Option<Millis>,
}

impl ConsentDoc {
    pub fn parse(doc: &str) -> Result<Self, ApiError> {
        serde_json::from_str(doc)
            .map_err(|e| ApiError::internal(format!("a stored consent record is unreadable: {e}")))
    }

    pub fn encode(&self) -> Result<String, ApiError> {
        serde_json::to_string(self)
            .map_err(|e| ApiError::internal(format!("encoding a consent record: {e}")))
    }

    /// Every purpose withdrawn.
    pub fn all_withdrawn(&self) -> bool {
        self.purposes.iter().all(|p| p.withdrawn_at.is_some())
    }

    /// Withdraws `which` (all standing purposes when empty) at `now`. Err:
    /// the names not among the record's purposes, or `Ok(false)` when none
    /// of them still stood.
    pub fn withdraw(&mut self, which: &[String], now: Millis) -> Result<bool, Vec<String>> {
        let unknown: Vec<String> = which
            .iter()
            .filter(|w| !self.purposes.iter().any(|p| &p.purpose == *w))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut changed = false;
        for p in &mut self.purposes {
            if p.withdrawn_at.is_none() && (which.is_empty() || which.contains(&p.purpose)) {
                p.withdrawn_at = Some(now);
                changed = true;
            }
        }
        if changed && self.all_withdrawn() {
            self.withdrawn_at = Some(now);
        }
        Ok(changed)
    }

    /// Consent end + 3 years, once every purpose is withdrawn.
    pub fn purge_after(&self) -> Option<Millis> {
        self.withdrawn_at
            .and_then(|w| add_months(w, RETENTION_MONTHS))
    }
}

pub fn view(r: &ConsentRecord, d: &ConsentDoc) -> Consent {
    let status = if d.all_withdrawn() {
        ConsentStatus::Withdrawn
    } else if r.purge_after.is_some() {
        ConsentStatus::Ended
    } else {
        ConsentStatus::Given
    };
    Consent {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        subject_kind: d.subject_kind,
        purposes: d
            .purposes
            .iter()
            .map(|p| ConsentPurpose {
                purpose: p.purpose.clone(),
                given_at: rfc3339(p.given_at),
                withdrawn_at: p.withdrawn_at.map(rfc3339),
            })
            .collect(),
        collection_method: d.collection_method.clone(),
        policy_version: d.policy_version.clone(),
        given_at: rfc3339(d.given_at),
        withdrawn_at: d.withdrawn_at.map(rfc3339),
        status,
        purge_after: r.purge_after.map(rfc3339),
        recorded_by: d.recorded_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ConsentDoc {
        ConsentDoc {
            subject_kind: SubjectKind::Email,
            purposes: ["newsletter", "surveys"]
                .iter()
                .map(|p| PurposeDoc {
                    purpose: p.to_string(),
                    given_at: 10,
                    withdrawn_at: None,
                })
                .collect(),
            collection_method: "form".into(),
            policy_version: "v1".into(),
            given_at: 10,
            recorded_at: 10,
            recorded_by: "tenant:t".into(),
            withdrawn_at: None,
        }
    }

    #[test]
    fn purposes_are_withdrawn_one_by_one_then_the_record_ends() {
        let mut d = doc();
        assert_eq!(d.withdraw(&["nope".into()], 20), Err(vec!["nope".into()]));
        assert_eq!(d.withdraw(&["surveys".into()], 20), Ok(true));
        assert!(d.purge_after().is_none());
        assert_eq!(d.withdraw(&["surveys".into()], 30), Ok(false));
        assert_eq!(d.withdraw(&[], 40), Ok(true));
        assert_eq!(d.withdrawn_at, Some(40));
        assert_eq!(d.purge_after(), add_months(40, 36));
        assert_eq!(d.withdraw(&[], 50), Ok(false));
    }
}

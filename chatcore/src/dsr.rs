//! Data-subject requests: the rules, independent of HTTP.
//!
//! A request names its person by one identifier, turned at once into the
//! tenant's blind index (`BlindKind::{Email, Phone, VisitorId}`, the same
//! token as `contacts.ident_bi`), so the request record never holds the
//! identifier. Deadlines are calendar months by the injectable clock: one
//! month from receipt, plus extensions of at most two months in all, each
//! with its reason and when the person was told (within the first month).
//!
//! The request is stored as a few key columns plus a JSON document
//! ([`DsrDoc`]) holding its history and outcome — no identifier, and for a
//! rectification only the field's name, never its value.

use c24_api::admin::dsr::{
    Dsr, DsrEvent, DsrExport, DsrExportInfo, DsrExtension, DsrOutcome, DsrStatus, DsrSubject,
    DsrType, ExportContact, ExportConversation, ExportMessage, ExportState, SubjectKind,
};
use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};
use crate::compliance::add_months;
use crate::crypto::{Aad, BlindKind, TenantCipher};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{DsrRecord, StoreError};

/// An undownloaded export is deleted this long after it was built.
pub const EXPORT_TTL_MS: Millis = 30 * 86_400_000;
/// All extensions of one request add up to at most this many months.
pub const MAX_EXTENSION_MONTHS: u32 = 2;
/// Longest identifier accepted (an email address's limit).
const MAX_IDENT: usize = 320;
/// Messages read per page while building an export.
const EXPORT_PAGE: u32 = 1000;
/// Format tag of the export document.
pub const EXPORT_FORMAT: &str = "c24-dsr-export/1";

/// 422 `invalid_subject`.
fn invalid_subject(message: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_subject",
        message.to_string(),
    )
}

/// The one identifier of a subject, checked: its kind and its value.
pub fn subject(s: &DsrSubject) -> Result<(SubjectKind, String), ApiError> {
    let given: Vec<(SubjectKind, &String)> = [
        (SubjectKind::Email, s.email.as_ref()),
        (SubjectKind::Phone, s.phone.as_ref()),
        (SubjectKind::VisitorId, s.visitor_id.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let [(kind, value)] = given.as_slice() else {
        return Err(invalid_subject(
            "subject must hold exactly one of email, phone, visitor_id",
        ));
    };
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_IDENT {
        return Err(invalid_subject(
            "the identifier must be 1 to 320 characters",
        ));
    }
    match kind {
        SubjectKind::Email if !value.contains('@') => {
            return Err(invalid_subject("email must be an email address"));
        }
        SubjectKind::Phone if !value.chars().any(|c| c.is_ascii_digit()) => {
            return Err(invalid_subject("phone must hold digits"));
        }
        _ => {}
    }
    Ok((*kind, value.to_string()))
}

pub fn blind_kind(kind: SubjectKind) -> BlindKind {
    match kind {
        SubjectKind::Email => BlindKind::Email,
        SubjectKind::Phone => BlindKind::Phone,
        SubjectKind::VisitorId => BlindKind::VisitorId,
    }
}

/// `contacts.kind` for a subject kind.
pub fn contact_kind(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::Email => "email",
        SubjectKind::Phone => "phone",
        SubjectKind::VisitorId => "visitor",
    }
}

/// The stored document of a request (timestamps in ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DsrDoc {
    pub kind: DsrType,
    pub subject_kind: SubjectKind,
    pub status: DsrStatus,
    pub received_at: Millis,
    pub initial_due_at: Millis,
    pub due_at: Millis,
    #[serde(default)]
    pub extensions: Vec<ExtensionDoc>,
    #[serde(default)]
    pub completed_at: Option<Millis>,
    #[serde(default)]
    pub outcome: Option<DsrOutcome>,
    #[serde(default)]
    pub export: Option<ExportDoc>,
    /// `tenant:{id}` or a staff token's name.
    pub requested_by: String,
    /// `tenant`, or the staff role that filed it: who may fetch the export.
    pub requested_role: String,
    pub history: Vec<EventDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtensionDoc {
    pub months: u32,
    pub reason: String,
    pub person_informed_at: Millis,
    pub recorded_at: Millis,
    pub due_at: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportDoc {
    pub created_at: Millis,
    pub expires_at: Millis,
    #[serde(default)]
    pub downloaded_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDoc {
    pub at: Millis,
    pub event: String,
    pub actor: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A request: its key columns and its document.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub tenant_id: String,
    pub subject_bi: Option<Vec<u8>>,
    pub doc: DsrDoc,
    /// The stored version it was read at (0: not stored yet); a write
    /// checks it (`DsrRecord::version`).
    pub version: i64,
}

impl Request {
    /// A new request, received at `received_at`, filed by `actor` now.
    pub fn new(
        tenant_id: &str,
        kind: DsrType,
        subject_kind: SubjectKind,
        subject_bi: Vec<u8>,
        received_at: Millis,
        actor: (String, &str),
        now: Millis,
    ) -> Result<Self, ApiError> {
        let due = add_months(received_at, 1)
            .ok_or_else(|| crate::compliance::invalid_field("received_at is out of range"))?;
        Ok(Self {
            id: crate::ingress::new_id(),
            tenant_id: tenant_id.to_string(),
            subject_bi: Some(subject_bi),
            doc: DsrDoc {
                kind,
                subject_kind,
                status: DsrStatus::Received,
                received_at,
                initial_due_at: due,
                due_at: due,
                extensions: Vec::new(),
                completed_at: None,
                outcome: None,
                export: None,
                requested_by: actor.0.clone(),
                requested_role: actor.1.to_string(),
                history: vec![EventDoc {
                    at: now,
                    event: "filed".into(),
                    actor: actor.0,
                    detail: None,
                }],
            },
            version: 0,
        })
    }

    pub fn from_record(r: &DsrRecord) -> Result<Self, ApiError> {
        let doc: DsrDoc = serde_json::from_str(&r.doc).map_err(|e| {
            ApiError::internal(format!("a stored data-subject request is unreadable: {e}"))
        })?;
        Ok(Self {
            id: r.id.clone(),
            tenant_id: r.tenant_id.clone(),
            subject_bi: r.subject_bi.clone(),
            doc,
            version: r.version,
        })
    }

    pub fn to_record(&self) -> Result<DsrRecord, ApiError> {
        Ok(DsrRecord {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            kind: self.doc.kind.as_str().to_string(),
            subject_kind: self.doc.subject_kind.as_str().to_string(),
            subject_bi: self.subject_bi.clone(),
            status: status_str(self.doc.status).to_string(),
            received_at: self.doc.received_at,
            due_at: self.doc.due_at,
            doc: serde_json::to_string(&self.doc)
                .map_err(|e| ApiError::internal(format!("encoding a request: {e}")))?,
            purge_after: None,
            version: self.version,
        })
    }

    pub fn is_open(&self) -> bool {
        self.doc.status != DsrStatus::Completed
    }

    pub fn event(&mut self, at: Millis, event: &str, actor: &str, detail: Option<String>) {
        self.doc.history.push(EventDoc {
            at,
            event: event.to_string(),
            actor: actor.to_string(),
            detail,
        });
    }

    /// Months of extension recorded so far.
    pub fn extended_months(&self) -> u32 {
        self.doc.extensions.iter().map(|e| e.months).sum()
    }

    /// Records an extension; the caller has checked it (see [`check_extension`]).
    pub fn extend(
        &mut self,
        months: u32,
        reason: String,
        informed_at: Millis,
        actor: &str,
        now: Millis,
    ) -> Result<(), ApiError> {
        let total = self.extended_months() + months;
        let due = add_months(self.doc.received_at, 1 + total)
            .ok_or_else(|| crate::compliance::invalid_field("the deadline is out of range"))?;
        self.doc.extensions.push(ExtensionDoc {
            months,
            reason,
            person_informed_at: informed_at,
            recorded_at: now,
            due_at: due,
        });
        self.doc.due_at = due;
        self.doc.status = DsrStatus::Extended;
        self.event(
            now,
            "extended",
            actor,
            Some(format!("+{months} month(s), {total} in all")),
        );
        Ok(())
    }

    /// Not completed and past its deadline at `now`.
    pub fn overdue(&self, now: Millis) -> bool {
        self.is_open() && now > self.doc.due_at
    }

    pub fn view(&self, now: Millis) -> Dsr {
        let d = &self.doc;
        let until = d.completed_at.unwrap_or(now);
        Dsr {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            kind: d.kind,
            subject_kind: d.subject_kind,
            status: d.status,
            received_at: rfc3339(d.received_at),
            due_at: rfc3339(d.due_at),
            initial_due_at: rfc3339(d.initial_due_at),
            overdue: self.overdue(now),
            seconds_left: (d.due_at - until).div_euclid(1000),
            extensions: d
                .extensions
                .iter()
                .map(|e| DsrExtension {
                    months: e.months,
                    reason: e.reason.clone(),
                    person_informed_at: rfc3339(e.person_informed_at),
                    recorded_at: rfc3339(e.recorded_at),
                    due_at: rfc3339(e.due_at),
                })
                .collect(),
            completed_at: d.completed_at.map(rfc3339),
            outcome: d.outcome.clone(),
            export: d.export.as_ref().map(|e| DsrExportInfo {
                state: export_state(e, now),
                created_at: rfc3339(e.created_at),
                expires_at: rfc3339(e.expires_at),
                downloaded_at: e.downloaded_at.map(rfc3339),
                download_role: d.requested_role.clone(),
            }),
            requested_by: d.requested_by.clone(),
            history: d
                .history
                .iter()
                .map(|h| DsrEvent {
                    at: rfc3339(h.at),
                    event: h.event.clone(),
                    actor: h.actor.clone(),
                    detail: h.detail.clone(),
                })
                .collect(),
        }
    }
}

pub fn export_state(e: &ExportDoc, now: Millis) -> ExportState {
    match e.downloaded_at {
        Some(_) => ExportState::Downloaded,
        None if e.expires_at <= now => ExportState::Expired,
        None => ExportState::Ready,
    }
}

pub fn status_str(s: DsrStatus) -> &'static str {
    match s {
        DsrStatus::Received => "received",
        DsrStatus::Extended => "extended",
        DsrStatus::Completed => "completed",
    }
}

/// Why an extension is refused, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionRefusal {
    /// months is not 1 or 2.
    Months,
    /// All extensions would add up to more than two months.
    Limit,
    /// The person was told after the first month.
    TooLate,
    /// person_informed_at is in the future or before the request was received.
    InformedAt,
}

/// Checks an extension of `months`, the person told at `informed_at`.
pub fn check_extension(
    r: &Request,
    months: u32,
    informed_at: Millis,
    now: Millis,
) -> Result<(), ExtensionRefusal> {
    if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
        return Err(ExtensionRefusal::Months);
    }
    if informed_at > now || informed_at < r.doc.received_at {
        return Err(ExtensionRefusal::InformedAt);
    }
    if informed_at > r.doc.initial_due_at {
        return Err(ExtensionRefusal::TooLate);
    }
    if r.extended_months() + months > MAX_EXTENSION_MONTHS {
        return Err(ExtensionRefusal::Limit);
    }
    Ok(())
}

fn aad<'a>(tenant: &'a str, table: &'a str, row: &'a str, column: &'a str) -> Aad<'a> {
    Aad {
        tenant,
        table,
        row,
        column,
    }
}

/// AAD of a sealed export: bound to its tenant and request.
pub fn export_aad<'a>(tenant: &'a str, dsr_id: &'a str) -> Aad<'a> {
    aad(tenant, "dsr_exports", dsr_id, "doc")
}

/// AAD of a contact's sealed field (`ident` or `name`), as ingress seals it.
pub fn contact_aad<'a>(tenant: &'a str, contact_id: &'a str, column: &'a str) -> Aad<'a> {
    aad(tenant, "contacts", contact_id, column)
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::from(e)
}

/// Everything held on the person, decrypted: their contact and every
/// conversation of it with all its messages (the agents' replies too).
pub async fn build_export(
    app: &AppState,
    cipher: &TenantCipher,
    r: &Request,
    now: Millis,
) -> Result<(DsrExport, DsrOutcome), ApiError> {
    let mut export = DsrExport {
        format: EXPORT_FORMAT.to_string(),
        dsr_id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        kind: r.doc.kind,
        generated_at: rfc3339(now),
        contacts: Vec::new(),
        conversations: Vec::new(),
    };
    let mut outcome = DsrOutcome {
        export_built: true,
        ..DsrOutcome::default()
    };
    let Some(bi) = &r.subject_bi else {
        return Ok((export, outcome));
    };
    let tenant = r.tenant_id.as_str();
    let Some(contact) = app
        .store
        .contact(tenant, contact_kind(r.doc.subject_kind), bi)
        .await
        .map_err(store_err)?
    else {
        return Ok((export, outcome));
    };
    export.contacts.push(ExportContact {
        kind: contact.kind.clone(),
        identifier: cipher
            .open_string(contact_aad(tenant, &contact.id, "ident"), &contact.ident_ct)?,
        name: contact
            .name_ct
            .as_ref()
            .map(|n| cipher.open_string(contact_aad(tenant, &contact.id, "name"), n))
            .transpose()?,
        first_seen_at: rfc3339(contact.created_at),
    });
    outcome.contacts = 1;
    for conv in app
        .store
        .contact_conversations(&contact.id)
        .await
        .map_err(store_err)?
    {
        let mut messages = Vec::new();
        let mut after = 0;
        loop {
            let page = app
                .store
                .messages(&conv.id, after, EXPORT_PAGE)
                .await
                .map_err(store_err)?;
            for m in &page {
                messages.push(ExportMessage {
                    id: m.id.clone(),
                    seq: m.seq,
                    direction: m.direction.clone(),
                    content: crate::ingress::open_body(cipher, tenant, &m.id, &m.body_ct)?,
                    subject: m
                        .subject_ct
                        .as_ref()
                        .map(|s| crate::ingress::open_subject(cipher, tenant, &m.id, s))
                        .transpose()?,
                    at: rfc3339(m.received_at),
                });
            }
            match page.last() {
                Some(last) if page.len() as u32 == EXPORT_PAGE => after = last.seq,
                _ => break,
            }
        }
        outcome.messages += messages.len() as u64;
        outcome.conversations += 1;
        export.conversations.push(ExportConversation {
            id: conv.id.clone(),
            channel: conv.channel.clone(),
            created_at: rfc3339(conv.created_at),
            last_activity_at: rfc3339(conv.last_activity_at),
            messages,
        });
    }
    Ok((export, outcome))
}

/// What is held on the person, counted (for restriction and objection).
pub async fn held(app: &AppState, r: &Request) -> Result<DsrOutcome, ApiError> {
    let mut out = DsrOutcome::default();
    let Some(bi) = &r.subject_bi else {
        return Ok(out);
    };
    if let Some(contact) = app
        .store
        .contact(&r.tenant_id, contact_kind(r.doc.subject_kind), bi)
        .await
        .map_err(store_err)?
    {
        out.contacts = 1;
        for c in app
            .store
            .contact_conversations(&contact.id)
            .await
            .map_err(store_err)?
        {
            out.conversations += 1;
            out.messages += c.message_count.max(0) as u64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::parse_time;

    fn at(s: &str) -> Millis {
        parse_time(s).unwrap_or_default()
    }

    fn request(received: &str) -> Request {
        Request::new(
            "t1",
            DsrType::Access,
            SubjectKind::Email,
            vec![1],
            at(received),
            ("tenant:t1".into(), "tenant"),
            at(received),
        )
        .unwrap_or_else(|e| panic!("{}", e.message))
    }

    #[test]
    fn one_calendar_month_then_overdue() {
        let r = request("2025-01-31T12:00:00Z");
        assert_eq!(r.doc.due_at, at("2025-02-28T12:00:00Z"));
        assert!(!r.overdue(at("2025-02-28T12:00:00Z")));
        assert!(r.overdue(at("2025-02-28T12:00:01Z")));
        assert_eq!(r.view(at("2025-02-28T11:59:00Z")).seconds_left, 60);
        assert_eq!(r.view(at("2025-02-28T12:01:00Z")).seconds_left, -60);
    }

    #[test]
    fn extensions_add_up_to_two_months_told_within_the_first() {
        let mut r = request("2025-03-10T00:00:00Z");
        let now = at("2025-03-20T00:00:00Z");
        assert_eq!(
            check_extension(&r, 3, now, now),
            Err(ExtensionRefusal::Months)
        );
        assert_eq!(
            check_extension(&r, 1, now + 1, now),
            Err(ExtensionRefusal::InformedAt)
        );
        assert_eq!(check_extension(&r, 1, now, now), Ok(()));
        r.extend(1, "complex".into(), now, "otto", now)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(r.doc.due_at, at("2025-05-10T00:00:00Z"));
        assert_eq!(r.doc.status, DsrStatus::Extended);
        assert_eq!(
            check_extension(&r, 2, now, now),
            Err(ExtensionRefusal::Limit)
        );
        r.extend(1, "numerous".into(), now, "otto", now)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(r.doc.due_at, at("2025-06-10T00:00:00Z"));
        assert!(!r.overdue(at("2025-06-09T00:00:00Z")));
        assert!(r.overdue(at("2025-06-10T00:00:01Z")));
        // Told after the first month: too late.
        let r = request("2025-03-10T00:00:00Z");
        let late = at("2025-04-11T00:00:00Z");
        assert_eq!(
            check_extension(&r, 1, late, late),
            Err(ExtensionRefusal::TooLate)
        );
    }

    #[test]
    fn a_subject_is_exactly_one_identifier() {
        assert!(subject(&DsrSubject::default()).is_err());
        assert!(
            subject(&DsrSubject {
                email: Some("a@b".into()),
                phone: Some("1".into()),
                visitor_id: None
            })
            .is_err()
        );
        assert!(subject(&DsrSubject::email("no-at")).is_err());
        assert!(subject(&DsrSubject::phone("abc")).is_err());
        assert_eq!(
            subject(&DsrSubject::email(" A@b.nl ")).ok(),
            Some((SubjectKind::Email, "A@b.nl".to_string()))
        );
        assert_eq!(
            subject(&DsrSubject::visitor_id("v-1")).ok(),
            Some((SubjectKind::VisitorId, "v-1".to_string()))
        );
    }
}

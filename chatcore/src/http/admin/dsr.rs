//! `/admin/v1/tenants/{id}/dsr`: data-subject requests a controller (the
//! tenant's own api key, or staff for it) files with the platform as its
//! processor — file, list, read, extend, complete, fetch the export. The
//! rules are [`crate::dsr`]; this module checks input, persists, publishes.
//!
//! Completing runs the request's action and stores the completed request
//! in one store transaction, so a failure leaves neither half.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use c24_api::admin::dsr::{
    CompleteDsr, CreateDsr, Dsr, DsrExport, DsrList, DsrStatus, DsrType, ExportState, ExtendDsr,
    SubjectKind,
};
use serde::Deserialize;

use crate::access::Role;
use crate::compliance::{invalid_field, parse_time, text_field};
use crate::crypto::TenantCipher;
use crate::dsr::{
    self, EXPORT_TTL_MS, ExportDoc, ExtensionRefusal, Request, contact_aad, contact_kind,
    export_aad,
};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{JsonBody, Principal, QueryParams};
use crate::http::page;
use crate::store::{DsrAction, DsrCompletion, StoreError, WriteOp, WriteOutcome};
use crate::tenants::TenantEntry;

const MAX_REASON: usize = 2000;
const MAX_NAME: usize = 200;

/// The tenant a request on `{id}` is about: a tenant key only for its own.
pub fn tenant_for(app: &AppState, who: &Principal, id: &str) -> Result<Arc<TenantEntry>, ApiError> {
    if let Principal::Tenant(t) = who
        && t.id != id
    {
        return Err(ApiError::forbidden(
            "forbidden",
            "a tenant api key acts only for its own tenant",
        ));
    }
    app.tenants
        .get(id)
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant"))
}

/// The tenant's data key; 410 once destroyed (nothing of it can be read).
pub fn cipher_of(t: &TenantEntry) -> Result<Arc<TenantCipher>, ApiError> {
    t.cipher().ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "key_destroyed",
            "this tenant's data key was destroyed; none of its data can be read or found",
        )
    })
}

async fn find(app: &AppState, tenant: &TenantEntry, dsr_id: &str) -> Result<Request, ApiError> {
    let not_found = || ApiError::not_found("dsr_not_found", "no such data-subject request");
    let r = app
        .store
        .dsr_request(dsr_id)
        .await?
        .filter(|r| r.tenant_id == tenant.id)
        .ok_or_else(not_found)?;
    Request::from_record(&r)
}

fn invalid_state(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_state", message)
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn publish(app: &AppState, r: &Request, change: &str, now: i64) {
    app.events.publish(
        "dsr.changed",
        now,
        serde_json::json!({
            "id": r.id,
            "tenant_id": r.tenant_id,
            "type": r.doc.kind,
            "change": change,
            "status": r.doc.status,
            "overdue": r.overdue(now),
        }),
    );
}

/// Attempts of a read-modify-write: a write that finds the request changed
/// since it was read (another node, or request, wrote first) is redone
/// once on a fresh read; losing twice answers 409 `conflict`.
const TRIES: usize = 2;

/// Whether a write lost a race and the change should be redone on a fresh read.
fn retry(e: &StoreError, attempt: usize) -> bool {
    matches!(e, StoreError::Stale(_)) && attempt < TRIES
}

/// Stores the request's new state (if it is still at the version read);
/// then memory follows.
async fn save(app: &AppState, r: &mut Request) -> Result<(), StoreError> {
    let record = r.to_record().map_err(|e| StoreError::Io(e.message))?;
    app.store.write(WriteOp::PutDsr(Box::new(record))).await?;
    r.version += 1;
    app.compliance
        .track_dsr(&r.id, &r.tenant_id, r.doc.due_at, r.is_open());
    Ok(())
}

/// Files a data-subject request for one person of the tenant.
///
/// The identifier is turned into the tenant's blind index at once; the
/// request keeps only that and the identifier's kind. The deadline is one
/// calendar month after `received_at`.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/dsr",
    tag = "admin",
    operation_id = "fileDsr",
    params(crate::http::openapi::TenantIdPath),
    request_body = CreateDsr,
    responses(
        (status = 201, description = "Filed.", body = Dsr),
        (status = 400, description = "`invalid_json`: malformed body, unknown field or unknown type.", body = c24_api::ErrorBody),
        (status = 410, description = "`key_destroyed`: the tenant's data key was destroyed; nothing of the person can be found.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_subject`: not exactly one of email, phone, visitor_id, or not a valid one; `invalid_field`: received_at unparsable, in the future or before the tenant existed.", body = c24_api::ErrorBody),
        crate::http::openapi::BodyWriteErrors,
        crate::http::openapi::TenantNotFound,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn file(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateDsr>,
) -> Result<(StatusCode, Json<Dsr>), ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let (kind, value) = dsr::subject(&req.subject)?;
    let now = app.clock.now_ms();
    let received_at = match req.received_at.as_deref() {
        None => now,
        Some(s) => {
            let at = parse_time(s)
                .ok_or_else(|| invalid_field("received_at must be an RFC 3339 timestamp"))?;
            if at > now || at < t.created_at {
                return Err(invalid_field(
                    "received_at must not be in the future, nor before the tenant existed",
                ));
            }
            at
        }
    };
    let cipher = cipher_of(&t)?;
    let bi = cipher.blind_index(dsr::blind_kind(kind), &value);
    let (actor, role) = who.actor();
    let mut r = Request::new(&t.id, req.kind, kind, bi, received_at, (actor, role), now)?;
    // Held so that a reload for another node's change does not miss this one.
    let serial = app.compliance.lock.lock().await;
    save(&app, &mut r).await?;
    drop(serial);
    tracing::info!(tenant = %t.id, dsr = %r.id, kind = req.kind.as_str(), "data-subject request filed");
    publish(&app, &r, "filed", now);
    Ok((StatusCode::CREATED, Json(r.view(now))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    cursor: Option<String>,
}

/// The tenant's data-subject requests, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/dsr",
    tag = "admin",
    operation_id = "listDsr",
    params(crate::http::openapi::TenantIdPath, ListParams),
    responses(
        (status = 200, description = "A page of requests, each with its deadline and whether it is overdue.", body = DsrList),
        (status = 400, description = "`invalid_query`: bad limit or query string.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<DsrList>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let limit = page::limit(q.limit)?;
    let now = app.clock.now_ms();
    let rows = app.store.dsr_requests(&t.id, limit, q.cursor).await?;
    let (open, overdue) = app.store.dsr_counts(&t.id, now).await?;
    let next = page::next_cursor(&rows, limit, |r| r.id.clone());
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(Request::from_record(r)?.view(now));
    }
    Ok(Json(DsrList {
        items,
        next,
        open: open as usize,
        overdue: overdue as usize,
    }))
}

/// One data-subject request with its history.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/dsr/{dsr_id}",
    tag = "admin",
    operation_id = "getDsr",
    params(
        crate::http::openapi::TenantIdPath,
        ("dsr_id" = String, Path, description = "The request's id."),
    ),
    responses(
        (status = 200, description = "The request.", body = Dsr),
        (status = 404, description = "`tenant_not_found`: no such tenant; `dsr_not_found`: no such request for this tenant.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn show(
    State(app): State<AppState>,
    who: Principal,
    Path((id, dsr_id)): Path<(String, String)>,
) -> Result<Json<Dsr>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let r = find(&app, &t, &dsr_id).await?;
    Ok(Json(r.view(app.clock.now_ms())))
}

/// Extends a request's deadline by one or two months (two in all), with
/// the reason and when the person was told (within the first month).
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/dsr/{dsr_id}/extend",
    tag = "admin",
    operation_id = "extendDsr",
    params(
        crate::http::openapi::TenantIdPath,
        ("dsr_id" = String, Path, description = "The request's id."),
    ),
    request_body = ExtendDsr,
    responses(
        (status = 200, description = "Extended: due_at moved.", body = Dsr),
        (status = 404, description = "`tenant_not_found`: no such tenant; `dsr_not_found`: no such request for this tenant.", body = c24_api::ErrorBody),
        (status = 409, description = "`invalid_state`: the request is completed (also when another node completed it meanwhile); `conflict`: changed concurrently twice, nothing changed.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: months not 1 or 2, reason empty or over 2000 characters, person_informed_at unparsable, in the future or before receipt; `extension_limit`: the extensions would add up to more than two months; `extension_too_late`: the person was told after the first month.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn extend(
    State(app): State<AppState>,
    who: Principal,
    Path((id, dsr_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<ExtendDsr>,
) -> Result<Json<Dsr>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let reason = text_field("reason", &req.reason, MAX_REASON)?;
    let informed = parse_time(&req.person_informed_at)
        .ok_or_else(|| invalid_field("person_informed_at must be an RFC 3339 timestamp"))?;
    let _serial = crate::compliance::serial(&app).await?;
    let mut attempt = 1;
    loop {
        // Read from the store each time: another node may have changed it.
        let mut r = find(&app, &t, &dsr_id).await?;
        if !r.is_open() {
            return Err(invalid_state("a completed request cannot be extended"));
        }
        let now = app.clock.now_ms();
        check_extension(&r, req.months, informed, now)?;
        let (actor, _) = who.actor();
        r.extend(req.months, reason.clone(), informed, &actor, now)?;
        match save(&app, &mut r).await {
            Ok(()) => {
                publish(&app, &r, "extended", now);
                return Ok(Json(r.view(now)));
            }
            Err(e) if retry(&e, attempt) => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn check_extension(r: &Request, months: u32, informed: i64, now: i64) -> Result<(), ApiError> {
    dsr::check_extension(r, months, informed, now).map_err(|e| match e {
        ExtensionRefusal::Months => invalid_field("months must be 1 or 2"),
        ExtensionRefusal::InformedAt => invalid_field(
            "person_informed_at must not be in the future, nor before the request was received",
        ),
        ExtensionRefusal::TooLate => unprocessable(
            "extension_too_late",
            "the person must be told of an extension within the first month",
        ),
        ExtensionRefusal::Limit => unprocessable(
            "extension_limit",
            format!(
                "extensions add up to at most {} months; {} already recorded",
                dsr::MAX_EXTENSION_MONTHS,
                r.extended_months()
            ),
        ),
    })
}

/// What a completion will do, with the outcome to record.
struct Plan {
    action: DsrAction,
    outcome: c24_api::admin::dsr::DsrOutcome,
    detail: String,
    export: Option<ExportDoc>,
}

/// A rectification: the new value sealed as ingress seals it.
async fn plan_rectification(
    app: &AppState,
    cipher: &TenantCipher,
    r: &Request,
    req: &CompleteDsr,
) -> Result<Plan, ApiError> {
    let (Some(field), Some(value)) = (req.field.as_deref(), req.value.as_deref()) else {
        return Err(invalid_field(
            "a rectification names the field (name, email or phone) and its value",
        ));
    };
    let not_held = || {
        ApiError::not_found(
            "subject_not_found",
            "nothing is held on this person, so nothing can be rectified",
        )
    };
    let bi = r.subject_bi.clone().ok_or_else(not_held)?;
    let contact = app
        .store
        .contact(&r.tenant_id, contact_kind(r.doc.subject_kind), &bi)
        .await?
        .ok_or_else(not_held)?;
    let tenant = r.tenant_id.as_str();
    let (name_ct, ident) = match field {
        "name" => {
            let v = text_field("value", value, MAX_NAME)?;
            let ct = cipher.seal(contact_aad(tenant, &contact.id, "name"), v.as_bytes())?;
            (Some(ct), None)
        }
        "email" | "phone" => {
            let kind = if field == "email" {
                SubjectKind::Email
            } else {
                SubjectKind::Phone
            };
            if kind != r.doc.subject_kind {
                return Err(invalid_field(format!(
                    "this person's contact is known by {}, so {field} is not a field of it",
                    r.doc.subject_kind.as_str()
                )));
            }
            let subject = match kind {
                SubjectKind::Email => c24_api::admin::dsr::DsrSubject::email(value),
                _ => c24_api::admin::dsr::DsrSubject::phone(value),
            };
            let (_, v) = dsr::subject(&subject).map_err(|e| invalid_field(e.message))?;
            let ct = cipher.seal(contact_aad(tenant, &contact.id, "ident"), v.as_bytes())?;
            (
                None,
                Some((ct, cipher.blind_index(dsr::blind_kind(kind), &v))),
            )
        }
        _ => return Err(invalid_field("field must be name, email or phone")),
    };
    let mut outcome = dsr::held(app, r).await?;
    outcome.rectified_field = Some(field.to_string());
    Ok(Plan {
        action: DsrAction::Rectify {
            contact_id: contact.id,
            ident_bi: bi,
            name_ct,
            ident,
        },
        outcome,
        detail: format!("{field} rectified"),
        export: None,
    })
}

/// Completes a request: runs it and records the outcome.
///
/// Erasure deletes the person's messages, conversations, email threads and
/// contact (with their blind indexes) and truncates the WAL; rectification
/// re-seals one field (`{"field","value"}`); restriction and objection make
/// ingress for the identifier answer 403 `processing_restricted`, the data
/// kept; access and portability build the export, sealed under the
/// tenant's key, to be fetched once.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/dsr/{dsr_id}/complete",
    tag = "admin",
    operation_id = "completeDsr",
    params(
        crate::http::openapi::TenantIdPath,
        ("dsr_id" = String, Path, description = "The request's id."),
    ),
    request_body = CompleteDsr,
    responses(
        (status = 200, description = "Completed; the outcome says what was done.", body = Dsr),
        (status = 404, description = "`tenant_not_found`: no such tenant; `dsr_not_found`: no such request for this tenant; `subject_not_found`: a rectification, and nothing is held on the person.", body = c24_api::ErrorBody),
        (status = 409, description = "`invalid_state`: the request is already completed (also when another node completed it meanwhile); `conflict`: a rectified identifier belongs to another contact of the tenant, or the request was changed concurrently twice.", body = c24_api::ErrorBody),
        (status = 410, description = "`key_destroyed`: the tenant's data key was destroyed.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: field/value missing for a rectification, given for another type, or not valid.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn complete(
    State(app): State<AppState>,
    who: Principal,
    Path((id, dsr_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<CompleteDsr>,
) -> Result<Json<Dsr>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let _serial = crate::compliance::serial(&app).await?;
    let mut attempt = 1;
    loop {
        match complete_once(&app, &who, &t, &dsr_id, &req).await {
            Ok(dsr) => return Ok(Json(dsr)),
            Err(Attempt::Lost(e)) if retry(&e, attempt) => attempt += 1,
            Err(Attempt::Lost(e)) => return Err(e.into()),
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
}

/// Why one attempt of a read-modify-write did not finish.
enum Attempt {
    /// The write found the request changed since it was read.
    Lost(StoreError),
    Failed(ApiError),
}

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<crate::crypto::CryptoError> for Attempt {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Attempt::Failed(e.into())
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale(_) => Attempt::Lost(e),
            e => Attempt::Failed(e.into()),
        }
    }
}

/// One attempt of [`complete`], on the request as stored now.
async fn complete_once(
    app: &AppState,
    who: &Principal,
    t: &TenantEntry,
    dsr_id: &str,
    req: &CompleteDsr,
) -> Result<Dsr, Attempt> {
    let mut r = find(app, t, dsr_id).await?;
    if !r.is_open() {
        return Err(invalid_state("the request is already completed").into());
    }
    let kind = r.doc.kind;
    if kind != DsrType::Rectification && (req.field.is_some() || req.value.is_some()) {
        return Err(invalid_field("field and value are for a rectification only").into());
    }
    let cipher = cipher_of(t)?;
    let now = app.clock.now_ms();
    let plan = match kind {
        DsrType::Erasure => {
            // Counted before; the store's own count after the deletion wins.
            let outcome = dsr::held(app, &r).await?;
            Plan {
                action: match &r.subject_bi {
                    Some(bi) => DsrAction::Erase {
                        kind: contact_kind(r.doc.subject_kind),
                        ident_bi: bi.clone(),
                    },
                    None => DsrAction::None,
                },
                detail: erased_detail(outcome.contacts, outcome.conversations, outcome.messages),
                outcome,
                export: None,
            }
        }
        DsrType::Rectification => plan_rectification(app, &cipher, &r, req).await?,
        DsrType::Restriction | DsrType::Objection => {
            let mut outcome = dsr::held(app, &r).await?;
            outcome.processing_restricted = r.subject_bi.is_some();
            Plan {
                action: match &r.subject_bi {
                    Some(bi) => DsrAction::Restrict {
                        ident_bi: bi.clone(),
                    },
                    None => DsrAction::None,
                },
                outcome,
                detail: "processing restricted".into(),
                export: None,
            }
        }
        DsrType::Access | DsrType::Portability => {
            let (export, outcome) = dsr::build_export(app, &cipher, &r, now).await?;
            let json = serde_json::to_vec(&export)
                .map_err(|e| ApiError::internal(format!("encoding the export: {e}")))?;
            let sealed = cipher.seal(export_aad(&t.id, &r.id), &json)?;
            let expires_at = now + EXPORT_TTL_MS;
            Plan {
                detail: format!(
                    "export built: {} conversation(s), {} message(s)",
                    outcome.conversations, outcome.messages
                ),
                action: DsrAction::Export {
                    sealed,
                    purge_after: expires_at,
                },
                outcome,
                export: Some(ExportDoc {
                    created_at: now,
                    expires_at,
                    downloaded_at: None,
                }),
            }
        }
    };
    let (actor, _) = who.actor();
    r.doc.status = DsrStatus::Completed;
    r.doc.completed_at = Some(now);
    r.doc.export = plan.export;
    if kind == DsrType::Erasure {
        // The request itself forgets whom it was about.
        r.subject_bi = None;
    }
    let mut outcome = plan.outcome;
    r.doc.outcome = Some(outcome.clone());
    r.event(now, "completed", &actor, Some(plan.detail));
    let record = r.to_record()?;
    // Ingress is closed to the person before the commit, so nothing of
    // theirs slips in between; a failed write opens it again (unless an
    // earlier request had closed it).
    let restrict = match &plan.action {
        DsrAction::Restrict { ident_bi } if !app.compliance.is_restricted(&t.id, ident_bi) => {
            app.compliance.restrict(&t.id, ident_bi.clone());
            Some(ident_bi.clone())
        }
        _ => None,
    };
    let done = match app
        .store
        .write(WriteOp::CompleteDsr(Box::new(DsrCompletion {
            record,
            action: plan.action,
            at: now,
        })))
        .await
    {
        Ok(done) => done,
        Err(e) => {
            if let Some(bi) = &restrict {
                app.compliance.lift(&t.id, bi);
            }
            return Err(e.into());
        }
    };
    if let WriteOutcome::Erased(e) = done {
        t.usage
            .add(-(e.messages as i64), -e.bytes, -(e.conversations as i64));
        app.trace_rows.fetch_sub(
            i64::try_from(e.trace_entries).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        let exact = (e.contacts, e.conversations, e.messages);
        if exact != (outcome.contacts, outcome.conversations, outcome.messages) {
            // A message arrived between counting and deleting: record what
            // was really deleted (the request is completed either way).
            (outcome.contacts, outcome.conversations, outcome.messages) = exact;
            r.doc.outcome = Some(outcome);
            if let Some(last) = r.doc.history.last_mut() {
                last.detail = Some(erased_detail(exact.0, exact.1, exact.2));
            }
            r.version += 1;
            match app
                .store
                .write(WriteOp::PutDsr(Box::new(r.to_record()?)))
                .await
            {
                Ok(_) => {}
                // Completed and erased either way: only the counts in its
                // outcome stay the estimate (a concurrent write came first).
                Err(StoreError::Stale(_)) => {
                    tracing::warn!(dsr = %r.id, "erasure counts not recorded: the request was changed concurrently")
                }
                Err(e) => return Err(Attempt::Failed(e.into())),
            }
        }
    }
    app.compliance
        .track_dsr(&r.id, &r.tenant_id, r.doc.due_at, false);
    tracing::info!(tenant = %t.id, dsr = %r.id, kind = kind.as_str(), "data-subject request completed");
    publish(app, &r, "completed", now);
    Ok(r.view(now))
}

/// Fetches the export of a completed access or portability request, once.
///
/// Only the role that filed the request may fetch it (the tenant's key, or
/// a staff role at least as high); the sealed export is deleted by this
/// download, so a second one answers 410 `export_gone`.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/dsr/{dsr_id}/export",
    tag = "admin",
    operation_id = "downloadDsrExport",
    params(
        crate::http::openapi::TenantIdPath,
        ("dsr_id" = String, Path, description = "The request's id."),
    ),
    responses(
        (status = 200, description = "The export: everything held on the person, decrypted.", body = DsrExport),
        (status = 403, description = "`forbidden`: a tenant key for another tenant, or not the role that filed the request.", body = c24_api::ErrorBody),
        (status = 404, description = "`tenant_not_found`: no such tenant; `dsr_not_found`: no such request for this tenant.", body = c24_api::ErrorBody),
        (status = 409, description = "`invalid_state`: not an access or portability request, or not completed yet; `conflict`: changed concurrently twice.", body = c24_api::ErrorBody),
        (status = 410, description = "`export_gone`: already downloaded, or expired unfetched; `key_destroyed`: the tenant's data key was destroyed.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn export(
    State(app): State<AppState>,
    who: Principal,
    Path((id, dsr_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let _serial = crate::compliance::serial(&app).await?;
    let mut attempt = 1;
    let (r, sealed, now, cipher) = loop {
        let mut r = find(&app, &t, &dsr_id).await?;
        if !r.doc.kind.has_export() {
            return Err(invalid_state(
                "only access and portability requests have an export",
            ));
        }
        let Some(info) = r.doc.export.clone() else {
            return Err(invalid_state("the request is not completed yet"));
        };
        let allowed = match (&who, r.doc.requested_role.as_str()) {
            (Principal::Tenant(_), "tenant") => true,
            (Principal::Staff(s), filed) => {
                filed != "tenant" && s.role >= role_named(filed).unwrap_or(Role::Admin)
            }
            _ => false,
        };
        if !allowed {
            return Err(ApiError::forbidden(
                "forbidden",
                format!(
                    "the export is for the role that filed the request ({})",
                    r.doc.requested_role
                ),
            ));
        }
        let now = app.clock.now_ms();
        let gone = || {
            ApiError::new(
                StatusCode::GONE,
                "export_gone",
                "the export was already downloaded, or expired",
            )
        };
        if dsr::export_state(&info, now) != ExportState::Ready {
            return Err(gone());
        }
        let cipher = cipher_of(&t)?;
        let (actor, _) = who.actor();
        r.doc.export = Some(ExportDoc {
            downloaded_at: Some(now),
            ..info
        });
        r.event(now, "export_downloaded", &actor, None);
        match app
            .store
            .write(WriteOp::TakeDsrExport(Box::new(r.to_record()?)))
            .await
        {
            Ok(WriteOutcome::Blob(b)) => break (r, b, now, cipher),
            Ok(_) => return Err(ApiError::internal("unexpected store answer")),
            Err(StoreError::NotFound(_)) => return Err(gone()),
            Err(e) if retry(&e, attempt) => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let json = cipher.open(export_aad(&t.id, &r.id), &sealed)?;
    tracing::info!(tenant = %t.id, dsr = %r.id, "data-subject export downloaded (and deleted)");
    publish(&app, &r, "export_downloaded", now);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"dsr-{}.json\"", r.id),
            ),
        ],
        json,
    )
        .into_response())
}

fn erased_detail(contacts: u64, conversations: u64, messages: u64) -> String {
    format!("erased {contacts} contact(s), {conversations} conversation(s), {messages} message(s)")
}

fn role_named(s: &str) -> Option<Role> {
    [Role::Viewer, Role::Operator, Role::Admin]
        .into_iter()
        .find(|r| r.as_str() == s)
}

//! `/admin/v1/tenants/{id}/consents`: consent records of a tenant's end
//! users (the tenant's own api key, or staff for it) — record consent
//! given, withdraw it (all or some purposes), list with counts. The rules
//! are [`crate::consent`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use c24_api::admin::consents::{
    Consent, ConsentList, PurposeCount, RecordConsent, WithdrawConsent,
};
use c24_api::admin::dsr::DsrSubject;
use serde::Deserialize;

use super::dsr::{cipher_of, tenant_for};
use crate::compliance::{invalid_field, parse_time, text_field, text_list};
use crate::consent::{self, ConsentDoc, PurposeDoc};
use crate::dsr;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{JsonBody, Principal, QueryParams};
use crate::http::page;
use crate::store::{ConsentRecord, StoreError, WriteOp};

const MAX_TEXT: usize = 200;
const MAX_PURPOSES: usize = 50;

fn publish(app: &AppState, r: &ConsentRecord, change: &str, now: i64) {
    app.events.publish(
        "consent.changed",
        now,
        serde_json::json!({"id": r.id, "tenant_id": r.tenant_id, "change": change}),
    );
}

/// Records consent given by one person, per purpose.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/consents",
    tag = "admin",
    operation_id = "recordConsent",
    params(crate::http::openapi::TenantIdPath),
    request_body = RecordConsent,
    responses(
        (status = 201, description = "Recorded.", body = Consent),
        (status = 410, description = "`key_destroyed`: the tenant's data key was destroyed.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_subject`: not exactly one of email, phone, visitor_id, or not a valid one; `invalid_field`: no purposes, or a purpose, collection_method or policy_version empty or over 200 characters, or given_at unparsable or in the future.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
        crate::http::openapi::TenantNotFound,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn record(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RecordConsent>,
) -> Result<(StatusCode, Json<Consent>), ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let (kind, value) = dsr::subject(&req.subject)?;
    let purposes = text_list("purposes", &req.purposes, MAX_TEXT, MAX_PURPOSES, true)?;
    let collection_method = text_field("collection_method", &req.collection_method, MAX_TEXT)?;
    let policy_version = text_field("policy_version", &req.policy_version, MAX_TEXT)?;
    let now = app.clock.now_ms();
    let given_at = match req.given_at.as_deref() {
        None => now,
        Some(s) => {
            let at = parse_time(s)
                .ok_or_else(|| invalid_field("given_at must be an RFC 3339 timestamp"))?;
            if at > now {
                return Err(invalid_field("given_at must not be in the future"));
            }
            at
        }
    };
    let cipher = cipher_of(&t)?;
    let doc = ConsentDoc {
        subject_kind: kind,
        purposes: purposes
            .into_iter()
            .map(|purpose| PurposeDoc {
                purpose,
                given_at,
                withdrawn_at: None,
            })
            .collect(),
        collection_method,
        policy_version,
        given_at,
        recorded_at: now,
        recorded_by: who.actor().0,
        withdrawn_at: None,
    };
    let r = ConsentRecord {
        id: crate::ingress::new_id(),
        tenant_id: t.id.clone(),
        subject_kind: kind.as_str().to_string(),
        subject_bi: cipher.blind_index(dsr::blind_kind(kind), &value),
        doc: doc.encode()?,
        purge_after: None,
        version: 0,
    };
    app.store
        .write(WriteOp::PutConsent(Box::new(r.clone())))
        .await?;
    publish(&app, &r, "given", now);
    Ok((StatusCode::CREATED, Json(consent::view(&r, &doc))))
}

/// Withdraws a consent: the purposes named, or all that still stand.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/consents/{consent_id}/withdraw",
    tag = "admin",
    operation_id = "withdrawConsent",
    params(
        crate::http::openapi::TenantIdPath,
        ("consent_id" = String, Path, description = "The consent record's id."),
    ),
    request_body = WithdrawConsent,
    responses(
        (status = 200, description = "Withdrawn; once no purpose stands, purge_after is consent end + 3 years.", body = Consent),
        (status = 404, description = "`tenant_not_found`: no such tenant; `consent_not_found`: no such consent record for this tenant.", body = c24_api::ErrorBody),
        (status = 409, description = "`invalid_state`: the purposes named are withdrawn already; `conflict`: the record was changed concurrently twice, nothing changed.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: a purpose that is not one of the record's.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
        crate::http::openapi::ForeignTenantKey,
    ),
)]
pub async fn withdraw(
    State(app): State<AppState>,
    who: Principal,
    Path((id, consent_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<WithdrawConsent>,
) -> Result<Json<Consent>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let _serial = crate::compliance::serial(&app).await?;
    let which: Vec<String> = req
        .purposes
        .unwrap_or_default()
        .iter()
        .map(|p| p.trim().to_string())
        .collect();
    // Read from the store, changed, written back only if still at the
    // version read; a write that lost to another node's is redone once on
    // a fresh read (both withdrawals then stand), a second loss is 409 `conflict`.
    let mut attempt = 1;
    let (r, doc, now) = loop {
        let mut r = app
            .store
            .consent(&consent_id)
            .await?
            .filter(|r| r.tenant_id == t.id)
            .ok_or_else(|| ApiError::not_found("consent_not_found", "no such consent record"))?;
        let mut doc = ConsentDoc::parse(&r.doc)?;
        let now = app.clock.now_ms();
        match doc.withdraw(&which, now) {
            Err(unknown) => {
                return Err(invalid_field(format!(
                    "not a purpose of this consent: {}",
                    unknown.join(", ")
                )));
            }
            Ok(false) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "invalid_state",
                    "those purposes are withdrawn already",
                ));
            }
            Ok(true) => {}
        }
        r.doc = doc.encode()?;
        r.purge_after = doc.purge_after();
        match app
            .store
            .write(WriteOp::PutConsent(Box::new(r.clone())))
            .await
        {
            Ok(_) => break (r, doc, now),
            Err(StoreError::Stale(_)) if attempt < 2 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    // The store keeps a purge date set earlier (the contract's end).
    let stored = app.store.consent(&r.id).await?.unwrap_or(r);
    publish(&app, &stored, "withdrawn", now);
    Ok(Json(consent::view(&stored, &doc)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this person's records (at most one of email, phone, visitor_id).
    email: Option<String>,
    phone: Option<String>,
    visitor_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    cursor: Option<String>,
}

/// The tenant's consent records, newest first, with counts of consents
/// given and withdrawn per purpose.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/consents",
    tag = "admin",
    operation_id = "listConsents",
    params(crate::http::openapi::TenantIdPath, ListParams),
    responses(
        (status = 200, description = "A page of consent records and the counts.", body = ConsentList),
        (status = 400, description = "`invalid_query`: bad limit, more than one identifier, an invalid one, or a query string that does not parse.", body = c24_api::ErrorBody),
        (status = 410, description = "`key_destroyed`: a person is named, and the tenant's data key was destroyed.", body = c24_api::ErrorBody),
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
) -> Result<Json<ConsentList>, ApiError> {
    let t = tenant_for(&app, &who, &id)?;
    let limit = page::limit(q.limit)?;
    let subject_bi = if q.email.is_none() && q.phone.is_none() && q.visitor_id.is_none() {
        None
    } else {
        let s = DsrSubject {
            email: q.email,
            phone: q.phone,
            visitor_id: q.visitor_id,
        };
        let (kind, value) =
            dsr::subject(&s).map_err(|e| ApiError::bad_request("invalid_query", e.message))?;
        Some(cipher_of(&t)?.blind_index(dsr::blind_kind(kind), &value))
    };
    let rows = app
        .store
        .consents(&t.id, subject_bi.clone(), limit, q.cursor)
        .await?;
    let counts = app.store.consent_counts(&t.id, subject_bi).await?;
    let next = page::next_cursor(&rows, limit, |r| r.id.clone());
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(consent::view(r, &ConsentDoc::parse(&r.doc)?));
    }
    Ok(Json(ConsentList {
        items,
        next,
        total: counts.total,
        withdrawn: counts.withdrawn,
        withdrawals: counts.withdrawals,
        by_purpose: counts
            .by_purpose
            .into_iter()
            .map(|(purpose, given, withdrawn)| PurposeCount {
                purpose,
                given,
                withdrawn,
            })
            .collect(),
    }))
}

//! `/admin/v1/subprocessors`: the registry (list, announce, announce a
//! change, approve, retire, objections) and its JSON Feed. The rules live in
//! [`crate::registry`]; this module persists, publishes and answers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use c24_api::admin::subprocessors::{ApproveRequest, RegistryList};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{JsonBody, Principal, RawBody};
use crate::registry::{
    self, Announcement, ChangeRequest, ObjectionRequest, RegistryError, Status, SubProcessor,
};
use std::collections::HashMap;

use crate::store::{StoreError, WriteOp};

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::new(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            e.code(),
            e.to_string(),
        )
    }
}

/// The registry in memory; the store holds each entry as a JSON document
/// (the truth: every change re-reads it first, and other nodes' changes
/// reload it, see [`reload`]).
#[derive(Default)]
pub struct RegistryState {
    pub entries: tokio::sync::Mutex<Vec<SubProcessor>>,
}

/// The stored document of each entry, by id: what a write of it expects
/// to replace.
type Stored = HashMap<String, String>;

fn encode(sp: &SubProcessor) -> Result<String, ApiError> {
    serde_json::to_string(sp)
        .map_err(|e| ApiError::internal(format!("encoding registry entry: {e}")))
}

/// Every stored entry, with the documents as stored.
async fn read(app: &AppState) -> Result<(Vec<SubProcessor>, Stored), ApiError> {
    let docs = app.store.subprocessors().await?;
    let mut entries = Vec::with_capacity(docs.len());
    let mut stored = Stored::with_capacity(docs.len());
    for d in docs {
        let sp: SubProcessor = serde_json::from_str(&d).map_err(|e| {
            ApiError::internal(format!("a stored registry entry is unreadable: {e}"))
        })?;
        stored.insert(sp.id.clone(), d);
        entries.push(sp);
    }
    Ok((entries, stored))
}

type Locked<'a> = tokio::sync::MutexGuard<'a, Vec<SubProcessor>>;

/// The registry locked, as the store holds it now: another node may have
/// changed it since, and a change here must start from that, not write a
/// stale entry back over it.
async fn fresh(app: &AppState) -> Result<(Locked<'_>, Stored), ApiError> {
    let mut entries = app.registry.entries.lock().await;
    let (now, stored) = read(app).await?;
    *entries = now;
    Ok((entries, stored))
}

/// Writes one entry over the document `stored` holds for it (none: a new
/// entry); the other nodes hear of it at the commit. `Ok(false)`: another
/// node wrote it since it was read; nothing changed.
async fn replace(app: &AppState, sp: &SubProcessor, stored: &mut Stored) -> Result<bool, ApiError> {
    let doc = encode(sp)?;
    let op = WriteOp::ReplaceSubprocessor {
        id: sp.id.clone(),
        expected: stored.get(&sp.id).cloned(),
        doc: doc.clone(),
    };
    match app.store.write(op).await {
        Ok(_) => {
            stored.insert(sp.id.clone(), doc);
            Ok(true)
        }
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads of the registry a change retries when another node wrote the
/// same entry between its read and its write.
const ATTEMPTS: usize = 5;

fn changed_meanwhile() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the entry kept changing on other nodes meanwhile; retry",
    )
}

/// Loads the registry, seeding it from the policy on first start. The
/// seed's ids are fixed and stored entries are kept, so nodes starting at
/// once on an empty database seed it once.
pub async fn load(app: &AppState) -> Result<(), ApiError> {
    let (mut entries, _) = read(app).await?;
    if entries.is_empty() {
        let seed = registry::seed(app.clock.now_ms());
        let mut docs = Vec::with_capacity(seed.len());
        for sp in &seed {
            docs.push((sp.id.clone(), encode(sp)?));
        }
        app.store.write(WriteOp::SeedSubprocessors(docs)).await?;
        // Another node's seed may have landed first: the stored one wins.
        entries = read(app).await?.0;
    }
    *app.registry.entries.lock().await = entries;
    Ok(())
}

/// Reloads the registry after another node's change (or missed events).
pub async fn reload(app: &AppState) {
    if let Err(e) = fresh(app).await {
        tracing::warn!(error = %e.message, "reloading the sub-processor registry failed");
    }
}

/// Applies what has come due (proposals taking effect); persists and announces it.
pub async fn advance(app: &AppState) -> Result<(), ApiError> {
    for _ in 0..ATTEMPTS {
        let (mut entries, mut stored) = fresh(app).await?;
        if advance_locked(app, &mut entries, &mut stored).await? {
            return Ok(());
        }
    }
    Err(changed_meanwhile())
}

/// `false`: an entry changed on another node meanwhile (read again).
async fn advance_locked(
    app: &AppState,
    entries: &mut [SubProcessor],
    stored: &mut Stored,
) -> Result<bool, ApiError> {
    let now = app.clock.now_ms();
    let ids = registry::advance_all(entries, now);
    if ids.is_empty() {
        return Ok(true);
    }
    let mut done = true;
    for sp in entries.iter().filter(|e| ids.contains(&e.id)) {
        if !replace(app, sp, stored).await? {
            done = false;
            continue;
        }
        app.events.publish(
            "registry.changed",
            now,
            serde_json::json!({"id": sp.id, "change": "effective", "status": sp.status}),
        );
    }
    Ok(done)
}

/// The registry, with entries that came due applied first.
#[utoipa::path(
    get,
    path = "/admin/v1/subprocessors",
    tag = "admin",
    operation_id = "listSubprocessors",
    responses(
        (status = 200, description = "Every entry, with pending and flagged counts.", body = RegistryList),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn list(State(app): State<AppState>) -> Result<Json<RegistryList>, ApiError> {
    advance(&app).await?;
    let items = app.registry.entries.lock().await.clone();
    let pending = items
        .iter()
        .filter(|e| e.status == Status::Proposed || e.pending_change.is_some())
        .count();
    let flagged = items.iter().filter(|e| !e.flags.is_empty()).count();
    let awaiting_approval = items.iter().filter(|e| e.awaits_approval()).count();
    Ok(Json(RegistryList {
        items,
        pending,
        flagged,
        notice_days: app.notice_days,
        awaiting_approval,
    }))
}

/// Runs `f` on the registry as stored, writes the entry it names over the
/// one it read (again from the store if another node wrote it meanwhile),
/// announces the change.
async fn mutate<F>(app: &AppState, change: &'static str, mut f: F) -> Result<SubProcessor, ApiError>
where
    F: FnMut(&mut Vec<SubProcessor>, i64) -> Result<String, RegistryError>,
{
    for _ in 0..ATTEMPTS {
        let (mut entries, mut stored) = fresh(app).await?;
        if !advance_locked(app, &mut entries, &mut stored).await? {
            continue;
        }
        let now = app.clock.now_ms();
        let before = entries.clone();
        let id = f(&mut entries, now)?;
        let sp = entries
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .ok_or_else(|| ApiError::from(RegistryError::NotFound))?;
        match replace(app, &sp, &mut stored).await {
            Ok(true) => {}
            // Not durable: not done.
            Ok(false) => {
                *entries = before;
                continue;
            }
            Err(e) => {
                *entries = before;
                return Err(e);
            }
        }
        drop(entries);
        tracing::info!(subprocessor = %sp.id, change, "registry changed");
        app.events.publish(
            "registry.changed",
            now,
            serde_json::json!({"id": sp.id, "change": change, "status": sp.status}),
        );
        return Ok(sp);
    }
    Err(changed_meanwhile())
}

/// Announces a new sub-processor, effective after the notice period.
#[utoipa::path(
    post,
    path = "/admin/v1/subprocessors",
    tag = "admin",
    operation_id = "announceSubprocessor",
    request_body = Announcement,
    responses(
        (status = 201, description = "Announced: status proposed until effective_at.", body = SubProcessor),
        (status = 409, description = "`conflict`: the name is already listed under that category.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: a field is empty, too long or not one of its values; `notice_period`: effective_at is inside the notice period.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn announce(
    State(app): State<AppState>,
    JsonBody(a): JsonBody<Announcement>,
) -> Result<(StatusCode, Json<SubProcessor>), ApiError> {
    let notice = app.notice_days;
    let sp = mutate(&app, "announced", |entries, now| {
        registry::announce_into(entries, a.clone(), now, notice).map(|sp| sp.id.clone())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(sp)))
}

/// Announces a change to an entry, effective after the notice period.
#[utoipa::path(
    post,
    path = "/admin/v1/subprocessors/{id}/changes",
    tag = "admin",
    operation_id = "changeSubprocessor",
    params(("id" = String, Path, description = "The sub-processor's id.")),
    request_body = ChangeRequest,
    responses(
        (status = 200, description = "The entry with its pending_change.", body = SubProcessor),
        (status = 404, description = "`not_found`: no such sub-processor.", body = c24_api::ErrorBody),
        (status = 409, description = "`conflict`: the sub-processor is retired.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: a field is empty, too long, or nothing changes; `notice_period`: effective_at is inside the notice period.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn change(
    State(app): State<AppState>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<ChangeRequest>,
) -> Result<Json<SubProcessor>, ApiError> {
    let notice = app.notice_days;
    Ok(Json(
        mutate(&app, "change_announced", |entries, now| {
            let sp = registry::find_mut(entries, &id)?;
            registry::announce_change(sp, c.clone(), now, notice)?;
            Ok(sp.id.clone())
        })
        .await?,
    ))
}

/// An admin approves what waits on an entry (a proposal, an announced
/// change, or both); it then takes effect on its effective date, or at once
/// if that has passed.
#[utoipa::path(
    post,
    path = "/admin/v1/subprocessors/{id}/approve",
    tag = "admin",
    operation_id = "approveSubprocessor",
    params(("id" = String, Path, description = "The sub-processor's id.")),
    request_body(content = Option<ApproveRequest>, description = "Optional: the `announced_at` the admin reviewed."),
    responses(
        (status = 200, description = "The entry, approved (and in effect if its date has passed).", body = SubProcessor),
        (status = 404, description = "`not_found`: no such sub-processor.", body = c24_api::ErrorBody),
        (status = 409, description = "`nothing_to_approve`: no proposal or announced change waits for approval (also for a retired entry); `stale_approval`: what waits was announced at another instant than the body's `announced_at` (replaced since it was reviewed).", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn approve(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<SubProcessor>, ApiError> {
    // The body is optional (older clients send none or `{}`).
    let req: ApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))?
    };
    let (by, _) = who.actor();
    Ok(Json(
        mutate(&app, "approved", |entries, now| {
            let sp = registry::find_mut(entries, &id)?;
            registry::approve(sp, &by, req.announced_at.as_deref(), now)?;
            // Approved after its date: it takes effect now.
            registry::advance(sp, now);
            Ok(sp.id.clone())
        })
        .await?,
    ))
}

/// Retires an entry now.
#[utoipa::path(
    post,
    path = "/admin/v1/subprocessors/{id}/retire",
    tag = "admin",
    operation_id = "retireSubprocessor",
    params(("id" = String, Path, description = "The sub-processor's id.")),
    responses(
        (status = 200, description = "The retired entry.", body = SubProcessor),
        (status = 404, description = "`not_found`: no such sub-processor.", body = c24_api::ErrorBody),
        (status = 409, description = "`conflict`: the sub-processor is already retired.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn retire(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubProcessor>, ApiError> {
    Ok(Json(
        mutate(&app, "retired", |entries, now| {
            let sp = registry::find_mut(entries, &id)?;
            registry::retire(sp, now)?;
            Ok(sp.id.clone())
        })
        .await?,
    ))
}

/// A tenant objects (its own api key, or staff on its behalf).
#[utoipa::path(
    post,
    path = "/admin/v1/subprocessors/{id}/objections",
    tag = "admin",
    operation_id = "objectToSubprocessor",
    params(("id" = String, Path, description = "The sub-processor's id.")),
    request_body = ObjectionRequest,
    responses(
        (status = 201, description = "Recorded (a tenant's earlier objection is replaced).", body = SubProcessor),
        (status = 403, description = "`forbidden`: a tenant key objecting for another tenant.", body = c24_api::ErrorBody),
        (status = 404, description = "`tenant_not_found`: no such tenant; `not_found`: no such sub-processor.", body = c24_api::ErrorBody),
        (status = 409, description = "`conflict`: the sub-processor is retired.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: tenant_id or reason empty or too long.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn object(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(o): JsonBody<ObjectionRequest>,
) -> Result<(StatusCode, Json<SubProcessor>), ApiError> {
    if let Principal::Tenant(t) = &who
        && t.id != o.tenant_id
    {
        return Err(ApiError::forbidden(
            "forbidden",
            "a tenant key may object only for its own tenant",
        ));
    }
    if app.tenants.get(&o.tenant_id).is_none() {
        return Err(ApiError::not_found("tenant_not_found", "no such tenant"));
    }
    let sp = mutate(&app, "objection", |entries, now| {
        let sp = registry::find_mut(entries, &id)?;
        registry::record_objection(sp, &o.tenant_id, o.reason.clone(), now)?;
        Ok(sp.id.clone())
    })
    .await?;
    // A tenant key sees its own objection, not the other tenants' nor staff names.
    let sp = match &who {
        Principal::Tenant(t) => sp.for_tenant(&t.id),
        _ => sp,
    };
    Ok((StatusCode::CREATED, Json(sp)))
}

/// JSON Feed 1.1 of registry changes, for customers to subscribe to.
#[utoipa::path(
    get,
    path = "/admin/v1/subprocessors/feed.json",
    tag = "admin",
    operation_id = "subprocessorFeed",
    responses(
        (status = 200, description = "A JSON Feed 1.1, newest first.", body = crate::http::openapi::JsonFeed, content_type = "application/feed+json"),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn feed(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    advance(&app).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if app.tls { "https" } else { "http" };
    let home = format!("{scheme}://{host}/admin/v1/subprocessors");
    let feed_url = format!("{home}/feed.json");
    let entries = app.registry.entries.lock().await;
    let body = registry::feed_json(&entries, &feed_url, &home);
    Ok((
        [(header::CONTENT_TYPE, "application/feed+json")],
        Json(body),
    )
        .into_response())
}

//! `/admin/v1/tenants`: create, list (paged, sorted and filtered on the
//! server), read, a tenant's conversations (metadata only), and the lifecycle: sign DPA, suspend, resume, terminate,
//! destroy the key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use c24_api::admin::tenants::{
    ChannelCredentials, ChannelsPublic, CreateTenant, EmailCredentials, EmailPublic, Tenant,
    TenantConversation, TenantConversationList, TenantCreated, TenantList, WebchatCredentials,
    WhatsAppCredentials, WhatsAppPublic,
};
use serde::Deserialize;

use crate::clock::{Millis, rfc3339};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{JsonBody, QueryParams};
use crate::http::page;
use crate::retention::{END_USER_GRACE_MS, stamp_tenant};
use crate::store::{StoreError, TenantTransition, TenantUpdate, WriteOp};
use crate::tenants::{self, TenantEntry, TenantState};

const MAX_NAME: usize = 200;

/// The retention state shown for a tenant.
fn retention_state(s: &TenantState, now: Millis) -> &'static str {
    match (s.key_destroyed_at, s.purge_after) {
        (Some(_), _) => "purged",
        (None, Some(p)) if p <= now => "overdue",
        (None, Some(_)) => "purge_scheduled",
        (None, None) => "retained",
    }
}

/// Seconds of per-second history on a tenant list item.
pub const HISTORY_SECONDS: usize = 60;

pub fn view(app: &AppState, t: &TenantEntry, now: Millis) -> Tenant {
    let s = t.state();
    // Rate and history in one lookup of the live figures (no database).
    let live = app.stats.tenant_figures(&t.id, HISTORY_SECONDS, now);
    let history = if live.sparkline.iter().all(|c| *c == 0) {
        Vec::new()
    } else {
        live.sparkline
            .iter()
            .map(|c| u32::try_from(*c).unwrap_or(u32::MAX))
            .collect()
    };
    let (messages, bytes, conversations) = t.usage.get();
    let open = app
        .open_conversations
        .read()
        .map(|m| m.get(&t.id).copied().unwrap_or(0))
        .unwrap_or(0);
    Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        dpa_signed: s.dpa_signed_at.is_some(),
        dpa_signed_at: s.dpa_signed_at.map(rfc3339),
        status: s.status.clone(),
        created_at: rfc3339(t.created_at),
        channels: ChannelsPublic {
            webchat: true,
            whatsapp: WhatsAppPublic {
                phone_number_id: t.phone_number_id.clone(),
            },
            email: EmailPublic {
                address: t.email_address.clone(),
            },
        },
        terminated_at: s.terminated_at.map(rfc3339),
        purge_after: s.purge_after.map(rfc3339),
        key_destroyed_at: s.key_destroyed_at.map(rfc3339),
        msgs_per_s: live.msgs_per_s,
        msgs_per_sec_history: history,
        open_conversations: open,
        conversations: conversations.max(0),
        stored_messages: messages.max(0),
        stored_bytes: bytes.max(0),
        retention_state: retention_state(&s, now).to_string(),
    }
}

fn find(app: &AppState, id: &str) -> Result<Arc<TenantEntry>, ApiError> {
    app.tenants
        .get(id)
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant"))
}

/// `POST /admin/v1/tenants`: 201 with the credentials, shown this once.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "admin",
    operation_id = "createTenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created; the api key and channel secrets are shown this once.", body = TenantCreated),
        (status = 400, description = "`invalid_json`: malformed body or unknown field; `invalid_name`: name empty or over 200 characters.", body = c24_api::ErrorBody),
        crate::http::openapi::BodyWriteErrors,
    ),
)]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    let now = app.clock.now_ms();
    let (record, entry, creds) = tenants::issue(
        &app.kek,
        name,
        req.dpa_signed.then_some(now),
        now,
        app.at_rest_encryption,
    )?;
    let (api_hash, widget_hash) = (record.api_key_hash.clone(), record.widget_key_hash.clone());
    app.store
        .write(WriteOp::CreateTenant(Box::new(record)))
        .await?;
    let created = TenantCreated {
        id: entry.id.clone(),
        name: entry.name.clone(),
        dpa_signed: req.dpa_signed,
        api_key: creds.api_key,
        channels: ChannelCredentials {
            webchat: WebchatCredentials {
                widget_key: creds.widget_key,
            },
            whatsapp: WhatsAppCredentials {
                phone_number_id: entry.phone_number_id.clone(),
                app_secret: entry.secrets.app_secret.clone(),
                verify_token: entry.secrets.verify_token.clone(),
            },
            email: EmailCredentials {
                address: entry.email_address.clone(),
                signing_key: entry.secrets.signing_key.clone(),
            },
        },
        status: entry.state().status,
        created_at: rfc3339(entry.created_at),
    };
    tracing::info!(tenant = %entry.id, "tenant created");
    app.tenants.insert(entry, api_hash, widget_hash);
    app.events.publish(
        "tenant.changed",
        now,
        serde_json::json!({"id": created.id, "change": "created", "status": created.status}),
    );
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active`, `suspended`, `terminated` or `purged`.
    status: Option<String>,
    /// Case-insensitive substring of the name or id.
    q: Option<String>,
    /// Only tenants with (`true`) or without (`false`) a signed DPA.
    dpa: Option<bool>,
    /// `name` (default), `created_at`, `status`, `msgs_per_s`, `stored_messages`,
    /// `stored_bytes`, `open_conversations`.
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// Opaque cursor from the previous page's `next`.
    cursor: Option<String>,
}

/// The one key a listing sorts by (ties broken by id).
enum SortKey {
    Name,
    Int(i64),
    Float(f64),
    Text(String),
}

const SORTS: [&str; 7] = [
    "name",
    "created_at",
    "status",
    "msgs_per_s",
    "stored_messages",
    "stored_bytes",
    "open_conversations",
];

/// `GET /admin/v1/tenants`: from memory, so 10,000 tenants list fast.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "admin",
    operation_id = "listTenants",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tenants, filtered and sorted.", body = TenantList),
        (status = 400, description = "`invalid_query`: bad limit, sort, order, cursor or query string.", body = c24_api::ErrorBody),
    ),
)]
pub async fn list(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<TenantList>, ApiError> {
    // Out of u32 is out of range too.
    let given = q.limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let limit = page::limit(given)? as usize;
    let sort = q.sort.as_deref().unwrap_or("name");
    if !SORTS.contains(&sort) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("sort must be one of {}", SORTS.join(", ")),
        ));
    }
    let desc = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "order must be asc or desc",
            ));
        }
    };
    let offset: usize = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not valid"))?,
    };
    let now = app.clock.now_ms();
    let needle = q.q.as_deref().map(str::to_lowercase);
    // Filter and sort on cheap keys; build full views only for the page, so
    // 10,000 tenants list in about a millisecond.
    let cache_key = format!("{sort}|{desc}|{:?}|{:?}|{needle:?}", q.status, q.dpa);
    let order = match app.tenant_lists.get(&cache_key, app.tenants.version()) {
        Some(order) => order,
        None => {
            let order = Arc::new(ordered(&app, &q, sort, desc, needle.as_deref(), now));
            app.tenant_lists
                .put(cache_key, app.tenants.version(), order.clone());
            order
        }
    };
    let total = order.len();
    let items: Vec<Tenant> = order
        .iter()
        .skip(offset)
        .take(limit)
        .map(|t| view(&app, t, now))
        .collect();
    let next = (offset + items.len() < total).then(|| (offset + items.len()).to_string());
    Ok(Json(TenantList {
        items,
        next,
        total: Some(total),
    }))
}

/// Query of `GET /admin/v1/tenants/{id}/conversations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConversationParams {
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    after: Option<String>,
}

const CONVERSATIONS_DEFAULT: u32 = 20;
const CONVERSATIONS_MAX: u32 = 100;
/// A conversation with a message this recent is `open` (as the list's
/// `open_conversations` counts).
const OPEN_WINDOW_MS: Millis = 86_400_000;

/// A tenant's conversations, newest first, for staff: metadata only (id,
/// channel, open or idle, message count, dates), never content or the end
/// user's contact, so a viewer may read it. Read from the conversations
/// table only (no decryption).
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/conversations",
    tag = "admin",
    operation_id = "tenantConversations",
    params(crate::http::openapi::TenantIdPath, ConversationParams),
    responses(
        (status = 200, description = "A page of the tenant's conversations, newest first.", body = TenantConversationList),
        (status = 400, description = "`invalid_query`: bad limit or query string.", body = c24_api::ErrorBody),
        (status = 500, description = crate::http::openapi::D_INTERNAL, body = c24_api::ErrorBody),
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn conversations(
    State(app): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ConversationParams>,
) -> Result<Json<TenantConversationList>, ApiError> {
    let limit = page::limit_within(q.limit, CONVERSATIONS_DEFAULT, CONVERSATIONS_MAX)?;
    let t = find(&app, &id)?;
    let now = app.clock.now_ms();
    let rows = app.store.conversations(&t.id, limit, q.after).await?;
    let next = page::next_cursor(&rows, limit, |c| c.id.clone());
    let items = rows
        .into_iter()
        .map(|c| TenantConversation {
            status: if now - c.last_activity_at < OPEN_WINDOW_MS {
                "open"
            } else {
                "idle"
            }
            .to_string(),
            id: c.id,
            channel: c.channel,
            message_count: c.message_count,
            created_at: rfc3339(c.created_at),
            last_activity_at: rfc3339(c.last_activity_at),
        })
        .collect();
    Ok(Json(TenantConversationList { items, next }))
}

/// The filtered tenants in the asked order, sorted on cheap keys.
fn ordered(
    app: &AppState,
    q: &ListParams,
    sort: &str,
    desc: bool,
    needle: Option<&str>,
    now: Millis,
) -> Vec<Arc<TenantEntry>> {
    let open = app.open_conversations.read().ok();
    let rates = (sort == "msgs_per_s").then(|| app.stats.tenant_rates(now));
    let mut rows: Vec<(SortKey, Arc<TenantEntry>)> = app
        .tenants
        .all_unordered()
        .into_iter()
        .filter_map(|t| {
            let keep = t.with_state(|s| {
                q.status.as_deref().is_none_or(|want| s.status == want)
                    && q.dpa.is_none_or(|d| s.dpa_signed_at.is_some() == d)
            }) && needle.is_none_or(|n| t.name_lower.contains(n) || t.id.contains(n));
            keep.then(|| {
                let key = match sort {
                    "created_at" => SortKey::Int(t.created_at),
                    "status" => SortKey::Text(t.with_state(|s| s.status.clone())),
                    "msgs_per_s" => SortKey::Float(
                        rates
                            .as_ref()
                            .and_then(|r| r.get(t.id.as_str()).copied())
                            .unwrap_or(0.0),
                    ),
                    "stored_messages" => SortKey::Int(t.usage.get().0),
                    "stored_bytes" => SortKey::Int(t.usage.get().1),
                    "open_conversations" => SortKey::Int(
                        open.as_ref()
                            .and_then(|m| m.get(&t.id).copied())
                            .unwrap_or(0),
                    ),
                    _ => SortKey::Name,
                };
                (key, t)
            })
        })
        .collect();
    drop(open);
    rows.sort_unstable_by(|(ka, a), (kb, b)| {
        let o = match (ka, kb) {
            (SortKey::Int(x), SortKey::Int(y)) => x.cmp(y),
            (SortKey::Float(x), SortKey::Float(y)) => x.total_cmp(y),
            (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
            _ => a.name_lower.cmp(&b.name_lower),
        }
        .then_with(|| a.id.cmp(&b.id));
        if desc { o.reverse() } else { o }
    });
    rows.into_iter().map(|(_, t)| t).collect()
}

/// Orderings of recent listings, reused for up to a second: 50 consoles
/// polling 10,000 tenants then sort once a second, not 50 times. A tenant
/// created or changed drops them (the directory's version); the rows of a
/// page are always built fresh, so only the order can be a second old.
#[derive(Default)]
pub struct ListCache {
    entries: std::sync::Mutex<HashMap<String, CachedOrder>>,
}

struct CachedOrder {
    at: std::time::Instant,
    version: u64,
    order: Arc<Vec<Arc<TenantEntry>>>,
}

const LIST_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Distinct cached queries (sort × order × filters) kept at most.
const LIST_CACHE_ENTRIES: usize = 64;

impl ListCache {
    fn get(&self, key: &str, version: u64) -> Option<Arc<Vec<Arc<TenantEntry>>>> {
        let g = self.entries.lock().ok()?;
        g.get(key)
            .filter(|c| c.version == version && c.at.elapsed() < LIST_CACHE_TTL)
            .map(|c| c.order.clone())
    }

    fn put(&self, key: String, version: u64, order: Arc<Vec<Arc<TenantEntry>>>) {
        if let Ok(mut g) = self.entries.lock() {
            if g.len() >= LIST_CACHE_ENTRIES {
                g.retain(|_, c| c.at.elapsed() < LIST_CACHE_TTL);
            }
            if g.len() < LIST_CACHE_ENTRIES {
                g.insert(
                    key,
                    CachedOrder {
                        at: std::time::Instant::now(),
                        version,
                        order,
                    },
                );
            }
        }
    }
}

/// `GET /admin/v1/tenants/{id}`.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}",
    tag = "admin",
    operation_id = "getTenant",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "The tenant (no secrets).", body = Tenant),
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let t = find(&app, &id)?;
    Ok(Json(view(&app, &t, app.clock.now_ms())))
}

/// Commits a new state, then applies it in memory and announces it.
///
/// The store applies it only while the stored tenant is still in the state
/// this node's copy shows: another node (or request) that changed it first
/// wins, and this one answers 409 `invalid_state` having caught up.
async fn transition(
    app: &AppState,
    t: &TenantEntry,
    change: &'static str,
    f: impl FnOnce(&mut TenantState),
) -> Result<Tenant, ApiError> {
    let before = t.state();
    let mut next = before.clone();
    f(&mut next);
    let lifecycle = |s: &TenantState| TenantUpdate {
        id: t.id.clone(),
        status: s.status.clone(),
        dpa_signed_at: s.dpa_signed_at,
        terminated_at: s.terminated_at,
        purge_after: s.purge_after,
    };
    let op = WriteOp::TransitionTenant(Box::new(TenantTransition {
        from: lifecycle(&before),
        to: lifecycle(&next),
    }));
    match app.store.write(op).await {
        Ok(_) => {}
        Err(StoreError::Stale(_)) => {
            let status = match app.store.load_tenant(&t.id).await? {
                Some(r) => {
                    let s = t.catch_up(&r);
                    app.tenants.bump();
                    s.status
                }
                None => before.status,
            };
            tracing::info!(tenant = %t.id, change, %status, "tenant changed concurrently; change refused");
            return Err(conflict(format!(
                "the tenant was changed concurrently (another node or request) and is now {status}; nothing was changed"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let s = t.update(|s| *s = next);
    app.tenants.bump();
    let now = app.clock.now_ms();
    tracing::info!(tenant = %t.id, change, status = %s.status, "tenant changed");
    app.events.publish(
        "tenant.changed",
        now,
        serde_json::json!({"id": t.id, "change": change, "status": s.status}),
    );
    Ok(view(app, t, now))
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_state", message)
}

/// `POST /admin/v1/tenants/{id}/sign-dpa`.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/sign-dpa",
    tag = "admin",
    operation_id = "signDpa",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "Signed (or already was).", body = Tenant),
        (status = 409, description = "`invalid_state`: the tenant is terminated; also when another node changed it meanwhile (this node then reloads it).", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn sign_dpa(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let t = find(&app, &id)?;
    let s = t.state();
    if s.status == "terminated" || s.status == "purged" {
        return Err(conflict("a terminated tenant cannot sign a DPA"));
    }
    if s.dpa_signed_at.is_some() {
        return Ok(Json(view(&app, &t, app.clock.now_ms())));
    }
    let now = app.clock.now_ms();
    match transition(&app, &t, "dpa_signed", |s| s.dpa_signed_at = Some(now)).await {
        // Another node signed it first: signed, as asked.
        Err(e) if e.code == "invalid_state" && t.with_state(|s| s.dpa_signed_at.is_some()) => {
            Ok(Json(view(&app, &t, app.clock.now_ms())))
        }
        r => r.map(Json),
    }
}

/// `POST /admin/v1/tenants/{id}/suspend`: ingress answers 403, data kept.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/suspend",
    tag = "admin",
    operation_id = "suspendTenant",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "Suspended (or already was).", body = Tenant),
        (status = 409, description = "`invalid_state`: the tenant is terminated or purged; also when another node changed it meanwhile (this node then reloads it).", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn suspend(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    switch_status(&app, &id, "active", "suspended", "suspended").await
}

/// Moves a tenant from `from` to `to` (idempotent when already `to`).
async fn switch_status(
    app: &AppState,
    id: &str,
    from: &str,
    to: &'static str,
    change: &'static str,
) -> Result<Json<Tenant>, ApiError> {
    let t = find(app, id)?;
    let status = t.state().status;
    if status == to {
        return Ok(Json(view(app, &t, app.clock.now_ms())));
    }
    if status != from {
        return Err(conflict(format!("a {status} tenant cannot become {to}")));
    }
    match transition(app, &t, change, |s| s.status = to.into()).await {
        // Another node made the same change first: the tenant is as asked.
        Err(e) if e.code == "invalid_state" && t.with_state(|s| s.status == to) => {
            Ok(Json(view(app, &t, app.clock.now_ms())))
        }
        r => r.map(Json),
    }
}

/// `POST /admin/v1/tenants/{id}/resume`.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/resume",
    tag = "admin",
    operation_id = "resumeTenant",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "Active again (or already was).", body = Tenant),
        (status = 409, description = "`invalid_state`: the tenant is terminated or purged; also when another node changed it meanwhile (this node then reloads it).", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    switch_status(&app, &id, "suspended", "active", "resumed").await
}

/// `POST /admin/v1/tenants/{id}/terminate`: ingress closes; the end-user
/// data is scheduled for deletion at termination + 30 days.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/terminate",
    tag = "admin",
    operation_id = "terminateTenant",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "Terminated; purge_after is set.", body = Tenant),
        (status = 409, description = "`invalid_state`: the tenant is already terminated or purged; also when another node changed it meanwhile (this node then reloads it).", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn terminate(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let t = find(&app, &id)?;
    let s = t.state();
    if s.status == "terminated" || s.status == "purged" {
        return Err(conflict(format!("the tenant is already {}", s.status)));
    }
    let now = app.clock.now_ms();
    let purge_after = now + END_USER_GRACE_MS;
    let view = transition(&app, &t, "terminated", |s| {
        s.status = "terminated".into();
        s.terminated_at = Some(now);
        s.purge_after = Some(purge_after);
    })
    .await?;
    stamp_tenant(&app, &t.id, purge_after).await?;
    // Consent cannot outlive the processing it was for: standing consents
    // end now and are kept 3 years from here.
    if let Some(consent_end) = crate::compliance::add_months(now, crate::consent::RETENTION_MONTHS)
    {
        app.store
            .write(WriteOp::EndTenantConsents {
                tenant_id: t.id.clone(),
                purge_after: consent_end,
            })
            .await?;
    }
    Ok(Json(view))
}

/// `POST /admin/v1/tenants/{id}/destroy-key`: crypto-shreds a terminated
/// tenant now, making every copy of its data (WAL, backups) unreadable.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/destroy-key",
    tag = "admin",
    operation_id = "destroyTenantKey",
    params(crate::http::openapi::TenantIdPath),
    responses(
        (status = 200, description = "The key is destroyed (or already was).", body = Tenant),
        (status = 409, description = "`invalid_state`: the tenant is not terminated.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn destroy_key(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let t = find(&app, &id)?;
    let s = t.state();
    if s.status != "terminated" && s.status != "purged" {
        return Err(conflict("only a terminated tenant's key can be destroyed"));
    }
    if s.key_destroyed_at.is_none() {
        crate::retention::shred(&app, &t).await?;
    }
    Ok(Json(view(&app, &t, app.clock.now_ms())))
}

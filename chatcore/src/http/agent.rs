//! The agent API: a tenant (its `api_key`, or the admin token) reads its
//! conversations decrypted and answers visitors; replies are pushed to the
//! visitor's open web-chat sockets.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use c24_api::agent::{
    ConversationList, ConversationSummary, MessageList, MessageView, PostMessage,
};
use c24_api::webchat::MsgNew;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, Principal, QueryParams};
use crate::access::Role;
use crate::clock::rfc3339;
use crate::http::page;
use crate::ingress;
use crate::store::{ConversationRecord, WriteOp};
use crate::tenants::TenantEntry;

/// Largest agent reply body (the same bound as a visitor frame).
const MAX_CONTENT: usize = c24_api::webchat::MAX_FRAME_BYTES;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    after: Option<String>,
    /// Admin token only: whose conversations.
    tenant: Option<String>,
}

fn tenant_of(
    app: &AppState,
    who: &Principal,
    asked: Option<&str>,
) -> Result<Arc<TenantEntry>, ApiError> {
    match (who, asked) {
        (Principal::Tenant(t), None) => Ok(t.clone()),
        (Principal::Tenant(t), Some(id)) if id == t.id => Ok(t.clone()),
        (Principal::Tenant(_), Some(_)) => Err(ApiError::forbidden(
            "forbidden",
            "a tenant key reads only its own tenant",
        )),
        (Principal::Staff(s), _) if s.role < Role::Admin => Err(ApiError::forbidden(
            "forbidden",
            "reading conversations needs the admin role",
        )),
        (Principal::Staff(_), Some(id)) => app
            .tenants
            .get(id)
            .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant")),
        (Principal::Staff(_), None) => Err(ApiError::bad_request(
            "invalid_query",
            "with the admin token, name the tenant: ?tenant=ID",
        )),
    }
}

/// The conversation, if the caller may see it (404 otherwise: no existence leak).
async fn visible_conversation(
    app: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(ConversationRecord, Arc<TenantEntry>), ApiError> {
    let not_found = || ApiError::not_found("conversation_not_found", "no such conversation");
    let conv = app.store.conversation(id).await?.ok_or_else(not_found)?;
    let tenant = match who {
        Principal::Tenant(t) if t.id == conv.tenant_id => t.clone(),
        Principal::Tenant(_) => return Err(not_found()),
        Principal::Staff(s) if s.role < Role::Admin => {
            return Err(ApiError::forbidden(
                "forbidden",
                "reading conversations needs the admin role",
            ));
        }
        Principal::Staff(_) => app.tenants.get(&conv.tenant_id).ok_or_else(not_found)?,
    };
    Ok((conv, tenant))
}

fn summary(c: ConversationRecord) -> ConversationSummary {
    ConversationSummary {
        id: c.id,
        tenant_id: c.tenant_id,
        channel: c.channel,
        message_count: c.message_count,
        created_at: rfc3339(c.created_at),
        last_activity_at: rfc3339(c.last_activity_at),
    }
}

/// `GET /v1/conversations`: newest first.
///
/// With a tenant's api key, its own; with a staff token of the admin role,
/// the tenant named by `?tenant=`.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "agent",
    operation_id = "listConversations",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversations.", body = ConversationList),
        (status = 400, description = "`invalid_query`: bad limit or query string, or a staff token without ?tenant=.", body = c24_api::ErrorBody),
        (status = 401, description = crate::http::openapi::D_BEARER, body = c24_api::ErrorBody),
        (status = 403, description = "`forbidden`: a tenant key naming another tenant, or a staff role below admin.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn list_conversations(
    State(app): State<AppState>,
    who: Principal,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<ConversationList>, ApiError> {
    let tenant = tenant_of(&app, &who, q.tenant.as_deref())?;
    let limit = page::limit(q.limit)?;
    let rows = app.store.conversations(&tenant.id, limit, q.after).await?;
    let next = page::next_cursor(&rows, limit, |c| c.id.clone());
    Ok(Json(ConversationList {
        items: rows.into_iter().map(summary).collect(),
        next,
    }))
}

/// `GET /v1/conversations/{id}/messages`: oldest first, decrypted.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}/messages",
    tag = "agent",
    operation_id = "listMessages",
    params(
        ("id" = String, Path, description = "The conversation's id."),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)."),
        ("after" = Option<String>, Query, description = "Cursor from the previous page's next."),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages, decrypted.", body = MessageList),
        (status = 400, description = "`invalid_query`: bad limit, cursor or query string.", body = c24_api::ErrorBody),
        (status = 401, description = crate::http::openapi::D_BEARER, body = c24_api::ErrorBody),
        (status = 403, description = "`forbidden`: a staff role below admin.", body = c24_api::ErrorBody),
        (status = 404, description = "`conversation_not_found`: no such conversation, or another tenant's.", body = c24_api::ErrorBody),
        (status = 410, description = "`key_destroyed`: the tenant's data key was destroyed; its messages can never be read again.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn list_messages(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<MessageList>, ApiError> {
    let (conv, tenant) = visible_conversation(&app, &who, &id).await?;
    let limit = page::limit(q.limit)?;
    let after: i64 = match q.after.as_deref() {
        None => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "after must be a cursor"))?,
    };
    let cipher = tenant.cipher().ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "key_destroyed",
            "this tenant's data key was destroyed",
        )
    })?;
    let rows = app.store.messages(&conv.id, after, limit).await?;
    let next = page::next_cursor(&rows, limit, |m| m.seq.to_string());
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let content = ingress::open_body(&cipher, &tenant.id, &r.id, &r.body_ct)?;
        let subject = r
            .subject_ct
            .as_ref()
            .map(|s| ingress::open_subject(&cipher, &tenant.id, &r.id, s))
            .transpose()?;
        items.push(MessageView {
            id: r.id,
            conversation_id: r.conversation_id,
            seq: r.seq,
            direction: r.direction,
            content,
            subject,
            created_at: rfc3339(r.received_at),
        });
    }
    Ok(Json(MessageList { items, next }))
}

/// `POST /v1/conversations/{id}/messages`: an agent reply, pushed as `msg.new`.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/messages",
    tag = "agent",
    operation_id = "postMessage",
    params(("id" = String, Path, description = "The conversation's id.")),
    request_body = PostMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored, and pushed to the visitor's open sockets.", body = MessageView),
        (status = 400, description = "`invalid_json`: malformed body or unknown field; `invalid_content`: content empty or over 64 KiB.", body = c24_api::ErrorBody),
        (status = 401, description = crate::http::openapi::D_BEARER, body = c24_api::ErrorBody),
        (status = 403, description = "`forbidden`: a staff role below admin; `dpa_required`: the tenant has no signed DPA; `tenant_suspended`; `tenant_terminated` (also once its key is destroyed); `processing_restricted`: the person's processing is restricted by a data-subject request.", body = c24_api::ErrorBody),
        (status = 404, description = "`conversation_not_found`: no such conversation, or another tenant's.", body = c24_api::ErrorBody),
        crate::http::openapi::BodyWriteErrors,
    ),
)]
pub async fn post_message(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PostMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    if body.content.is_empty() || body.content.len() > MAX_CONTENT {
        return Err(ApiError::bad_request(
            "invalid_content",
            format!("content must be 1 to {MAX_CONTENT} bytes"),
        ));
    }
    let received = std::time::Instant::now();
    let (conv, tenant) = visible_conversation(&app, &who, &id).await?;
    let cipher = tenant.admit()?;
    // Replying is processing the person's data too.
    app.compliance.admit(&tenant.id, &conv.contact_bi)?;
    let now = app.clock.now_ms();
    let op = ingress::seal_outbound(&cipher, &tenant.id, &conv.id, &body.content, now)?;
    let acct = ingress::Accounting {
        app: app.clone(),
        tenant: tenant.clone(),
        channel: crate::store::Channel::parse(&conv.channel)
            .unwrap_or(crate::store::Channel::Webchat),
        direction: ingress::Direction::Outbound,
        bytes: body.content.len() as i64,
        encrypt_ns: op.encrypt_ns,
        received,
    };
    let m = app
        .store
        .write(WriteOp::Outbound(Box::new(op)))
        .await?
        .message()?;
    acct.committed(&m);
    if app.hub.has_subscribers(&m.conversation_id)
        && let Ok(frame) = crate::push::frame(MsgNew {
            conversation_id: m.conversation_id.clone(),
            message_id: m.message_id.clone(),
            seq: m.seq,
            direction: "outbound".into(),
            content: body.content.clone(),
            created_ts: m.received_at,
        })
    {
        // After any earlier reply not pushed yet (see `push::push_replies`);
        // the agent's answer does not wait for it.
        let (app, tenant_id, conversation_id, seq) = (
            app.clone(),
            tenant.id.clone(),
            m.conversation_id.clone(),
            m.seq,
        );
        tokio::spawn(async move {
            if let Err(e) =
                crate::push::push_replies(&app, &tenant_id, &conversation_id, seq, Some(frame))
                    .await
            {
                tracing::warn!(error = %e, "pushing a reply failed");
            }
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(MessageView {
            id: m.message_id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            direction: "outbound".into(),
            content: body.content,
            subject: None,
            created_at: rfc3339(m.received_at),
        }),
    ))
}

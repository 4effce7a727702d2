//! WhatsApp Cloud API webhook: `/v1/whatsapp/{tenant_id}/webhook`.
//!
//! GET is Meta's subscription handshake. POST is a notification: the
//! `X-Hub-Signature-256` HMAC is checked over the raw bytes, in constant time,
//! before anything is parsed; answered 200 only after the durable commit.

use aws_lc_rs::hmac;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use c24_api::whatsapp::{Notification, SIGNATURE_HEADER};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::{QueryParams, RawBody};
use crate::crypto::BlindKind;
use crate::ingress::{self, Accounting, Direction, Incoming, Thread};
use crate::store::{Channel, WriteOp};
use crate::tenants::TenantEntry;

/// Meta's notifications are small; this is generous.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// WhatsApp's customer-service window: messages within it share a conversation.
const SESSION_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// Must be `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(required = true)]
    mode: Option<String>,
    /// The tenant's WhatsApp verify token.
    #[serde(rename = "hub.verify_token")]
    #[param(required = true)]
    verify_token: Option<String>,
    /// Echoed back as the body.
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn tenant(app: &AppState, id: &str) -> Result<std::sync::Arc<TenantEntry>, ApiError> {
    app.tenants
        .get(id)
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant"))
}

/// `GET`: answers the raw `hub.challenge` when the verify token matches.
#[utoipa::path(
    get,
    path = "/v1/whatsapp/{tenant_id}/webhook",
    tag = "whatsapp",
    operation_id = "whatsappVerify",
    params(("tenant_id" = String, Path, description = "The tenant's id."), VerifyParams),
    responses(
        (status = 200, description = "The verify token matches: the body is hub.challenge, verbatim.", body = String, content_type = "text/plain"),
        (status = 400, description = "`invalid_query`: hub.mode is not subscribe, or the query does not parse.", body = c24_api::ErrorBody),
        (status = 403, description = "`invalid_verify_token`: hub.verify_token does not match.", body = c24_api::ErrorBody),
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn verify(
    State(app): State<AppState>,
    Path(tenant_id): Path<String>,
    QueryParams(q): QueryParams<VerifyParams>,
) -> Result<Response, ApiError> {
    let t = tenant(&app, &tenant_id)?;
    if q.mode.as_deref() != Some("subscribe") {
        return Err(ApiError::bad_request(
            "invalid_query",
            "hub.mode must be subscribe",
        ));
    }
    let token = q.verify_token.unwrap_or_default();
    let ok = aws_lc_rs::constant_time::verify_slices_are_equal(
        token.as_bytes(),
        t.secrets.verify_token.as_bytes(),
    )
    .is_ok();
    if !ok {
        return Err(ApiError::forbidden(
            "invalid_verify_token",
            "hub.verify_token does not match",
        ));
    }
    Ok((StatusCode::OK, q.challenge.unwrap_or_default()).into_response())
}

/// Checks `sha256=<hex>` against HMAC-SHA256(app_secret, body).
fn signature_ok(headers: &HeaderMap, secret: &str, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h.trim()).ok())
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &sig).is_ok()
}

/// `POST`: a notification with messages and/or statuses.
///
/// The signature is checked over the raw bytes before anything is parsed;
/// the answer comes only once every message is durably stored. Unknown
/// fields are accepted (Meta adds fields without notice).
#[utoipa::path(
    post,
    path = "/v1/whatsapp/{tenant_id}/webhook",
    tag = "whatsapp",
    operation_id = "whatsappNotify",
    params(
        ("tenant_id" = String, Path, description = "The tenant's id."),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256(app_secret, raw body)>."),
    ),
    request_body(content = c24_api::whatsapp::Notification, content_type = "application/json", description = "Meta's notification, at most 1 MiB."),
    responses(
        (status = 200, description = "Every message is durable (or was already).", body = crate::http::openapi::WhatsAppReceipt),
        (status = 400, description = "`invalid_payload`: not a WhatsApp Business notification; `bad_body`: the body could not be read.", body = c24_api::ErrorBody),
        (status = 401, description = "`invalid_signature`: X-Hub-Signature-256 is missing or does not match the body.", body = c24_api::ErrorBody),
        (status = 403, description = "`dpa_required`: the tenant has no signed DPA; `tenant_suspended`; `tenant_terminated` (also once its key is destroyed); `phone_number_mismatch`: metadata.phone_number_id is not this tenant's number; `processing_restricted`: a sender's processing is restricted by a data-subject request (nothing of the notification is stored).", body = c24_api::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 1 MiB.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn notify(
    State(app): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let received = std::time::Instant::now();
    let t = tenant(&app, &tenant_id)?;
    if !signature_ok(&headers, &t.secrets.app_secret, &body) {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "X-Hub-Signature-256 does not match the body",
        ));
    }
    let cipher = t.admit()?;
    let n: Notification = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_payload", format!("not a notification: {e}"))
    })?;
    if n.object != "whatsapp_business_account" {
        return Err(ApiError::bad_request(
            "invalid_payload",
            "object must be whatsapp_business_account",
        ));
    }
    let now = app.clock.now_ms();
    let mut ops = Vec::new();
    let mut statuses = 0usize;
    for change in n.entry.iter().flat_map(|e| &e.changes) {
        let v = &change.value;
        if v.metadata.phone_number_id != t.phone_number_id {
            return Err(ApiError::forbidden(
                "phone_number_mismatch",
                "metadata.phone_number_id is not this tenant's number",
            ));
        }
        statuses += v.statuses.len();
        for m in &v.messages {
            let name = v
                .contacts
                .iter()
                .find(|c| c.wa_id == m.from)
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.as_deref());
            let body_text = match &m.text {
                Some(t) => t.body.clone(),
                None => format!("[{}]", m.kind),
            };
            let sealed = ingress::seal(
                &cipher,
                Incoming {
                    tenant_id: &t.id,
                    channel: Channel::Whatsapp,
                    contact_kind: BlindKind::Phone,
                    contact_ident: &m.from,
                    contact_name: name,
                    thread: Thread::Latest {
                        within_ms: SESSION_WINDOW_MS,
                    },
                    dedupe: Some((BlindKind::WhatsAppMsg, m.id.clone())),
                    conversation_scoped_dedupe: false,
                    body: &body_text,
                    subject: None,
                    received_at: now,
                    own_message_id: None,
                },
            )?;
            // Checked before anything is queued: a refused notification stores nothing.
            app.compliance.admit(&t.id, &sealed.contact.ident_bi)?;
            let acct = Accounting {
                app: app.clone(),
                tenant: t.clone(),
                channel: Channel::Whatsapp,
                direction: Direction::Inbound,
                bytes: body_text.len() as i64,
                encrypt_ns: sealed.encrypt_ns,
                received,
            };
            ops.push((WriteOp::Inbound(Box::new(sealed)), acct));
        }
    }
    // Queue all, then wait for all: they commit together.
    let mut pending = Vec::with_capacity(ops.len());
    for (op, acct) in ops {
        pending.push((app.store.submit(op).await?, acct));
    }
    let mut stored = 0usize;
    let mut duplicates = 0usize;
    let mut messages = Vec::with_capacity(pending.len());
    for (rx, acct) in pending {
        let m = rx
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))??
            .message()?;
        acct.committed(&m);
        if m.duplicate {
            duplicates += 1;
        } else {
            stored += 1;
        }
        messages.push(json!({
            "message_id": m.message_id,
            "conversation_id": m.conversation_id,
            "seq": m.seq,
            "duplicate": m.duplicate,
        }));
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "stored": stored,
            "duplicates": duplicates,
            "statuses": statuses,
            "messages": messages,
        })),
    )
        .into_response())
}

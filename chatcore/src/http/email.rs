//! Inbound email: `POST /v1/email/{tenant_id}/inbound` with the raw RFC 5322
//! message (`Content-Type: message/rfc822`, up to 10 MiB).
//!
//! Authenticated by `X-C24-Signature` = HMAC-SHA256(signing_key,
//! timestamp "." body), within five minutes of the server clock, each
//! signature usable once. MIME decoding (multipart, quoted-printable,
//! base64, RFC 2047 headers, charsets) is `mail-parser`'s. Threaded by
//! `In-Reply-To` / `References` blind indexes.

use std::borrow::Cow;

use aws_lc_rs::hmac;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use c24_api::email::{SIGNATURE_HEADER, SIGNATURE_WINDOW_SECS, TIMESTAMP_HEADER, signed_payload};
use mail_parser::{HeaderValue, MessageParser};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::RawBody;
use crate::crypto::BlindKind;
use crate::ingress::{self, Accounting, Direction, Incoming, Thread};
use crate::store::{Channel, WriteOp};

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Message-IDs in a header that may hold one or several.
fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    if let Some(list) = v.as_text_list() {
        list.iter().map(|s| s.to_string()).collect()
    } else if let Some(one) = v.as_text() {
        vec![one.to_string()]
    } else {
        Vec::new()
    }
}

/// Receives one raw RFC 5322 message for the tenant.
///
/// Signed: `X-C24-Signature` = `sha256=<hex HMAC-SHA256(signing_key,
/// timestamp "." body)>` with `X-C24-Timestamp` (Unix seconds) within five
/// minutes of the server clock; each signature is accepted once.
/// Answered once the message is durable.
#[utoipa::path(
    post,
    path = "/v1/email/{tenant_id}/inbound",
    tag = "email",
    operation_id = "emailInbound",
    params(
        ("tenant_id" = String, Path, description = "The tenant's id."),
        ("X-C24-Timestamp" = String, Header, description = "Unix seconds at signing."),
        ("X-C24-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(signing_key, timestamp \".\" body)>."),
    ),
    request_body(content = String, content_type = "message/rfc822", description = "The raw message, at most 10 MiB."),
    responses(
        (status = 201, description = "Stored.", body = crate::http::openapi::EmailReceipt),
        (status = 200, description = "A message with this Message-ID was stored before; nothing was written.", body = crate::http::openapi::EmailReceipt),
        (status = 400, description = "`invalid_email`: not an RFC 5322 message, or no From address; `bad_body`: the body could not be read.", body = c24_api::ErrorBody),
        (status = 401, description = "`invalid_signature`: timestamp or signature missing, malformed or wrong; `signature_expired`: the timestamp is over 5 minutes from the server clock; `signature_replayed`: this signature was used before.", body = c24_api::ErrorBody),
        (status = 403, description = crate::http::openapi::D_ADMIT_PERSON, body = c24_api::ErrorBody),
        (status = 413, description = "`payload_too_large`: the message is over 10 MiB.", body = c24_api::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: Content-Type is not message/rfc822.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn inbound(
    State(app): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let received = std::time::Instant::now();
    let t = app
        .tenants
        .get(&tenant_id)
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant"))?;

    let ts = header_str(&headers, TIMESTAMP_HEADER)
        .ok_or_else(|| ApiError::unauthorized("invalid_signature", "X-C24-Timestamp is missing"))?;
    let ts_secs: i64 = ts.trim().parse().map_err(|_| {
        ApiError::unauthorized("invalid_signature", "X-C24-Timestamp is not Unix seconds")
    })?;
    let sig = header_str(&headers, SIGNATURE_HEADER)
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h.trim()).ok())
        .ok_or_else(|| {
            ApiError::unauthorized("invalid_signature", "X-C24-Signature must be sha256=<hex>")
        })?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, t.secrets.signing_key.as_bytes());
    if hmac::verify(&key, &signed_payload(ts, &body), &sig).is_err() {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "X-C24-Signature does not match",
        ));
    }
    let now = app.clock.now_ms();
    if (now / 1000 - ts_secs).abs() > SIGNATURE_WINDOW_SECS {
        return Err(ApiError::unauthorized(
            "signature_expired",
            "X-C24-Timestamp is more than 5 minutes from the server clock",
        ));
    }
    let cipher = t.admit()?;
    if let Some(ct) = header_str(&headers, header::CONTENT_TYPE.as_str())
        && !ct.starts_with(c24_api::email::CONTENT_TYPE)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be message/rfc822",
        ));
    }

    let parsed = MessageParser::default()
        .parse(&body[..])
        .ok_or_else(|| ApiError::bad_request("invalid_email", "not an RFC 5322 message"))?;
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .filter(|a| a.contains('@'))
        .ok_or_else(|| ApiError::bad_request("invalid_email", "the message has no From address"))?
        .to_string();
    let name = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(str::to_string);
    let text: Cow<'_, str> = parsed
        .body_text(0)
        .or_else(|| parsed.body_html(0))
        .unwrap_or(Cow::Borrowed(""));
    let subject = parsed.subject().map(str::to_string);
    let own_id = parsed.message_id().map(str::to_string);
    let mut refs = ids(parsed.in_reply_to());
    refs.extend(ids(parsed.references()).into_iter().rev());

    app.compliance
        .admit(&t.id, &cipher.blind_index(BlindKind::Email, &from))?;

    // Only now is the signature spent: a request refused above may be retried.
    if !app
        .email_replay
        .first_use(&sig, now, now + 2 * SIGNATURE_WINDOW_SECS * 1000)
    {
        return Err(ApiError::unauthorized(
            "signature_replayed",
            "this signature was already used",
        ));
    }

    let sealed = ingress::seal(
        &cipher,
        Incoming {
            tenant_id: &t.id,
            channel: Channel::Email,
            contact_kind: BlindKind::Email,
            contact_ident: &from,
            contact_name: name.as_deref(),
            thread: Thread::Email(refs),
            dedupe: own_id.clone().map(|id| (BlindKind::EmailMessageId, id)),
            conversation_scoped_dedupe: false,
            body: text.trim_end(),
            subject: subject.as_deref(),
            received_at: now,
            own_message_id: own_id.as_deref(),
        },
    )?;
    let acct = Accounting {
        app: app.clone(),
        tenant: t.clone(),
        channel: Channel::Email,
        direction: Direction::Inbound,
        bytes: text.trim_end().len() as i64,
        encrypt_ns: sealed.encrypt_ns,
        received,
    };
    let m = app
        .store
        .write(WriteOp::Inbound(Box::new(sealed)))
        .await?
        .message()?;
    acct.committed(&m);
    let status = if m.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({
            "message_id": m.message_id,
            "conversation_id": m.conversation_id,
            "seq": m.seq,
            "duplicate": m.duplicate,
        })),
    ))
}

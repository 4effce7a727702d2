//! The generic `http` channel: requests a scenario describes itself
//! (method, URL, headers, body, and an HMAC-SHA256 signing rule), so the
//! load generator can drive a chat core that is not ours. Metric `http`:
//! request sent → response read.
//!
//! [`build`] turns a step into the exact request (also what a test compares
//! byte for byte with the built-in WhatsApp driver's); [`play`] sends them.

use std::time::Instant;

use aws_lc_rs::hmac;
use base64::Engine;

use super::{Conversation, Extra, StepFailed, http_error_kind, unix_now};
use crate::metrics::Metric;
use crate::scenario::{HttpStep, Script, SignEncoding, SignRule, Step};

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRequest {
    pub method: String,
    pub url: String,
    /// In the order they are sent; the signature header last.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `prefix` + HMAC-SHA256(secret, message), hex or base64.
pub fn signature(rule: &SignRule, secret: &str, message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, message);
    let digest = match rule.encoding {
        SignEncoding::Hex => hex::encode(tag.as_ref()),
        SignEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
    };
    format!("{}{digest}", rule.prefix)
}

/// Fills the step's templates for this conversation: one `{timestamp}` for
/// the whole request, `{text}` drawn once, the signature over the body.
pub fn build(conv: &mut Conversation, h: &HttpStep) -> BuiltRequest {
    let text = h.text.as_ref().map(|t| conv.message(t, h.size.as_ref()));
    let timestamp = unix_now();
    let extra = Extra {
        text: text.as_deref(),
        timestamp: Some(timestamp),
        body: None,
    };
    let url = conv.render_with(&h.url, &extra);
    let mut headers: Vec<(String, String)> = h
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), one_line(&conv.render_with(value, &extra))))
        .collect();
    let body = h
        .body
        .as_ref()
        .map(|b| conv.render_with(b, &extra))
        .unwrap_or_default();
    if let Some(rule) = &h.sign {
        let secret = conv.render(&rule.secret);
        let over = conv.render_with(
            &rule.over,
            &Extra {
                body: Some(&body),
                ..extra
            },
        );
        headers.push((
            rule.header.clone(),
            signature(rule, &secret, over.as_bytes()),
        ));
    }
    conv.seq += 1;
    BuiltRequest {
        method: h.method.clone(),
        url,
        headers,
        body: body.into_bytes(),
    }
}

/// Header values stay on one line whatever a feeder holds.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

pub async fn play(conv: &mut Conversation, script: &Script) -> Result<(), StepFailed> {
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Step::Think(_) | Step::At(_) => conv.pace(step),
            Step::Http(h) => request(conv, h, i).await?,
            // Refused by validation.
            _ => return Err(StepFailed::new("unsupported_step")),
        }
    }
    Ok(())
}

async fn request(conv: &mut Conversation, h: &HttpStep, step: usize) -> Result<(), StepFailed> {
    conv.wait_due().await;
    let built = build(conv, h);
    let method = reqwest::Method::from_bytes(built.method.as_bytes())
        .map_err(|_| StepFailed::new("http_method"))?;
    let url = reqwest::Url::parse(&built.url).map_err(|_| StepFailed::new("http_bad_url"))?;
    let mut req = conv.env.http.request(method, url).timeout(h.timeout);
    for (name, value) in &built.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if !built.body.is_empty() {
        req = req.body(built.body);
    }
    let req = req
        .build()
        .map_err(|_| StepFailed::new("http_bad_request"))?;
    let sent = conv.start_step().await;
    let resp = conv
        .env
        .http
        .execute(req)
        .await
        .map_err(|e| StepFailed::new(http_error_kind(&e)))?;
    let status = resp.status().as_u16();
    // Drain the body so the connection goes back to the pool.
    let _ = resp.bytes().await;
    let done = Instant::now();
    let ok = if h.status.is_empty() {
        (200..300).contains(&status)
    } else {
        h.status.contains(&status)
    };
    if !ok {
        return Err(StepFailed::new(format!("http_{status}")));
    }
    conv.record(Metric::Http, Some(step), sent, done);
    conv.step_done(done);
    Ok(())
}

//! Inbound-email channel (`POST /v1/email/{tenant_id}/inbound`).
//!
//! The body is the raw RFC 5322 message. The sender signs
//! `timestamp + "." + body` with the tenant's email signing key.

/// Unix seconds at signing time.
pub const TIMESTAMP_HEADER: &str = "X-C24-Timestamp";
/// `sha256=<hex HMAC-SHA256(signing_key, timestamp + "." + body)>`.
pub const SIGNATURE_HEADER: &str = "X-C24-Signature";
/// Largest accepted message.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// A signature is accepted this far either side of the server clock.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;
/// The content type the endpoint expects.
pub const CONTENT_TYPE: &str = "message/rfc822";

/// The bytes that are signed: `timestamp "." body`.
pub fn signed_payload(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(timestamp.len() + 1 + body.len());
    v.extend_from_slice(timestamp.as_bytes());
    v.push(b'.');
    v.extend_from_slice(body);
    v
}

/// The `X-C24-Signature` value: `sha256=<hex HMAC-SHA256(signing_key, timestamp "." body)>`.
pub fn signature_header(signing_key: &str, timestamp: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, signing_key.as_bytes());
    let mac = aws_lc_rs::hmac::sign(&key, &signed_payload(timestamp, body));
    format!("sha256={}", hex::encode(mac))
}

//! The traffic trace: the shape of recorded traffic without personal data,
//! for `c24-loadgen replay` (issue "Replay of recorded traffic").
//!
//! Per stored message (inbound on every channel, and agent replies) the
//! group-commit writer adds one `traffic_trace` row in the message's own
//! transaction: time, tenant, channel, conversation, direction and body size.
//! Never content, subject, address, phone number, name or any other
//! identifier of the end user.
//!
//! The export (`GET /admin/v1/traffic/trace`) never shows the stored
//! conversation id: it shows [`Pseudonymizer::conversation`], an HMAC-SHA256
//! of it under a key drawn at random for that one export and then forgotten.
//! Within an export a conversation keeps one id (so replay can rebuild its
//! turns); across exports the ids differ and cannot be joined, and none can
//! be turned back into a stored conversation.
//!
//! Retention: the privacy policy (§6) keeps "system and access logs" up to
//! 90 days (Art. 6(1)(f)); the trace is operational usage data of that kind
//! (it is how the platform sizes itself), so each row carries
//! `purge_after = at + 90 days` ([`TRACE_RETENTION_MS`]) and is counted under
//! `access_logs` in the retention report. It holds nothing from which an end
//! user can be identified once the conversation itself is purged (contract
//! termination + 30 days); until then its conversation reference is the same
//! random id the conversation row already has.

use aws_lc_rs::hmac;
use c24_api::Channel;
use c24_api::admin::throughput::Direction;
use c24_api::admin::traffic::TraceRecord;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::clock::Millis;
use crate::crypto::CryptoError;
use crate::crypto::envelope::random_bytes;
use crate::store::TraceRow;

/// System and access logs are kept 90 days (privacy policy §6).
pub const TRACE_RETENTION_MS: Millis = 90 * 86_400_000;

/// Bytes of the HMAC shown as a conversation's pseudonym (128 bits, hex).
const PSEUDONYM_BYTES: usize = 16;

// ---------------------------------------------------------------------------
// Row encoding: a trace row is written once per stored message, so it is
// kept small (about 60 bytes): ids as 16 bytes, channel and direction as
// small integers.
// ---------------------------------------------------------------------------

/// An id as stored: `0x00` + 16 bytes for the usual 32 lower-case hex digits
/// (tenant and conversation ids), else `0x01` + its UTF-8 bytes.
pub fn pack_id(id: &str) -> Vec<u8> {
    let hex_id = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match hex::decode(id).ok().filter(|_| hex_id) {
        Some(raw) => {
            let mut out = Vec::with_capacity(17);
            out.push(0);
            out.extend_from_slice(&raw);
            out
        }
        None => {
            let mut out = Vec::with_capacity(id.len() + 1);
            out.push(1);
            out.extend_from_slice(id.as_bytes());
            out
        }
    }
}

/// [`pack_id`] undone; `None` for bytes it never writes.
pub fn unpack_id(stored: &[u8]) -> Option<String> {
    match stored.split_first()? {
        (0, raw) if raw.len() == 16 => Some(hex::encode(raw)),
        (1, text) => String::from_utf8(text.to_vec()).ok(),
        _ => None,
    }
}

/// A channel as stored: its place in [`Channel::ALL`].
pub fn channel_code(c: Channel) -> i64 {
    match c {
        Channel::Webchat => 0,
        Channel::Whatsapp => 1,
        Channel::Email => 2,
    }
}

pub fn channel_of(code: i64) -> Option<Channel> {
    usize::try_from(code)
        .ok()
        .and_then(|i| Channel::ALL.get(i).copied())
}

/// A direction as stored: 0 inbound, 1 outbound.
pub fn direction_code(d: Direction) -> i64 {
    match d {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

pub fn direction_of(code: i64) -> Option<Direction> {
    match code {
        0 => Some(Direction::Inbound),
        1 => Some(Direction::Outbound),
        _ => None,
    }
}

/// Pseudonyms for one export: a fresh random key, never stored.
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl Pseudonymizer {
    /// A key from the system CSPRNG.
    pub fn new() -> Result<Self, CryptoError> {
        let key = random_bytes::<32>()?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// The conversation's id in this export.
    pub fn conversation(&self, conversation_id: &str) -> String {
        let tag = hmac::sign(&self.key, conversation_id.as_bytes());
        hex::encode(&tag.as_ref()[..PSEUDONYM_BYTES])
    }

    /// A stored row as an export record; `None` for a row whose channel or
    /// direction this build does not know (never written by it).
    pub fn record(&self, row: &TraceRow) -> Option<TraceRecord> {
        Some(TraceRecord {
            at: rfc3339_micros(row.at),
            tenant_id: row.tenant_id.clone(),
            channel: Channel::parse(&row.channel)?,
            conversation: self.conversation(&row.conversation_id),
            direction: Direction::parse(&row.direction)?,
            size_bytes: u64::try_from(row.size).unwrap_or(0),
        })
    }
}

/// RFC 3339 UTC with microseconds, as the contract writes `at`. The core's
/// clock counts milliseconds, so the last three digits are zero.
pub fn rfc3339_micros(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses `from` and `to` (RFC 3339, both required, `from < to`) into a
/// half-open millisecond range `[from, to)`; the message says what is wrong.
pub fn parse_range(from: Option<&str>, to: Option<&str>) -> Result<(Millis, Millis), String> {
    let parse = |name: &str, v: Option<&str>| -> Result<Millis, String> {
        let v =
            v.ok_or_else(|| format!("{name} is required (RFC 3339, e.g. 2026-12-01T09:00:00Z)"))?;
        DateTime::parse_from_rfc3339(v.trim())
            .map(|d| d.with_timezone(&Utc).timestamp_millis())
            .map_err(|e| format!("{name} is not an RFC 3339 date-time ({e}): {v:?}"))
    };
    let from = parse("from", from)?;
    let to = parse("to", to)?;
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(conversation: &str) -> TraceRow {
        TraceRow {
            at: 1_764_582_202_123,
            conversation_key: pack_id(conversation),
            conversation_id: conversation.into(),
            seq: 1,
            tenant_id: "t1".into(),
            channel: "whatsapp".into(),
            direction: "inbound".into(),
            size: 42,
        }
    }

    #[test]
    fn pseudonyms_are_stable_in_an_export_and_unlinkable_across_exports() {
        let a = Pseudonymizer::new().unwrap();
        let b = Pseudonymizer::new().unwrap();
        let c1 = "0196aaaa00000000000000000000000a";
        assert_eq!(a.conversation(c1), a.conversation(c1));
        assert_ne!(a.conversation(c1), a.conversation("other"));
        assert_ne!(a.conversation(c1), b.conversation(c1));
        assert_eq!(a.conversation(c1).len(), 32);
        assert!(!a.conversation(c1).contains(c1));

        let r = a.record(&row(c1)).unwrap();
        assert_eq!(r.at, "2025-12-01T09:43:22.123000Z");
        assert_eq!(r.channel, Channel::Whatsapp);
        assert_eq!(r.direction, Direction::Inbound);
        assert_eq!(r.size_bytes, 42);
        assert_eq!(r.conversation, a.conversation(c1));
        let mut odd = row(c1);
        odd.channel = "fax".into();
        assert!(a.record(&odd).is_none());
    }

    #[test]
    fn rows_are_packed_small_and_unpacked_exactly() {
        let id = "0196aaaa00000000000000000000000a";
        assert_eq!(pack_id(id).len(), 17);
        assert_eq!(unpack_id(&pack_id(id)).as_deref(), Some(id));
        for odd in [
            "",
            "x",
            "0196AAAA00000000000000000000000A",
            "0123456789abcdef",
        ] {
            assert_eq!(unpack_id(&pack_id(odd)).as_deref(), Some(odd), "{odd:?}");
        }
        assert_eq!(unpack_id(&[0, 1, 2]), None);
        assert_eq!(unpack_id(&[]), None);
        for c in Channel::ALL {
            assert_eq!(channel_of(channel_code(c)), Some(c));
        }
        assert_eq!(channel_of(7), None);
        for d in Direction::ALL {
            assert_eq!(direction_of(direction_code(d)), Some(d));
        }
        assert_eq!(direction_of(-1), None);
    }

    #[test]
    fn ranges_need_both_bounds_in_order() {
        assert_eq!(
            parse_range(
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:01+00:00")
            ),
            Ok((1_767_225_600_000, 1_767_225_601_000))
        );
        for (from, to, says) in [
            (None, Some("2026-01-01T00:00:00Z"), "from is required"),
            (Some("2026-01-01T00:00:00Z"), None, "to is required"),
            (
                Some("yesterday"),
                Some("2026-01-01T00:00:00Z"),
                "from is not",
            ),
            (
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
                "before",
            ),
        ] {
            let e = parse_range(from, to).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}

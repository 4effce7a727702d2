//! The traffic trace: the shape of recorded traffic without personal data,
//! for `c24-loadgen replay` (issue "Replay of recorded traffic").
//!
//! Per stored message (inbound on every channel, and agent replies) the
//! group-commit writer records tenant, channel, conversation, direction and
//! body size, in one `traffic_trace` row per commit (dated when the commit
//! stored it) written in that commit's transaction: an entry exists exactly
//! when its message committed, and a message costs no row insert of its own
//! (`C24_BENCH_COMPARE=trace` on the ingest benchmark measures it). Never
//! content, subject, address, phone number, name or any other identifier of
//! the end user.
//!
//! The export (`GET /admin/v1/traffic/trace`) never shows the stored
//! conversation id: it shows [`Pseudonymizer::conversation`], an HMAC-SHA256
//! of it under a key drawn at random for that one export and then forgotten.
//! Within an export a conversation keeps one id (so replay can rebuild its
//! turns); across exports the ids differ and cannot be joined, and the end
//! user's client (which knows the real id) cannot find its conversation in
//! one. Within one export, an operator who also reads the conversations
//! listing (`GET /admin/v1/tenants/{id}/conversations`: created, last
//! activity, message count) could match a pseudonym to a conversation by
//! timing; the export is for operators only and each is audited.
//!
//! Erasure (Art. 17) takes a conversation's entries out of the trace with
//! it, in the erasure's transaction ([`without_conversations`]): the stored
//! trace keeps no reference to an erased conversation.
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

/// System and access logs are kept 90 days (privacy policy §6).
pub const TRACE_RETENTION_MS: Millis = 90 * 86_400_000;

/// Bytes of the HMAC shown as a conversation's pseudonym (128 bits, hex).
const PSEUDONYM_BYTES: usize = 16;

// ---------------------------------------------------------------------------
// Storage encoding. One `traffic_trace` row per group commit (not per
// message: a row insert would cost ingest about 8%), its `entries` a packed
// list of the batch's messages, about 45 bytes each: ids as 16 bytes,
// channel and direction as one byte each.
// ---------------------------------------------------------------------------

/// One message of a commit, as the trace keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub tenant_id: String,
    pub conversation_id: String,
    pub channel: Channel,
    pub direction: Direction,
    pub size: u64,
}

/// Format of `traffic_trace.entries`.
const ENTRIES_V1: u8 = 1;

/// Appends one entry to a batch's packed list (start with [`entries_start`]).
pub fn push_entry(out: &mut Vec<u8>, e: &Entry) {
    for id in [&e.tenant_id, &e.conversation_id] {
        let packed = pack_id(id);
        // Ids are at most a few dozen bytes; a longer one is cut, never
        // allowed to break the framing.
        let len = packed.len().min(255);
        out.push(len as u8);
        out.extend_from_slice(&packed[..len]);
    }
    out.push(channel_code(e.channel) as u8);
    out.push(direction_code(e.direction) as u8);
    out.extend_from_slice(&u32::try_from(e.size).unwrap_or(u32::MAX).to_le_bytes());
}

/// An empty packed list.
pub fn entries_start() -> Vec<u8> {
    vec![ENTRIES_V1]
}

/// A packed list read back; `None` if it is not one this build writes.
pub fn decode_entries(packed: &[u8]) -> Option<Vec<Entry>> {
    let (&version, mut rest) = packed.split_first()?;
    if version != ENTRIES_V1 {
        return None;
    }
    let mut out = Vec::new();
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    while let Some(len) = take(1) {
        let tenant_id = unpack_id(take(usize::from(len[0]))?)?;
        let len = take(1)?[0];
        let conversation_id = unpack_id(take(usize::from(len))?)?;
        let channel = channel_of(i64::from(take(1)?[0]))?;
        let direction = direction_of(i64::from(take(1)?[0]))?;
        let size = u32::from_le_bytes(take(4)?.try_into().ok()?);
        out.push(Entry {
            tenant_id,
            conversation_id,
            channel,
            direction,
            size: u64::from(size),
        });
    }
    Some(out)
}

/// How far outside a conversation's lifetime a trace row holding its
/// entries may be dated: a row is dated by its commit's clock reading, the
/// conversation's times by the same or (on a cluster) another node's, so
/// this covers commit time and clock skew between nodes.
pub const ERASURE_MARGIN_MS: Millis = 5 * 60_000;

/// The `at` ranges (inclusive, merged) in which trace rows may hold entries
/// of these conversations, given as (id, created_at, last_activity_at);
/// `None` for no conversation.
pub fn erasure_windows(spans: &[(String, Millis, Millis)]) -> Option<Vec<(Millis, Millis)>> {
    let mut windows: Vec<(Millis, Millis)> = spans
        .iter()
        .map(|(_, from, to)| {
            (
                from.min(to).saturating_sub(ERASURE_MARGIN_MS),
                from.max(to).saturating_add(ERASURE_MARGIN_MS),
            )
        })
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(Millis, Millis)> = Vec::with_capacity(windows.len());
    for (from, to) in windows {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    (!merged.is_empty()).then_some(merged)
}

/// A packed list with some conversations' entries taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The remaining entries, packed.
    pub entries: Vec<u8>,
    /// How many remain.
    pub count: i64,
    /// How many were taken out.
    pub removed: u64,
}

/// `packed` without the entries of `conversations` (for an erasure);
/// `None` when it holds none of them, or is not a list this build reads.
pub fn without_conversations(
    packed: &[u8],
    conversations: &std::collections::HashSet<&str>,
) -> Option<Kept> {
    let all = decode_entries(packed)?;
    let total = all.len();
    let mut entries = entries_start();
    let mut count = 0;
    for e in all
        .iter()
        .filter(|e| !conversations.contains(e.conversation_id.as_str()))
    {
        push_entry(&mut entries, e);
        count += 1;
    }
    let removed = (total - count) as u64;
    (removed > 0).then_some(Kept {
        entries,
        count: count as i64,
        removed,
    })
}

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

    /// A stored entry of a batch stored at `at`, as an export record.
    pub fn record(&self, at: Millis, e: &Entry) -> TraceRecord {
        TraceRecord {
            at: rfc3339_micros(at),
            tenant_id: e.tenant_id.clone(),
            channel: e.channel,
            conversation: self.conversation(&e.conversation_id),
            direction: e.direction,
            size_bytes: e.size,
        }
    }
}

/// RFC 3339 UTC with microseconds, as the contract writes `at`. The core's
/// clock counts milliseconds, so the last three digits are zero; messages of
/// one commit share its time.
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

    fn entry(conversation: &str) -> Entry {
        Entry {
            tenant_id: "0196bbbb00000000000000000000000b".into(),
            conversation_id: conversation.into(),
            channel: Channel::Whatsapp,
            direction: Direction::Inbound,
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

        let r = a.record(1_764_582_202_123, &entry(c1));
        assert_eq!(r.at, "2025-12-01T09:43:22.123000Z");
        assert_eq!(r.channel, Channel::Whatsapp);
        assert_eq!(r.direction, Direction::Inbound);
        assert_eq!(r.size_bytes, 42);
        assert_eq!(r.conversation, a.conversation(c1));
        assert_eq!(r.tenant_id, "0196bbbb00000000000000000000000b");
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
    fn a_batch_of_entries_round_trips_and_bad_bytes_are_refused() {
        let mut packed = entries_start();
        let mut want = Vec::new();
        for (i, (channel, direction)) in [
            (Channel::Webchat, Direction::Inbound),
            (Channel::Email, Direction::Outbound),
            (Channel::Whatsapp, Direction::Inbound),
        ]
        .into_iter()
        .enumerate()
        {
            let e = Entry {
                tenant_id: format!("0196bbbb0000000000000000000000{i:02x}"),
                conversation_id: if i == 1 {
                    "not-hex".into()
                } else {
                    format!("0196cccc0000000000000000000000{i:02x}")
                },
                channel,
                direction,
                size: 10 * i as u64 + 1,
            };
            push_entry(&mut packed, &e);
            want.push(e);
        }
        // About 45 bytes a message.
        assert!(packed.len() < 1 + 3 * 48, "{}", packed.len());
        assert_eq!(decode_entries(&packed), Some(want));
        assert_eq!(decode_entries(&entries_start()), Some(Vec::new()));
        assert_eq!(decode_entries(&packed[..packed.len() - 1]), None);
        assert_eq!(decode_entries(&[9]), None);
        assert_eq!(decode_entries(&[]), None);
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

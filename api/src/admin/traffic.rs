//! Traffic trace (`GET /admin/v1/traffic/trace?from=&to=`): the shape of
//! recorded traffic without personal data, exported as JSONL (one
//! [`TraceRecord`] per line) for `c24-loadgen replay`.
//!
//! A record holds when a message was stored, for which tenant, on which
//! channel, in which pseudonymous conversation, which way and how large —
//! never content, addresses or any end-user identifier.

use serde::{Deserialize, Serialize};

use super::throughput::Direction;
use crate::Channel;

/// Media type of the export.
pub const TRACE_CONTENT_TYPE: &str = "application/x-ndjson";

/// One message in the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceRecord {
    /// When the core stored the message (RFC 3339 UTC with microseconds,
    /// e.g. `2026-12-01T09:43:22.123456Z`).
    pub at: String,
    pub tenant_id: String,
    pub channel: Channel,
    /// Pseudonymous conversation id: stable within one export, unlinkable
    /// to the stored conversation id or to the end user.
    pub conversation: String,
    pub direction: Direction,
    /// Body size in bytes, before encryption.
    pub size_bytes: u64,
}

//! Live throughput (`GET /admin/v1/throughput`) and platform totals
//! (`GET /admin/v1/overview`): computed by the chat core from memory.

use serde::{Deserialize, Serialize};

/// Which way a message went: from the end user to the tenant, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A latency distribution, in the unit its field name says. All zero when
/// nothing was recorded. HDR precision is 2 significant digits, so a
/// percentile is within 1 % of the true value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Percentiles {
    /// Samples in the distribution.
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Counts for one channel × direction over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Series {
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    pub direction: Direction,
    /// Messages per bucket, oldest first, the last one being the current
    /// (still filling) bucket.
    pub counts: Vec<u64>,
    /// Message bytes per bucket, aligned with `counts`.
    pub bytes: Vec<u64>,
    /// Messages per second over the window's length in complete buckets
    /// (the current bucket left out, so the rate does not dip as each new
    /// bucket starts).
    pub rate_per_s: f64,
}

/// One channel's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelFigures {
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    /// Messages, both directions, in the window (current bucket included).
    pub messages: u64,
    /// Message bytes, both directions, in the window.
    pub bytes: u64,
    /// Messages per second, both directions, over complete buckets (see [`Series::rate_per_s`]).
    pub msgs_per_s: f64,
    /// Ingress requests refused or failed in the window. Platform-wide even
    /// when a tenant filter is set: errors are not kept per tenant.
    pub errors: u64,
    /// Errors per second over complete buckets.
    pub errors_per_s: f64,
    /// Receive → commit latency in µs. Platform-wide even when a tenant
    /// filter is set, and over the slots covering the window (see
    /// `Throughput::latency_window_ms`). With several nodes on one
    /// database, of every node's messages (their histograms merged).
    pub ingest_latency_us: Percentiles,
    /// Mean time spent sealing one message, in ns, over the same slots as
    /// the latency. Platform-wide (all nodes).
    pub encrypt_ns_per_msg: f64,
}

/// The answer to `GET /admin/v1/throughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Throughput {
    /// The window served, in ms: the request clamped to
    /// 1 s ..= 24 h.
    pub window_ms: i64,
    /// 1,000 for windows up to 1 h, 60,000 above.
    pub bucket_ms: i64,
    /// Start of the first bucket, ms since the epoch.
    pub from_ms: i64,
    /// The tenant filter, as asked (an unknown tenant reads as all zeros).
    pub tenant: Option<String>,
    /// One per channel × direction, always all six, in channel then direction order.
    pub series: Vec<Series>,
    /// Receive → commit latency in µs across all channels, platform-wide.
    /// With several nodes on one database, of every node's messages: the
    /// percentiles of the nodes' histograms merged, never an average of
    /// their percentiles.
    pub ingest_latency_us: Percentiles,
    /// The span the latency figures cover, in ms: whole latency slots
    /// (10 s up to a 5-minute window, 1 min up to 1 h, 1 h beyond) reaching
    /// back at least `window_ms`, so somewhat more than the window.
    pub latency_window_ms: i64,
    /// One per channel, always all three.
    pub per_channel: Vec<ChannelFigures>,
}

/// The answer to `GET /admin/v1/overview`: platform totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverviewFigures {
    /// When these figures started counting (RFC 3339): this node's start,
    /// or with several nodes the earliest start among the live ones (see
    /// `nodes`).
    pub started_at: String,
    /// Seconds since `started_at`.
    pub uptime_s: i64,
    /// Messages committed since start, all channels and directions (summed
    /// over the live nodes, see `nodes`).
    pub messages_total: u64,
    /// Message bytes since start.
    pub bytes_total: u64,
    /// Messages in the last 60 s (the current second included).
    pub messages_last_60s: u64,
    /// Messages per second over the last 10 complete seconds.
    pub msgs_per_s: f64,
    /// Per channel, over the last 60 s.
    pub per_channel: Vec<ChannelFigures>,
    /// Receive → commit latency in µs over the last ~60 s, all channels
    /// (with several nodes, of all their messages: percentiles of the
    /// merged histograms).
    pub ingest_latency_us: Percentiles,
    /// Ingress errors since start.
    pub errors_total: u64,
    /// Ingress errors in the last 60 s.
    pub errors_last_60s: u64,
    /// Tenants with a committed message in the last 60 s (the current
    /// second included). With several nodes, distinct tenants over all of
    /// them: a tenant active on two nodes counts once.
    pub active_tenants_last_60s: u64,
    /// Tenants the live figures currently hold (active in the last 24 h, or
    /// not yet pruned). This node's own, even with several nodes: it
    /// measures this node's memory.
    pub tenants_tracked: u64,
    /// Nodes these figures cover: 1 on SQLite; on PostgreSQL every node
    /// with a heartbeat in the last 10 s, this one included. The totals
    /// since start (`messages_total`, `bytes_total`, `errors_total`,
    /// `error_codes`) are the sum of what each of these nodes counted since
    /// it started, and `started_at` is the earliest of their starts: a node
    /// that stops drops out of them (so they can go down), and one that
    /// restarts counts from zero. 0 from a server that predates the field.
    #[serde(default)]
    pub nodes: u64,
    /// Ingress requests refused or failed since start, per channel and
    /// error code (the codes of `c24_ingest_errors_total` in `/metrics`),
    /// summed over the nodes as `errors_total` is; channel then code order.
    /// At most 32 codes per channel and node, more counted as `other`.
    #[serde(default)]
    pub error_codes: Vec<ErrorCodeCount>,
}

/// Refused or failed ingress requests of one channel with one error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorCodeCount {
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    /// The error's `code`, e.g. `unauthorized` (an unknown widget key).
    pub code: String,
    pub count: u64,
}

/// One tenant's recent activity, for the tenants list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantFigures {
    /// Messages per second over the last 10 complete seconds, all channels
    /// and directions.
    pub msgs_per_s: f64,
    /// Messages per second for the last `n` complete seconds, oldest first,
    /// all channels and directions. Complete seconds only, so the line does
    /// not dip at its right end on every poll.
    pub sparkline: Vec<u64>,
    /// The newest message's commit time (ms since the epoch), if any is held.
    pub last_message_ms: Option<i64>,
}

//! The store: what the views read. Background tasks ([`crate::source`])
//! send what they fetched; the app applies it here on the UI task, so a
//! frame never waits on the network and never takes a lock.
//!
//! Every update is turned into ready-to-draw rows and compared with what is
//! held: only a visible change bumps [`Store::version`], which is what the
//! render loop watches (an idle core gives an unchanged store, so no frame
//! is drawn). Each feed keeps when it was last confirmed, so each panel can
//! say how old its data is.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use c24_api::admin::audit::AuditEntry;
use c24_api::admin::consents::Consent;
use c24_api::admin::dsr::{Dsr, DsrStatus};
use c24_api::admin::events::{Event, kinds};
use c24_api::admin::incidents::Incident;
use c24_api::admin::overview::Overview;
use c24_api::admin::retention::RetentionReport;
use c24_api::admin::subprocessors::RegistryList;
use c24_api::admin::tenants::{Tenant, TenantConversation};
use c24_api::admin::throughput::{Direction, Throughput};
use chrono::{DateTime, Utc};

use crate::format::{self, Redactor};

/// Buckets of the msgs/s sparkline of the tenants table: the core's last
/// 60 seconds (`msgs_per_sec_history`) in 5-second means.
pub const TENANT_SPARK_LEN: usize = 12;
/// Seconds per sparkline bucket.
const SPARK_BUCKET_S: usize = 5;
/// Events kept for the events view.
pub const EVENTS_KEPT: usize = 200;
/// The three channels, in display order.
pub const CHANNELS: [&str; 3] = ["webchat", "whatsapp", "email"];

/// One kind of data, fetched and aged on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    Overview,
    Throughput,
    Tenants,
    Detail,
    Retention,
    Registry,
    Audit,
    Events,
    Dsr,
    Incidents,
    Consents,
}

impl Feed {
    pub const ALL: [Feed; 11] = [
        Feed::Overview,
        Feed::Throughput,
        Feed::Tenants,
        Feed::Detail,
        Feed::Retention,
        Feed::Registry,
        Feed::Audit,
        Feed::Events,
        Feed::Dsr,
        Feed::Incidents,
        Feed::Consents,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Overview => "overview",
            Feed::Throughput => "throughput",
            Feed::Tenants => "tenants",
            Feed::Detail => "tenant",
            Feed::Retention => "retention",
            Feed::Registry => "registry",
            Feed::Audit => "audit",
            Feed::Events => "events",
            Feed::Dsr => "dsr",
            Feed::Incidents => "incidents",
            Feed::Consents => "consents",
        }
    }
}

/// How a panel labels the age of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Nothing received yet.
    Loading,
    /// Confirmed within the feed's expected interval.
    Fresh,
    /// Older than expected, or the core is unreachable: the age in seconds.
    Stale(u64),
    /// Never loaded, and the last attempt failed.
    Failed(String),
}

impl Freshness {
    pub fn label(&self) -> String {
        match self {
            Freshness::Loading => "loading…".into(),
            Freshness::Fresh => "● fresh".into(),
            Freshness::Stale(s) => format!("◌ stale {}", format::age(*s as i64)),
            Freshness::Failed(e) => format!("✗ {}", format::clip(e, 40)),
        }
    }

    pub fn is_stale(&self) -> bool {
        matches!(self, Freshness::Stale(_) | Freshness::Failed(_))
    }
}

#[derive(Debug, Clone, Default)]
struct FeedState {
    /// When the data was last received or confirmed unchanged.
    confirmed_at: Option<Instant>,
    last_error: Option<String>,
    /// How old the data may get before it is called stale.
    max_age: Duration,
}

/// The connection to the core, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    /// The event stream is up: changes are pushed.
    Live,
    /// The event stream is down but requests work: polling.
    Polling,
    /// Nothing answers; `attempt` reconnects so far, next try in `retry_s`.
    Down {
        attempt: u32,
        retry_s: u64,
        error: String,
    },
}

/// What the poller last saw of the core.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PollState {
    #[default]
    Unknown,
    Reachable,
    Unreachable {
        attempt: u32,
        retry_s: u64,
        error: String,
    },
}

/// A tenant's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TenantStatus {
    Active,
    Suspended,
    Terminated,
    Purged,
    Unknown,
}

impl TenantStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "suspended" => Self::Suspended,
            "terminated" => Self::Terminated,
            "purged" => Self::Purged,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
            Self::Purged => "purged",
            Self::Unknown => "unknown",
        }
    }
}

/// A tenant's retention state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetentionState {
    Retained,
    PurgeScheduled,
    Overdue,
    Purged,
    Unknown,
}

impl RetentionState {
    pub fn parse(s: &str) -> Self {
        match s {
            "retained" => Self::Retained,
            "purge_scheduled" => Self::PurgeScheduled,
            "overdue" => Self::Overdue,
            "purged" => Self::Purged,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retained => "retained",
            Self::PurgeScheduled => "purge scheduled",
            Self::Overdue => "OVERDUE",
            Self::Purged => "purged",
            Self::Unknown => "unknown",
        }
    }
}

/// A tenant as the list gives it, compacted (what the poller sends).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    /// Times in ms since the epoch (smaller than their RFC 3339 text).
    pub dpa_signed_at: Option<i64>,
    pub created_at: i64,
    pub webchat: bool,
    pub phone_number_id: String,
    pub email_address: String,
    pub terminated_at: Option<i64>,
    pub purge_after: Option<i64>,
    pub key_destroyed_at: Option<i64>,
    pub msgs_per_s: f32,
    /// msgs/s of the last minute in 5-second buckets, oldest first, from
    /// the core's per-second history (all zero when it sent none).
    pub activity: [f32; TENANT_SPARK_LEN],
    pub open_conversations: i64,
    pub conversations: i64,
    pub stored_messages: i64,
    pub stored_bytes: i64,
    pub retention: RetentionState,
}

/// Per-second counts (oldest first) as [`TENANT_SPARK_LEN`] bucket means,
/// aligned on the newest second.
pub fn activity(history: &[u32]) -> [f32; TENANT_SPARK_LEN] {
    let mut out = [0.0; TENANT_SPARK_LEN];
    for (back, count) in history.iter().rev().enumerate() {
        let bucket = back / SPARK_BUCKET_S;
        if bucket >= TENANT_SPARK_LEN {
            break;
        }
        out[TENANT_SPARK_LEN - 1 - bucket] += *count as f32 / SPARK_BUCKET_S as f32;
    }
    out
}

fn ms(s: &str) -> Option<i64> {
    format::parse_time(s).map(|t| t.timestamp_millis())
}

impl From<Tenant> for TenantRecord {
    fn from(t: Tenant) -> Self {
        Self {
            status: TenantStatus::parse(&t.status),
            retention: RetentionState::parse(&t.retention_state),
            id: t.id,
            name: t.name,
            dpa_signed_at: if t.dpa_signed {
                Some(t.dpa_signed_at.as_deref().and_then(ms).unwrap_or(0))
            } else {
                None
            },
            created_at: ms(&t.created_at).unwrap_or(0),
            webchat: t.channels.webchat,
            phone_number_id: t.channels.whatsapp.phone_number_id,
            email_address: t.channels.email.address,
            terminated_at: t.terminated_at.as_deref().and_then(ms),
            purge_after: t.purge_after.as_deref().and_then(ms),
            key_destroyed_at: t.key_destroyed_at.as_deref().and_then(ms),
            msgs_per_s: t.msgs_per_s as f32,
            activity: activity(&t.msgs_per_sec_history),
            open_conversations: t.open_conversations,
            conversations: t.conversations,
            stored_messages: t.stored_messages,
            stored_bytes: t.stored_bytes,
        }
    }
}

impl TenantRecord {
    /// Had a message in the last minute: its sparkline still moves, so the
    /// tenant list is worth fetching again.
    pub fn is_busy(&self) -> bool {
        self.msgs_per_s > 0.0 || self.activity.iter().any(|v| *v > 0.0)
    }
}

/// A ready-to-draw tenants table row (names already redacted if asked).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub record: TenantRecord,
    /// The name as shown (a pseudonym under `--redact`).
    pub name: String,
    /// The id as shown: its last 8 characters, or a pseudonym.
    pub short_id: String,
    pub channels: &'static str,
    /// msgs/s of the last minute, oldest first (the record's `activity`).
    pub spark: [f32; TENANT_SPARK_LEN],
    /// Lower-cased text the filter matches against.
    pub haystack: String,
    /// The tenant-list fetch that last listed this tenant.
    generation: u32,
}

/// The overview as drawn: only what the overview panel shows, so a tick
/// that changes nothing visible compares equal.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewView {
    pub tenants_total: usize,
    pub active: usize,
    pub suspended: usize,
    pub terminated: usize,
    pub purged: usize,
    pub without_dpa: usize,
    pub messages_total: u64,
    pub bytes_total: u64,
    pub msgs_per_s: String,
    pub errors_last_60s: u64,
    pub active_tenants_last_60s: u64,
    pub p50: String,
    pub p99: String,
    /// (channel, msgs/s, errors in 60 s, p99)
    pub channels: Vec<(String, String, u64, String)>,
    pub retention_overdue: i64,
    pub registry_pending: usize,
    pub registry_flagged: usize,
    pub registry_awaiting_approval: usize,
    /// `None`: the core does not track incidents (drawn "—", not 0).
    pub incidents_open: Option<usize>,
    /// Whole minutes: the uptime shown does not tick every second.
    pub uptime_min: i64,
}

impl OverviewView {
    pub fn from_wire(o: &Overview) -> Self {
        let live = &o.live;
        Self {
            tenants_total: o.tenants.total,
            active: o.tenants.active,
            suspended: o.tenants.suspended,
            terminated: o.tenants.terminated,
            purged: o.tenants.purged,
            without_dpa: o.tenants.without_dpa,
            messages_total: live.messages_total,
            bytes_total: live.bytes_total,
            msgs_per_s: format::rate(live.msgs_per_s),
            errors_last_60s: live.errors_last_60s,
            active_tenants_last_60s: live.active_tenants_last_60s,
            p50: format::micros(live.ingest_latency_us.p50, live.ingest_latency_us.count),
            p99: format::micros(live.ingest_latency_us.p99, live.ingest_latency_us.count),
            channels: live
                .per_channel
                .iter()
                .map(|c| {
                    (
                        c.channel.clone(),
                        format::rate(c.msgs_per_s),
                        c.errors,
                        format::micros(c.ingest_latency_us.p99, c.ingest_latency_us.count),
                    )
                })
                .collect(),
            retention_overdue: o.retention_overdue,
            registry_pending: o.registry_pending,
            registry_flagged: o.registry_flagged,
            registry_awaiting_approval: o.registry_awaiting_approval,
            incidents_open: o.incidents_open,
            uptime_min: live.uptime_s / 60,
        }
    }
}

/// One channel × direction series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesView {
    pub channel: String,
    pub direction: Direction,
    pub counts: Vec<u64>,
    pub rate: String,
}

/// One channel's latency and encryption figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelLatency {
    pub channel: String,
    pub msgs_per_s: String,
    pub p50: String,
    pub p90: String,
    pub p99: String,
    pub p999: String,
    pub max: String,
    pub encrypt: String,
    pub errors_per_s: String,
}

/// Throughput as drawn (the window start is left out: an idle window
/// that slid by one second looks the same).
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputView {
    pub series: Vec<SeriesView>,
    pub channels: Vec<ChannelLatency>,
    pub p50: String,
    pub p99: String,
    pub latency_window_s: i64,
}

impl ThroughputView {
    pub fn from_wire(t: &Throughput) -> Self {
        Self {
            series: t
                .series
                .iter()
                .map(|s| SeriesView {
                    channel: s.channel.clone(),
                    direction: s.direction,
                    counts: s.counts.clone(),
                    rate: format::rate(s.rate_per_s),
                })
                .collect(),
            channels: t
                .per_channel
                .iter()
                .map(|c| {
                    let l = &c.ingest_latency_us;
                    ChannelLatency {
                        channel: c.channel.clone(),
                        msgs_per_s: format::rate(c.msgs_per_s),
                        p50: format::micros(l.p50, l.count),
                        p90: format::micros(l.p90, l.count),
                        p99: format::micros(l.p99, l.count),
                        p999: format::micros(l.p999, l.count),
                        max: format::micros(l.max, l.count),
                        encrypt: if l.count == 0 {
                            "–".into()
                        } else {
                            format!("{:.1}µs", c.encrypt_ns_per_msg / 1_000.0)
                        },
                        errors_per_s: format::rate(c.errors_per_s),
                    }
                })
                .collect(),
            p50: format::micros(t.ingest_latency_us.p50, t.ingest_latency_us.count),
            p99: format::micros(t.ingest_latency_us.p99, t.ingest_latency_us.count),
            // Whole latency slots reach back somewhat more than the
            // window, by a few seconds that change on every fetch.
            latency_window_s: t.latency_window_ms / 10_000 * 10,
        }
    }

    /// Messages per bucket for one channel, both directions summed.
    pub fn channel_counts(&self, channel: &str) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for s in self.series.iter().filter(|s| s.channel == channel) {
            if out.len() < s.counts.len() {
                out.resize(s.counts.len(), 0);
            }
            for (o, c) in out.iter_mut().zip(&s.counts) {
                *o += c;
            }
        }
        out
    }

    pub fn series_of(&self, channel: &str, direction: Direction) -> Option<&SeriesView> {
        self.series
            .iter()
            .find(|s| s.channel == channel && s.direction == direction)
    }
}

/// The tenant the detail view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailView {
    pub id: String,
    pub tenant: Option<TenantRecord>,
    pub throughput: Option<ThroughputView>,
    /// Its newest conversations (metadata only).
    pub conversations: DetailConversations,
}

/// The detail view's conversations panel: not fetched yet, fetched, or
/// not served by this core (an older core lacks
/// `GET /admin/v1/tenants/{id}/conversations`; the rest of the detail
/// still shows).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DetailConversations {
    #[default]
    Loading,
    Unavailable,
    Rows(Vec<ConversationRow>),
}

/// One of the detail view's conversations, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRow {
    pub id: String,
    pub channel: String,
    pub open: bool,
    pub message_count: i64,
    /// ms since the epoch.
    pub last_activity_at: i64,
}

impl From<TenantConversation> for ConversationRow {
    fn from(c: TenantConversation) -> Self {
        Self {
            open: c.status == "open",
            last_activity_at: ms(&c.last_activity_at).unwrap_or(0),
            id: c.id,
            channel: c.channel,
            message_count: c.message_count,
        }
    }
}

/// One line of the events view.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub at: String,
    pub kind: String,
    pub summary: String,
}

/// An open data-subject request as drawn (the person's identifier is
/// never held: only which kind of identifier it was).
#[derive(Debug, Clone, PartialEq)]
pub struct DsrRow {
    pub id: String,
    /// The tenant's name as shown (a pseudonym under `--redact`).
    pub tenant: String,
    pub kind: &'static str,
    pub subject_kind: &'static str,
    pub received_at: String,
    pub due_at: Option<DateTime<Utc>>,
    /// As of the fetch, for when the core's clock is not known yet.
    pub seconds_left: i64,
    pub status: &'static str,
    /// `+1 mo`, `+2 mo`, or empty.
    pub extension: String,
}

/// One notification clock of a breach.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockRow {
    /// `controller 48h`, `authority 72h`, `subjects`.
    pub label: &'static str,
    /// The tenant as shown, for a controller clock.
    pub tenant: Option<String>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub notified_at: Option<String>,
    pub seconds_left: i64,
}

/// A breach as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: String,
    pub nature: String,
    pub aware_at: String,
    pub open: bool,
    pub clocks: Vec<ClockRow>,
}

/// A consent record with at least one purpose withdrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentRow {
    pub id: String,
    pub tenant: String,
    pub subject_kind: &'static str,
    /// The purposes withdrawn, comma-separated.
    pub withdrawn: String,
    /// Whether every purpose is withdrawn.
    pub all: bool,
    /// The latest withdrawal.
    pub at: String,
}

/// The compliance view's three panels, ready to draw. Countdowns are
/// computed at draw time against [`Store::core_now`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComplianceView {
    /// Open requests, earliest deadline (so the overdue ones) first.
    pub dsrs: Vec<DsrRow>,
    /// Open requests over all pages and tenants (the rows are first pages).
    pub dsr_open: usize,
    pub incidents: Vec<IncidentRow>,
    /// Newest withdrawal first.
    pub consents: Vec<ConsentRow>,
    /// Purposes withdrawn over all records of the tenants fetched.
    pub withdrawals: u64,
}

/// What a write action came to, shown in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub text: String,
}

/// Everything the views read.
#[derive(Debug)]
pub struct Store {
    version: u64,
    tenants_version: u64,
    redact: Redactor,
    feeds: Vec<FeedState>,
    freshness: Vec<Freshness>,
    pub link: Link,
    stream_up: bool,
    poll: PollState,
    /// The core's clock as of the last overview or retention report
    /// (countdowns are relative to it: the dev clock may run ahead).
    pub core_now: Option<DateTime<Utc>>,
    pub overview: Option<OverviewView>,
    pub throughput: Option<ThroughputView>,
    pub tenants: Vec<TenantRow>,
    by_id: HashMap<String, usize>,
    /// Whether the last tenants fetch had any tenant with traffic.
    pub tenants_busy: bool,
    tenants_generation: u32,
    /// Within a fetch: whether a page changed a row, and saw traffic.
    page_changed: bool,
    page_busy: bool,
    pub detail: Option<DetailView>,
    pub retention: Option<RetentionReport>,
    pub registry: Option<RegistryList>,
    pub audit: Vec<AuditEntry>,
    pub compliance: ComplianceView,
    pub events: VecDeque<EventRow>,
    pub ticks_seen: u64,
    pub outcome: Option<Outcome>,
}

impl Store {
    /// An empty store; `refresh` is the polling interval feeds are aged against.
    pub fn new(refresh: Duration, redact: bool) -> Self {
        let mut feeds = vec![FeedState::default(); Feed::ALL.len()];
        for f in Feed::ALL {
            feeds[f.index()].max_age = Self::max_age(f, refresh);
        }
        Self {
            version: 1,
            tenants_version: 1,
            redact: Redactor::new(redact),
            feeds,
            freshness: vec![Freshness::Loading; Feed::ALL.len()],
            link: Link::Connecting,
            stream_up: false,
            poll: PollState::Unknown,
            core_now: None,
            overview: None,
            throughput: None,
            tenants: Vec::new(),
            by_id: HashMap::new(),
            tenants_busy: false,
            tenants_generation: 0,
            page_changed: false,
            page_busy: false,
            detail: None,
            retention: None,
            registry: None,
            audit: Vec::new(),
            compliance: ComplianceView::default(),
            events: VecDeque::new(),
            ticks_seen: 0,
            outcome: None,
        }
    }

    /// How long each feed's data may age: its poll interval (see
    /// `source::poll`) plus two refreshes of slack.
    fn max_age(feed: Feed, refresh: Duration) -> Duration {
        let slack = refresh * 2 + Duration::from_secs(1);
        let interval = match feed {
            Feed::Retention => crate::source::poll::RETENTION_EVERY,
            Feed::Registry => crate::source::poll::REGISTRY_EVERY,
            Feed::Audit => crate::source::poll::AUDIT_EVERY,
            Feed::Dsr | Feed::Incidents | Feed::Consents => crate::source::poll::COMPLIANCE_EVERY,
            // The event stream sends a tick every second.
            Feed::Events => Duration::from_secs(2),
            _ => refresh,
        };
        interval.max(refresh) + slack
    }

    /// Bumped on every visible change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Bumped when the tenant rows change (the tenants view re-filters then).
    pub fn tenants_version(&self) -> u64 {
        self.tenants_version
    }

    pub fn redactor(&self) -> Redactor {
        self.redact
    }

    #[track_caller]
    fn bump(&mut self) {
        self.version += 1;
        tracing::trace!(version = self.version, at = %std::panic::Location::caller(), "store changed");
    }

    pub fn freshness(&self, feed: Feed) -> &Freshness {
        &self.freshness[feed.index()]
    }

    fn confirm(&mut self, feed: Feed, now: Instant) {
        let s = &mut self.feeds[feed.index()];
        s.confirmed_at = Some(now);
        s.last_error = None;
        self.refresh_one(feed, now);
    }

    /// Records a failed fetch; the data already held stays, marked stale.
    pub fn feed_failed(&mut self, feed: Feed, error: String, now: Instant) {
        self.feeds[feed.index()].last_error = Some(error);
        self.refresh_one(feed, now);
    }

    fn refresh_one(&mut self, feed: Feed, now: Instant) {
        let s = &self.feeds[feed.index()];
        let down = matches!(self.link, Link::Down { .. });
        let label = match (s.confirmed_at, &s.last_error) {
            (None, None) => Freshness::Loading,
            (None, Some(e)) => Freshness::Failed(e.clone()),
            (Some(at), err) => {
                let age = now.saturating_duration_since(at);
                if age > s.max_age || down || err.is_some() {
                    Freshness::Stale(age.as_secs())
                } else {
                    Freshness::Fresh
                }
            }
        };
        if self.freshness[feed.index()] != label {
            self.freshness[feed.index()] = label;
            self.bump();
        }
    }

    /// Re-ages every feed; bumps the version only if a label changed.
    pub fn tick(&mut self, now: Instant) {
        for f in Feed::ALL {
            self.refresh_one(f, now);
        }
    }

    /// The event stream came up or went down.
    pub fn set_stream_up(&mut self, up: bool, now: Instant) {
        self.stream_up = up;
        self.derive_link(now);
    }

    /// The poller's last round reached the core, or not.
    pub fn set_poll(&mut self, poll: PollState, now: Instant) {
        self.poll = poll;
        self.derive_link(now);
    }

    fn derive_link(&mut self, now: Instant) {
        let link = match (&self.poll, self.stream_up) {
            (
                PollState::Unreachable {
                    attempt,
                    retry_s,
                    error,
                },
                _,
            ) => Link::Down {
                attempt: *attempt,
                retry_s: *retry_s,
                error: error.clone(),
            },
            (_, true) => Link::Live,
            (PollState::Reachable, false) => Link::Polling,
            (PollState::Unknown, false) => Link::Connecting,
        };
        self.set_link(link, now);
    }

    fn set_link(&mut self, link: Link, now: Instant) {
        if self.link != link {
            self.link = link;
            self.bump();
            self.tick(now);
        }
    }

    fn set_core_now(&mut self, s: &str) {
        // Minute granularity: countdowns are shown in minutes at best.
        let t = format::parse_time(s).map(|t| {
            let secs = t.timestamp() - t.timestamp().rem_euclid(60);
            DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(t)
        });
        if t.is_some() && t != self.core_now {
            self.core_now = t;
            self.bump();
        }
    }

    pub fn set_overview(&mut self, o: &Overview, now: Instant) {
        self.set_core_now(&o.now);
        let v = OverviewView::from_wire(o);
        if self.overview.as_ref() != Some(&v) {
            self.overview = Some(v);
            self.bump();
        }
        self.confirm(Feed::Overview, now);
    }

    pub fn set_throughput(&mut self, t: &Throughput, now: Instant) {
        let v = ThroughputView::from_wire(t);
        if self.throughput.as_ref() != Some(&v) {
            self.throughput = Some(v);
            self.bump();
        }
        self.confirm(Feed::Throughput, now);
    }

    fn row(&self, record: TenantRecord) -> TenantRow {
        let spark = record.activity;
        let name = self.redact.tenant_name(&record.id, &record.name);
        let short_id = if self.redact.on {
            self.redact.tenant_id(&record.id)
        } else {
            let n = record.id.len();
            record.id[n.saturating_sub(8)..].to_string()
        };
        let haystack = format!(
            "{} {} {} {}",
            name.to_lowercase(),
            if self.redact.on {
                &short_id
            } else {
                &record.id
            },
            record.status.as_str(),
            record.retention.as_str().to_lowercase()
        );
        TenantRow {
            channels: match (
                record.webchat,
                !record.phone_number_id.is_empty(),
                !record.email_address.is_empty(),
            ) {
                (true, true, true) => "web wa mail",
                (true, true, false) => "web wa",
                (true, false, true) => "web mail",
                (false, true, true) => "wa mail",
                (true, false, false) => "web",
                (false, true, false) => "wa",
                (false, false, true) => "mail",
                (false, false, false) => "–",
            },
            spark,
            haystack,
            generation: self.tenants_generation,
            name,
            short_id,
            record,
        }
    }

    /// A full tenant list at once (tests, fixtures): one page that is
    /// both the first and the last.
    pub fn set_tenants(&mut self, records: Vec<TenantRecord>, now: Instant) {
        self.tenants_page(records, true, true, now);
    }

    /// One page of a tenant-list fetch. Rows are updated in place (the
    /// sparkline comes with the record, from the core's per-second history);
    /// after the last page, tenants the fetch did not list are dropped.
    /// Pages arrive one at a time, so a 10,000-tenant platform is never
    /// held twice.
    pub fn tenants_page(
        &mut self,
        records: Vec<TenantRecord>,
        first: bool,
        last: bool,
        now: Instant,
    ) {
        if first {
            self.tenants_generation = self.tenants_generation.wrapping_add(1);
            self.page_changed = false;
            self.page_busy = false;
        }
        let generation = self.tenants_generation;
        for r in records {
            self.page_busy |= r.is_busy();
            match self.by_id.get(&r.id).copied() {
                Some(i) => {
                    if self.tenants[i].record != r {
                        self.tenants[i] = self.row(r);
                        self.page_changed = true;
                    }
                    self.tenants[i].generation = generation;
                }
                None => {
                    let row = self.row(r);
                    self.by_id.insert(row.record.id.clone(), self.tenants.len());
                    self.tenants.push(row);
                    self.page_changed = true;
                }
            }
        }
        if !last {
            return;
        }
        let before = self.tenants.len();
        self.tenants.retain(|r| r.generation == generation);
        if self.tenants.len() != before {
            self.by_id = self
                .tenants
                .iter()
                .enumerate()
                .map(|(i, r)| (r.record.id.clone(), i))
                .collect();
            self.page_changed = true;
        }
        self.tenants_busy = self.page_busy;
        if self.page_changed {
            self.tenants_version += 1;
            self.bump();
        }
        if let Some(d) = &self.detail
            && let Some(&i) = self.by_id.get(&d.id)
        {
            let rec = self.tenants[i].record.clone();
            self.set_detail_tenant(rec);
        }
        self.confirm(Feed::Tenants, now);
    }

    /// The core confirmed that no tenant has traffic and nothing changed.
    /// The poller fetches while any tenant had a message in the last minute,
    /// so by now every history is empty; a sparkline left over (a fetch
    /// missed) is cleared rather than frozen.
    pub fn tenants_idle(&mut self, now: Instant) {
        let mut changed = false;
        for row in &mut self.tenants {
            if row.spark.iter().any(|v| *v != 0.0) {
                row.spark = [0.0; TENANT_SPARK_LEN];
                row.record.activity = row.spark;
                changed = true;
            }
        }
        if changed {
            self.tenants_version += 1;
            self.bump();
        }
        self.confirm(Feed::Tenants, now);
    }

    pub fn tenant_row(&self, id: &str) -> Option<&TenantRow> {
        self.by_id.get(id).and_then(|&i| self.tenants.get(i))
    }

    /// Opens (or closes, with `None`) the detail of one tenant.
    pub fn focus(&mut self, id: Option<&str>) {
        let next = id.map(|id| DetailView {
            id: id.to_string(),
            tenant: self.tenant_row(id).map(|r| r.record.clone()),
            throughput: None,
            conversations: DetailConversations::Loading,
        });
        if next.as_ref().map(|d| &d.id) != self.detail.as_ref().map(|d| &d.id) {
            self.detail = next;
            self.feeds[Feed::Detail.index()] = FeedState {
                max_age: self.feeds[Feed::Detail.index()].max_age,
                ..Default::default()
            };
            self.freshness[Feed::Detail.index()] = Freshness::Loading;
            self.bump();
        }
    }

    fn set_detail_tenant(&mut self, rec: TenantRecord) {
        if let Some(d) = &mut self.detail
            && d.id == rec.id
            && d.tenant.as_ref() != Some(&rec)
        {
            d.tenant = Some(rec);
            self.bump();
        }
    }

    pub fn set_detail(
        &mut self,
        tenant: TenantRecord,
        throughput: &Throughput,
        conversations: DetailConversations,
        now: Instant,
    ) {
        let Some(d) = &mut self.detail else { return };
        if d.id != tenant.id {
            return;
        }
        let tv = ThroughputView::from_wire(throughput);
        let mut changed = false;
        if d.throughput.as_ref() != Some(&tv) {
            d.throughput = Some(tv);
            changed = true;
        }
        if d.conversations != conversations {
            d.conversations = conversations;
            changed = true;
        }
        if changed {
            self.bump();
        }
        self.set_detail_tenant(tenant);
        self.confirm(Feed::Detail, now);
    }

    pub fn set_retention(&mut self, r: RetentionReport, now: Instant) {
        self.set_core_now(&r.now.clone());
        // The oldest overdue age grows every second but is drawn in minutes.
        let minutes = |r: &RetentionReport| -> Vec<Option<i64>> {
            r.categories
                .iter()
                .map(|c| c.oldest_overdue_age_s.map(|a| a / 60))
                .collect()
        };
        let same_categories = |a: &RetentionReport, b: &RetentionReport| {
            minutes(a) == minutes(b)
                && a.categories.len() == b.categories.len()
                && a.categories.iter().zip(&b.categories).all(|(x, y)| {
                    let mut y = y.clone();
                    y.oldest_overdue_age_s = x.oldest_overdue_age_s;
                    *x == y
                })
        };
        let same = self.retention.as_ref().is_some_and(|old| {
            // `now` moves every second; what is drawn does not.
            same_categories(old, &r)
                && old.last_purge == r.last_purge
                && old.next_purge_at == r.next_purge_at
                && old.tenants_pending_purge == r.tenants_pending_purge
                && old.purge_interval_s == r.purge_interval_s
        });
        if !same {
            self.retention = Some(r);
            self.bump();
        }
        self.confirm(Feed::Retention, now);
    }

    pub fn set_registry(&mut self, r: RegistryList, now: Instant) {
        if self.registry.as_ref() != Some(&r) {
            self.registry = Some(r);
            self.bump();
        }
        self.confirm(Feed::Registry, now);
    }

    pub fn set_audit(&mut self, items: Vec<AuditEntry>, now: Instant) {
        let same = self.audit.len() == items.len()
            && self.audit.iter().zip(&items).all(|(a, b)| a.id == b.id);
        if !same {
            self.audit = items;
            self.bump();
        }
        self.confirm(Feed::Audit, now);
    }

    /// A tenant's name as shown, from the tenant list (or its masked id).
    fn tenant_label(&self, id: &str) -> String {
        self.tenant_row(id)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| self.redact.tenant_id(id))
    }

    /// Every fetched tenant's open data-subject requests (`open`: the
    /// count over all pages); `failed` says some tenants could not be
    /// fetched (the rows are kept, marked stale).
    pub fn set_dsrs(&mut self, items: Vec<Dsr>, open: usize, failed: Option<String>, now: Instant) {
        let mut rows: Vec<DsrRow> = items
            .into_iter()
            .filter(|d| d.status != DsrStatus::Completed)
            .map(|d| {
                let months: u32 = d.extensions.iter().map(|e| e.months).sum();
                DsrRow {
                    tenant: self.tenant_label(&d.tenant_id),
                    kind: d.kind.as_str(),
                    subject_kind: d.subject_kind.as_str(),
                    received_at: format::parse_time(&d.received_at)
                        .map(|t| format::date(&t))
                        .unwrap_or_else(|| d.received_at.clone()),
                    due_at: format::parse_time(&d.due_at),
                    seconds_left: d.seconds_left,
                    status: match d.status {
                        DsrStatus::Received => "received",
                        DsrStatus::Extended => "extended",
                        DsrStatus::Completed => "completed",
                    },
                    extension: if months > 0 {
                        format!("+{months} mo")
                    } else {
                        String::new()
                    },
                    id: d.id,
                }
            })
            .collect();
        // Earliest deadline first: the overdue ones lead, most overdue on top.
        rows.sort_by(|a, b| {
            (a.due_at.is_none(), a.due_at, &a.tenant, &a.id).cmp(&(
                b.due_at.is_none(),
                b.due_at,
                &b.tenant,
                &b.id,
            ))
        });
        // `seconds_left` moves every second; what is drawn does not.
        let same = |a: &[DsrRow], b: &[DsrRow]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    let mut y = y.clone();
                    y.seconds_left = x.seconds_left;
                    *x == y
                })
        };
        if !same(&self.compliance.dsrs, &rows) || self.compliance.dsr_open != open {
            self.compliance.dsrs = rows;
            self.compliance.dsr_open = open;
            self.bump();
        }
        self.confirm(Feed::Dsr, now);
        if let Some(e) = failed {
            self.feed_failed(Feed::Dsr, e, now);
        }
    }

    /// The breach register's first page.
    pub fn set_incidents(&mut self, items: Vec<Incident>, now: Instant) {
        let mut rows: Vec<IncidentRow> = items
            .into_iter()
            .map(|i| {
                let mut clocks: Vec<ClockRow> = i
                    .clocks
                    .controllers
                    .iter()
                    .map(|c| ClockRow {
                        label: "controller 48h",
                        tenant: Some(self.tenant_label(&c.tenant_id)),
                        deadline_at: format::parse_time(&c.deadline_at),
                        notified_at: c.notified_at.as_deref().map(format::date_time_str),
                        seconds_left: c.seconds_left,
                    })
                    .collect();
                for (label, c) in [
                    ("authority 72h", &i.clocks.authority),
                    ("subjects", &i.clocks.subjects),
                ] {
                    if let Some(c) = c {
                        clocks.push(ClockRow {
                            label,
                            tenant: None,
                            deadline_at: format::parse_time(&c.deadline_at),
                            notified_at: c.notified_at.as_deref().map(format::date_time_str),
                            seconds_left: c.seconds_left,
                        });
                    }
                }
                IncidentRow {
                    nature: self.redact.text_with_ids(&i.nature),
                    aware_at: format::date_time_str(&i.aware_at),
                    open: i.open,
                    clocks,
                    id: i.id,
                }
            })
            .collect();
        // Open ones first; otherwise as the core lists them (newest first).
        rows.sort_by_key(|r| !r.open);
        let same = self.compliance.incidents.len() == rows.len()
            && self.compliance.incidents.iter().zip(&rows).all(|(a, b)| {
                let mut b = b.clone();
                for (x, y) in a.clocks.iter().zip(b.clocks.iter_mut()) {
                    y.seconds_left = x.seconds_left;
                }
                *a == b
            });
        if !same {
            self.compliance.incidents = rows;
            self.bump();
        }
        self.confirm(Feed::Incidents, now);
    }

    /// Every fetched tenant's consent records with a withdrawal
    /// (`withdrawals`: purposes withdrawn over all their records).
    pub fn set_consents(
        &mut self,
        items: Vec<Consent>,
        withdrawals: u64,
        failed: Option<String>,
        now: Instant,
    ) {
        let mut rows: Vec<(DateTime<Utc>, ConsentRow)> = items
            .into_iter()
            .filter_map(|c| {
                let withdrawn: Vec<&str> = c
                    .purposes
                    .iter()
                    .filter(|p| p.withdrawn_at.is_some())
                    .map(|p| p.purpose.as_str())
                    .collect();
                let at = c
                    .purposes
                    .iter()
                    .filter_map(|p| p.withdrawn_at.as_deref().and_then(format::parse_time))
                    .max()?;
                Some((
                    at,
                    ConsentRow {
                        tenant: self.tenant_label(&c.tenant_id),
                        subject_kind: c.subject_kind.as_str(),
                        withdrawn: withdrawn.join(", "),
                        all: withdrawn.len() == c.purposes.len(),
                        at: format::date_time(&at),
                        id: c.id.clone(),
                    },
                ))
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let rows: Vec<ConsentRow> = rows.into_iter().map(|(_, r)| r).collect();
        if self.compliance.consents != rows || self.compliance.withdrawals != withdrawals {
            self.compliance.consents = rows;
            self.compliance.withdrawals = withdrawals;
            self.bump();
        }
        self.confirm(Feed::Consents, now);
        if let Some(e) = failed {
            self.feed_failed(Feed::Consents, e, now);
        }
    }

    /// An event from the stream. Ticks only confirm the stream is alive;
    /// everything else is listed.
    pub fn push_event(&mut self, ev: &Event, now: Instant) {
        if ev.kind == kinds::THROUGHPUT_TICK {
            self.ticks_seen += 1;
            self.confirm(Feed::Events, now);
            return;
        }
        let summary = self.summarise(ev);
        self.events.push_front(EventRow {
            at: format::date_time_str(&ev.at),
            kind: ev.kind.clone(),
            summary,
        });
        self.events.truncate(EVENTS_KEPT);
        self.bump();
        self.confirm(Feed::Events, now);
    }

    fn summarise(&self, ev: &Event) -> String {
        let d = &ev.data;
        let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let text = match ev.kind.as_str() {
            kinds::TENANT_CHANGED => {
                let id = s("id");
                let name = self
                    .tenant_row(&id)
                    .map(|r| r.name.clone())
                    .unwrap_or_else(|| self.redact.tenant_id(&id));
                format!("{name}: {} → {}", s("change"), s("status"))
            }
            kinds::RETENTION_PURGED => format!(
                "purge ({}): {} rows deleted, {} keys destroyed",
                s("trigger"),
                d.get("rows_deleted").and_then(|v| v.as_u64()).unwrap_or(0),
                d.get("keys_destroyed")
                    .and_then(|v| v.as_array())
                    .map(|a| a.len())
                    .unwrap_or(0)
            ),
            kinds::REGISTRY_CHANGED => {
                let mut parts = Vec::new();
                for k in ["name", "id", "event", "change", "status"] {
                    let v = s(k);
                    if !v.is_empty() {
                        parts.push(v);
                    }
                }
                if parts.is_empty() {
                    d.to_string()
                } else {
                    parts.join(" · ")
                }
            }
            _ => d.to_string(),
        };
        format::clip(&self.redact.text_with_ids(&text), 200)
    }

    pub fn set_outcome(&mut self, o: Outcome) {
        self.outcome = Some(o);
        self.bump();
    }

    pub fn clear_outcome(&mut self) {
        if self.outcome.take().is_some() {
            self.bump();
        }
    }

    /// Whether the data of every feed `feeds` names has arrived (for `--snapshot`).
    pub fn loaded(&self, feeds: &[Feed]) -> bool {
        feeds
            .iter()
            .all(|f| self.feeds[f.index()].confirmed_at.is_some())
    }

    /// Any feed's last error, for a snapshot that gave up waiting.
    pub fn first_error(&self) -> Option<String> {
        self.feeds.iter().find_map(|f| f.last_error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_five_second_means_aligned_on_the_newest_second() {
        assert_eq!(activity(&[]), [0.0; TENANT_SPARK_LEN]);
        let mut history = vec![0u32; 60];
        history[59] = 10; // the newest second
        history[0] = 5; // the oldest
        history[54] = 5; // the second-newest bucket
        let a = activity(&history);
        assert_eq!(a[TENANT_SPARK_LEN - 1], 2.0);
        assert_eq!(a[TENANT_SPARK_LEN - 2], 1.0);
        assert_eq!(a[0], 1.0);
        assert_eq!(a.iter().sum::<f32>(), 4.0);
        // A short history fills the newest buckets.
        let a = activity(&[5, 5, 5, 5, 5]);
        assert_eq!(a[TENANT_SPARK_LEN - 1], 5.0);
        assert_eq!(a[..TENANT_SPARK_LEN - 1].iter().sum::<f32>(), 0.0);
    }
}

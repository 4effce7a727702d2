//! Live figures for the admin API and `/metrics`, updated on ingest and kept
//! in memory, so an admin read never touches the database.
//!
//! What is kept, and why it is shaped this way:
//!
//! - Per tenant × channel × direction: message and byte counts in 1-second
//!   buckets for the last hour and 1-minute buckets for the last day. Up to
//!   10,000 tenants may exist but most are idle, so nothing is allocated for a
//!   tenant before its first message, and buckets come in 60-bucket pages
//!   allocated when first written. A ring reuses its pages as it turns, so a
//!   busy series stops allocating after its first hour (first day for the
//!   minute pages); [`LiveStats::prune`] frees pages no window can show any
//!   more and forgets tenants idle for a day.
//! - The same counts platform-wide per channel × direction, so a read without
//!   a tenant filter does not walk the tenants.
//! - Per channel, platform-wide only (one histogram is about 10 KB, too much
//!   per tenant): receive → commit latency in HdrHistograms of 10 s (last
//!   5 min), 1 min (last hour) and 1 h (last day), merged on read, and the
//!   time spent sealing, summed in the same slots.
//! - Totals since start for `/metrics`: counters, and a Prometheus histogram
//!   with fixed buckets, counted exactly rather than derived from HDR buckets.
//! - Several nodes on one database (see `cluster.rs`): what this node
//!   publishes for the others comes from here (per-second counts, latency
//!   slots, totals), and the other nodes' recent per-tenant counts are an
//!   overlay added to the tenant rates and histories and to the active
//!   tenants (a union). Everything else of theirs is added on read by
//!   `cluster.rs`; `/metrics` stays this node's own.
//!
//! Every page and slot records the epoch (time ÷ width) it holds and a read
//! checks it, so time skipped while idle reads as zero without any sweeping;
//! a write landing on a slot that holds an older epoch resets it first.
//!
//! Locking: one mutex per channel (platform figures), a read-mostly map of
//! tenants with a mutex each, and one small mutex for the active-tenant count.
//! A record takes the channel lock, then the map's read lock with the
//! tenant's lock, then (at most once a second per tenant) the activity lock;
//! nothing takes them in another order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};
use crate::store::Channel;

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// Shortest window served: one 1-second bucket. Shorter requests are raised to it.
pub const MIN_WINDOW_MS: i64 = SECOND_MS;
/// Longest window served (24 h), all that the minute buckets keep. Longer
/// requests are clamped to it.
pub const MAX_WINDOW_MS: i64 = 24 * HOUR_MS;
/// Windows up to this (1 h) are served in 1-second buckets, longer ones in
/// 1-minute buckets.
pub const SECOND_BUCKETS_MAX_WINDOW_MS: i64 = HOUR_MS;
/// The window of [`LiveStats::tenant_rate`] and of the overview's `msgs_per_s`.
pub const RATE_WINDOW_S: usize = 10;

const SECONDS_KEPT: usize = 3_600;
const MINUTES_KEPT: usize = 1_440;
/// Buckets per page: the unit of lazy allocation.
const PAGE: usize = 60;
const PAGE_I: i64 = PAGE as i64;
/// One page more than the span: a full window ending mid-page touches it.
const SECOND_PAGES: usize = SECONDS_KEPT / PAGE + 1;
const MINUTE_PAGES: usize = MINUTES_KEPT / PAGE + 1;
/// The active-tenant count needs 60 s; three pages always cover that.
const ACTIVITY_PAGES: usize = 3;
const ACTIVE_WINDOW_S: usize = 60;

/// Latency slots: width and count (one more than the span, for the current,
/// partly filled slot).
const FINE_SLOT_MS: i64 = 10 * SECOND_MS;
const FINE_SLOTS: usize = 31;
const MID_SLOT_MS: i64 = MINUTE_MS;
const MID_SLOTS: usize = 61;
const COARSE_SLOT_MS: i64 = HOUR_MS;
const COARSE_SLOTS: usize = 25;
/// Latencies above 60 s are recorded as 60 s in the HdrHistograms (the
/// Prometheus buckets and `_sum` keep the real value).
pub const LATENCY_MAX_US: u64 = 60_000_000;
const LATENCY_SIGFIG: u8 = 2;

/// Distinct error codes counted per channel; more go to [`OTHER_CODE`], so a
/// caller passing free text cannot grow `/metrics` without bound.
const MAX_ERROR_CODES: usize = 32;
/// The code errors are counted under once [`MAX_ERROR_CODES`] are in use.
pub const OTHER_CODE: &str = "other";
/// Tenants tracked at most; past this, messages still count platform-wide.
/// A guard only: tenant ids come from the tenant directory.
const MAX_TENANTS: usize = 100_000;

/// Prometheus latency bucket bounds in µs, and the same as `le` labels.
const PROM_BOUNDS_US: [u64; 13] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000,
];
const PROM_LE: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "+Inf",
];

const M_MESSAGES: &str = "c24_messages_total";
const M_BYTES: &str = "c24_message_bytes_total";
const M_ERRORS: &str = "c24_ingest_errors_total";
const M_LATENCY: &str = "c24_ingest_latency_seconds";
const M_ENCRYPT: &str = "c24_encrypt_seconds_total";
const M_ACTIVE: &str = "c24_active_tenants";
const M_UPTIME: &str = "c24_uptime_seconds";
const M_MEMORY: &str = "c24_live_stats_memory_bytes";
/// Names `extra` samples may not take, since the built-in families use them.
const RESERVED_NAMES: [&str; 11] = [
    M_MESSAGES,
    M_BYTES,
    M_ERRORS,
    M_LATENCY,
    "c24_ingest_latency_seconds_bucket",
    "c24_ingest_latency_seconds_sum",
    "c24_ingest_latency_seconds_count",
    M_ENCRYPT,
    M_ACTIVE,
    M_UPTIME,
    M_MEMORY,
];

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

pub use c24_api::admin::throughput::{
    ChannelFigures, Direction, ErrorCodeCount, OverviewFigures, Percentiles, Series, TenantFigures,
    Throughput,
};

fn direction_index(d: Direction) -> usize {
    match d {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

fn channel_index(c: Channel) -> usize {
    match c {
        Channel::Webchat => 0,
        Channel::Whatsapp => 1,
        Channel::Email => 2,
    }
}

/// The percentiles of one histogram (all zero when it is empty).
pub fn percentiles_of(h: &Histogram<u32>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

/// What the live figures hold in memory, to check they stay lazy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Tenants with an entry.
    pub tenants: u64,
    /// Tenant × channel × direction series allocated.
    pub tenant_series: u64,
    /// 60-bucket pages of 1-second counts (tenant and platform).
    pub second_pages: u64,
    /// 60-bucket pages of 1-minute counts (tenant and platform).
    pub minute_pages: u64,
    /// Latency HdrHistograms allocated (at most 351: 117 slots × 3 channels).
    pub histograms: u64,
    /// Estimated heap bytes of all the above, from struct sizes (map
    /// overhead and allocator slack approximated).
    pub approx_bytes: u64,
}

/// What this node counted since it started (the overview's totals), for
/// the other nodes on one database to add up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTotals {
    pub messages_total: u64,
    pub bytes_total: u64,
    pub errors_total: u64,
    /// Channel then code order.
    pub error_codes: Vec<ErrorCodeCount>,
}

/// One channel's latency over a window: receive → commit µs and the time
/// spent sealing the same messages.
#[derive(Debug, Clone)]
pub struct ChannelLatency {
    pub histogram: Histogram<u32>,
    pub encrypt_ns: u64,
}

/// One latency slot of one channel, as kept in memory: what a node
/// publishes for the other nodes ([`LiveStats::recent_latency_slots`]).
#[derive(Debug, Clone)]
pub struct LatencySlotFigures {
    /// Which ring: see [`LatencyWindow::ring`].
    pub ring: i16,
    /// The slot's epoch: time ÷ the ring's slot width.
    pub slot: i64,
    /// Index into [`Channel::ALL`].
    pub channel: i16,
    pub latency: ChannelLatency,
}

/// The latency slots a window is served from ([`latency_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyWindow {
    /// 0: 10-second slots (windows up to 5 min), 1: 1-minute slots (up to
    /// 1 h), 2: 1-hour slots (up to 24 h).
    pub ring: i16,
    /// First and last slot epoch, both included.
    pub first: i64,
    pub last: i64,
}

/// The latency slots serving a `window_ms` read at `now_ms`: the same ones
/// on every node, so other nodes' published slots merge with this node's.
pub fn latency_window(window_ms: i64, now_ms: i64) -> LatencyWindow {
    let plan = LatencyPlan::new(window_ms, now_ms);
    LatencyWindow {
        ring: plan.ring.index(),
        first: plan.first,
        last: plan.last,
    }
}

/// Per ring, the oldest slot epoch any window can still read at `now_ms`:
/// published slots before it can go.
pub fn latency_horizons(now_ms: i64) -> [(i16, i64); 3] {
    LatRing::ALL.map(|r| {
        let (width, slots) = r.geometry();
        (r.index(), now_ms.div_euclid(width) - (slots as i64 - 1))
    })
}

/// A fresh latency histogram with the bounds every node uses.
pub fn latency_histogram() -> Option<Histogram<u32>> {
    new_histogram()
}

/// The kind of an extra Prometheus sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromKind {
    Gauge,
    Counter,
}

impl PromKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PromKind::Gauge => "gauge",
            PromKind::Counter => "counter",
        }
    }
}

/// A sample computed elsewhere (retention backlog, purge runs) for
/// [`LiveStats::render_prometheus`]. Samples sharing a `name` form one
/// family; the first one's `help` and `kind` are used.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    /// Metric name, e.g. `c24_retention_backlog`; characters Prometheus does
    /// not allow are replaced by `_`. A counter's name should end in `_total`.
    pub name: String,
    pub help: String,
    pub kind: PromKind,
    /// Label names are sanitised like `name`; values are escaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl PromSample {
    pub fn gauge(name: impl Into<String>, help: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind: PromKind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    pub fn counter(name: impl Into<String>, help: impl Into<String>, value: f64) -> Self {
        Self {
            kind: PromKind::Counter,
            ..Self::gauge(name, help, value)
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// Parses a `window=` value: a positive integer with `ms`, `s`, `m`, `h` or
/// `d`, or bare seconds (`60s`, `5m`, `1h`, `24h`, `1500ms`, `60`). The result
/// is not clamped; [`LiveStats::throughput`] clamps it.
pub fn parse_window(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: i64 = num.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "" | "s" => SECOND_MS,
        "m" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => 24 * HOUR_MS,
        _ => return None,
    };
    n.checked_mul(scale).filter(|ms| *ms > 0)
}

// ---------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------

/// Poisoning only means a recorder panicked mid-update; the figures are
/// advisory, so carry on with whatever state it left.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

trait Reset {
    fn reset(&mut self);
}

struct Slot<T> {
    epoch: i64,
    data: T,
}

/// `N` lazily allocated slots addressed by an absolute epoch (time ÷ slot
/// width); slot `epoch mod N` holds one epoch at a time.
struct EpochRing<T, const N: usize> {
    slots: [Option<Box<Slot<T>>>; N],
    /// The newest epoch written, to notice the clock stepping back.
    head: i64,
}

impl<T: Reset, const N: usize> EpochRing<T, N> {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| None),
            head: i64::MIN,
        }
    }

    fn index(epoch: i64) -> usize {
        epoch.rem_euclid(N as i64) as usize
    }

    fn get(&self, epoch: i64) -> Option<&T> {
        let slot = self.slots[Self::index(epoch)].as_deref()?;
        (slot.epoch == epoch).then_some(&slot.data)
    }

    /// The slot for `epoch` only if it already holds it (no reset, no allocation).
    fn get_mut(&mut self, epoch: i64) -> Option<&mut T> {
        let slot = self.slots[Self::index(epoch)].as_deref_mut()?;
        (slot.epoch == epoch).then_some(&mut slot.data)
    }

    /// The slot for `epoch`, reset if it held an older epoch and allocated
    /// with `make` if never used. `None` if `make` fails.
    fn slot_mut(&mut self, epoch: i64, make: impl FnOnce() -> Option<T>) -> Option<&mut T> {
        if epoch.saturating_add(N as i64) <= self.head {
            // Older than the whole ring relative to the newest write: no
            // sample is that late, so the clock stepped back. Start over
            // (keeping the allocations) rather than read zeros until the
            // clock catches up.
            for slot in self.slots.iter_mut().flatten() {
                slot.epoch = i64::MIN;
            }
            self.head = epoch;
        } else {
            self.head = self.head.max(epoch);
        }
        let cell = &mut self.slots[Self::index(epoch)];
        match cell.as_ref().map(|s| s.epoch) {
            Some(held) if held == epoch => {}
            Some(held) if held < epoch => {
                if let Some(slot) = cell.as_deref_mut() {
                    slot.data.reset();
                    slot.epoch = epoch;
                }
            }
            // Holds a newer epoch: unreachable given the check above, but a
            // sample is better lost than a newer slot clobbered.
            Some(_) => return None,
            None => {
                *cell = Some(Box::new(Slot {
                    epoch,
                    data: make()?,
                }));
            }
        }
        cell.as_deref_mut().map(|s| &mut s.data)
    }

    /// Frees slots no read at `current` can show; returns how many.
    fn prune(&mut self, current: i64) -> usize {
        let oldest = current.saturating_sub(N as i64 - 1);
        let mut freed = 0;
        for cell in &mut self.slots {
            if cell.as_ref().is_some_and(|s| s.epoch < oldest) {
                *cell = None;
                freed += 1;
            }
        }
        freed
    }

    fn allocated(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

/// A bucket of message count and bytes.
trait Bucket: Copy + Default {
    fn add(&mut self, n: u64, bytes: u64);
    fn count(&self) -> u64;
    fn bytes(&self) -> u64;
}

/// 8 bytes: no tenant channel sends 4 G messages or 4 GiB in one second
/// (saturating if one did).
#[derive(Clone, Copy, Default)]
struct SecBucket {
    count: u32,
    bytes: u32,
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Bucket for SecBucket {
    fn add(&mut self, n: u64, bytes: u64) {
        self.count = self.count.saturating_add(sat_u32(n));
        self.bytes = self.bytes.saturating_add(sat_u32(bytes));
    }
    fn count(&self) -> u64 {
        u64::from(self.count)
    }
    fn bytes(&self) -> u64 {
        u64::from(self.bytes)
    }
}

#[derive(Clone, Copy, Default)]
struct MinBucket {
    count: u64,
    bytes: u64,
}

impl Bucket for MinBucket {
    fn add(&mut self, n: u64, bytes: u64) {
        self.count = self.count.saturating_add(n);
        self.bytes = self.bytes.saturating_add(bytes);
    }
    fn count(&self) -> u64 {
        self.count
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
}

struct Page<B>([B; PAGE]);

impl<B: Copy + Default> Page<B> {
    fn new() -> Self {
        Self([B::default(); PAGE])
    }
}

impl<B: Copy + Default> Reset for Page<B> {
    fn reset(&mut self) {
        self.0 = [B::default(); PAGE];
    }
}

impl<B: Copy + Default, const N: usize> EpochRing<Page<B>, N> {
    /// The bucket at absolute index `bucket`, allocating its page if needed.
    fn bucket_mut(&mut self, bucket: i64, pages: &AtomicUsize) -> Option<&mut B> {
        let page = self.slot_mut(bucket.div_euclid(PAGE_I), || {
            pages.fetch_add(1, Ordering::Relaxed);
            Some(Page::new())
        })?;
        Some(&mut page.0[bucket.rem_euclid(PAGE_I) as usize])
    }

    /// Calls `f(i, bucket)` for the held buckets among `first .. first + len`,
    /// `i` counting from 0; buckets of pages not held (never written, or
    /// since reused for a later epoch) are skipped: they read as zero.
    fn visit(&self, first: i64, len: usize, mut f: impl FnMut(usize, &B)) {
        let mut i = 0;
        while i < len {
            let b = first + i as i64;
            let offset = b.rem_euclid(PAGE_I) as usize;
            let take = (PAGE - offset).min(len - i);
            if let Some(page) = self.get(b.div_euclid(PAGE_I)) {
                for (k, bucket) in page.0[offset..offset + take].iter().enumerate() {
                    f(i + k, bucket);
                }
            }
            i += take;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Resolution {
    Seconds,
    Minutes,
}

/// Counts for one tenant × channel × direction (or one platform channel ×
/// direction, or one channel's errors).
struct CountSeries {
    seconds: EpochRing<Page<SecBucket>, SECOND_PAGES>,
    minutes: EpochRing<Page<MinBucket>, MINUTE_PAGES>,
}

impl CountSeries {
    fn new() -> Self {
        Self {
            seconds: EpochRing::new(),
            minutes: EpochRing::new(),
        }
    }

    fn add(&mut self, now_ms: i64, n: u64, bytes: u64, mem: &Mem) {
        if let Some(b) = self
            .seconds
            .bucket_mut(now_ms.div_euclid(SECOND_MS), &mem.second_pages)
        {
            b.add(n, bytes);
        }
        if let Some(b) = self
            .minutes
            .bucket_mut(now_ms.div_euclid(MINUTE_MS), &mem.minute_pages)
        {
            b.add(n, bytes);
        }
    }

    /// Adds buckets `first .. first + counts.len()` into `counts` and `bytes`.
    fn read_into(&self, res: Resolution, first: i64, counts: &mut [u64], bytes: &mut [u64]) {
        let len = counts.len().min(bytes.len());
        let mut f = |i: usize, c: u64, b: u64| {
            counts[i] += c;
            bytes[i] += b;
        };
        match res {
            Resolution::Seconds => self
                .seconds
                .visit(first, len, |i, b| f(i, b.count(), b.bytes())),
            Resolution::Minutes => self
                .minutes
                .visit(first, len, |i, b| f(i, b.count(), b.bytes())),
        }
    }

    /// Messages in seconds `first .. first + len`.
    fn sum_seconds(&self, first: i64, len: usize) -> u64 {
        let mut sum = 0;
        self.seconds.visit(first, len, |_, b| sum += b.count());
        sum
    }

    /// Frees pages no window can show at `now_ms`; true when nothing is left.
    fn prune(&mut self, now_ms: i64, mem: &Mem) -> bool {
        let s = self
            .seconds
            .prune(now_ms.div_euclid(SECOND_MS).div_euclid(PAGE_I));
        let m = self
            .minutes
            .prune(now_ms.div_euclid(MINUTE_MS).div_euclid(PAGE_I));
        mem.second_pages.fetch_sub(s, Ordering::Relaxed);
        mem.minute_pages.fetch_sub(m, Ordering::Relaxed);
        self.seconds.allocated() == 0 && self.minutes.allocated() == 0
    }
}

/// One latency slot: receive → commit µs and the sealing time of the same messages.
struct LatSlot {
    hist: Histogram<u32>,
    encrypt_ns: u64,
}

fn new_histogram() -> Option<Histogram<u32>> {
    // u32 counts halve the memory; a slot never sees 4 G messages, and a merge saturates.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIG).ok()
}

impl LatSlot {
    fn new() -> Option<Self> {
        Some(Self {
            hist: new_histogram()?,
            encrypt_ns: 0,
        })
    }
}

impl Reset for LatSlot {
    fn reset(&mut self) {
        self.hist.reset();
        self.encrypt_ns = 0;
    }
}

fn record_latency<const N: usize>(
    ring: &mut EpochRing<LatSlot, N>,
    epoch: i64,
    ingest_us: u64,
    encrypt_ns: u64,
    mem: &Mem,
) {
    let slot = ring.slot_mut(epoch, || {
        let s = LatSlot::new()?;
        mem.histograms.fetch_add(1, Ordering::Relaxed);
        Some(s)
    });
    if let Some(s) = slot {
        s.hist.saturating_record(ingest_us);
        s.encrypt_ns = s.encrypt_ns.saturating_add(encrypt_ns);
    }
}

fn merge_latency<const N: usize>(
    ring: &EpochRing<LatSlot, N>,
    first: i64,
    last: i64,
    into: &mut Histogram<u32>,
    encrypt_ns: &mut u64,
) {
    for epoch in first..=last {
        if let Some(s) = ring.get(epoch) {
            // Same bounds on both sides, so the add cannot fail.
            let _ = into.add(&s.hist);
            *encrypt_ns = encrypt_ns.saturating_add(s.encrypt_ns);
        }
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// Allocation counts, kept as they change so [`LiveStats::memory`] is O(1).
#[derive(Default)]
struct Mem {
    tenants: AtomicUsize,
    tenant_id_bytes: AtomicUsize,
    tenant_series: AtomicUsize,
    second_pages: AtomicUsize,
    minute_pages: AtomicUsize,
    histograms: AtomicUsize,
}

/// Platform-wide figures for one channel.
struct ChannelState {
    traffic: [CountSeries; 2],
    errors: CountSeries,
    error_codes: Vec<(Box<str>, u64)>,
    messages_total: [u64; 2],
    bytes_total: [u64; 2],
    errors_total: u64,
    encrypt_ns_total: u64,
    /// Per Prometheus bucket, not cumulative; the last is `+Inf`.
    prom_buckets: [u64; PROM_LE.len()],
    latency_sum_us: u64,
    latency_count: u64,
    fine: EpochRing<LatSlot, FINE_SLOTS>,
    mid: EpochRing<LatSlot, MID_SLOTS>,
    coarse: EpochRing<LatSlot, COARSE_SLOTS>,
}

impl ChannelState {
    fn new() -> Self {
        Self {
            traffic: [CountSeries::new(), CountSeries::new()],
            errors: CountSeries::new(),
            error_codes: Vec::new(),
            messages_total: [0; 2],
            bytes_total: [0; 2],
            errors_total: 0,
            encrypt_ns_total: 0,
            prom_buckets: [0; PROM_LE.len()],
            latency_sum_us: 0,
            latency_count: 0,
            fine: EpochRing::new(),
            mid: EpochRing::new(),
            coarse: EpochRing::new(),
        }
    }

    fn record(
        &mut self,
        d: usize,
        bytes: u64,
        ingest_us: u64,
        encrypt_ns: u64,
        now_ms: i64,
        mem: &Mem,
    ) {
        self.messages_total[d] = self.messages_total[d].saturating_add(1);
        self.bytes_total[d] = self.bytes_total[d].saturating_add(bytes);
        self.encrypt_ns_total = self.encrypt_ns_total.saturating_add(encrypt_ns);
        let b = PROM_BOUNDS_US
            .iter()
            .position(|bound| ingest_us <= *bound)
            .unwrap_or(PROM_BOUNDS_US.len());
        self.prom_buckets[b] += 1;
        self.latency_sum_us = self.latency_sum_us.saturating_add(ingest_us);
        self.latency_count += 1;
        self.traffic[d].add(now_ms, 1, bytes, mem);
        let fine = now_ms.div_euclid(FINE_SLOT_MS);
        let mid = now_ms.div_euclid(MID_SLOT_MS);
        let coarse = now_ms.div_euclid(COARSE_SLOT_MS);
        record_latency(&mut self.fine, fine, ingest_us, encrypt_ns, mem);
        record_latency(&mut self.mid, mid, ingest_us, encrypt_ns, mem);
        record_latency(&mut self.coarse, coarse, ingest_us, encrypt_ns, mem);
    }

    fn record_error(&mut self, code: &str, now_ms: i64, mem: &Mem) {
        self.errors_total = self.errors_total.saturating_add(1);
        self.errors.add(now_ms, 1, 0, mem);
        if let Some(entry) = self.error_codes.iter_mut().find(|(c, _)| &**c == code) {
            entry.1 += 1;
            return;
        }
        let code = if self.error_codes.len() < MAX_ERROR_CODES {
            code
        } else {
            OTHER_CODE
        };
        match self.error_codes.iter_mut().find(|(c, _)| &**c == code) {
            Some(entry) => entry.1 += 1,
            None => self.error_codes.push((Box::from(code), 1)),
        }
    }

    /// Latency merged over the slots covering `window_ms` before `now_ms`
    /// (`None` only if a histogram cannot be made), the sealing time summed
    /// over the same slots, and the span they cover.
    fn latency(&self, window_ms: i64, now_ms: i64) -> (Option<Histogram<u32>>, u64, i64) {
        let plan = LatencyPlan::new(window_ms, now_ms);
        let mut encrypt = 0;
        let mut hist = new_histogram();
        if let Some(h) = hist.as_mut() {
            let (first, last) = (plan.first, plan.last);
            match plan.ring {
                LatRing::Fine => merge_latency(&self.fine, first, last, h, &mut encrypt),
                LatRing::Mid => merge_latency(&self.mid, first, last, h, &mut encrypt),
                LatRing::Coarse => merge_latency(&self.coarse, first, last, h, &mut encrypt),
            }
        }
        (hist, encrypt, plan.covers_ms)
    }

    /// The slot of `ring` holding `epoch`, if any.
    fn latency_slot(&self, ring: LatRing, epoch: i64) -> Option<&LatSlot> {
        match ring {
            LatRing::Fine => self.fine.get(epoch),
            LatRing::Mid => self.mid.get(epoch),
            LatRing::Coarse => self.coarse.get(epoch),
        }
    }

    fn prune(&mut self, now_ms: i64, mem: &Mem) {
        for s in &mut self.traffic {
            s.prune(now_ms, mem);
        }
        self.errors.prune(now_ms, mem);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LatRing {
    Fine,
    Mid,
    Coarse,
}

impl LatRing {
    const ALL: [LatRing; 3] = [LatRing::Fine, LatRing::Mid, LatRing::Coarse];

    fn index(self) -> i16 {
        match self {
            LatRing::Fine => 0,
            LatRing::Mid => 1,
            LatRing::Coarse => 2,
        }
    }

    /// Slot width in ms and slots kept.
    fn geometry(self) -> (i64, usize) {
        match self {
            LatRing::Fine => (FINE_SLOT_MS, FINE_SLOTS),
            LatRing::Mid => (MID_SLOT_MS, MID_SLOTS),
            LatRing::Coarse => (COARSE_SLOT_MS, COARSE_SLOTS),
        }
    }
}

/// Which latency slots serve a window: the finest ring that keeps it, its
/// current slot and as many before it as reach back `window_ms`.
struct LatencyPlan {
    ring: LatRing,
    first: i64,
    last: i64,
    covers_ms: i64,
}

impl LatencyPlan {
    fn new(window_ms: i64, now_ms: i64) -> Self {
        let window_ms = window_ms.clamp(MIN_WINDOW_MS, MAX_WINDOW_MS);
        let (ring, width, slots) = if window_ms <= FINE_SLOT_MS * (FINE_SLOTS as i64 - 1) {
            (LatRing::Fine, FINE_SLOT_MS, FINE_SLOTS)
        } else if window_ms <= MID_SLOT_MS * (MID_SLOTS as i64 - 1) {
            (LatRing::Mid, MID_SLOT_MS, MID_SLOTS)
        } else {
            (LatRing::Coarse, COARSE_SLOT_MS, COARSE_SLOTS)
        };
        let before = ceil_div(window_ms, width).min(slots as i64 - 1);
        let last = now_ms.div_euclid(width);
        let first = last - before;
        Self {
            ring,
            first,
            last,
            covers_ms: now_ms - first * width,
        }
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    // Both positive here.
    (a + b - 1) / b
}

struct TenantState {
    /// Channel × direction, index `channel * 2 + direction`.
    series: [Option<Box<CountSeries>>; 6],
    /// The newest message's time, `i64::MIN` before the first.
    last_ms: i64,
}

type TenantMap = HashMap<Box<str>, Mutex<TenantState>>;

/// Other nodes' per-second message counts per tenant: tenant → (second, messages).
pub type OtherNodesCounts = HashMap<Box<str>, Vec<(i64, u64)>>;

/// The chat core's live figures. Shared as `Arc<LiveStats>`; every method
/// takes `&self`.
pub struct LiveStats {
    started_at_ms: Millis,
    channels: [Mutex<ChannelState>; 3],
    tenants: RwLock<TenantMap>,
    /// Per second, the tenants whose newest message is in that second: each
    /// tenant counts once, so a sum over the last 60 s is the number of
    /// distinct active tenants without walking them.
    activity: Mutex<EpochRing<Page<u32>, ACTIVITY_PAGES>>,
    mem: Mem,
    /// Length of one histogram's counts array, for the memory estimate.
    hist_counts_len: usize,
    /// Other nodes' recent per-second message counts per tenant (several
    /// nodes on one database; see `cluster.rs`), added to the tenant rates
    /// and histories: tenant → (second, messages).
    other_nodes: RwLock<OtherNodesCounts>,
}

impl std::fmt::Debug for LiveStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStats")
            .field("started_at_ms", &self.started_at_ms)
            .field("memory", &self.memory())
            .finish_non_exhaustive()
    }
}

/// One window's buckets for a series, plus the sum over the same number of
/// complete buckets (for the rate).
struct WindowRead {
    counts: Vec<u64>,
    bytes: Vec<u64>,
    complete: u64,
}

/// Bucket geometry of a throughput window.
struct Geometry {
    res: Resolution,
    bucket_ms: i64,
    /// Buckets in the window.
    n: usize,
    /// Absolute index of the current bucket.
    current: i64,
}

impl Geometry {
    fn new(window_ms: i64, now_ms: i64) -> Self {
        let (res, bucket_ms, kept) = if window_ms <= SECOND_BUCKETS_MAX_WINDOW_MS {
            (Resolution::Seconds, SECOND_MS, SECONDS_KEPT)
        } else {
            (Resolution::Minutes, MINUTE_MS, MINUTES_KEPT)
        };
        let n = (ceil_div(window_ms, bucket_ms) as usize).clamp(1, kept);
        Self {
            res,
            bucket_ms,
            n,
            current: now_ms.div_euclid(bucket_ms),
        }
    }

    fn first(&self) -> i64 {
        self.current - (self.n as i64 - 1)
    }

    /// Reads the window, and the bucket before it for the complete-bucket sum.
    fn read(&self, series: Option<&CountSeries>) -> WindowRead {
        let mut counts = vec![0; self.n + 1];
        let mut bytes = vec![0; self.n + 1];
        if let Some(s) = series {
            s.read_into(self.res, self.first() - 1, &mut counts, &mut bytes);
        }
        let complete = counts[..self.n].iter().sum();
        counts.remove(0);
        bytes.remove(0);
        WindowRead {
            counts,
            bytes,
            complete,
        }
    }

    fn rate(&self, complete: u64) -> f64 {
        complete as f64 / (self.n as f64 * self.bucket_ms as f64 / 1_000.0)
    }
}

impl LiveStats {
    pub fn new(started_at_ms: i64) -> Self {
        let hist_counts_len = new_histogram().map_or(0, |h| h.distinct_values());
        Self {
            started_at_ms,
            channels: std::array::from_fn(|_| Mutex::new(ChannelState::new())),
            tenants: RwLock::new(HashMap::new()),
            activity: Mutex::new(EpochRing::new()),
            mem: Mem::default(),
            hist_counts_len,
            other_nodes: RwLock::new(HashMap::new()),
        }
    }

    /// One committed message. `ingest_us` = receive → commit in microseconds;
    /// `encrypt_ns` = time spent sealing it; `now_ms` = commit time.
    ///
    /// Allocates only for a tenant's first message, a series' first message
    /// and a ring slot's first use; otherwise a few short locks and adds.
    #[allow(clippy::too_many_arguments)] // the shape the ingest path calls with
    pub fn record(
        &self,
        tenant_id: &str,
        channel: Channel,
        direction: Direction,
        bytes: u64,
        ingest_us: u64,
        encrypt_ns: u64,
        now_ms: i64,
    ) {
        let c = channel_index(channel);
        let d = direction_index(direction);
        lock(&self.channels[c]).record(d, bytes, ingest_us, encrypt_ns, now_ms, &self.mem);

        let k = c * 2 + d;
        {
            let map = read(&self.tenants);
            if let Some(t) = map.get(tenant_id) {
                self.touch(&mut lock(t), k, bytes, now_ms);
                return;
            }
            if map.len() >= MAX_TENANTS {
                return;
            }
        }
        let mut map = write(&self.tenants);
        // Another recorder may have inserted it between the two locks.
        if !map.contains_key(tenant_id) {
            if map.len() >= MAX_TENANTS {
                return;
            }
            self.mem.tenants.fetch_add(1, Ordering::Relaxed);
            self.mem
                .tenant_id_bytes
                .fetch_add(tenant_id.len(), Ordering::Relaxed);
            map.insert(
                Box::from(tenant_id),
                Mutex::new(TenantState {
                    series: Default::default(),
                    last_ms: i64::MIN,
                }),
            );
        }
        if let Some(t) = map.get(tenant_id) {
            self.touch(&mut lock(t), k, bytes, now_ms);
        }
    }

    fn touch(&self, t: &mut TenantState, k: usize, bytes: u64, now_ms: i64) {
        let series = t.series[k].get_or_insert_with(|| {
            self.mem.tenant_series.fetch_add(1, Ordering::Relaxed);
            Box::new(CountSeries::new())
        });
        series.add(now_ms, 1, bytes, &self.mem);
        if now_ms <= t.last_ms {
            return;
        }
        let prev = t.last_ms;
        t.last_ms = now_ms;
        let (prev_s, now_s) = (prev.div_euclid(SECOND_MS), now_ms.div_euclid(SECOND_MS));
        if prev != i64::MIN && prev_s == now_s {
            return;
        }
        // Move this tenant's one count from its previous newest second to this one.
        let mut act = lock(&self.activity);
        let prev_page = (prev != i64::MIN).then_some(prev_s.div_euclid(PAGE_I));
        if let Some(page) = prev_page.and_then(|p| act.get_mut(p)) {
            let b = &mut page.0[prev_s.rem_euclid(PAGE_I) as usize];
            *b = b.saturating_sub(1);
        }
        let pages = AtomicUsize::new(0); // three pages, not worth reporting
        if let Some(b) = act.bucket_mut(now_s, &pages) {
            *b = b.saturating_add(1);
        }
    }

    /// An ingress request refused or failed, counted per channel and error
    /// code. At most 32 distinct codes per channel are kept; more count as
    /// [`OTHER_CODE`].
    pub fn record_error(&self, channel: Channel, code: &str, now_ms: i64) {
        lock(&self.channels[channel_index(channel)]).record_error(code, now_ms, &self.mem);
    }

    /// Series and percentiles for the `window_ms` before `now_ms`, for one
    /// tenant or the whole platform.
    ///
    /// `window_ms` is clamped to 1 s ..= 24 h. Up to 1 h it is served in
    /// 1-second buckets, above in 1-minute buckets. Latency and errors are
    /// platform-wide even with a tenant (they are not kept per tenant).
    pub fn throughput(&self, window_ms: i64, tenant: Option<&str>, now_ms: i64) -> Throughput {
        let window_ms = window_ms.clamp(MIN_WINDOW_MS, MAX_WINDOW_MS);
        let g = Geometry::new(window_ms, now_ms);

        let mut reads: Vec<WindowRead> = Vec::with_capacity(6);
        match tenant {
            None => {
                for ch in &self.channels {
                    let ch = lock(ch);
                    for s in &ch.traffic {
                        reads.push(g.read(Some(s)));
                    }
                }
            }
            Some(id) => {
                let map = read(&self.tenants);
                match map.get(id) {
                    Some(t) => {
                        let t = lock(t);
                        for s in &t.series {
                            reads.push(g.read(s.as_deref()));
                        }
                    }
                    None => {
                        for _ in 0..6 {
                            reads.push(g.read(None));
                        }
                    }
                }
            }
        }

        let mut per_channel = Vec::with_capacity(3);
        let mut all = new_histogram();
        let mut latency_window_ms = 0;
        for (c, channel) in Channel::ALL.into_iter().enumerate() {
            let (errors, hist, encrypt_ns, covers) = {
                let ch = lock(&self.channels[c]);
                let errors = g.read(Some(&ch.errors));
                let (hist, encrypt_ns, covers) = ch.latency(window_ms, now_ms);
                (errors, hist, encrypt_ns, covers)
            };
            latency_window_ms = covers;
            if let (Some(all), Some(h)) = (all.as_mut(), hist.as_ref()) {
                // Same bounds on both sides, so the add cannot fail.
                let _ = all.add(h);
            }
            let sealed = hist.as_ref().map_or(0, Histogram::len);
            let pair = &reads[c * 2..c * 2 + 2];
            let messages = pair.iter().flat_map(|r| r.counts.iter()).sum();
            let bytes = pair.iter().flat_map(|r| r.bytes.iter()).sum();
            let complete: u64 = pair.iter().map(|r| r.complete).sum();
            per_channel.push(ChannelFigures {
                channel: channel.as_str().to_string(),
                messages,
                bytes,
                msgs_per_s: g.rate(complete),
                errors: errors.counts.iter().sum(),
                errors_per_s: g.rate(errors.complete),
                encrypt_ns_per_msg: per_msg(encrypt_ns, sealed),
                ingest_latency_us: hist.as_ref().map(percentiles_of).unwrap_or_default(),
            });
        }

        let series = reads
            .into_iter()
            .enumerate()
            .map(|(k, r)| Series {
                channel: Channel::ALL[k / 2].as_str().to_string(),
                direction: Direction::ALL[k % 2],
                rate_per_s: g.rate(r.complete),
                counts: r.counts,
                bytes: r.bytes,
            })
            .collect();

        Throughput {
            window_ms,
            bucket_ms: g.bucket_ms,
            from_ms: g.first() * g.bucket_ms,
            tenant: tenant.map(str::to_string),
            series,
            ingest_latency_us: all.as_ref().map(percentiles_of).unwrap_or_default(),
            latency_window_ms,
            per_channel,
        }
    }

    /// Platform totals: since start, and over the last 60 s.
    pub fn overview(&self, now_ms: i64) -> OverviewFigures {
        let t = self.throughput(60 * SECOND_MS, None, now_ms);
        let now_s = now_ms.div_euclid(SECOND_MS);
        let rate_first = now_s - RATE_WINDOW_S as i64;
        let mut messages_total = 0u64;
        let mut bytes_total = 0u64;
        let mut errors_total = 0u64;
        let mut recent = 0u64;
        for ch in &self.channels {
            let ch = lock(ch);
            messages_total = messages_total.saturating_add(ch.messages_total.iter().sum());
            bytes_total = bytes_total.saturating_add(ch.bytes_total.iter().sum());
            errors_total = errors_total.saturating_add(ch.errors_total);
            for s in &ch.traffic {
                recent += s.sum_seconds(rate_first, RATE_WINDOW_S);
            }
        }
        OverviewFigures {
            started_at: rfc3339(self.started_at_ms),
            uptime_s: (now_ms - self.started_at_ms).max(0) / SECOND_MS,
            messages_total,
            bytes_total,
            messages_last_60s: t.per_channel.iter().map(|c| c.messages).sum(),
            msgs_per_s: recent as f64 / RATE_WINDOW_S as f64,
            errors_total,
            errors_last_60s: t.per_channel.iter().map(|c| c.errors).sum(),
            active_tenants_last_60s: self.active_tenants_with_other_nodes(now_ms),
            tenants_tracked: self.mem.tenants.load(Ordering::Relaxed) as u64,
            ingest_latency_us: t.ingest_latency_us,
            per_channel: t.per_channel,
            nodes: 1,
            error_codes: self.error_codes(),
        }
    }

    /// When these figures started counting.
    pub fn started_at_ms(&self) -> Millis {
        self.started_at_ms
    }

    /// This node's totals since start (for the other nodes on one database).
    pub fn node_totals(&self) -> NodeTotals {
        let mut t = NodeTotals {
            error_codes: self.error_codes(),
            ..NodeTotals::default()
        };
        for ch in &self.channels {
            let ch = lock(ch);
            t.messages_total = t
                .messages_total
                .saturating_add(ch.messages_total.iter().sum());
            t.bytes_total = t.bytes_total.saturating_add(ch.bytes_total.iter().sum());
            t.errors_total = t.errors_total.saturating_add(ch.errors_total);
        }
        t
    }

    /// Errors since start per channel and code, channel then code order.
    fn error_codes(&self) -> Vec<ErrorCodeCount> {
        let mut out = Vec::new();
        for (c, ch) in self.channels.iter().enumerate() {
            let mut codes = lock(ch).error_codes.clone();
            codes.sort();
            out.extend(codes.into_iter().map(|(code, count)| ErrorCodeCount {
                channel: Channel::ALL[c].as_str().to_string(),
                code: code.into(),
                count,
            }));
        }
        out
    }

    /// This node's latency per channel (in [`Channel::ALL`] order) over the
    /// slots serving `window_ms` at `now_ms`, as [`LiveStats::throughput`]
    /// reads them, to merge other nodes' slots into; `None` if a histogram
    /// cannot be made.
    pub fn latency(&self, window_ms: i64, now_ms: i64) -> Option<Vec<ChannelLatency>> {
        self.channels
            .iter()
            .map(|ch| {
                let (hist, encrypt_ns, _) = lock(ch).latency(window_ms, now_ms);
                hist.map(|histogram| ChannelLatency {
                    histogram,
                    encrypt_ns,
                })
            })
            .collect()
    }

    /// The current and the previous slot of every latency ring, per
    /// channel, those holding messages: what this node publishes each
    /// second for the other nodes (the previous slot again, for messages
    /// committed as it closed).
    pub fn recent_latency_slots(&self, now_ms: i64) -> Vec<LatencySlotFigures> {
        let mut out = Vec::new();
        for (c, ch) in self.channels.iter().enumerate() {
            let ch = lock(ch);
            for ring in LatRing::ALL {
                let (width, _) = ring.geometry();
                let last = now_ms.div_euclid(width);
                for epoch in [last - 1, last] {
                    let Some(slot) = ch.latency_slot(ring, epoch) else {
                        continue;
                    };
                    if slot.hist.is_empty() {
                        continue;
                    }
                    out.push(LatencySlotFigures {
                        ring: ring.index(),
                        slot: epoch,
                        channel: c as i16,
                        latency: ChannelLatency {
                            histogram: slot.hist.clone(),
                            encrypt_ns: slot.encrypt_ns,
                        },
                    });
                }
            }
        }
        out
    }

    /// Distinct tenants active in the last 60 s here or, per the other
    /// nodes' counts ([`LiveStats::set_other_nodes`]), on another node: a
    /// tenant active on several counts once.
    fn active_tenants_with_other_nodes(&self, now_ms: i64) -> u64 {
        let mut n = self.active_tenants(now_ms);
        let others = read(&self.other_nodes);
        if others.is_empty() {
            return n;
        }
        let now_s = now_ms.div_euclid(SECOND_MS);
        let window = now_s - (ACTIVE_WINDOW_S as i64 - 1)..=now_s;
        let map = read(&self.tenants);
        for (id, seconds) in others.iter() {
            let elsewhere = seconds.iter().any(|(s, c)| *c > 0 && window.contains(s));
            let here = map.get(id).is_some_and(|t| {
                let last = lock(t).last_ms;
                last != i64::MIN && window.contains(&last.div_euclid(SECOND_MS))
            });
            if elsewhere && !here {
                n += 1;
            }
        }
        n
    }

    /// Distinct tenants with a message in the last 60 s (current second included).
    fn active_tenants(&self, now_ms: i64) -> u64 {
        let now_s = now_ms.div_euclid(SECOND_MS);
        let mut n = 0u64;
        lock(&self.activity).visit(
            now_s - (ACTIVE_WINDOW_S as i64 - 1),
            ACTIVE_WINDOW_S,
            |_, b| n += u64::from(*b),
        );
        n
    }

    /// Messages per second over the last 10 complete seconds for one tenant,
    /// all channels and directions; 0 for a tenant never seen.
    pub fn tenant_rate(&self, tenant_id: &str, now_ms: i64) -> f64 {
        self.tenant_figures(tenant_id, 0, now_ms).msgs_per_s
    }

    /// This node's counts per tenant and series for the `n` seconds from
    /// `first_s`: (second, tenant, series `channel * 2 + direction`,
    /// messages, bytes), the non-zero ones only (for the other nodes).
    pub fn tenant_seconds(&self, first_s: i64, n: usize) -> Vec<(i64, String, i16, u64, u64)> {
        let mut out = Vec::new();
        let map = read(&self.tenants);
        for (id, t) in map.iter() {
            let t = lock(t);
            for (k, s) in t.series.iter().enumerate() {
                let Some(s) = s else { continue };
                s.seconds.visit(first_s, n, |i, b| {
                    if b.count() > 0 {
                        out.push((
                            first_s + i as i64,
                            id.to_string(),
                            k as i16,
                            b.count(),
                            b.bytes(),
                        ));
                    }
                });
            }
        }
        out
    }

    /// This node's refused or failed ingress requests per channel for the
    /// `n` seconds from `first_s`: (second, channel index, errors), the
    /// non-zero ones only (for the other nodes).
    pub fn error_seconds(&self, first_s: i64, n: usize) -> Vec<(i64, usize, u64)> {
        let mut out = Vec::new();
        for (c, ch) in self.channels.iter().enumerate() {
            lock(ch).errors.seconds.visit(first_s, n, |i, b| {
                if b.count() > 0 {
                    out.push((first_s + i as i64, c, b.count()));
                }
            });
        }
        out
    }

    /// Replaces the other nodes' recent per-tenant counts (tenant →
    /// (second, messages)).
    pub fn set_other_nodes(&self, counts: OtherNodesCounts) {
        *write(&self.other_nodes) = counts;
    }

    /// Every tenant's `msgs_per_s` that is not zero, in one pass over the
    /// tenants with live figures (a tenants listing sorted by rate would
    /// otherwise look each of 10,000 tenants up).
    pub fn tenant_rates(&self, now_ms: i64) -> HashMap<Box<str>, f64> {
        let first = now_ms.div_euclid(SECOND_MS) - RATE_WINDOW_S as i64;
        let map = read(&self.tenants);
        let mut sums = map
            .iter()
            .filter_map(|(id, t)| {
                let t = lock(t);
                let mut sum = 0u64;
                for s in t.series.iter().flatten() {
                    s.seconds
                        .visit(first, RATE_WINDOW_S, |_, b| sum += b.count());
                }
                (sum > 0).then(|| (id.clone(), sum))
            })
            .collect::<HashMap<Box<str>, u64>>();
        drop(map);
        for (id, seconds) in read(&self.other_nodes).iter() {
            let other: u64 = seconds
                .iter()
                .filter(|(s, _)| (first..first + RATE_WINDOW_S as i64).contains(s))
                .map(|(_, c)| c)
                .sum();
            if other > 0 {
                *sums.entry(id.clone()).or_default() += other;
            }
        }
        sums.into_iter()
            .map(|(id, sum)| (id, sum as f64 / RATE_WINDOW_S as f64))
            .collect()
    }

    /// A tenant's last `n` complete 1-second counts (at most 3,600), oldest first.
    pub fn tenant_sparkline(&self, tenant_id: &str, n: usize, now_ms: i64) -> Vec<u64> {
        self.tenant_figures(tenant_id, n, now_ms).sparkline
    }

    /// Rate, sparkline of `n` seconds and last message time in one lookup:
    /// O(n) for a tenant with traffic, O(1) for one without an entry.
    pub fn tenant_figures(&self, tenant_id: &str, n: usize, now_ms: i64) -> TenantFigures {
        let n = n.min(SECONDS_KEPT);
        let len = n.max(RATE_WINDOW_S);
        let first = now_ms.div_euclid(SECOND_MS) - len as i64;
        let mut counts = vec![0u64; len];
        let mut last_message_ms = None;
        {
            let map = read(&self.tenants);
            if let Some(t) = map.get(tenant_id) {
                let t = lock(t);
                for s in t.series.iter().flatten() {
                    s.seconds.visit(first, len, |i, b| counts[i] += b.count());
                }
                last_message_ms = (t.last_ms != i64::MIN).then_some(t.last_ms);
            }
        }
        if let Some(seconds) = read(&self.other_nodes).get(tenant_id) {
            for (s, c) in seconds {
                if let Some(slot) = usize::try_from(s - first)
                    .ok()
                    .and_then(|i| counts.get_mut(i))
                {
                    *slot += c;
                }
            }
        }
        let recent: u64 = counts[len - RATE_WINDOW_S..].iter().sum();
        TenantFigures {
            msgs_per_s: recent as f64 / RATE_WINDOW_S as f64,
            sparkline: counts.split_off(len - n),
            last_message_ms,
        }
    }

    /// Frees ring pages no window can show any more and forgets tenants with
    /// no message in the last 24 h. Recording never frees, so call this from
    /// a background task, every minute or so. It walks the tenants under the
    /// map's read lock (a new tenant's first message waits for that pass) and
    /// takes the write lock only to remove tenants.
    ///
    /// Returns how many tenants were forgotten.
    pub fn prune(&self, now_ms: i64) -> usize {
        for ch in &self.channels {
            lock(ch).prune(now_ms, &self.mem);
        }
        let mut empty = Vec::new();
        {
            let map = read(&self.tenants);
            for (id, t) in map.iter() {
                let mut t = lock(t);
                let mut all_empty = true;
                for cell in &mut t.series {
                    if let Some(s) = cell {
                        if s.prune(now_ms, &self.mem) {
                            *cell = None;
                            self.mem.tenant_series.fetch_sub(1, Ordering::Relaxed);
                        } else {
                            all_empty = false;
                        }
                    }
                }
                if all_empty {
                    empty.push(id.clone());
                }
            }
        }
        if empty.is_empty() {
            return 0;
        }
        let mut map = write(&self.tenants);
        let mut forgotten = 0;
        for id in empty {
            // A message may have arrived since the read pass.
            let still_empty = map
                .get(&id)
                .is_some_and(|t| lock(t).series.iter().all(Option::is_none));
            if still_empty {
                map.remove(&id);
                forgotten += 1;
                self.mem.tenants.fetch_sub(1, Ordering::Relaxed);
                self.mem
                    .tenant_id_bytes
                    .fetch_sub(id.len(), Ordering::Relaxed);
            }
        }
        forgotten
    }

    /// What the live figures hold; O(1).
    pub fn memory(&self) -> MemoryFigures {
        use std::mem::size_of;
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let tenants = load(&self.mem.tenants);
        let series = load(&self.mem.tenant_series);
        let second_pages = load(&self.mem.second_pages);
        let minute_pages = load(&self.mem.minute_pages);
        let histograms = load(&self.mem.histograms);
        // A hash map entry: key and value plus a control byte, at a load
        // factor of about 7/8; the id's own bytes; allocator slack ignored.
        let entry = size_of::<(Box<str>, Mutex<TenantState>)>() + 1;
        let approx = tenants * entry * 8 / 7
            + load(&self.mem.tenant_id_bytes)
            + series * size_of::<CountSeries>()
            + second_pages * size_of::<Slot<Page<SecBucket>>>()
            + minute_pages * size_of::<Slot<Page<MinBucket>>>()
            + histograms * (size_of::<Slot<LatSlot>>() + self.hist_counts_len * size_of::<u32>())
            + size_of::<Self>();
        MemoryFigures {
            tenants: tenants as u64,
            tenant_series: series as u64,
            second_pages: second_pages as u64,
            minute_pages: minute_pages as u64,
            histograms: histograms as u64,
            approx_bytes: approx as u64,
        }
    }

    /// Prometheus text exposition (format 0.0.4) of the live figures, then
    /// the caller's `extra` samples grouped by name with HELP and TYPE once
    /// per family. Extras whose name a built-in family uses are left out.
    ///
    /// Built-in: `c24_messages_total{channel,direction}`,
    /// `c24_message_bytes_total{channel,direction}`,
    /// `c24_ingest_errors_total{channel,code}`,
    /// `c24_ingest_latency_seconds{channel}` (histogram, since start),
    /// `c24_encrypt_seconds_total{channel}`, `c24_active_tenants` (last 60 s),
    /// `c24_uptime_seconds`, `c24_live_stats_memory_bytes`.
    pub fn render_prometheus(&self, extra: &[PromSample], now_ms: i64) -> String {
        struct Snap {
            messages: [u64; 2],
            bytes: [u64; 2],
            codes: Vec<(Box<str>, u64)>,
            buckets: [u64; PROM_LE.len()],
            sum_us: u64,
            count: u64,
            encrypt_ns: u64,
        }
        let snaps: Vec<Snap> = self
            .channels
            .iter()
            .map(|ch| {
                let ch = lock(ch);
                Snap {
                    messages: ch.messages_total,
                    bytes: ch.bytes_total,
                    codes: ch.error_codes.clone(),
                    buckets: ch.prom_buckets,
                    sum_us: ch.latency_sum_us,
                    count: ch.latency_count,
                    encrypt_ns: ch.encrypt_ns_total,
                }
            })
            .collect();
        let names = Channel::ALL.map(Channel::as_str);
        let mut out = String::with_capacity(4_096 + extra.len() * 128);

        family(
            &mut out,
            M_MESSAGES,
            "counter",
            "Messages committed, by channel and direction.",
        );
        for (c, s) in snaps.iter().enumerate() {
            for d in Direction::ALL {
                let labels = [("channel", names[c]), ("direction", d.as_str())];
                sample(
                    &mut out,
                    M_MESSAGES,
                    &labels,
                    &s.messages[direction_index(d)].to_string(),
                );
            }
        }
        family(
            &mut out,
            M_BYTES,
            "counter",
            "Bytes of committed messages, by channel and direction.",
        );
        for (c, s) in snaps.iter().enumerate() {
            for d in Direction::ALL {
                let labels = [("channel", names[c]), ("direction", d.as_str())];
                sample(
                    &mut out,
                    M_BYTES,
                    &labels,
                    &s.bytes[direction_index(d)].to_string(),
                );
            }
        }
        family(
            &mut out,
            M_ERRORS,
            "counter",
            "Ingress requests refused or failed, by channel and error code.",
        );
        for (c, s) in snaps.iter().enumerate() {
            for (code, n) in &s.codes {
                let labels = [("channel", names[c]), ("code", &**code)];
                sample(&mut out, M_ERRORS, &labels, &n.to_string());
            }
        }
        family(
            &mut out,
            M_LATENCY,
            "histogram",
            "Server-side ingest latency, receive to commit, in seconds.",
        );
        for (c, s) in snaps.iter().enumerate() {
            let mut cumulative = 0u64;
            for (le, n) in PROM_LE.iter().zip(s.buckets) {
                cumulative += n;
                let labels = [("channel", names[c]), ("le", *le)];
                sample(
                    &mut out,
                    "c24_ingest_latency_seconds_bucket",
                    &labels,
                    &cumulative.to_string(),
                );
            }
            let labels = [("channel", names[c])];
            let sum = prom_value(s.sum_us as f64 / 1e6);
            sample(&mut out, "c24_ingest_latency_seconds_sum", &labels, &sum);
            sample(
                &mut out,
                "c24_ingest_latency_seconds_count",
                &labels,
                &s.count.to_string(),
            );
        }
        family(
            &mut out,
            M_ENCRYPT,
            "counter",
            "Time spent sealing messages, in seconds.",
        );
        for (c, s) in snaps.iter().enumerate() {
            let labels = [("channel", names[c])];
            sample(
                &mut out,
                M_ENCRYPT,
                &labels,
                &prom_value(s.encrypt_ns as f64 / 1e9),
            );
        }
        family(
            &mut out,
            M_ACTIVE,
            "gauge",
            "Tenants with a committed message in the last 60 s.",
        );
        sample(
            &mut out,
            M_ACTIVE,
            &[],
            &self.active_tenants(now_ms).to_string(),
        );
        family(
            &mut out,
            M_UPTIME,
            "gauge",
            "Seconds since the live figures started counting.",
        );
        let uptime = (now_ms - self.started_at_ms).max(0) as f64 / 1e3;
        sample(&mut out, M_UPTIME, &[], &prom_value(uptime));
        family(
            &mut out,
            M_MEMORY,
            "gauge",
            "Approximate heap held by the live figures, in bytes.",
        );
        sample(
            &mut out,
            M_MEMORY,
            &[],
            &self.memory().approx_bytes.to_string(),
        );

        render_extra(&mut out, extra);
        out
    }
}

fn per_msg(total: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { total as f64 / n as f64 }
}

/// Sets a window's latency figures, per channel (`latency` in
/// [`Channel::ALL`] order, as `per_channel` is) and across channels, from
/// the per-channel histograms, as [`LiveStats::throughput`] computes them.
pub fn set_latency(
    per_channel: &mut [ChannelFigures],
    overall: &mut Percentiles,
    latency: &[ChannelLatency],
) {
    let mut all = new_histogram();
    for (ch, l) in per_channel.iter_mut().zip(latency) {
        ch.ingest_latency_us = percentiles_of(&l.histogram);
        ch.encrypt_ns_per_msg = per_msg(l.encrypt_ns, l.histogram.len());
        if let Some(all) = all.as_mut() {
            // Same bounds on both sides, so the add cannot fail.
            let _ = all.add(&l.histogram);
        }
    }
    if let Some(all) = all {
        *overall = percentiles_of(&all);
    }
}

// ---------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(&escape_help(help));
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_label_value(v));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn render_extra(out: &mut String, extra: &[PromSample]) {
    // Families in order of first appearance; a handful, so a linear search.
    let mut families: Vec<(Cow<'_, str>, Vec<&PromSample>)> = Vec::new();
    for s in extra {
        let name = sanitize_name(&s.name, true);
        if RESERVED_NAMES.contains(&&*name) {
            continue;
        }
        match families.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(s),
            None => families.push((name, vec![s])),
        }
    }
    for (name, members) in &families {
        let Some(head) = members.first() else {
            continue;
        };
        family(out, name, head.kind.as_str(), &head.help);
        for s in members {
            let labels: Vec<(Cow<'_, str>, &str)> = s
                .labels
                .iter()
                .map(|(k, v)| (sanitize_name(k, false), v.as_str()))
                .collect();
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, *v)).collect();
            sample(out, name, &labels, &prom_value(s.value));
        }
    }
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label
/// name; anything else becomes `_`.
fn sanitize_name(s: &str, allow_colon: bool) -> Cow<'_, str> {
    let ok = |i: usize, c: char| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (allow_colon && c == ':')
            || (i > 0 && c.is_ascii_digit())
    };
    if !s.is_empty() && s.chars().enumerate().all(|(i, c)| ok(i, c)) {
        return Cow::Borrowed(s);
    }
    if s.is_empty() {
        return Cow::Borrowed("_");
    }
    Cow::Owned(
        s.chars()
            .enumerate()
            .map(|(i, c)| if ok(i, c) { c } else { '_' })
            .collect(),
    )
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    Cow::Owned(s)
}

/// HELP text escapes backslash and line feed only.
fn escape_help(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.replace('\\', "\\\\").replace('\n', "\\n"))
}

/// A sample value as Prometheus reads it (`NaN`, `+Inf`, `-Inf` spelled its way).
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// On an hour boundary, so pages and slots start at offset 0.
    const T0: i64 = 1_699_999_200_000;
    const W: Channel = Channel::Webchat;
    const WA: Channel = Channel::Whatsapp;
    const E: Channel = Channel::Email;
    const IN: Direction = Direction::Inbound;
    const OUT: Direction = Direction::Outbound;

    fn rec(s: &LiveStats, tenant: &str, ch: Channel, dir: Direction, now_ms: i64) {
        s.record(tenant, ch, dir, 100, 1_000, 2_000, now_ms);
    }

    fn series(t: &Throughput, ch: Channel, d: Direction) -> &Series {
        t.series
            .iter()
            .find(|s| s.channel == ch.as_str() && s.direction == d)
            .expect("all six series are present")
    }

    fn chan(per_channel: &[ChannelFigures], ch: Channel) -> &ChannelFigures {
        per_channel
            .iter()
            .find(|c| c.channel == ch.as_str())
            .expect("all three channels are present")
    }

    fn total(t: &Throughput) -> u64 {
        t.series.iter().flat_map(|s| s.counts.iter()).sum()
    }

    #[test]
    fn tenant_figures_add_the_other_nodes_counts() {
        let s = LiveStats::new(T0);
        // This node: two messages of "a" at second 5; one of "b" at second 7.
        rec(&s, "a", W, IN, T0 + 5_100);
        rec(&s, "a", W, OUT, T0 + 5_200);
        rec(&s, "b", WA, IN, T0 + 7_000);
        let mine = s.tenant_seconds(T0 / 1000, 10);
        let mut mine: Vec<_> = mine
            .iter()
            .map(|(sec, t, k, m, _)| (*sec - T0 / 1000, t.as_str(), *k, *m))
            .collect();
        mine.sort();
        assert_eq!(mine, [(5, "a", 0, 1), (5, "a", 1, 1), (7, "b", 2, 1)]);
        // Other nodes: three of "a" at second 6, four of "c" (unknown here) at 8.
        let mut others = OtherNodesCounts::default();
        others.insert("a".into(), vec![(T0 / 1000 + 6, 3)]);
        others.insert("c".into(), vec![(T0 / 1000 + 8, 4)]);
        s.set_other_nodes(others);
        let now = T0 + 10_500;
        let a = s.tenant_figures("a", 10, now);
        assert_eq!(a.sparkline, [0, 0, 0, 0, 0, 2, 3, 0, 0, 0]);
        assert!((a.msgs_per_s - 0.5).abs() < 1e-9);
        assert_eq!(s.tenant_figures("c", 10, now).sparkline[8], 4);
        let rates = s.tenant_rates(now);
        assert!((rates["a"] - 0.5).abs() < 1e-9);
        assert!((rates["b"] - 0.1).abs() < 1e-9);
        assert!((rates["c"] - 0.4).abs() < 1e-9);
    }

    #[test]
    fn counts_land_in_their_buckets() {
        let s = LiveStats::new(T0);
        for _ in 0..3 {
            s.record("a", W, IN, 10, 500, 100, T0 + 5_123);
        }
        for _ in 0..2 {
            s.record("a", W, IN, 20, 500, 100, T0 + 7_999);
        }
        s.record("a", W, IN, 30, 500, 100, T0 + 9_000);
        s.record("a", E, OUT, 40, 500, 100, T0 + 9_001);

        let t = s.throughput(10_000, None, T0 + 9_500);
        assert_eq!((t.window_ms, t.bucket_ms, t.from_ms), (10_000, 1_000, T0));
        assert_eq!(t.series.len(), 6);
        assert_eq!(t.per_channel.len(), 3);
        let wi = series(&t, W, IN);
        assert_eq!(wi.counts, vec![0, 0, 0, 0, 0, 3, 0, 2, 0, 1]);
        assert_eq!(wi.bytes, vec![0, 0, 0, 0, 0, 30, 0, 40, 0, 30]);
        // Ten complete seconds before the current one hold 5 messages.
        assert!((wi.rate_per_s - 0.5).abs() < 1e-9);
        assert_eq!(series(&t, E, OUT).counts[9], 1);
        assert!(series(&t, WA, IN).counts.iter().all(|c| *c == 0));
        assert_eq!(chan(&t.per_channel, W).messages, 6);
        assert_eq!(chan(&t.per_channel, W).bytes, 100);
        assert_eq!(
            t,
            with_tenant(s.throughput(10_000, Some("a"), T0 + 9_500), None)
        );

        // A late sample lands in its own bucket, not the current one.
        s.record("a", W, IN, 1, 1, 1, T0 + 2_000);
        let t = s.throughput(10_000, Some("a"), T0 + 9_500);
        assert_eq!(series(&t, W, IN).counts, vec![0, 0, 1, 0, 0, 3, 0, 2, 0, 1]);

        // Shorter than a second is one bucket.
        let t = s.throughput(1, None, T0 + 9_500);
        assert_eq!((t.window_ms, series(&t, W, IN).counts.len()), (1_000, 1));
    }

    fn with_tenant(mut t: Throughput, tenant: Option<&str>) -> Throughput {
        t.tenant = tenant.map(str::to_string);
        t
    }

    #[test]
    fn idle_gaps_read_as_zeros() {
        let s = LiveStats::new(T0);
        for _ in 0..5 {
            rec(&s, "a", W, IN, T0 + 1_000);
        }
        // Within the same page, the seconds around it are zero.
        let t = s.throughput(60_000, Some("a"), T0 + 50_500);
        let mut want = vec![0; 60];
        // The window is seconds -9 ..= 50 from T0.
        want[9 + 1] = 5;
        assert_eq!(series(&t, W, IN).counts, want);

        // Ten minutes later the minute shows nothing stale.
        let later = T0 + 600_500;
        let t = s.throughput(60_000, Some("a"), later);
        assert_eq!(total(&t), 0);
        assert!(t.per_channel.iter().all(|c| c.messages == 0));
        assert_eq!(s.tenant_sparkline("a", 60, later), vec![0; 60]);
        assert_eq!(s.tenant_rate("a", later), 0.0);
        let t = s.throughput(60_000, None, later);
        assert_eq!(total(&t), 0);
        // A 1 h window still shows them, in their place.
        let t = s.throughput(3_600_000, Some("a"), later);
        assert_eq!(series(&t, W, IN).counts[3_599 - 599], 5);
        assert_eq!(total(&t), 5);

        // 61 minutes on, the ring reuses that page: the stale bucket must
        // read zero, not 5, once the page holds the new epoch.
        rec(&s, "a", W, IN, T0 + 3_690_000);
        let t = s.throughput(3_600_000, Some("a"), T0 + 3_720_500);
        let counts = &series(&t, W, IN).counts;
        assert_eq!(counts[3_661 - 121], 0);
        assert_eq!(counts[3_690 - 121], 1);
        assert_eq!(total(&t), 1);
        assert_eq!(
            s.tenant_sparkline("a", 5, T0 + 3_691_000),
            vec![0, 0, 0, 0, 1]
        );
        // The minute buckets keep both.
        let t = s.throughput(2 * 3_600_000, Some("a"), T0 + 3_720_500);
        assert_eq!(total(&t), 6);
    }

    #[test]
    fn ring_wraps_after_an_hour_without_allocating() {
        let s = LiveStats::new(T0);
        let mut after_wrap = None;
        for i in 0..7_200 {
            s.record("a", W, IN, 1, 100, 10, T0 + i * 1_000);
            if i == 3_720 {
                after_wrap = Some(s.memory());
            }
        }
        let m = s.memory();
        // Tenant and platform: 61 second pages each, then reused.
        assert_eq!(m.second_pages, 2 * 61);
        assert_eq!(after_wrap.map(|m| m.second_pages), Some(2 * 61));
        assert_eq!(m.minute_pages, 2 * 2);
        assert_eq!(m.histograms, 31 + 61 + 2);

        let end = T0 + 7_199_500;
        let t = s.throughput(3_600_000, Some("a"), end);
        let wi = series(&t, W, IN);
        assert_eq!(wi.counts.len(), 3_600);
        assert!(wi.counts.iter().all(|c| *c == 1));
        assert!((wi.rate_per_s - 1.0).abs() < 1e-9);
        assert_eq!(s.tenant_sparkline("a", 3_600, end), vec![1; 3_600]);
        assert!((s.tenant_rate("a", end) - 1.0).abs() < 1e-9);
        // More than is kept is clamped.
        assert_eq!(s.tenant_sparkline("a", 10_000, end).len(), 3_600);
    }

    #[test]
    fn minute_buckets_for_a_day() {
        let s = LiveStats::new(T0);
        let late = T0 + 23 * 3_600_000 + 59 * 60_000;
        for (n, at) in [(2, T0), (3, T0 + 3_600_000), (4, late)] {
            for _ in 0..n {
                rec(&s, "a", WA, OUT, at);
            }
        }
        let now = late + 30_000;
        let t = s.throughput(86_400_000, None, now);
        assert_eq!((t.bucket_ms, t.from_ms), (60_000, T0));
        let c = &series(&t, WA, OUT).counts;
        assert_eq!(c.len(), 1_440);
        assert_eq!((c[0], c[60], c[1_439]), (2, 3, 4));
        assert_eq!(total(&t), 9);
        assert_eq!(t.ingest_latency_us.count, 9);

        let t = s.throughput(2 * 3_600_000, None, now);
        assert_eq!(
            (t.bucket_ms, series(&t, WA, OUT).counts.len()),
            (60_000, 120)
        );
        // A week is clamped to a day.
        let t = s.throughput(7 * 86_400_000, None, now);
        assert_eq!((t.window_ms, total(&t)), (86_400_000, 9));
        // A day on, the first minute has left the window.
        let t = s.throughput(86_400_000, None, T0 + 86_400_000 + 30_000);
        assert_eq!(total(&t), 7);
        // 25 h on, its page is reused: only the last two records remain.
        rec(&s, "a", WA, OUT, T0 + 25 * 3_600_000);
        let t = s.throughput(86_400_000, Some("a"), T0 + 25 * 3_600_000 + 30_000);
        assert_eq!(total(&t), 5);
    }

    #[test]
    fn tenant_filter() {
        let s = LiveStats::new(T0);
        for _ in 0..3 {
            rec(&s, "a", W, IN, T0 + 10_000);
        }
        for _ in 0..2 {
            rec(&s, "b", E, OUT, T0 + 20_000);
        }
        let now = T0 + 30_000;
        let a = s.throughput(60_000, Some("a"), now);
        assert_eq!(a.tenant.as_deref(), Some("a"));
        assert_eq!(series(&a, W, IN).counts.iter().sum::<u64>(), 3);
        assert_eq!(series(&a, E, OUT).counts.iter().sum::<u64>(), 0);
        assert_eq!(chan(&a.per_channel, W).messages, 3);
        let b = s.throughput(60_000, Some("b"), now);
        assert_eq!(total(&b), 2);
        assert_eq!(series(&b, E, OUT).counts.iter().sum::<u64>(), 2);
        let all = s.throughput(60_000, None, now);
        assert_eq!((all.tenant.as_deref(), total(&all)), (None, 5));

        let unknown = s.throughput(60_000, Some("zzz"), now);
        assert_eq!(unknown.tenant.as_deref(), Some("zzz"));
        assert_eq!(total(&unknown), 0);
        assert_eq!(s.memory().tenants, 2);

        let f = s.tenant_figures("b", 30, now);
        assert_eq!(f.last_message_ms, Some(T0 + 20_000));
        assert_eq!(f.sparkline.len(), 30);
        assert_eq!(f.sparkline[30 - 10], 2);
        assert_eq!(
            s.tenant_figures("zzz", 3, now),
            TenantFigures {
                msgs_per_s: 0.0,
                sparkline: vec![0; 3],
                last_message_ms: None,
            }
        );
        // Rate: the last 10 complete seconds.
        assert!((s.tenant_rate("a", T0 + 11_000) - 0.3).abs() < 1e-9);
        assert_eq!(s.tenant_rate("a", T0 + 10_999), 0.0);
    }

    #[test]
    fn percentiles_are_roughly_right() {
        let s = LiveStats::new(T0);
        for us in 1..=1_000 {
            let encrypt = if us % 2 == 0 { 2_000 } else { 4_000 };
            s.record("a", W, IN, 1, us, encrypt, T0 + 500);
        }
        let t = s.throughput(60_000, None, T0 + 900);
        let p = &t.ingest_latency_us;
        assert_eq!(p.count, 1_000);
        assert!((495..=505).contains(&p.p50), "{p:?}");
        assert!((891..=909).contains(&p.p90), "{p:?}");
        assert!((980..=1_000).contains(&p.p99), "{p:?}");
        assert!((990..=1_010).contains(&p.p999), "{p:?}");
        assert!((1_000..=1_010).contains(&p.max), "{p:?}");
        assert!((p.mean - 500.5).abs() < 5.0, "{p:?}");
        let w = chan(&t.per_channel, W);
        assert_eq!(&w.ingest_latency_us, p);
        assert!((w.encrypt_ns_per_msg - 3_000.0).abs() < 1e-9);
        assert_eq!(
            chan(&t.per_channel, E).ingest_latency_us,
            Percentiles::default()
        );
        assert!((60_000..=70_000).contains(&t.latency_window_ms));

        // Five minutes on, a 60 s window no longer sees them; an hour does.
        let later = T0 + 300_500;
        assert_eq!(s.throughput(60_000, None, later).ingest_latency_us.count, 0);
        let hour = s.throughput(3_600_000, None, later);
        assert_eq!(hour.ingest_latency_us.count, 1_000);
        assert!((3_600_000..=3_660_000).contains(&hour.latency_window_ms));
        let day = s.throughput(86_400_000, None, T0 + 20 * 3_600_000);
        assert_eq!(day.ingest_latency_us.count, 1_000);

        // Beyond the histogram range clamps instead of failing.
        s.record("a", WA, IN, 1, u64::MAX, u64::MAX, T0 + 500);
        let t = s.throughput(60_000, None, T0 + 900);
        let max = chan(&t.per_channel, WA).ingest_latency_us.max;
        assert!((LATENCY_MAX_US..=LATENCY_MAX_US + LATENCY_MAX_US / 50).contains(&max));
    }

    #[test]
    fn overview_totals() {
        let s = LiveStats::new(T0);
        let now = T0 + 100_000;
        for _ in 0..10 {
            rec(&s, "a", W, IN, now - 30_000);
        }
        for _ in 0..5 {
            rec(&s, "b", WA, OUT, now - 5_000);
        }
        for _ in 0..7 {
            rec(&s, "c", E, IN, now - 70_000);
        }
        s.record_error(W, "rate_limited", now - 1_000);
        s.record_error(W, "rate_limited", now - 1_000);
        s.record_error(E, "bad_signature", now - 90_000);

        let o = s.overview(now);
        assert_eq!(o.started_at, rfc3339(T0));
        assert_eq!(o.uptime_s, 100);
        assert_eq!((o.messages_total, o.bytes_total), (22, 2_200));
        assert_eq!(o.messages_last_60s, 15);
        assert!((o.msgs_per_s - 0.5).abs() < 1e-9);
        assert_eq!((o.errors_total, o.errors_last_60s), (3, 2));
        assert_eq!((o.active_tenants_last_60s, o.tenants_tracked), (2, 3));
        assert_eq!(o.ingest_latency_us.count, 15);
        let w = chan(&o.per_channel, W);
        assert_eq!((w.messages, w.errors), (10, 2));
        assert_eq!(chan(&o.per_channel, E).messages, 0);

        // The active count follows each tenant's newest message.
        rec(&s, "a", W, IN, now + 1_000);
        assert_eq!(s.overview(now + 1_500).active_tenants_last_60s, 2);
        assert_eq!(s.overview(now + 56_000).active_tenants_last_60s, 1);
        assert_eq!(s.overview(now + 61_000).active_tenants_last_60s, 0);
        rec(&s, "c", E, IN, now + 61_000);
        rec(&s, "c", E, IN, now + 61_500);
        assert_eq!(s.overview(now + 61_900).active_tenants_last_60s, 1);
    }

    #[test]
    fn untouched_tenants_allocate_nothing_and_active_ones_little() {
        let s = LiveStats::new(T0);
        let empty = s.memory();
        assert_eq!(
            (empty.tenants, empty.tenant_series, empty.second_pages),
            (0, 0, 0)
        );
        assert_eq!((empty.minute_pages, empty.histograms), (0, 0));
        for i in 0..10_000 {
            let id = format!("tenant-{i:05}");
            s.tenant_figures(&id, 60, T0);
            s.throughput(60_000, Some(&id), T0);
        }
        assert_eq!(s.memory(), empty);

        for i in 0..10_000 {
            s.record(&format!("tenant-{i:05}"), W, IN, 100, 500, 1_000, T0 + i);
        }
        let m = s.memory();
        assert_eq!((m.tenants, m.tenant_series), (10_000, 10_000));
        // One page of each kind per tenant, plus the platform's.
        assert_eq!((m.second_pages, m.minute_pages), (10_001, 10_001));
        assert_eq!(m.histograms, 3);
        // About 2.3 KB per tenant that sent one message (a map entry, one
        // series header and two pages); preallocating 6 × (3,600 + 1,440)
        // buckets would be ~480 KB each, 4.8 GB for 10,000 tenants.
        let per_tenant = (m.approx_bytes - empty.approx_bytes) / 10_000;
        assert!(per_tenant < 2_600, "{m:?}");
        assert!(m.approx_bytes < 30_000_000, "{m:?}");

        // Every histogram slot in use: still a few MB.
        for i in 0..(25 * 60) {
            for ch in Channel::ALL {
                rec(&s, "a", ch, IN, T0 + i * 60_000);
            }
        }
        for i in 0..31 {
            for ch in Channel::ALL {
                rec(&s, "a", ch, IN, T0 + 25 * 3_600_000 + i * 10_000);
            }
        }
        let m = s.memory();
        assert_eq!(m.histograms, 3 * (31 + 61 + 25));
        let hist_bytes =
            m.histograms as usize * (std::mem::size_of::<Slot<LatSlot>>() + s.hist_counts_len * 4);
        assert!(hist_bytes < 4_000_000, "{hist_bytes}");
    }

    #[test]
    fn prune_frees_pages_and_forgets_idle_tenants() {
        let s = LiveStats::new(T0);
        rec(&s, "a", W, IN, T0);
        assert_eq!(s.prune(T0 + 2 * 3_600_000), 0);
        let m = s.memory();
        assert_eq!((m.tenants, m.second_pages, m.minute_pages), (1, 0, 2));
        let t = s.throughput(86_400_000, Some("a"), T0 + 2 * 3_600_000);
        assert_eq!(total(&t), 1);

        rec(&s, "b", W, IN, T0 + 23 * 3_600_000);
        assert_eq!(s.prune(T0 + 25 * 3_600_000 + 60_000), 1);
        let m = s.memory();
        assert_eq!((m.tenants, m.tenant_series), (1, 1));
        assert_eq!(s.tenant_figures("a", 1, T0).last_message_ms, None);
        let t = s.throughput(86_400_000, Some("b"), T0 + 25 * 3_600_000 + 60_000);
        assert_eq!(total(&t), 1);

        assert_eq!(s.prune(T0 + 48 * 3_600_000), 1);
        let m = s.memory();
        assert_eq!((m.tenants, m.tenant_series), (0, 0));
        assert_eq!((m.second_pages, m.minute_pages), (0, 0));
        // A forgotten tenant comes back as new.
        rec(&s, "a", W, IN, T0 + 48 * 3_600_000);
        assert_eq!(s.memory().tenants, 1);
        assert_eq!(s.overview(T0 + 48 * 3_600_000).active_tenants_last_60s, 1);
    }

    #[test]
    fn clock_stepping_back_starts_over() {
        let s = LiveStats::new(T0);
        rec(&s, "a", W, IN, T0 + 10 * 3_600_000);
        rec(&s, "a", W, IN, T0);
        let t = s.throughput(60_000, Some("a"), T0 + 500);
        assert_eq!(series(&t, W, IN).counts[59], 1);
        assert_eq!(total(&t), 1);
        let t = s.throughput(60_000, None, T0 + 500);
        assert_eq!(total(&t), 1);
        assert_eq!(t.ingest_latency_us.count, 1);
    }

    #[test]
    fn error_codes_are_capped() {
        let s = LiveStats::new(T0);
        for i in 0..40 {
            s.record_error(W, &format!("code{i}"), T0);
        }
        s.record_error(W, "code3", T0);
        let text = s.render_prometheus(&[], T0);
        let p = parse_exposition(&text);
        let errs: Vec<_> = p.samples.iter().filter(|s| s.name == M_ERRORS).collect();
        assert_eq!(errs.len(), MAX_ERROR_CODES + 1);
        let get = |code: &str| {
            errs.iter()
                .find(|s| s.label("code") == Some(code))
                .map(|s| s.value)
        };
        assert_eq!(get("code3"), Some(2.0));
        assert_eq!(get(OTHER_CODE), Some(8.0));
        assert_eq!(s.overview(T0).errors_last_60s, 41);
    }

    #[test]
    fn prometheus_exposition_is_well_formed() {
        let s = LiveStats::new(T0);
        s.record("a", W, IN, 100, 300, 1_500_000_000, T0 + 1);
        s.record("a", W, OUT, 50, 1_000, 500_000_000, T0 + 2);
        s.record("b", E, IN, 10, 7_000_000, 0, T0 + 3);
        let weird = "we\"ird\\code\nx";
        s.record_error(W, "rate_limited", T0);
        s.record_error(W, weird, T0);
        let extra = vec![
            PromSample::gauge("c24_retention_backlog", "Rows past retention.", 5.0)
                .label("tenant", "t1"),
            PromSample::counter("c24_purge_runs_total", "Purge runs.\nWith a \\ in it.", 3.0),
            PromSample::gauge("c24_retention_backlog", "ignored", 7.0).label("tenant", "t\"2"),
            PromSample::gauge("bad name-1", "sanitised", 1.5).label("bad-label", "v"),
            PromSample::counter(M_MESSAGES, "reserved", 99.0),
            PromSample::gauge("c24_odd", "odd values", f64::NAN),
            PromSample::gauge("c24_odd", "odd values", f64::INFINITY).label("k", "inf"),
        ];
        let text = s.render_prometheus(&extra, T0 + 10_000);
        let p = parse_exposition(&text);

        let value = |name: &str, labels: &[(&str, &str)]| {
            let found: Vec<f64> = p
                .samples
                .iter()
                .filter(|s| s.name == name && s.has(labels))
                .map(|s| s.value)
                .collect();
            assert_eq!(found.len(), 1, "{name} {labels:?} in\n{text}");
            found[0]
        };
        assert_eq!(p.types[M_MESSAGES], "counter");
        assert_eq!(p.samples.iter().filter(|s| s.name == M_MESSAGES).count(), 6);
        let wi = [("channel", "webchat"), ("direction", "inbound")];
        assert_eq!(value(M_MESSAGES, &wi), 1.0);
        assert_eq!(value(M_BYTES, &wi), 100.0);
        let wa = [("channel", "whatsapp"), ("direction", "outbound")];
        assert_eq!(value(M_MESSAGES, &wa), 0.0);
        assert_eq!(value(M_ERRORS, &[("code", weird)]), 1.0);
        assert_eq!(value(M_ERRORS, &[("code", "rate_limited")]), 1.0);
        assert_eq!(value(M_ENCRYPT, &[("channel", "webchat")]), 2.0);
        assert_eq!(value(M_ACTIVE, &[]), 2.0);
        assert_eq!(value(M_UPTIME, &[]), 10.0);
        assert!(value(M_MEMORY, &[]) > 0.0);

        assert_eq!(p.types[M_LATENCY], "histogram");
        for ch in Channel::ALL.map(Channel::as_str) {
            let buckets: Vec<_> = p
                .samples
                .iter()
                .filter(|s| s.name == "c24_ingest_latency_seconds_bucket")
                .filter(|s| s.label("channel") == Some(ch))
                .collect();
            let les: Vec<_> = buckets.iter().filter_map(|s| s.label("le")).collect();
            assert_eq!(les, PROM_LE.to_vec());
            assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
            let count = value("c24_ingest_latency_seconds_count", &[("channel", ch)]);
            assert_eq!(buckets.last().map(|b| b.value), Some(count));
        }
        let bucket = |ch: &str, le: &str| {
            value(
                "c24_ingest_latency_seconds_bucket",
                &[("channel", ch), ("le", le)],
            )
        };
        assert_eq!(bucket("webchat", "0.0005"), 1.0);
        // le is inclusive: exactly 1 ms is in the 0.001 bucket.
        assert_eq!(bucket("webchat", "0.001"), 2.0);
        assert_eq!(bucket("email", "5"), 0.0);
        assert_eq!(bucket("email", "+Inf"), 1.0);
        let sum = value("c24_ingest_latency_seconds_sum", &[("channel", "email")]);
        assert!((sum - 7.0).abs() < 1e-9);

        // Extras: grouped under one HELP/TYPE even when interleaved, first
        // help wins, names sanitised, reserved names left out.
        assert_eq!(p.types["c24_retention_backlog"], "gauge");
        assert_eq!(p.helps["c24_retention_backlog"], "Rows past retention.");
        assert_eq!(value("c24_retention_backlog", &[("tenant", "t\"2")]), 7.0);
        assert_eq!(p.types["c24_purge_runs_total"], "counter");
        assert_eq!(
            p.helps["c24_purge_runs_total"],
            "Purge runs.\\nWith a \\\\ in it."
        );
        assert_eq!(value("bad_name_1", &[("bad_label", "v")]), 1.5);
        assert!(value("c24_odd", &[]).is_nan());
        assert_eq!(value("c24_odd", &[("k", "inf")]), f64::INFINITY);
        assert!(!text.contains(" 99\n"));
        assert!(text.contains("c24_odd NaN\n"));
    }

    /// One parsed sample line.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, k: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        }
        fn has(&self, labels: &[(&str, &str)]) -> bool {
            labels.iter().all(|(k, v)| self.label(k) == Some(v))
                && (!labels.is_empty() || self.labels.is_empty())
        }
    }

    #[derive(Debug, Default)]
    struct Parsed {
        types: HashMap<String, String>,
        helps: HashMap<String, String>,
        samples: Vec<Sample>,
    }

    fn valid_name(s: &str) -> bool {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    }

    /// A strict reader of the text format: every line is HELP, TYPE or
    /// `name{labels} value`; HELP and TYPE once per family and before its
    /// samples; a family's samples contiguous.
    fn parse_exposition(text: &str) -> Parsed {
        assert!(text.ends_with('\n'));
        let mut p = Parsed::default();
        let mut sampled = HashSet::new();
        let mut closed = HashSet::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            assert!(!line.is_empty(), "blank line in\n{text}");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(valid_name(name), "{line}");
                assert!(!sampled.contains(name), "HELP after samples: {line}");
                let again = p.helps.insert(name.to_string(), help.to_string());
                assert!(again.is_none(), "HELP twice: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert!(valid_name(name), "{line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(!sampled.contains(name), "TYPE after samples: {line}");
                let again = p.types.insert(name.to_string(), kind.to_string());
                assert!(again.is_none(), "TYPE twice: {line}");
            } else {
                assert!(!line.starts_with('#'), "{line}");
                let sample = parse_sample(line);
                let family = family_of(&sample.name, &p.types);
                assert!(p.types.contains_key(&family), "no TYPE for {line}");
                assert!(p.helps.contains_key(&family), "no HELP for {line}");
                if current.as_deref() != Some(family.as_str()) {
                    if let Some(c) = current.take() {
                        closed.insert(c);
                    }
                    assert!(!closed.contains(&family), "{family} not contiguous");
                    current = Some(family.clone());
                }
                sampled.insert(family);
                p.samples.push(sample);
            }
        }
        p
    }

    fn family_of(name: &str, types: &HashMap<String, String>) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            let histogram = |base: &&str| types.get(*base).map(String::as_str) == Some("histogram");
            if let Some(base) = name.strip_suffix(suffix).filter(histogram) {
                return base.to_string();
            }
        }
        name.to_string()
    }

    fn parse_sample(line: &str) -> Sample {
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .expect("a sample has a value");
        let name = &line[..end];
        assert!(valid_name(name), "{line}");
        let mut labels = Vec::new();
        let mut rest = &line[end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices();
            let after;
            'pairs: loop {
                let mut key = String::new();
                loop {
                    match chars.next() {
                        Some((_, '=')) => break,
                        Some((i, '}')) if key.is_empty() => {
                            after = Some(i + 1);
                            break 'pairs;
                        }
                        Some((_, c)) => key.push(c),
                        None => panic!("unterminated labels: {line}"),
                    }
                }
                assert!(valid_name(&key) && !key.contains(':'), "{line}");
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            other => panic!("bad escape {other:?}: {line}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) => panic!("raw newline: {line}"),
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated value: {line}"),
                    }
                }
                labels.push((key, value));
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((i, '}')) => {
                        after = Some(i + 1);
                        break;
                    }
                    other => panic!("expected , or }} got {other:?}: {line}"),
                }
            }
            rest = &r[after.expect("labels closed")..];
        }
        let value = rest.strip_prefix(' ').expect("one space before the value");
        assert!(!value.contains(' '), "no timestamps written: {line}");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => {
                assert!(
                    v.chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')),
                    "{line}"
                );
                v.parse().expect("a float value")
            }
        };
        Sample {
            name: name.to_string(),
            labels,
            value,
        }
    }

    #[test]
    fn escaping_and_values() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        assert_eq!(sanitize_name("ok_name:x", true), "ok_name:x");
        assert_eq!(sanitize_name("ok:x", false), "ok_x");
        assert_eq!(sanitize_name("9lives é", true), "_lives__");
        assert_eq!(sanitize_name("", true), "_");
        assert_eq!(prom_value(1.5), "1.5");
        assert_eq!(prom_value(3.0), "3");
        assert_eq!(prom_value(f64::NAN), "NaN");
        assert_eq!(prom_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(prom_value(1e21), "1000000000000000000000");
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("60s"), Some(60_000));
        assert_eq!(parse_window("60"), Some(60_000));
        assert_eq!(parse_window("1500ms"), Some(1_500));
        assert_eq!(parse_window("5m"), Some(300_000));
        assert_eq!(parse_window("24h"), Some(86_400_000));
        assert_eq!(parse_window("1d"), Some(86_400_000));
        for bad in ["", "s", "0s", "-5s", "5x", "1.5h", "99999999999999999999s"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    #[test]
    fn figures_serialise_as_json() {
        let s = LiveStats::new(T0);
        rec(&s, "a", W, OUT, T0);
        let t = s.throughput(5_000, Some("a"), T0 + 100);
        let json = serde_json::to_value(&t).expect("serialises");
        assert_eq!(json["series"][1]["channel"], "webchat");
        assert_eq!(json["series"][1]["direction"], "outbound");
        assert_eq!(json["series"][1]["counts"][4], 1);
        let back: Throughput = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, t);
        let o = s.overview(T0 + 100);
        let back: OverviewFigures =
            serde_json::from_str(&serde_json::to_string(&o).expect("serialises"))
                .expect("round trip");
        assert_eq!(back, o);
        assert_eq!(Direction::parse("inbound"), Some(IN));
        assert_eq!(Direction::parse("sideways"), None);
    }

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LiveStats>();
        let s = std::sync::Arc::new(LiveStats::new(T0));
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        rec(&s, &format!("t{}", i % 7), Channel::ALL[k % 3], IN, T0 + i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("recorder thread");
        }
        let o = s.overview(T0 + 1_500);
        assert_eq!((o.messages_total, o.messages_last_60s), (4_000, 4_000));
        assert_eq!(o.active_tenants_last_60s, 7);
    }
}

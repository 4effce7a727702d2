//! Latency histograms and counters, one [`Recorder`] per worker thread.
//!
//! Every latency lands in an HdrHistogram keyed by scenario × channel ×
//! metric × step, twice: *corrected*, measured from the intended start
//! (wrk2's rule, so a stalled target cannot hide its stall by slowing the
//! sender), and *uncorrected*, from the moment the request actually left.
//! A worker owns its recorder outright (no lock on the send path) and hands
//! it over once per interval; the aggregator merges. Histograms have fixed
//! precision (3 significant digits) and grow only with the value range, so
//! memory stays flat however long the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use crate::scenario::Channel;

/// Significant digits kept by every histogram (values within 0.1 %).
pub const SIGFIG: u8 = 3;

/// What a latency measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// WebSocket handshake (web chat).
    Connect,
    /// `msg.send` → durable `ack` (web chat).
    Ack,
    /// Server receive → commit, from the ack's own timestamps (ms resolution).
    Storage,
    /// The rest of the ack's round trip: uncorrected ack − storage.
    Network,
    /// Webhook or inbound-email POST → answer.
    Http,
    /// Agent API `POST /v1/conversations/{id}/messages` → 201.
    Agent,
    /// Agent reply sent → `msg.new` on the visitor's socket (fan-out).
    Push,
    /// Socket dropped → reconnected and resumed.
    Reconnect,
    /// The TLS part of a `wss://` connect (TCP connected → TLS established),
    /// kept apart so a connection's one-off cost is not read as steady state.
    TlsHandshake,
    /// Generic `ws` step: frame sent → the reply matching its correlation field.
    Reply,
    /// Webhook/email POST sent → the message readable through the agent API
    /// (opt-in per script with `visible = true` on the send).
    Visible,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Connect,
        Metric::Ack,
        Metric::Storage,
        Metric::Network,
        Metric::Http,
        Metric::Agent,
        Metric::Push,
        Metric::Reconnect,
        Metric::TlsHandshake,
        Metric::Reply,
        Metric::Visible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Ack => "ack",
            Metric::Storage => "storage",
            Metric::Network => "network",
            Metric::Http => "http",
            Metric::Agent => "agent",
            Metric::Push => "push",
            Metric::Reconnect => "reconnect",
            Metric::TlsHandshake => "tls_handshake",
            Metric::Reply => "reply",
            Metric::Visible => "visible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a latency sample belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricKey {
    /// Index into the plan's scenarios.
    pub scenario: u16,
    pub channel: Channel,
    pub metric: Metric,
    /// Index of the script step; `None` for the conversation's connect.
    pub step: Option<u16>,
}

/// A new, empty, auto-resizing histogram of microseconds.
pub fn new_histogram() -> Histogram<u64> {
    // Only a precision above 5 digits is refused, and SIGFIG is a constant 3.
    let mut h = Histogram::<u64>::new(SIGFIG).expect("SIGFIG is a valid precision");
    h.auto(true);
    h
}

/// Records one value, growing the histogram's range when it must (a plain
/// `saturating_record` would clamp to the current range instead).
pub fn record(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

/// Adds `from` into `into`, logging (never panicking) if the ranges clash.
pub fn add_into(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(e) = into.add(from) {
        tracing::warn!(error = ?e, "histogram merge failed; samples lost");
    }
}

/// Corrected and uncorrected samples of one key.
#[derive(Debug, Clone)]
pub struct LatencyPair {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
}

impl Default for LatencyPair {
    fn default() -> Self {
        LatencyPair {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
        }
    }
}

impl LatencyPair {
    pub fn add(&mut self, other: &LatencyPair) {
        add_into(&mut self.corrected, &other.corrected);
        add_into(&mut self.uncorrected, &other.uncorrected);
    }
}

/// Arrival accounting of one scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScenarioCounters {
    /// Arrivals whose intended time came.
    pub due: u64,
    /// Conversations started.
    pub started: u64,
    /// Started more than [`LATE_AFTER`] after their intended time.
    pub late: u64,
    /// Not started: the scenario's `max_conversations` were in flight.
    pub dropped: u64,
    /// Ran every step.
    pub completed: u64,
    /// Stopped at a failed step.
    pub failed: u64,
    /// Still running when the grace period ended, and cut.
    pub interrupted: u64,
}

impl ScenarioCounters {
    fn add(&mut self, o: &ScenarioCounters) {
        self.due += o.due;
        self.started += o.started;
        self.late += o.late;
        self.dropped += o.dropped;
        self.completed += o.completed;
        self.failed += o.failed;
        self.interrupted += o.interrupted;
    }
}

/// A start this much after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// An error's place: scenario, channel and a short kind like `timeout` or `http_503`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorKey {
    pub scenario: u16,
    pub channel: Channel,
    pub kind: String,
}

/// Everything one worker measured over one interval (or, merged, a whole run).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Wall-clock start of the interval.
    pub from: SystemTime,
    /// Wall-clock end (set when the interval is handed over).
    pub to: SystemTime,
    pub latencies: BTreeMap<MetricKey, LatencyPair>,
    pub scenarios: Vec<ScenarioCounters>,
    /// Operations attempted (sends, replies, expects, connects) per scenario × channel.
    pub operations: BTreeMap<(u16, Channel), u64>,
    pub errors: BTreeMap<ErrorKey, u64>,
    /// How late the generator started conversations and steps, µs.
    pub lag: Histogram<u64>,
}

impl Recorder {
    /// The channel × metric pairs measured (over every scenario and step), sorted.
    pub fn channel_metrics(&self) -> Vec<(Channel, Metric)> {
        let mut keys: Vec<(Channel, Metric)> = self
            .latencies
            .keys()
            .map(|k| (k.channel, k.metric))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn new(scenarios: usize) -> Self {
        let now = SystemTime::now();
        Recorder {
            from: now,
            to: now,
            latencies: BTreeMap::new(),
            scenarios: vec![ScenarioCounters::default(); scenarios],
            operations: BTreeMap::new(),
            errors: BTreeMap::new(),
            lag: new_histogram(),
        }
    }

    /// Hands over what was recorded since the last call and starts afresh.
    pub fn take(&mut self) -> Recorder {
        let mut fresh = Recorder::new(self.scenarios.len());
        let now = fresh.from;
        self.to = now;
        std::mem::swap(self, &mut fresh);
        fresh
    }

    fn pair(&mut self, key: MetricKey) -> &mut LatencyPair {
        self.latencies.entry(key).or_default()
    }

    /// One sample: `intended` is when it should have started, `sent` when it
    /// did, `done` when the answer arrived.
    pub fn latency(&mut self, key: MetricKey, intended: Instant, sent: Instant, done: Instant) {
        let corrected = micros(done.saturating_duration_since(intended));
        let uncorrected = micros(done.saturating_duration_since(sent));
        let p = self.pair(key);
        record(&mut p.corrected, corrected);
        record(&mut p.uncorrected, uncorrected);
    }

    /// A sample with no intended-time notion (the server-side split): the
    /// same value goes into both sets.
    pub fn value(&mut self, key: MetricKey, micros: u64) {
        let p = self.pair(key);
        record(&mut p.corrected, micros);
        record(&mut p.uncorrected, micros);
    }

    pub fn operation(&mut self, scenario: u16, channel: Channel) {
        *self.operations.entry((scenario, channel)).or_default() += 1;
    }

    pub fn error(&mut self, scenario: u16, channel: Channel, kind: impl Into<String>) {
        *self
            .errors
            .entry(ErrorKey {
                scenario,
                channel,
                kind: kind.into(),
            })
            .or_default() += 1;
    }

    pub fn lag(&mut self, lag: Duration) {
        record(&mut self.lag, micros(lag));
    }

    pub fn counters(&mut self, scenario: u16) -> &mut ScenarioCounters {
        let i = usize::from(scenario);
        if i >= self.scenarios.len() {
            self.scenarios.resize(i + 1, ScenarioCounters::default());
        }
        &mut self.scenarios[i]
    }

    /// Adds another recorder's samples and counts; the time span widens to cover both.
    pub fn merge(&mut self, other: &Recorder) {
        if other.from < self.from {
            self.from = other.from;
        }
        if other.to > self.to {
            self.to = other.to;
        }
        for (k, v) in &other.latencies {
            self.pair(*k).add(v);
        }
        for (i, c) in other.scenarios.iter().enumerate() {
            self.counters(i as u16).add(c);
        }
        for (k, v) in &other.operations {
            *self.operations.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        add_into(&mut self.lag, &other.lag);
    }

    /// Every sample of `channel`.`metric` (in one scenario, or all), over every step.
    pub fn combined(
        &self,
        scenario: Option<u16>,
        channel: Channel,
        metric: Metric,
    ) -> Option<LatencyPair> {
        let mut out: Option<LatencyPair> = None;
        for (k, v) in &self.latencies {
            if k.channel == channel
                && k.metric == metric
                && scenario.is_none_or(|s| s == k.scenario)
            {
                out.get_or_insert_with(LatencyPair::default).add(v);
            }
        }
        out
    }

    /// Errors in one scenario and/or channel (or all).
    pub fn error_count(&self, scenario: Option<u16>, channel: Option<Channel>) -> u64 {
        self.errors
            .iter()
            .filter(|(k, _)| {
                scenario.is_none_or(|s| s == k.scenario) && channel.is_none_or(|c| c == k.channel)
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Operations attempted in one scenario and/or channel (or all).
    pub fn operation_count(&self, scenario: Option<u16>, channel: Option<Channel>) -> u64 {
        self.operations
            .iter()
            .filter(|((s, c), _)| {
                scenario.is_none_or(|x| x == *s) && channel.is_none_or(|x| x == *c)
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Scenario counters summed (one scenario, or all).
    pub fn scenario_totals(&self, scenario: Option<u16>) -> ScenarioCounters {
        let mut t = ScenarioCounters::default();
        for (i, c) in self.scenarios.iter().enumerate() {
            if scenario.is_none_or(|s| usize::from(s) == i) {
                t.add(c);
            }
        }
        t
    }
}

/// A duration in whole microseconds, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The usual percentiles of a histogram of µs.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub min: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            min: h.min(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(step: u16) -> MetricKey {
        MetricKey {
            scenario: 0,
            channel: Channel::Webchat,
            metric: Metric::Ack,
            step: Some(step),
        }
    }

    #[test]
    fn corrected_counts_from_the_intended_time() {
        let mut r = Recorder::new(1);
        let intended = Instant::now();
        let sent = intended + Duration::from_millis(500);
        let done = sent + Duration::from_millis(2);
        r.latency(key(0), intended, sent, done);
        let p = &r.latencies[&key(0)];
        assert!(p.corrected.value_at_quantile(0.5) >= 501_000);
        assert!(p.uncorrected.value_at_quantile(0.5) <= 2_010);
    }

    #[test]
    fn merge_adds_counts_and_combined_spans_steps() {
        let mut a = Recorder::new(1);
        let mut b = Recorder::new(1);
        for i in 0..100 {
            a.value(key(0), 1000 + i);
            b.value(key(1), 2000 + i);
        }
        a.error(0, Channel::Webchat, "timeout");
        b.error(0, Channel::Webchat, "timeout");
        b.counters(0).started = 5;
        a.merge(&b);
        let all = a
            .combined(None, Channel::Webchat, Metric::Ack)
            .expect("samples");
        assert_eq!(all.corrected.len(), 200);
        assert_eq!(a.error_count(None, Some(Channel::Webchat)), 2);
        assert_eq!(a.scenario_totals(None).started, 5);
        assert!(a.combined(None, Channel::Email, Metric::Http).is_none());
    }

    #[test]
    fn take_hands_over_and_resets() {
        let mut r = Recorder::new(1);
        r.value(key(0), 5);
        let old = r.take();
        assert_eq!(old.latencies.len(), 1);
        assert!(r.latencies.is_empty());
    }
}

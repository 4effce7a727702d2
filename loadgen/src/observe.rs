//! Watching a run as it goes: the aggregator hands every interval (one
//! second of merged worker recorders) and the totals so far to each
//! [`Observer`]. The [`Timeline`] keeps a small summary per interval for the
//! HTML report's charts over time; `--metrics-listen` is another observer.

use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::{Metric, Recorder};
use crate::scenario::Channel;

/// Told about every interval of a run, on the aggregator's task: keep it quick.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// `interval` is what was measured since the last call, `totals` all of
    /// the run so far; `elapsed` is since the traffic phase began.
    fn interval(&self, elapsed: Duration, interval: &Recorder, totals: &Recorder, in_flight: usize);
}

/// One interval, summarised: a few numbers per channel × metric, so a long
/// run's timeline stays small (one point a second).
#[derive(Debug, Clone)]
pub struct IntervalPoint {
    /// End of the interval, seconds since the traffic phase began.
    pub t_s: f64,
    pub in_flight: usize,
    pub started: u64,
    pub latency: Vec<IntervalLatency>,
    /// Operations attempted and errors, per channel.
    pub channels: Vec<IntervalChannel>,
}

#[derive(Debug, Clone)]
pub struct IntervalLatency {
    pub channel: Channel,
    pub metric: Metric,
    pub count: u64,
    /// Corrected, µs.
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

#[derive(Debug, Clone)]
pub struct IntervalChannel {
    pub channel: Channel,
    pub operations: u64,
    pub errors: u64,
}

/// The run's intervals, for charts over time.
#[derive(Debug, Default)]
pub struct Timeline {
    points: Mutex<Vec<IntervalPoint>>,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// The intervals so far.
    pub fn points(&self) -> Vec<IntervalPoint> {
        self.points.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Summarises one interval's recorder.
pub fn summarise(t: Duration, rec: &Recorder, in_flight: usize) -> IntervalPoint {
    let latency = rec
        .channel_metrics()
        .into_iter()
        .filter_map(|(c, m)| {
            let p = rec.combined(None, c, m)?;
            let h = &p.corrected;
            (!h.is_empty()).then(|| IntervalLatency {
                channel: c,
                metric: m,
                count: h.len(),
                p50: h.value_at_quantile(0.5),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            })
        })
        .collect();
    let mut channels: Vec<Channel> = rec
        .operations
        .keys()
        .map(|(_, c)| *c)
        .chain(rec.errors.keys().map(|k| k.channel))
        .collect();
    channels.sort();
    channels.dedup();
    IntervalPoint {
        t_s: t.as_secs_f64(),
        in_flight,
        started: rec.scenario_totals(None).started,
        latency,
        channels: channels
            .into_iter()
            .map(|c| IntervalChannel {
                channel: c,
                operations: rec.operation_count(None, Some(c)),
                errors: rec.error_count(None, Some(c)),
            })
            .collect(),
    }
}

impl Observer for Timeline {
    fn interval(
        &self,
        elapsed: Duration,
        interval: &Recorder,
        _totals: &Recorder,
        in_flight: usize,
    ) {
        let point = summarise(elapsed, interval, in_flight);
        if let Ok(mut p) = self.points.lock() {
            p.push(point);
        }
    }
}

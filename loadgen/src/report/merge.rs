//! `c24-loadgen merge`: the JSON reports of several shards (or runs) of one
//! scenario back into one run's figures. Histograms are added exactly (they
//! travel encoded in the reports), counters summed; thresholds are then
//! evaluated on the merged figures, as if one machine had made all the load.

use std::time::{Duration, SystemTime};

use super::Report;
use super::json::decode_histogram;
use crate::metrics::{ErrorKey, LatencyPair, Metric, MetricKey, Recorder, add_into};
use crate::run::RunResult;
use crate::scenario::{Channel, Plan};

fn scenario_index(plan: &Plan, name: &str) -> Result<u16, String> {
    plan.scenarios
        .iter()
        .position(|s| s.name == name)
        .map(|i| i as u16)
        .ok_or_else(|| format!("scenario {name:?} is not in {}", plan.path.display()))
}

fn channel(name: &str) -> Result<Channel, String> {
    Channel::parse(name).ok_or_else(|| format!("unknown channel {name:?}"))
}

/// One report's figures as a recorder keyed by the plan's scenarios.
pub fn recorder(report: &Report, plan: &Plan) -> Result<Recorder, String> {
    let mut rec = Recorder::new(plan.scenarios.len());
    for e in &report.latency {
        let key = MetricKey {
            scenario: scenario_index(plan, &e.scenario)?,
            channel: channel(&e.channel)?,
            metric: Metric::parse(&e.metric)
                .ok_or_else(|| format!("unknown metric {:?}", e.metric))?,
            step: e.step,
        };
        let pair = LatencyPair {
            corrected: decode_histogram(&e.histogram.corrected)?,
            uncorrected: decode_histogram(&e.histogram.uncorrected)?,
        };
        rec.latencies.entry(key).or_default().add(&pair);
    }
    for e in &report.errors {
        *rec.errors
            .entry(ErrorKey {
                scenario: scenario_index(plan, &e.scenario)?,
                channel: channel(&e.channel)?,
                kind: e.kind.clone(),
            })
            .or_default() += e.count;
    }
    for o in &report.operations {
        *rec.operations
            .entry((scenario_index(plan, &o.scenario)?, channel(&o.channel)?))
            .or_default() += o.count;
    }
    for s in &report.scenarios {
        let c = rec.counters(scenario_index(plan, &s.name)?);
        c.due += s.due;
        c.started += s.started;
        c.late += s.late;
        c.dropped += s.dropped;
        c.completed += s.completed;
        c.failed += s.failed;
        c.interrupted += s.interrupted;
    }
    if !report.generator.scheduler_lag_histogram.is_empty() {
        let lag = decode_histogram(&report.generator.scheduler_lag_histogram)?;
        add_into(&mut rec.lag, &lag);
    }
    Ok(rec)
}

/// The reports as one run: histograms added, counters summed, the longest
/// traffic phase and the earliest start.
pub fn merge(reports: &[Report], plan: &Plan) -> Result<RunResult, String> {
    let mut totals = Recorder::new(plan.scenarios.len());
    let mut started_at: Option<SystemTime> = None;
    let mut traffic = Duration::ZERO;
    let mut elapsed = Duration::ZERO;
    let mut aborted = None;
    let mut threads = 0;
    for r in reports {
        if r.schema != super::SCHEMA {
            return Err(format!(
                "a report has schema {:?}, expected {:?}",
                r.schema,
                super::SCHEMA
            ));
        }
        if r.name != plan.name {
            return Err(format!(
                "a report is of scenario {:?}, not {:?} ({})",
                r.name,
                plan.name,
                plan.path.display()
            ));
        }
        totals.merge(&recorder(r, plan)?);
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.started_at) {
            let t: SystemTime = t.with_timezone(&chrono::Utc).into();
            started_at = Some(started_at.map_or(t, |s| s.min(t)));
        }
        traffic = traffic.max(Duration::from_secs_f64(r.duration_s.max(0.0)));
        elapsed = elapsed.max(Duration::from_secs_f64(r.elapsed_s.max(0.0)));
        if aborted.is_none() {
            aborted = r.aborted.clone();
        }
        threads += r.generator.threads;
    }
    Ok(RunResult {
        totals,
        started_at: started_at.unwrap_or_else(SystemTime::now),
        traffic,
        elapsed,
        aborted,
        threads,
    })
}

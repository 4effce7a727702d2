//! What a run reports: the [`Report`] (one structure behind the summary
//! table, `--report-json` and `--junit`), and the HDR interval log.
//!
//! - [`summary`]: the end-of-run table on stdout.
//! - [`json`]: `--report-json FILE` (schema in `loadgen/REPORT.md`), with
//!   every histogram serialized so reports of several shards can be merged.
//! - [`junit`]: `--junit FILE`, one test case per threshold.
//! - [`hdrlog`]: `--hdr-log FILE`, an HdrHistogram interval log (V2 deflate).
//! - [`merge`]: JSON reports of several shards back into one run's figures.
//! - [`html`]: `--report-html FILE`, one self-contained page, charts drawn by [`svg`].
//! - [`markdown`]: `--summary-md FILE`, for a CI job summary.

pub mod hdrlog;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod summary;
pub mod svg;

use serde::{Deserialize, Serialize};

use crate::metrics::{Percentiles, Recorder, ScenarioCounters};
use crate::run::RunResult;
use crate::scenario::{Model, Plan};
use crate::thresholds::Outcome;

/// The `schema` field of a JSON report.
pub const SCHEMA: &str = "c24-loadgen/report/v1";

/// Late or dropped starts above this share of all starts mean the generator
/// could not keep the asked rate.
pub const LAG_SHARE: f64 = 0.01;
/// ... and at least this many of them, so a few arrivals cannot trip it.
pub const LAG_MIN_EVENTS: u64 = 3;

/// Everything a run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool_version: String,
    pub name: String,
    pub file: String,
    pub target: String,
    pub embedded_target: bool,
    /// RFC 3339.
    pub started_at: String,
    /// The traffic phase as run, seconds.
    pub duration_s: f64,
    /// Start to the last conversation's end, seconds.
    pub elapsed_s: f64,
    /// Every threshold held (and the run was not aborted).
    pub passed: bool,
    pub aborted: Option<String>,
    pub generator: Generator,
    pub scenarios: Vec<ScenarioReport>,
    pub latency: Vec<LatencyEntry>,
    pub errors: Vec<ErrorEntry>,
    pub operations: Vec<OperationEntry>,
    pub thresholds: Vec<ThresholdEntry>,
    /// The core's own figures for the same window, when an admin token was at hand.
    pub server: Option<ServerFigures>,
}

/// How the load generator itself kept up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generator {
    pub threads: usize,
    /// The scheduler fell behind: the latencies include its own lag.
    pub lagging: bool,
    /// Plain words for people, when lagging.
    pub message: Option<String>,
    /// Start lag of conversations and of steps after a pause, µs.
    pub scheduler_lag_us: Percentiles,
    pub scheduler_lag_count: u64,
    /// The lag histogram, encoded like the latency histograms (for merging).
    #[serde(default)]
    pub scheduler_lag_histogram: String,
    pub late_starts: u64,
    pub dropped_starts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    /// `open` or `closed`.
    pub model: String,
    /// Conversations per second asked over the traffic phase (open), or visitors (closed).
    pub asked_rate: Option<f64>,
    pub visitors: Option<u32>,
    /// Conversations started per second of the traffic phase.
    pub achieved_rate: f64,
    pub due: u64,
    pub started: u64,
    pub late: u64,
    pub dropped: u64,
    pub completed: u64,
    pub failed: u64,
    pub interrupted: u64,
}

/// One scenario × channel × metric × step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyEntry {
    pub scenario: String,
    pub channel: String,
    pub metric: String,
    /// Script step index; `null` for the conversation's connect.
    pub step: Option<u16>,
    /// `send`, `agent_reply`, … (`null` with `step`).
    pub step_kind: Option<String>,
    pub unit: String,
    pub count: u64,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
    pub histogram: SerializedPair,
}

/// Base64 of the HdrHistogram V2 + deflate encoding of each histogram.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SerializedPair {
    pub encoding: String,
    pub corrected: String,
    pub uncorrected: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub scenario: String,
    pub channel: String,
    pub kind: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationEntry {
    pub scenario: String,
    pub channel: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdEntry {
    pub key: String,
    pub check: String,
    /// Line in the scenario file.
    pub line: usize,
    pub passed: bool,
    /// In the check's unit (µs for durations, /s, %, count); `null` without samples.
    pub observed: Option<f64>,
    pub detail: String,
    pub abort_on_fail: bool,
}

/// `GET /admin/v1/throughput` for the run's window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFigures {
    pub window_ms: i64,
    pub latency_window_ms: i64,
    pub per_channel: Vec<ServerChannel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerChannel {
    pub channel: String,
    pub messages: u64,
    pub msgs_per_s: f64,
    pub errors: u64,
    /// Receive → commit inside the core, µs.
    pub ingest_latency_us: ServerPercentiles,
    pub encrypt_ns_per_msg: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerPercentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl ServerFigures {
    pub fn from_throughput(t: &c24_api::admin::throughput::Throughput) -> Self {
        ServerFigures {
            window_ms: t.window_ms,
            latency_window_ms: t.latency_window_ms,
            per_channel: t
                .per_channel
                .iter()
                .map(|c| ServerChannel {
                    channel: c.channel.clone(),
                    messages: c.messages,
                    msgs_per_s: c.msgs_per_s,
                    errors: c.errors,
                    ingest_latency_us: ServerPercentiles {
                        count: c.ingest_latency_us.count,
                        p50: c.ingest_latency_us.p50,
                        p90: c.ingest_latency_us.p90,
                        p99: c.ingest_latency_us.p99,
                        p999: c.ingest_latency_us.p999,
                        max: c.ingest_latency_us.max,
                        mean: c.ingest_latency_us.mean,
                    },
                    encrypt_ns_per_msg: c.encrypt_ns_per_msg,
                })
                .collect(),
        }
    }
}

/// Where the run went and what else is known about it.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub target: String,
    pub embedded: bool,
    pub server: Option<ServerFigures>,
}

fn scenario_name(plan: &Plan, idx: u16) -> String {
    plan.scenarios
        .get(usize::from(idx))
        .map(|s| s.name.clone())
        .unwrap_or_else(|| format!("scenario{idx}"))
}

/// Judges whether the generator kept its schedule.
pub fn generator_health(totals: &Recorder, threads: usize) -> Generator {
    let all: ScenarioCounters = totals.scenario_totals(None);
    let lag = Percentiles::of(&totals.lag);
    let starts = all.started.max(1) as f64;
    let late_share = all.late as f64 / starts;
    let dropped_share = all.dropped as f64 / (all.due.max(1) as f64);
    // One late start among a handful (a short capacity probe, a busy CI
    // machine) is no evidence of a generator that cannot keep up.
    let late_lagging = late_share > LAG_SHARE && all.late >= LAG_MIN_EVENTS;
    let dropped_lagging = dropped_share > LAG_SHARE && all.dropped >= LAG_MIN_EVENTS;
    let lagging = late_lagging || dropped_lagging;
    let message = lagging.then(|| {
        let mut m = String::from("The load generator could not keep the asked rate: ");
        let mut parts = Vec::new();
        if late_lagging {
            parts.push(format!(
                "{:.1}% of conversations started late (p99 start lag {})",
                100.0 * late_share,
                crate::thresholds::format_micros(lag.p99 as f64)
            ));
        }
        if dropped_lagging {
            parts.push(format!(
                "{:.1}% of arrivals were dropped because max_conversations were in flight",
                100.0 * dropped_share
            ));
        }
        m.push_str(&parts.join(", and "));
        m.push_str(
            ". The latencies below include the generator's own delay and do not describe the \
             target alone. Lower the rate, add --threads, or split the load over machines.",
        );
        m
    });
    Generator {
        threads,
        lagging,
        message,
        scheduler_lag_us: lag,
        scheduler_lag_count: totals.lag.len(),
        scheduler_lag_histogram: json::encode_histogram(&totals.lag),
        late_starts: all.late,
        dropped_starts: all.dropped,
    }
}

impl Report {
    pub fn build(ctx: Context<'_>, run: &RunResult, outcomes: &[Outcome]) -> Report {
        let plan = ctx.plan;
        let t = &run.totals;
        let traffic_s = run.traffic.as_secs_f64().max(1e-9);
        let scenarios = plan
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = t.scenario_totals(Some(i as u16));
                let (model, asked_rate, visitors) = match &s.model {
                    Model::Open { schedule, .. } => (
                        "open",
                        Some(schedule.arrivals_by(run.traffic.as_secs_f64()) / traffic_s),
                        None,
                    ),
                    Model::Closed { visitors } => ("closed", None, Some(*visitors)),
                };
                ScenarioReport {
                    name: s.name.clone(),
                    model: model.into(),
                    asked_rate,
                    visitors,
                    achieved_rate: c.started as f64 / traffic_s,
                    due: c.due,
                    started: c.started,
                    late: c.late,
                    dropped: c.dropped,
                    completed: c.completed,
                    failed: c.failed,
                    interrupted: c.interrupted,
                }
            })
            .collect();
        let latency = t
            .latencies
            .iter()
            .map(|(k, p)| {
                let step_kind = k.step.and_then(|i| {
                    plan.scenarios
                        .get(usize::from(k.scenario))
                        .and_then(|s| s.script(k.channel))
                        .and_then(|s| s.steps.get(usize::from(i)))
                        .map(|s| s.kind().to_string())
                });
                LatencyEntry {
                    scenario: scenario_name(plan, k.scenario),
                    channel: k.channel.as_str().into(),
                    metric: k.metric.as_str().into(),
                    step: k.step,
                    step_kind,
                    unit: "us".into(),
                    count: p.corrected.len(),
                    corrected: Percentiles::of(&p.corrected),
                    uncorrected: Percentiles::of(&p.uncorrected),
                    histogram: SerializedPair {
                        encoding: json::HISTOGRAM_ENCODING.into(),
                        corrected: json::encode_histogram(&p.corrected),
                        uncorrected: json::encode_histogram(&p.uncorrected),
                    },
                }
            })
            .collect();
        let errors = t
            .errors
            .iter()
            .map(|(k, v)| ErrorEntry {
                scenario: scenario_name(plan, k.scenario),
                channel: k.channel.as_str().into(),
                kind: k.kind.clone(),
                count: *v,
            })
            .collect();
        let operations = t
            .operations
            .iter()
            .map(|((s, c), v)| OperationEntry {
                scenario: scenario_name(plan, *s),
                channel: c.as_str().into(),
                count: *v,
            })
            .collect();
        let thresholds: Vec<ThresholdEntry> = plan
            .thresholds
            .iter()
            .zip(outcomes)
            .map(|(th, o)| ThresholdEntry {
                key: th.key.clone(),
                check: th.check.clone(),
                line: th.line,
                passed: o.passed,
                observed: o.observed,
                detail: o.detail.clone(),
                abort_on_fail: th.abort_on_fail.is_some(),
            })
            .collect();
        let passed = run.aborted.is_none() && thresholds.iter().all(|t| t.passed);
        Report {
            schema: SCHEMA.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            name: plan.name.clone(),
            file: plan.path.display().to_string(),
            target: ctx.target,
            embedded_target: ctx.embedded,
            started_at: chrono::DateTime::<chrono::Utc>::from(run.started_at).to_rfc3339(),
            duration_s: run.traffic.as_secs_f64(),
            elapsed_s: run.elapsed.as_secs_f64(),
            passed,
            aborted: run.aborted.clone(),
            generator: generator_health(t, run.threads),
            scenarios,
            latency,
            errors,
            operations,
            thresholds,
            server: ctx.server,
        }
    }
}

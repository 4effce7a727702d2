//! The comparison's report (`--report-json`, schema in `loadgen/REPORT.md`)
//! and its summary table.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bootstrap::{self, Ratio};
use super::{CompareRequest, STATS, SideInfo, Window, paired};
use crate::metrics::{Metric, Percentiles, Recorder};
use crate::report::{Generator, SerializedPair, generator_health, json};
use crate::scenario::{Channel, Plan};
use crate::thresholds::{Selector, format_micros};

/// The `schema` of a comparison report.
pub const SCHEMA: &str = "c24-loadgen/compare/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    pub schema: String,
    pub tool_version: String,
    pub name: String,
    pub file: String,
    pub a: SideReport,
    pub b: SideReport,
    pub pairs: usize,
    pub window_s: f64,
    /// `ABBA`: even pairs run A then B, odd pairs B then A.
    pub order: String,
    pub bootstrap: BootstrapInfo,
    pub metrics: Vec<MetricComparison>,
    pub tls_handshake: TlsHandshakes,
    pub thresholds: Vec<CompareThreshold>,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapInfo {
    pub resamples: usize,
    pub confidence: f64,
    pub seed: u64,
    /// `ratio of means over paired windows, percentile interval`.
    pub method: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideReport {
    pub label: String,
    pub target: String,
    pub embedded: bool,
    pub traffic_s: f64,
    pub operations: u64,
    pub errors: u64,
    /// Percent of operations.
    pub error_rate: f64,
    pub generator: Generator,
    /// Per window in run order: operations, errors, corrected webchat ack p99 (µs).
    pub windows: Vec<WindowFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowFigures {
    pub pair: usize,
    pub traffic_s: f64,
    pub operations: u64,
    pub errors: u64,
}

/// One channel × metric, all scenarios and steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricComparison {
    pub channel: String,
    pub metric: String,
    /// Pairs in which both windows had samples (the bootstrap's units).
    pub pairs_used: usize,
    pub p50: Ratio,
    pub p99: Ratio,
    pub p999: Ratio,
    pub throughput: Ratio,
    pub a: Distribution,
    pub b: Distribution,
}

/// One side's whole distribution of a metric (all its windows merged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    pub count: u64,
    pub throughput_per_s: f64,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
    pub histogram: SerializedPair,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsHandshakes {
    pub a: Option<Handshake>,
    pub b: Option<Handshake>,
}

/// The one-off cost of TLS: web-chat TLS handshakes (µs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    pub count: u64,
    pub us: Percentiles,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareThreshold {
    pub key: String,
    pub check: String,
    pub line: usize,
    /// `ratio` (an `overhead.` key, B/A), or `a`/`b` (a plain key, judged on that side).
    pub side: String,
    pub passed: bool,
    pub observed: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub detail: String,
}

fn merged(windows: &[Window], scenarios: usize) -> (Recorder, Duration) {
    let mut r = Recorder::new(scenarios);
    let mut t = Duration::ZERO;
    for w in windows {
        r.merge(&w.totals);
        t += w.traffic;
    }
    (r, t)
}

fn distribution(
    rec: &Recorder,
    channel: Channel,
    metric: Metric,
    traffic: Duration,
) -> Distribution {
    let pair = rec.combined(None, channel, metric).unwrap_or_default();
    Distribution {
        count: pair.corrected.len(),
        throughput_per_s: pair.corrected.len() as f64 / traffic.as_secs_f64().max(1e-9),
        corrected: Percentiles::of(&pair.corrected),
        uncorrected: Percentiles::of(&pair.uncorrected),
        histogram: SerializedPair {
            encoding: json::HISTOGRAM_ENCODING.into(),
            corrected: json::encode_histogram(&pair.corrected),
            uncorrected: json::encode_histogram(&pair.uncorrected),
        },
    }
}

fn handshake(rec: &Recorder) -> Option<Handshake> {
    let p = rec.combined(None, Channel::Webchat, Metric::TlsHandshake)?;
    Some(Handshake {
        count: p.uncorrected.len(),
        us: Percentiles::of(&p.uncorrected),
    })
}

fn side(
    info: &SideInfo,
    windows: &[Window],
    rec: &Recorder,
    traffic: Duration,
    threads: usize,
) -> SideReport {
    let ops = rec.operation_count(None, None);
    let errors = rec.error_count(None, None);
    SideReport {
        label: info.label.clone(),
        target: info.target.clone(),
        embedded: info.embedded,
        traffic_s: traffic.as_secs_f64(),
        operations: ops,
        errors,
        error_rate: if ops > 0 {
            100.0 * errors as f64 / ops as f64
        } else {
            0.0
        },
        generator: generator_health(rec, threads),
        windows: windows
            .iter()
            .enumerate()
            .map(|(i, w)| WindowFigures {
                pair: i,
                traffic_s: w.traffic.as_secs_f64(),
                operations: w.totals.operation_count(None, None),
                errors: w.totals.error_count(None, None),
            })
            .collect(),
    }
}

fn ratio_detail(r: &Ratio) -> String {
    match (r.ratio, r.ci_low, r.ci_high) {
        (Some(x), Some(lo), Some(hi)) => format!("B/A {x:.3}× (95% CI {lo:.3}–{hi:.3})"),
        (Some(x), _, _) => format!("B/A {x:.3}×"),
        _ => "no ratio: A measured nothing in every pair".into(),
    }
}

impl CompareReport {
    pub fn build(
        plan: &Plan,
        req: &CompareRequest,
        info: &[SideInfo],
        windows: &[Vec<Window>; 2],
    ) -> CompareReport {
        let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
        let seed = req.seed.unwrap_or(plan.seed);
        let n = plan.scenarios.len();
        let (ra, ta) = merged(&windows[0], n);
        let (rb, tb) = merged(&windows[1], n);
        let mut keys: Vec<(Channel, Metric)> = ra
            .latencies
            .keys()
            .chain(rb.latencies.keys())
            .filter(|k| k.metric != Metric::TlsHandshake)
            .map(|k| (k.channel, k.metric))
            .collect();
        keys.sort();
        keys.dedup();
        let metrics = keys
            .into_iter()
            .map(|(channel, metric)| {
                let mut ratios = [Ratio::NONE; 4];
                let mut used = 0;
                for (slot, (_, stat)) in ratios.iter_mut().zip(STATS) {
                    let sel = Selector::Latency {
                        scenario: None,
                        channel,
                        metric,
                        stat,
                        uncorrected: false,
                    };
                    let pairs = paired(&sel, &windows[0], &windows[1], &names);
                    used = used.max(pairs.len());
                    *slot = bootstrap::ratio_ci(
                        &pairs,
                        bootstrap::RESAMPLES,
                        bootstrap::CONFIDENCE,
                        seed,
                    );
                }
                let [p50, p99, p999, throughput] = ratios;
                MetricComparison {
                    channel: channel.as_str().into(),
                    metric: metric.as_str().into(),
                    pairs_used: used,
                    p50,
                    p99,
                    p999,
                    throughput,
                    a: distribution(&ra, channel, metric, ta),
                    b: distribution(&rb, channel, metric, tb),
                }
            })
            .collect();
        let mut thresholds = Vec::new();
        for t in &plan.thresholds {
            match &t.selector {
                Selector::Overhead(inner) => {
                    let pairs = paired(inner, &windows[0], &windows[1], &names);
                    let r = bootstrap::ratio_ci(
                        &pairs,
                        bootstrap::RESAMPLES,
                        bootstrap::CONFIDENCE,
                        seed,
                    );
                    thresholds.push(CompareThreshold {
                        key: t.key.clone(),
                        check: t.check.clone(),
                        line: t.line,
                        side: "ratio".into(),
                        passed: r.ratio.is_some_and(|x| t.op.holds(x, t.bound)),
                        observed: r.ratio,
                        ci_low: r.ci_low,
                        ci_high: r.ci_high,
                        detail: ratio_detail(&r),
                    });
                }
                _ => {
                    for (label, rec, traffic) in [("a", &ra, ta), ("b", &rb, tb)] {
                        let o = t.evaluate(rec, &names, traffic);
                        thresholds.push(CompareThreshold {
                            key: t.key.clone(),
                            check: t.check.clone(),
                            line: t.line,
                            side: label.into(),
                            passed: o.passed,
                            observed: o.observed,
                            ci_low: None,
                            ci_high: None,
                            detail: o.detail,
                        });
                    }
                }
            }
        }
        let passed = thresholds.iter().all(|t| t.passed);
        let fallback = SideInfo {
            label: String::new(),
            target: String::new(),
            embedded: false,
        };
        CompareReport {
            schema: SCHEMA.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            name: plan.name.clone(),
            file: plan.path.display().to_string(),
            a: side(
                info.first().unwrap_or(&fallback),
                &windows[0],
                &ra,
                ta,
                req.threads,
            ),
            b: side(
                info.get(1).unwrap_or(&fallback),
                &windows[1],
                &rb,
                tb,
                req.threads,
            ),
            pairs: req.pairs,
            window_s: req.window.as_secs_f64(),
            order: "ABBA".into(),
            bootstrap: BootstrapInfo {
                resamples: bootstrap::RESAMPLES,
                confidence: bootstrap::CONFIDENCE,
                seed,
                method: "ratio of means over paired windows; percentile interval".into(),
            },
            metrics,
            tls_handshake: TlsHandshakes {
                a: handshake(&ra),
                b: handshake(&rb),
            },
            thresholds,
            passed,
        }
    }
}

fn cell(r: &Ratio) -> String {
    match (r.ratio, r.ci_low, r.ci_high) {
        (Some(x), Some(lo), Some(hi)) => format!("{x:.2} [{lo:.2},{hi:.2}]"),
        (Some(x), _, _) => format!("{x:.2}"),
        _ => "-".into(),
    }
}

/// The summary table on stdout.
pub fn render(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "c24-loadgen compare: {} — {} pairs of {:.1}s windows, A B A B …",
        r.name, r.pairs, r.window_s
    );
    let _ = writeln!(out, "  A: {} ({})", r.a.label, r.a.target);
    let _ = writeln!(out, "  B: {} ({})", r.b.label, r.b.target);
    let _ = writeln!(
        out,
        "\n{:<22} {:>9} {:>9} {:>19} {:>19} {:>19} {:>19}",
        "metric (corrected)",
        "A p99",
        "B p99",
        "p50 B/A [95% CI]",
        "p99 B/A",
        "p99.9 B/A",
        "throughput B/A"
    );
    for m in &r.metrics {
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>9} {:>19} {:>19} {:>19} {:>19}",
            format!("{}.{}", m.channel, m.metric),
            format_micros(m.a.corrected.p99 as f64),
            format_micros(m.b.corrected.p99 as f64),
            cell(&m.p50),
            cell(&m.p99),
            cell(&m.p999),
            cell(&m.throughput)
        );
    }
    let hs = |h: &Option<Handshake>| match h {
        Some(h) => format!(
            "p50 {} p99 {} ({} handshakes)",
            format_micros(h.us.p50 as f64),
            format_micros(h.us.p99 as f64),
            h.count
        ),
        None => "none (plain)".into(),
    };
    let _ = writeln!(
        out,
        "\nTLS handshake (one-off per connection, not in the ratios above):\n  A: {}\n  B: {}",
        hs(&r.tls_handshake.a),
        hs(&r.tls_handshake.b)
    );
    let _ = writeln!(
        out,
        "errors: A {} of {} operations ({:.3}%), B {} of {} ({:.3}%)",
        r.a.errors, r.a.operations, r.a.error_rate, r.b.errors, r.b.operations, r.b.error_rate
    );
    for (l, s) in [("A", &r.a), ("B", &r.b)] {
        if let Some(m) = &s.generator.message {
            let _ = writeln!(out, "{l}: {m}");
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        for t in &r.thresholds {
            let shown = match t.side.as_str() {
                "ratio" => t.detail.clone(),
                s => format!("{}: {}", s.to_uppercase(), t.detail),
            };
            let _ = writeln!(
                out,
                "  {} {} {} — {}",
                if t.passed { "PASS" } else { "FAIL" },
                t.key,
                t.check,
                shown
            );
        }
    }
    let _ = writeln!(
        out,
        "\nRESULT: {}",
        if r.passed { "PASSED" } else { "FAILED" }
    );
    out
}

/// Writes the report, pretty-printed.
pub fn write(r: &CompareReport, path: &Path) -> Result<(), String> {
    crate::report::json::write_pretty(r, path)
}

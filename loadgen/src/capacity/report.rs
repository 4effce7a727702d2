//! The capacity report (`--report-json`, schema in `loadgen/REPORT.md`):
//! per channel mix the highest rate that held and every probe, which is the
//! latency-versus-rate curve; and its summary.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CapacityRequest;
use super::search::{Ended, Search};
use crate::metrics::Percentiles;
use crate::report::generator_health;
use crate::run::RunResult;
use crate::scenario::{Channel, Plan};
use crate::thresholds::{Threshold, format_micros};

pub const SCHEMA: &str = "c24-loadgen/capacity/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityReport {
    pub schema: String,
    pub tool_version: String,
    pub name: String,
    pub file: String,
    pub target: String,
    pub embedded_target: bool,
    pub slos: Vec<SloSpec>,
    pub search: SearchSettings,
    pub searches: Vec<SearchResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloSpec {
    pub key: String,
    pub check: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchSettings {
    pub start_rate: f64,
    pub factor: f64,
    pub max_rate: f64,
    pub bisections: u32,
    pub resolution: f64,
    pub step_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixShare {
    pub channel: String,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub mix: Vec<MixShare>,
    /// The highest rate (conversations per second) at which every SLO held;
    /// `null` when none did.
    pub max_rate: Option<f64>,
    /// `max_rate` split by the mix.
    pub per_channel: Vec<MixShare>,
    /// The lowest rate that broke an SLO.
    pub broke_at: Option<f64>,
    /// `slo`, `max_rate` (the ceiling held), `generator` (it could not keep a rate).
    pub ended: Ended,
    /// Every probe, by rate: the latency-versus-rate curve.
    pub curve: Vec<Probe>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    /// In the order the search tried it.
    pub order: usize,
    /// Conversations per second asked.
    pub rate: f64,
    /// Conversations started per second.
    pub achieved_rate: f64,
    pub held: bool,
    pub generator_lagging: bool,
    pub operations: u64,
    pub errors: u64,
    /// Percent of operations.
    pub error_rate: f64,
    pub slos: Vec<SloResult>,
    pub latency: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloResult {
    pub key: String,
    pub check: String,
    pub passed: bool,
    pub observed: Option<f64>,
    pub detail: String,
}

/// One channel × metric at one rate (µs; all scenarios and steps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    pub channel: String,
    pub metric: String,
    pub count: u64,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

impl Probe {
    /// Judges one probe run at `rate`.
    pub fn measure(rate: f64, r: &RunResult, slos: &[Threshold], names: &[String]) -> Probe {
        let t = &r.totals;
        let slos: Vec<SloResult> = slos
            .iter()
            .map(|s| {
                let o = s.evaluate(t, names, r.traffic);
                SloResult {
                    key: s.key.clone(),
                    check: s.check.clone(),
                    passed: o.passed,
                    observed: o.observed,
                    detail: o.detail,
                }
            })
            .collect();
        let latency = t
            .channel_metrics()
            .into_iter()
            .filter_map(|(c, m)| {
                let p = t.combined(None, c, m)?;
                Some(CurvePoint {
                    channel: c.as_str().into(),
                    metric: m.as_str().into(),
                    count: p.corrected.len(),
                    corrected: Percentiles::of(&p.corrected),
                    uncorrected: Percentiles::of(&p.uncorrected),
                })
            })
            .collect();
        let ops = t.operation_count(None, None);
        let errors = t.error_count(None, None);
        let started = t.scenario_totals(None).started;
        Probe {
            order: 0,
            rate,
            achieved_rate: started as f64 / r.traffic.as_secs_f64().max(1e-9),
            held: slos.iter().all(|s| s.passed),
            generator_lagging: generator_health(t, r.threads).lagging,
            operations: ops,
            errors,
            error_rate: if ops > 0 {
                100.0 * errors as f64 / ops as f64
            } else {
                0.0
            },
            slos,
            latency,
        }
    }

    /// One progress line.
    pub fn line(&self) -> String {
        let verdict = if self.generator_lagging {
            "generator could not keep the rate"
        } else if self.held {
            "held"
        } else {
            "BROKE"
        };
        let slos: Vec<String> = self
            .slos
            .iter()
            .map(|s| format!("{} {} ({})", s.key, s.check, s.detail))
            .collect();
        format!(
            "rate {:.1}/s (achieved {:.1}/s): {verdict} — {}",
            self.rate,
            self.achieved_rate,
            slos.join("; ")
        )
    }
}

impl SearchResult {
    pub fn new(mix: Option<Vec<(Channel, f64)>>, search: &Search, mut probes: Vec<Probe>) -> Self {
        for (i, p) in probes.iter_mut().enumerate() {
            p.order = i;
        }
        probes.sort_by(|a, b| a.rate.total_cmp(&b.rate).then(a.order.cmp(&b.order)));
        let mix: Vec<MixShare> = mix
            .unwrap_or_default()
            .into_iter()
            .map(|(c, share)| MixShare {
                channel: c.as_str().into(),
                share,
            })
            .collect();
        let max_rate = search.held();
        SearchResult {
            per_channel: mix
                .iter()
                .map(|m| MixShare {
                    channel: m.channel.clone(),
                    share: max_rate.unwrap_or(0.0) * m.share,
                })
                .collect(),
            mix,
            max_rate,
            broke_at: search.broke(),
            ended: search.ended().unwrap_or(Ended::Slo),
            curve: probes,
        }
    }
}

impl CapacityReport {
    pub fn build(
        plan: &Plan,
        req: &CapacityRequest,
        slos: &[Threshold],
        target: String,
        embedded: bool,
        searches: Vec<SearchResult>,
    ) -> Self {
        CapacityReport {
            schema: SCHEMA.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            name: plan.name.clone(),
            file: plan.path.display().to_string(),
            target,
            embedded_target: embedded,
            slos: slos
                .iter()
                .map(|s| SloSpec {
                    key: s.key.clone(),
                    check: s.check.clone(),
                })
                .collect(),
            search: SearchSettings {
                start_rate: req.search.start,
                factor: req.search.factor,
                max_rate: req.search.max,
                bisections: req.search.bisections,
                resolution: req.search.resolution,
                step_s: req.step.as_secs_f64(),
            },
            searches,
        }
    }
}

/// A mix as people read it: `webchat 50%, email 50%`.
pub(crate) fn mix_text(mix: &[MixShare]) -> String {
    let parts: Vec<String> = mix
        .iter()
        .map(|m| format!("{} {:.0}%", m.channel, 100.0 * m.share))
        .collect();
    parts.join(", ")
}

/// A capacity split by channel: `webchat 4.0/s, email 4.0/s`.
pub(crate) fn rates_text(per_channel: &[MixShare]) -> String {
    let parts: Vec<String> = per_channel
        .iter()
        .map(|c| format!("{} {:.1}/s", c.channel, c.share))
        .collect();
    parts.join(", ")
}

/// SLOs as people read them: `errors.rate < 1%, webchat.ack.p99 < 50ms`.
pub(crate) fn slo_text(slos: &[SloSpec]) -> String {
    let parts: Vec<String> = slos
        .iter()
        .map(|s| format!("{} {}", s.key, s.check))
        .collect();
    parts.join(", ")
}

/// The summary on stdout.
pub fn render(r: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "c24-loadgen capacity: {} against {}{} — SLOs: {}",
        r.name,
        r.target,
        if r.embedded_target {
            " (embedded core)"
        } else {
            ""
        },
        slo_text(&r.slos)
    );
    for s in &r.searches {
        let _ = writeln!(out, "\nmix: {}", mix_text(&s.mix));
        let _ = writeln!(
            out,
            "{:>10} {:>11} {:>6} {:>8}  p99 per channel.metric (corrected)",
            "rate/s", "achieved/s", "held", "errors"
        );
        for p in &s.curve {
            let lat: Vec<String> = p
                .latency
                .iter()
                .filter(|l| matches!(l.metric.as_str(), "ack" | "http" | "push" | "agent"))
                .map(|l| {
                    format!(
                        "{}.{} {}",
                        l.channel,
                        l.metric,
                        format_micros(l.corrected.p99 as f64)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{:>10.1} {:>11.1} {:>6} {:>7.2}%  {}",
                p.rate,
                p.achieved_rate,
                if p.generator_lagging {
                    "gen?"
                } else if p.held {
                    "yes"
                } else {
                    "NO"
                },
                p.error_rate,
                lat.join(", ")
            );
        }
        let why = match s.ended {
            Ended::Slo => "an SLO broke above it".to_string(),
            Ended::MaxRate => format!("every rate up to --max-rate {} held", r.search.max_rate),
            Ended::Generator => {
                "the load generator could not keep a higher rate: a lower bound only".to_string()
            }
        };
        match s.max_rate {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "CAPACITY: {m:.1} conversations/s ({}) — {why}",
                    rates_text(&s.per_channel)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "CAPACITY: none — the SLOs broke at every rate tried (lowest {:.2}/s)",
                    s.broke_at.unwrap_or(0.0)
                );
            }
        }
    }
    out
}

/// Writes the report, pretty-printed.
pub fn write(r: &CapacityReport, path: &Path) -> Result<(), String> {
    crate::report::json::write_pretty(r, path)
}

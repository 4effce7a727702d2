//! `c24-loadgen compare`: what a variant costs, measured side by side.
//!
//! The scenario runs against target A and target B in short alternating
//! windows (A B A B …, one pair per A/B), so the drift of a noisy machine
//! falls on both alike. Per channel × metric it reports B/A of p50, p99,
//! p99.9 and throughput with a 95 % bootstrap interval over the pairs
//! ([`bootstrap`]), judges `overhead.KEY` thresholds on those ratios, and
//! keeps the TLS handshake apart from steady-state cost. Without targets it
//! starts both variants embedded ([`Variant`]).
//!
//! - [`bootstrap`]: the ratio and its confidence interval.
//! - [`report`]: the JSON report, the summary table.

pub mod bootstrap;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use c24_api::admin::tenants::TenantCreated;

use crate::Exit;
use crate::command::{self, Failure};
use crate::live::LiveMode;
use crate::metrics::{Metric, Recorder};
use crate::provision::{self, EmbeddedOptions, Target};
use crate::run::{self, RunOptions};
use crate::scenario::{self, Channel, Plan};
use crate::thresholds::{Op, Selector, Stat, Threshold};
use crate::tls::TlsOptions;

pub use report::CompareReport;

/// What the two embedded cores differ in, when no targets are given. B is
/// always the variant whose cost is measured, so `overhead.KEY < 1.10`
/// reads "B costs at most 10 % more than A".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// A: `--no-at-rest-encryption`; B: at-rest encryption on (the default).
    AtRest,
    /// A: plain HTTP/WebSocket; B: TLS (https/wss, a development certificate).
    Tls,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "at-rest" => Ok(Variant::AtRest),
            "tls" => Ok(Variant::Tls),
            other => Err(format!("{other:?}: use at-rest or tls")),
        }
    }
}

impl Variant {
    /// Label and core options of A and B.
    fn sides(self) -> [(&'static str, EmbeddedOptions); 2] {
        match self {
            Variant::AtRest => [
                (
                    "embedded, --no-at-rest-encryption",
                    EmbeddedOptions {
                        tls: false,
                        at_rest_encryption: false,
                    },
                ),
                (
                    "embedded, at-rest encryption on",
                    EmbeddedOptions {
                        tls: false,
                        at_rest_encryption: true,
                    },
                ),
            ],
            Variant::Tls => [
                (
                    "embedded, plain http/ws",
                    EmbeddedOptions {
                        tls: false,
                        at_rest_encryption: true,
                    },
                ),
                (
                    "embedded, TLS https/wss",
                    EmbeddedOptions {
                        tls: true,
                        at_rest_encryption: true,
                    },
                ),
            ],
        }
    }
}

/// `c24-loadgen compare` as asked on the command line.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub scenario: PathBuf,
    pub a: Option<String>,
    pub b: Option<String>,
    pub admin_token_a: Option<String>,
    pub admin_token_b: Option<String>,
    pub tls: TlsOptions,
    pub variant: Variant,
    /// A/B window pairs.
    pub pairs: usize,
    /// Traffic per window (the scenario's first `window` of arrivals).
    pub window: Duration,
    pub threads: usize,
    /// Seed of the bootstrap (default: the scenario's `seed`).
    pub seed: Option<u64>,
    pub report_json: Option<PathBuf>,
    /// `--report-html FILE`.
    pub report_html: Option<PathBuf>,
    /// `--summary-md FILE`.
    pub summary_md: Option<PathBuf>,
    /// Print one line per window to stderr.
    pub progress: bool,
}

/// One window's measurements.
#[derive(Debug)]
pub struct Window {
    pub totals: Recorder,
    pub traffic: Duration,
}

/// A finished comparison: the verdict and its report.
pub struct CompareFinished {
    pub exit: Exit,
    pub report: CompareReport,
    pub summary: String,
}

struct Side {
    label: String,
    target: Target,
    tenants: Arc<Vec<TenantCreated>>,
}

/// The shortest window that still holds a few arrivals at usual rates.
pub const MIN_WINDOW: Duration = Duration::from_millis(200);

/// Runs the comparison.
pub async fn run(req: &CompareRequest) -> Result<CompareFinished, Failure> {
    let plan = scenario::load(&req.scenario)?;
    if req.pairs == 0 {
        return Err(Failure::Usage("--pairs: at least 1".into()));
    }
    if req.window < MIN_WINDOW {
        return Err(Failure::Usage(format!(
            "--window: at least {}ms",
            MIN_WINDOW.as_millis()
        )));
    }
    command::writable_all(&[
        ("--report-json", &req.report_json),
        ("--report-html", &req.report_html),
        ("--summary-md", &req.summary_md),
    ])?;
    let (a, b) = match (&req.a, &req.b) {
        (Some(a), Some(b)) => {
            let ta = command::target(
                Some(a),
                req.admin_token_a.clone(),
                &req.tls,
                Default::default(),
            )
            .await?;
            let (ta, tb) = after(
                ta,
                command::target(
                    Some(b),
                    req.admin_token_b.clone(),
                    &req.tls,
                    Default::default(),
                ),
            )
            .await?;
            ((format!("--a {a}"), ta), (format!("--b {b}"), tb))
        }
        (None, None) => {
            if req.admin_token_a.is_some() || req.admin_token_b.is_some() {
                return Err(Failure::Usage(
                    "--admin-token-a/-b go with --a/--b; the embedded cores make their own".into(),
                ));
            }
            let [(la, oa), (lb, ob)] = req.variant.sides();
            let ta = Target::embedded_with(oa).await?;
            let (ta, tb) = after(ta, Target::embedded_with(ob)).await?;
            ((la.to_string(), ta), (lb.to_string(), tb))
        }
        _ => {
            return Err(Failure::Usage(
                "give both --a URL and --b URL, or neither (both variants embedded)".into(),
            ));
        }
    };
    let run_id = format!("{:06x}", fastrand::u32(..0x0100_0000));
    let mut sides = Vec::with_capacity(2);
    let mut failure = None;
    for (label, target) in [a, b] {
        if failure.is_none() {
            match provision::tenants(&target, &plan.tenants, &run_id).await {
                Ok(t) => sides.push(Side {
                    label,
                    target,
                    tenants: Arc::new(t),
                }),
                Err(e) => {
                    failure = Some(Failure::from(e));
                    target.shutdown().await;
                }
            }
        } else {
            target.shutdown().await;
        }
    }
    let result = match failure {
        Some(f) => Err(f),
        None => alternate(&plan, &sides, req).await,
    };
    let info = sides.iter().map(|s| SideInfo {
        label: s.label.clone(),
        target: s.target.http_base.clone(),
        embedded: s.target.is_embedded(),
    });
    let info: Vec<SideInfo> = info.collect();
    for s in sides {
        s.target.shutdown().await;
    }
    let windows = result?;
    let report = CompareReport::build(&plan, req, &info, &windows);
    let summary = report::render(&report);
    if let Some(p) = &req.report_json {
        report::write(&report, p).map_err(Failure::Usage)?;
    }
    command::write_pages(
        req.report_html.as_deref(),
        || crate::report::html::compare_page(&report),
        req.summary_md.as_deref(),
        || crate::report::markdown::compare_summary(&report),
    )?;
    let exit = Exit::verdict(report.passed);
    Ok(CompareFinished {
        exit,
        report,
        summary,
    })
}

/// A's target and B's, started once A's is; when B's fails, A's is shut down.
async fn after<E>(
    a: Target,
    b: impl Future<Output = Result<Target, E>>,
) -> Result<(Target, Target), E> {
    match b.await {
        Ok(b) => Ok((a, b)),
        Err(e) => {
            a.shutdown().await;
            Err(e)
        }
    }
}

/// Which target a side was.
#[derive(Debug, Clone)]
pub struct SideInfo {
    pub label: String,
    pub target: String,
    pub embedded: bool,
}

/// A's and B's windows, in the order they ran.
async fn alternate(
    plan: &Plan,
    sides: &[Side],
    req: &CompareRequest,
) -> Result<[Vec<Window>; 2], Failure> {
    // Each window plays the scenario's first `window` of arrivals; its own
    // thresholds would abort a window, so they are judged afterwards.
    let mut window_plan = plan.clone();
    window_plan.duration = req.window;
    window_plan.thresholds.clear();
    let window_plan = Arc::new(window_plan);
    let mut out: [Vec<Window>; 2] = [Vec::new(), Vec::new()];
    for pair in 0..req.pairs {
        // ABBA…: every other pair runs B first, so a steady drift (a growing
        // database, a warming cache, throttling) falls on A and B alike
        // instead of always on the side that runs second.
        let order: [usize; 2] = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let Some(side) = sides.get(i) else { continue };
            let run_id = format!("{:06x}", fastrand::u32(..0x0100_0000));
            let opts = RunOptions {
                threads: req.threads,
                live: LiveMode::Quiet,
                hdr_log: None,
                shard: Default::default(),
                tls: side.target.tls(),
                observers: Vec::new(),
            };
            let r = run::execute(
                window_plan.clone(),
                &side.target.http_base,
                &side.target.ws_base,
                side.tenants.clone(),
                &run_id,
                &opts,
            )
            .await
            .map_err(|e| Failure::Target(e.to_string()))?;
            if let Some(why) = &r.aborted {
                return Err(Failure::Usage(format!("compare stopped: {why}")));
            }
            if req.progress {
                let ack = r
                    .totals
                    .combined(None, Channel::Webchat, Metric::Ack)
                    .map(|p| p.corrected.value_at_quantile(0.99));
                eprintln!(
                    "pair {}/{} {}: {} operations, {} errors{}",
                    pair + 1,
                    req.pairs,
                    if i == 0 { "A" } else { "B" },
                    r.totals.operation_count(None, None),
                    r.totals.error_count(None, None),
                    ack.map(|v| format!(
                        ", webchat.ack.p99 {}",
                        crate::thresholds::format_micros(v as f64)
                    ))
                    .unwrap_or_default()
                );
            }
            if let Some(slot) = out.get_mut(i) {
                slot.push(Window {
                    totals: r.totals,
                    traffic: r.traffic,
                });
            }
        }
    }
    Ok(out)
}

/// What `sel` reads from one window (the threshold machinery's own reading).
pub fn observe(sel: &Selector, rec: &Recorder, names: &[String], traffic: Duration) -> Option<f64> {
    Threshold {
        key: String::new(),
        check: String::new(),
        selector: sel.clone(),
        op: Op::Lt,
        bound: 0.0,
        abort_on_fail: None,
        line: 0,
    }
    .evaluate(rec, names, traffic)
    .observed
}

/// The statistics every metric is compared on, with their JSON names.
pub const STATS: [(&str, Stat); 4] = [
    ("p50", Stat::Percentile(50.0)),
    ("p99", Stat::Percentile(99.0)),
    ("p999", Stat::Percentile(99.9)),
    ("throughput", Stat::Rate),
];

/// The (A, B) figure of every pair where both windows had one.
pub fn paired(sel: &Selector, a: &[Window], b: &[Window], names: &[String]) -> Vec<(f64, f64)> {
    a.iter()
        .zip(b)
        .filter_map(|(wa, wb)| {
            Some((
                observe(sel, &wa.totals, names, wa.traffic)?,
                observe(sel, &wb.totals, names, wb.traffic)?,
            ))
        })
        .collect()
}

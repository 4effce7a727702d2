//! `--metrics-listen ADDR`: the run's figures so far as an OpenMetrics
//! endpoint (`GET /metrics`), refreshed every interval, for a Prometheus
//! scrape or a quick `curl` while a long run goes.
//!
//! The text is rendered once per interval by the [`Board`] (an
//! [`Observer`]) and served as is, so a scrape never touches the run.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::{Metric, Recorder};
use crate::observe::Observer;
use crate::scenario::{Channel, Plan};

/// The content type of OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The latest rendering of the run's figures.
#[derive(Debug)]
pub struct Board {
    plan: Arc<Plan>,
    text: Mutex<String>,
}

impl Board {
    pub fn new(plan: Arc<Plan>) -> Self {
        let names = scenario_names(&plan);
        let text = render(
            &plan,
            &names,
            &Recorder::new(plan.scenarios.len()),
            Duration::ZERO,
            0,
        );
        Board {
            plan,
            text: Mutex::new(text),
        }
    }

    pub fn text(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

fn scenario_names(plan: &Plan) -> Vec<String> {
    plan.scenarios.iter().map(|s| s.name.clone()).collect()
}

impl Observer for Board {
    fn interval(
        &self,
        elapsed: Duration,
        _interval: &Recorder,
        totals: &Recorder,
        in_flight: usize,
    ) {
        let names = scenario_names(&self.plan);
        let text = render(&self.plan, &names, totals, elapsed, in_flight);
        if let Ok(mut t) = self.text.lock() {
            *t = text;
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, unit: Option<&str>, help: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    if let Some(u) = unit {
        let _ = writeln!(out, "# UNIT {name} {u}");
    }
    let _ = writeln!(out, "# HELP {name} {help}");
}

fn summary(out: &mut String, name: &str, labels: &str, h: &hdrhistogram::Histogram<u64>) {
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = h.value_at_quantile(q) as f64 / 1e6;
        let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.len());
}

/// The OpenMetrics text for the totals so far.
pub fn render(
    plan: &Plan,
    names: &[String],
    t: &Recorder,
    elapsed: Duration,
    in_flight: usize,
) -> String {
    let mut out = String::new();
    let mut keys: Vec<(u16, Channel, Metric)> = t
        .latencies
        .keys()
        .map(|k| (k.scenario, k.channel, k.metric))
        .collect();
    keys.sort();
    keys.dedup();
    let name_of = |i: u16| names.get(usize::from(i)).cloned().unwrap_or_default();
    for (fam, corrected, help) in [
        (
            "c24_loadgen_latency_seconds",
            true,
            "Latency from the intended start (corrected, wrk2's rule), all steps.",
        ),
        (
            "c24_loadgen_latency_uncorrected_seconds",
            false,
            "Latency from when the request actually left, all steps.",
        ),
    ] {
        family(&mut out, fam, "summary", Some("seconds"), help);
        for (s, c, m) in &keys {
            if let Some(p) = t.combined(Some(*s), *c, *m) {
                let h = if corrected {
                    &p.corrected
                } else {
                    &p.uncorrected
                };
                let labels = format!(
                    "scenario=\"{}\",channel=\"{}\",metric=\"{}\"",
                    esc(&name_of(*s)),
                    c.as_str(),
                    m.as_str()
                );
                summary(&mut out, fam, &labels, h);
            }
        }
    }
    family(
        &mut out,
        "c24_loadgen_operations",
        "counter",
        None,
        "Operations attempted (connects, sends, agent replies, expects, reconnects).",
    );
    for ((s, c), v) in &t.operations {
        let _ = writeln!(
            out,
            "c24_loadgen_operations_total{{scenario=\"{}\",channel=\"{}\"}} {v}",
            esc(&name_of(*s)),
            c.as_str()
        );
    }
    family(
        &mut out,
        "c24_loadgen_errors",
        "counter",
        None,
        "Failed operations by kind.",
    );
    for (k, v) in &t.errors {
        let _ = writeln!(
            out,
            "c24_loadgen_errors_total{{scenario=\"{}\",channel=\"{}\",kind=\"{}\"}} {v}",
            esc(&name_of(k.scenario)),
            k.channel.as_str(),
            esc(&k.kind)
        );
    }
    for (fam, help, get) in [
        (
            "c24_loadgen_conversations_started",
            "Conversations started.",
            (|c: &crate::metrics::ScenarioCounters| c.started)
                as fn(&crate::metrics::ScenarioCounters) -> u64,
        ),
        (
            "c24_loadgen_conversations_late",
            "Conversations started more than 10 ms after their intended time.",
            |c| c.late,
        ),
        (
            "c24_loadgen_conversations_dropped",
            "Arrivals not started: max_conversations were in flight.",
            |c| c.dropped,
        ),
        (
            "c24_loadgen_conversations_completed",
            "Conversations that ran every step.",
            |c| c.completed,
        ),
        (
            "c24_loadgen_conversations_failed",
            "Conversations stopped at a failed step.",
            |c| c.failed,
        ),
    ] {
        family(&mut out, fam, "counter", None, help);
        for (i, name) in names.iter().enumerate() {
            let c = t.scenario_totals(Some(i as u16));
            let _ = writeln!(out, "{fam}_total{{scenario=\"{}\"}} {}", esc(name), get(&c));
        }
    }
    family(
        &mut out,
        "c24_loadgen_scheduler_lag_seconds",
        "summary",
        Some("seconds"),
        "How late the generator started conversations and woke steps.",
    );
    summary(
        &mut out,
        "c24_loadgen_scheduler_lag_seconds",
        "source=\"generator\"",
        &t.lag,
    );
    family(
        &mut out,
        "c24_loadgen_in_flight",
        "gauge",
        None,
        "Conversations in flight.",
    );
    let _ = writeln!(out, "c24_loadgen_in_flight {in_flight}");
    family(
        &mut out,
        "c24_loadgen_elapsed_seconds",
        "gauge",
        Some("seconds"),
        "Time since the traffic phase began.",
    );
    let _ = writeln!(out, "c24_loadgen_elapsed_seconds {}", elapsed.as_secs_f64());
    family(
        &mut out,
        "c24_loadgen_asked_rate",
        "gauge",
        None,
        "Arrivals asked per second now (open models).",
    );
    let _ = writeln!(
        out,
        "c24_loadgen_asked_rate {}",
        plan.asked_rate_at(elapsed.min(plan.duration))
    );
    family(
        &mut out,
        "c24_loadgen_threshold_passing",
        "gauge",
        None,
        "1 while a threshold holds on the figures so far, else 0.",
    );
    let during = elapsed.min(plan.duration);
    for th in &plan.thresholds {
        let ok = th.evaluate(t, names, during).passed;
        let _ = writeln!(
            out,
            "c24_loadgen_threshold_passing{{key=\"{}\",check=\"{}\"}} {}",
            esc(&th.key),
            esc(&th.check),
            u8::from(ok)
        );
    }
    out.push_str("# EOF\n");
    out
}

async fn metrics(State(board): State<Arc<Board>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], board.text())
}

/// Binds `addr` (port 0 picks one) and serves `/metrics` until the handle is aborted.
pub async fn serve(
    addr: SocketAddr,
    board: Arc<Board>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(board);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "--metrics-listen stopped");
        }
    });
    Ok((local, task))
}

//! The end-of-run table: scenarios, latency per channel × metric (corrected,
//! with the uncorrected figures beside), the core's own figures, errors,
//! thresholds and the verdict.

use std::fmt::Write as _;

use crate::metrics::{Metric, Percentiles, Recorder};
use crate::scenario::Channel;
use crate::thresholds::format_micros;

use super::Report;

fn ms(us: u64) -> String {
    format_micros(us as f64)
}

pub fn render(report: &Report, totals: &Recorder) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "c24-loadgen: {} — {:.1}s of traffic against {}{}",
        report.name,
        report.duration_s,
        report.target,
        if report.embedded_target {
            " (embedded core)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "\n{:<16} {:<6} {:>9} {:>10} {:>8} {:>6} {:>8} {:>9} {:>7} {:>11}",
        "scenario",
        "model",
        "asked/s",
        "achieved/s",
        "started",
        "late",
        "dropped",
        "completed",
        "failed",
        "interrupted"
    );
    for s in &report.scenarios {
        let asked = match (s.asked_rate, s.visitors) {
            (Some(r), _) => format!("{r:.1}"),
            (None, Some(v)) => format!("{v} vis."),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:>9} {:>10.1} {:>8} {:>6} {:>8} {:>9} {:>7} {:>11}",
            s.name,
            s.model,
            asked,
            s.achieved_rate,
            s.started,
            s.late,
            s.dropped,
            s.completed,
            s.failed,
            s.interrupted
        );
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>10} {:>9}   rate",
        "latency", "count", "p50", "p90", "p99", "p99.9", "max", "uncorr p50", "p99"
    );
    let secs = report.duration_s.max(1e-9);
    for c in Channel::ALL {
        for m in Metric::ALL {
            let Some(p) = totals.combined(None, c, m) else {
                continue;
            };
            let cor = Percentiles::of(&p.corrected);
            let unc = Percentiles::of(&p.uncorrected);
            let _ = writeln!(
                out,
                "{:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>10} {:>9}   {:.1}/s",
                format!("{c}.{}", m.as_str()),
                p.corrected.len(),
                ms(cor.p50),
                ms(cor.p90),
                ms(cor.p99),
                ms(cor.p999),
                ms(cor.max),
                ms(unc.p50),
                ms(unc.p99),
                p.corrected.len() as f64 / secs
            );
        }
    }
    let _ = writeln!(
        out,
        "(corrected: from each step's intended start; uncorrected: from when it was sent)"
    );
    if let Some(server) = &report.server {
        let _ = writeln!(
            out,
            "\nserver side (GET /admin/v1/throughput, {:.0}s window, latency over {:.0}s):",
            server.window_ms as f64 / 1000.0,
            server.latency_window_ms as f64 / 1000.0
        );
        for c in &server.per_channel {
            if c.messages == 0 && c.ingest_latency_us.count == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<10} ingest receive→commit p50 {} p99 {} max {} | encrypt {:.1}µs/msg | {} msgs, {} errors",
                c.channel,
                ms(c.ingest_latency_us.p50),
                ms(c.ingest_latency_us.p99),
                ms(c.ingest_latency_us.max),
                c.encrypt_ns_per_msg / 1000.0,
                c.messages,
                c.errors
            );
        }
    }
    let g = &report.generator;
    let _ = writeln!(
        out,
        "\ngenerator: {} thread(s), start lag p50 {} p99 {} max {}, {} late, {} dropped",
        g.threads,
        ms(g.scheduler_lag_us.p50),
        ms(g.scheduler_lag_us.p99),
        ms(g.scheduler_lag_us.max),
        g.late_starts,
        g.dropped_starts
    );
    if let Some(m) = &g.message {
        let _ = writeln!(out, "WARNING: {m}");
    }
    if report.errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let _ = writeln!(out, "errors:");
        for e in &report.errors {
            let _ = writeln!(
                out,
                "  {:<16} {:<9} {:<28} {}",
                e.scenario, e.channel, e.kind, e.count
            );
        }
    }
    if !report.thresholds.is_empty() {
        let _ = writeln!(out, "thresholds:");
        for t in &report.thresholds {
            let _ = writeln!(
                out,
                "  {} {} {} ({}; line {})",
                if t.passed { "PASS" } else { "FAIL" },
                t.key,
                t.check,
                t.detail,
                t.line
            );
        }
    }
    if let Some(a) = &report.aborted {
        let _ = writeln!(out, "aborted: {a}");
    }
    let failed: Vec<&str> = report
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.key.as_str())
        .collect();
    if report.passed {
        let _ = writeln!(out, "RESULT: PASSED");
    } else if failed.is_empty() {
        let _ = writeln!(out, "RESULT: FAILED (run aborted)");
    } else {
        let _ = writeln!(
            out,
            "RESULT: FAILED: {} of {} threshold(s) failed: {}",
            failed.len(),
            report.thresholds.len(),
            failed.join(", ")
        );
    }
    out
}

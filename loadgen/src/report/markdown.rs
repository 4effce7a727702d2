//! `--summary-md FILE`: a short Markdown summary fit for a CI job summary
//! (e.g. appended to `$GITHUB_STEP_SUMMARY`): the verdict, the thresholds,
//! the main latencies, errors, and the generator's own health.

use std::fmt::Write as _;

use super::Report;
use crate::capacity::CapacityReport;
use crate::capacity::search::Ended;
use crate::compare::CompareReport;
use crate::compare::bootstrap::Ratio;
use crate::thresholds::format_micros;

/// Markdown table cells must not break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn mark(passed: bool) -> &'static str {
    if passed { "✅ pass" } else { "❌ **FAIL**" }
}

/// The summary of a `run` (or a `merge`).
pub fn run_summary(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## c24-loadgen: {} — {}\n",
        cell(&r.name),
        if r.passed { "✅ PASSED" } else { "❌ FAILED" }
    );
    let _ = writeln!(
        o,
        "{:.1}s of traffic against `{}`{}.\n",
        r.duration_s,
        r.target,
        if r.embedded_target {
            " (embedded core)"
        } else {
            ""
        }
    );
    if let Some(a) = &r.aborted {
        let _ = writeln!(o, "> **Aborted:** {}\n", cell(a));
    }
    if let Some(m) = &r.generator.message {
        let _ = writeln!(o, "> ⚠️ {}\n", cell(m));
    }
    if !r.thresholds.is_empty() {
        o.push_str("| threshold | check | observed | result |\n|---|---|---|---|\n");
        for t in &r.thresholds {
            let _ = writeln!(
                o,
                "| `{}` | `{}` | {} | {} |",
                cell(&t.key),
                cell(&t.check),
                cell(&t.detail),
                mark(t.passed)
            );
        }
        o.push('\n');
    }
    o.push_str("| scenario | started | completed | failed | late | dropped | achieved/s |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for s in &r.scenarios {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            cell(&s.name),
            s.started,
            s.completed,
            s.failed,
            s.late,
            s.dropped,
            s.achieved_rate
        );
    }
    o.push('\n');
    // One row per report entry: scenario × channel × metric × step.
    o.push_str("| latency (corrected) | step | count | p50 | p99 | p99.9 | max |\n|---|---|---:|---:|---:|---:|---:|\n");
    for e in &r.latency {
        let step = match (&e.step, &e.step_kind) {
            (Some(i), Some(k)) => format!("{i} {k}"),
            (Some(i), None) => i.to_string(),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| `{}.{}` | {} | {} | {} | {} | {} | {} |",
            cell(&e.channel),
            cell(&e.metric),
            step,
            e.count,
            format_micros(e.corrected.p50 as f64),
            format_micros(e.corrected.p99 as f64),
            format_micros(e.corrected.p999 as f64),
            format_micros(e.corrected.max as f64)
        );
    }
    o.push('\n');
    let errors: u64 = r.errors.iter().map(|e| e.count).sum();
    let ops: u64 = r.operations.iter().map(|e| e.count).sum();
    let _ = writeln!(o, "Errors: {errors} of {ops} operations.");
    for e in &r.errors {
        let _ = writeln!(o, "- `{}` {}: {}", cell(&e.channel), cell(&e.kind), e.count);
    }
    o
}

fn ratio(r: &Ratio) -> String {
    match (r.ratio, r.ci_low, r.ci_high) {
        (Some(x), Some(l), Some(h)) => format!("{x:.3} [{l:.3}, {h:.3}]"),
        (Some(x), _, _) => format!("{x:.3}"),
        _ => "–".into(),
    }
}

/// The summary of a `compare`.
pub fn compare_summary(r: &CompareReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## c24-loadgen compare: {} — {}\n",
        cell(&r.name),
        if r.passed { "✅ PASSED" } else { "❌ FAILED" }
    );
    let _ = writeln!(
        o,
        "A: {} (`{}`)  \nB: {} (`{}`)  \n{} pairs of {:.1}s windows, A B A B …; B/A with {:.0}% bootstrap intervals.\n",
        cell(&r.a.label),
        r.a.target,
        cell(&r.b.label),
        r.b.target,
        r.pairs,
        r.window_s,
        100.0 * r.bootstrap.confidence
    );
    if !r.thresholds.is_empty() {
        o.push_str(
            "| threshold | check | judged on | observed | result |\n|---|---|---|---|---|\n",
        );
        for t in &r.thresholds {
            let _ = writeln!(
                o,
                "| `{}` | `{}` | {} | {} | {} |",
                cell(&t.key),
                cell(&t.check),
                t.side,
                cell(&t.detail),
                mark(t.passed)
            );
        }
        o.push('\n');
    }
    o.push_str("| metric | A p99 | B p99 | p50 B/A | p99 B/A | p99.9 B/A | throughput B/A |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for m in &r.metrics {
        let _ = writeln!(
            o,
            "| `{}.{}` | {} | {} | {} | {} | {} | {} |",
            cell(&m.channel),
            cell(&m.metric),
            format_micros(m.a.corrected.p99 as f64),
            format_micros(m.b.corrected.p99 as f64),
            ratio(&m.p50),
            ratio(&m.p99),
            ratio(&m.p999),
            ratio(&m.throughput)
        );
    }
    o.push('\n');
    for (l, h) in [("A", &r.tls_handshake.a), ("B", &r.tls_handshake.b)] {
        match h {
            Some(h) => {
                let _ = writeln!(
                    o,
                    "TLS handshake {l}: p50 {}, p99 {} ({} handshakes).  ",
                    format_micros(h.us.p50 as f64),
                    format_micros(h.us.p99 as f64),
                    h.count
                );
            }
            None => {
                let _ = writeln!(o, "TLS handshake {l}: none (plain).  ");
            }
        }
    }
    let _ = writeln!(
        o,
        "\nErrors: A {} of {} operations, B {} of {}.",
        r.a.errors, r.a.operations, r.b.errors, r.b.operations
    );
    o
}

/// The summary of a `capacity` search.
pub fn capacity_summary(r: &CapacityReport) -> String {
    let mut o = String::new();
    let slos: Vec<String> = r
        .slos
        .iter()
        .map(|s| format!("`{} {}`", s.key, s.check))
        .collect();
    let _ = writeln!(o, "## c24-loadgen capacity: {}\n", cell(&r.name));
    let _ = writeln!(o, "SLOs: {} against `{}`.\n", slos.join(", "), r.target);
    for s in &r.searches {
        let mix = crate::capacity::report::mix_text(&s.mix);
        match s.max_rate {
            Some(m) => {
                let _ = writeln!(
                    o,
                    "**{}: {m:.1} conversations/s** held every SLO ({}).\n",
                    mix,
                    match s.ended {
                        Ended::Slo => "an SLO broke above it",
                        Ended::MaxRate => "every rate up to the ceiling held",
                        Ended::Generator =>
                            "a lower bound: the generator could not keep a higher rate",
                    }
                );
            }
            None => {
                let _ = writeln!(o, "**{}: no rate held** the SLOs.\n", mix);
            }
        }
        o.push_str("| rate/s | achieved/s | held | errors | SLOs |\n|---:|---:|---|---:|---|\n");
        for p in &s.curve {
            let slo: Vec<String> = p
                .slos
                .iter()
                .map(|x| format!("`{}` {}", x.key, x.detail))
                .collect();
            let _ = writeln!(
                o,
                "| {:.1} | {:.1} | {} | {:.2}% | {} |",
                p.rate,
                p.achieved_rate,
                if p.generator_lagging {
                    "⚠️ generator"
                } else if p.held {
                    "✅"
                } else {
                    "❌"
                },
                p.error_rate,
                cell(&slo.join("; "))
            );
        }
        o.push('\n');
    }
    o
}

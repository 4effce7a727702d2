//! `--report-html FILE`: one self-contained page (inline CSS, inline SVG
//! charts drawn by [`super::svg`], a few lines of inline script; nothing is
//! fetched) for `run`, `compare` and `capacity`.
//!
//! The script only marks the page once it has loaded: `data-charts` (charts
//! on the page) and `data-rendered` (charts with a drawn series) on `<body>`,
//! which the browser test reads back.

use std::fmt::Write as _;
use std::path::Path;

use super::svg::{self, RatioRow, Scale, Series, esc};
use super::{Report, json};
use crate::capacity::CapacityReport;
use crate::capacity::search::Ended;
use crate::compare::CompareReport;
use crate::metrics::{Metric, Percentiles, Recorder};
use crate::observe::IntervalPoint;
use crate::scenario::Channel;
use crate::thresholds::format_micros;

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1480px;color:#111;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0} td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right} th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}
.pass{color:#067d3f;font-weight:600} .fail{color:#b3261e;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff} .badge.pass{background:#067d3f;color:#fff} .badge.fail{background:#b3261e;color:#fff}
.warn{background:#fff4e0;border:1px solid #f0b050;padding:8px 12px;margin:10px 0}
.grid-2{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0}
svg.chart{background:#fff;border:1px solid #e4e4e4;max-width:100%;height:auto}
svg .title{font-weight:600;font-size:13px} svg .tick,svg .legend{font-size:11px;fill:#444}
svg .grid{stroke:#eee} svg .frame{stroke:#bbb} svg .empty{fill:#999}
.meta td{text-align:left}
"#;

const SCRIPT: &str = r#"
(function () {
  var charts = document.querySelectorAll('svg.chart');
  var drawn = 0;
  charts.forEach(function (c) { if (c.querySelector('.series')) { drawn++; } });
  document.body.setAttribute('data-charts', String(charts.length));
  document.body.setAttribute('data-rendered', String(drawn));
})();
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n",
        esc(title)
    )
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        r#"<span class="badge pass">PASSED</span>"#
    } else {
        r#"<span class="badge fail">FAILED</span>"#
    }
}

fn pass_cell(passed: bool) -> &'static str {
    if passed {
        r#"<td class="pass">pass</td>"#
    } else {
        r#"<td class="fail">FAIL</td>"#
    }
}

/// Writes a page.
pub fn write(html: &str, path: &Path) -> Result<(), String> {
    std::fs::write(path, html).map_err(|e| format!("--report-html {}: {e}", path.display()))
}

fn channels_of(points: &[IntervalPoint]) -> Vec<Channel> {
    let mut c: Vec<Channel> = points
        .iter()
        .flat_map(|p| {
            p.latency
                .iter()
                .map(|l| l.channel)
                .chain(p.channels.iter().map(|c| c.channel))
        })
        .collect();
    c.sort();
    c.dedup();
    c
}

fn percentiles_row(label: &str, count: u64, p: &Percentiles) -> String {
    format!(
        "<tr><td>{}</td><td>{count}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(label),
        format_micros(p.p50 as f64),
        format_micros(p.p90 as f64),
        format_micros(p.p99 as f64),
        format_micros(p.p999 as f64),
        format_micros(p.max as f64)
    )
}

const PCT_HEAD: &str = "<tr><th>metric</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>";

/// The page of a `run`: latency over time per channel, throughput and
/// errors over time, percentile spectra (corrected and uncorrected),
/// thresholds.
pub fn run_page(r: &Report, totals: &Recorder, timeline: &[IntervalPoint]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>c24-loadgen: {} {}</h1><table class=\"meta\"><tr><td>target</td><td>{}{}</td></tr><tr><td>started</td><td>{}</td></tr><tr><td>traffic</td><td>{:.1}s (elapsed {:.1}s), {} worker thread(s)</td></tr><tr><td>file</td><td>{}</td></tr></table>",
        esc(&r.name),
        verdict(r.passed),
        esc(&r.target),
        if r.embedded_target {
            " (embedded core)"
        } else {
            ""
        },
        esc(&r.started_at),
        r.duration_s,
        r.elapsed_s,
        r.generator.threads,
        esc(&r.file)
    );
    if let Some(why) = &r.aborted {
        let _ = write!(b, "<div class=\"warn\">Aborted: {}</div>", esc(why));
    }
    if let Some(m) = &r.generator.message {
        let _ = write!(b, "<div class=\"warn\">{}</div>", esc(m));
    }
    b.push_str("<h2>Thresholds</h2>");
    if r.thresholds.is_empty() {
        b.push_str("<p>No thresholds in this scenario.</p>");
    } else {
        b.push_str("<table><tr><th>key</th><th>check</th><th>observed</th><th>result</th><th>line</th></tr>");
        for t in &r.thresholds {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>",
                esc(&t.key),
                esc(&t.check),
                esc(&t.detail),
                pass_cell(t.passed),
                t.line
            );
        }
        b.push_str("</table>");
    }
    if timeline.is_empty() {
        b.push_str("<p>No timeline: this report was merged from shards, which keep only their distributions.</p>");
    } else {
        over_time(&mut b, timeline);
    }
    if r.errors.is_empty() {
        b.push_str("<p>No errors.</p>");
    } else {
        b.push_str("<table><tr><th>scenario</th><th>channel</th><th>kind</th><th>count</th></tr>");
        for e in &r.errors {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.scenario),
                esc(&e.channel),
                esc(&e.kind),
                e.count
            );
        }
        b.push_str("</table>");
    }
    b.push_str(
        "<h2>Percentile spectrum (corrected solid, uncorrected dashed)</h2><div class=\"grid-2\">",
    );
    let keys = totals.channel_metrics();
    let mut table = String::from(PCT_HEAD);
    for (c, m) in &keys {
        if let Some(p) = totals.combined(None, *c, *m) {
            let name = format!("{}.{}", c.as_str(), m.as_str());
            b.push_str(&svg::line_chart(
                &format!("{name} percentile spectrum"),
                Scale::Percentile,
                Scale::Micros,
                &[
                    Series::new("corrected", svg::spectrum(&p.corrected), 0),
                    Series::new("uncorrected", svg::spectrum(&p.uncorrected), 1).dashed(),
                ],
            ));
            table.push_str(&percentiles_row(
                &name,
                p.corrected.len(),
                &Percentiles::of(&p.corrected),
            ));
            table.push_str(&percentiles_row(
                &format!("{name} (uncorrected)"),
                p.uncorrected.len(),
                &Percentiles::of(&p.uncorrected),
            ));
        }
    }
    b.push_str("</div><h2>Latency</h2><table>");
    b.push_str(&table);
    b.push_str("</table>");
    if let Some(s) = &r.server {
        b.push_str("<h2>The core's own figures (same window)</h2><table><tr><th>channel</th><th>messages</th><th>msgs/s</th><th>ingest p50</th><th>ingest p99</th><th>encrypt/msg</th></tr>");
        for c in &s.per_channel {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.0}ns</td></tr>",
                esc(&c.channel),
                c.messages,
                c.msgs_per_s,
                format_micros(c.ingest_latency_us.p50 as f64),
                format_micros(c.ingest_latency_us.p99 as f64),
                c.encrypt_ns_per_msg
            );
        }
        b.push_str("</table>");
    }
    page(&format!("c24-loadgen: {}", r.name), &b)
}

/// Latency, throughput and errors over the run, from the per-second timeline.
fn over_time(b: &mut String, timeline: &[IntervalPoint]) {
    let channels = channels_of(timeline);
    b.push_str(
        "<h2>Latency over time (corrected; p99 solid, p50 dashed)</h2><div class=\"grid-2\">",
    );
    for c in &channels {
        let mut metrics: Vec<Metric> = timeline
            .iter()
            .flat_map(|p| {
                p.latency
                    .iter()
                    .filter(|l| l.channel == *c)
                    .map(|l| l.metric)
            })
            // The ack's server-side split is in the spectra; over time it only crowds.
            .filter(|m| !matches!(m, Metric::Storage | Metric::Network))
            .collect();
        metrics.sort();
        metrics.dedup();
        let mut series = Vec::new();
        for (i, m) in metrics.iter().enumerate() {
            let pick = |f: fn(&crate::observe::IntervalLatency) -> u64| -> Vec<(f64, f64)> {
                timeline
                    .iter()
                    .filter_map(|p| {
                        p.latency
                            .iter()
                            .find(|l| l.channel == *c && l.metric == *m)
                            .map(|l| (p.t_s, f(l) as f64))
                    })
                    .collect()
            };
            series.push(Series::new(
                format!("{} p99", m.as_str()),
                pick(|l| l.p99),
                i,
            ));
            series.push(Series::new(format!("{} p50", m.as_str()), pick(|l| l.p50), i).dashed());
        }
        b.push_str(&svg::line_chart(
            &format!("{} latency over time", c.as_str()),
            Scale::Seconds,
            Scale::Micros,
            &series,
        ));
    }
    b.push_str("</div>");
    b.push_str("<h2>Throughput and errors over time</h2><div class=\"grid-2\">");
    let mut tput = Vec::new();
    let mut errs = Vec::new();
    let mut prev = 0.0;
    let spans: Vec<(f64, f64)> = timeline
        .iter()
        .map(|p| {
            let span = (p.t_s - prev).max(1e-3);
            prev = p.t_s;
            (p.t_s, span)
        })
        .collect();
    for (i, c) in channels.iter().enumerate() {
        let per = |errors: bool| -> Vec<(f64, f64)> {
            timeline
                .iter()
                .zip(&spans)
                .map(|(p, (t, span))| {
                    let v = p
                        .channels
                        .iter()
                        .find(|x| x.channel == *c)
                        .map(|x| if errors { x.errors } else { x.operations })
                        .unwrap_or(0);
                    (*t, v as f64 / span)
                })
                .collect()
        };
        tput.push(Series::new(
            format!("{} operations/s", c.as_str()),
            per(false),
            i,
        ));
        errs.push(Series::new(
            format!("{} errors/s", c.as_str()),
            per(true),
            i,
        ));
    }
    tput.push(
        Series::new(
            "conversations started/s",
            timeline
                .iter()
                .zip(&spans)
                .map(|(p, (t, span))| (*t, p.started as f64 / span))
                .collect(),
            7,
        )
        .dashed(),
    );
    b.push_str(&svg::line_chart(
        "Throughput",
        Scale::Seconds,
        Scale::Rate,
        &tput,
    ));
    b.push_str(&svg::line_chart(
        "Errors",
        Scale::Seconds,
        Scale::Rate,
        &errs,
    ));
    b.push_str("</div>");
}

fn ratio_cell(r: &crate::compare::bootstrap::Ratio) -> String {
    match (r.ratio, r.ci_low, r.ci_high) {
        (Some(x), Some(l), Some(h)) => format!("<td>{x:.3}× <small>[{l:.3}, {h:.3}]</small></td>"),
        (Some(x), _, _) => format!("<td>{x:.3}×</td>"),
        _ => "<td>–</td>".into(),
    }
}

/// The page of a `compare`: the ratios with their intervals, and per metric
/// A's and B's distributions side by side.
pub fn compare_page(r: &CompareReport) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>c24-loadgen compare: {} {}</h1><table class=\"meta\"><tr><td>A</td><td>{} ({})</td></tr><tr><td>B</td><td>{} ({})</td></tr><tr><td>windows</td><td>{} pairs of {:.1}s, {}</td></tr><tr><td>interval</td><td>{:.0}% bootstrap, {} resamples, seed {}</td></tr></table>",
        esc(&r.name),
        verdict(r.passed),
        esc(&r.a.label),
        esc(&r.a.target),
        esc(&r.b.label),
        esc(&r.b.target),
        r.pairs,
        r.window_s,
        esc(&r.order),
        100.0 * r.bootstrap.confidence,
        r.bootstrap.resamples,
        r.bootstrap.seed
    );
    for (l, s) in [("A", &r.a), ("B", &r.b)] {
        if let Some(m) = &s.generator.message {
            let _ = write!(b, "<div class=\"warn\">{l}: {}</div>", esc(m));
        }
    }
    b.push_str("<h2>Thresholds</h2>");
    if r.thresholds.is_empty() {
        b.push_str("<p>No thresholds in this scenario.</p>");
    } else {
        b.push_str("<table><tr><th>key</th><th>check</th><th>judged on</th><th>observed</th><th>result</th></tr>");
        for t in &r.thresholds {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                esc(&t.key),
                esc(&t.check),
                esc(&t.side),
                esc(&t.detail),
                pass_cell(t.passed)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>B/A ratios with 95% intervals</h2>");
    let mut rows = Vec::new();
    for m in &r.metrics {
        for (stat, ratio) in [
            ("p50", &m.p50),
            ("p99", &m.p99),
            ("p99.9", &m.p999),
            ("throughput", &m.throughput),
        ] {
            if let Some(x) = ratio.ratio {
                rows.push(RatioRow {
                    label: format!("{}.{} {stat}", m.channel, m.metric),
                    ratio: x,
                    low: ratio.ci_low,
                    high: ratio.ci_high,
                });
            }
        }
    }
    b.push_str(&svg::ratio_chart(
        "B / A (dot: ratio of means; bar: 95% interval)",
        &rows,
    ));
    b.push_str("<table><tr><th>metric</th><th>pairs</th><th>A p99</th><th>B p99</th><th>p50 B/A</th><th>p99 B/A</th><th>p99.9 B/A</th><th>throughput B/A</th></tr>");
    for m in &r.metrics {
        let _ = write!(
            b,
            "<tr><td>{}.{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
            esc(&m.channel),
            esc(&m.metric),
            m.pairs_used,
            format_micros(m.a.corrected.p99 as f64),
            format_micros(m.b.corrected.p99 as f64),
            ratio_cell(&m.p50),
            ratio_cell(&m.p99),
            ratio_cell(&m.p999),
            ratio_cell(&m.throughput)
        );
    }
    b.push_str("</table>");
    b.push_str("<h2>Distributions side by side (corrected solid, uncorrected dashed)</h2><div class=\"grid-2\">");
    for m in &r.metrics {
        let mut series = Vec::new();
        for (i, (label, d)) in [("A", &m.a), ("B", &m.b)].into_iter().enumerate() {
            if let Ok(h) = json::decode_histogram(&d.histogram.corrected) {
                series.push(Series::new(
                    format!("{label} corrected"),
                    svg::spectrum(&h),
                    i,
                ));
            }
            if let Ok(h) = json::decode_histogram(&d.histogram.uncorrected) {
                series.push(
                    Series::new(format!("{label} uncorrected"), svg::spectrum(&h), i).dashed(),
                );
            }
        }
        b.push_str(&svg::line_chart(
            &format!("{}.{}: A vs B", m.channel, m.metric),
            Scale::Percentile,
            Scale::Micros,
            &series,
        ));
    }
    b.push_str("</div><h2>TLS handshake (one-off per connection, not in the ratios)</h2><table>");
    b.push_str(PCT_HEAD);
    for (l, h) in [("A", &r.tls_handshake.a), ("B", &r.tls_handshake.b)] {
        match h {
            Some(h) => b.push_str(&percentiles_row(
                &format!("{l} webchat.tls_handshake"),
                h.count,
                &h.us,
            )),
            None => {
                let _ = write!(
                    b,
                    "<tr><td>{l}</td><td colspan=\"6\">plain: no TLS</td></tr>"
                );
            }
        }
    }
    b.push_str("</table>");
    let _ = write!(
        b,
        "<h2>Errors</h2><p>A: {} of {} operations ({:.3}%). B: {} of {} ({:.3}%).</p>",
        r.a.errors, r.a.operations, r.a.error_rate, r.b.errors, r.b.operations, r.b.error_rate
    );
    page(&format!("c24-loadgen compare: {}", r.name), &b)
}

/// The page of a `capacity` search: per mix the latency-versus-rate curve.
pub fn capacity_page(r: &CapacityReport) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>c24-loadgen capacity: {}</h1><table class=\"meta\"><tr><td>target</td><td>{}{}</td></tr><tr><td>SLOs</td><td>{}</td></tr><tr><td>search</td><td>from {}/s ×{} up to {}/s, {} bisections, {:.1}s per probe</td></tr></table>",
        esc(&r.name),
        esc(&r.target),
        if r.embedded_target {
            " (embedded core)"
        } else {
            ""
        },
        esc(&crate::capacity::report::slo_text(&r.slos)),
        r.search.start_rate,
        r.search.factor,
        r.search.max_rate,
        r.search.bisections,
        r.search.step_s
    );
    for s in &r.searches {
        let mix = crate::capacity::report::mix_text(&s.mix);
        let _ = write!(b, "<h2>Mix: {}</h2>", esc(&mix));
        match s.max_rate {
            Some(m) => {
                let why = match s.ended {
                    Ended::Slo => "an SLO broke above it",
                    Ended::MaxRate => "every rate up to the ceiling held",
                    Ended::Generator => "the load generator could not keep a higher rate: a lower bound",
                };
                let _ = write!(
                    b,
                    "<p><span class=\"badge pass\">{m:.1} conversations/s</span> held every SLO ({}); {why}.</p>",
                    esc(&crate::capacity::report::rates_text(&s.per_channel)),
                );
            }
            None => b.push_str("<p><span class=\"badge fail\">none</span> — the SLOs broke at every rate tried.</p>"),
        }
        let mut keys: Vec<(String, String)> = s
            .curve
            .iter()
            .flat_map(|p| {
                p.latency
                    .iter()
                    .map(|l| (l.channel.clone(), l.metric.clone()))
            })
            .filter(|(_, m)| m != "storage" && m != "network")
            .collect();
        keys.sort();
        keys.dedup();
        let marks: Vec<bool> = s
            .curve
            .iter()
            .map(|p| p.held && !p.generator_lagging)
            .collect();
        let mut series = Vec::new();
        for (i, (c, m)) in keys.iter().enumerate() {
            let mut pts99 = Vec::new();
            let mut pts50 = Vec::new();
            let mut mk = Vec::new();
            for (p, ok) in s.curve.iter().zip(&marks) {
                if let Some(l) = p.latency.iter().find(|l| &l.channel == c && &l.metric == m) {
                    pts99.push((p.rate, l.corrected.p99 as f64));
                    pts50.push((p.rate, l.corrected.p50 as f64));
                    mk.push(*ok);
                }
            }
            series.push(Series::new(format!("{c}.{m} p99"), pts99, i).marked(mk));
            series.push(Series::new(format!("{c}.{m} p50"), pts50, i).dashed());
        }
        b.push_str("<div class=\"grid-2\">");
        b.push_str(&svg::line_chart(
            "Latency versus arrival rate (corrected; dots: green held, red broke)",
            Scale::Rate,
            Scale::Micros,
            &series,
        ));
        b.push_str(&svg::line_chart(
            "Achieved versus asked rate",
            Scale::Rate,
            Scale::Rate,
            &[
                Series::new(
                    "achieved",
                    s.curve.iter().map(|p| (p.rate, p.achieved_rate)).collect(),
                    0,
                )
                .marked(marks.clone()),
                Series::new(
                    "asked",
                    s.curve.iter().map(|p| (p.rate, p.rate)).collect(),
                    7,
                )
                .dashed(),
            ],
        ));
        b.push_str("</div><table><tr><th>rate/s</th><th>achieved/s</th><th>held</th><th>errors</th><th>SLOs</th></tr>");
        for p in &s.curve {
            let slo: Vec<String> = p
                .slos
                .iter()
                .map(|x| format!("{} {} ({})", x.key, x.check, x.detail))
                .collect();
            let _ = write!(
                b,
                "<tr><td>{:.1}</td><td>{:.1}</td>{}<td>{:.2}%</td><td>{}</td></tr>",
                p.rate,
                p.achieved_rate,
                if p.generator_lagging {
                    r#"<td class="fail">generator lagging</td>"#
                } else {
                    pass_cell(p.held)
                },
                p.error_rate,
                esc(&slo.join("; "))
            );
        }
        b.push_str("</table>");
    }
    page(&format!("c24-loadgen capacity: {}", r.name), &b)
}

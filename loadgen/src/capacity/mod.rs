//! `c24-loadgen capacity`: the highest arrival rate the target sustains
//! within the SLOs, per channel mix, with the latency-versus-rate curve.
//!
//! Each probe replaces the scenario's stages by one constant rate for
//! `--step-duration` and judges the SLOs (threshold syntax) on that probe
//! alone; [`search`] picks the rates (raise by a factor, then bisect).
//!
//! - [`search`]: the step/bisect controller.
//! - [`report`]: the JSON report and the summary.

pub mod report;
pub mod search;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Exit;
use crate::command::{self, Failure};
use crate::live::LiveMode;
use crate::provision::{self, EmbeddedOptions};
use crate::run::{self, RunOptions};
use crate::scenario::{self, Channel, Model, Plan, Stage};
use crate::schedule::OpenSchedule;
use crate::thresholds::{self, Threshold};
use crate::tls::TlsOptions;

pub use report::CapacityReport;
use search::{Search, SearchPlan};

/// `c24-loadgen capacity` as asked on the command line.
#[derive(Debug, Clone)]
pub struct CapacityRequest {
    pub scenario: PathBuf,
    pub target: Option<String>,
    pub admin_token: Option<String>,
    pub tls: TlsOptions,
    pub embedded: EmbeddedOptions,
    /// `"webchat.ack.p99 < 50ms"`, as written.
    pub slos: Vec<String>,
    /// Channel mixes to search, `webchat=0.6,whatsapp=0.4`; none: the scenario's.
    pub mixes: Vec<String>,
    pub search: SearchPlan,
    /// Traffic per probe.
    pub step: Duration,
    pub threads: usize,
    pub report_json: Option<PathBuf>,
    /// `--report-html FILE`.
    pub report_html: Option<PathBuf>,
    /// `--summary-md FILE`.
    pub summary_md: Option<PathBuf>,
    /// One line per probe on stderr.
    pub progress: bool,
}

/// A finished search: the verdict and the report.
pub struct CapacityFinished {
    pub exit: Exit,
    pub report: CapacityReport,
    pub summary: String,
}

/// Parses one `--slo` into a threshold: `KEY OP BOUND`.
pub fn parse_slo(text: &str, scenarios: &[String]) -> Result<Threshold, String> {
    let at = text.find(['<', '>', '=']).ok_or_else(|| {
        format!("--slo {text:?}: write KEY OP BOUND, e.g. \"webchat.ack.p99 < 50ms\"")
    })?;
    let (key, check) = (text[..at].trim(), text[at..].trim());
    let selector =
        thresholds::parse_key(key, scenarios).map_err(|e| format!("--slo {text:?}: {e}"))?;
    if matches!(selector, thresholds::Selector::Overhead(_)) {
        return Err(format!(
            "--slo {text:?}: overhead ratios belong to `compare`"
        ));
    }
    let (op, bound) = thresholds::parse_check(check, selector.unit())
        .map_err(|e| format!("--slo {text:?}: {e}"))?;
    Ok(Threshold {
        key: key.to_string(),
        check: check.to_string(),
        selector,
        op,
        bound,
        abort_on_fail: None,
        line: 0,
    })
}

/// Parses `webchat=0.6,whatsapp=0.4` (shares normalised to sum 1).
pub fn parse_mix(text: &str) -> Result<Vec<(Channel, f64)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (c, w) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix {text:?}: write CHANNEL=SHARE,…"))?;
        let channel = Channel::parse(c.trim())
            .ok_or_else(|| format!("--mix {text:?}: unknown channel {c:?}"))?;
        let w: f64 = w
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| format!("--mix {text:?}: {w:?} is not a share"))?;
        if w > 0.0 {
            out.push((channel, w));
        }
    }
    let total: f64 = out.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err(format!("--mix {text:?}: no channel has a share"));
    }
    Ok(out.into_iter().map(|(c, w)| (c, w / total)).collect())
}

/// The plan with every open scenario at a constant share of `rate` for
/// `step`, and (if given) the channel mix replaced.
pub fn probe_plan(plan: &Plan, rate: f64, step: Duration, mix: Option<&[(Channel, f64)]>) -> Plan {
    let means: Vec<f64> = plan
        .scenarios
        .iter()
        .map(|s| match &s.model {
            Model::Open { schedule, .. } => {
                schedule.expected_arrivals() / schedule.duration().as_secs_f64().max(1e-9)
            }
            Model::Closed { .. } => 0.0,
        })
        .collect();
    let open = plan
        .scenarios
        .iter()
        .filter(|s| matches!(s.model, Model::Open { .. }))
        .count()
        .max(1) as f64;
    let total: f64 = means.iter().sum();
    let mut p = plan.clone();
    p.duration = step;
    p.thresholds.clear();
    for (s, mean) in p.scenarios.iter_mut().zip(means) {
        if let Model::Open { schedule, .. } = &mut s.model {
            let share = if total > 0.0 {
                mean / total
            } else {
                1.0 / open
            };
            let r = rate * share;
            *schedule = OpenSchedule::new(
                &[Stage {
                    from: r,
                    to: r,
                    duration: step,
                }],
                step,
            );
        }
        if let Some(m) = mix {
            s.mix = m.to_vec();
        }
    }
    p
}

/// Runs the search.
pub async fn run(req: &CapacityRequest) -> Result<CapacityFinished, Failure> {
    let plan = scenario::load(&req.scenario)?;
    if !plan
        .scenarios
        .iter()
        .any(|s| matches!(s.model, Model::Open { .. }))
    {
        return Err(Failure::Usage(format!(
            "{}: capacity raises an arrival rate; the scenario needs an open model ([[stages]])",
            plan.path.display()
        )));
    }
    req.search.validate().map_err(Failure::Usage)?;
    if req.step < Duration::from_millis(200) {
        return Err(Failure::Usage("--step-duration: at least 200ms".into()));
    }
    if req.slos.is_empty() {
        return Err(Failure::Usage(
            "give at least one --slo, e.g. --slo \"webchat.ack.p99 < 50ms\"".into(),
        ));
    }
    let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
    let slos = req
        .slos
        .iter()
        .map(|s| parse_slo(s, &names))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Usage)?;
    let mut mixes: Vec<Option<Vec<(Channel, f64)>>> = Vec::new();
    for m in &req.mixes {
        let mix = parse_mix(m).map_err(Failure::Usage)?;
        for (c, _) in &mix {
            if plan.scenarios.iter().any(|s| s.script(*c).is_none()) {
                return Err(Failure::Usage(format!(
                    "--mix {m:?}: the scenario has no {} script",
                    c.as_str()
                )));
            }
        }
        mixes.push(Some(mix));
    }
    if mixes.is_empty() {
        mixes.push(None);
    }
    command::writable_all(&[
        ("--report-json", &req.report_json),
        ("--report-html", &req.report_html),
        ("--summary-md", &req.summary_md),
    ])?;
    let target = command::target(
        req.target.as_deref(),
        req.admin_token.clone(),
        &req.tls,
        req.embedded,
    )
    .await?;
    let result = search_all(&plan, &target, req, &slos, &names, &mixes).await;
    let target_url = target.http_base.clone();
    let embedded = target.is_embedded();
    target.shutdown().await;
    let searches = result?;
    let report = CapacityReport::build(&plan, req, &slos, target_url, embedded, searches);
    let summary = report::render(&report);
    if let Some(p) = &req.report_json {
        report::write(&report, p).map_err(Failure::Usage)?;
    }
    command::write_pages(
        req.report_html.as_deref(),
        || crate::report::html::capacity_page(&report),
        req.summary_md.as_deref(),
        || crate::report::markdown::capacity_summary(&report),
    )?;
    let exit = Exit::verdict(report.searches.iter().all(|s| s.max_rate.is_some()));
    Ok(CapacityFinished {
        exit,
        report,
        summary,
    })
}

async fn search_all(
    plan: &Plan,
    target: &provision::Target,
    req: &CapacityRequest,
    slos: &[Threshold],
    names: &[String],
    mixes: &[Option<Vec<(Channel, f64)>>],
) -> Result<Vec<report::SearchResult>, Failure> {
    let run_id = format!("{:06x}", fastrand::u32(..0x0100_0000));
    let tenants = Arc::new(provision::tenants(target, &plan.tenants, &run_id).await?);
    let mut out = Vec::new();
    for mix in mixes {
        let mut search = Search::new(req.search);
        let mut probes = Vec::new();
        while let Some(rate) = search.next() {
            let p = Arc::new(probe_plan(plan, rate, req.step, mix.as_deref()));
            let opts = RunOptions {
                threads: req.threads,
                live: LiveMode::Quiet,
                hdr_log: None,
                shard: Default::default(),
                tls: target.tls(),
                observers: Vec::new(),
            };
            let probe_id = format!("{:06x}", fastrand::u32(..0x0100_0000));
            let r = run::execute(
                p.clone(),
                &target.http_base,
                &target.ws_base,
                tenants.clone(),
                &probe_id,
                &opts,
            )
            .await
            .map_err(|e| Failure::Target(e.to_string()))?;
            if let Some(why) = &r.aborted {
                return Err(Failure::Usage(format!("capacity stopped: {why}")));
            }
            let probe = report::Probe::measure(rate, &r, slos, names);
            if req.progress {
                eprintln!("{}", probe.line());
            }
            if probe.generator_lagging {
                search.generator_limited();
            } else {
                search.record(rate, probe.held);
            }
            probes.push(probe);
        }
        out.push(report::SearchResult::new(
            mix.clone()
                .or_else(|| plan.scenarios.first().map(|s| s.mix.clone())),
            &search,
            probes,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_use_the_threshold_syntax() {
        let t = parse_slo("webchat.ack.p99 < 50ms", &[]).unwrap();
        assert_eq!(
            (t.key.as_str(), t.check.as_str(), t.bound),
            ("webchat.ack.p99", "< 50ms", 50_000.0)
        );
        let t = parse_slo("errors.rate<0.1%", &[]).unwrap();
        assert_eq!(t.bound, 0.1);
        for bad in [
            "webchat.ack.p99",
            "webchat.ack.p99 < 50",
            "sms.ack.p99 < 1ms",
            "overhead.webchat.ack.p99 < 1.1",
        ] {
            assert!(parse_slo(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn mixes_parse_and_normalise() {
        let m = parse_mix("webchat=3, email=1").unwrap();
        assert_eq!(m, vec![(Channel::Webchat, 0.75), (Channel::Email, 0.25)]);
        assert!(parse_mix("sms=1").is_err());
        assert!(parse_mix("webchat=0").is_err());
        assert!(parse_mix("webchat").is_err());
    }
}

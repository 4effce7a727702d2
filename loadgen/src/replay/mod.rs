//! `c24-loadgen replay TRACE.jsonl`: recorded traffic played again, with its
//! timing (each message due at its recorded offset, divided by `--speed`:
//! intended-time scheduling, so a slow target shows as latency, not as a
//! slower replay) and its shape (per conversation, channel and direction;
//! synthetic content of the recorded sizes; outbound messages as agent
//! replies through the agent API).
//!
//! - [`trace`]: the JSONL trace (`c24_api::admin::traffic::TraceRecord`),
//!   read with every bad line named `FILE:LINE`.
//! - [`schedule`]: records → conversations with their intended offsets.
//! - [`tenants`]: which target tenant plays each trace tenant
//!   (`--tenants-map`, `--credentials`, or provisioned).
//! - [`exec`]: the worker threads that play the conversations.
//! - this file: the command, from request to report.

pub mod exec;
pub mod schedule;
pub mod tenants;
pub mod trace;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use c24_api::admin::tenants::TenantCreated;

use crate::Exit;
use crate::command::{Failure, Finished};
use crate::provision::Target;
use crate::report::{self, Context};
use crate::scenario::{Channel, Model, Plan, Scenario, Script, Stage, Step, Template, TenantSpec};
use crate::schedule::OpenSchedule;
use crate::thresholds::{self, Threshold};

/// `c24-loadgen replay` as asked on the command line.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub trace: PathBuf,
    /// Playback speed: 2.0 replays an hour of traffic in 30 minutes.
    pub speed: f64,
    /// `TRACE_ID=TARGET_ID,...`, or a file of such lines or a JSON object.
    pub tenants_map: Option<String>,
    /// The target tenants' credentials (a JSON array of `POST /admin/v1/tenants` answers).
    pub credentials: Option<PathBuf>,
    pub target: Option<String>,
    pub admin_token: Option<String>,
    pub threads: usize,
    /// `KEY=CHECK`, e.g. `webchat.ack.p99=< 50ms`.
    pub thresholds: Vec<String>,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// How long conversations may run past the trace's end.
    pub grace: Duration,
    pub report_json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// A finished replay: the verdict and report, and what it was built from.
pub struct Replayed {
    pub finished: Finished,
    pub schedule: schedule::ReplaySchedule,
    /// Per trace tenant id, the target tenant that played it.
    pub tenants: Vec<(String, TenantCreated)>,
}

/// Parses `--threshold KEY=CHECK` flags with the scenario files' rules.
pub fn parse_thresholds(flags: &[String]) -> Result<Vec<Threshold>, Failure> {
    let names = vec!["replay".to_string()];
    let mut out = Vec::new();
    for (i, f) in flags.iter().enumerate() {
        let (key, check) = f.split_once('=').ok_or_else(|| {
            Failure::Usage(format!(
                "--threshold {f:?}: write KEY=CHECK, e.g. \"webchat.ack.p99=< 50ms\""
            ))
        })?;
        let key = key.trim();
        let selector = thresholds::parse_key(key, &names)
            .map_err(|e| Failure::Usage(format!("--threshold {f:?}: {e}")))?;
        let (op, bound) = thresholds::parse_check(check, selector.unit())
            .map_err(|e| Failure::Usage(format!("--threshold {f:?}: {e}")))?;
        out.push(Threshold {
            key: key.to_string(),
            check: check.trim().to_string(),
            selector,
            op,
            bound,
            abort_on_fail: None,
            line: i + 1,
        });
    }
    Ok(out)
}

/// The plan the report and thresholds read: one scenario `replay` whose
/// asked rate is the trace's conversations per second (at `speed`), and one
/// two-step script per channel so latency entries name `send` (step 0)
/// and `agent_reply` (step 1).
pub fn plan_for(
    req: &ReplayRequest,
    sched: &schedule::ReplaySchedule,
    thresholds: Vec<Threshold>,
    tenants: u32,
) -> Plan {
    let span = sched.duration.max(Duration::from_millis(1));
    let rate = sched.conversations.len() as f64 / span.as_secs_f64();
    let channels = sched.channels();
    let scripts = channels
        .iter()
        .map(|c| Script {
            channel: *c,
            steps: vec![
                Step::Send {
                    text: Template::literal(""),
                    size: None,
                    subject: None,
                    timeout: req.timeout,
                    visible: false,
                },
                Step::AgentReply {
                    text: Template::literal(""),
                    timeout: req.timeout,
                },
            ],
        })
        .collect();
    let mix = channels
        .iter()
        .map(|c| {
            let n = sched
                .conversations
                .iter()
                .filter(|x| x.channel == *c)
                .count();
            (*c, n as f64 / sched.conversations.len().max(1) as f64)
        })
        .collect();
    Plan {
        path: req.trace.clone(),
        name: "replay".into(),
        duration: span,
        grace: req.grace,
        timeout: req.timeout,
        tenants: TenantSpec::Provision {
            count: tenants,
            name_prefix: "replay".into(),
        },
        tenant_channels: Vec::new(),
        scenarios: vec![Scenario {
            name: "replay".into(),
            model: Model::Open {
                schedule: OpenSchedule::new(
                    &[Stage {
                        from: rate,
                        to: rate,
                        duration: span,
                    }],
                    span,
                ),
                arrivals: crate::scenario::Arrivals::Uniform,
            },
            mix,
            scripts,
            max_conversations: usize::MAX,
        }],
        feeders: Vec::new(),
        thresholds,
        seed: 0x00C2_4C24,
    }
}

/// `c24-loadgen replay`: read the trace, reach or start the target, map or
/// provision tenants, play, report, judge.
pub async fn run(req: &ReplayRequest) -> Result<Replayed, Failure> {
    if !(req.speed.is_finite() && req.speed > 0.0) {
        return Err(Failure::Usage(format!(
            "--speed {}: give a positive number, e.g. 2.0",
            req.speed
        )));
    }
    let thresholds = parse_thresholds(&req.thresholds)?;
    let lines = trace::read(&req.trace).map_err(|e| Failure::Usage(e.to_string()))?;
    let sched = schedule::build(&lines, req.speed);
    let mapping =
        tenants::Mapping::from_request(req.tenants_map.as_deref(), req.credentials.as_deref())
            .map_err(Failure::Usage)?;
    let target = match &req.target {
        Some(url) => Target::remote(url, req.admin_token.clone()).await?,
        None => {
            if req.admin_token.is_some() {
                return Err(Failure::Usage(
                    "--admin-token goes with --target; the embedded core makes its own".into(),
                ));
            }
            Target::embedded().await?
        }
    };
    let result = run_against(req, &target, sched, mapping, thresholds).await;
    target.shutdown().await;
    result
}

async fn run_against(
    req: &ReplayRequest,
    target: &Target,
    sched: schedule::ReplaySchedule,
    mapping: tenants::Mapping,
    thresholds: Vec<Threshold>,
) -> Result<Replayed, Failure> {
    let run_id = crate::drivers::new_run_id();
    let trace_tenants = sched.tenants();
    let assigned = mapping.assign(&trace_tenants, target, &run_id).await?;
    let plan = Arc::new(plan_for(req, &sched, thresholds, assigned.len() as u32));
    let tenant_list: Arc<Vec<TenantCreated>> =
        Arc::new(assigned.iter().map(|(_, t)| t.clone()).collect());
    let sched = Arc::new(sched);
    let result = exec::execute(
        plan.clone(),
        sched.clone(),
        target,
        tenant_list,
        &run_id,
        req.threads,
    )
    .await
    .map_err(|e| Failure::Target(e.to_string()))?;
    let server = crate::command::server_figures(target, result.elapsed).await;
    let names = vec!["replay".to_string()];
    let report = crate::command::judged(
        Context {
            plan: &plan,
            target: target.http_base.clone(),
            embedded: target.is_embedded(),
            server,
        },
        &result,
        &names,
    );
    let mut summary = report::summary::render(&report, &result.totals);
    summary.insert_str(
        0,
        &format!(
            "replay of {}: {} message(s) in {} conversation(s) over {:.1}s of trace at {}x ({} outbound message(s) before any inbound one skipped)\n",
            req.trace.display(),
            sched.messages(),
            sched.conversations.len(),
            sched.trace_span.as_secs_f64(),
            req.speed,
            sched.skipped_outbound
        ),
    );
    crate::command::write_machine(&report, req.report_json.as_deref(), req.junit.as_deref())?;
    let exit = Exit::verdict(report.passed);
    let sched = Arc::try_unwrap(sched).unwrap_or_else(|a| (*a).clone());
    Ok(Replayed {
        finished: Finished {
            exit,
            report,
            summary,
        },
        schedule: sched,
        tenants: assigned,
    })
}

/// The channels a trace's conversations use, in a stable order.
pub fn channels_of(conversations: &[schedule::ReplayConversation]) -> Vec<Channel> {
    Channel::ALL
        .into_iter()
        .filter(|c| conversations.iter().any(|x| x.channel == *c))
        .collect()
}

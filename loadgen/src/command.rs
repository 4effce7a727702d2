//! The `run` and `validate` commands, from a parsed command line to an
//! [`Exit`] code; `main.rs` only parses flags and prints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::Exit;
use crate::live::LiveMode;
use crate::metrics_listen::{self, Board};
use crate::observe::{Observer, Timeline};
use crate::provision::{self, EmbeddedOptions, ProvisionError, Target};
use crate::report::{self, Context, Report, ServerFigures};
use crate::run::{self, RunOptions};
use crate::scenario::{self, Plan};
use crate::tls::{ClientTls, TlsOptions};

/// `c24-loadgen run` as asked on the command line.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub scenario: PathBuf,
    pub target: Option<String>,
    pub admin_token: Option<String>,
    pub threads: usize,
    pub report_json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
    pub live: LiveMode,
    pub shard: run::Shard,
}

/// What `run` can do beyond [`RunRequest`]; kept apart so the existing
/// callers of [`run`] stay as they are.
#[derive(Debug, Clone, Default)]
pub struct RunExtras {
    /// Trust for an `https://` target (`--ca-file`, `--insecure`).
    pub tls: TlsOptions,
    /// How to start the embedded core (`--embedded-tls`).
    pub embedded: EmbeddedOptions,
    /// `--report-html FILE`: one self-contained page with charts.
    pub report_html: Option<PathBuf>,
    /// `--summary-md FILE`: a Markdown summary for a CI job summary.
    pub summary_md: Option<PathBuf>,
    /// `--metrics-listen ADDR`: live OpenMetrics during the run.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Reaches `--target` (with the asked trust) or starts the embedded core.
pub async fn target(
    url: Option<&str>,
    admin_token: Option<String>,
    tls: &TlsOptions,
    embedded: EmbeddedOptions,
) -> Result<Target, Failure> {
    match url {
        Some(url) => Ok(Target::remote_with_tls(url, admin_token, trust(tls)?).await?),
        None => {
            if admin_token.is_some() {
                return Err(Failure::Usage(
                    "--admin-token goes with --target; the embedded core makes its own".into(),
                ));
            }
            if !tls.ca_files.is_empty() || tls.insecure {
                return Err(Failure::Usage(
                    "--ca-file and --insecure go with an https:// --target; the embedded core's \
                     certificate is trusted by itself (--embedded-tls)"
                        .into(),
                ));
            }
            Ok(Target::embedded_with(embedded).await?)
        }
    }
}

/// What a `--target` is trusted with (`None`: the system's roots).
fn trust(tls: &TlsOptions) -> Result<Option<Arc<ClientTls>>, Failure> {
    if tls.ca_files.is_empty() && !tls.insecure {
        return Ok(None);
    }
    let t = ClientTls::new(tls).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(Some(Arc::new(t)))
}

/// Why a command could not do its job; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Scenario(#[from] scenario::ScenarioErrors),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Target(String),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Scenario(_) | Failure::Usage(_) => Exit::Invalid,
            Failure::Target(_) => Exit::Unreachable,
        }
    }
}

impl From<ProvisionError> for Failure {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Usage(m) => Failure::Usage(m),
            ProvisionError::Unreachable(m) => Failure::Target(m),
        }
    }
}

/// `c24-loadgen validate FILE`: the plan, or every error in it.
pub fn validate(path: &Path) -> Result<Plan, Failure> {
    Ok(scenario::load(path)?)
}

/// Checks an output file can be written before the run spends its time.
pub(crate) fn writable(flag: &str, path: &Path) -> Result<(), Failure> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| Failure::Usage(format!("{flag} {}: {e}", path.display())))
}

/// [`writable`] for each output file given.
pub(crate) fn writable_all(outputs: &[(&str, &Option<PathBuf>)]) -> Result<(), Failure> {
    for (flag, p) in outputs {
        if let Some(p) = p {
            writable(flag, p)?;
        }
    }
    Ok(())
}

/// The run's report with its thresholds judged on its totals.
pub(crate) fn judged(ctx: Context<'_>, result: &run::RunResult, names: &[String]) -> Report {
    let outcomes: Vec<_> = ctx
        .plan
        .thresholds
        .iter()
        .map(|t| t.evaluate(&result.totals, names, result.traffic))
        .collect();
    Report::build(ctx, result, &outcomes)
}

/// Writes `--report-json` and `--junit` where asked for.
pub(crate) fn write_machine(
    report: &Report,
    report_json: Option<&Path>,
    junit: Option<&Path>,
) -> Result<(), Failure> {
    if let Some(p) = report_json {
        report::json::write(report, p).map_err(Failure::Usage)?;
    }
    if let Some(p) = junit {
        report::junit::write(report, p).map_err(Failure::Usage)?;
    }
    Ok(())
}

/// Writes `--report-html` and `--summary-md` where asked for, each built
/// only then.
pub(crate) fn write_pages(
    report_html: Option<&Path>,
    page: impl FnOnce() -> String,
    summary_md: Option<&Path>,
    summary: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if let Some(p) = report_html {
        report::html::write(&page(), p).map_err(Failure::Usage)?;
    }
    if let Some(p) = summary_md {
        std::fs::write(p, summary())
            .map_err(|e| Failure::Usage(format!("--summary-md {}: {e}", p.display())))?;
    }
    Ok(())
}

/// What a finished run hands back: the verdict and the report.
pub struct Finished {
    pub exit: Exit,
    pub report: Report,
    pub summary: String,
}

/// `c24-loadgen run`: validate, reach or start the target, provision, run,
/// report, judge.
pub async fn run(req: &RunRequest) -> Result<Finished, Failure> {
    run_with(req, &RunExtras::default()).await
}

/// [`run`] with the options of [`RunExtras`].
pub async fn run_with(req: &RunRequest, extras: &RunExtras) -> Result<Finished, Failure> {
    let plan = Arc::new(scenario::load(&req.scenario)?);
    writable_all(&[
        ("--report-json", &req.report_json),
        ("--junit", &req.junit),
        ("--hdr-log", &req.hdr_log),
        ("--report-html", &extras.report_html),
        ("--summary-md", &extras.summary_md),
    ])?;
    let target = match &req.target {
        // Generic steps may target any server: no /healthz probe then.
        Some(url) if !plan.needs_tenants() => {
            Target::unprobed(url, req.admin_token.clone(), trust(&extras.tls)?)?
        }
        None if !plan.uses_target() => {
            if req.admin_token.is_some() {
                return Err(Failure::Usage(
                    "--admin-token goes with --target; the embedded core makes its own".into(),
                ));
            }
            Target::none()
        }
        _ => {
            target(
                req.target.as_deref(),
                req.admin_token.clone(),
                &extras.tls,
                extras.embedded,
            )
            .await?
        }
    };
    let timeline = Arc::new(Timeline::new());
    let mut observers: Vec<Arc<dyn Observer>> = Vec::new();
    if extras.report_html.is_some() {
        observers.push(timeline.clone());
    }
    let mut server = None;
    if let Some(addr) = extras.metrics_listen {
        let board = Arc::new(Board::new(plan.clone()));
        match metrics_listen::serve(addr, board.clone()).await {
            Ok((local, task)) => {
                eprintln!("c24-loadgen: OpenMetrics on http://{local}/metrics");
                observers.push(board);
                server = Some(task);
            }
            Err(e) => {
                target.shutdown().await;
                return Err(Failure::Usage(e));
            }
        }
    }
    let result = run_against(&plan, &target, req, observers).await;
    if let Some(task) = server {
        task.abort();
    }
    target.shutdown().await;
    let done = result?;
    write_pages(
        extras.report_html.as_deref(),
        || report::html::run_page(&done.finished.report, &done.totals, &timeline.points()),
        extras.summary_md.as_deref(),
        || report::markdown::run_summary(&done.finished.report),
    )?;
    Ok(done.finished)
}

/// A run's outcome with the totals the HTML report draws from.
struct Done {
    finished: Finished,
    totals: crate::metrics::Recorder,
}

async fn run_against(
    plan: &Arc<Plan>,
    target: &Target,
    req: &RunRequest,
    observers: Vec<Arc<dyn Observer>>,
) -> Result<Done, Failure> {
    let run_id = crate::drivers::new_run_id();
    let mut tenants = if plan.needs_tenants() {
        provision::tenants(target, &plan.tenants, &run_id).await?
    } else {
        Vec::new()
    };
    provision::restrict_channels(&mut tenants, &plan.tenant_channels);
    let tenants = Arc::new(tenants);
    tracing::info!(tenants = tenants.len(), target = %target.http_base, "provisioned");
    let opts = RunOptions {
        threads: req.threads,
        live: req.live,
        hdr_log: req.hdr_log.clone(),
        shard: req.shard,
        tls: target.tls(),
        observers,
    };
    let result = run::execute(
        plan.clone(),
        &target.http_base,
        &target.ws_base,
        tenants,
        &run_id,
        &opts,
    )
    .await
    .map_err(|e| match e {
        run::RunError::Output { .. } => Failure::Usage(e.to_string()),
        run::RunError::Worker { .. } => Failure::Target(e.to_string()),
    })?;
    let server = server_figures(target, result.elapsed).await;
    let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
    let report = judged(
        Context {
            plan,
            target: target.http_base.clone(),
            embedded: target.is_embedded(),
            server,
        },
        &result,
        &names,
    );
    let summary = report::summary::render(&report, &result.totals);
    write_machine(&report, req.report_json.as_deref(), req.junit.as_deref())?;
    let exit = Exit::verdict(report.passed);
    Ok(Done {
        finished: Finished {
            exit,
            report,
            summary,
        },
        totals: result.totals,
    })
}

/// The core's own ingest latency and encryption time over the run's window.
pub(crate) async fn server_figures(target: &Target, elapsed: Duration) -> Option<ServerFigures> {
    let admin = target.admin()?;
    // Whole seconds covering the run, plus the bucket it started in.
    let window = format!("{}s", elapsed.as_secs() + 2);
    match tokio::time::timeout(Duration::from_secs(5), admin.throughput(&window, None)).await {
        Ok(Ok(t)) => Some(ServerFigures::from_throughput(&t)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read the core's figures (GET /admin/v1/throughput)");
            None
        }
        Err(_) => {
            tracing::warn!("GET /admin/v1/throughput timed out");
            None
        }
    }
}

/// `c24-loadgen merge`: the reports of several shards as one run, judged by
/// the scenario's thresholds.
pub fn merge(
    scenario: &Path,
    reports: &[PathBuf],
    report_json: Option<&Path>,
    junit: Option<&Path>,
) -> Result<Finished, Failure> {
    merge_with(scenario, reports, report_json, junit, None, None)
}

/// [`merge`], also writing `--report-html` and `--summary-md` of the whole.
pub fn merge_with(
    scenario: &Path,
    reports: &[PathBuf],
    report_json: Option<&Path>,
    junit: Option<&Path>,
    report_html: Option<&Path>,
    summary_md: Option<&Path>,
) -> Result<Finished, Failure> {
    let plan = scenario::load(scenario)?;
    if reports.is_empty() {
        return Err(Failure::Usage("give at least one report to merge".into()));
    }
    let mut parsed = Vec::with_capacity(reports.len());
    for p in reports {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
        let r: Report = serde_json::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "{}: not a c24-loadgen JSON report: {e}",
                p.display()
            ))
        })?;
        parsed.push(r);
    }
    let run = report::merge::merge(&parsed, &plan).map_err(Failure::Usage)?;
    let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
    let report = judged(
        Context {
            plan: &plan,
            target: format!("{} merged report(s)", parsed.len()),
            embedded: false,
            server: None,
        },
        &run,
        &names,
    );
    let summary = report::summary::render(&report, &run.totals);
    write_machine(&report, report_json, junit)?;
    write_pages(
        report_html,
        // Shards keep no timeline: the page has the merged distributions.
        || report::html::run_page(&report, &run.totals, &[]),
        summary_md,
        || report::markdown::run_summary(&report),
    )?;
    let exit = Exit::verdict(report.passed);
    Ok(Finished {
        exit,
        report,
        summary,
    })
}

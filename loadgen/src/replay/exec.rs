//! Plays a [`ReplaySchedule`]: worker threads (each its own single-threaded
//! runtime, as in `run`) own every W-th conversation; each conversation is
//! a task whose steps are the recorded messages, the first due at its
//! offset and each later one at its own (`Step::At`), sent through the
//! built-in channel drivers. The recorders are merged into one
//! [`RunResult`] for the usual report and thresholds.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use c24_api::admin::tenants::TenantCreated;
use c24_api::admin::throughput::Direction;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::schedule::{ReplayConversation, ReplaySchedule};
use crate::drivers::{self, Conversation, InFlight, WorkerEnv};
use crate::metrics::{LATE_AFTER, Metric, MetricKey, Recorder};
use crate::provision::Target;
use crate::run::{RunError, RunResult, spawn_worker, start_times, worker_http_client};
use crate::scenario::{Plan, Script, Step, Template};
use crate::tls::ClientTls;

/// The script one recorded conversation becomes: inbound messages sent on
/// its channel and outbound ones as agent replies, with synthetic content
/// of the recorded sizes, each due at its recorded offset.
pub fn script_for(c: &ReplayConversation, timeout: Duration) -> Script {
    let origin = c.messages.first().map(|m| m.offset).unwrap_or_default();
    let mut steps = Vec::with_capacity(c.messages.len() * 2);
    for (i, m) in c.messages.iter().enumerate() {
        if i > 0 {
            steps.push(Step::At(m.offset.saturating_sub(origin)));
        }
        let text = Template::literal(&synthetic(m.size));
        steps.push(match m.direction {
            Direction::Inbound => Step::Send {
                text,
                size: None,
                subject: None,
                timeout,
                visible: false,
            },
            Direction::Outbound => Step::AgentReply { text, timeout },
        });
    }
    Script {
        channel: c.channel,
        steps,
    }
}

/// Filler text of exactly `size` bytes (no personal data, nothing recorded).
pub fn synthetic(size: u64) -> String {
    let mut s = String::new();
    drivers::fit(&mut s, usize::try_from(size.max(1)).unwrap_or(usize::MAX));
    s
}

/// Folds per-position step keys into step 0 (what the visitor sent) and
/// step 1 (agent replies), the two steps of the replay plan's scripts.
fn fold_steps(rec: &mut Recorder) {
    let old = std::mem::take(&mut rec.latencies);
    for (k, v) in old {
        let step = match (k.metric, k.step) {
            (_, None) => None,
            (Metric::Agent | Metric::Push, _) => Some(1),
            _ => Some(0),
        };
        rec.latencies
            .entry(MetricKey { step, ..k })
            .or_default()
            .add(&v);
    }
}

/// Plays the schedule; conversation `i` runs as trace tenant `tenant_of[i]`'s target tenant.
pub async fn execute(
    plan: Arc<Plan>,
    sched: Arc<ReplaySchedule>,
    target: &Target,
    tenants: Arc<Vec<TenantCreated>>,
    run_id: &str,
    threads: usize,
) -> Result<RunResult, RunError> {
    let threads = threads.max(1);
    let trace_tenants = sched.tenants();
    let tenant_of: Arc<Vec<usize>> = Arc::new(
        sched
            .conversations
            .iter()
            .map(|c| {
                trace_tenants
                    .iter()
                    .position(|t| *t == c.tenant_id)
                    .unwrap_or(0)
            })
            .collect(),
    );
    // Ctrl-C stops the replay as it stops a run: conversations are cut
    // and counted, the report is still written.
    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
            return true;
        }
        false
    });
    let (start, started_at) = start_times();
    let mut handles = Vec::new();
    for worker in 0..threads {
        let cfg = Worker {
            plan: plan.clone(),
            sched: sched.clone(),
            tenant_of: tenant_of.clone(),
            tenants: tenants.clone(),
            http_base: target.http_base.clone(),
            ws_base: target.ws_base.clone(),
            tls: target.tls(),
            run_id: run_id.to_string(),
            worker,
            workers: threads,
            start,
            stop: stop_rx.clone(),
        };
        handles.push(spawn_worker("replay", worker, move || worker_thread(cfg))?);
    }
    let mut totals = Recorder::new(1);
    for (worker, h) in handles.into_iter().enumerate() {
        // Joining blocks; the workers run on their own threads meanwhile.
        let joined = tokio::task::spawn_blocking(move || h.join())
            .await
            .map_err(|e| RunError::Worker {
                worker,
                message: e.to_string(),
            })?;
        match joined {
            Ok(Ok(rec)) => totals.merge(&rec),
            Ok(Err(message)) => return Err(RunError::Worker { worker, message }),
            Err(_) => {
                return Err(RunError::Worker {
                    worker,
                    message: "panicked".into(),
                });
            }
        }
    }
    let aborted = if interrupted.is_finished() {
        interrupted
            .await
            .unwrap_or(false)
            .then(|| "interrupted (Ctrl-C)".to_string())
    } else {
        // Not interrupted: stop listening, so Ctrl-C means the caller's again.
        interrupted.abort();
        None
    };
    fold_steps(&mut totals);
    totals.from = started_at;
    totals.to = SystemTime::now();
    Ok(RunResult {
        totals,
        started_at,
        traffic: plan.duration.min(start.elapsed()),
        elapsed: start.elapsed(),
        aborted,
        threads,
    })
}

struct Worker {
    plan: Arc<Plan>,
    sched: Arc<ReplaySchedule>,
    tenant_of: Arc<Vec<usize>>,
    tenants: Arc<Vec<TenantCreated>>,
    http_base: String,
    ws_base: String,
    tls: Option<Arc<ClientTls>>,
    run_id: String,
    worker: usize,
    workers: usize,
    start: Instant,
    stop: watch::Receiver<bool>,
}

fn worker_thread(cfg: Worker) -> Result<Recorder, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build its runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, worker(cfg))
}

async fn worker(cfg: Worker) -> Result<Recorder, String> {
    let http = worker_http_client(cfg.tls.as_deref())?;
    let env = Rc::new(WorkerEnv {
        plan: cfg.plan.clone(),
        tenants: cfg.tenants.clone(),
        http_base: cfg.http_base.clone(),
        ws_base: cfg.ws_base.clone(),
        http,
        rec: RefCell::new(Recorder::new(1)),
        rng: RefCell::new(fastrand::Rng::with_seed(cfg.plan.seed ^ cfg.worker as u64)),
        feeder_cursor: RefCell::new(Vec::new()),
        worker: cfg.worker,
        workers: cfg.workers,
        run_id: cfg.run_id.clone(),
        in_flight: vec![Cell::new(0)],
        tls: cfg.tls.as_ref().map(|t| t.config.clone()),
    });
    let hard_end = cfg.start + cfg.plan.duration + cfg.plan.grace;
    let mut set: JoinSet<()> = JoinSet::new();
    for (i, c) in cfg.sched.conversations.iter().enumerate() {
        if i % cfg.workers != cfg.worker {
            continue;
        }
        let Some(first) = c.messages.first() else {
            continue;
        };
        let due = cfg.start + first.offset;
        let script = script_for(c, cfg.plan.timeout);
        let mut conv = Conversation::new(env.clone(), 0, c.channel, i as u64, due);
        conv.tenant = cfg.tenant_of.get(i).copied().unwrap_or(0);
        let env = env.clone();
        set.spawn_local(async move {
            tokio::time::sleep_until(due.into()).await;
            {
                let lag = Instant::now().saturating_duration_since(due);
                let mut rec = env.rec.borrow_mut();
                let counters = rec.counters(0);
                counters.due += 1;
                counters.started += 1;
                if lag > LATE_AFTER {
                    counters.late += 1;
                }
                rec.lag(lag);
            }
            let _guard = InFlight::new(env.clone(), 0);
            drivers::play_script(conv, Some(&script)).await;
        });
    }
    let drain = async { while set.join_next().await.is_some() {} };
    let mut stop = cfg.stop.clone();
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout_at(hard_end.into(), drain) => {}
        _ = stopped => {}
    }
    let cut = set.len() as u64;
    set.abort_all();
    while set.join_next().await.is_some() {}
    let mut rec = env.rec.borrow_mut().take();
    rec.counters(0).interrupted += cut;
    Ok(rec)
}

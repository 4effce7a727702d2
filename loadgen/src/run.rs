//! A run: worker threads play the scenarios; the aggregator merges their
//! per-interval recorders, writes the HDR interval log, drives the live view
//! and stops the run early when an `abort_on_fail` threshold fails.
//!
//! Each worker is an OS thread with its own single-threaded tokio runtime
//! (as wrk and oha run one event loop per thread): its conversations share
//! its recorder without locks, and it owns every W-th arrival of each open
//! scenario (or every W-th visitor of a closed one).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use c24_api::admin::tenants::TenantCreated;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::drivers::{self, Conversation, InFlight, WorkerEnv};
use crate::live::{Live, LiveMode};
use crate::metrics::{LATE_AFTER, Recorder};
use crate::report::hdrlog::HdrLog;
use crate::scenario::{Channel, Model, Plan};
use crate::schedule::ArrivalClock;

/// How the run is carried out (not what it does: that is the plan).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads (each its own event loop).
    pub threads: usize,
    pub live: LiveMode,
    /// Write an HdrHistogram interval log here.
    pub hdr_log: Option<std::path::PathBuf>,
    /// This process's part of a load split over several (`--shard i/n`).
    pub shard: Shard,
    /// Trust for `https://`/`wss://` targets; `None`: the system's roots.
    pub tls: Option<Arc<crate::tls::ClientTls>>,
    /// Told every interval what was measured (HTML timeline, `--metrics-listen`).
    pub observers: Vec<Arc<dyn crate::observe::Observer>>,
}

/// Shard `index` of `count`: this process plays every `count`-th slice of
/// the arrivals (and visitors). Every shard must run the same plan with the
/// same `--threads`, so the slices of all shards partition the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: write INDEX/COUNT, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: INDEX is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: COUNT is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("{s:?}: need 0 <= INDEX < COUNT"));
        }
        Ok(Shard { index, count })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("worker {worker}: {message}")]
    Worker { worker: usize, message: String },
    #[error("{path}: {message}")]
    Output { path: String, message: String },
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    pub totals: Recorder,
    /// Wall-clock start of the traffic phase.
    pub started_at: SystemTime,
    /// Length of the traffic phase as run (shorter when aborted).
    pub traffic: Duration,
    /// Start to the last conversation's end (or cut).
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    pub threads: usize,
}

enum WorkerMsg {
    Interval {
        worker: usize,
        rec: Recorder,
        in_flight: Vec<usize>,
    },
    Done {
        worker: usize,
        rec: Recorder,
    },
    Failed {
        worker: usize,
        message: String,
    },
}

#[derive(Clone)]
struct WorkerConfig {
    plan: Arc<Plan>,
    tenants: Arc<Vec<TenantCreated>>,
    http_base: String,
    ws_base: String,
    run_id: String,
    worker: usize,
    /// This worker's place among all workers of all shards, and their number:
    /// arrivals, visitors and feeder rows are strided by these.
    slot: usize,
    slots: usize,
    start: Instant,
    stop: watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<WorkerMsg>,
    tls: Option<Arc<crate::tls::ClientTls>>,
}

/// How often workers hand over their recorders (and the HDR log's interval).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Runs the plan against a prepared target and tenants.
pub async fn execute(
    plan: Arc<Plan>,
    http_base: &str,
    ws_base: &str,
    tenants: Arc<Vec<TenantCreated>>,
    run_id: &str,
    opts: &RunOptions,
) -> Result<RunResult, RunError> {
    let threads = opts.threads.max(1);
    let scenarios = plan.scenarios.len();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (start, started_at) = start_times();
    let mut handles = Vec::new();
    for worker in 0..threads {
        let cfg = WorkerConfig {
            plan: plan.clone(),
            tenants: tenants.clone(),
            http_base: http_base.to_string(),
            ws_base: ws_base.to_string(),
            run_id: run_id.to_string(),
            worker,
            slot: opts.shard.index * threads + worker,
            slots: opts.shard.count * threads,
            start,
            stop: stop_rx.clone(),
            tx: tx.clone(),
            tls: opts.tls.clone(),
        };
        handles.push(spawn_worker("loadgen", worker, move || worker_thread(cfg))?);
    }
    drop(tx);

    let mut hdr = match &opts.hdr_log {
        Some(p) => Some(HdrLog::create(p, started_at).map_err(|e| RunError::Output {
            path: p.display().to_string(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
    let mut totals = Recorder::new(scenarios);
    let mut pending = Recorder::new(scenarios);
    let mut live = Live::new(opts.live, &plan);
    let mut in_flight = vec![vec![0usize; scenarios]; threads];
    let mut done = 0;
    let mut aborted: Option<String> = None;
    let mut failure: Option<RunError> = None;
    let mut stopped_at: Option<Instant> = None;
    // Ticks just after the workers' hand-overs, so an interval holds them all.
    let mut tick = tokio::time::interval_at(
        (start + INTERVAL + Duration::from_millis(100)).into(),
        INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The live panel's keys (q, Ctrl-C in raw mode) stop the run like a signal.
    let mut panel_stops = live.stop_requests();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_seen = false;
    while done < threads {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(WorkerMsg::Interval { worker, rec, in_flight: f }) => {
                    totals.merge(&rec);
                    pending.merge(&rec);
                    live.add(&rec);
                    if let Some(slot) = in_flight.get_mut(worker) { *slot = f; }
                }
                Some(WorkerMsg::Done { worker, rec }) => {
                    totals.merge(&rec);
                    pending.merge(&rec);
                    live.add(&rec);
                    if let Some(slot) = in_flight.get_mut(worker) { slot.iter_mut().for_each(|x| *x = 0); }
                    done += 1;
                }
                Some(WorkerMsg::Failed { worker, message }) => {
                    failure.get_or_insert(RunError::Worker { worker, message });
                    let _ = stop_tx.send(true);
                    done += 1;
                }
            },
            _ = tick.tick() => {
                let elapsed = start.elapsed();
                if let Some(h) = &mut hdr {
                    h.write(&pending, &names).map_err(|e| RunError::Output { path: h.path().to_string(), message: e })?;
                }
                let flying: usize = in_flight.iter().flatten().sum();
                for o in &opts.observers {
                    o.interval(elapsed, &pending, &totals, flying);
                }
                pending = Recorder::new(scenarios);
                let verdicts: Vec<bool> = plan.thresholds.iter().map(|t| t.evaluate(&totals, &names, elapsed.min(plan.duration)).passed).collect();
                live.tick(elapsed, flying, &verdicts);
                if aborted.is_none() {
                    for (t, ok) in plan.thresholds.iter().zip(&verdicts) {
                        if let Some(delay) = t.abort_on_fail
                            && !ok
                            && elapsed >= delay
                        {
                            let o = t.evaluate(&totals, &names, elapsed.min(plan.duration));
                            aborted = Some(format!("threshold {} {} failed at {:.0}s ({}); abort_on_fail stopped the run", t.key, t.check, elapsed.as_secs_f64(), o.detail));
                            stopped_at = Some(Instant::now());
                            let _ = stop_tx.send(true);
                            break;
                        }
                    }
                }
            },
            why = crate::live::next_stop(&mut panel_stops) => {
                panel_stops = None;
                aborted.get_or_insert_with(|| why.to_string());
                stopped_at.get_or_insert_with(Instant::now);
                let _ = stop_tx.send(true);
            },
            _ = &mut ctrl_c, if !ctrl_c_seen => {
                ctrl_c_seen = true;
                aborted.get_or_insert_with(|| "interrupted (Ctrl-C)".to_string());
                stopped_at.get_or_insert_with(Instant::now);
                let _ = stop_tx.send(true);
            },
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(f) = failure {
        return Err(f);
    }
    for o in &opts.observers {
        o.interval(start.elapsed(), &pending, &totals, 0);
    }
    if let Some(h) = &mut hdr {
        h.write(&pending, &names).map_err(|e| RunError::Output {
            path: h.path().to_string(),
            message: e,
        })?;
        h.finish().map_err(|e| RunError::Output {
            path: h.path().to_string(),
            message: e,
        })?;
    }
    let elapsed = start.elapsed();
    let traffic = match stopped_at {
        Some(t) => t.saturating_duration_since(start).min(plan.duration),
        None => plan.duration,
    };
    live.finish();
    Ok(RunResult {
        totals,
        started_at,
        traffic,
        elapsed,
        aborted,
        threads,
    })
}

/// When the first arrival is due, as an instant and as wall-clock time: a
/// short lead so every worker thread is up by then.
pub(crate) fn start_times() -> (Instant, SystemTime) {
    let lead = Duration::from_millis(50);
    (Instant::now() + lead, SystemTime::now() + lead)
}

/// Starts worker thread `worker`, named `{prefix}-{worker}`.
pub(crate) fn spawn_worker<T: Send + 'static>(
    prefix: &str,
    worker: usize,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(format!("{prefix}-{worker}"))
        .spawn(body)
        .map_err(|e| RunError::Worker {
            worker,
            message: format!("cannot start its thread: {e}"),
        })
}

/// A worker's HTTP client: pooled connections, the run's TLS trust.
pub(crate) fn worker_http_client(
    tls: Option<&crate::tls::ClientTls>,
) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30));
    let builder = match tls {
        Some(t) => t.apply(builder).map_err(|e| e.to_string()),
        None => Ok(builder),
    };
    builder
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot build its HTTP client: {e}"))
}

fn worker_thread(cfg: WorkerConfig) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = cfg.tx.send(WorkerMsg::Failed {
                worker: cfg.worker,
                message: format!("cannot build its runtime: {e}"),
            });
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, worker(cfg));
}

async fn worker(cfg: WorkerConfig) {
    let http = match worker_http_client(cfg.tls.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            let _ = cfg.tx.send(WorkerMsg::Failed {
                worker: cfg.worker,
                message,
            });
            return;
        }
    };
    let scenarios = cfg.plan.scenarios.len();
    let env = Rc::new(WorkerEnv {
        plan: cfg.plan.clone(),
        tenants: cfg.tenants.clone(),
        http_base: cfg.http_base.clone(),
        ws_base: cfg.ws_base.clone(),
        http,
        rec: RefCell::new(Recorder::new(scenarios)),
        rng: RefCell::new(fastrand::Rng::with_seed(
            cfg.plan.seed ^ (cfg.slot as u64).wrapping_mul(0xA24B_AED4_963E_E407),
        )),
        feeder_cursor: RefCell::new(vec![cfg.slot; cfg.plan.feeders.len()]),
        worker: cfg.slot,
        workers: cfg.slots,
        run_id: cfg.run_id.clone(),
        in_flight: (0..scenarios).map(|_| Cell::new(0)).collect(),
        tls: cfg.tls.as_ref().map(|t| t.config.clone()),
    });
    let flusher = {
        let env = env.clone();
        let tx = cfg.tx.clone();
        let worker = cfg.worker;
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval_at((cfg.start + INTERVAL).into(), INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let rec = env.rec.borrow_mut().take();
                let in_flight = env.in_flight.iter().map(Cell::get).collect();
                if tx
                    .send(WorkerMsg::Interval {
                        worker,
                        rec,
                        in_flight,
                    })
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut drivers = Vec::new();
    for idx in 0..scenarios {
        drivers.push(tokio::task::spawn_local(scenario_loop(
            env.clone(),
            idx,
            cfg.clone(),
        )));
    }
    for d in drivers {
        let _ = d.await;
    }
    flusher.abort();
    let rec = env.rec.borrow_mut().take();
    let _ = cfg.tx.send(WorkerMsg::Done {
        worker: cfg.worker,
        rec,
    });
}

/// Picks channels in proportion to the mix, deterministically (smooth
/// weighted round robin), so a short run gets the asked shares too.
#[derive(Debug, Clone)]
pub struct MixChooser {
    channels: Vec<(Channel, f64, f64)>,
}

impl MixChooser {
    pub fn new(mix: &[(Channel, f64)], rotate: usize) -> Self {
        let mut channels: Vec<(Channel, f64, f64)> =
            mix.iter().map(|(c, w)| (*c, *w, 0.0)).collect();
        if !channels.is_empty() {
            let r = rotate % channels.len();
            channels.rotate_left(r);
        }
        MixChooser { channels }
    }

    pub fn next_channel(&mut self) -> Channel {
        let total: f64 = self.channels.iter().map(|c| c.1).sum();
        for c in &mut self.channels {
            c.2 += c.1;
        }
        let mut best = 0;
        for i in 1..self.channels.len() {
            if self.channels[i].2 > self.channels[best].2 {
                best = i;
            }
        }
        match self.channels.get_mut(best) {
            Some(c) => {
                c.2 -= total;
                c.0
            }
            None => Channel::Webchat,
        }
    }
}

/// Sleeps until `t` unless the run is stopped first; true when stopped.
async fn sleep_or_stop(t: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(t.into()) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

async fn scenario_loop(env: Rc<WorkerEnv>, idx: usize, cfg: WorkerConfig) {
    let plan = cfg.plan.clone();
    let Some(scen) = plan.scenarios.get(idx) else {
        return;
    };
    let sid = idx as u16;
    let mut stop = cfg.stop.clone();
    let traffic_end = cfg.start + plan.duration;
    let hard_end = traffic_end + plan.grace;
    let mut set: JoinSet<()> = JoinSet::new();
    match &scen.model {
        Model::Open { schedule, arrivals } => {
            let cap = scen.max_conversations.div_ceil(cfg.slots).max(1);
            let mut clock = ArrivalClock::new(
                schedule.clone(),
                *arrivals,
                cfg.slot as u64,
                cfg.slots as u64,
                plan.seed ^ (idx as u64 + 1).wrapping_mul(0x9E37_79B9),
            );
            let mut mix = MixChooser::new(&scen.mix, cfg.slot);
            let mut without_yield = 0u32;
            while let Some((n, offset)) = clock.next_arrival() {
                let intended = cfg.start + offset;
                if Instant::now() < intended {
                    without_yield = 0;
                    if sleep_or_stop(intended, &mut stop).await {
                        break;
                    }
                } else {
                    // Behind schedule: start every arrival whose time has come,
                    // yielding now and then so started conversations run too.
                    without_yield += 1;
                    if without_yield >= 32 {
                        without_yield = 0;
                        tokio::task::yield_now().await;
                    }
                    if *stop.borrow() {
                        break;
                    }
                }
                while set.try_join_next().is_some() {}
                let now = Instant::now();
                {
                    let mut rec = env.rec.borrow_mut();
                    let lag = now.saturating_duration_since(intended);
                    let c = rec.counters(sid);
                    c.due += 1;
                    if set.len() >= cap {
                        c.dropped += 1;
                        continue;
                    }
                    c.started += 1;
                    if lag > LATE_AFTER {
                        c.late += 1;
                    }
                    rec.lag(lag);
                }
                let conv = Conversation::new(env.clone(), sid, mix.next_channel(), n, intended);
                let guard = InFlight::new(env.clone(), idx);
                set.spawn_local(async move {
                    let _guard = guard;
                    drivers::play(conv).await;
                });
            }
        }
        Model::Closed { visitors } => {
            let visitors = u64::from(*visitors);
            for v in (cfg.slot as u64..visitors).step_by(cfg.slots) {
                let env = env.clone();
                let mut stop = cfg.stop.clone();
                let start = cfg.start;
                let mut mix = MixChooser::new(&scen.mix, v as usize);
                set.spawn_local(async move {
                    let mut due = start;
                    let mut k = 0u64;
                    loop {
                        if Instant::now() < due && sleep_or_stop(due, &mut stop).await {
                            break;
                        }
                        if *stop.borrow() || Instant::now() >= traffic_end {
                            break;
                        }
                        {
                            let mut rec = env.rec.borrow_mut();
                            let c = rec.counters(sid);
                            c.due += 1;
                            c.started += 1;
                        }
                        let n = k * visitors + v;
                        let conv = Conversation::new(env.clone(), sid, mix.next_channel(), n, due);
                        let guard = InFlight::new(env.clone(), idx);
                        due = drivers::play(conv).await;
                        drop(guard);
                        k += 1;
                    }
                });
            }
        }
    }
    // Let running conversations finish within the grace period (none when
    // the run was stopped), then cut the rest and count them.
    if !*stop.borrow() {
        let drain = async { while set.join_next().await.is_some() {} };
        let stopped = async {
            loop {
                if stop.changed().await.is_err() || *stop.borrow() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::timeout_at(hard_end.into(), drain) => {}
            _ = stopped => {}
        }
    }
    let cut = set.len() as u64;
    set.abort_all();
    while set.join_next().await.is_some() {}
    if cut > 0 {
        env.rec.borrow_mut().counters(sid).interrupted += cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_chooser_follows_the_shares() {
        let mut m = MixChooser::new(
            &[
                (Channel::Webchat, 0.6),
                (Channel::Whatsapp, 0.3),
                (Channel::Email, 0.1),
            ],
            0,
        );
        let mut counts = [0usize; 3];
        for _ in 0..100 {
            match m.next_channel() {
                Channel::Webchat => counts[0] += 1,
                Channel::Whatsapp => counts[1] += 1,
                Channel::Email => counts[2] += 1,
                other => panic!("{other} is not in the mix"),
            }
        }
        assert_eq!(counts, [60, 30, 10]);
    }
}

//! Web-chat ingest throughput with at-rest encryption on and off, in one run.
//!
//! Starts two embedded chat cores side by side (`Config::embedded`, each in
//! its own temp dir), one with `at_rest_encryption: true` and one with
//! `false`, and creates one DPA-signed tenant on each through
//! `POST /admin/v1/tenants`. On each core, K WebSocket visitors
//! (`/v1/webchat/ws?widget_key=KEY&visitor=vN`) open a conversation with one
//! `msg.send` (`conversation_id: null`), then pipeline `msg.send` frames into
//! it with at most N unacknowledged per socket.
//!
//! The machine is shared and noisy, so nothing is compared across runs: the
//! two cores are measured in alternating short windows (on, off, on, off, …)
//! and only one core is driven at a time. A window counts the `ack` frames
//! (each one sent by the core only after its message is durably committed)
//! received while it is open, then stops sending and waits until every
//! in-flight message is acknowledged before the other core's window opens.
//! The summary gives the median acknowledged messages/s for each mode, the
//! ratio on/off, the encryption cost (1 - ratio), and whether the targets
//! were met (>= 20,000 msg/s with encryption on; encryption costing < 5%).
//! A missed target is reported, not an error.
//!
//! Per window it also prints where the CPU went (Linux, from
//! `/proc/self/task/*/schedstat`): the active core's writer thread, the
//! core's async runtime (HTTP, WebSocket, JSON, sealing), and the load
//! clients, which run on a runtime of their own.
//!
//! Run (about 30 s with the defaults, after the build):
//!
//! ```text
//! cargo bench -p c24-chatcore --bench webchat_ingest
//! ```
//!
//! Environment (all optional):
//!
//! - `C24_BENCH_PAIRS` (6): on/off window pairs measured.
//! - `C24_BENCH_WINDOW` (`2s`): length of one window (`2s`, `1500ms`, `1.5`).
//! - `C24_BENCH_WARMUP` (`1s`): one unmeasured window per core first.
//! - `C24_BENCH_CLIENTS` (32): WebSocket visitors per core.
//! - `C24_BENCH_INFLIGHT` (64): unacknowledged messages allowed per visitor.
//! - `C24_BENCH_SERVER_THREADS` (CPU count): worker threads of the cores' runtime.
//! - `C24_BENCH_CLIENT_THREADS` (1): worker threads of the clients' runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::webchat::ServerFrame;
use c24_chatcore::{Config, Running};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TARGET_MSGS_PER_SEC: f64 = 20_000.0;
const TARGET_MAX_COST: f64 = 0.05;
/// Longest wait for the in-flight messages of a closed window.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// About 120 bytes of visitor text, nothing that needs JSON escaping.
const CONTENT: &str = "Hello, I ordered a blue jacket last week (order 48213) and it has not \
                       arrived yet. Could you check where it is? Thanks";
const SERVER_THREAD: &str = "core-rt";
const CLIENT_THREAD: &str = "bench-client";
const WRITER_THREAD: &str = "c24-writer";

struct Settings {
    pairs: usize,
    window: Duration,
    warmup: Duration,
    clients: usize,
    inflight: usize,
    server_threads: usize,
    client_threads: usize,
}

fn env_usize(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}={v:?}: expected a positive integer").into()),
        },
    }
}

/// `2s`, `1500ms`, `1.5` (seconds).
fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, scale) = if let Some(ms) = v.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = v.strip_suffix('s') {
        (s, 1.0)
    } else {
        (v, 1.0)
    };
    let secs = num.trim().parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0 && secs < 3600.0).then(|| Duration::from_secs_f64(secs))
}

fn env_duration(name: &str, default: Duration) -> Result<Duration, BoxError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => parse_duration(&v)
            .ok_or_else(|| format!("{name}={v:?}: expected a duration like 2s or 500ms").into()),
    }
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            pairs: env_usize("C24_BENCH_PAIRS", 6)?,
            window: env_duration("C24_BENCH_WINDOW", Duration::from_secs(2))?,
            warmup: env_duration("C24_BENCH_WARMUP", Duration::from_secs(1))?,
            clients: env_usize("C24_BENCH_CLIENTS", 32)?,
            inflight: env_usize("C24_BENCH_INFLIGHT", 64)?,
            server_threads: env_usize("C24_BENCH_SERVER_THREADS", cpus)?,
            client_threads: env_usize("C24_BENCH_CLIENT_THREADS", 1)?,
        })
    }
}

/// Shared between one core's clients and the controller.
#[derive(Default)]
struct Gauge {
    acked: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicI64,
    first_error: Mutex<Option<String>>,
    /// Why a client task ended early.
    stopped: Mutex<Option<String>>,
}

impl Gauge {
    fn error(&self, text: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| text.to_string());
        }
    }
}

/// One chat core under test and its visitors.
struct Side {
    label: &'static str,
    running: Running,
    _dir: tempfile::TempDir,
    writer_tid: Option<u64>,
    gauge: Arc<Gauge>,
    active: watch::Sender<bool>,
    clients: Vec<tokio::task::JoinHandle<Result<(), BoxError>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Thread ids of this process whose name is `name`.
fn threads_named(name: &str) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse::<u64>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

/// CPU time (ns) run so far by each thread of this process, with its name.
fn cpu_snapshot() -> HashMap<u64, (String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse::<u64>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((tid, (comm.trim_end().to_string(), ns)))
        })
        .collect()
}

/// CPU used during a window, in cores (1.0 = one core busy all the time).
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    writer: f64,
    server: f64,
    client: f64,
}

impl CpuSplit {
    fn total(&self) -> f64 {
        self.writer + self.server + self.client
    }
}

fn cpu_split(
    before: &HashMap<u64, (String, u64)>,
    after: &HashMap<u64, (String, u64)>,
    writer_tid: Option<u64>,
    secs: f64,
) -> Option<CpuSplit> {
    if after.is_empty() || secs <= 0.0 {
        return None;
    }
    let mut split = CpuSplit::default();
    for (tid, (name, ns)) in after {
        let start = before.get(tid).map_or(0, |(_, b)| *b);
        let cores = ns.saturating_sub(start) as f64 / 1e9 / secs;
        if Some(*tid) == writer_tid {
            split.writer += cores;
        } else if name == CLIENT_THREAD {
            split.client += cores;
        } else {
            // The cores' runtime and its blocking pool, the idle core's
            // writer, and the controller (main) thread.
            split.server += cores;
        }
    }
    Some(split)
}

async fn start_core(
    label: &'static str,
    at_rest_encryption: bool,
    settings: &Settings,
    client_rt: &tokio::runtime::Handle,
    http: &reqwest::Client,
) -> Result<Side, BoxError> {
    let dir = tempfile::tempdir()?;
    let writers_before = threads_named(WRITER_THREAD);
    let mut config = Config::embedded(dir.path().join("data"));
    config.at_rest_encryption = at_rest_encryption;
    let running = c24_chatcore::start(config).await?;

    let resp = http
        .post(format!("{}/admin/v1/tenants", running.url()))
        .bearer_auth(running.admin_token())
        .json(&CreateTenant {
            name: format!("bench {label}"),
            dpa_signed: true,
        })
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("creating the tenant: {status}: {body}").into());
    }
    let tenant: TenantCreated = resp.json().await?;
    // Only now: the writer thread names itself when it starts running, and
    // it has committed the tenant.
    let writer_tid = threads_named(WRITER_THREAD)
        .into_iter()
        .find(|t| !writers_before.contains(t));
    let widget_key = tenant.channels.webchat.widget_key;

    let gauge = Arc::new(Gauge::default());
    let (active, active_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(settings.clients);
    let mut clients = Vec::with_capacity(settings.clients);
    for v in 0..settings.clients {
        let url = format!(
            "{}/v1/webchat/ws?widget_key={widget_key}&visitor=v{v}",
            running.ws_url()
        );
        clients.push(client_rt.spawn(client(
            url,
            v,
            settings.inflight,
            gauge.clone(),
            active_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    // Every visitor has its conversation before anything is measured.
    for _ in 0..settings.clients {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    for c in clients.iter_mut() {
        if c.is_finished() {
            c.await??;
            return Err("a client stopped during setup".into());
        }
    }
    Ok(Side {
        label,
        running,
        _dir: dir,
        writer_tid,
        gauge,
        active,
        clients,
    })
}

/// One visitor: opens its conversation, then pipelines while its core's
/// window is open. Ends when the controller drops the window switch.
async fn client(
    url: String,
    visitor: usize,
    inflight: usize,
    gauge: Arc<Gauge>,
    active: watch::Receiver<bool>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Result<(), BoxError> {
    let result = visit(url, visitor, inflight, &gauge, active, ready).await;
    if let Err(e) = &result
        && let Ok(mut s) = gauge.stopped.lock()
    {
        s.get_or_insert_with(|| format!("visitor v{visitor}: {e}"));
    }
    result
}

async fn visit(
    url: String,
    visitor: usize,
    inflight: usize,
    gauge: &Gauge,
    mut active: watch::Receiver<bool>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Result<(), BoxError> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;

    let first = format!(
        r#"{{"type":"msg.send","client_msg_id":"v{visitor}-0","conversation_id":null,"content":"{CONTENT}","client_ts":{}}}"#,
        now_ms()
    );
    ws.send(Message::text(first)).await?;
    let conversation_id = loop {
        let msg = ws
            .next()
            .await
            .ok_or("socket closed before the first ack")??;
        if let Message::Text(t) = msg {
            match serde_json::from_str::<ServerFrame>(t.as_str())? {
                ServerFrame::Ack(a) => break a.conversation_id,
                ServerFrame::Error { code, message, .. } => {
                    return Err(format!("first message refused: {code}: {message}").into());
                }
                _ => {}
            }
        }
    };
    let _ = ready.send(()).await;
    drop(ready);

    // Everything but the counter and the timestamp is fixed.
    let head = format!(r#"{{"type":"msg.send","client_msg_id":"v{visitor}-"#);
    let tail =
        format!(r#"","conversation_id":"{conversation_id}","content":"{CONTENT}","client_ts":"#);
    let mut next_id: u64 = 1;
    let mut outstanding = 0usize;
    loop {
        let on = *active.borrow_and_update();
        if !on && outstanding == 0 {
            if active.changed().await.is_err() {
                break;
            }
            continue;
        }
        if on && outstanding < inflight {
            let ts = now_ms();
            let n = inflight - outstanding;
            for _ in 0..n {
                let frame = format!("{head}{next_id}{tail}{ts}}}");
                next_id += 1;
                ws.feed(Message::text(frame)).await?;
            }
            outstanding += n;
            gauge.in_flight.fetch_add(n as i64, Ordering::Relaxed);
            ws.flush().await?;
        }
        // Block for one frame, then take whatever else is already here.
        let mut msg = Some(ws.next().await.ok_or("socket closed by the core")?);
        while let Some(m) = msg {
            if let Message::Text(t) = m? {
                let t = t.as_str();
                if t.starts_with(r#"{"type":"ack""#) {
                    outstanding = outstanding.saturating_sub(1);
                    gauge.in_flight.fetch_sub(1, Ordering::Relaxed);
                    gauge.acked.fetch_add(1, Ordering::Relaxed);
                } else if t.starts_with(r#"{"type":"error""#) {
                    // Only msg.send is sent, so every error answers one.
                    outstanding = outstanding.saturating_sub(1);
                    gauge.in_flight.fetch_sub(1, Ordering::Relaxed);
                    gauge.error(t);
                }
            }
            msg = ws.next().now_or_never().flatten();
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

struct WindowResult {
    side: usize,
    rate: f64,
    errors: u64,
    cpu: Option<CpuSplit>,
    acked: u64,
}

/// Opens `side`'s window for `length`, closes it, waits for its in-flight
/// messages to be acknowledged.
async fn window(side: &Side, index: usize, length: Duration) -> Result<WindowResult, BoxError> {
    let errors0 = side.gauge.errors.load(Ordering::Relaxed);
    let cpu0 = cpu_snapshot();
    let acked0 = side.gauge.acked.load(Ordering::Relaxed);
    let t0 = Instant::now();
    side.active.send_replace(true);
    tokio::time::sleep(length).await;
    let acked1 = side.gauge.acked.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    side.active.send_replace(false);
    let cpu1 = cpu_snapshot();
    let drain_start = Instant::now();
    while side.gauge.in_flight.load(Ordering::Relaxed) > 0 {
        if drain_start.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "{}: {} messages still unacknowledged {DRAIN_TIMEOUT:?} after the window closed",
                side.label,
                side.gauge.in_flight.load(Ordering::Relaxed)
            )
            .into());
        }
        if side.clients.iter().any(|c| c.is_finished()) {
            let why = side
                .gauge
                .stopped
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_default();
            return Err(format!("{}: a client stopped: {why}", side.label).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acked = acked1 - acked0;
    Ok(WindowResult {
        side: index,
        rate: acked as f64 / secs,
        errors: side.gauge.errors.load(Ordering::Relaxed) - errors0,
        cpu: cpu_split(&cpu0, &cpu1, side.writer_tid, secs),
        acked,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_window(tag: &str, side: &Side, w: &WindowResult) {
    let mut line = format!(
        "{tag:<7} {:<4} {:>8} msg/s ({} acks)",
        side.label,
        thousands(w.rate),
        w.acked
    );
    if let Some(c) = w.cpu {
        let per_msg = if w.rate > 0.0 {
            c.total() / w.rate * 1e6
        } else {
            f64::NAN
        };
        line.push_str(&format!(
            "  cpu cores: writer {:.2}, core runtime {:.2}, clients {:.2}, total {:.2}  ({per_msg:.1} µs cpu/msg)",
            c.writer,
            c.server,
            c.client,
            c.total()
        ));
    }
    if w.errors > 0 {
        line.push_str(&format!("  ERRORS: {}", w.errors));
    }
    println!("{line}");
}

async fn run(settings: Settings, client_rt: tokio::runtime::Handle) -> Result<(), BoxError> {
    println!(
        "webchat_ingest: {} pairs of {:?} windows (warm-up {:?}), {} clients x {} in flight per core, \
         {} core runtime threads, {} client threads, {} CPUs",
        settings.pairs,
        settings.window,
        settings.warmup,
        settings.clients,
        settings.inflight,
        settings.server_threads,
        settings.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let http = reqwest::Client::new();
    let sides = [
        start_core("on", true, &settings, &client_rt, &http).await?,
        start_core("off", false, &settings, &client_rt, &http).await?,
    ];
    println!(
        "cores up: encryption on at {}, off at {}",
        sides[0].running.addr(),
        sides[1].running.addr()
    );

    for (i, side) in sides.iter().enumerate() {
        let w = window(side, i, settings.warmup).await?;
        print_window("warm-up", side, &w);
    }
    let mut results = Vec::with_capacity(settings.pairs * 2);
    for pair in 1..=settings.pairs {
        for (i, side) in sides.iter().enumerate() {
            let w = window(side, i, settings.window).await?;
            print_window(&format!("pair {pair}"), side, &w);
            results.push(w);
        }
    }

    let rates = |i: usize| -> Vec<f64> {
        results
            .iter()
            .filter(|w| w.side == i)
            .map(|w| w.rate)
            .collect()
    };
    let (on, off) = (rates(0), rates(1));
    let (med_on, med_off) = (median(&on), median(&off));
    let ratio = med_on / med_off;
    let cost = 1.0 - ratio;
    let pair_ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    let minmax = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{}..{}", thousands(lo), thousands(hi))
    };
    let errors: u64 = results.iter().map(|w| w.errors).sum();

    println!();
    println!(
        "summary ({} pairs of {:?}):",
        settings.pairs, settings.window
    );
    println!(
        "  encryption on : median {:>8} acknowledged msg/s (range {})",
        thousands(med_on),
        minmax(&on)
    );
    println!(
        "  encryption off: median {:>8} acknowledged msg/s (range {})",
        thousands(med_off),
        minmax(&off)
    );
    println!(
        "  ratio on/off  : {ratio:.3} (median of per-pair ratios {:.3})",
        median(&pair_ratios)
    );
    println!("  encryption cost: {:.1}%", cost * 100.0);
    println!(
        "  messages stored by the end: on {}, off {} (per-message cost grows with the database)",
        thousands(sides[0].gauge.acked.load(Ordering::Relaxed) as f64),
        thousands(sides[1].gauge.acked.load(Ordering::Relaxed) as f64),
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "  target >= {} msg/s with encryption on: {} ({})",
        thousands(TARGET_MSGS_PER_SEC),
        verdict(med_on >= TARGET_MSGS_PER_SEC),
        thousands(med_on)
    );
    println!(
        "  target encryption cost < {:.0}%: {} ({:.1}%)",
        TARGET_MAX_COST * 100.0,
        verdict(cost < TARGET_MAX_COST),
        cost * 100.0
    );
    if errors > 0 {
        for side in &sides {
            if let Ok(first) = side.gauge.first_error.lock()
                && let Some(e) = first.as_ref()
            {
                println!("  {}: first error frame: {e}", side.label);
            }
        }
        println!("  {errors} msg.send frames were answered with an error (not counted)");
    }

    for side in sides {
        drop(side.active);
        for c in side.clients {
            match c.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("{}: client ended with: {e}", side.label),
                Err(e) => eprintln!("{}: client task failed: {e}", side.label),
            }
        }
        side.running.shutdown().await;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;
    let core_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.server_threads)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let result = core_rt.block_on(run(settings, client_rt.handle().clone()));
    drop(core_rt);
    drop(client_rt);
    result
}

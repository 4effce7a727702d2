//! Machinery shared by the benches (`mod support;` in each): settings from
//! the environment, an embedded core with tenants, a WebSocket visitor load
//! counting acknowledged messages, measurement windows with a per-thread CPU
//! split, and the median and printing helpers.
//!
//! Each bench compiles this module on its own and uses a different part of
//! it, hence the `dead_code` allowance.

#![allow(dead_code)]

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

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for the in-flight messages of a closed window.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// About 120 bytes of visitor text, nothing that needs JSON escaping.
pub const CONTENT: &str = "Hello, I ordered a blue jacket last week (order 48213) and it has not \
                           arrived yet. Could you check where it is? Thanks";
/// Worker threads of the runtime the cores run on.
pub const SERVER_THREAD: &str = "core-rt";
/// Worker threads of the WebSocket visitors' runtime.
pub const CLIENT_THREAD: &str = "bench-client";
/// Worker threads of a runtime for other load (admin consoles), when a bench has one.
pub const CONSOLE_THREAD: &str = "bench-console";
/// The name a core's store writer thread gives itself.
pub const WRITER_THREAD: &str = "c24-writer";

/// What every bench reads from the environment (see each bench's docs).
#[derive(Debug, Clone)]
pub struct Settings {
    pub pairs: usize,
    pub window: Duration,
    pub warmup: Duration,
    pub clients: usize,
    pub inflight: usize,
    pub server_threads: usize,
    pub client_threads: usize,
}

pub fn env_usize(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}={v:?}: expected a positive integer").into()),
        },
    }
}

/// `2s`, `1500ms`, `1.5` (seconds).
pub fn parse_duration(v: &str) -> Option<Duration> {
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

pub fn env_duration(name: &str, default: Duration) -> Result<Duration, BoxError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => parse_duration(&v)
            .ok_or_else(|| format!("{name}={v:?}: expected a duration like 2s or 500ms").into()),
    }
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

impl Settings {
    /// The defaults: 6 pairs of 2 s windows, 1 s warm-up, 32 visitors × 64
    /// in flight, a core runtime thread per CPU, one client thread.
    pub fn standard() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            pairs: 6,
            window: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            clients: 32,
            inflight: 64,
            server_threads: cpus,
            client_threads: 1,
        }
    }

    /// `C24_BENCH_PAIRS`, `C24_BENCH_WINDOW`, `C24_BENCH_WARMUP`,
    /// `C24_BENCH_CLIENTS`, `C24_BENCH_INFLIGHT`, `C24_BENCH_SERVER_THREADS`
    /// and `C24_BENCH_CLIENT_THREADS`, each defaulting to `defaults`' value.
    pub fn from_env(defaults: Self) -> Result<Self, BoxError> {
        Ok(Self {
            pairs: env_usize("C24_BENCH_PAIRS", defaults.pairs)?,
            window: env_duration("C24_BENCH_WINDOW", defaults.window)?,
            warmup: env_duration("C24_BENCH_WARMUP", defaults.warmup)?,
            clients: env_usize("C24_BENCH_CLIENTS", defaults.clients)?,
            inflight: env_usize("C24_BENCH_INFLIGHT", defaults.inflight)?,
            server_threads: env_usize("C24_BENCH_SERVER_THREADS", defaults.server_threads)?,
            client_threads: env_usize("C24_BENCH_CLIENT_THREADS", defaults.client_threads)?,
        })
    }
}

/// A multi-threaded runtime whose worker threads are all named `name`.
pub fn runtime(threads: usize, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Shared between one load's clients and the controller.
#[derive(Default)]
pub struct Gauge {
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicI64,
    pub first_error: Mutex<Option<String>>,
    /// Why a client task ended early.
    pub stopped: Mutex<Option<String>>,
}

impl Gauge {
    fn error(&self, text: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| text.to_string());
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Thread ids of this process whose name is `name`.
pub fn threads_named(name: &str) -> Vec<u64> {
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
pub fn cpu_snapshot() -> HashMap<u64, (String, u64)> {
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
pub struct CpuSplit {
    pub writer: f64,
    pub server: f64,
    pub client: f64,
    /// Threads named [`CONSOLE_THREAD`]; `None` when the process has none.
    pub console: Option<f64>,
}

impl CpuSplit {
    pub fn total(&self) -> f64 {
        self.writer + self.server + self.client + self.console.unwrap_or(0.0)
    }
}

pub fn cpu_split(
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
        } else if name == CONSOLE_THREAD {
            *split.console.get_or_insert(0.0) += cores;
        } else {
            // The cores' runtime and its blocking pool, an idle core's
            // writer, and the controller (main) thread.
            split.server += cores;
        }
    }
    Some(split)
}

/// One embedded chat core in a temp dir of its own.
pub struct Core {
    pub label: &'static str,
    pub running: Running,
    _dir: tempfile::TempDir,
    writers_before: Vec<u64>,
    /// Known once the core has committed something (see [`Core::find_writer`]).
    pub writer_tid: Option<u64>,
}

impl Core {
    /// `c24_chatcore::start(Config::embedded(..))` with `at_rest_encryption` set.
    pub async fn start(label: &'static str, at_rest_encryption: bool) -> Result<Self, BoxError> {
        Self::start_with(label, |c| c.at_rest_encryption = at_rest_encryption).await
    }

    /// A core with `adjust` applied to the embedded defaults.
    pub async fn start_with(
        label: &'static str,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let writers_before = threads_named(WRITER_THREAD);
        let mut config = Config::embedded(dir.path().join("data"));
        adjust(&mut config);
        let running = c24_chatcore::start(config).await?;
        Ok(Self {
            label,
            running,
            _dir: dir,
            writers_before,
            writer_tid: None,
        })
    }

    /// Call once the core has committed a write (a tenant): the writer thread
    /// names itself when it starts running.
    pub fn find_writer(&mut self) {
        self.writer_tid = threads_named(WRITER_THREAD)
            .into_iter()
            .find(|t| !self.writers_before.contains(t));
    }
}

/// `POST {url}/admin/v1/tenants` with a signed DPA.
pub async fn create_tenant(
    http: &reqwest::Client,
    url: &str,
    admin_token: &str,
    name: String,
) -> Result<TenantCreated, BoxError> {
    let resp = http
        .post(format!("{url}/admin/v1/tenants"))
        .bearer_auth(admin_token)
        .json(&CreateTenant {
            name,
            dpa_signed: true,
        })
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("creating the tenant: {status}: {body}").into());
    }
    Ok(resp.json().await?)
}

/// K WebSocket visitors on one core, spread round-robin over some tenants'
/// widget keys, pipelining while their window is open.
pub struct Load {
    pub gauge: Arc<Gauge>,
    active: watch::Sender<bool>,
    clients: Vec<tokio::task::JoinHandle<Result<(), BoxError>>>,
}

impl Load {
    /// Connects `settings.clients` visitors on `client_rt` and returns once
    /// each has its conversation (one acknowledged `msg.send`).
    pub async fn start(
        running: &Running,
        widget_keys: &[String],
        settings: &Settings,
        client_rt: &tokio::runtime::Handle,
    ) -> Result<Self, BoxError> {
        if widget_keys.is_empty() {
            return Err("no tenant to load".into());
        }
        let gauge = Arc::new(Gauge::default());
        let (active, active_rx) = watch::channel(false);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(settings.clients);
        let mut clients = Vec::with_capacity(settings.clients);
        for v in 0..settings.clients {
            let widget_key = &widget_keys[v % widget_keys.len()];
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
        Ok(Self {
            gauge,
            active,
            clients,
        })
    }

    /// The switch that opens (`true`) and closes this load's window.
    pub fn active(&self) -> &watch::Sender<bool> {
        &self.active
    }

    /// Ends the visitors (closing their sockets) and reports how they ended.
    pub async fn finish(self, label: &str) {
        drop(self.active);
        for c in self.clients {
            match c.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("{label}: client ended with: {e}"),
                Err(e) => eprintln!("{label}: client task failed: {e}"),
            }
        }
    }

    /// Prints the first error frame, if any (under `label`).
    pub fn print_first_error(&self, label: &str) {
        if let Ok(first) = self.gauge.first_error.lock()
            && let Some(e) = first.as_ref()
        {
            println!("  {label}: first error frame: {e}");
        }
    }
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

pub struct WindowResult {
    /// Which of the alternating groups (core, mode) the window belongs to.
    pub group: usize,
    pub rate: f64,
    pub errors: u64,
    pub cpu: Option<CpuSplit>,
    pub acked: u64,
    /// Length of the measured part, in seconds.
    pub secs: f64,
}

/// Opens `load`'s window on `core` for `length` (with every switch in
/// `also` turned on alongside), closes it, waits for its in-flight messages
/// to be acknowledged.
pub async fn window(
    core: &Core,
    load: &Load,
    group: usize,
    length: Duration,
    also: &[&watch::Sender<bool>],
) -> Result<WindowResult, BoxError> {
    let gauge = &load.gauge;
    let errors0 = gauge.errors.load(Ordering::Relaxed);
    let cpu0 = cpu_snapshot();
    let acked0 = gauge.acked.load(Ordering::Relaxed);
    let t0 = Instant::now();
    load.active.send_replace(true);
    for s in also {
        s.send_replace(true);
    }
    tokio::time::sleep(length).await;
    let acked1 = gauge.acked.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    load.active.send_replace(false);
    for s in also {
        s.send_replace(false);
    }
    let cpu1 = cpu_snapshot();
    let drain_start = Instant::now();
    while gauge.in_flight.load(Ordering::Relaxed) > 0 {
        if drain_start.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "{}: {} messages still unacknowledged {DRAIN_TIMEOUT:?} after the window closed",
                core.label,
                gauge.in_flight.load(Ordering::Relaxed)
            )
            .into());
        }
        if load.clients.iter().any(|c| c.is_finished()) {
            let why = gauge
                .stopped
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_default();
            return Err(format!("{}: a client stopped: {why}", core.label).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acked = acked1 - acked0;
    Ok(WindowResult {
        group,
        rate: acked as f64 / secs,
        errors: gauge.errors.load(Ordering::Relaxed) - errors0,
        cpu: cpu_split(&cpu0, &cpu1, core.writer_tid, secs),
        acked,
        secs,
    })
}

/// The rates of `group`'s windows, in window order.
pub fn rates(results: &[WindowResult], group: usize) -> Vec<f64> {
    results
        .iter()
        .filter(|w| w.group == group)
        .map(|w| w.rate)
        .collect()
}

pub fn median(v: &[f64]) -> f64 {
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

/// `lo..hi` of `v`, with thousands separators.
pub fn minmax(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}..{}", thousands(lo), thousands(hi))
}

pub fn thousands(x: f64) -> String {
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

pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// One line per window: rate, acks, CPU split, errors; `extra` goes before
/// the errors.
pub fn print_window(tag: &str, label: &str, w: &WindowResult, extra: &str) {
    let mut line = format!(
        "{tag:<7} {:<4} {:>8} msg/s ({} acks)",
        label,
        thousands(w.rate),
        w.acked
    );
    if let Some(c) = w.cpu {
        let per_msg = if w.rate > 0.0 {
            c.total() / w.rate * 1e6
        } else {
            f64::NAN
        };
        let consoles = c
            .console
            .map(|x| format!(", consoles {x:.2}"))
            .unwrap_or_default();
        line.push_str(&format!(
            "  cpu cores: writer {:.2}, core runtime {:.2}, clients {:.2}{consoles}, total {:.2}  ({per_msg:.1} µs cpu/msg)",
            c.writer,
            c.server,
            c.client,
            c.total()
        ));
    }
    line.push_str(extra);
    if w.errors > 0 {
        line.push_str(&format!("  ERRORS: {}", w.errors));
    }
    println!("{line}");
}

// PostgreSQL databases for the benches that need a server.

/// A fresh database on the server; returns its URL.
pub async fn create_database(
    admin: &tokio_postgres::Client,
    admin_url: &str,
    name: &str,
) -> Result<String, BoxError> {
    // One statement each: a multi-statement batch is one transaction.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[start..].find('/') {
        Some(slash) => &base[..start + slash],
        None => base,
    };
    Ok(format!("{base}/{name}{query}"))
}

/// Best effort: a server process in it that this role may not end
/// (autovacuum) is waited for briefly, then the database is left and named.
pub async fn drop_database(admin: &tokio_postgres::Client, name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let mut last = None;
    for _ in 0..40 {
        match admin.batch_execute(&sql).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("left database {name} behind: {last:?}");
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, BoxError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

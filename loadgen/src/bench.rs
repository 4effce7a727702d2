//! `c24-loadgen bench URL`: plain HTTP/1.1 POSTs over keep-alive
//! connections, as fast as they go or at a fixed rate.
//!
//! The client is hand-rolled on tokio's `TcpStream`: the request bytes are
//! built once before the run, each connection writes them and parses the
//! answer's head with `httparse`, and every thread (its own single-threaded
//! runtime) records into its own histograms. At a fixed rate the n-th
//! request is due at exactly `start + n / rate`; a connection takes the next
//! due ticket when it is free, so while the target stalls the tickets wait
//! and the corrected latency (from the due time) shows the stall that the
//! uncorrected one (from the actual send) hides.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::{Percentiles, add_into, micros, new_histogram, record};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    /// Requests per second in total; `None` for as fast as possible.
    pub rate: Option<f64>,
    pub body_bytes: usize,
    pub threads: usize,
    /// Longest wait for one answer before the connection is counted failed and redialled.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
}

/// Percentiles of one histogram, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySet {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl From<Percentiles> for LatencySet {
    fn from(p: Percentiles) -> Self {
        LatencySet {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            max: p.max,
            mean: p.mean,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchLatency {
    pub count: u64,
    /// From each request's due time (fixed rate) or its send (full speed: the same).
    pub corrected: LatencySet,
    /// From when each request was written.
    pub uncorrected: LatencySet,
}

/// The JSON report of `bench --report-json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub url: String,
    pub connections: usize,
    pub threads: usize,
    pub body_bytes: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub asked_rate: Option<f64>,
    /// requests_per_second / asked_rate.
    pub achieved_ratio: Option<f64>,
    pub latency_us: BenchLatency,
    /// The generator's own lag at a fixed rate, µs: how late a connection
    /// that was free before a request's due time wrote it.
    pub scheduler_lag_us: Option<LatencySet>,
    /// Fixed rate: requests already overdue when a connection came free (the
    /// target was slow; the wait is in the corrected latency).
    pub backlogged: Option<u64>,
    /// The generator itself could not keep the asked rate (its lag p99 over 10 ms).
    pub lagging: bool,
    /// Plain words when the asked rate was not reached, saying whether the
    /// generator or the target was the limit.
    pub message: Option<String>,
    /// Peak resident memory of this process (Linux `VmHWM`), KiB.
    pub max_rss_kib: Option<u64>,
}

struct Url {
    addr: SocketAddr,
    host: String,
    path: String,
}

async fn parse_url(url: &str) -> Result<Url, BenchError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        BenchError::Usage(format!(
            "{url}: expected http://HOST:PORT/PATH (https is not supported)"
        ))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| BenchError::Usage(format!("{url}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::Usage(format!("{url}: no address")))?;
    Ok(Url {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// The one request every connection sends, built before the run.
fn request_bytes(u: &Url, body_bytes: usize) -> Vec<u8> {
    let mut r = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {body_bytes}\r\n\r\n",
        u.path, u.host
    )
    .into_bytes();
    r.extend(std::iter::repeat_n(b'x', body_bytes));
    r
}

struct Histos {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    lag: Histogram<u64>,
}

/// What one thread shares among its connections (no locks: one thread).
struct ThreadState {
    thread: u64,
    threads: u64,
    /// Tickets this thread has handed out.
    tickets: Cell<u64>,
    /// Requests whose due time passed while their connection was still busy.
    backlogged: Cell<u64>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    histos: RefCell<Histos>,
}

struct Shared {
    addr: SocketAddr,
    request: Vec<u8>,
    start: Instant,
    deadline: Instant,
    rate: Option<f64>,
    timeout: Duration,
}

/// Reads one response; returns the status. `buf[..*filled]` carries bytes over.
async fn read_response(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    filled: &mut usize,
) -> std::io::Result<u16> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..*filled]) {
            Ok(httparse::Status::Complete(head)) => {
                let status = resp.code.unwrap_or(0);
                let mut length = 0usize;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                    }
                }
                let total = head + length;
                while *filled < total {
                    if buf.len() < total {
                        buf.resize(total, 0);
                    }
                    let n = s.read(&mut buf[*filled..]).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    *filled += n;
                }
                buf.copy_within(total..*filled, 0);
                *filled -= total;
                return Ok(status);
            }
            Ok(httparse::Status::Partial) => {
                if *filled == buf.len() {
                    if buf.len() >= 1 << 20 {
                        return Err(std::io::Error::other("response head over 1 MiB"));
                    }
                    let len = buf.len() * 2;
                    buf.resize(len, 0);
                }
                let n = s.read(&mut buf[*filled..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *filled += n;
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}

async fn dial(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn connection(shared: Rc<Shared>, st: Rc<ThreadState>) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 4096];
    let mut filled = 0usize;
    loop {
        let free_at = Instant::now();
        let due = match shared.rate {
            Some(rate) => {
                let k = st.tickets.get();
                st.tickets.set(k + 1);
                let n = st.thread + k * st.threads;
                let at = shared.start + Duration::from_secs_f64(n as f64 / rate);
                if at >= shared.deadline {
                    return;
                }
                if at > Instant::now() {
                    tokio::time::sleep_until(at.into()).await;
                }
                at
            }
            None => Instant::now(),
        };
        let sent = Instant::now();
        if sent >= shared.deadline {
            return;
        }
        if stream.is_none() {
            match dial(shared.addr).await {
                Ok(s) => {
                    stream = Some(s);
                    filled = 0;
                }
                Err(_) => {
                    st.errors.set(st.errors.get() + 1);
                    // Without a socket there is nothing to measure; retry a little later.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let exchange = async {
            s.write_all(&shared.request).await?;
            read_response(s, &mut buf, &mut filled).await
        };
        let result = tokio::time::timeout(shared.timeout, exchange).await;
        let done = Instant::now();
        match result {
            Ok(Ok(200..=299)) => {
                st.requests.set(st.requests.get() + 1);
                let mut h = st.histos.borrow_mut();
                record(
                    &mut h.corrected,
                    micros(done.saturating_duration_since(due)),
                );
                record(
                    &mut h.uncorrected,
                    micros(done.saturating_duration_since(sent)),
                );
                // The generator's own lag: how late a connection that was free
                // before the due time actually wrote. A request already overdue
                // when its connection came free waited on the target instead;
                // that wait is in the corrected latency, counted as backlog.
                if shared.rate.is_some() {
                    if due >= free_at {
                        record(&mut h.lag, micros(sent.saturating_duration_since(due)));
                    } else {
                        st.backlogged.set(st.backlogged.get() + 1);
                    }
                }
            }
            Ok(Ok(_)) => st.errors.set(st.errors.get() + 1),
            Ok(Err(_)) | Err(_) => {
                st.errors.set(st.errors.get() + 1);
                stream = None;
            }
        }
    }
}

struct ThreadResult {
    backlogged: u64,
    requests: u64,
    errors: u64,
    histos: Histos,
}

fn thread_main(shared: Shared, thread: u64, threads: u64, connections: usize) -> ThreadResult {
    let st = Rc::new(ThreadState {
        thread,
        threads,
        tickets: Cell::new(0),
        backlogged: Cell::new(0),
        requests: Cell::new(0),
        errors: Cell::new(0),
        histos: RefCell::new(Histos {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            lag: new_histogram(),
        }),
    });
    let shared = Rc::new(shared);
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async {
                let mut tasks = Vec::with_capacity(connections);
                for _ in 0..connections {
                    tasks.push(tokio::task::spawn_local(connection(
                        shared.clone(),
                        st.clone(),
                    )));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        }
        Err(_) => st.errors.set(st.errors.get() + 1),
    }
    let histos = st.histos.replace(Histos {
        corrected: new_histogram(),
        uncorrected: new_histogram(),
        lag: new_histogram(),
    });
    ThreadResult {
        backlogged: st.backlogged.get(),
        requests: st.requests.get(),
        errors: st.errors.get(),
        histos,
    }
}

/// Peak resident set of this process in KiB (Linux), if known.
pub fn max_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the benchmark (blocking: it starts its own threads).
pub fn run(cfg: &BenchConfig) -> Result<BenchReport, BenchError> {
    if cfg.connections == 0 {
        return Err(BenchError::Usage("-c must be at least 1".into()));
    }
    if cfg.duration.is_zero() {
        return Err(BenchError::Usage("-d must be longer than 0s".into()));
    }
    if let Some(r) = cfg.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(BenchError::Usage("--rate must be above 0".into()));
    }
    let threads = cfg.threads.clamp(1, cfg.connections);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Unreachable(e.to_string()))?;
    let url = rt.block_on(parse_url(&cfg.url))?;
    // One connection first: an unreachable target is reported as such, not as a flood of errors.
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), dial(url.addr)).await })
        .map_err(|_| BenchError::Unreachable(format!("{}: connect timed out", cfg.url)))?
        .map_err(|e| BenchError::Unreachable(format!("{}: {e}", cfg.url)))?;
    drop(rt);
    let request = request_bytes(&url, cfg.body_bytes);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + cfg.duration;
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns = cfg.connections / threads + usize::from(t < cfg.connections % threads);
        let shared = Shared {
            addr: url.addr,
            request: request.clone(),
            start,
            deadline,
            rate: cfg.rate,
            timeout: cfg.timeout,
        };
        let h = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || thread_main(shared, t as u64, threads as u64, conns))
            .map_err(|e| BenchError::Unreachable(format!("cannot start a thread: {e}")))?;
        handles.push(h);
    }
    let mut requests = 0;
    let mut errors = 0;
    let mut backlogged = 0;
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    let mut lag = new_histogram();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| BenchError::Unreachable("a bench thread panicked".into()))?;
        requests += r.requests;
        errors += r.errors;
        backlogged += r.backlogged;
        add_into(&mut corrected, &r.histos.corrected);
        add_into(&mut uncorrected, &r.histos.uncorrected);
        add_into(&mut lag, &r.histos.lag);
    }
    // Full speed: over the time the connections ran (the last answers come
    // just after the deadline); fixed rate: over the asked duration, so a
    // generator that fell behind shows it.
    let secs = match cfg.rate {
        Some(_) => cfg.duration.as_secs_f64(),
        None => start
            .elapsed()
            .as_secs_f64()
            .max(cfg.duration.as_secs_f64()),
    };
    let rps = requests as f64 / secs;
    let achieved_ratio = cfg.rate.map(|r| rps / r);
    let lag_p = (cfg.rate.is_some() && !lag.is_empty()).then(|| Percentiles::of(&lag));
    let lagging = achieved_ratio.is_some_and(|a| a < 0.99) && lag_p.is_some_and(|l| l.p99 > 10_000);
    let message = if lagging {
        Some(format!(
            "the generator could not keep {:.0}/s: it achieved {rps:.0}/s and wrote requests up to {} late (p99); these latencies include its own delay",
            cfg.rate.unwrap_or(0.0),
            crate::thresholds::format_micros(lag_p.map(|l| l.p99).unwrap_or(0) as f64)
        ))
    } else if achieved_ratio.is_some_and(|a| a < 0.99) {
        Some(format!(
            "achieved {rps:.0}/s of {:.0}/s with the generator on time (lag p99 {}): all {} connections were busy waiting on the target; the waits are in the corrected latency (add connections to offer the full rate)",
            cfg.rate.unwrap_or(0.0),
            crate::thresholds::format_micros(lag_p.map(|l| l.p99).unwrap_or(0) as f64),
            cfg.connections
        ))
    } else {
        None
    };
    Ok(BenchReport {
        url: cfg.url.clone(),
        connections: cfg.connections,
        threads,
        body_bytes: cfg.body_bytes,
        duration_s: cfg.duration.as_secs_f64(),
        requests,
        errors,
        requests_per_second: rps,
        asked_rate: cfg.rate,
        achieved_ratio,
        latency_us: BenchLatency {
            count: corrected.len(),
            corrected: Percentiles::of(&corrected).into(),
            uncorrected: Percentiles::of(&uncorrected).into(),
        },
        scheduler_lag_us: lag_p.map(Into::into),
        backlogged: cfg.rate.map(|_| backlogged),
        lagging,
        message,
        max_rss_kib: max_rss_kib(),
    })
}

/// The human summary.
pub fn render(r: &BenchReport) -> String {
    use crate::thresholds::format_micros as f;
    let l = |s: &LatencySet| {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            f(s.p50 as f64),
            f(s.p90 as f64),
            f(s.p99 as f64),
            f(s.p999 as f64),
            f(s.max as f64)
        )
    };
    let mut out = format!(
        "c24-loadgen bench {}: {} connection(s), {} thread(s), {:.1}s, {}-byte POST bodies\n",
        r.url, r.connections, r.threads, r.duration_s, r.body_bytes
    );
    out.push_str(&format!(
        "requests {} ({:.1}/s), errors {}\n",
        r.requests, r.requests_per_second, r.errors
    ));
    out.push_str(&format!(
        "latency (corrected)   {}\n",
        l(&r.latency_us.corrected)
    ));
    out.push_str(&format!(
        "latency (uncorrected) {}\n",
        l(&r.latency_us.uncorrected)
    ));
    if let (Some(asked), Some(ratio)) = (r.asked_rate, r.achieved_ratio) {
        out.push_str(&format!(
            "asked {asked:.1}/s, achieved {:.1}/s ({:.2}%)\n",
            r.requests_per_second,
            100.0 * ratio
        ));
    }
    if let Some(lag) = &r.scheduler_lag_us {
        out.push_str(&format!("scheduler lag         {}\n", l(lag)));
    }
    if let Some(b) = r.backlogged {
        out.push_str(&format!(
            "backlogged {b} (due while their connection was still busy; the wait is in the corrected latency)\n"
        ));
    }
    if let Some(m) = &r.message {
        out.push_str(&format!("WARNING: {m}\n"));
    }
    if let Some(kib) = r.max_rss_kib {
        out.push_str(&format!("peak RSS {:.1} MiB\n", kib as f64 / 1024.0));
    }
    out
}

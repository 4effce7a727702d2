//! What publishing per-tenant live figures between PostgreSQL nodes costs
//! at 10, 1,000 and 10,000 active tenants, in one run.
//!
//! Measured with the defaults on 2 CPUs shared with other work (load
//! average 2 to 3; PostgreSQL 15 on the same machine), the code before the
//! per-tenant exchange became incremental and after, run back to back:
//!
//! ```text
//! part 1, one tick     before: rewrite of the last   after: changed rows only
//!                      5 s (upsert), read of the     (plain insert if new),
//!                      last 61 s, prune of           read of the new seconds,
//!                      second < X every second       prune in 15 s batches
//!                                                    from the last one's end
//!     10 tenants  publish   1.8 ms  (100 rows)          0.47 ms  (20 rows)
//!                 read      1.9 ms  (1,220 rows)        0.21 ms  (40 rows)
//!                 tick      0.4 % of a second           0.1 %
//!  1,000 tenants  publish   113 ms  (10,000 rows)        14 ms  (2,000 rows)
//!                 read      185 ms  (122,000 rows)      6.0 ms  (4,000 rows)
//!                 tick       30 % of a second           2.9 %
//! 10,000 tenants  publish 1,378 ms  (100,000 rows)      177 ms  (20,000 rows)
//!                 read    2,032 ms  (1,220,000 rows)     66 ms  (40,000 rows)
//!                 tick      348 % of a second            32 %
//!   (of a publish, collecting the counts from the stats: 15 / 11.5 ms)
//! part 2, acknowledged emails/s over two nodes, 10 vs 10,000 tenants:
//!   before 2,605 vs 2,583, ratio 0.992 (per round 0.97..1.08)
//!   after  3,196 vs 3,189, ratio 0.998 (per round 0.95..1.08)
//! ```
//!
//! Publish and read are medians of 20 ticks; "tick" is the mean publish +
//! read (the mean takes in the prune batch and the wider read every 5th
//! tick: at 10,000 tenants up to 0.4 s and 0.6 s). At 10,000 tenants busy
//! every second the old tick was three and a half seconds of work per
//! second (the loop skips ticks: the other nodes' figures fall behind);
//! now a third of a second, nearly all of it PostgreSQL inserting 20,000
//! rows (two B-tree indexes) and reading 40,000: the floor of one row per
//! (second, tenant, series). Part 2 shows no slowdown from spreading ingest
//! over 10,000 tenants, before or after, but this machine's email ingest
//! (about 3,000/s) keeps only about 1,500 tenants busy per second per node,
//! so its ticks are nearer the 1,000-tenant arm's; the per-round spread
//! (about 10 %) is wider than what those ticks could take.
//!
//! Two parts, each alternating its arms window by window:
//!
//! 1. One tick, timed. Per arm (10, 1,000, `C24_BENCH_TENANTS` tenants) a
//!    fresh database and two `PgStore`s on it ("A" and "B", as two nodes
//!    open them) with a `LiveStats` each. Every simulated second each
//!    tenant gets one inbound and one outbound web-chat message on A; then
//!    A runs the per-tenant publish of its tick (`cluster::TenantExchange::
//!    publish`, what `publish_seconds` runs each second) and B the read
//!    of `refresh_other_tenants` (`TenantExchange::refresh`), each timed on
//!    its own. Before the first tick the table holds what a steady state
//!    would: A's last 60 s of rows (the history B reads) and, 25 h back, a
//!    second of rows per tick for the prune to delete. Time is simulated
//!    (a tick does not wait for the next wall-clock second), so this
//!    measures the statements and the in-memory work, not a real second.
//!    A check per tick: B's stats show every tenant with a rate.
//! 2. Ingest. Two pairs of embedded `c24-core` nodes (each pair on its own
//!    fresh database, same KEK per pair): one pair with 10 tenants, one
//!    with `C24_BENCH_TENANTS` (created through the admin API on its first
//!    node before the second starts). `C24_BENCH_SENDERS` concurrent
//!    senders POST signed inbound emails (one message each, answered once
//!    durable), alternating between the pair's two nodes and going round
//!    the pair's tenants, so at N tenants about min(N, rate / 2) tenants
//!    are busy each second on each node. Windows alternate between the
//!    pairs; each counts 201 answers, then waits for those in flight.
//!    The ratio many/10 is what spreading ingest over many tenants costs,
//!    the publish ticks included (every node runs them all the time, as in
//!    production; an idle pair's ticks still read the history of its last
//!    minute, which the other pair's windows share the machine with).
//!
//! All nodes run in this one process on one machine with the database
//! server: "two nodes" share its CPUs.
//!
//! Needs a PostgreSQL server: `C24_BENCH_POSTGRES_URL` (else
//! `C24_TEST_POSTGRES_URL`; `.ci/postgres` starts one and prints its URL),
//! else it prints that it is skipped. The role must be allowed to create
//! databases; they are dropped at the end.
//!
//! ```text
//! C24_BENCH_POSTGRES_URL=$(.ci/postgres) cargo bench -p c24-chatcore --bench tenant_publish
//! ```
//!
//! Environment (all optional): `C24_BENCH_PAIRS` (rounds, 5),
//! `C24_BENCH_TICKS` (timed ticks per arm and round, 4),
//! `C24_BENCH_WINDOW` (ingest window, 3s), `C24_BENCH_WARMUP` (1s),
//! `C24_BENCH_TENANTS` (10000), `C24_BENCH_SENDERS` (32 per pair),
//! `C24_BENCH_SERVER_THREADS`, `C24_BENCH_CLIENT_THREADS`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::TenantCreated;
use c24_chatcore::cluster::TenantExchange;
use c24_chatcore::stats::{Direction, LiveStats};
use c24_chatcore::store::postgres::PgStore;
use c24_chatcore::store::{Channel, Store};
use c24_chatcore::{Database, KekSource};
use futures_util::StreamExt;
use support::{
    BoxError, CLIENT_THREAD, CONTENT, Core, DRAIN_TIMEOUT, SERVER_THREAD, Settings, connect,
    cpu_count, create_database, create_tenant, drop_database, env_usize, median, minmax, now_ms,
    runtime, thousands,
};
use tokio::sync::watch;

/// How long published seconds are kept (the core's `KEEP_S`): each tick
/// prunes the second that just became older.
const KEEP_S: i64 = 25 * 3600;
/// Seconds of history the other node reads (the tenant list's 60 s + 1).
const HISTORY_S: i64 = 61;

struct Bench {
    settings: Settings,
    ticks: usize,
    tenants: usize,
    senders: usize,
}

// ---------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Part 1: one tick, timed
// ---------------------------------------------------------------------------

/// One arm of part 1: two nodes' stores on their own database.
struct TickArm {
    tenants: Vec<String>,
    a: PgStore,
    b: PgStore,
    stats_a: LiveStats,
    stats_b: LiveStats,
    ex_a: TenantExchange,
    ex_b: TenantExchange,
    /// The simulated second of the next tick.
    now_s: i64,
    publish_ms: Vec<f64>,
    refresh_ms: Vec<f64>,
    /// Of a publish: collecting the counts from the stats (`tenant_seconds`).
    collect_ms: Vec<f64>,
    rows_written: Vec<f64>,
    rows_read: Vec<f64>,
}

/// 32 hex digits, as the core's tenant ids.
fn tenant_id(arm: usize, i: usize) -> String {
    format!("{:08x}{:024x}", arm, i)
}

impl TickArm {
    async fn open(url: &str, n: usize, arm: usize, start_s: i64) -> Result<Self, BoxError> {
        let clock: Arc<dyn c24_chatcore::clock::Clock> = Arc::new(c24_chatcore::clock::SystemClock);
        let a = PgStore::open(url, true, clock.clone()).await?;
        let b = PgStore::open(url, true, clock).await?;
        let mut arm = Self {
            tenants: (0..n).map(|i| tenant_id(arm, i)).collect(),
            a,
            b,
            stats_a: LiveStats::new(start_s * 1000),
            stats_b: LiveStats::new(start_s * 1000),
            ex_a: TenantExchange::default(),
            ex_b: TenantExchange::default(),
            now_s: start_s,
            publish_ms: Vec::new(),
            refresh_ms: Vec::new(),
            collect_ms: Vec::new(),
            rows_written: Vec::new(),
            rows_read: Vec::new(),
        };
        // A's own recent seconds, then one publish to learn A's node name.
        for s in start_s - 6..start_s {
            arm.record(s);
        }
        arm.ex_a
            .publish(&arm.stats_a, &arm.a, start_s, start_s - KEEP_S)
            .await?;
        Ok(arm)
    }

    /// One inbound and one outbound message per tenant in `second` on A.
    fn record(&self, second: i64) {
        let ms = second * 1000 + 500;
        for t in &self.tenants {
            for d in [Direction::Inbound, Direction::Outbound] {
                self.stats_a
                    .record(t, Channel::Webchat, d, CONTENT.len() as u64, 800, 2_000, ms);
            }
        }
    }

    /// What a steady state holds besides: A's rows of the minute before
    /// (B's history) and, 25 h back, a second of rows for each of `ticks`
    /// ticks to prune.
    async fn prefill(&self, url: &str, ticks: usize) -> Result<(), BoxError> {
        let db = connect(url).await?;
        let node: String = db
            .query_one("SELECT min(node) FROM node_tenant_seconds", &[])
            .await?
            .try_get(0)?;
        let n = self.tenants.len() as i64;
        let tenants: Vec<&str> = self.tenants.iter().map(String::as_str).collect();
        let fill =
            "INSERT INTO node_tenant_seconds (node, second, tenant_id, series, messages, bytes)
                    SELECT $1, s, t, k, 1, 120
                    FROM generate_series($2::bigint, $3::bigint) s,
                         unnest($4::text[]) t, (VALUES (0::smallint), (1::smallint)) v(k)
                    ON CONFLICT DO NOTHING";
        let history_from = self.now_s - HISTORY_S - 1;
        let history_to = self.now_s - 6;
        db.execute(fill, &[&node, &history_from, &history_to, &tenants])
            .await?;
        let old_from = self.now_s - KEEP_S;
        let old_to = self.now_s - KEEP_S + ticks as i64 + 1;
        db.execute(fill, &[&node, &old_from, &old_to, &tenants])
            .await?;
        db.batch_execute("VACUUM ANALYZE node_tenant_seconds")
            .await?;
        let rows: i64 = db
            .query_one("SELECT count(*) FROM node_tenant_seconds", &[])
            .await?
            .try_get(0)?;
        println!(
            "  {} tenants: table prefilled to {} rows",
            thousands(n as f64),
            thousands(rows as f64)
        );
        Ok(())
    }

    /// One simulated second: A records and publishes, B reads.
    async fn tick(&mut self, measured: bool) -> Result<(), BoxError> {
        let now_s = self.now_s;
        self.now_s += 1;
        self.record(now_s - 1);
        // What the publish spends in the stats, timed apart (not included).
        let tc = Instant::now();
        std::hint::black_box(self.stats_a.tenant_seconds(now_s - 5, 5));
        let collect = tc.elapsed();
        let t0 = Instant::now();
        let written = self
            .ex_a
            .publish(&self.stats_a, &self.a, now_s, now_s - KEEP_S)
            .await?;
        let publish = t0.elapsed();
        let t1 = Instant::now();
        let read = self.ex_b.refresh(&self.stats_b, &self.b, now_s).await?;
        let refresh = t1.elapsed();
        // Every tenant's last complete seconds reached B.
        let rates = self.stats_b.tenant_rates(now_s * 1000);
        if rates.len() != self.tenants.len() {
            return Err(format!(
                "after a tick B shows {} of {} tenants with a rate",
                rates.len(),
                self.tenants.len()
            )
            .into());
        }
        if measured {
            self.publish_ms.push(publish.as_secs_f64() * 1e3);
            self.refresh_ms.push(refresh.as_secs_f64() * 1e3);
            self.collect_ms.push(collect.as_secs_f64() * 1e3);
            self.rows_written.push(written as f64);
            self.rows_read.push(read as f64);
        }
        Ok(())
    }

    async fn close(self) {
        self.a.close().await;
        self.b.close().await;
    }
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

async fn part_ticks(
    bench: &Bench,
    admin: &tokio_postgres::Client,
    admin_url: &str,
    databases: &mut Vec<String>,
) -> Result<(), BoxError> {
    let sizes = [10, 1_000, bench.tenants];
    println!(
        "part 1: one publish tick and one read at {} active tenants (2 series each), \
         {} rounds of {} ticks",
        sizes.map(|n| thousands(n as f64)).join(" / "),
        bench.settings.pairs,
        bench.ticks
    );
    let start_s = now_ms().div_euclid(1000);
    let pid = std::process::id();
    let mut arms = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let name = format!("c24bench_{pid}_tick{i}");
        let url = create_database(admin, admin_url, &name).await?;
        databases.push(name);
        let arm = TickArm::open(&url, *n, i, start_s).await?;
        let ticks = 2 + bench.settings.pairs * bench.ticks;
        arm.prefill(&url, ticks).await?;
        arms.push(arm);
    }
    // Warm-up: the first read of a fresh node, statement preparation.
    for arm in &mut arms {
        arm.tick(false).await?;
        arm.tick(false).await?;
    }
    for round in 1..=bench.settings.pairs {
        for arm in &mut arms {
            for _ in 0..bench.ticks {
                arm.tick(true).await?;
            }
            let k = arm.publish_ms.len() - bench.ticks;
            println!(
                "  round {round} {:>6} tenants: publish {:>9}  read {:>9}",
                thousands(arm.tenants.len() as f64),
                ms(median(&arm.publish_ms[k..])),
                ms(median(&arm.refresh_ms[k..])),
            );
        }
    }
    println!();
    println!(
        "part 1 summary (medians of {} ticks):",
        arms[0].publish_ms.len()
    );
    let base_p = median(&arms[0].publish_ms);
    let base_r = median(&arms[0].refresh_ms);
    for arm in &arms {
        let (p, r) = (median(&arm.publish_ms), median(&arm.refresh_ms));
        let (pm, rm) = (mean(&arm.publish_ms), mean(&arm.refresh_ms));
        println!(
            "  {:>6} tenants: publish median {:>9} mean {:>9} (max {}, {} rows written, \
             of which collecting {}), read median {:>9} mean {:>9} (max {}, {} rows read)",
            thousands(arm.tenants.len() as f64),
            ms(p),
            ms(pm),
            ms(max(&arm.publish_ms)),
            thousands(median(&arm.rows_written)),
            ms(median(&arm.collect_ms)),
            ms(r),
            ms(rm),
            ms(max(&arm.refresh_ms)),
            thousands(median(&arm.rows_read)),
        );
        println!(
            "          tick (publish + read, mean) = {:.1} % of a second; median x{:.1} publish, \
             x{:.1} read of the 10-tenant tick",
            (pm + rm) / 10.0,
            p / base_p,
            r / base_r,
        );
    }
    for arm in arms {
        arm.close().await;
    }
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

// ---------------------------------------------------------------------------
// Part 2: ingest spread over many tenants
// ---------------------------------------------------------------------------

/// One pair of nodes on one database, its tenants and its senders.
struct Pair {
    label: String,
    nodes: Vec<Core>,
    load: EmailLoad,
}

/// Senders POSTing signed emails round the tenants, while the window is open.
struct EmailLoad {
    acked: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    in_flight: Arc<AtomicI64>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
    active: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What one sender needs: where to post, as which tenant.
struct Target {
    url: String,
    tenant: String,
    signing_key: String,
}

impl EmailLoad {
    fn start(
        urls: &[String],
        tenants: &[TenantCreated],
        senders: usize,
        client_rt: &tokio::runtime::Handle,
    ) -> Self {
        let (active, active_rx) = watch::channel(false);
        let acked = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicI64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None));
        let next = Arc::new(AtomicU64::new(0));
        // Two consecutive messages: the same tenant, one on each node.
        let targets: Arc<Vec<Target>> = Arc::new(
            tenants
                .iter()
                .flat_map(|t| {
                    urls.iter().map(|u| Target {
                        url: format!("{u}/v1/email/{}/inbound", t.id),
                        tenant: t.id.clone(),
                        signing_key: t.channels.email.signing_key.clone(),
                    })
                })
                .collect(),
        );
        let http = reqwest::Client::new();
        let tasks = (0..senders)
            .map(|_| {
                let (http, targets, next) = (http.clone(), targets.clone(), next.clone());
                let (acked, errors, in_flight) = (acked.clone(), errors.clone(), in_flight.clone());
                let first_error = first_error.clone();
                let mut active = active_rx.clone();
                client_rt.spawn(async move {
                    loop {
                        if !*active.borrow_and_update() {
                            if active.changed().await.is_err() {
                                return;
                            }
                            continue;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let t = &targets[(i % targets.len() as u64) as usize];
                        let raw = format!(
                            "From: <visitor{i}@example.com>\r\nTo: <support@{}.example>\r\n\
                             Subject: Order 48213\r\nMessage-ID: <{i}.bench@example.com>\r\n\
                             \r\n{CONTENT}\r\n",
                            t.tenant
                        );
                        let ts = (now_ms() / 1000).to_string();
                        let sig =
                            c24_api::email::signature_header(&t.signing_key, &ts, raw.as_bytes());
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        let resp = http
                            .post(&t.url)
                            .header("Content-Type", c24_api::email::CONTENT_TYPE)
                            .header(c24_api::email::TIMESTAMP_HEADER, &ts)
                            .header(c24_api::email::SIGNATURE_HEADER, sig)
                            .body(raw)
                            .send()
                            .await;
                        let failure = match resp {
                            Ok(r) if r.status() == reqwest::StatusCode::CREATED => None,
                            Ok(r) => {
                                let status = r.status();
                                Some(format!("{status}: {}", r.text().await.unwrap_or_default()))
                            }
                            Err(e) => Some(e.to_string()),
                        };
                        match failure {
                            None => acked.fetch_add(1, Ordering::Relaxed),
                            Some(e) => {
                                if let Ok(mut f) = first_error.lock() {
                                    f.get_or_insert(e);
                                }
                                errors.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            acked,
            errors,
            in_flight,
            first_error,
            active,
            tasks,
        }
    }

    async fn finish(self) {
        drop(self.active);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Creates `n` tenants on `core` with 64 requests in flight.
async fn create_tenants(
    core: &Core,
    n: usize,
    label: &str,
) -> Result<Vec<TenantCreated>, BoxError> {
    let http = reqwest::Client::new();
    let url = core.running.url();
    let token = core.running.admin_token().to_string();
    let created: Vec<Result<TenantCreated, BoxError>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move { create_tenant(&http, &url, &token, format!("{label} {i:05}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    created.into_iter().collect()
}

async fn start_pair(
    label: String,
    url: String,
    tenants: usize,
    senders: usize,
    client_rt: &tokio::runtime::Handle,
) -> Result<Pair, BoxError> {
    let (_, kek) = c24_chatcore::crypto::Kek::generate()?;
    let start = |kek: String, url: String| {
        Core::start_with("pair", move |c| {
            c.database = Database::Postgres { url };
            c.kek = KekSource::Base64(kek);
        })
    };
    let first = start(kek.clone(), url.clone()).await?;
    let t0 = Instant::now();
    let created = create_tenants(&first, tenants, &label).await?;
    println!(
        "  {label}: created {} tenants in {:.1} s",
        thousands(tenants as f64),
        t0.elapsed().as_secs_f64()
    );
    // The second node loads them at its start.
    let second = start(kek, url).await?;
    let urls = [first.running.url(), second.running.url()];
    let load = EmailLoad::start(&urls, &created, senders, client_rt);
    Ok(Pair {
        label,
        nodes: vec![first, second],
        load,
    })
}

struct Window {
    rate: f64,
    errors: u64,
}

async fn window(pair: &Pair, length: Duration) -> Result<Window, BoxError> {
    let l = &pair.load;
    let (acked0, errors0) = (
        l.acked.load(Ordering::Relaxed),
        l.errors.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    l.active.send_replace(true);
    tokio::time::sleep(length).await;
    let acked1 = l.acked.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    l.active.send_replace(false);
    let drain = Instant::now();
    while l.in_flight.load(Ordering::Relaxed) > 0 {
        if drain.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "{}: requests unanswered after {DRAIN_TIMEOUT:?}",
                pair.label
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Window {
        rate: (acked1 - acked0) as f64 / secs,
        errors: l.errors.load(Ordering::Relaxed) - errors0,
    })
}

async fn part_ingest(
    bench: &Bench,
    admin: &tokio_postgres::Client,
    admin_url: &str,
    databases: &mut Vec<String>,
    client_rt: &tokio::runtime::Handle,
) -> Result<(), BoxError> {
    let s = &bench.settings;
    println!(
        "part 2: two-node email ingest over 10 vs {} tenants, {} rounds of {:?} windows \
         (warm-up {:?}), {} senders per pair",
        thousands(bench.tenants as f64),
        s.pairs,
        s.window,
        s.warmup,
        bench.senders
    );
    let pid = std::process::id();
    let mut pairs = Vec::new();
    for (i, n) in [10, bench.tenants].into_iter().enumerate() {
        let name = format!("c24bench_{pid}_ingest{i}");
        let url = create_database(admin, admin_url, &name).await?;
        databases.push(name);
        let label = format!("{} tenants", thousands(n as f64));
        pairs.push(start_pair(label, url, n, bench.senders, client_rt).await?);
    }
    for pair in &pairs {
        let w = window(pair, s.warmup).await?;
        println!(
            "  warm-up {:<14} {:>8} msg/s",
            pair.label,
            thousands(w.rate)
        );
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    let mut errors = 0;
    for round in 1..=s.pairs {
        for (i, pair) in pairs.iter().enumerate() {
            let w = window(pair, s.window).await?;
            println!(
                "  round {round} {:<14} {:>8} msg/s{}",
                pair.label,
                thousands(w.rate),
                if w.errors > 0 {
                    format!("  ERRORS: {}", w.errors)
                } else {
                    String::new()
                }
            );
            errors += w.errors;
            rates[i].push(w.rate);
        }
    }
    let med: Vec<f64> = rates.iter().map(|r| median(r)).collect();
    let ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(m, f)| m / f).collect();
    println!();
    println!("part 2 summary (acknowledged emails/s, two nodes):");
    for (i, pair) in pairs.iter().enumerate() {
        println!(
            "  {:<14}: median {:>8} (range {})",
            pair.label,
            thousands(med[i]),
            minmax(&rates[i])
        );
    }
    let busy = (med[1] / 2.0).min(bench.tenants as f64);
    println!(
        "  ratio {}/10 tenants: {:.3} (per round {}); about {} tenants busy per second per node",
        thousands(bench.tenants as f64),
        med[1] / med[0],
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" "),
        thousands(busy)
    );
    if errors > 0 {
        for pair in &pairs {
            if let Ok(f) = pair.load.first_error.lock()
                && let Some(e) = f.as_ref()
            {
                println!("  {}: first error: {e}", pair.label);
            }
        }
    }
    for pair in pairs {
        pair.load.finish().await;
        for core in pair.nodes {
            core.running.shutdown().await;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------

async fn run(bench: Bench, client_rt: tokio::runtime::Handle) -> Result<(), BoxError> {
    let Ok(admin_url) =
        std::env::var("C24_BENCH_POSTGRES_URL").or_else(|_| std::env::var("C24_TEST_POSTGRES_URL"))
    else {
        println!(
            "tenant_publish: SKIPPED, no PostgreSQL: set C24_BENCH_POSTGRES_URL \
             (or C24_TEST_POSTGRES_URL; e.g. $(.ci/postgres))"
        );
        return Ok(());
    };
    let admin = connect(&admin_url).await?;
    println!(
        "tenant_publish: {} core runtime threads, {} client threads, {} CPUs",
        bench.settings.server_threads,
        bench.settings.client_threads,
        cpu_count()
    );
    let mut databases = Vec::new();
    let result = async {
        part_ticks(&bench, &admin, &admin_url, &mut databases).await?;
        println!();
        part_ingest(&bench, &admin, &admin_url, &mut databases, &client_rt).await
    }
    .await;
    for db in databases {
        drop_database(&admin, &db).await;
    }
    result
}

fn main() -> Result<(), BoxError> {
    let defaults = Settings {
        pairs: 5,
        window: Duration::from_secs(3),
        ..Settings::standard()
    };
    let settings = Settings::from_env(defaults)?;
    let bench = Bench {
        ticks: env_usize("C24_BENCH_TICKS", 4)?,
        tenants: env_usize("C24_BENCH_TENANTS", 10_000)?,
        senders: env_usize("C24_BENCH_SENDERS", 32)?,
        settings,
    };
    let client_rt = runtime(bench.settings.client_threads, CLIENT_THREAD)?;
    let core_rt = runtime(bench.settings.server_threads, SERVER_THREAD)?;
    let result = core_rt.block_on(run(bench, client_rt.handle().clone()));
    drop(core_rt);
    drop(client_rt);
    result
}

//! Acknowledged web-chat messages/s on SQLite, on PostgreSQL with one node,
//! and on PostgreSQL with two nodes sharing one database, in one run.
//!
//! Starts embedded chat cores side by side: one on SQLite (its own temp
//! dir), one on a fresh PostgreSQL database, and two on a second fresh
//! database (same KEK; the tenants are created on the first before the second
//! starts; a tenant per node, so each node's visitors are its own). Each side gets the same visitor load (`C24_BENCH_CLIENTS`
//! WebSocket visitors, at most `C24_BENCH_INFLIGHT` unacknowledged each);
//! on the two-node side the visitors are split between the nodes. Sides are
//! measured in alternating short windows (sqlite, pg-1, pg-2, sqlite, …), one
//! side driven at a time; a window counts the `ack` frames (each sent only
//! after its message's COMMIT) and then waits for every in-flight message.
//! The summary gives each side's median and the ratios pg-1/sqlite and
//! pg-2/pg-1. All nodes run in this one process on this one machine, so
//! "two nodes" here shares its CPUs: it shows what a second writer on the
//! same database costs or gains, not what a second machine would.
//!
//! Needs a PostgreSQL server: `C24_BENCH_POSTGRES_URL` (else
//! `C24_TEST_POSTGRES_URL`; `.ci/postgres` starts one and prints its URL).
//! The role must be allowed to create databases; both are dropped at the end.
//!
//! ```text
//! C24_BENCH_POSTGRES_URL=$(.ci/postgres) cargo bench -p c24-chatcore --bench backends_ingest
//! ```
//!
//! Environment (all optional): `C24_BENCH_PAIRS` (rounds, 4),
//! `C24_BENCH_WINDOW` (2s), `C24_BENCH_WARMUP` (1s), `C24_BENCH_CLIENTS`
//! (32), `C24_BENCH_INFLIGHT` (64), `C24_BENCH_SERVER_THREADS`,
//! `C24_BENCH_CLIENT_THREADS`.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use c24_chatcore::{Database, KekSource};
use support::{
    BoxError, CLIENT_THREAD, Core, DRAIN_TIMEOUT, Load, SERVER_THREAD, Settings, cpu_count,
    create_database, create_tenant, drop_database, median, minmax, runtime, thousands,
};

/// One backend under test: its nodes and the visitors on each.
struct Side {
    label: &'static str,
    nodes: Vec<(Core, Load)>,
}

struct Window {
    rate: f64,
    acked: u64,
    errors: u64,
}

/// Opens every node's load at once for `length`, then waits until all of
/// their in-flight messages are acknowledged.
async fn window(side: &Side, length: Duration) -> Result<Window, BoxError> {
    let acked = |s: &Side| -> u64 {
        s.nodes
            .iter()
            .map(|(_, l)| l.gauge.acked.load(Ordering::Relaxed))
            .sum()
    };
    let errors = |s: &Side| -> u64 {
        s.nodes
            .iter()
            .map(|(_, l)| l.gauge.errors.load(Ordering::Relaxed))
            .sum()
    };
    let (acked0, errors0) = (acked(side), errors(side));
    let t0 = Instant::now();
    for (_, l) in &side.nodes {
        l.active().send_replace(true);
    }
    tokio::time::sleep(length).await;
    let acked1 = acked(side);
    let secs = t0.elapsed().as_secs_f64();
    for (_, l) in &side.nodes {
        l.active().send_replace(false);
    }
    let drain = Instant::now();
    while side
        .nodes
        .iter()
        .any(|(_, l)| l.gauge.in_flight.load(Ordering::Relaxed) > 0)
    {
        if drain.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "{}: messages unacknowledged after {DRAIN_TIMEOUT:?}",
                side.label
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Window {
        rate: (acked1 - acked0) as f64 / secs,
        acked: acked1 - acked0,
        errors: errors(side) - errors0,
    })
}

async fn start_side(
    label: &'static str,
    databases: Vec<Database>,
    settings: &Settings,
    client_rt: &tokio::runtime::Handle,
    http: &reqwest::Client,
) -> Result<Side, BoxError> {
    // The nodes of one database share a KEK, as a deployment's Secret does.
    let (_, kek) = c24_chatcore::crypto::Kek::generate()?;
    let mut nodes: Vec<Core> = Vec::new();
    let mut widget_keys = Vec::new();
    let n = databases.len();
    for db in databases {
        let kek = kek.clone();
        let mut core = Core::start_with(label, move |c| {
            c.database = db;
            c.kek = KekSource::Base64(kek);
        })
        .await?;
        if widget_keys.is_empty() {
            // A tenant per node (its visitors are its own), all created on
            // the first node before the others start (they load them).
            for i in 0..n {
                let t = create_tenant(
                    http,
                    &core.running.url(),
                    core.running.admin_token(),
                    format!("bench {label} {i}"),
                )
                .await?;
                widget_keys.push(t.channels.webchat.widget_key);
            }
        }
        core.find_writer();
        nodes.push(core);
    }
    let per_node = Settings {
        clients: (settings.clients / n).max(1),
        ..settings.clone()
    };
    let mut out = Vec::with_capacity(n);
    for (core, key) in nodes.into_iter().zip(&widget_keys) {
        let load = Load::start(
            &core.running,
            std::slice::from_ref(key),
            &per_node,
            client_rt,
        )
        .await?;
        out.push((core, load));
    }
    Ok(Side { label, nodes: out })
}

async fn run(settings: Settings, client_rt: tokio::runtime::Handle) -> Result<(), BoxError> {
    let admin_url = std::env::var("C24_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("C24_TEST_POSTGRES_URL"))
        .map_err(|_| "set C24_BENCH_POSTGRES_URL (e.g. $(.ci/postgres)) to a PostgreSQL server")?;
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let pid = std::process::id();
    let (db1, db2) = (format!("c24bench_{pid}_one"), format!("c24bench_{pid}_two"));
    let url1 = create_database(&admin, &admin_url, &db1).await?;
    let url2 = create_database(&admin, &admin_url, &db2).await?;
    println!(
        "backends_ingest: {} rounds of {:?} windows (warm-up {:?}), {} clients x {} in flight per side, \
         {} core runtime threads, {} client threads, {} CPUs",
        settings.pairs,
        settings.window,
        settings.warmup,
        settings.clients,
        settings.inflight,
        settings.server_threads,
        settings.client_threads,
        cpu_count(),
    );
    let http = reqwest::Client::new();
    let pg = |url: &str| Database::Postgres {
        url: url.to_string(),
    };
    let sides = [
        start_side(
            "sqlite",
            vec![Database::Sqlite],
            &settings,
            &client_rt,
            &http,
        )
        .await?,
        start_side("pg-1", vec![pg(&url1)], &settings, &client_rt, &http).await?,
        start_side(
            "pg-2",
            vec![pg(&url2), pg(&url2)],
            &settings,
            &client_rt,
            &http,
        )
        .await?,
    ];
    for side in &sides {
        let w = window(side, settings.warmup).await?;
        println!("warm-up {:<6} {:>8} msg/s", side.label, thousands(w.rate));
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    let mut errors = 0;
    for round in 1..=settings.pairs {
        for (i, side) in sides.iter().enumerate() {
            let w = window(side, settings.window).await?;
            println!(
                "round {round} {:<6} {:>8} msg/s ({} acks){}",
                side.label,
                thousands(w.rate),
                w.acked,
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
    println!();
    println!(
        "summary ({} rounds of {:?}, acknowledged web-chat msg/s):",
        settings.pairs, settings.window
    );
    for (i, side) in sides.iter().enumerate() {
        println!(
            "  {:<6}: median {:>8} (range {}), {} node(s)",
            side.label,
            thousands(med[i]),
            minmax(&rates[i]),
            side.nodes.len()
        );
    }
    println!("  ratio pg-1/sqlite: {:.3}", med[1] / med[0]);
    println!("  ratio pg-2/pg-1  : {:.3}", med[2] / med[1]);
    if errors > 0 {
        for side in &sides {
            for (_, l) in &side.nodes {
                l.print_first_error(side.label);
            }
        }
    }
    for side in sides {
        for (core, load) in side.nodes {
            load.finish(side.label).await;
            core.running.shutdown().await;
        }
    }
    for db in [db1, db2] {
        drop_database(&admin, &db).await;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let defaults = Settings {
        pairs: 4,
        ..Settings::standard()
    };
    let settings = Settings::from_env(defaults)?;
    let client_rt = runtime(settings.client_threads, CLIENT_THREAD)?;
    let core_rt = runtime(settings.server_threads, SERVER_THREAD)?;
    let result = core_rt.block_on(run(settings, client_rt.handle().clone()));
    drop(core_rt);
    drop(client_rt);
    result
}

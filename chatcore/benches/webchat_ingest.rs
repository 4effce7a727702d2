//! Web-chat ingest throughput with at-rest encryption on and off, in one run
//! (or, with `C24_BENCH_COMPARE=trace`, with the traffic trace on and off,
//! both encrypted: what recording the trace costs ingest).
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
//! - `C24_BENCH_COMPARE` (`encryption`): what the two cores differ in,
//!   `encryption` (at rest on/off) or `trace` (traffic trace on/off; target:
//!   costing < 3%).

mod support;

use std::sync::atomic::Ordering;

use support::{
    BoxError, CLIENT_THREAD, Core, Load, SERVER_THREAD, Settings, WindowResult, cpu_count,
    create_tenant, median, minmax, print_window, rates, runtime, thousands, verdict, window,
};

const TARGET_MSGS_PER_SEC: f64 = 20_000.0;
const TARGET_MAX_COST: f64 = 0.05;
/// Recording the traffic trace should cost ingest next to nothing.
const TARGET_MAX_TRACE_COST: f64 = 0.03;

/// What the two cores of a run differ in.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Encryption,
    Trace,
}

impl Compare {
    fn from_env() -> Result<Self, BoxError> {
        match std::env::var("C24_BENCH_COMPARE").as_deref() {
            Err(_) | Ok("encryption") => Ok(Compare::Encryption),
            Ok("trace") => Ok(Compare::Trace),
            Ok(other) => Err(format!(
                "C24_BENCH_COMPARE={other:?}: expected \"encryption\" or \"trace\""
            )
            .into()),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Compare::Encryption => "encryption",
            Compare::Trace => "traffic trace",
        }
    }

    /// (label, encryption at rest, traffic trace) of the "on" and "off" cores.
    fn sides(self) -> [(&'static str, bool, bool); 2] {
        match self {
            Compare::Encryption => [("on", true, true), ("off", false, true)],
            Compare::Trace => [("trace on", true, true), ("trace off", true, false)],
        }
    }
}

/// One chat core under test and its visitors.
struct Side {
    core: Core,
    load: Load,
}

async fn start_side(
    (label, at_rest_encryption, traffic_trace): (&'static str, bool, bool),
    settings: &Settings,
    client_rt: &tokio::runtime::Handle,
    http: &reqwest::Client,
) -> Result<Side, BoxError> {
    let mut core = Core::start_with(label, |c| {
        c.at_rest_encryption = at_rest_encryption;
        c.traffic_trace = traffic_trace;
    })
    .await?;
    let tenant = create_tenant(
        http,
        &core.running.url(),
        core.running.admin_token(),
        format!("bench {label}"),
    )
    .await?;
    // Only now: the writer thread has committed the tenant.
    core.find_writer();
    let widget_key = tenant.channels.webchat.widget_key;
    let load = Load::start(&core.running, &[widget_key], settings, client_rt).await?;
    Ok(Side { core, load })
}

async fn measure(
    side: &Side,
    index: usize,
    length: std::time::Duration,
) -> Result<WindowResult, BoxError> {
    window(&side.core, &side.load, index, length, &[]).await
}

async fn run(settings: Settings, client_rt: tokio::runtime::Handle) -> Result<(), BoxError> {
    let compare = Compare::from_env()?;
    println!(
        "webchat_ingest ({} on/off): {} pairs of {:?} windows (warm-up {:?}), {} clients x {} in flight per core, \
         {} core runtime threads, {} client threads, {} CPUs",
        compare.what(),
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
    let [a, b] = compare.sides();
    let sides = [
        start_side(a, &settings, &client_rt, &http).await?,
        start_side(b, &settings, &client_rt, &http).await?,
    ];
    println!(
        "cores up: {} on at {}, off at {}",
        compare.what(),
        sides[0].core.running.addr(),
        sides[1].core.running.addr()
    );

    for (i, side) in sides.iter().enumerate() {
        let w = measure(side, i, settings.warmup).await?;
        print_window("warm-up", side.core.label, &w, "");
    }
    let mut results = Vec::with_capacity(settings.pairs * 2);
    for pair in 1..=settings.pairs {
        for (i, side) in sides.iter().enumerate() {
            let w = measure(side, i, settings.window).await?;
            print_window(&format!("pair {pair}"), side.core.label, &w, "");
            results.push(w);
        }
    }

    let (on, off) = (rates(&results, 0), rates(&results, 1));
    let (med_on, med_off) = (median(&on), median(&off));
    let ratio = med_on / med_off;
    let cost = 1.0 - ratio;
    let pair_ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    let errors: u64 = results.iter().map(|w| w.errors).sum();

    println!();
    println!(
        "summary ({} pairs of {:?}):",
        settings.pairs, settings.window
    );
    let what = compare.what();
    println!(
        "  {what} on : median {:>8} acknowledged msg/s (range {})",
        thousands(med_on),
        minmax(&on)
    );
    println!(
        "  {what} off: median {:>8} acknowledged msg/s (range {})",
        thousands(med_off),
        minmax(&off)
    );
    println!(
        "  ratio on/off  : {ratio:.3} (median of per-pair ratios {:.3})",
        median(&pair_ratios)
    );
    println!("  {what} cost: {:.1}%", cost * 100.0);
    println!(
        "  messages stored by the end: on {}, off {} (per-message cost grows with the database)",
        thousands(sides[0].load.gauge.acked.load(Ordering::Relaxed) as f64),
        thousands(sides[1].load.gauge.acked.load(Ordering::Relaxed) as f64),
    );
    println!(
        "  target >= {} msg/s with encryption on: {} ({})",
        thousands(TARGET_MSGS_PER_SEC),
        verdict(med_on >= TARGET_MSGS_PER_SEC),
        thousands(med_on)
    );
    let max_cost = match compare {
        Compare::Encryption => TARGET_MAX_COST,
        Compare::Trace => TARGET_MAX_TRACE_COST,
    };
    println!(
        "  target {what} cost < {:.0}%: {} ({:.1}%)",
        max_cost * 100.0,
        verdict(cost < max_cost),
        cost * 100.0
    );
    if errors > 0 {
        for side in &sides {
            side.load.print_first_error(side.core.label);
        }
        println!("  {errors} msg.send frames were answered with an error (not counted)");
    }

    for Side { core, load } in sides {
        load.finish(core.label).await;
        core.running.shutdown().await;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env(Settings::standard())?;
    let client_rt = runtime(settings.client_threads, CLIENT_THREAD)?;
    let core_rt = runtime(settings.server_threads, SERVER_THREAD)?;
    let result = core_rt.block_on(run(settings, client_rt.handle().clone()));
    drop(core_rt);
    drop(client_rt);
    result
}

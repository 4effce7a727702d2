//! `bench` against the built-in `sink`: intended-time accounting with a
//! stalling server (the corrected p90 shows the stalls, the uncorrected one
//! does not), rate accuracy against a steady one, and the JSON fields.
//! Bounded: each run is at most a few seconds at a few thousand requests/s.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use c24_loadgen::bench::{self, BenchConfig};
use c24_loadgen::sink::{self, Stall};

/// The runs share two cores; one at a time keeps their timing honest.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A sink on its own runtime thread; it lives until the test process ends.
fn start_sink(stall: Option<Stall>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("sink runtime");
        rt.block_on(async move {
            let listener = sink::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let _ = sink::serve(listener, stall).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("sink started")
}

fn config(addr: SocketAddr, rate: Option<f64>, secs: f64) -> BenchConfig {
    BenchConfig {
        url: format!("http://{addr}/ingest"),
        connections: 50,
        duration: Duration::from_secs_f64(secs),
        rate,
        body_bytes: 1024,
        threads: 1,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn stalls_show_in_the_corrected_p90_only() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Silent for 300 ms at 1 s and 2 s: about a quarter of the requests
    // are due while the sink is silent.
    let addr = start_sink(Some(Stall {
        stall: Duration::from_millis(300),
        every: Duration::from_secs(1),
    }));
    let r = bench::run(&config(addr, Some(1000.0), 2.5)).expect("bench runs");
    assert_eq!(r.errors, 0, "{r:#?}");
    let c = r.latency_us.corrected;
    let u = r.latency_us.uncorrected;
    assert!(
        c.p90 >= 100_000,
        "corrected p90 {}µs should show the stalls: {r:#?}",
        c.p90
    );
    assert!(
        u.p90 < 50_000,
        "uncorrected p90 {}µs should stay low: {r:#?}",
        u.p90
    );
    assert!(c.max >= 200_000, "{r:#?}");
}

#[test]
fn a_steady_sink_gets_the_asked_rate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = start_sink(None);
    let r = bench::run(&config(addr, Some(2000.0), 2.0)).expect("bench runs");
    assert_eq!(r.errors, 0, "{r:#?}");
    let ratio = r.achieved_ratio.expect("a ratio at a fixed rate");
    assert!((0.99..=1.01).contains(&ratio), "achieved {ratio}: {r:#?}");
    assert!(r.scheduler_lag_us.is_some());
}

#[test]
fn full_speed_report_has_the_documented_fields() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = start_sink(None);
    let r = bench::run(&config(addr, None, 0.5)).expect("bench runs");
    assert!(r.requests > 100, "{r:#?}");
    assert_eq!(r.errors, 0);
    let v = serde_json::to_value(&r).expect("serializes");
    assert!(v["requests_per_second"].as_f64().is_some_and(|x| x > 0.0));
    assert!(v["asked_rate"].is_null());
    for set in ["corrected", "uncorrected"] {
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][set][k].is_u64(), "{set}.{k}: {v}");
        }
    }
}

#[test]
fn an_unreachable_url_is_an_error_not_a_flood() {
    let e = bench::run(&config(SocketAddr::from(([127, 0, 0, 1], 1)), None, 0.5))
        .expect_err("nothing listens on port 1");
    assert!(matches!(e, bench::BenchError::Unreachable(_)), "{e}");
}

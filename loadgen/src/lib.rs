//! `c24-loadgen`: scripted multi-channel traffic against a c24 chat core,
//! with honest latency (measured from intended send times, in HdrHistograms)
//! and k6-style thresholds that gate CI.
//!
//! - [`scenario`]: scenario files → a validated [`scenario::Plan`] (errors name file, line, key).
//! - [`schedule`]: intended start times of open-model arrivals (constant, ramp, Poisson).
//! - [`drivers`]: web chat, WhatsApp and email conversation drivers.
//! - [`metrics`]: per-worker histograms (corrected and uncorrected) and counters.
//! - [`thresholds`]: `"webchat.ack.p99" = "< 50ms"` parsing and evaluation.
//! - [`run`]: worker threads, the aggregator, abort-on-fail.
//! - [`report`]: summary table, JSON, JUnit, HDR interval log.
//! - [`observe`]: per-interval hooks (HTML timeline); [`metrics_listen`]: `--metrics-listen`, live OpenMetrics.
//! - [`live`]: progress while running. [`provision`]: target and tenants.
//! - [`command`]: the `run` and `validate` commands behind `main.rs`.
//! - [`capacity`]: `capacity`, the highest arrival rate within SLOs (step, then bisect).
//! - [`compare`]: `compare`, B/A cost of a variant in alternating windows, bootstrap CIs.
//! - [`sink`]: a trivial HTTP target; [`bench`]: a plain HTTP/1.1 load client.
//! - [`limits`]: raising the open-file limit for many sockets.
//! - [`tls`]: what `https://`/`wss://` targets are trusted with (`--ca-file`, `--insecure`).
//! - [`replay`]: recorded traffic traces played again with their timing and shape.

pub mod bench;
pub mod capacity;
pub mod command;
pub mod compare;
pub mod drivers;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod metrics_listen;
pub mod observe;
pub mod provision;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod sink;
pub mod thresholds;
pub mod tls;

/// The process exit codes (documented in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every threshold passed.
    Passed = 0,
    /// A threshold failed (or the run was aborted).
    ThresholdFailed = 1,
    /// The scenario or the command line is wrong.
    Invalid = 2,
    /// The target could not be reached or provisioned.
    Unreachable = 3,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Passed, or a threshold failed.
    pub fn verdict(passed: bool) -> Exit {
        if passed {
            Exit::Passed
        } else {
            Exit::ThresholdFailed
        }
    }
}

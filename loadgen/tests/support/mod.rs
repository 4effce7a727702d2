//! What the load generator's integration tests share: the binary and its
//! output as text, scenario files, in-process runs, embedded chat cores and
//! report figures. Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use c24_loadgen::command::{self, Failure, Finished, RunRequest};
use c24_loadgen::live::LiveMode;
use c24_loadgen::report::Report;

/// The built `c24-loadgen` binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_c24-loadgen"))
}

/// A process's exit status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command to its end on a blocking thread, so that a core started
/// in this test process keeps serving meanwhile.
pub async fn output_blocking(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A file of the repository, e.g. `scenarios/smoke.toml`.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Writes scenario text to `dir/name`.
pub fn write_scenario(dir: &Path, name: &str, src: impl AsRef<[u8]>) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, src).expect("write scenario");
    file
}

/// A quiet in-process run of `scenario` (without `target`: an embedded core).
pub fn quiet_request(scenario: PathBuf, target: Option<String>, threads: usize) -> RunRequest {
    RunRequest {
        scenario,
        target,
        admin_token: None,
        threads,
        report_json: None,
        junit: None,
        hdr_log: None,
        live: LiveMode::Quiet,
        shard: Default::default(),
    }
}

/// Runs scenario text (as `s.toml` in a temp dir) in process.
pub async fn run_text(
    src: &str,
    target: Option<String>,
    threads: usize,
) -> Result<Finished, Failure> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(dir.path(), "s.toml", src);
    command::run(&quiet_request(file, target, threads)).await
}

/// Runs scenario text on two threads; it must complete.
pub async fn run_scenario(src: &str, target: Option<String>) -> (c24_loadgen::Exit, Report) {
    let done = run_text(src, target, 2).await.expect("the run completes");
    (done.exit, done.report)
}

/// The corrected count of `channel.metric`, over every step.
pub fn count(r: &Report, channel: &str, metric: &str) -> u64 {
    r.latency
        .iter()
        .filter(|e| e.channel == channel && e.metric == metric)
        .map(|e| e.count)
        .sum()
}

/// A `--report-json` file, parsed.
pub fn read_report(p: &Path) -> Report {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An at-rest-encrypted chat core in its own temp dir, over TLS (a
/// self-signed development certificate) or plain HTTP.
pub async fn start_core(tls: bool) -> (c24_chatcore::Running, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = c24_chatcore::Config::embedded(data.path());
    cfg.kek =
        c24_chatcore::KekSource::Base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into());
    if tls {
        cfg.tls = c24_chatcore::TlsConfig::SelfSigned;
    }
    (c24_chatcore::start(cfg).await.unwrap(), data)
}

//! Runs over `https://` and `wss://`: against an embedded core serving TLS
//! (`run --embedded-tls`) and against a separately started TLS core reached
//! with `--target https://… --ca-file dev-cert.pem`; the TLS handshake is its
//! own metric, and an untrusted certificate is refused (exit 3).

use c24_loadgen::report::Report;

mod support;
use support::{bin, count, output_blocking, read_report, text, write_scenario};

/// Every channel, a few conversations, with a reconnect over wss.
const SCENARIO: &str = r#"name = "tls"
duration = "1s"
grace = "5s"
[tenants]
provision = 1
[[stages]]
rate = 6
duration = "1s"
[mix]
webchat = 0.5
whatsapp = 0.25
email = 0.25
[[script]]
channel = "webchat"
steps = [
  { send = "Hoi" },
  { agent_reply = "Hallo" },
  { expect = "msg.new", timeout = "5s" },
  { reconnect = true },
  { send = "weer daar" },
]
[[script]]
channel = "whatsapp"
steps = [{ send = "Hallo" }, { agent_reply = "Dag" }]
[[script]]
channel = "email"
steps = [{ send = "Beste", subject = "Vraag" }, { agent_reply = "Dank" }]
[thresholds]
"errors.count" = "== 0"
"webchat.tls_handshake.count" = "> 0"
"#;

fn check_tls_report(r: &Report) {
    assert!(r.target.starts_with("https://"), "{}", r.target);
    assert!(r.passed, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let connects = count(r, "webchat", "connect");
    let reconnects = count(r, "webchat", "reconnect");
    assert!(connects > 0, "{r:#?}");
    // One TLS handshake per connect and per reconnect, and each one a part
    // of its connect (so never longer than the whole).
    assert_eq!(count(r, "webchat", "tls_handshake"), connects + reconnects);
    let handshake = r
        .latency
        .iter()
        .find(|e| e.metric == "tls_handshake" && e.step.is_none())
        .expect("initial handshakes");
    let connect = r
        .latency
        .iter()
        .find(|e| e.metric == "connect")
        .expect("connects");
    assert!(handshake.uncorrected.min > 0);
    assert!(handshake.uncorrected.min <= connect.uncorrected.max);
    assert!(count(r, "whatsapp", "http") > 0 && count(r, "email", "agent") > 0);
}

#[test]
fn run_over_wss_against_the_embedded_tls_core() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "tls.toml", SCENARIO);
    let json = dir.path().join("r.json");
    let o = bin()
        .args(["run", "--live", "quiet", "--embedded-tls", "--report-json"])
        .arg(&json)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("webchat.tls_handshake"), "{}", text(&o));
    check_tls_report(&read_report(&json));
}

/// `run --live quiet FLAGS… --target URL --admin-token T`, for more arguments.
fn run_on(flags: &[&str], url: &str, token: &str) -> std::process::Command {
    let mut cmd = bin();
    cmd.args(["run", "--live", "quiet"]).args(flags).args([
        "--target",
        url,
        "--admin-token",
        token,
    ]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_against_a_tls_target_with_its_ca_file() {
    let (core, _data) = support::start_core(true).await;
    let url = core.url();
    assert!(url.starts_with("https://"));
    let token = core.admin_token().to_string();
    let ca = core.dev_cert_path();
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "tls.toml", SCENARIO);
    let json = dir.path().join("r.json");

    let mut cmd = run_on(&[], &url, &token);
    cmd.arg("--ca-file")
        .arg(&ca)
        .arg("--report-json")
        .arg(&json)
        .arg(&file);
    let trusted = output_blocking(cmd).await;
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted));
    check_tls_report(&read_report(&json));

    // Without the CA file the dev certificate is not trusted: unreachable.
    let mut cmd = run_on(&[], &url, &token);
    cmd.arg(&file);
    let untrusted = output_blocking(cmd).await;
    assert_eq!(untrusted.status.code(), Some(3), "{}", text(&untrusted));
    // --insecure accepts the untrusted certificate, on every channel.
    let mut cmd = run_on(&["--insecure"], &url, &token);
    cmd.arg(&file);
    let insecure = output_blocking(cmd).await;
    assert_eq!(insecure.status.code(), Some(0), "{}", text(&insecure));
    assert!(
        text(&untrusted).contains("--ca-file"),
        "{}",
        text(&untrusted)
    );
    core.shutdown().await;
}

//! `c24-loadgen compare` end to end against two embedded cores: the report's
//! structure, finite ratios whose intervals bracket them, the TLS handshake
//! kept apart, and the exit codes of ratio thresholds.

use std::process::Output;

use serde_json::Value;

mod support;
use support::{bin, text, write_scenario};

fn scenario(thresholds: &str) -> String {
    format!(
        r#"name = "cmp"
duration = "1s"
grace = "2s"
[tenants]
provision = 1
[[stages]]
rate = 20
duration = "1s"
[mix]
webchat = 0.75
whatsapp = 0.25
[[script]]
channel = "webchat"
steps = [{{ send = "Hoi" }}, {{ send = "nog een" }}]
[[script]]
channel = "whatsapp"
steps = [{{ send = "Hallo" }}]
[thresholds]
{thresholds}
"#
    )
}

struct Ran {
    out: Output,
    report: Option<Value>,
}

fn compare(thresholds: &str, extra: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "cmp.toml", scenario(thresholds));
    let json = dir.path().join("cmp.json");
    let out = bin()
        .args([
            "compare",
            "--pairs",
            "4",
            "--window",
            "500ms",
            "--report-json",
        ])
        .arg(&json)
        .args(extra)
        .arg(&file)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ran { out, report }
}

fn finite(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{x}");
    x
}

#[test]
fn plain_versus_tls_reports_ratios_with_intervals_and_the_handshake_apart() {
    let ran = compare(
        r#""overhead.webchat.ack.p99" = "< 100"
"overhead.whatsapp.http.p50" = "< 100"
"errors.rate" = "< 1%""#,
        &["--variant", "tls"],
    );
    assert_eq!(ran.out.status.code(), Some(0), "{}", text(&ran.out));
    let r = ran.report.expect("a JSON report");
    assert_eq!(r["schema"], "c24-loadgen/compare/v1");
    assert_eq!(r["pairs"], 4);
    assert_eq!(r["order"], "ABBA");
    // The windows really ran in that order (progress lines on stderr).
    let err = String::from_utf8_lossy(&ran.out.stderr);
    let sides: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("pair "))
        .filter_map(|l| l.split(' ').nth(1))
        .map(|s| s.trim_end_matches(':'))
        .collect();
    assert_eq!(sides, ["A", "B", "B", "A", "A", "B", "B", "A"], "{err}");
    assert_eq!(r["a"]["windows"].as_array().unwrap().len(), 4);
    assert!(r["a"]["target"].as_str().unwrap().starts_with("http://"));
    assert!(r["b"]["target"].as_str().unwrap().starts_with("https://"));
    let metrics = r["metrics"].as_array().unwrap();
    for (channel, metric) in [
        ("webchat", "ack"),
        ("webchat", "connect"),
        ("whatsapp", "http"),
    ] {
        let m = metrics
            .iter()
            .find(|m| m["channel"] == channel && m["metric"] == metric)
            .unwrap_or_else(|| panic!("{channel}.{metric} in {metrics:?}"));
        assert_eq!(m["pairs_used"], 4, "{m}");
        for stat in ["p50", "p99", "p999", "throughput"] {
            let s = &m[stat];
            let (ratio, lo, hi) = (
                finite(&s["ratio"]),
                finite(&s["ci_low"]),
                finite(&s["ci_high"]),
            );
            assert!(lo <= ratio && ratio <= hi, "{channel}.{metric}.{stat}: {s}");
        }
        for side in ["a", "b"] {
            assert!(m[side]["count"].as_u64().unwrap() > 0, "{m}");
            assert!(
                !m[side]["histogram"]["corrected"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
        }
    }
    // The handshake is not among the ratios: it exists on B only.
    assert!(metrics.iter().all(|m| m["metric"] != "tls_handshake"));
    assert!(r["tls_handshake"]["a"].is_null(), "{}", r["tls_handshake"]);
    let b_hs = &r["tls_handshake"]["b"];
    assert!(b_hs["count"].as_u64().unwrap() > 0, "{b_hs}");
    assert!(b_hs["us"]["p50"].as_u64().unwrap() > 0, "{b_hs}");
    let th = r["thresholds"].as_array().unwrap();
    // Two ratio checks, and the plain check judged on each side.
    assert_eq!(th.len(), 4, "{th:?}");
    assert!(th.iter().all(|t| t["passed"] == true), "{th:?}");
    assert_eq!(th[0]["side"], "ratio");
    assert!(th[0]["ci_low"].as_f64().unwrap() <= th[0]["observed"].as_f64().unwrap());
    assert_eq!(r["passed"], true);
    let t = text(&ran.out);
    assert!(
        t.contains("TLS handshake") && t.contains("RESULT: PASSED"),
        "{t}"
    );
}

#[test]
fn a_ratio_threshold_that_fails_exits_1_and_is_named() {
    // At-rest encryption on (B) cannot be 1000 times faster than off (A).
    let ran = compare(r#""overhead.webchat.ack.p50" = "< 0.001""#, &[]);
    let t = text(&ran.out);
    assert_eq!(ran.out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL overhead.webchat.ack.p50 < 0.001"), "{t}");
    let r = ran.report.expect("a JSON report");
    assert_eq!(r["passed"], false);
    assert!(
        r["a"]["label"]
            .as_str()
            .unwrap()
            .contains("no-at-rest-encryption")
    );
    assert!(r["tls_handshake"]["a"].is_null() && r["tls_handshake"]["b"].is_null());
}

#[test]
fn bad_command_lines_exit_2_and_unreachable_targets_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "cmp.toml", scenario(""));
    let only_a = bin()
        .args(["compare", "--a", "http://127.0.0.1:9"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(only_a.status.code(), Some(2), "{}", text(&only_a));
    let no_pairs = bin()
        .args(["compare", "--pairs", "0"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(no_pairs.status.code(), Some(2), "{}", text(&no_pairs));
    let bad_key = dir.path().join("bad.toml");
    std::fs::write(
        &bad_key,
        scenario(r#""overhead.webchat.ack.p99" = "< 10ms""#),
    )
    .unwrap();
    let bad = bin().args(["compare"]).arg(&bad_key).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("ratio"), "{}", text(&bad));
    // Nothing listens on port 9 of the loopback.
    let gone = bin()
        .args([
            "compare",
            "--a",
            "http://127.0.0.1:9",
            "--b",
            "http://127.0.0.1:9",
        ])
        .args(["--admin-token-a", "x"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(3), "{}", text(&gone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_running_targets_each_with_its_own_token() {
    let (a, _a_dir) = support::start_core(false).await;
    let (b, _b_dir) = support::start_core(true).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(
        dir.path(),
        "cmp.toml",
        scenario(r#""overhead.whatsapp.http.p99" = "< 100""#),
    );
    let json = dir.path().join("cmp.json");
    let args: Vec<std::ffi::OsString> = vec![
        "compare".into(),
        "--a".into(),
        a.url().into(),
        "--b".into(),
        b.url().into(),
        "--admin-token-a".into(),
        a.admin_token().into(),
        "--admin-token-b".into(),
        b.admin_token().into(),
        "--ca-file".into(),
        b.dev_cert_path().into(),
        "--pairs".into(),
        "2".into(),
        "--window".into(),
        "300ms".into(),
        "--report-json".into(),
        json.clone().into(),
        file.into(),
    ];
    let mut cmd = bin();
    cmd.args(args);
    let out = support::output_blocking(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["a"]["embedded"], false);
    assert_eq!(r["b"]["target"], b.url());
    assert!(r["tls_handshake"]["a"].is_null());
    assert!(r["tls_handshake"]["b"]["count"].as_u64().unwrap() > 0);
    assert_eq!(r["b"]["errors"], 0, "{}", r["b"]);
    a.shutdown().await;
    b.shutdown().await;
}

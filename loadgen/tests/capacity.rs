//! `c24-loadgen capacity` end to end against the embedded core with a tiny
//! step budget: it runs, reports a latency-versus-rate curve, and exits by
//! whether any rate held. (The search logic itself is unit-tested in
//! `capacity::search` with a fake measurement.)

use std::process::Output;

use serde_json::Value;

mod support;
use support::{bin, text, write_scenario};

const SCENARIO: &str = r#"name = "cap"
duration = "1s"
grace = "2s"
[tenants]
provision = 1
[[stages]]
rate = 5
duration = "1s"
[mix]
webchat = 0.5
email = 0.5
[[script]]
channel = "webchat"
steps = [{ send = "Hoi" }]
[[script]]
channel = "email"
steps = [{ send = "Beste", subject = "Vraag" }]
"#;

fn capacity(slos: &[&str]) -> (Output, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "cap.toml", SCENARIO);
    let json = dir.path().join("cap.json");
    let mut cmd = bin();
    cmd.args([
        "capacity",
        "--start-rate",
        "4",
        "--factor",
        "2",
        "--max-rate",
        "16",
    ])
    .args([
        "--bisections",
        "2",
        "--step-duration",
        "400ms",
        "--report-json",
    ])
    .arg(&json);
    for s in slos {
        cmd.args(["--slo", s]);
    }
    let out = cmd.arg(&file).output().unwrap();
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    (out, report)
}

#[test]
fn reports_the_highest_rate_that_held_and_the_curve() {
    let (out, report) = capacity(&["errors.rate < 50%", "webchat.ack.count > 0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report.expect("a JSON report");
    assert_eq!(r["schema"], "c24-loadgen/capacity/v1");
    assert_eq!(r["slos"].as_array().unwrap().len(), 2);
    let s = &r["searches"][0];
    let curve = s["curve"].as_array().unwrap();
    let rates: Vec<f64> = curve.iter().map(|p| p["rate"].as_f64().unwrap()).collect();
    let lagged = curve.iter().any(|p| p["generator_lagging"] == true);
    if lagged {
        // A loaded machine: the search stops early with a lower bound.
        assert_eq!(s["ended"], "generator", "{s}");
        assert!(!rates.is_empty() && rates[0] == 4.0, "{rates:?}");
    } else {
        assert_eq!(rates, vec![4.0, 8.0, 16.0], "{}", text(&out));
        assert_eq!(s["ended"], "max_rate");
        assert_eq!(s["max_rate"], 16.0);
        assert_eq!(s["per_channel"][0]["share"], 8.0, "{s}");
    }
    for p in curve {
        assert!(p["achieved_rate"].as_f64().unwrap() > 0.0, "{p}");
        let lat = p["latency"].as_array().unwrap();
        for (channel, metric) in [("webchat", "ack"), ("email", "http")] {
            let point = lat
                .iter()
                .find(|l| l["channel"] == channel && l["metric"] == metric)
                .unwrap_or_else(|| panic!("{channel}.{metric} in {p}"));
            assert!(point["count"].as_u64().unwrap() > 0);
            assert!(point["corrected"]["p99"].as_u64().unwrap() > 0);
        }
    }
    assert!(text(&out).contains("CAPACITY:"), "{}", text(&out));
}

#[test]
fn no_rate_holds_an_impossible_slo_and_exits_1() {
    let (out, report) = capacity(&["webchat.ack.p99 < 1us"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report.expect("a JSON report");
    let s = &r["searches"][0];
    assert!(s["max_rate"].is_null(), "{s}");
    assert!(s["broke_at"].as_f64().unwrap() < 4.0, "{s}");
    // 4/s broke, then two bisections below it.
    assert_eq!(s["curve"].as_array().unwrap().len(), 3, "{s}");
    assert!(text(&out).contains("CAPACITY: none"), "{}", text(&out));
}

#[test]
fn a_bad_slo_exits_2() {
    let (out, report) = capacity(&["webchat.ack.p99 < 50"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--slo"), "{}", text(&out));
    assert!(report.is_none());
}

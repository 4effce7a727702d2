//! The real binary: exit codes and what it prints.

mod support;
use support::{bin, repo_file, text, write_scenario};

/// A one-second web-chat scenario with the given thresholds.
fn tiny(thresholds: &str) -> String {
    format!(
        r#"name = "tiny"
duration = "1s"
grace = "2s"

[[stages]]
rate = 5
duration = "1s"

[[script]]
channel = "webchat"
steps = [{{ send = "Hoi" }}]

[thresholds]
{thresholds}
"#
    )
}

#[test]
fn smoke_passes_against_the_embedded_core() {
    let o = bin()
        .args(["run", "--live", "lines"])
        .arg(repo_file("scenarios/smoke.toml"))
        .output()
        .expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("RESULT: PASSED"), "{t}");
    for needle in [
        "webchat.ack",
        "webchat.push",
        "whatsapp.http",
        "email.http",
        "email.agent",
    ] {
        assert!(t.contains(needle), "{needle} missing: {t}");
    }
}

#[test]
fn an_impossible_threshold_exits_1_and_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("impossible.toml");
    std::fs::write(
        &file,
        tiny("\"webchat.ack.p50\" = \"< 1us\"\n\"errors.rate\" = \"< 1%\""),
    )
    .expect("write");
    let o = bin()
        .args(["run", "--live", "quiet"])
        .arg(&file)
        .output()
        .expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL webchat.ack.p50 < 1us"), "{t}");
    assert!(t.contains("PASS errors.rate"), "{t}");
    assert!(
        t.contains("RESULT: FAILED: 1 of 2 threshold(s) failed: webchat.ack.p50"),
        "{t}"
    );
}

#[test]
fn a_broken_scenario_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broken.toml");
    let src = tiny("\"webchat.ack.p99\" = \"< 50ms\"").replace("rate = 5", "rate = \"lots\"");
    std::fs::write(&file, src).expect("write");
    for cmd in ["validate", "run"] {
        let o = bin().arg(cmd).arg(&file).output().expect("runs");
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {t}");
        let expected = format!(
            "{}:6: stages[0].rate: expected a number, found string",
            file.display()
        );
        assert!(t.contains(&expected), "{cmd}: {t}");
    }
}

#[test]
fn validate_accepts_every_shipped_scenario() {
    let dir = repo_file("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = bin().arg("validate").arg(&path).output().expect("runs");
            assert_eq!(o.status.code(), Some(0), "{}: {}", path.display(), text(&o));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn an_unreachable_target_exits_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(dir.path(), "t.toml", tiny(""));
    // Port 1 on loopback: nothing listens there, the connect is refused at once.
    let o = bin()
        .args([
            "run",
            "--live",
            "quiet",
            "--target",
            "http://127.0.0.1:1",
            "--admin-token",
            "x",
        ])
        .arg(&file)
        .output()
        .expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("not reachable"), "{t}");
}

#[test]
fn a_bad_flag_exits_2_and_help_lists_the_exit_codes() {
    let o = bin()
        .args(["run", "--no-such-flag", "x.toml"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = bin().arg("--help").output().expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("3  the target could not be reached or provisioned"),
        "{t}"
    );
}

#[test]
fn abort_on_fail_stops_the_run_early_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("abort.toml");
    let src =
        tiny("\"webchat.ack.p50\" = { check = \"< 1us\", abort_on_fail = true, delay = \"1s\" }")
            .replace("duration = \"1s\"\ngrace", "duration = \"30s\"\ngrace")
            .replace(
                "duration = \"1s\"\n\n[[script]]",
                "duration = \"30s\"\n\n[[script]]",
            );
    std::fs::write(&file, src).expect("write");
    let started = std::time::Instant::now();
    let o = bin()
        .args(["run", "--live", "quiet"])
        .arg(&file)
        .output()
        .expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("abort_on_fail stopped the run"), "{t}");
    // Stopped within seconds of the 1 s delay, not after the 30 s asked.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{t}"
    );
}

#[test]
fn shards_merge_into_the_whole_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("shard.toml");
    std::fs::write(
        &file,
        tiny("\"webchat.ack.count\" = \"== 5\"\n\"errors.count\" = \"== 0\""),
    )
    .expect("write");
    // Both shards at once, each against its own embedded core.
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let json = dir.path().join(format!("shard{i}.json"));
            let child = bin()
                .args(["run", "--live", "quiet", "--threads", "2", "--shard"])
                .arg(format!("{i}/2"))
                .arg(&file)
                .arg("--report-json")
                .arg(&json)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starts");
            (child, json)
        })
        .collect();
    let mut jsons = Vec::new();
    for (child, json) in shards {
        let o = child.wait_with_output().expect("runs");
        // Alone, a shard has only part of the 5 acks: its count threshold fails.
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        jsons.push(json);
    }
    let merged = dir.path().join("merged.json");
    let o = bin()
        .arg("merge")
        .arg("--scenario")
        .arg(&file)
        .args(&jsons)
        .arg("--report-json")
        .arg(&merged)
        .output()
        .expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS webchat.ack.count == 5"), "{t}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).expect("merged written"))
            .expect("json");
    assert_eq!(v["scenarios"][0]["started"], 5, "{v}");
}

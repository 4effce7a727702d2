//! The human-facing reports: `--report-html` pages of run, compare and
//! capacity opened in headless Chromium (the page's script marks how many
//! charts it found and how many have a drawn series), `--summary-md`
//! contents, and `--metrics-listen` scraped while a run goes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{bin, text, write_scenario};

const SCENARIO: &str = r#"name = "pages"
duration = "2s"
grace = "3s"
[tenants]
provision = 1
[[stages]]
rate = 8
duration = "2s"
[mix]
webchat = 0.5
whatsapp = 0.25
email = 0.25
[[script]]
channel = "webchat"
steps = [{ send = "Hoi" }, { agent_reply = "Hallo" }, { expect = "msg.new", timeout = "5s" }]
[[script]]
channel = "whatsapp"
steps = [{ send = "Hallo" }]
[[script]]
channel = "email"
steps = [{ send = "Beste", subject = "Vraag" }]
[thresholds]
"webchat.ack.p99" = "< 5s"
"errors.rate" = "< 1%"
"#;

fn scenario(dir: &Path, extra_thresholds: &str) -> PathBuf {
    write_scenario(dir, "pages.toml", format!("{SCENARIO}{extra_thresholds}\n"))
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The page's DOM after its script ran, or `None` when no Chromium is installed.
fn dump_dom(page: &Path) -> Option<String> {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium at /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)"
        );
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", text(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn attr(dom: &str, name: &str) -> Option<usize> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[at..].split('"').next()?.parse().ok()
}

/// Opens a page in Chromium and checks every chart on it was drawn.
fn check_page(page: &Path, at_least: usize) {
    let html = std::fs::read_to_string(page).unwrap();
    // Self-contained: nothing to fetch.
    for needle in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
        assert!(!html.contains(needle), "{needle} in {}", page.display());
    }
    let Some(dom) = dump_dom(page) else {
        return;
    };
    let charts = attr(&dom, "data-charts").expect("the page's script ran and counted charts");
    let drawn = attr(&dom, "data-rendered").expect("the page's script marked drawn charts");
    assert!(charts >= at_least, "{charts} charts in {}", page.display());
    assert_eq!(
        drawn,
        charts,
        "every chart has a drawn series: {}",
        page.display()
    );
    assert!(dom.matches("class=\"series\"").count() >= charts);
}

/// `c24-loadgen ARGS… --report-html NAME.html --summary-md NAME.md FILE`,
/// both pages in `dir`: the output and the two paths.
fn with_pages(dir: &Path, name: &str, args: &[&str], file: &Path) -> (Output, PathBuf, PathBuf) {
    let html = dir.join(format!("{name}.html"));
    let md = dir.join(format!("{name}.md"));
    let o = bin()
        .args(args)
        .arg("--report-html")
        .arg(&html)
        .arg("--summary-md")
        .arg(&md)
        .arg(file)
        .output()
        .unwrap();
    (o, html, md)
}

#[test]
fn run_page_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), r#""email.http.p99" = "< 1us""#);
    let (o, html, md) = with_pages(dir.path(), "run", &["run", "--live", "quiet"], &file);
    // The impossible email threshold fails the run: the pages still come.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    for needle in [
        "webchat latency over time",
        "Throughput",
        "Errors",
        "webchat.ack percentile spectrum",
        "email.http percentile spectrum",
        "uncorrected",
        "email.http.p99",
        "FAILED",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    // Three channels over time, throughput, errors, and a spectrum per metric.
    check_page(&html, 8);

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("## c24-loadgen: pages — ❌ FAILED"), "{md}");
    assert!(
        md.contains("| `email.http.p99` | `< 1us` |") && md.contains("❌ **FAIL**"),
        "{md}"
    );
    assert!(
        md.contains("| `webchat.ack.p99` | `< 5s` |") && md.contains("✅ pass"),
        "{md}"
    );
    assert!(md.contains("| `webchat.ack` | 0 send |"), "{md}");
    assert!(
        md.contains("| `whatsapp.http` |") && md.contains("Errors: 0 of"),
        "{md}"
    );
    // A table row per threshold, each well-formed (same number of cells).
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `")).collect();
    assert!(rows.len() >= 3 + 5, "{md}");
}

#[test]
fn compare_and_capacity_pages_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), r#""overhead.webchat.ack.p99" = "< 100""#);
    let (o, html, md) = with_pages(
        dir.path(),
        "cmp",
        &[
            "compare",
            "--variant",
            "tls",
            "--pairs",
            "2",
            "--window",
            "500ms",
        ],
        &file,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    for needle in [
        "B/A ratios",
        "webchat.ack: A vs B",
        "A corrected",
        "B corrected",
        "TLS handshake",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    // The ratio chart and one side-by-side chart per metric.
    check_page(&html, 4);
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.starts_with("## c24-loadgen compare: pages — ✅ PASSED"),
        "{md}"
    );
    assert!(
        md.contains("| `overhead.webchat.ack.p99` | `< 100` | ratio |"),
        "{md}"
    );
    assert!(
        md.contains("| `webchat.ack` |") && md.contains("TLS handshake B: p50"),
        "{md}"
    );

    let (o, html, md) = with_pages(
        dir.path(),
        "cap",
        &[
            "capacity",
            "--slo",
            "errors.rate < 50%",
            "--start-rate",
            "4",
            "--max-rate",
            "8",
            "--step-duration",
            "400ms",
        ],
        &file,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Latency versus arrival rate"), "{page}");
    assert!(
        page.contains("class=\"mark held\""),
        "probes drawn as marks"
    );
    check_page(&html, 2);
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("## c24-loadgen capacity: pages"), "{md}");
    assert!(md.contains("| 4.0 |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_openmetrics_during_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.toml");
    // Long enough to scrape mid-run; the scrape polls, it does not sleep.
    std::fs::write(&file, SCENARIO.replace("\"2s\"", "\"4s\"")).unwrap();
    let mut child = bin()
        .args(["run", "--live", "quiet", "--metrics-listen", "127.0.0.1:0"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("OpenMetrics on ").nth(1) {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the run prints the metrics address");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let resp = http.get(&url).send().await.expect("scrape");
        assert_eq!(resp.status(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        let body = resp.text().await.unwrap();
        let acks = series(
            &body,
            "c24_loadgen_latency_seconds_count",
            &[("channel", "webchat"), ("metric", "ack")],
        );
        if acks.is_some_and(|v| v > 0.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no webchat ack series in time:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE c24_loadgen_latency_seconds summary"));
    let p99 = series(
        &body,
        "c24_loadgen_latency_seconds",
        &[
            ("channel", "webchat"),
            ("metric", "ack"),
            ("quantile", "0.99"),
        ],
    )
    .expect("a p99 quantile");
    assert!(p99 > 0.0 && p99 < 5.0, "{p99}");
    let ops = series(
        &body,
        "c24_loadgen_operations_total",
        &[("channel", "webchat")],
    )
    .unwrap();
    assert!(ops > 0.0);
    assert!(
        series(
            &body,
            "c24_loadgen_conversations_started_total",
            &[("scenario", "pages")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        series(
            &body,
            "c24_loadgen_threshold_passing",
            &[("key", "errors.rate")]
        ),
        Some(1.0)
    );
    assert!(series(&body, "c24_loadgen_elapsed_seconds", &[]).unwrap() > 0.0);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// The value of the first sample of `name` whose labels include `want`.
fn series(body: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if n != name {
            return None;
        }
        let ok = want
            .iter()
            .all(|(k, v)| labels.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if ok { value.parse().ok() } else { None }
    })
}

#[test]
fn merged_shards_get_a_page_and_a_summary_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "");
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let json = dir.path().join(format!("shard{i}.json"));
            let child = bin()
                .args(["run", "--live", "quiet", "--threads", "1", "--shard"])
                .arg(format!("{i}/2"))
                .arg("--report-json")
                .arg(&json)
                .arg(&file)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (json, child)
        })
        .collect();
    let mut jsons = Vec::new();
    for (json, mut child) in shards {
        assert_eq!(child.wait().unwrap().code(), Some(0));
        jsons.push(json);
    }
    let html = dir.path().join("merged.html");
    let md = dir.path().join("merged.md");
    let o = bin()
        .args(["merge", "--scenario"])
        .arg(&file)
        .arg("--report-html")
        .arg(&html)
        .arg("--summary-md")
        .arg(&md)
        .args(&jsons)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("merged from shards") && page.contains("webchat.ack percentile spectrum")
    );
    check_page(&html, 3);
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("## c24-loadgen: pages — ✅ PASSED"), "{md}");
    assert!(md.contains("2 merged report(s)"), "{md}");
}

//! One load split over three machines: three `c24-loadgen run --shard I/3`
//! processes at once against one chat core, then `c24-loadgen merge`.
//!
//! Checked: the merged counters are the shards' sums; every merged
//! percentile (corrected and uncorrected) is that of the three serialized
//! histograms decoded and added here with the `hdrhistogram` crate; the
//! thresholds are judged on the merged distribution (count thresholds each
//! shard alone fails pass on the whole, and latency thresholds placed between
//! the merged figure and the naive average of the shards' figures follow the
//! merged one); and the core stored exactly the messages the merge counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use base64::Engine;
use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::Client;
use c24_loadgen::report::{LatencyEntry, Report, ScenarioReport, ThresholdEntry};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

mod support;
use support::{bin, read_report, text, write_scenario};

const SHARDS: usize = 3;
/// Arrivals per second, over `SECS` seconds, uniform: `RATE * SECS` in all.
const RATE: u64 = 9;
const SECS: u64 = 2;
/// The mix gives every channel the same share.
const PER_CHANNEL: u64 = RATE * SECS / 3;
/// Visitor sends per conversation in each script below.
const WEBCHAT_SENDS: u64 = 2;
const WHATSAPP_SENDS: u64 = 2;
const EMAIL_SENDS: u64 = 1;

/// The scenario, on the tenants in `tenants.json` next to it, with the
/// whole run's count thresholds and `extra` thresholds.
fn scenario(extra: &str) -> String {
    format!(
        r#"name = "shards"
duration = "{SECS}s"
grace = "10s"
[tenants]
credentials = "tenants.json"
[[stages]]
rate = {RATE}
duration = "{SECS}s"
[mix]
webchat = 1
whatsapp = 1
email = 1
[[script]]
channel = "webchat"
steps = [
  {{ send = "Hoi" }},
  {{ agent_reply = "Hallo" }},
  {{ expect = "msg.new", timeout = "10s" }},
  {{ send = "Dank je" }},
]
[[script]]
channel = "whatsapp"
steps = [{{ send = "Hallo" }}, {{ send = "Nog een vraag" }}]
[[script]]
channel = "email"
steps = [{{ send = "Beste", subject = "Vraag" }}, {{ agent_reply = "Dank" }}]
[thresholds]
"webchat.ack.count" = "== {webchat_acks}"
"whatsapp.http.count" = "== {whatsapp_posts}"
"email.http.count" = "== {email_posts}"
"email.agent.count" = "== {PER_CHANNEL}"
"errors.count" = "== 0"
"dropped.count" = "== 0"
"webchat.ack.p99" = "< 10s"
{extra}
"#,
        webchat_acks = PER_CHANNEL * WEBCHAT_SENDS,
        whatsapp_posts = PER_CHANNEL * WHATSAPP_SENDS,
        email_posts = PER_CHANNEL * EMAIL_SENDS,
    )
}

fn decode(s: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64");
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .expect("an HdrHistogram V2 deflate encoding")
}

fn empty() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    h.auto(true);
    h
}

type EntryKey = (String, String, String, Option<u16>);

fn key(e: &LatencyEntry) -> EntryKey {
    (
        e.scenario.clone(),
        e.channel.clone(),
        e.metric.clone(),
        e.step,
    )
}

/// Corrected and uncorrected, decoded from a report's entries and added.
#[derive(Clone)]
struct Pair {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
}

impl Pair {
    fn new() -> Self {
        Pair {
            corrected: empty(),
            uncorrected: empty(),
        }
    }
    fn add_entry(&mut self, e: &LatencyEntry) {
        assert_eq!(e.histogram.encoding, "hdrhistogram-v2-deflate-base64");
        self.corrected.add(decode(&e.histogram.corrected)).unwrap();
        self.uncorrected
            .add(decode(&e.histogram.uncorrected))
            .unwrap();
    }
    fn add(&mut self, o: &Pair) {
        self.corrected.add(&o.corrected).unwrap();
        self.uncorrected.add(&o.uncorrected).unwrap();
    }
}

/// Per (scenario, channel, metric, step): the entry's histograms.
fn entries(r: &Report) -> BTreeMap<EntryKey, Pair> {
    let mut out = BTreeMap::new();
    for e in &r.latency {
        let mut p = Pair::new();
        p.add_entry(e);
        assert!(out.insert(key(e), p).is_none(), "{:?} twice", key(e));
    }
    out
}

/// Per channel.metric over all steps: what a threshold key reads.
fn by_metric(r: &Report) -> BTreeMap<(String, String), Pair> {
    let mut out: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for e in &r.latency {
        out.entry((e.channel.clone(), e.metric.clone()))
            .or_insert_with(Pair::new)
            .add_entry(e);
    }
    out
}

fn check_percentiles(what: &str, p: &c24_loadgen::metrics::Percentiles, h: &Histogram<u64>) {
    assert!(!h.is_empty(), "{what}: no samples");
    assert_eq!(p.p50, h.value_at_quantile(0.50), "{what} p50");
    assert_eq!(p.p90, h.value_at_quantile(0.90), "{what} p90");
    assert_eq!(p.p99, h.value_at_quantile(0.99), "{what} p99");
    assert_eq!(p.p999, h.value_at_quantile(0.999), "{what} p99.9");
    assert_eq!(p.max, h.max(), "{what} max");
    assert_eq!(p.min, h.min(), "{what} min");
    // serde_json reads a float back to within one unit in the last place.
    assert!(
        (p.mean - h.mean()).abs() <= 1e-12 * h.mean().abs(),
        "{what} mean {} != {}",
        p.mean,
        h.mean()
    );
}

/// A statistic as a threshold reads it from a histogram.
fn stat(h: &Histogram<u64>, s: &str) -> u64 {
    match s {
        "max" => h.max(),
        "min" => h.min(),
        p => h.value_at_percentile(p[1..].parse().unwrap()),
    }
}

/// A threshold built from the shards' figures: it holds on the merged
/// figure and not on the average of the shards' figures, or the reverse.
struct Constructed {
    key: String,
    check: String,
    merged: u64,
    passes_merged: bool,
}

/// For every channel.metric.stat whose merged figure differs from the naive
/// average of the shards' figures by 2 µs or more, a bound between the two
/// and both directions: one holds on the merged figure only, the other on
/// the average only.
fn constructed(shards: &[Report], merged: &BTreeMap<(String, String), Pair>) -> Vec<Constructed> {
    let per_shard: Vec<_> = shards.iter().map(by_metric).collect();
    let base = scenario("");
    let mut out = Vec::new();
    for ((channel, metric), pair) in merged {
        if metric == "tls_handshake" {
            continue;
        }
        for (h, suffix) in [(&pair.corrected, ""), (&pair.uncorrected, ".uncorrected")] {
            for s in ["p50", "p90", "p99", "max", "min"] {
                let m = stat(h, s);
                let figures: Vec<u64> = per_shard
                    .iter()
                    .filter_map(|b| b.get(&(channel.clone(), metric.clone())))
                    .map(|p| {
                        stat(
                            if suffix.is_empty() {
                                &p.corrected
                            } else {
                                &p.uncorrected
                            },
                            s,
                        )
                    })
                    .collect();
                if figures.len() != shards.len() {
                    continue;
                }
                let naive = figures.iter().sum::<u64>() as f64 / figures.len() as f64;
                if (naive - m as f64).abs() < 2.0 {
                    continue;
                }
                let mid = (naive + m as f64) / 2.0;
                let key = format!("{channel}.{metric}.{s}{suffix}");
                if base.contains(&format!("\"{key}\" =")) {
                    // A TOML table holds a key once.
                    continue;
                }
                // m < naive: "< floor(mid)" holds on m only, "> floor(mid)" on naive only;
                // m > naive: "> ceil(mid)" on m only, "< ceil(mid)" on naive only.
                let (lo_op, hi_op, bound) = if (m as f64) < naive {
                    ("<", ">", mid.floor() as u64)
                } else {
                    (">", "<", mid.ceil() as u64)
                };
                out.push(Constructed {
                    key: key.clone(),
                    check: format!("{lo_op} {bound}us"),
                    merged: m,
                    passes_merged: true,
                });
                out.push(Constructed {
                    key,
                    check: format!("{hi_op} {bound}us"),
                    merged: m,
                    passes_merged: false,
                });
            }
        }
    }
    out
}

fn merge(dir: &Path, scenario_file: &Path, shards: &[PathBuf], name: &str) -> (Output, Report) {
    let json = dir.join(format!("{name}.json"));
    let xml = dir.join(format!("{name}.xml"));
    let o = bin()
        .arg("merge")
        .arg("--scenario")
        .arg(scenario_file)
        .args(shards)
        .arg("--report-json")
        .arg(&json)
        .arg("--junit")
        .arg(&xml)
        .output()
        .unwrap();
    assert!(json.exists(), "{name}: {}", text(&o));
    let r = read_report(&json);
    let junit = std::fs::read_to_string(&xml).unwrap();
    let failures = r.thresholds.iter().filter(|t| !t.passed).count();
    assert!(
        junit.contains(&format!(
            "<testsuites name=\"c24-loadgen\" tests=\"{}\" failures=\"{failures}\">",
            r.thresholds.len()
        )),
        "{junit}"
    );
    (o, r)
}

fn threshold<'a>(r: &'a Report, key: &str, check: &str) -> &'a ThresholdEntry {
    r.thresholds
        .iter()
        .find(|t| t.key == key && t.check == check)
        .unwrap_or_else(|| panic!("no threshold {key} {check} in {:?}", r.thresholds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shard_processes_against_one_core_merge_into_the_whole() {
    let data = tempfile::tempdir().unwrap();
    let core = c24_chatcore::start(c24_chatcore::Config::embedded(data.path()))
        .await
        .unwrap();
    let url = core.url();
    let token = core.admin_token().to_string();
    let admin = Client::new(&url, &token).unwrap();
    // Provisioned once; every shard drives the same tenants.
    let mut tenants: Vec<TenantCreated> = Vec::new();
    for i in 0..2 {
        tenants.push(
            admin
                .create_tenant(&CreateTenant {
                    name: format!("shards-{i}"),
                    dpa_signed: true,
                })
                .await
                .unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenants.json"),
        serde_json::to_string(&tenants).unwrap(),
    )
    .unwrap();
    let file = write_scenario(dir.path(), "shards.toml", scenario(""));

    // All three at once, each its own process.
    let children: Vec<_> = (0..SHARDS)
        .map(|i| {
            let json = dir.path().join(format!("shard{i}.json"));
            let xml = dir.path().join(format!("shard{i}.xml"));
            let child = bin()
                .args(["run", "--live", "quiet", "--threads", "1", "--shard"])
                .arg(format!("{i}/{SHARDS}"))
                .args(["--target", &url, "--admin-token", &token])
                .arg("--report-json")
                .arg(&json)
                .arg("--junit")
                .arg(&xml)
                .arg(&file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, json, xml)
        })
        .collect();
    let mut shard_files = Vec::new();
    let mut shards = Vec::new();
    for (child, json, xml) in children {
        let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let t = text(&o);
        // Alone, a shard has a third of the load: its count thresholds fail.
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("FAIL webchat.ack.count =="), "{t}");
        let r = read_report(&json);
        assert!(!r.passed, "{t}");
        assert!(r.errors.is_empty(), "{:?}\n{t}", r.errors);
        for key in [
            "webchat.ack.count",
            "whatsapp.http.count",
            "email.http.count",
            "email.agent.count",
        ] {
            let th = r.thresholds.iter().find(|x| x.key == key).unwrap();
            assert!(!th.passed, "{key} held on one shard: {th:?}");
        }
        let junit = std::fs::read_to_string(&xml).unwrap();
        assert!(junit.contains("<failure "), "{junit}");
        shard_files.push(json);
        shards.push(r);
    }

    // (a) + (c): the whole, judged by the same file.
    let (o, merged) = merge(dir.path(), &file, &shard_files, "merged");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("RESULT: PASSED"), "{t}");
    for (key, n) in [
        ("webchat.ack.count", PER_CHANNEL * WEBCHAT_SENDS),
        ("whatsapp.http.count", PER_CHANNEL * WHATSAPP_SENDS),
        ("email.http.count", PER_CHANNEL * EMAIL_SENDS),
        ("email.agent.count", PER_CHANNEL),
    ] {
        assert!(t.contains(&format!("PASS {key} == {n}")), "{key}: {t}");
        let th = threshold(&merged, key, &format!("== {n}"));
        assert!(th.passed && th.observed == Some(n as f64), "{th:?}");
    }
    assert!(merged.passed && merged.thresholds.iter().all(|x| x.passed));
    assert_eq!(merged.scenarios.len(), 1);
    let whole = &merged.scenarios[0];
    assert_eq!(whole.started, RATE * SECS, "{whole:?}");
    let summed = |get: fn(&ScenarioReport) -> u64| -> u64 {
        shards.iter().map(|r| get(&r.scenarios[0])).sum()
    };
    assert_eq!(whole.due, summed(|s| s.due));
    assert_eq!(whole.started, summed(|s| s.started));
    assert_eq!(whole.completed, summed(|s| s.completed));
    assert_eq!(whole.failed, summed(|s| s.failed));
    assert_eq!(whole.late, summed(|s| s.late));
    assert_eq!(whole.dropped, summed(|s| s.dropped));
    assert_eq!(whole.interrupted, summed(|s| s.interrupted));
    assert_eq!(whole.completed, RATE * SECS, "{whole:?}");
    let ops = |r: &Report| -> BTreeMap<String, u64> {
        r.operations
            .iter()
            .map(|o| (o.channel.clone(), o.count))
            .collect()
    };
    let mut op_sums: BTreeMap<String, u64> = BTreeMap::new();
    for r in &shards {
        for (c, n) in ops(r) {
            *op_sums.entry(c).or_default() += n;
        }
    }
    assert_eq!(ops(&merged), op_sums);
    assert!(merged.errors.is_empty(), "{:?}", merged.errors);
    assert_eq!(
        merged.generator.scheduler_lag_count,
        shards
            .iter()
            .map(|r| r.generator.scheduler_lag_count)
            .sum::<u64>()
    );
    assert_eq!(merged.generator.threads, SHARDS);

    // (b): every entry is the three shards' histograms added.
    let per_shard: Vec<_> = shards.iter().map(entries).collect();
    let all_keys: BTreeSet<EntryKey> = per_shard.iter().flat_map(|m| m.keys().cloned()).collect();
    let merged_keys: BTreeSet<EntryKey> = merged.latency.iter().map(key).collect();
    assert_eq!(merged_keys, all_keys);
    for e in &merged.latency {
        let k = key(e);
        let mut added = Pair::new();
        let mut count = 0;
        for m in &per_shard {
            if let Some(p) = m.get(&k) {
                added.add(p);
            }
        }
        for r in &shards {
            count += r
                .latency
                .iter()
                .filter(|x| key(x) == k)
                .map(|x| x.count)
                .sum::<u64>();
        }
        let what = format!("{k:?}");
        assert_eq!(e.count, count, "{what} count");
        assert_eq!(e.count, added.corrected.len(), "{what}");
        assert_eq!(e.count, added.uncorrected.len(), "{what}");
        check_percentiles(&format!("{what} corrected"), &e.corrected, &added.corrected);
        check_percentiles(
            &format!("{what} uncorrected"),
            &e.uncorrected,
            &added.uncorrected,
        );
        // The merged report's own histograms are the added ones, bucket for bucket.
        assert!(
            decode(&e.histogram.corrected) == added.corrected,
            "{what} corrected histogram"
        );
        assert!(
            decode(&e.histogram.uncorrected) == added.uncorrected,
            "{what} uncorrected histogram"
        );
    }
    for (channel, metric, n) in [
        ("webchat", "ack", PER_CHANNEL * WEBCHAT_SENDS),
        ("webchat", "agent", PER_CHANNEL),
        ("webchat", "push", PER_CHANNEL),
        ("whatsapp", "http", PER_CHANNEL * WHATSAPP_SENDS),
        ("email", "http", PER_CHANNEL * EMAIL_SENDS),
        ("email", "agent", PER_CHANNEL),
    ] {
        let c: u64 = merged
            .latency
            .iter()
            .filter(|e| e.channel == channel && e.metric == metric)
            .map(|e| e.count)
            .sum();
        assert_eq!(c, n, "{channel}.{metric}");
    }

    // (c): latency thresholds between the merged figure and the shards'
    // average follow the merged distribution.
    let whole_by_metric = {
        let mut m: BTreeMap<(String, String), Pair> = BTreeMap::new();
        for b in shards.iter().map(by_metric) {
            for (k, p) in b {
                m.entry(k).or_insert_with(Pair::new).add(&p);
            }
        }
        m
    };
    let built = constructed(&shards, &whole_by_metric);
    eprintln!(
        "{} latency thresholds between the merged figure and the shards' average",
        built.len()
    );
    assert!(
        built.iter().any(|c| c.key.ends_with(".max")),
        "no maximum differs from the shards' average: {:?}",
        built.iter().map(|c| &c.key).collect::<Vec<_>>()
    );
    for passes in [true, false] {
        let lines: String = built
            .iter()
            .filter(|c| c.passes_merged == passes)
            .map(|c| format!("\"{}\" = \"{}\"\n", c.key, c.check))
            .collect();
        let name = if passes { "holds" } else { "breaks" };
        let f = write_scenario(dir.path(), &format!("{name}.toml"), scenario(&lines));
        let (o, r) = merge(dir.path(), &f, &shard_files, name);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(if passes { 0 } else { 1 }), "{t}");
        for c in built.iter().filter(|c| c.passes_merged == passes) {
            let th = threshold(&r, &c.key, &c.check);
            assert_eq!(th.passed, passes, "{} {}: {th:?}", c.key, c.check);
            assert_eq!(th.observed, Some(c.merged as f64), "{th:?}");
            let verdict = if passes { "PASS" } else { "FAIL" };
            assert!(
                t.contains(&format!("{verdict} {} {}", c.key, c.check)),
                "{} {}: {t}",
                c.key,
                c.check
            );
        }
    }

    // The core stored what the merge counts as acknowledged.
    let mut stored: BTreeMap<String, i64> = BTreeMap::new();
    for tenant in &tenants {
        let list = admin
            .with_token(&tenant.api_key)
            .conversations()
            .await
            .unwrap();
        assert!(list.next.is_none());
        for c in list.items {
            *stored.entry(c.channel).or_default() += c.message_count;
        }
    }
    let acked = |channel: &str, metrics: &[&str]| -> i64 {
        merged
            .latency
            .iter()
            .filter(|e| e.channel == channel && metrics.contains(&e.metric.as_str()))
            .map(|e| e.count as i64)
            .sum()
    };
    let expected: BTreeMap<String, i64> = [
        ("email".to_string(), acked("email", &["http", "agent"])),
        ("webchat".to_string(), acked("webchat", &["ack", "agent"])),
        ("whatsapp".to_string(), acked("whatsapp", &["http"])),
    ]
    .into();
    assert_eq!(stored, expected);
    // The admin API's usage figures say the same.
    let mut stored_messages = 0;
    for tenant in &tenants {
        stored_messages += admin.tenant(&tenant.id).await.unwrap().stored_messages;
    }
    assert_eq!(stored_messages, expected.values().sum::<i64>());
    core.shutdown().await;
}

//! `--report-json`, `--junit` and `--hdr-log` are valid and agree: the JSON
//! parses into the documented schema and its histograms decode to its
//! counts, the JUnit file parses as XML with one case per threshold, and the
//! HDR interval log reads back with the `hdrhistogram` crate into the same
//! counts per channel × metric.

use std::collections::BTreeMap;

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

mod support;

#[test]
fn json_junit_and_hdr_log_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("r.toml");
    std::fs::write(
        &file,
        r#"name = "reports"
duration = "2s"
grace = "5s"
[[stages]]
rate = 5
duration = "2s"
[mix]
webchat = 1
whatsapp = 1
[[script]]
channel = "webchat"
steps = [{ send = "a" }, { send = "b" }]
[[script]]
channel = "whatsapp"
steps = [{ send = "c" }]
[thresholds]
"webchat.ack.p99" = "< 10s"
"whatsapp.http.max" = "< 1us"
"errors.count" = "== 0"
"#,
    )
    .expect("write");
    let json = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let hdr = dir.path().join("run.hlog");
    let out = support::bin()
        .args(["run", "--live", "quiet"])
        .arg(&file)
        .arg("--report-json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg("--hdr-log")
        .arg(&hdr)
        .output()
        .expect("runs");
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // One threshold is impossible on purpose, so the JUnit file has a failure.
    assert_eq!(out.status.code(), Some(1), "{log}");

    // JSON: the documented fields, and histograms that decode to their counts.
    let text = std::fs::read_to_string(&json).expect("json written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["schema"], "c24-loadgen/report/v1");
    assert_eq!(v["passed"], false);
    let report: c24_loadgen::report::Report =
        serde_json::from_str(&text).expect("the Report schema");
    let mut json_counts: BTreeMap<String, u64> = BTreeMap::new();
    assert!(!report.latency.is_empty());
    for e in &report.latency {
        for set in ["corrected", "uncorrected"] {
            for k in ["p50", "p90", "p99", "p999", "max", "mean"] {
                assert!(
                    v["latency"]
                        .as_array()
                        .expect("latency array")
                        .iter()
                        .any(|x| x[set].get(k).is_some()),
                    "{set}.{k} missing"
                );
            }
        }
        for encoded in [&e.histogram.corrected, &e.histogram.uncorrected] {
            let h = c24_loadgen::report::json::decode_histogram(encoded).expect("decodes");
            assert_eq!(
                h.len(),
                e.count,
                "{} {} step {:?}",
                e.channel,
                e.metric,
                e.step
            );
        }
        *json_counts
            .entry(format!("{}.{}", e.channel, e.metric))
            .or_default() += e.count;
    }
    assert_eq!(
        json_counts["webchat.ack"],
        2 * json_counts["webchat.connect"]
    );
    assert_eq!(report.thresholds.len(), 3);

    // JUnit: well-formed XML, one test case per threshold, one failure.
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases = 0;
    let mut failures = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let qname = e.name();
                let name: &str = qname.as_ref();
                if name == "testcase" {
                    cases += 1;
                } else if name == "failure" {
                    failures += 1;
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases, failures), (3, 1), "{xml}");
    assert!(xml.contains("whatsapp.http.max &lt; 1us"), "{xml}");

    // HDR log: every interval histogram decodes; per tag the counts add up to the JSON's.
    let bytes = std::fs::read(&hdr).expect("hdr log written");
    let mut hdr_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut intervals = 0;
    let mut deser = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(ilh) = entry.expect("a log entry") {
            intervals += 1;
            let tag = ilh
                .tag()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let raw = base64_decode(ilh.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = deser
                .deserialize(&mut raw.as_slice())
                .expect("V2 deflate histogram");
            *hdr_counts.entry(tag).or_default() += h.len();
        }
    }
    assert!(intervals >= 2, "{intervals} intervals");
    for (tag, n) in &json_counts {
        assert_eq!(hdr_counts.get(tag), Some(n), "corrected {tag}");
        assert_eq!(
            hdr_counts.get(&format!("{tag}.uncorrected")),
            Some(n),
            "uncorrected {tag}"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

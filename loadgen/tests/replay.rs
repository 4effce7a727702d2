//! `c24-loadgen replay` against a real chat core: what the trace recorded
//! (messages per conversation, channel, direction and size) is what the
//! core stores, read back through the agent API; and the scheduler's
//! intended offsets are the recorded ones divided by `--speed`.

use std::collections::BTreeMap;
use std::time::Duration;

use c24_api::client::Client;
use c24_loadgen::provision::Target;
use c24_loadgen::replay::{self, ReplayRequest};

mod support;

/// Two tenants, three channels; conversation `c4` starts before the window
/// (its first record is outbound) and must be skipped, not fail.
const TRACE: &str = r#"{"at":"2026-12-01T09:00:00.000000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":120}
{"at":"2026-12-01T09:00:00.400000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"outbound","size_bytes":50}
{"at":"2026-12-01T09:00:00.500000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c4","direction":"outbound","size_bytes":9}
{"at":"2026-12-01T09:00:00.600000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"inbound","size_bytes":33}
{"at":"2026-12-01T09:00:00.900000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":2000}

{"at":"2026-12-01T09:00:01.000000Z","tenant_id":"tB","channel":"email","conversation":"c3","direction":"inbound","size_bytes":500}
{"at":"2026-12-01T09:00:01.200000Z","tenant_id":"tB","channel":"email","conversation":"c3","direction":"outbound","size_bytes":70}
{"at":"2026-12-01T09:00:01.300000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"outbound","size_bytes":44}
{"at":"2026-12-01T09:00:01.500000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"inbound","size_bytes":7}
{"at":"2026-12-01T09:00:00.700000Z","tenant_id":"tA","channel":"whatsapp","conversation":"c5","direction":"inbound","size_bytes":64}
"#;

fn request(trace: std::path::PathBuf, speed: f64, target: &Target) -> ReplayRequest {
    ReplayRequest {
        trace,
        speed,
        tenants_map: None,
        credentials: None,
        target: Some(target.http_base.clone()),
        admin_token: target.admin_token.clone(),
        threads: 2,
        thresholds: vec!["errors.count=== 0".into(), "webchat.ack.count=== 2".into()],
        timeout: Duration::from_secs(10),
        grace: Duration::from_secs(10),
        report_json: None,
        junit: None,
    }
}

/// Per channel: the sorted list of conversations, each its (direction, size) sequence.
type Shape = BTreeMap<String, Vec<Vec<(String, usize)>>>;

fn trace_shape(tenant: &str) -> Shape {
    // (channel, conversation) → (at, direction, size) in trace order.
    type Recorded = Vec<(String, String, usize)>;
    let mut convs: BTreeMap<(String, String), Recorded> = BTreeMap::new();
    for line in TRACE.lines().filter(|l| !l.trim().is_empty()) {
        let r: c24_api::admin::traffic::TraceRecord = serde_json::from_str(line).unwrap();
        if r.tenant_id != tenant || r.conversation == "c4" {
            continue;
        }
        convs
            .entry((r.channel.to_string(), r.conversation.clone()))
            .or_default()
            .push((
                r.at.clone(),
                r.direction.as_str().to_string(),
                r.size_bytes as usize,
            ));
    }
    let mut shape = Shape::new();
    for ((channel, _), mut msgs) in convs {
        msgs.sort();
        shape
            .entry(channel)
            .or_default()
            .push(msgs.into_iter().map(|(_, d, s)| (d, s)).collect());
    }
    for v in shape.values_mut() {
        v.sort();
    }
    shape
}

/// The stored shape, and per conversation its sizes and stored times.
type Times = Vec<(Vec<usize>, Vec<chrono::DateTime<chrono::Utc>>)>;

async fn stored_shape(base: &str, api_key: &str) -> (Shape, Times) {
    let agent = Client::new(base, api_key).unwrap();
    let list = agent.conversations().await.unwrap();
    let mut shape = Shape::new();
    let mut times = Vec::new();
    for c in list.items {
        let msgs = agent.messages(&c.id, 100, None).await.unwrap();
        let mut seq: Vec<_> = msgs.items.into_iter().collect();
        seq.sort_by_key(|m| m.seq);
        times.push((
            seq.iter().map(|m| m.content.len()).collect(),
            seq.iter()
                .map(|m| {
                    chrono::DateTime::parse_from_rfc3339(&m.created_at)
                        .unwrap()
                        .to_utc()
                })
                .collect(),
        ));
        shape.entry(c.channel.clone()).or_default().push(
            seq.into_iter()
                .map(|m| (m.direction, m.content.len()))
                .collect(),
        );
    }
    for v in shape.values_mut() {
        v.sort();
    }
    (shape, times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_replays_with_its_shape_against_a_real_core() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.jsonl");
    std::fs::write(&file, TRACE).unwrap();
    let core = Target::embedded().await.unwrap();
    let speed = 4.0;
    let done = replay::run(&request(file, speed, &core))
        .await
        .expect("replays");
    let r = &done.finished.report;
    assert_eq!(
        done.finished.exit,
        c24_loadgen::Exit::Passed,
        "{}",
        done.finished.summary
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(done.schedule.skipped_outbound, 1);
    let s = &r.scenarios[0];
    assert_eq!((s.started, s.completed, s.failed), (4, 4, 0), "{s:?}");

    // Each trace tenant got its own target tenant; what it stored is what was recorded.
    assert_eq!(done.tenants.len(), 2);
    for (trace_tenant, created) in &done.tenants {
        let (stored, times) = stored_shape(&core.http_base, &created.api_key).await;
        assert_eq!(stored, trace_shape(trace_tenant), "tenant {trace_tenant}");
        // Never sent before it was due: every stored message's time is at
        // least the replay's start plus its scheduled offset (the core's
        // clock, to the millisecond).
        let start = chrono::DateTime::parse_from_rfc3339(&r.started_at)
            .unwrap()
            .to_utc();
        for c in done
            .schedule
            .conversations
            .iter()
            .filter(|c| &c.tenant_id == trace_tenant)
        {
            let sizes: Vec<usize> = c.messages.iter().map(|m| m.size as usize).collect();
            let stored_times = times
                .iter()
                .find(|(sz, _)| *sz == sizes)
                .map(|(_, t)| t)
                .expect("the conversation is stored");
            for (m, at) in c.messages.iter().zip(stored_times) {
                let due = start + chrono::Duration::from_std(m.offset).unwrap();
                assert!(
                    *at >= due - chrono::Duration::milliseconds(2),
                    "line {}: stored {at}, due {due}",
                    m.line
                );
            }
        }
    }
    // Latency per channel: sends at step 0, agent replies at step 1.
    let count = |ch: &str, m: &str| -> u64 {
        r.latency
            .iter()
            .filter(|e| e.channel == ch && e.metric == m)
            .map(|e| e.count)
            .sum()
    };
    assert_eq!(count("webchat", "ack"), 2);
    assert_eq!(count("webchat", "agent"), 1);
    assert_eq!(count("whatsapp", "http"), 3);
    assert_eq!(count("whatsapp", "agent"), 1);
    assert_eq!(count("email", "http"), 1);
    assert_eq!(count("email", "agent"), 1);
    assert!(r.latency.iter().all(|e| e.step.is_none()
        || e.step_kind.as_deref()
            == Some(if e.metric == "agent" {
                "agent_reply"
            } else {
                "send"
            })));
    core.shutdown().await;
}

#[test]
fn offsets_are_the_recorded_ones_divided_by_speed() {
    let lines = replay::trace::parse_str(std::path::Path::new("t.jsonl"), TRACE).unwrap();
    for speed in [1.0, 2.0, 0.5] {
        let sched = replay::schedule::build(&lines, speed);
        let got: Vec<(String, Vec<u128>)> = sched
            .conversations
            .iter()
            .map(|c| {
                (
                    c.conversation.clone(),
                    c.messages.iter().map(|m| m.offset.as_micros()).collect(),
                )
            })
            .collect();
        let ms = |x: f64| (x * 1000.0 / speed).round() as u128;
        assert_eq!(
            got,
            vec![
                ("c1".to_string(), vec![ms(0.0), ms(400.0), ms(900.0)]),
                ("c2".to_string(), vec![ms(600.0), ms(1300.0), ms(1500.0)]),
                ("c5".to_string(), vec![ms(700.0)]),
                ("c3".to_string(), vec![ms(1000.0), ms(1200.0)]),
            ],
            "speed {speed}"
        );
        assert_eq!(sched.duration.as_micros(), ms(1500.0));
        assert_eq!(sched.skipped_outbound, 1);
        // The conversation's script: each later message due at its offset
        // from the first (not after the previous one's end).
        let c2 = &sched.conversations[1];
        let script = replay::exec::script_for(c2, Duration::from_secs(1));
        let at: Vec<u128> = script
            .steps
            .iter()
            .filter_map(|s| match s {
                c24_loadgen::scenario::Step::At(d) => Some(d.as_micros()),
                _ => None,
            })
            .collect();
        assert_eq!(at, vec![ms(700.0), ms(900.0)]);
        let kinds: Vec<&str> = script.steps.iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, vec!["send", "at", "agent_reply", "at", "send"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_and_bad_flags_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        TRACE.replace("\"size_bytes\":33", "\"size_bytes\":\"33\""),
    )
    .unwrap();
    let out = support::bin().args(["replay"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: not a trace record", file.display())),
        "{err}"
    );

    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, TRACE).unwrap();
    let out = support::bin()
        .args(["replay", "--tenants-map", "tA=nope"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--credentials"));
}

//! Record → export → replay → export again, across two real chat cores:
//! the traffic trace a core records (`GET /admin/v1/traffic/trace`) is
//! what `c24-loadgen replay` needs, and replaying it reproduces the same
//! shape — per tenant, the same conversations on the same channels with the
//! same directions and sizes — as the second core's own trace shows.

use std::collections::BTreeMap;
use std::time::Duration;

use c24_api::admin::traffic::TraceRecord;
use c24_loadgen::provision::Target;
use c24_loadgen::replay::{self, ReplayRequest};

/// The seed traffic, played into the first core.
const SEED: &str = r#"{"at":"2026-12-01T09:00:00.000000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":120}
{"at":"2026-12-01T09:00:00.300000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"outbound","size_bytes":50}
{"at":"2026-12-01T09:00:00.400000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"inbound","size_bytes":33}
{"at":"2026-12-01T09:00:00.600000Z","tenant_id":"tA","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":900}
{"at":"2026-12-01T09:00:00.700000Z","tenant_id":"tB","channel":"email","conversation":"c3","direction":"inbound","size_bytes":500}
{"at":"2026-12-01T09:00:00.900000Z","tenant_id":"tB","channel":"email","conversation":"c3","direction":"outbound","size_bytes":70}
{"at":"2026-12-01T09:00:01.000000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"outbound","size_bytes":44}
{"at":"2026-12-01T09:00:01.100000Z","tenant_id":"tB","channel":"whatsapp","conversation":"c2","direction":"inbound","size_bytes":7}
"#;

fn request(trace: std::path::PathBuf, target: &Target) -> ReplayRequest {
    ReplayRequest {
        trace,
        speed: 4.0,
        tenants_map: None,
        credentials: None,
        target: Some(target.http_base.clone()),
        admin_token: target.admin_token.clone(),
        threads: 2,
        thresholds: vec!["errors.count=== 0".into()],
        timeout: Duration::from_secs(10),
        grace: Duration::from_secs(10),
        report_json: None,
        junit: None,
    }
}

/// One conversation: its channel and its messages' (direction, size).
type Conv = (String, Vec<(String, u64)>);
/// Per tenant: its conversations, sorted.
type Shape = BTreeMap<String, Vec<Conv>>;

fn shape(records: &[TraceRecord]) -> Shape {
    let mut convs: BTreeMap<(String, String), Conv> = BTreeMap::new();
    for r in records {
        convs
            .entry((r.tenant_id.clone(), r.conversation.clone()))
            .or_insert_with(|| (r.channel.as_str().to_string(), Vec::new()))
            .1
            .push((r.direction.as_str().to_string(), r.size_bytes));
    }
    let mut out = Shape::new();
    for ((tenant, _), conv) in convs {
        out.entry(tenant).or_default().push(conv);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The core's whole trace (the test's wall-clock window, with margin).
async fn export(core: &Target) -> Vec<TraceRecord> {
    let admin = core.admin().expect("embedded cores have an admin token");
    let now = chrono::Utc::now();
    let from =
        (now - chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to =
        (now + chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    admin.traffic_trace(&from, &to).await.expect("exports")
}

/// Replays `trace` into `core`; returns trace tenant → target tenant id.
async fn replay_into(
    trace: &str,
    core: &Target,
    dir: &std::path::Path,
    name: &str,
) -> BTreeMap<String, String> {
    let file = dir.join(name);
    std::fs::write(&file, trace).unwrap();
    let done = replay::run(&request(file, core)).await.expect("replays");
    assert_eq!(
        done.finished.exit,
        c24_loadgen::Exit::Passed,
        "{}",
        done.finished.summary
    );
    assert!(
        done.finished.report.errors.is_empty(),
        "{:?}",
        done.finished.report.errors
    );
    done.tenants.into_iter().map(|(t, c)| (t, c.id)).collect()
}

fn jsonl(records: &[TraceRecord]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_trace_replays_into_the_same_shape_on_another_core() {
    let dir = tempfile::tempdir().unwrap();
    let first = Target::embedded().await.unwrap();
    let second = Target::embedded().await.unwrap();

    // 1. Seed traffic into the first core; its trace shows the seed's shape
    //    under the tenants replay provisioned there.
    let seed: Vec<TraceRecord> = SEED
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first_tenants = replay_into(SEED, &first, dir.path(), "seed.jsonl").await;
    let recorded = export(&first).await;
    assert_eq!(recorded.len(), seed.len(), "one record per stored message");
    let renamed = |s: Shape, map: &BTreeMap<String, String>| -> Shape {
        s.into_iter()
            .map(|(t, v)| (map.get(&t).cloned().unwrap_or(t), v))
            .collect()
    };
    assert_eq!(shape(&recorded), renamed(shape(&seed), &first_tenants));

    // 2. Replay the exported trace into the second core: its own trace has
    //    the same shape again, tenant for tenant.
    let second_tenants =
        replay_into(&jsonl(&recorded), &second, dir.path(), "recorded.jsonl").await;
    let replayed = export(&second).await;
    assert_eq!(replayed.len(), recorded.len());
    assert_eq!(shape(&replayed), renamed(shape(&recorded), &second_tenants));

    // Pseudonyms: drawn per export, so the two cores' exports share none.
    let ids = |rs: &[TraceRecord]| -> std::collections::BTreeSet<String> {
        rs.iter().map(|r| r.conversation.clone()).collect()
    };
    assert!(ids(&recorded).is_disjoint(&ids(&replayed)));
    first.shutdown().await;
    second.shutdown().await;
}

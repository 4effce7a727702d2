//! Two (or three) real `c24-core` processes on one PostgreSQL database:
//! what one node keeps in memory follows what another node commits.
//!
//! - A restriction completed on node A is enforced at once by node B's
//!   ingress (`processing_restricted`, nothing stored).
//! - A request filed, and an incident recorded, on A count in B's overview;
//!   completed or notified on A, they leave B's counts.
//! - The sub-processor registry: an entry announced on A is listed on B; a
//!   tenant's objection recorded on A survives a later change made on B;
//!   nodes starting at once on an empty database seed it once.
//! - A TOTP code accepted by A is refused by B (a code is good once).
//!
//! Skipped with a message without a server (see `support/pg.rs`).

#[path = "support/node.rs"]
mod node;
#[path = "support/pg.rs"]
mod pg;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c24_api::admin::dsr::{CompleteDsr, CreateDsr, DsrSubject, DsrType};
use c24_api::admin::incidents::{CreateIncident, NotifyTarget, RecordNotification};
use c24_api::admin::subprocessors::{Announcement, ChangeRequest, ObjectionRequest};
use c24_api::admin::tenants::CreateTenant;
use c24_api::client::webchat::WebchatClient;
use c24_api::client::{Client, ClientError};
use node::{Node, eventually, kek_file, listening, spawn_node};
use pg::TestDb;

const TOKEN: &str = "pg-coherence-admin";
/// The bootstrap admin's TOTP secret on every node.
const TOTP: &str = "JBSWY3DPEHPK3PXP";
const WAIT: Duration = Duration::from_secs(10);
const DAY_S: i64 = 86_400;

/// What these tests ask of a node besides the shared support.
trait NodeExt {
    fn admin(&self) -> Client;
}

impl NodeExt for Node {
    fn admin(&self) -> Client {
        Client::new(&self.url, TOKEN).unwrap()
    }
}

/// A node with the dev clock and the bootstrap admin enrolled for TOTP.
fn command(db: &TestDb, kek: &Path, data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_c24-core"));
    c.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--admin-totp-secret",
        TOTP,
        "--dev-clock",
        "--database",
    ])
    .arg(&db.url)
    .arg("--kek-file")
    .arg(kek)
    .arg("--data-dir")
    .arg(data_dir);
    c
}

fn start(db: &TestDb, kek: &Path, data_dir: &Path) -> Node {
    spawn_node(command(db, kek, data_dir))
}

async fn tenant(node: &Node, name: &str) -> c24_api::admin::tenants::TenantCreated {
    node.admin()
        .create_tenant(&CreateTenant {
            name: name.into(),
            dpa_signed: true,
        })
        .await
        .unwrap()
}

/// Two TOTP codes of `secret` (this step and the next), in the order they
/// may be used: each is good once across the nodes.
fn totp_codes(secret: &str) -> [String; 2] {
    let totp = c24_chatcore::access::totp(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    [totp.generate(now), totp.generate(now + 30)]
}

fn code_of(e: &ClientError) -> Option<&str> {
    e.code()
}

/// Messages stored in the conversation, read through `node`.
async fn stored(node: &Node, api_key: &str, conversation_id: &str) -> usize {
    Client::new(&node.url, api_key)
        .unwrap()
        .messages(conversation_id, 1000, None)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restriction_completed_on_a_is_enforced_by_b_at_once() {
    let Some(db) = TestDb::create("restriction_completed_on_a").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let t = tenant(&a, "Restricted").await;
    let key = t.channels.webchat.widget_key.clone();
    let mut v = eventually("B admits A's new tenant", || async {
        WebchatClient::connect(&b.ws(), &key, "visitor-v")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let (ack, _) = v.send_message("m0", None, "before", WAIT).await.unwrap();
    let conv = ack.conversation_id.clone();

    // On A: the person asks for restriction; staff completes it.
    let admin_a = a.admin();
    let r = admin_a
        .file_dsr(
            &t.id,
            &CreateDsr {
                kind: DsrType::Restriction,
                subject: DsrSubject {
                    visitor_id: Some("visitor-v".into()),
                    ..Default::default()
                },
                received_at: None,
            },
        )
        .await
        .unwrap();
    let [code, _] = totp_codes(TOTP);
    admin_a
        .complete_dsr(&t.id, &r.id, &CompleteDsr::default(), &code)
        .await
        .unwrap();

    // B refuses the person's next messages on the open socket, once A's
    // event arrived (each try before it is stored, and counted).
    let deadline = Instant::now() + WAIT;
    for n in 1.. {
        match v
            .send_message(&format!("m{n}"), Some(&conv), "after", WAIT)
            .await
        {
            Err(e) if code_of(&e) == Some("processing_restricted") => break,
            Err(e) => panic!("unexpected {e}"),
            Ok(_) if Instant::now() > deadline => panic!("B still accepts the restricted visitor"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    let held = stored(&b, &t.api_key, &conv).await;
    // Refused again, and nothing of it stored.
    let err = v
        .send_message("m-final", Some(&conv), "again", WAIT)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(code_of),
        Some("processing_restricted")
    );
    assert_eq!(stored(&b, &t.api_key, &conv).await, held);
    assert_eq!(stored(&a, &t.api_key, &conv).await, held);
    // A new socket is refused at the handshake.
    v.close().await;
    let err = WebchatClient::connect(&b.ws(), &key, "visitor-v")
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(code_of),
        Some("processing_restricted")
    );
    // Another visitor of the tenant is served on.
    let mut other = WebchatClient::connect(&b.ws(), &key, "visitor-w")
        .await
        .unwrap();
    other.send_message("w0", None, "hi", WAIT).await.unwrap();
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_incidents_of_a_count_in_b_overview() {
    let Some(db) = TestDb::create("requests_and_incidents_of_a").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    // B's clock is 40 days on: a request A files now is overdue there.
    b.admin().advance_clock(40 * DAY_S).await.unwrap();
    let t = tenant(&a, "Counted").await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    eventually("B knows A's tenant", || async {
        admin_b.tenant(&t.id).await.map_err(|e| e.to_string())
    })
    .await;
    let before = admin_b.overview().await.unwrap();
    assert_eq!((before.dsr_overdue, before.incidents_open), (0, Some(0)));

    let r = admin_a
        .file_dsr(
            &t.id,
            &CreateDsr {
                kind: DsrType::Access,
                subject: DsrSubject {
                    email: Some("person@example.com".into()),
                    ..Default::default()
                },
                received_at: None,
            },
        )
        .await
        .unwrap();
    let incident = admin_a
        .record_incident(&CreateIncident {
            aware_at: None,
            nature: "laptop lost".into(),
            categories: vec!["contact details".into()],
            records: 10,
            subjects: 10,
            affected_tenants: vec![],
            consequences: "none known".into(),
            measures: "remote wipe".into(),
            platform_is_controller: true,
            high_risk: false,
        })
        .await
        .unwrap();
    eventually("B counts A's request and incident", || async {
        let o = admin_b.overview().await.map_err(|e| e.to_string())?;
        match (o.dsr_overdue, o.incidents_open) {
            (1, Some(1)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Completed and notified on A: B's counts drop.
    let [code, _] = totp_codes(TOTP);
    admin_a
        .complete_dsr(&t.id, &r.id, &CompleteDsr::default(), &code)
        .await
        .unwrap();
    admin_a
        .record_notification(
            &incident.id,
            &RecordNotification {
                to: NotifyTarget::Authority,
                tenant_id: None,
            },
        )
        .await
        .unwrap();
    eventually(
        "B forgets A's completed request and notified incident",
        || async {
            let o = admin_b.overview().await.map_err(|e| e.to_string())?;
            match (o.dsr_overdue, o.incidents_open) {
                (0, Some(0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_recorded_on_both_nodes_at_once_are_all_kept() {
    let Some(db) = TestDb::create("notifications_on_both_nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let (admin_a, admin_b) = (a.admin(), b.admin());
    const TENANTS: usize = 10;
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        tenants.push(tenant(&a, &format!("Controller {i}")).await.id);
    }
    let incident = admin_a
        .record_incident(&CreateIncident {
            aware_at: None,
            nature: "misdirected export".into(),
            categories: vec!["chat messages".into()],
            records: 100,
            subjects: 10,
            affected_tenants: tenants.clone(),
            consequences: "disclosure to one recipient".into(),
            measures: "recipient deleted it".into(),
            platform_is_controller: false,
            high_risk: false,
        })
        .await
        .unwrap();
    // Each controller's notification at once, half through each node: each
    // node's change starts from the record the other is changing too.
    let notified = tenants.iter().enumerate().map(|(i, t)| {
        let node = if i % 2 == 0 { &admin_a } else { &admin_b };
        let id = incident.id.clone();
        async move {
            node.record_notification(
                &id,
                &RecordNotification {
                    to: NotifyTarget::Controller,
                    tenant_id: Some(t.clone()),
                },
            )
            .await
        }
    });
    for r in futures_util::future::join_all(notified).await {
        r.unwrap();
    }
    let stored: String = db
        .sql()
        .await
        .query_one(
            "SELECT doc FROM security_incidents WHERE id = $1",
            &[&incident.id],
        )
        .await
        .unwrap()
        .get(0);
    let doc: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let mut by: Vec<String> = doc["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["tenant_id"].as_str().unwrap().to_string())
        .collect();
    by.sort();
    let mut want = tenants.clone();
    want.sort();
    assert_eq!(by, want, "every controller's notification kept");
    // Every clock notified: the incident is closed on both nodes.
    eventually("both overviews count no open incident", || async {
        let (oa, ob) = (
            admin_a.overview().await.map_err(|e| e.to_string())?,
            admin_b.overview().await.map_err(|e| e.to_string())?,
        );
        match (oa.incidents_open, ob.incidents_open) {
            (Some(0), Some(0)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    drop((a, b));
    db.drop_db().await;
}

fn announcement(name: &str) -> Announcement {
    let effective = (chrono::Utc::now() + chrono::Duration::days(40))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Announcement {
        name: name.into(),
        category: "Communication Channels".into(),
        purpose: "Outbound email delivery".into(),
        location: "Netherlands".into(),
        safeguard: "DPA".into(),
        data_categories: vec!["email addresses".into()],
        effective_at: effective,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_of_a_reach_b_and_b_keeps_a_objection() {
    let Some(db) = TestDb::create("registry_changes_of_a").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let (admin_a, admin_b) = (a.admin(), b.admin());
    let t = tenant(&a, "Objecting").await;
    let pending_b = admin_b.overview().await.unwrap().registry_pending;
    let [code_a, code_b] = totp_codes(TOTP);

    // Announced on A: listed on B, and counted in B's overview.
    let sp = admin_a
        .announce_subprocessor(&announcement("Example Mail Relay"), &code_a)
        .await
        .unwrap();
    let listed = admin_b.subprocessors().await.unwrap();
    assert!(
        listed.items.iter().any(|e| e.id == sp.id),
        "B lists A's announcement"
    );
    eventually("B's overview counts A's announcement", || async {
        let o = admin_b.overview().await.map_err(|e| e.to_string())?;
        if o.registry_pending == pending_b + 1 {
            Ok(())
        } else {
            Err(format!("{} pending", o.registry_pending))
        }
    })
    .await;

    // The tenant objects on A; then B announces a change to the entry.
    let objected = admin_a
        .object(
            &sp.id,
            &ObjectionRequest {
                tenant_id: t.id.clone(),
                reason: Some("not in our DPA".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(objected.objection_count, 1);
    let changed = admin_b
        .announce_change(
            &sp.id,
            &ChangeRequest {
                purpose: Some("Outbound and inbound email delivery".into()),
                effective_at: (chrono::Utc::now() + chrono::Duration::days(45))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ..Default::default()
            },
            &code_b,
        )
        .await
        .unwrap();
    assert_eq!(changed.objection_count, 1, "B's change kept A's objection");
    assert!(changed.pending_change.is_some());
    for node in [&admin_a, &admin_b] {
        let e = node
            .subprocessors()
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.id == sp.id)
            .unwrap();
        assert_eq!(e.objection_count, 1);
        assert_eq!(
            e.objections.first().map(|o| o.tenant_id.as_str()),
            Some(t.id.as_str())
        );
        assert!(e.pending_change.is_some());
    }
    let rows: i64 = db
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM subprocessors WHERE doc::jsonb -> 'objections' @> $1::text::jsonb",
            &[&format!("[{{\"tenant_id\": \"{}\"}}]", t.id)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the stored entry holds the objection");
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objections_on_both_nodes_at_once_are_all_kept() {
    let Some(db) = TestDb::create("objections_on_both_nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let (admin_a, admin_b) = (a.admin(), b.admin());
    const TENANTS: usize = 12;
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        tenants.push(tenant(&a, &format!("Objector {i}")).await.id);
    }
    for id in &tenants {
        eventually("B knows A's tenants", || async {
            admin_b.tenant(id).await.map_err(|e| e.to_string())
        })
        .await;
    }
    let sp = admin_a.subprocessors().await.unwrap().items[0].id.clone();
    // Every tenant objects at once, half of them through each node: each
    // node's change starts from an entry the other is changing too.
    let objections = tenants.iter().enumerate().map(|(i, t)| {
        let node = if i % 2 == 0 { &admin_a } else { &admin_b };
        let sp = sp.clone();
        async move {
            node.object(
                &sp,
                &ObjectionRequest {
                    tenant_id: t.clone(),
                    reason: None,
                },
            )
            .await
        }
    });
    for r in futures_util::future::join_all(objections).await {
        r.unwrap();
    }
    for node in [&admin_a, &admin_b] {
        let e = node
            .subprocessors()
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.id == sp)
            .unwrap();
        let mut by: Vec<String> = e.objections.into_iter().map(|o| o.tenant_id).collect();
        by.sort();
        let mut want = tenants.clone();
        want.sort();
        assert_eq!(by, want, "every objection kept");
    }
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_seed_the_registry_once() {
    let Some(db) = TestDb::create("nodes_starting_at_once_seed").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    // The schema first, then the registry's table locked against writes
    // (reads go on): every node finds it empty and queues its seed.
    let mut sql = db.sql().await;
    c24_chatcore::store::postgres::migrate::run(&mut sql, true)
        .await
        .unwrap();
    let lock = sql.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE subprocessors IN EXCLUSIVE MODE")
        .await
        .unwrap();
    const NODES: i64 = 3;
    let children: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            command(&db, &kek, &dir.path().join(n))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let watch = db.sql().await;
    eventually("every node waits to seed", || async {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_locks
                 WHERE relation = 'subprocessors'::regclass AND NOT granted",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if waiting == NODES {
            Ok(())
        } else {
            Err(format!("{waiting} waiting"))
        }
    })
    .await;
    // All seeds go ahead together.
    lock.commit().await.unwrap();
    let nodes: Vec<Node> = children.into_iter().map(listening).collect();
    let seeded = c24_chatcore::registry::seed(0).len();
    let rows: i64 = watch
        .query_one("SELECT count(*) FROM subprocessors", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, seeded as i64, "the policy's rows, once");
    for n in &nodes {
        assert_eq!(n.admin().subprocessors().await.unwrap().items.len(), seeded);
    }
    drop(nodes);
    db.drop_db().await;
}

/// A staff token enrolled for TOTP, in a tokens file both nodes read.
const STAFF_TOKEN: &str = "pg-coherence-staff";
const STAFF_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSNBQXE3LF";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_code_accepted_on_a_is_refused_on_b() {
    let Some(db) = TestDb::create("totp_code_accepted_on_a").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let tokens = dir.path().join("tokens.toml");
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STAFF_TOKEN.as_bytes());
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"staff\"\nrole = \"admin\"\nsha256 = \"{}\"\ntotp_secret = \"{STAFF_TOTP}\"\n",
            hex::encode(hash.as_ref())
        ),
    )
    .unwrap();
    let node = |name: &str| {
        let mut c = command(&db, &kek, &dir.path().join(name));
        c.arg("--tokens-file").arg(&tokens);
        spawn_node(c)
    };
    let (a, b) = (node("a"), node("b"));
    let (staff_a, staff_b) = (
        Client::new(&a.url, STAFF_TOKEN).unwrap(),
        Client::new(&b.url, STAFF_TOKEN).unwrap(),
    );
    let [code, next] = totp_codes(STAFF_TOTP);
    staff_a
        .announce_subprocessor(&announcement("Relay One"), &code)
        .await
        .unwrap();
    // The same code on B: refused as on A (401 `mfa_invalid`), nothing done.
    let err = staff_b
        .announce_subprocessor(&announcement("Relay Two"), &code)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 401, code, .. } if code == "mfa_invalid"),
        "{err}"
    );
    assert_eq!(
        staff_a
            .announce_subprocessor(&announcement("Relay Three"), &code)
            .await
            .err()
            .and_then(|e| e.code().map(str::to_string))
            .as_deref(),
        Some("mfa_invalid")
    );
    // A fresh code is good on B, once.
    staff_b
        .announce_subprocessor(&announcement("Relay Four"), &next)
        .await
        .unwrap();
    let names: Vec<String> = staff_a
        .subprocessors()
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.starts_with("Relay"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    drop((a, b));
    db.drop_db().await;
}

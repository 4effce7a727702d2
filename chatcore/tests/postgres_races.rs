//! Two real `c24-core` nodes on one PostgreSQL database, each acting on
//! its own copy of a record at the same moment (the lost-update races of a
//! read-modify-write guarded only in-process):
//! - a tenant suspended on A and on B at once: both 200 (the same change);
//! - a suspended tenant terminated on A while B resumes it: exactly one
//!   wins (the other answers 409 `invalid_state`), and the tenant ends
//!   terminated with every row stamped for purge, or active with none —
//!   never active with stamped rows;
//! - consent purposes withdrawn on A and on B at once: both withdrawals stand;
//! - an erasure completed on A while B extends the request: completed, the
//!   person's contact and the request's blind index gone, never reopened
//!   (B's extension comes first, or is refused with 409);
//! - one access request completed on both nodes at once: one 200, one 409,
//!   never a 500, and one export;
//! - two notifications of one incident at once: both recorded.
//!
//! Skipped with a message without a server (see `support/pg.rs`).

#[path = "support/node.rs"]
mod node;
#[path = "support/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use c24_api::admin::consents::{RecordConsent, WithdrawConsent};
use c24_api::admin::dsr::{CompleteDsr, CreateDsr, DsrStatus, DsrSubject, DsrType, ExtendDsr};
use c24_api::admin::incidents::{CreateIncident, NotifyTarget, RecordNotification};
use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::webchat::WebchatClient;
use c24_api::client::{Client, ClientError};
use node::{Node, eventually, kek_file, spawn_node};
use pg::TestDb;

const TOKEN: &str = "pg-races-admin";
/// Every staff token's second factor (a code is accepted once per token
/// and node, so each round uses its own token).
const TOTP: &str = "JBSWY3DPEHPK3PXP";
const ROUNDS: usize = 20;
const WAIT: Duration = Duration::from_secs(10);

/// What these tests ask of a node besides the shared support.
trait NodeExt {
    fn admin(&self) -> Client;
    /// Round `i`'s admin token (with a second factor).
    fn racer(&self, i: usize) -> Client;
}

impl NodeExt for Node {
    fn admin(&self) -> Client {
        Client::new(&self.url, TOKEN).unwrap()
    }

    fn racer(&self, i: usize) -> Client {
        Client::new(&self.url, &racer_token(i)).unwrap()
    }
}

fn racer_token(i: usize) -> String {
    format!("pg-races-token-{i}")
}

/// `2 × ROUNDS` admin tokens, each with the TOTP secret (a code is good
/// once per token across all nodes: two racers in one round need two).
fn tokens_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..2 * ROUNDS {
        text.push_str(&format!(
            "[[token]]\nname = \"racer-{i}\"\nrole = \"admin\"\nsha256 = \"{}\"\ntotp_secret = \"{TOTP}\"\n\n",
            hex::encode(c24_chatcore::tenants::sha256(&racer_token(i)))
        ));
    }
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(db: &TestDb, kek: &Path, tokens: &Path, data_dir: &Path) -> Node {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c24-core"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--database",
    ])
    .arg(&db.url)
    .arg("--kek-file")
    .arg(kek)
    .arg("--tokens-file")
    .arg(tokens)
    .arg("--data-dir")
    .arg(data_dir);
    spawn_node(cmd)
}

/// Two nodes on a fresh database, and the directory they live in.
async fn two_nodes(test: &str) -> Option<(TestDb, tempfile::TempDir, Node, Node)> {
    let db = TestDb::create(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let tokens = tokens_file(dir.path());
    let a = start(&db, &kek, &tokens, &dir.path().join("a"));
    let b = start(&db, &kek, &tokens, &dir.path().join("b"));
    Some((db, dir, a, b))
}

/// The current TOTP code.
fn totp_code() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    c24_chatcore::access::totp(TOTP).unwrap().generate(now)
}

async fn tenant(node: &Node, name: &str) -> TenantCreated {
    node.admin()
        .create_tenant(&CreateTenant {
            name: name.into(),
            dpa_signed: true,
        })
        .await
        .unwrap()
}

/// Waits until `node` knows the tenant in status `status`.
async fn sees_status(node: &Node, tenant_id: &str, status: &str) {
    let admin = node.admin();
    eventually(&format!("{} sees {status}", node.url), || async {
        match admin.tenant(tenant_id).await {
            Ok(t) if t.status == status => Ok(()),
            Ok(t) => Err(format!("status {}", t.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// One web-chat message of visitor `visitor_id` through `node`.
async fn visit(node: &Node, widget_key: &str, visitor_id: &str) {
    let mut v = WebchatClient::connect(&node.ws(), widget_key, visitor_id)
        .await
        .unwrap();
    v.send_message("m1", None, "hello", WAIT).await.unwrap();
    v.close().await;
}

/// The 409 and its code, or a panic naming what came instead.
fn conflict_code(what: &str, e: &ClientError) -> String {
    match e {
        ClientError::Api {
            status: 409, code, ..
        } => code.clone(),
        other => panic!("{what}: expected a 409, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_on_a_and_resume_on_b_leave_the_tenant_consistent() {
    let Some((db, _dir, a, b)) =
        two_nodes("terminate_on_a_and_resume_on_b_leave_the_tenant_consistent").await
    else {
        return;
    };
    let sql = db.sql().await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    let (mut terminated, mut resumed, mut serialized) = (0, 0, 0);
    for round in 0..ROUNDS {
        let t = tenant(&a, &format!("Race {round}")).await;
        visit(&a, &t.channels.webchat.widget_key, &format!("v-{round}")).await;
        // Suspended on both at once: the same change, so both answer 200
        // (the loser finds the tenant as asked).
        sees_status(&b, &t.id, "active").await;
        let (sa, sb) = tokio::join!(admin_a.suspend(&t.id), admin_b.suspend(&t.id));
        assert_eq!(sa.unwrap().status, "suspended", "round {round}");
        assert_eq!(sb.unwrap().status, "suspended", "round {round}");
        // Both nodes hold the tenant as suspended: each call passes its
        // node's own check, and only the store can tell them apart.
        sees_status(&b, &t.id, "suspended").await;
        let racer = a.racer(round);
        let code = totp_code();
        let (term, resume) = tokio::join!(racer.terminate(&t.id, &code), admin_b.resume(&t.id));
        let status = match (&term, &resume) {
            (Ok(_), Err(e)) => {
                assert_eq!(conflict_code("resume", e), "invalid_state");
                terminated += 1;
                "terminated"
            }
            (Err(e), Ok(_)) => {
                assert_eq!(conflict_code("terminate", e), "invalid_state");
                resumed += 1;
                "active"
            }
            // Not at once after all: the resume committed and reached A
            // before A read the tenant, so A terminated an active tenant —
            // both applied, one after the other (the reverse order would
            // refuse the resume of a terminated tenant).
            (Ok(t), Ok(r)) if t.status == "terminated" && r.status == "active" => {
                serialized += 1;
                "terminated"
            }
            _ => panic!("round {round}: exactly one wins: {term:?} / {resume:?}"),
        };
        let row = sql
            .query_one(
                "SELECT status, terminated_at, purge_after FROM tenants WHERE id = $1",
                &[&t.id],
            )
            .await
            .unwrap();
        let (stored, terminated_at, purge_after): (String, Option<i64>, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(stored, status, "round {round}");
        let mut stamped = 0;
        let mut rows = 0;
        for table in ["conversations", "messages", "contacts"] {
            let r = sql
                .query_one(
                    &format!(
                        "SELECT count(*), count(purge_after) FROM {table} WHERE tenant_id = $1"
                    ),
                    &[&t.id],
                )
                .await
                .unwrap();
            let (n, with_purge): (i64, i64) = (r.get(0), r.get(1));
            assert!(n > 0, "round {round}: no {table} row to check");
            rows += n;
            stamped += with_purge;
        }
        if status == "terminated" {
            assert!(terminated_at.is_some() && purge_after.is_some());
            assert_eq!(stamped, rows, "round {round}: every row stamped for purge");
        } else {
            assert_eq!(
                (terminated_at, purge_after, stamped),
                (None, None, 0),
                "round {round}: an active tenant with rows stamped for purge"
            );
        }
        // The loser caught up with the winner.
        sees_status(&a, &t.id, status).await;
        sees_status(&b, &t.id, status).await;
    }
    eprintln!(
        "{ROUNDS} rounds: terminate won {terminated}, resume won {resumed}, one after the other {serialized}"
    );
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawals_on_two_nodes_at_once_both_stand() {
    let Some((db, _dir, a, b)) = two_nodes("withdrawals_on_two_nodes_at_once_both_stand").await
    else {
        return;
    };
    let t = tenant(&a, "Consents").await;
    sees_status(&b, &t.id, "active").await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    for round in 0..ROUNDS {
        let c = admin_a
            .record_consent(
                &t.id,
                &RecordConsent {
                    subject: DsrSubject::email(&format!("p{round}@example.com")),
                    purposes: vec!["a".into(), "b".into()],
                    collection_method: "web form".into(),
                    policy_version: "v1".into(),
                    given_at: None,
                },
            )
            .await
            .unwrap();
        let only = |p: &str| WithdrawConsent {
            purposes: Some(vec![p.to_string()]),
        };
        let (only_a, only_b) = (only("a"), only("b"));
        let (wa, wb) = tokio::join!(
            admin_a.withdraw_consent(&t.id, &c.id, &only_a),
            admin_b.withdraw_consent(&t.id, &c.id, &only_b),
        );
        wa.unwrap();
        wb.unwrap();
        let stored = admin_a
            .consents(
                &t.id,
                Some(&DsrSubject::email(&format!("p{round}@example.com"))),
            )
            .await
            .unwrap();
        let record = stored.items.iter().find(|r| r.id == c.id).unwrap();
        for p in &record.purposes {
            assert!(
                p.withdrawn_at.is_some(),
                "round {round}: withdrawal of {} lost",
                p.purpose
            );
        }
        assert!(record.withdrawn_at.is_some(), "round {round}");
    }
    drop((a, b));
    db.drop_db().await;
}

fn visitor(id: &str) -> DsrSubject {
    DsrSubject {
        visitor_id: Some(id.to_string()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_a_while_b_extends_stays_completed() {
    let Some((db, _dir, a, b)) = two_nodes("erasure_on_a_while_b_extends_stays_completed").await
    else {
        return;
    };
    let sql = db.sql().await;
    let t = tenant(&a, "Erasures").await;
    sees_status(&b, &t.id, "active").await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    let (mut extended_first, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let person = format!("erase-{round}");
        visit(&a, &t.channels.webchat.widget_key, &person).await;
        let r = admin_a
            .file_dsr(
                &t.id,
                &CreateDsr {
                    kind: DsrType::Erasure,
                    subject: visitor(&person),
                    received_at: None,
                },
            )
            .await
            .unwrap();
        let extend = ExtendDsr {
            months: 1,
            reason: "complex request".into(),
            person_informed_at: r.received_at.clone(),
        };
        let racer = a.racer(round);
        let code = totp_code();
        let none = CompleteDsr::default();
        let (done, ext) = tokio::join!(
            racer.complete_dsr(&t.id, &r.id, &none, &code),
            admin_b.extend_dsr(&t.id, &r.id, &extend),
        );
        let done = done.unwrap_or_else(|e| panic!("round {round}: completion failed: {e}"));
        assert_eq!(done.status, DsrStatus::Completed);
        match ext {
            Ok(_) => extended_first += 1,
            Err(e) => {
                assert_eq!(conflict_code("extend", &e), "invalid_state");
                refused += 1;
            }
        }
        for node in [&admin_a, &admin_b] {
            let stored = node.dsr(&t.id, &r.id).await.unwrap();
            assert_eq!(
                stored.status,
                DsrStatus::Completed,
                "round {round}: reopened"
            );
            assert!(stored.completed_at.is_some());
        }
        let row = sql
            .query_one(
                "SELECT status, subject_bi IS NULL FROM dsr_requests WHERE id = $1",
                &[&r.id],
            )
            .await
            .unwrap();
        let (status, forgotten): (String, bool) = (row.get(0), row.get(1));
        assert_eq!(status, "completed", "round {round}");
        assert!(
            forgotten,
            "round {round}: the erased person's blind index is back"
        );
        let contacts: i64 = sql
            .query_one(
                "SELECT count(*) FROM contacts WHERE tenant_id = $1",
                &[&t.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            contacts, 0,
            "round {round}: the erased contact is still there"
        );
    }
    eprintln!("{ROUNDS} rounds: extension first {extended_first}, refused {refused}");
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_export_completed_on_both_nodes_at_once() {
    let Some((db, _dir, a, b)) = two_nodes("one_export_completed_on_both_nodes_at_once").await
    else {
        return;
    };
    let sql = db.sql().await;
    let t = tenant(&a, "Exports").await;
    sees_status(&b, &t.id, "active").await;
    let admin_a = a.admin();
    for round in 0..ROUNDS {
        let person = format!("export-{round}");
        visit(&a, &t.channels.webchat.widget_key, &person).await;
        let r = admin_a
            .file_dsr(
                &t.id,
                &CreateDsr {
                    kind: DsrType::Access,
                    subject: visitor(&person),
                    received_at: None,
                },
            )
            .await
            .unwrap();
        // Two admins, one per node (each code is good once per token).
        let (ra, rb) = (a.racer(round), b.racer(ROUNDS + round));
        let code = totp_code();
        let none = CompleteDsr::default();
        let (x, y) = tokio::join!(
            ra.complete_dsr(&t.id, &r.id, &none, &code),
            rb.complete_dsr(&t.id, &r.id, &none, &code),
        );
        match (&x, &y) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
                assert_eq!(conflict_code("second completion", e), "invalid_state");
            }
            _ => panic!("round {round}: one 200 and one 409: {x:?} / {y:?}"),
        }
        let exports: i64 = sql
            .query_one(
                "SELECT count(*) FROM dsr_exports WHERE dsr_id = $1",
                &[&r.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(exports, 1, "round {round}");
        let export = admin_a.dsr_export(&t.id, &r.id).await.unwrap();
        assert_eq!(export.conversations.len(), 1, "round {round}");
    }
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_notifications_of_one_incident_at_once_both_stand() {
    let Some((db, _dir, a, b)) =
        two_nodes("two_notifications_of_one_incident_at_once_both_stand").await
    else {
        return;
    };
    let (t1, t2) = (tenant(&a, "One").await, tenant(&a, "Two").await);
    sees_status(&b, &t1.id, "active").await;
    sees_status(&b, &t2.id, "active").await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    for round in 0..ROUNDS {
        let i = admin_a
            .record_incident(&CreateIncident {
                aware_at: None,
                nature: format!("breach {round}"),
                categories: vec!["contact data".into()],
                records: 2,
                subjects: 2,
                affected_tenants: vec![t1.id.clone(), t2.id.clone()],
                consequences: "exposure".into(),
                measures: "rotated".into(),
                platform_is_controller: false,
                high_risk: false,
            })
            .await
            .unwrap();
        let to = |t: &TenantCreated| RecordNotification {
            to: NotifyTarget::Controller,
            tenant_id: Some(t.id.clone()),
        };
        let (n1, n2) = (to(&t1), to(&t2));
        let (x, y) = tokio::join!(
            admin_a.record_notification(&i.id, &n1),
            admin_b.record_notification(&i.id, &n2),
        );
        x.unwrap();
        y.unwrap();
        let stored = admin_a.incident(&i.id).await.unwrap();
        assert_eq!(stored.notifications.len(), 2, "round {round}: one lost");
        assert!(
            stored
                .clocks
                .controllers
                .iter()
                .all(|c| c.notified_at.is_some()),
            "round {round}"
        );
    }
    drop((a, b));
    db.drop_db().await;
}

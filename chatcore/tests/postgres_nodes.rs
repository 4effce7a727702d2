//! Real `c24-core` processes on one PostgreSQL database (`--database`):
//! a visitor on node B receives an agent reply posted on node A; a tenant
//! created or suspended on one node, and the usage either stores, are known
//! to the other; SIGKILL of a node (alone, or one of two under load) loses
//! no acknowledged message; the database holds no plaintext; a schema newer
//! than the binary is refused; the traffic trace export of either node holds
//! what both stored (and nothing from a node run with `--no-traffic-trace`);
//! a manual purge on both nodes at once, and both nodes' purge workers,
//! delete each due row exactly once (the deleted totals the nodes report
//! add up to the due rows, and none is left); the retention report of
//! either node counts both nodes' writes and the other's purge; a tenant's
//! throughput, rate, history and rank on either node sum both nodes, and so
//! do the ingress errors.
//! Skipped with a message without a server (see `support/pg.rs`).

#[path = "support/node.rs"]
mod node;
#[path = "support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::admin::throughput::Direction;
use c24_api::client::webchat::WebchatClient;
use c24_api::client::{Client, ClientError};
use c24_api::webchat::{ClientFrame, ServerFrame};
use node::{Node, eventually, kek_file, spawn_node};
use pg::TestDb;

const TOKEN: &str = "pg-nodes-admin";
const WAIT: Duration = Duration::from_secs(10);

fn command(db: &TestDb, kek: &Path, data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_c24-core"));
    c.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
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

/// Every acknowledged (message id, content) is stored, read back through
/// `node`'s agent API.
async fn assert_every_ack_stored(node: &Node, api_key: &str, acked: &[(String, String)]) {
    let api = Client::new(&node.url, api_key).unwrap();
    let mut stored = std::collections::HashMap::new();
    for c in api.conversations().await.unwrap().items {
        let mut after = None;
        loop {
            let page = api.messages(&c.id, 1000, after.as_deref()).await.unwrap();
            for m in page.items {
                stored.insert(m.id, m.content);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    for (id, content) in acked {
        assert_eq!(
            stored.get(id),
            Some(content),
            "acknowledged message {id} lost"
        );
    }
}

fn kill(node: &mut Node) {
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

async fn tenant(node: &Node, name: &str) -> c24_api::admin::tenants::TenantCreated {
    Client::new(&node.url, TOKEN)
        .unwrap()
        .create_tenant(&CreateTenant {
            name: name.into(),
            dpa_signed: true,
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_on_b_receives_agent_reply_from_a() {
    let Some(db) = TestDb::create("visitor_on_b_receives_agent_reply_from_a").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    // Created on A after B started: B learns of it from A's notification.
    let t = tenant(&a, "Two nodes").await;
    let key = t.channels.webchat.widget_key.clone();
    let mut visitor = eventually("B admits A's new tenant", || async {
        WebchatClient::connect(&b.ws(), &key, "visitor-b")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let (ack, _) = visitor
        .send_message("c1", None, "hello from B", WAIT)
        .await
        .unwrap();

    // The agent, on A, sees B's message and replies there.
    let agent_a = Client::new(&a.url, &t.api_key).unwrap();
    let page = agent_a
        .messages(&ack.conversation_id, 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].content, "hello from B");
    let reply = agent_a
        .post_message(&ack.conversation_id, "reply posted on A")
        .await
        .unwrap();
    // The visitor's socket is on B.
    loop {
        match visitor.next(WAIT).await.unwrap() {
            ServerFrame::MsgNew(m) => {
                assert_eq!(m.content, "reply posted on A");
                assert_eq!(m.message_id, reply.id);
                assert_eq!(m.seq, 2);
                assert_eq!(m.direction, "outbound");
                assert_eq!(m.conversation_id, ack.conversation_id);
                break;
            }
            ServerFrame::Pong { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }

    // Both nodes count what either stored (B stored the visitor's message,
    // A the reply).
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let v = admin.tenant(&t.id).await.unwrap();
            if (v.stored_messages, v.conversations) == (2, 1) {
                assert_eq!(
                    v.stored_bytes,
                    ("hello from B".len() + "reply posted on A".len()) as i64
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: usage {} messages, {} conversations",
                node.url,
                v.stored_messages,
                v.conversations
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    // Live figures: B counted the visitor's message, A the reply; the
    // admin API of either node shows both.
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let t = admin.throughput("60s", None).await.unwrap();
            let webchat = t
                .per_channel
                .iter()
                .find(|c| c.channel == "webchat")
                .unwrap();
            let by_direction: Vec<u64> = t
                .series
                .iter()
                .filter(|s| s.channel == "webchat")
                .map(|s| s.counts.iter().sum())
                .collect();
            let overview = admin.overview().await.unwrap().live;
            if webchat.messages == 2 && overview.messages_last_60s == 2 {
                assert_eq!(by_direction, [1, 1], "{}", node.url);
                let ow = overview
                    .per_channel
                    .iter()
                    .find(|c| c.channel == "webchat")
                    .unwrap();
                assert_eq!(ow.messages, 2);
                assert_eq!(
                    webchat.bytes,
                    ("hello from B".len() + "reply posted on A".len()) as u64
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: webchat shows {} messages, the overview {}",
                node.url,
                webchat.messages,
                overview.messages_last_60s
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Suspended on A: B refuses the tenant's visitors too.
    Client::new(&a.url, TOKEN)
        .unwrap()
        .suspend(&t.id)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    for n in 0.. {
        let r = visitor
            .send_message(
                &format!("after-suspend-{n}"),
                Some(&ack.conversation_id),
                "refused?",
                WAIT,
            )
            .await;
        match r {
            Err(ClientError::WebSocket {
                code: Some(code), ..
            }) if code == "tenant_suspended" => break,
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => assert!(
                Instant::now() < deadline,
                "B still admits a tenant suspended on A"
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop((a, b));
    db.drop_db().await;
}

/// Parses `v{i}-{n}` back to `n`.
fn seq_of(client_msg_id: &str) -> usize {
    client_msg_id.rsplit('-').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_message() {
    let Some(db) = TestDb::create("sigkill_loses_no_acknowledged_message").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let mut p = start(&db, &kek, &dir.path().join("a"));
    let t = tenant(&p, "Durable").await;
    let key = t.channels.webchat.widget_key.clone();

    // (message_id, content) of every acknowledged message.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..4 {
        let mut v = WebchatClient::connect(&p.ws(), &key, &format!("v{i}"))
            .await
            .unwrap();
        let (a, _) = v
            .send_message(&format!("v{i}-0"), None, &format!("v{i} m0"), WAIT)
            .await
            .unwrap();
        acked.push((a.message_id, format!("v{i} m0")));
        sockets.push((v, a.conversation_id));
    }
    // Four visitors pipeline messages; the server is killed mid-stream.
    const PER_SOCKET: usize = 400;
    for (i, (v, conv)) in sockets.iter_mut().enumerate() {
        for n in 1..=PER_SOCKET {
            v.send(&ClientFrame::MsgSend {
                client_msg_id: format!("v{i}-{n}"),
                conversation_id: Some(conv.clone()),
                content: format!("v{i} m{n}"),
                client_ts: None,
            })
            .await
            .unwrap();
        }
    }
    let mut collected = 0;
    'outer: for (i, (v, _)) in sockets.iter_mut().enumerate() {
        for _ in 0..PER_SOCKET / 2 {
            match v.next(WAIT).await.unwrap() {
                ServerFrame::Ack(a) => {
                    acked.push((a.message_id, format!("v{i} m{}", seq_of(&a.client_msg_id))));
                    collected += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
            if collected >= 600 {
                break 'outer;
            }
        }
    }
    kill(&mut p);
    // Acks already on the wire count as acknowledged too.
    for (i, (v, _)) in sockets.iter_mut().enumerate() {
        while let Ok(ServerFrame::Ack(a)) = v.next(Duration::from_millis(200)).await {
            acked.push((a.message_id, format!("v{i} m{}", seq_of(&a.client_msg_id))));
        }
    }
    drop(sockets);
    assert!(acked.len() >= 600);

    let p2 = start(&db, &kek, &dir.path().join("a"));
    assert_every_ack_stored(&p2, &t.api_key, &acked).await;
    drop(p2);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_plaintext() {
    let Some(db) = TestDb::create("postgres_holds_no_plaintext").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let node = start(&db, &kek, &dir.path().join("a"));
    let t = tenant(&node, "Sealed").await;
    let body = "body-marker-7f3a";
    let visitor_id = "visitor-marker-91c2";
    let reply = "reply-marker-52d0";
    let mut v = WebchatClient::connect(&node.ws(), &t.channels.webchat.widget_key, visitor_id)
        .await
        .unwrap();
    let (ack, _) = v.send_message("c1", None, body, WAIT).await.unwrap();
    Client::new(&node.url, &t.api_key)
        .unwrap()
        .post_message(&ack.conversation_id, reply)
        .await
        .unwrap();
    v.close().await;

    // Every text and bytea column of every table, searched for each marker.
    let sql = db.sql().await;
    let columns = sql
        .query(
            "SELECT table_schema, table_name, column_name, data_type
             FROM information_schema.columns
             WHERE table_schema IN ('public', 'keyring') AND data_type IN ('text', 'bytea')",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.len() > 20, "found only {} columns", columns.len());
    let mut searched = 0;
    for c in &columns {
        let (schema, table, column, ty): (String, String, String, String) =
            (c.get(0), c.get(1), c.get(2), c.get(3));
        for marker in [body, visitor_id, reply] {
            let cond = if ty == "bytea" {
                format!("position(convert_to($1, 'UTF8') in \"{column}\") > 0")
            } else {
                format!("strpos(\"{column}\", $1) > 0")
            };
            let n: i64 = sql
                .query_one(
                    &format!("SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE {cond}"),
                    &[&marker],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "{marker:?} in plaintext in {schema}.{table}.{column}");
            searched += 1;
        }
    }
    assert!(searched > 60);
    // The rows are there, sealed.
    let n: i64 = sql
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    drop(node);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_refused_at_start() {
    let Some(db) = TestDb::create("newer_schema_refused_at_start").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let mut node = start(&db, &kek, &dir.path().join("a"));
    kill(&mut node);
    let newer = c24_chatcore::store::postgres::migrate::latest() + 1;
    db.sql()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')",
            &[&newer],
        )
        .await
        .unwrap();
    let mut child = command(&db, &kek, &dir.path().join("a"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("schema is at version {newer}")) && stderr.contains("newer"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c24:c24@"),
        "the password leaked: {stderr}"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_node_loses_nothing_and_the_other_serves_on() {
    let Some(db) = TestDb::create("sigkill_of_one_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let mut a = start(&db, &kek, &dir.path().join("a"));
    let t = tenant(&a, "Two nodes, one killed").await;
    let b = start(&db, &kek, &dir.path().join("b"));
    let key = t.channels.webchat.widget_key.clone();

    // Visitors 0 and 1 on A, 2 and 3 on B, all pipelining at once.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..4 {
        let node = if i < 2 { &a } else { &b };
        let mut v = WebchatClient::connect(&node.ws(), &key, &format!("v{i}"))
            .await
            .unwrap();
        let (ack, _) = v
            .send_message(&format!("v{i}-0"), None, &format!("v{i} m0"), WAIT)
            .await
            .unwrap();
        acked.push((ack.message_id, format!("v{i} m0")));
        sockets.push((v, ack.conversation_id));
    }
    const PER_SOCKET: usize = 300;
    for (i, (v, conv)) in sockets.iter_mut().enumerate() {
        for n in 1..=PER_SOCKET {
            v.send(&ClientFrame::MsgSend {
                client_msg_id: format!("v{i}-{n}"),
                conversation_id: Some(conv.clone()),
                content: format!("v{i} m{n}"),
                client_ts: None,
            })
            .await
            .unwrap();
        }
    }
    // Some of A's acks, then A dies mid-stream.
    let mut from_a = 0;
    'outer: for (i, (v, _)) in sockets.iter_mut().enumerate().take(2) {
        for _ in 0..PER_SOCKET / 2 {
            match v.next(WAIT).await.unwrap() {
                ServerFrame::Ack(ack) => {
                    acked.push((
                        ack.message_id,
                        format!("v{i} m{}", seq_of(&ack.client_msg_id)),
                    ));
                    from_a += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
            if from_a >= 200 {
                break 'outer;
            }
        }
    }
    kill(&mut a);
    for (i, (v, _)) in sockets.iter_mut().enumerate().take(2) {
        while let Ok(ServerFrame::Ack(ack)) = v.next(Duration::from_millis(200)).await {
            acked.push((
                ack.message_id,
                format!("v{i} m{}", seq_of(&ack.client_msg_id)),
            ));
        }
    }
    // B acknowledges every message of its visitors regardless.
    for (i, (v, _)) in sockets.iter_mut().enumerate().skip(2) {
        for _ in 0..PER_SOCKET {
            match v.next(WAIT).await.unwrap() {
                ServerFrame::Ack(ack) => {
                    acked.push((
                        ack.message_id,
                        format!("v{i} m{}", seq_of(&ack.client_msg_id)),
                    ));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    drop(sockets);
    assert!(acked.len() >= 200 + 2 * PER_SOCKET);

    // Read back through B, still running.
    assert_every_ack_stored(&b, &t.api_key, &acked).await;
    drop(b);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_trace_export_holds_every_nodes_messages() {
    let Some(db) = TestDb::create("traffic_trace_export_holds_every_nodes_messages").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    // A third node that records no trace (`--no-traffic-trace`).
    let mut child = command(&db, &kek, &dir.path().join("c"))
        .arg("--no-traffic-trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let c = Node {
        url: line
            .trim()
            .strip_prefix("c24-core listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string(),
        child,
    };
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let t = tenant(&a, "Traced").await;
    let key = t.channels.webchat.widget_key.clone();
    let mut on_b = eventually("B admits A's new tenant", || async {
        WebchatClient::connect(&b.ws(), &key, "visitor-b")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let (ack, _) = on_b
        .send_message("b1", None, "hello from B", WAIT)
        .await
        .unwrap();
    Client::new(&a.url, &t.api_key)
        .unwrap()
        .post_message(&ack.conversation_id, "a reply posted on A")
        .await
        .unwrap();
    let mut on_c = eventually("C admits A's new tenant", || async {
        WebchatClient::connect(&c.ws(), &key, "visitor-c")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    on_c.send_message("c1", None, "untraced on C", WAIT)
        .await
        .unwrap();

    let to = chrono::Utc::now() + chrono::Duration::seconds(5);
    let (from, to) = (
        from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    for node in [&a, &b, &c] {
        let records = Client::new(&node.url, TOKEN)
            .unwrap()
            .traffic_trace(&from, &to)
            .await
            .unwrap();
        let shape: Vec<(&str, c24_api::Channel, Direction, u64)> = records
            .iter()
            .map(|r| (r.tenant_id.as_str(), r.channel, r.direction, r.size_bytes))
            .collect();
        assert_eq!(
            shape,
            [
                (
                    t.id.as_str(),
                    c24_api::Channel::Webchat,
                    Direction::Inbound,
                    "hello from B".len() as u64
                ),
                (
                    t.id.as_str(),
                    c24_api::Channel::Webchat,
                    Direction::Outbound,
                    "a reply posted on A".len() as u64
                ),
            ],
            "export of {}",
            node.url
        );
        // One conversation, one pseudonym, never the stored id.
        assert_eq!(records[0].conversation, records[1].conversation);
        assert_ne!(records[0].conversation, ack.conversation_id);
    }
}

/// The bootstrap admin's TOTP secret on the retention nodes.
const TOTP: &str = "JBSWY3DPEHPK3PXP";
const DAY_S: i64 = 86_400;

/// A node with the dev clock and a second factor for the bootstrap token.
fn start_retention(db: &TestDb, kek: &Path, data_dir: &Path, purge_interval: &str) -> Node {
    let mut cmd = command(db, kek, data_dir);
    cmd.args([
        "--dev-clock",
        "--admin-totp-secret",
        TOTP,
        "--purge-interval",
        purge_interval,
    ]);
    spawn_node(cmd)
}

/// A valid TOTP code other than `used` (the latest step it can be).
fn totp_code_besides(used: &[String]) -> String {
    let totp = c24_chatcore::access::totp(TOTP).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    [now + 30, now, now - 30]
        .into_iter()
        .map(|at| totp.generate(at))
        .find(|c| !used.contains(c))
        .unwrap()
}

/// Two TOTP codes (this step and the next): a code is accepted once.
fn totp_codes() -> [String; 2] {
    let totp = c24_chatcore::access::totp(TOTP).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    [totp.generate(now), totp.generate(now + 30)]
}

/// Stores `visitors × per_visitor` web-chat messages through `node`, each
/// visitor pipelining its messages into one conversation.
async fn fill(node: &Node, widget_key: &str, label: &str, visitors: usize, per_visitor: usize) {
    let mut sockets = Vec::new();
    for i in 0..visitors {
        // A tenant created on another node is admitted once its event arrived.
        let mut v = eventually("the node admits the tenant", || async {
            WebchatClient::connect(&node.ws(), widget_key, &format!("{label}-{i}"))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        let (ack, _) = v
            .send_message(&format!("{label}{i}-0"), None, "first", WAIT)
            .await
            .unwrap();
        sockets.push((v, ack.conversation_id));
    }
    for (i, (v, conv)) in sockets.iter_mut().enumerate() {
        for n in 1..per_visitor {
            v.send(&ClientFrame::MsgSend {
                client_msg_id: format!("{label}{i}-{n}"),
                conversation_id: Some(conv.clone()),
                content: format!("message {n} of visitor {i}"),
                client_ts: None,
            })
            .await
            .unwrap();
        }
    }
    for (v, _) in &mut sockets {
        for _ in 1..per_visitor {
            match v.next(WAIT).await.unwrap() {
                ServerFrame::Ack(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Rows due at `now_ms` in every table the purge deletes from (the traffic
/// trace counted in messages, as the purge counts it).
async fn due_rows(db: &TestDb, now_ms: i64) -> i64 {
    let sql = db.sql().await;
    let mut total = 0;
    for table in c24_chatcore::store::PurgeTable::ALL {
        let what = if table == c24_chatcore::store::PurgeTable::TrafficTrace {
            "coalesce(sum(count), 0)::bigint"
        } else {
            "count(*)"
        };
        let n: i64 = sql
            .query_one(
                &format!(
                    "SELECT {what} FROM {} WHERE purge_after <= $1",
                    table.name()
                ),
                &[&now_ms],
            )
            .await
            .unwrap()
            .get(0);
        total += n;
    }
    total
}

async fn end_user_rows(db: &TestDb, tenant_id: &str) -> i64 {
    let sql = db.sql().await;
    let mut total = 0;
    for table in ["messages", "conversations", "contacts"] {
        let n: i64 = sql
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                &[&tenant_id],
            )
            .await
            .unwrap()
            .get(0);
        total += n;
    }
    total
}

/// A terminated tenant with `visitors × per_visitor` messages, its rows
/// due once both nodes' clocks moved 31 days on; and a kept tenant's
/// messages, never due. Gives the terminated tenant, the kept one, the
/// due rows (all the terminated tenant's), the kept tenant's rows and the clocks' earliest `now`.
async fn terminated_and_due(
    db: &TestDb,
    a: &Node,
    b: &Node,
    codes_a: &mut Vec<String>,
) -> (String, String, i64, i64, i64) {
    let gone = tenant(a, "Terminated").await;
    let kept = tenant(a, "Kept").await;
    fill(a, &gone.channels.webchat.widget_key, "a", 2, 700).await;
    fill(b, &gone.channels.webchat.widget_key, "b", 2, 700).await;
    fill(b, &kept.channels.webchat.widget_key, "k", 1, 50).await;
    let stored = end_user_rows(db, &gone.id).await;
    let kept_rows = end_user_rows(db, &kept.id).await;
    assert!(kept_rows >= 52, "{kept_rows}");
    // 2800 messages, 4 conversations, their contacts.
    assert!(stored >= 2808, "{stored}");
    let admin_a = Client::new(&a.url, TOKEN).unwrap();
    admin_a
        .terminate(&gone.id, &codes_a.remove(0))
        .await
        .unwrap();
    // Termination stamped every row of the tenant (due 30 days on).
    let sql = db.sql().await;
    let mut stamped = 0;
    for table in ["messages", "conversations", "contacts"] {
        let n: i64 = sql
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} WHERE tenant_id = $1 AND purge_after IS NOT NULL"
                ),
                &[&gone.id],
            )
            .await
            .unwrap()
            .get(0);
        stamped += n;
    }
    assert_eq!(stamped, stored);
    // Both clocks at once, so both nodes' purges find the rows due together.
    let (ca, cb) = (
        Client::new(&a.url, TOKEN).unwrap(),
        Client::new(&b.url, TOKEN).unwrap(),
    );
    let (now_a, now_b) = tokio::join!(ca.advance_clock(31 * DAY_S), cb.advance_clock(31 * DAY_S));
    let earliest = now_a.unwrap().now_ms.min(now_b.unwrap().now_ms);
    (gone.id, kept.id, stored, kept_rows, earliest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_on_two_nodes_at_once_deletes_each_due_row_once() {
    let Some(db) = TestDb::create("purge_on_two_nodes_at_once").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    // The workers stay idle (an hour apart): the purges are the manual ones.
    let a = start_retention(&db, &kek, &dir.path().join("a"), "1h");
    let b = start_retention(&db, &kek, &dir.path().join("b"), "1h");
    let codes = totp_codes();
    let mut codes_a = codes.to_vec();
    let (gone, kept, due, kept_rows, now) = terminated_and_due(&db, &a, &b, &mut codes_a).await;
    // A code is good once across the nodes: B's differs from A's.
    let code_b = totp_code_besides(&codes);

    assert_eq!(
        due,
        due_rows(&db, now).await,
        "only the terminated tenant's rows are due"
    );

    // Both purges at once.
    let (admin_a, admin_b) = (
        Client::new(&a.url, TOKEN).unwrap(),
        Client::new(&b.url, TOKEN).unwrap(),
    );
    let (run_a, run_b) = tokio::join!(admin_a.purge(&codes_a[0]), admin_b.purge(&code_b));
    let (run_a, run_b) = (run_a.unwrap(), run_b.unwrap());
    eprintln!(
        "due {due}: A deleted {}, B {}",
        run_a.rows_deleted, run_b.rows_deleted
    );
    assert_eq!(
        run_a.rows_deleted + run_b.rows_deleted,
        due as u64,
        "A deleted {}, B {}",
        run_a.rows_deleted,
        run_b.rows_deleted
    );
    assert_eq!(end_user_rows(&db, &gone).await, 0);
    assert_eq!(due_rows(&db, now).await, 0);
    // The kept tenant's rows are intact.
    assert_eq!(end_user_rows(&db, &kept).await, kept_rows);
    drop((a, b));
    db.drop_db().await;
}

/// The Prometheus counter of rows this node's purges deleted.
async fn purged_rows_metric(node: &Node) -> u64 {
    let text = Client::new(&node.url, TOKEN)
        .unwrap()
        .metrics()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("c24_purge_rows_deleted_total "))
        .unwrap_or_else(|| panic!("no c24_purge_rows_deleted_total in {text}"))
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_workers_on_two_nodes_delete_each_due_row_once() {
    let Some(db) = TestDb::create("purge_workers_on_two_nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    // Both workers run every 200 ms of real time.
    let a = start_retention(&db, &kek, &dir.path().join("a"), "200ms");
    let b = start_retention(&db, &kek, &dir.path().join("b"), "200ms");
    let mut codes_a = totp_codes().to_vec();
    let (gone, kept, due, kept_rows, now) = terminated_and_due(&db, &a, &b, &mut codes_a).await;
    eventually("the workers delete the due rows", || async {
        match end_user_rows(&db, &gone).await {
            0 => Ok(()),
            n => Err(format!("{n} rows left")),
        }
    })
    .await;
    // A run's rows are counted once it finished: wait for both to add up.
    let (from_a, from_b) = eventually("the workers' counters add up", || async {
        let (ra, rb) = (purged_rows_metric(&a).await, purged_rows_metric(&b).await);
        if ra + rb >= due as u64 {
            Ok((ra, rb))
        } else {
            Err(format!("A {ra} + B {rb} < {due}"))
        }
    })
    .await;
    eprintln!("due {due}: A's worker deleted {from_a}, B's {from_b}");
    assert_eq!(from_a + from_b, due as u64);
    assert_eq!(due_rows(&db, now).await, 0);
    assert_eq!(end_user_rows(&db, &kept).await, kept_rows);
    drop((a, b));
    db.drop_db().await;
}

/// What the database holds of the access-logs category: audit entries and
/// the traffic trace's messages.
async fn access_logs_in_db(db: &TestDb) -> i64 {
    db.sql()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM audit_log)
                  + (SELECT coalesce(sum(count), 0)::bigint FROM traffic_trace)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls both nodes' retention reports until their access-logs and
/// end-user figures are what the database holds.
async fn reports_match_the_database(db: &TestDb, nodes: [&Node; 2], what: &str) {
    for node in nodes {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        eventually(what, || async {
            let report = admin.retention().await.map_err(|e| e.to_string())?;
            let records = |id: &str| {
                report
                    .categories
                    .iter()
                    .find(|c| c.category == id)
                    .map(|c| c.records)
            };
            let (logs, end_user) = (records("access_logs"), records("end_user_data"));
            // Read after the report: an audited request in between moves it.
            let logs_db = access_logs_in_db(db).await;
            let sql = db.sql().await;
            let end_user_db: i64 = sql
                .query_one(
                    "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM conversations)
                          + (SELECT count(*) FROM contacts)",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if (logs, end_user) == (Some(logs_db), Some(end_user_db)) {
                Ok(())
            } else {
                Err(format!(
                    "{}: access logs {logs:?} (database {logs_db}), end-user data {end_user:?} (database {end_user_db})",
                    node.url
                ))
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_report_of_either_node_counts_both_nodes_writes_and_purges() {
    let Some(db) = TestDb::create("retention_report_of_either_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start_retention(&db, &kek, &dir.path().join("a"), "1h");
    let b = start_retention(&db, &kek, &dir.path().join("b"), "1h");
    let t = tenant(&a, "Reported").await;
    let key = t.channels.webchat.widget_key.clone();
    // Traced messages stored by both nodes.
    fill(&a, &key, "a", 2, 60).await;
    fill(&b, &key, "b", 3, 40).await;
    let trace: i64 = db
        .sql()
        .await
        .query_one(
            "SELECT coalesce(sum(count), 0)::bigint FROM traffic_trace",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(trace, 2 * 60 + 3 * 40);
    reports_match_the_database(&db, [&a, &b], "reports count both nodes' writes").await;

    // 91 days on, A purges the trace and the audit log; B's report follows.
    let [code, _] = totp_codes();
    for node in [&a, &b] {
        Client::new(&node.url, TOKEN)
            .unwrap()
            .advance_clock(91 * DAY_S)
            .await
            .unwrap();
    }
    let run = Client::new(&a.url, TOKEN)
        .unwrap()
        .purge(&code)
        .await
        .unwrap();
    assert!(run.rows_deleted >= trace as u64, "{run:?}");
    let left: i64 = db
        .sql()
        .await
        .query_one("SELECT count(*) FROM traffic_trace", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    reports_match_the_database(&db, [&a, &b], "reports count A's purge").await;
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_figures_of_either_node_sum_both_nodes() {
    let Some(db) = TestDb::create("tenant_figures_of_either_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let busy = tenant(&a, "Busy on both").await;
    let quiet = tenant(&a, "Quiet on A").await;
    // Busy: 20 messages on A, 60 on B; quiet: 50 on A. A alone would rank
    // quiet first; the sum ranks busy first.
    fill(&a, &busy.channels.webchat.widget_key, "a", 1, 20).await;
    fill(&b, &busy.channels.webchat.widget_key, "b", 2, 30).await;
    fill(&a, &quiet.channels.webchat.widget_key, "q", 1, 50).await;

    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        eventually("either node shows both nodes' tenant figures", || async {
            let t = admin
                .throughput("60s", Some(&busy.id))
                .await
                .map_err(|e| e.to_string())?;
            let webchat = t
                .per_channel
                .iter()
                .find(|c| c.channel == "webchat")
                .map_or(0, |c| c.messages);
            let series: u64 = t.series.iter().map(|s| s.counts.iter().sum::<u64>()).sum();
            let v = admin.tenant(&busy.id).await.map_err(|e| e.to_string())?;
            let history: u64 = v.msgs_per_sec_history.iter().map(|c| u64::from(*c)).sum();
            let list = admin
                .query_tenants(&c24_api::client::TenantQuery {
                    sort: Some("msgs_per_s".into()),
                    order: Some("desc".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let ranked: Vec<&str> = list.items.iter().map(|t| t.id.as_str()).collect();
            let got = (
                webchat,
                series,
                history,
                (v.msgs_per_s * 10.0).round() as u64,
                ranked.clone(),
            );
            let want = (80, 80, 80, 80, vec![busy.id.as_str(), quiet.id.as_str()]);
            if got == want {
                Ok(())
            } else {
                Err(format!("{}: {got:?}, want {want:?}", node.url))
            }
        })
        .await;
    }
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingress_errors_of_either_node_sum_both_nodes() {
    let Some(db) = TestDb::create("ingress_errors_of_either_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    // Refused web-chat connections: 2 on A, 3 on B.
    for (node, n) in [(&a, 2), (&b, 3)] {
        for i in 0..n {
            let r =
                WebchatClient::connect(&node.ws(), "no-such-widget-key", &format!("v{i}")).await;
            assert!(r.is_err(), "a bogus widget key was admitted");
        }
    }
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        eventually("either node shows both nodes' errors", || async {
            let t = admin
                .throughput("60s", None)
                .await
                .map_err(|e| e.to_string())?;
            let errors: Vec<(String, u64)> = t
                .per_channel
                .iter()
                .map(|c| (c.channel.clone(), c.errors))
                .collect();
            let o = admin.overview().await.map_err(|e| e.to_string())?.live;
            let webchat = o
                .per_channel
                .iter()
                .find(|c| c.channel == "webchat")
                .map_or(0, |c| c.errors);
            let got = (errors, o.errors_last_60s, webchat);
            let want = (
                vec![
                    ("webchat".to_string(), 5),
                    ("whatsapp".to_string(), 0),
                    ("email".to_string(), 0),
                ],
                5,
                5,
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("{}: {got:?}, want {want:?}", node.url))
            }
        })
        .await;
    }
    drop((a, b));
    db.drop_db().await;
}

// ------------------------------------------- email, WhatsApp and missed pushes

fn start_dev_clock(db: &TestDb, kek: &Path, data_dir: &Path) -> Node {
    let mut cmd = command(db, kek, data_dir);
    cmd.arg("--dev-clock");
    spawn_node(cmd)
}

/// A tenant created on `a`, once `b` knows it too.
async fn tenant_on_both(a: &Node, b: &Node, name: &str) -> c24_api::admin::tenants::TenantCreated {
    let t = tenant(a, name).await;
    let admin_b = Client::new(&b.url, TOKEN).unwrap();
    eventually("B knows A's new tenant", || async {
        admin_b.tenant(&t.id).await.map_err(|e| e.to_string())
    })
    .await;
    t
}

/// Posts one signed WhatsApp text message to `node`; gives the receipt.
async fn whatsapp_in(
    node: &Node,
    t: &c24_api::admin::tenants::TenantCreated,
    from: &str,
    wamid: &str,
    body: &str,
) -> serde_json::Value {
    let n = c24_api::whatsapp::Notification::text_message(
        &t.channels.whatsapp.phone_number_id,
        from,
        "Customer",
        wamid,
        0,
        body,
    );
    let raw = serde_json::to_vec(&n).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/whatsapp/{}/webhook", node.url, t.id))
        .header("content-type", "application/json")
        .header(
            c24_api::whatsapp::SIGNATURE_HEADER,
            c24_api::whatsapp::signature_header(&t.channels.whatsapp.app_secret, &raw),
        )
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", node.url);
    r.json().await.unwrap()
}

/// A plain-text email from `from` with Message-ID `msgid`, replying to `reply_to`.
fn raw_email(
    t: &c24_api::admin::tenants::TenantCreated,
    from: &str,
    msgid: &str,
    reply_to: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut m = format!(
        "From: Customer <{from}>\r\nTo: {}\r\nSubject: Order question\r\nMessage-ID: {msgid}\r\n",
        t.channels.email.address
    );
    if let Some(r) = reply_to {
        m.push_str(&format!("In-Reply-To: {r}\r\nReferences: {r}\r\n"));
    }
    m.push_str(&format!("Content-Type: text/plain\r\n\r\n{body}\r\n"));
    m.into_bytes()
}

/// Posts a raw email to `node`, signed at `unix_s` (the node's clock); gives
/// the status and the receipt.
async fn email_in(
    node: &Node,
    t: &c24_api::admin::tenants::TenantCreated,
    raw: &[u8],
    unix_s: i64,
) -> (u16, serde_json::Value) {
    let ts = unix_s.to_string();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/email/{}/inbound", node.url, t.id))
        .header("content-type", c24_api::email::CONTENT_TYPE)
        .header(c24_api::email::TIMESTAMP_HEADER, &ts)
        .header(
            c24_api::email::SIGNATURE_HEADER,
            c24_api::email::signature_header(&t.channels.email.signing_key, &ts, raw),
        )
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Every message of a conversation through `node`'s agent API.
async fn conversation_messages(
    node: &Node,
    api_key: &str,
    conversation_id: &str,
) -> Vec<c24_api::agent::MessageView> {
    let page = Client::new(&node.url, api_key)
        .unwrap()
        .messages(conversation_id, 1000, None)
        .await
        .unwrap();
    assert!(page.next.is_none());
    page.items
}

fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn receipt_conversation(r: &serde_json::Value) -> String {
    r["messages"][0]["conversation_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_messages_of_a_sender_on_both_nodes_start_one_conversation() {
    const ROUNDS: usize = 15;
    let Some(db) = TestDb::create("first_messages_of_a_sender_on_both").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start_dev_clock(&db, &kek, &dir.path().join("a"));
    let b = start_dev_clock(&db, &kek, &dir.path().join("b"));
    let t = tenant_on_both(&a, &b, "Races").await;
    let (admin_a, admin_b) = (
        Client::new(&a.url, TOKEN).unwrap(),
        Client::new(&b.url, TOKEN).unwrap(),
    );
    // The dev clocks start at the system's.
    let now_s = unix_now_s();
    // Each sender known from an earlier WhatsApp session and email thread.
    let mut expired = Vec::new();
    for r in 0..ROUNDS {
        let w = whatsapp_in(
            &a,
            &t,
            &format!("4915100000{r:02}"),
            &format!("wamid.old{r}"),
            "old",
        )
        .await;
        let raw = raw_email(
            &t,
            &format!("c{r}@example.com"),
            &format!("<old{r}@example.com>"),
            None,
            "old",
        );
        let (status, e) = email_in(&a, &t, &raw, now_s).await;
        assert_eq!(status, 201, "{e}");
        expired.push(receipt_conversation(&w));
    }
    // Both clocks a day on: every WhatsApp session has expired.
    let (na, nb) = tokio::join!(
        admin_a.advance_clock(25 * 3600),
        admin_b.advance_clock(25 * 3600)
    );
    let (now_a, now_b) = (na.unwrap().now_ms / 1000, nb.unwrap().now_ms / 1000);

    let mut sessions = Vec::new();
    let mut threads = Vec::new();
    for (r, old) in expired.iter().enumerate() {
        // Two messages of a sender, one to each node at once.
        let from = format!("4915100000{r:02}");
        let (ida, idb) = (format!("wamid.{r}.a"), format!("wamid.{r}.b"));
        let (via_a, via_b) = (format!("first {r} via A"), format!("first {r} via B"));
        let (x, y) = tokio::join!(
            whatsapp_in(&a, &t, &from, &ida, &via_a),
            whatsapp_in(&b, &t, &from, &idb, &via_b),
        );
        assert_eq!(
            (x["stored"].as_u64(), y["stored"].as_u64()),
            (Some(1), Some(1))
        );
        let conv = receipt_conversation(&x);
        assert_eq!(
            conv,
            receipt_conversation(&y),
            "round {r}: two conversations"
        );
        assert_ne!(&conv, old, "round {r}: the expired session reused");
        sessions.push((conv, [x, y]));

        // The first email of a thread, delivered to both nodes at once.
        let raw = raw_email(
            &t,
            &format!("c{r}@example.com"),
            &format!("<first{r}@example.com>"),
            None,
            &format!("thread {r}"),
        );
        let ((sa, ea), (sb, eb)) = tokio::join!(
            email_in(&a, &t, &raw, now_a),
            email_in(&b, &t, &raw, now_b + 1)
        );
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "round {r}: stored once ({ea}, {eb})");
        assert_eq!(
            (&ea["message_id"], &ea["conversation_id"], &ea["seq"]),
            (&eb["message_id"], &eb["conversation_id"], &eb["seq"]),
            "round {r}: both receipts name the stored email"
        );
        threads.push(ea["conversation_id"].as_str().unwrap().to_string());
    }

    // Either node's agent API lists exactly those conversations, each with
    // every accepted message once.
    for node in [&a, &b] {
        let listed = Client::new(&node.url, &t.api_key)
            .unwrap()
            .conversations()
            .await
            .unwrap();
        assert!(listed.next.is_none());
        assert_eq!(listed.items.len(), 4 * ROUNDS, "{}", node.url);
        for (conv, receipts) in &sessions {
            let got = conversation_messages(node, &t.api_key, conv).await;
            let mut ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
            let mut want: Vec<&str> = receipts
                .iter()
                .map(|r| r["messages"][0]["message_id"].as_str().unwrap())
                .collect();
            ids.sort();
            want.sort();
            assert_eq!(ids, want, "{conv} on {}", node.url);
        }
        for conv in &threads {
            assert_eq!(conversation_messages(node, &t.api_key, conv).await.len(), 1);
        }
    }
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn email_and_whatsapp_in_on_a_answered_on_b_read_the_same_on_both() {
    let Some(db) = TestDb::create("email_and_whatsapp_across_nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let t = tenant_on_both(&a, &b, "Across").await;
    let now_s = unix_now_s();

    // In on A.
    let w = whatsapp_in(&a, &t, "491520000001", "wamid.in1", "Where is my parcel?").await;
    let wa_conv = receipt_conversation(&w);
    let raw = raw_email(
        &t,
        "anna@example.com",
        "<q1@example.com>",
        None,
        "Invoice please",
    );
    let (status, e) = email_in(&a, &t, &raw, now_s).await;
    assert_eq!(status, 201, "{e}");
    let mail_conv = e["conversation_id"].as_str().unwrap().to_string();

    // Answered on B.
    let agent_b = Client::new(&b.url, &t.api_key).unwrap();
    let listed: Vec<String> = agent_b
        .conversations()
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        listed.contains(&wa_conv) && listed.contains(&mail_conv),
        "{listed:?}"
    );
    let wa_reply = agent_b
        .post_message(&wa_conv, "It ships today.")
        .await
        .unwrap();
    let mail_reply = agent_b
        .post_message(&mail_conv, "Attached, with thanks.")
        .await
        .unwrap();
    assert_eq!((wa_reply.seq, mail_reply.seq), (2, 2));

    // The customer answers, through A again: the same conversations.
    let w2 = whatsapp_in(&a, &t, "491520000001", "wamid.in2", "Thanks!").await;
    assert_eq!(receipt_conversation(&w2), wa_conv);
    let raw = raw_email(
        &t,
        "anna@example.com",
        "<q2@example.com>",
        Some("<q1@example.com>"),
        "Got it",
    );
    let (status, e2) = email_in(&b, &t, &raw, now_s).await;
    assert_eq!(status, 201, "{e2}");
    assert_eq!(e2["conversation_id"].as_str(), Some(mail_conv.as_str()));

    // Both nodes read each conversation identically: in, the reply once, in.
    for (conv, want) in [
        (
            &wa_conv,
            ["Where is my parcel?", "It ships today.", "Thanks!"],
        ),
        (
            &mail_conv,
            ["Invoice please", "Attached, with thanks.", "Got it"],
        ),
    ] {
        let on_a = conversation_messages(&a, &t.api_key, conv).await;
        let on_b = conversation_messages(&b, &t.api_key, conv).await;
        assert_eq!(on_a, on_b, "{conv}");
        let got: Vec<(i64, &str, &str)> = on_a
            .iter()
            .map(|m| (m.seq, m.direction.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "inbound", want[0]),
                (2, "outbound", want[1]),
                (3, "inbound", want[2])
            ]
        );
    }
    assert_eq!(
        conversation_messages(&a, &t.api_key, &mail_conv).await[2]
            .subject
            .as_deref(),
        Some("Order question")
    );
    // The core stores a reply and delivers nothing itself: each reply is
    // one row, whichever node stored it, and both nodes count it once.
    let sql = db.sql().await;
    let outbound: i64 = sql
        .query_one(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND direction = 'outbound'",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbound, 2);
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        eventually("either node counts both nodes' messages once", || async {
            let v = admin.tenant(&t.id).await.map_err(|e| e.to_string())?;
            match (v.stored_messages, v.conversations) {
                (6, 2) => Ok(()),
                got => Err(format!("{}: {got:?}", node.url)),
            }
        })
        .await;
    }
    drop((a, b));
    db.drop_db().await;
}

/// The cluster-event listeners of the test database (both nodes'), by pid,
/// once LISTEN is in place.
async fn listeners(sql: &tokio_postgres::Client) -> Vec<i32> {
    sql.query(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'c24-listen'
           AND query LIKE 'LISTEN%'",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The next `msg.new` push on the visitor's socket.
async fn next_push(visitor: &mut WebchatClient) -> c24_api::webchat::MsgNew {
    loop {
        match visitor.next(WAIT).await.unwrap() {
            ServerFrame::MsgNew(m) => return m,
            ServerFrame::Pong { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_committed_while_the_listener_is_down_reach_the_visitor_once_in_order() {
    const REPLIES: usize = 4;
    let Some(db) = TestDb::create("replies_while_listener_down").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let t = tenant_on_both(&a, &b, "Missed pushes").await;
    let key = t.channels.webchat.widget_key.clone();
    let mut visitor = WebchatClient::connect(&b.ws(), &key, "visitor-b")
        .await
        .unwrap();
    let (ack, _) = visitor
        .send_message("c1", None, "hello", WAIT)
        .await
        .unwrap();
    let conv = ack.conversation_id;
    let agent_a = Client::new(&a.url, &t.api_key).unwrap();
    let sql = db.sql().await;
    let wait_listeners = || async {
        eventually("both nodes listen", || async {
            let l = listeners(&sql).await;
            if l.len() == 2 {
                Ok(l)
            } else {
                Err(format!("{l:?}"))
            }
        })
        .await
    };

    let mut posted = vec![agent_a.post_message(&conv, "reply 0").await.unwrap().id];
    assert_eq!(next_push(&mut visitor).await.message_id, posted[0]);
    // Kill both listener connections; while they are down, A commits
    // replies. A round counts only if no listener was back before the last
    // reply committed (they reconnect after a second).
    let mut missed_rounds = 0;
    for round in 0..3 {
        let killed = wait_listeners().await;
        let n: i64 = sql
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM unnest($1::int4[]) AS pid",
                &[&killed],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        for i in 0..REPLIES {
            let m = agent_a
                .post_message(&conv, &format!("round {round} reply {i}"))
                .await
                .unwrap();
            posted.push(m.id);
        }
        // No listener connection at all now: none heard those commits.
        let early: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'c24-listen'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if early == 0 {
            missed_rounds += 1;
        }
    }
    assert!(missed_rounds > 0, "a listener was always back too soon");
    // Listening again: one more reply, pushed as usual.
    wait_listeners().await;
    posted.push(agent_a.post_message(&conv, "after").await.unwrap().id);
    let mut got = Vec::new();
    while got.last() != posted.last() {
        let m = next_push(&mut visitor).await;
        assert!(
            got.len() < posted.len(),
            "more pushes than replies: {got:?} then {m:?}"
        );
        got.push(m.message_id);
    }
    // Every reply exactly once, in commit order.
    assert_eq!(got, posted[1..]);
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_from_both_nodes_at_once_reach_the_visitor_once_in_seq_order() {
    const ROUNDS: usize = 25;
    let Some(db) = TestDb::create("replies_from_both_nodes_at_once").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let t = tenant_on_both(&a, &b, "Two agents").await;
    let key = t.channels.webchat.widget_key.clone();
    let mut visitor = WebchatClient::connect(&b.ws(), &key, "visitor-b")
        .await
        .unwrap();
    let (ack, _) = visitor
        .send_message("c1", None, "hello", WAIT)
        .await
        .unwrap();
    let conv = ack.conversation_id;
    // An agent on each node; B's replies are pushed from B itself, A's
    // through its event: each pair races.
    let (agent_a, agent_b) = (
        Client::new(&a.url, &t.api_key).unwrap(),
        Client::new(&b.url, &t.api_key).unwrap(),
    );
    let mut posted = Vec::new();
    for r in 0..ROUNDS {
        let (on_a, on_b) = (format!("A {r}"), format!("B {r}"));
        let (x, y) = tokio::join!(
            agent_a.post_message(&conv, &on_a),
            agent_b.post_message(&conv, &on_b)
        );
        posted.push((x.unwrap().seq, on_a));
        posted.push((y.unwrap().seq, on_b));
    }
    posted.sort();
    let last = posted.last().unwrap().0;
    let mut got = Vec::new();
    while got.last().is_none_or(|(seq, _)| *seq < last) {
        let m = next_push(&mut visitor).await;
        got.push((m.seq, m.content));
    }
    // Every reply once, in seq order (none passed over by a later one).
    assert_eq!(got, posted);
    drop((a, b));
    db.drop_db().await;
}

/// How long `slow_fill` holds back its messages' commit.
const HOLD: Duration = Duration::from_millis(400);

/// Stores `n` web-chat messages through `node` in one conversation, all but
/// the first committed only after `hold`: meanwhile a transaction of this
/// test holds the conversation's row lock, which the node's writer waits
/// for, so their ingest latency (receive → commit) is at least `hold`.
async fn slow_fill(db: &TestDb, node: &Node, widget_key: &str, n: usize, hold: Duration) {
    let mut v = eventually("the node admits the tenant", || async {
        WebchatClient::connect(&node.ws(), widget_key, "slow-visitor")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let (ack, _) = v.send_message("slow-0", None, "first", WAIT).await.unwrap();
    let sql = db.sql().await;
    sql.batch_execute("BEGIN").await.unwrap();
    sql.execute(
        "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
        &[&ack.conversation_id],
    )
    .await
    .unwrap();
    for i in 1..n {
        v.send(&ClientFrame::MsgSend {
            client_msg_id: format!("slow-{i}"),
            conversation_id: Some(ack.conversation_id.clone()),
            content: format!("held back {i}"),
            client_ts: None,
        })
        .await
        .unwrap();
    }
    eventually("the node's writer waits for the row lock", || async {
        let waiting: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if waiting > 0 {
            Ok(())
        } else {
            Err("no writer waiting".to_string())
        }
    })
    .await;
    // Not a wait for a condition: the length of the hold is the latency
    // this test gives the node's messages.
    tokio::time::sleep(hold).await;
    sql.batch_execute("COMMIT").await.unwrap();
    for _ in 1..n {
        match v.next(WAIT).await.unwrap() {
            ServerFrame::Ack(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Every node's published latency of the 10-second slots from `first_slot`
/// on, all channels merged: node → histogram (decoded here, independently
/// of the node's own merge).
async fn published_latency(
    sql: &tokio_postgres::Client,
    first_slot: i64,
) -> std::collections::BTreeMap<String, hdrhistogram::Histogram<u32>> {
    use hdrhistogram::serialization::Deserializer;
    let rows = sql
        .query(
            "SELECT node, histogram FROM node_latency WHERE ring = 0 AND slot >= $1",
            &[&first_slot],
        )
        .await
        .unwrap();
    let mut per_node = std::collections::BTreeMap::new();
    for r in rows {
        let node: String = r.get(0);
        let bytes: Vec<u8> = r.get(1);
        let h: hdrhistogram::Histogram<u32> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        per_node
            .entry(node)
            .or_insert_with(|| c24_chatcore::stats::latency_histogram().unwrap())
            .add(&h)
            .unwrap();
    }
    per_node
}

fn webchat_figures(
    per_channel: &[c24_api::admin::throughput::ChannelFigures],
) -> &c24_api::admin::throughput::ChannelFigures {
    per_channel.iter().find(|c| c.channel == "webchat").unwrap()
}

/// The latency percentiles of either node (throughput with and without a
/// tenant, the overview) are those of both nodes' histograms merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latency_of_either_node_merges_both_nodes_histograms() {
    let Some(db) = TestDb::create("latency_of_either_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    let a = start(&db, &kek, &dir.path().join("a"));
    let b = start(&db, &kek, &dir.path().join("b"));
    let t = tenant(&a, "Latency on both").await;
    let key = t.channels.webchat.widget_key.clone();
    // A: 20 messages committed as they come; B: 60, 59 of them held back.
    fill(&a, &key, "a", 1, 20).await;
    slow_fill(&db, &b, &key, 60, HOLD).await;

    let sql = db.sql().await;
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        let (want, per_node) = eventually("either node merges both nodes' latency", || async {
            let e = |e: ClientError| e.to_string();
            let platform = admin.throughput("60s", None).await.map_err(e)?;
            let of_tenant = admin.throughput("60s", Some(&t.id)).await.map_err(e)?;
            let live = admin.overview().await.map_err(e)?.live;
            // The 10-second slots the 60 s window is read from.
            let current_ms = platform.from_ms + 59 * platform.bucket_ms;
            let per_node = published_latency(&sql, current_ms.div_euclid(10_000) - 6).await;
            let mut all = c24_chatcore::stats::latency_histogram().unwrap();
            for h in per_node.values() {
                all.add(h).unwrap();
            }
            let want = c24_chatcore::stats::percentiles_of(&all);
            let got = [
                &platform.ingest_latency_us,
                &webchat_figures(&platform.per_channel).ingest_latency_us,
                &of_tenant.ingest_latency_us,
                &webchat_figures(&of_tenant.per_channel).ingest_latency_us,
                &live.ingest_latency_us,
                &webchat_figures(&live.per_channel).ingest_latency_us,
            ];
            let counts: Vec<u64> = per_node.values().map(|h| h.len()).collect();
            // The mean is a float: rounding aside (a value in another bucket
            // would move it by far more than this allows).
            let same = |g: &c24_api::admin::throughput::Percentiles| {
                (g.count, g.p50, g.p90, g.p99, g.p999, g.max)
                    == (
                        want.count, want.p50, want.p90, want.p99, want.p999, want.max,
                    )
                    && (g.mean - want.mean).abs() <= want.mean * 1e-9
            };
            if want.count == 80 && got.iter().all(|g| same(g)) {
                Ok((want, per_node))
            } else {
                Err(format!(
                    "{}: published {counts:?}, merged {want:?}, shown {got:?}",
                    node.url
                ))
            }
        })
        .await;
        // Each node published its own: 20 fast ones, 60 mostly slow ones.
        let mut own: Vec<&hdrhistogram::Histogram<u32>> = per_node.values().collect();
        own.sort_by_key(|h| h.len());
        let (fast, slow) = (own[0], own[1]);
        assert_eq!((fast.len(), slow.len()), (20, 60));
        let slow_p50 = slow.value_at_quantile(0.5);
        assert!(slow_p50 >= 300_000, "slow node's p50 {slow_p50} µs");
        // The merged percentiles are of every message: p99 is the slow
        // node's (never below its p50), p50 too (59 of the 80 were held).
        assert!(want.p99 >= slow_p50, "{want:?}");
        assert!(want.p50 >= 300_000, "{want:?}");
    }
    drop((a, b));
    db.drop_db().await;
}

/// One Prometheus sample: (name, labels, value).
type Sample = (String, Vec<(String, String)>, f64);

/// A Prometheus exposition's samples.
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        out.push((name.to_string(), labels, value.parse().unwrap_or(f64::NAN)));
    }
    out
}

/// One node's own figures, from its `/metrics`.
#[derive(Debug, PartialEq)]
struct OwnFigures {
    node: String,
    messages: u64,
    bytes: u64,
    errors: u64,
    /// (channel, code) → count.
    codes: std::collections::BTreeMap<(String, String), u64>,
}

async fn own_figures(node: &Node) -> Result<OwnFigures, String> {
    let text = Client::new(&node.url, TOKEN)
        .unwrap()
        .metrics()
        .await
        .map_err(|e| e.to_string())?;
    let samples = samples(&text);
    let sum = |name: &str| -> u64 {
        samples
            .iter()
            .filter(|s| s.0 == name)
            .map(|s| s.2 as u64)
            .sum()
    };
    let label = |labels: &[(String, String)], k: &str| {
        labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let info: Vec<_> = samples.iter().filter(|s| s.0 == "c24_node_info").collect();
    if info.len() != 1 || info[0].2 != 1.0 {
        return Err(format!("c24_node_info: {info:?}"));
    }
    let mut codes = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.0 == "c24_ingest_errors_total") {
        *codes
            .entry((label(&s.1, "channel"), label(&s.1, "code")))
            .or_default() += s.2 as u64;
    }
    Ok(OwnFigures {
        node: label(&info[0].1, "node"),
        messages: sum("c24_messages_total"),
        bytes: sum("c24_message_bytes_total"),
        errors: sum("c24_ingest_errors_total"),
        codes,
    })
}

/// The overview's error codes, as (channel, code) → count.
fn codes_of(
    live: &c24_api::admin::throughput::OverviewFigures,
) -> std::collections::BTreeMap<(String, String), u64> {
    live.error_codes
        .iter()
        .map(|c| ((c.channel.clone(), c.code.clone()), c.count))
        .collect()
}

/// Each node's published start: node id → started_at_ms.
async fn node_starts(db: &TestDb) -> std::collections::HashMap<String, i64> {
    db.sql()
        .await
        .query("SELECT node, started_at_ms FROM nodes", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The overview's totals since start and error codes on either node are
/// the sum over the live nodes, its active tenants their union, its start
/// the earliest node's; `/metrics` stays each node's own; a stopped node
/// drops out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totals_tenants_and_error_codes_of_either_node_sum_both_nodes() {
    let Some(db) = TestDb::create("totals_of_either_node").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kek = kek_file(dir.path());
    // A's clock can be moved on, to age B's heartbeat once B is gone.
    let mut cmd = command(&db, &kek, &dir.path().join("a"));
    cmd.arg("--dev-clock");
    let a = spawn_node(cmd);
    let mut b = start(&db, &kek, &dir.path().join("b"));
    let both = tenant(&a, "On both").await;
    let only_a = tenant(&a, "Only on A").await;
    let only_b = tenant(&a, "Only on B").await;
    // B knows the tenants before its visitors connect: a connection refused
    // meanwhile would count as an ingress error.
    let admin_b = Client::new(&b.url, TOKEN).unwrap();
    for t in [&both, &only_b] {
        eventually("B knows A's new tenant", || async {
            admin_b
                .tenant(&t.id)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    }
    // A: 10 + 5 messages, B: 15 + 7; three tenants active, "both" on each.
    fill(&a, &both.channels.webchat.widget_key, "a", 1, 10).await;
    fill(&b, &both.channels.webchat.widget_key, "b", 1, 15).await;
    fill(&a, &only_a.channels.webchat.widget_key, "x", 1, 5).await;
    fill(&b, &only_b.channels.webchat.widget_key, "y", 1, 7).await;
    // Refused web-chat connections: 2 on A, 3 on B.
    for (node, n) in [(&a, 2), (&b, 3)] {
        for i in 0..n {
            let r =
                WebchatClient::connect(&node.ws(), "no-such-widget-key", &format!("v{i}")).await;
            assert!(r.is_err(), "a bogus widget key was admitted");
        }
    }

    // `/metrics` stays each node's own (Prometheus sums the nodes), and
    // names the node.
    let mut own = Vec::new();
    for (node, messages, errors) in [(&a, 15, 2), (&b, 22, 3)] {
        own.push(
            eventually("a node's /metrics counts its own traffic", || async {
                let f = own_figures(node).await?;
                if (f.messages, f.errors) == (messages, errors) {
                    Ok(f)
                } else {
                    Err(format!("{}: {f:?}", node.url))
                }
            })
            .await,
        );
    }
    let (fa, fb) = (&own[0], &own[1]);
    assert_ne!(fa.node, fb.node);
    let starts = eventually("both nodes' heartbeats are published", || async {
        let s = node_starts(&db).await;
        if s.contains_key(&fa.node) && s.contains_key(&fb.node) && s.len() == 2 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    // A started first: the cluster's start is A's, also on B.
    assert!(starts[&fa.node] < starts[&fb.node], "{starts:?}");
    let started_at = c24_chatcore::clock::rfc3339(starts[&fa.node]);

    let mut codes = fa.codes.clone();
    for (k, n) in &fb.codes {
        *codes.entry(k.clone()).or_default() += n;
    }
    assert_eq!(codes.values().sum::<u64>(), 5);
    for node in [&a, &b] {
        let admin = Client::new(&node.url, TOKEN).unwrap();
        eventually("either node sums both nodes' totals", || async {
            let o = admin.overview().await.map_err(|e| e.to_string())?.live;
            let got = (
                o.nodes,
                o.messages_total,
                o.bytes_total,
                o.errors_total,
                codes_of(&o),
                o.active_tenants_last_60s,
                o.started_at.clone(),
            );
            let want = (
                2,
                37,
                fa.bytes + fb.bytes,
                5,
                codes.clone(),
                3,
                started_at.clone(),
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("{}: {got:?}, want {want:?}", node.url))
            }
        })
        .await;
    }

    // B stops; once its heartbeat is older than 10 s (A's clock moved on),
    // the totals are A's alone again.
    kill(&mut b);
    let admin_a = Client::new(&a.url, TOKEN).unwrap();
    admin_a.advance_clock(11).await.unwrap();
    eventually("a stopped node drops out of the totals", || async {
        let o = admin_a.overview().await.map_err(|e| e.to_string())?.live;
        let got = (
            o.nodes,
            o.messages_total,
            o.bytes_total,
            o.errors_total,
            codes_of(&o),
            o.started_at.clone(),
        );
        let want = (1, 15, fa.bytes, 2, fa.codes.clone(), started_at.clone());
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    })
    .await;
    drop((a, b));
    db.drop_db().await;
}

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

#[path = "support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::admin::throughput::Direction;
use c24_api::client::webchat::WebchatClient;
use c24_api::client::{Client, ClientError};
use c24_api::webchat::{ClientFrame, ServerFrame};
use pg::TestDb;

const TOKEN: &str = "pg-nodes-admin";
const WAIT: Duration = Duration::from_secs(10);

struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn ws(&self) -> String {
        self.url.replacen("http", "ws", 1)
    }
}

/// A KEK file shared by the nodes (each opens the others' tenants with it).
fn kek_file(dir: &Path) -> PathBuf {
    let (_, text) = c24_chatcore::crypto::Kek::generate().unwrap();
    let path = dir.join("kek.b64");
    std::fs::write(&path, text).unwrap();
    path
}

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

/// Retries `f` until it succeeds, up to a deadline (another node learns of
/// a change through an asynchronous notification).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: still {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
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

fn spawn_node(mut cmd: Command) -> Node {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("c24-core listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Node { child, url }
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

//! A node whose database goes away and comes back: through a TCP proxy
//! the test can cut (every open connection dropped, new ones refused), as a
//! PostgreSQL restart or a network partition looks to the node.
//! - `/readyz` turns 503 while the database is unreachable (a load balancer
//!   stops sending traffic) and 200 again once it is back;
//! - a message sent during the outage is not acknowledged until it is
//!   committed, and is stored exactly once after the database returns;
//! - the node serves reads and writes again without a restart.
//!
//! Skipped with a message without a server (see `support/pg.rs`).

#[path = "support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_api::client::webchat::WebchatClient;
use c24_chatcore::{Config, Database};
use pg::TestDb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

/// Forwards 127.0.0.1:port to the database server until cut.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn to(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, links) = (up.clone(), links.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().await.push(link);
                }
            }
        });
        Proxy {
            addr,
            up,
            links,
            _accept: accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> (String, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let at = url[scheme_end..]
        .find('@')
        .map(|i| scheme_end + i + 1)
        .unwrap_or(scheme_end);
    let host_end = at + url[at..].find('/').unwrap();
    let upstream = url[at..host_end].to_string();
    (
        format!("{}{addr}{}", &url[..at], &url[host_end..]),
        upstream,
    )
}

async fn readyz(http: &reqwest::Client, base: &str) -> u16 {
    match http
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn until_ready_is(http: &reqwest::Client, base: &str, want: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = readyz(http, base).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_turns_readiness_off_and_loses_no_message() {
    let Some(db) = TestDb::create("database_outage").await else {
        return;
    };
    let (direct, upstream) = via(&db.url, "127.0.0.1:1".parse().unwrap());
    drop(direct);
    let proxy = Proxy::to(upstream).await;
    let (url, _) = via(&db.url, proxy.addr);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::embedded(dir.path());
    cfg.admin_token = Some("outage-admin".into());
    cfg.database = Database::Postgres { url };
    let core = c24_chatcore::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    let base = core.url();
    let admin = Client::new(&base, core.admin_token()).unwrap();
    let t = admin
        .create_tenant(&CreateTenant {
            name: "Outage".into(),
            dpa_signed: true,
        })
        .await
        .unwrap();
    assert_eq!(readyz(&http, &base).await, 200);
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v")
        .await
        .unwrap();
    let (first, _) = v.send_message("k1", None, "before", WAIT).await.unwrap();

    proxy.cut().await;
    until_ready_is(&http, &base, 503).await;
    // Sent while the database is away: no ack yet (an ack means committed).
    let during = v
        .send_message(
            "k2",
            Some(&first.conversation_id),
            "during",
            Duration::from_millis(1500),
        )
        .await;
    assert!(
        during.is_err(),
        "acknowledged without a database: {during:?}"
    );

    proxy.restore();
    until_ready_is(&http, &base, 200).await;
    // The resend (same client id) gets the one commit's ack, however the
    // first attempt ended.
    let deadline = Instant::now() + WAIT;
    let again = loop {
        match v
            .send_message("k2", Some(&first.conversation_id), "during", WAIT)
            .await
        {
            Ok((ack, _)) => break ack,
            Err(e) => {
                assert!(Instant::now() < deadline, "no ack after the outage: {e}");
                v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v")
                    .await
                    .unwrap();
            }
        }
    };
    assert_eq!(again.seq, 2);
    let (third, _) = v
        .send_message("k3", Some(&first.conversation_id), "after", WAIT)
        .await
        .unwrap();
    assert_eq!(third.seq, 3);
    let tenant = Client::new(&base, &t.api_key).unwrap();
    let msgs = tenant
        .messages(&first.conversation_id, 10, None)
        .await
        .unwrap();
    let texts: Vec<&str> = msgs.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["before", "during", "after"]);
    v.close().await;
    core.shutdown().await;
    db.drop_db().await;
}

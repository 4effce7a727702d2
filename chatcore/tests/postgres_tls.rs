//! The chat core's connections to PostgreSQL over TLS (the privacy policy:
//! data in transit over TLS 1.2+). With `sslmode=require` and the server's
//! CA (`--database-ca-file`) every connection a node opens — its pools and
//! its LISTEN connection — is TLS, as the server itself reports
//! (`pg_stat_ssl`); without the CA the certificate is refused and the node
//! does not start; a plain connection to another machine is refused before
//! anything is sent (unit tests in `store::postgres::transport`).
//!
//! Needs `C24_TEST_POSTGRES_CA` (the server's certificate; `.ci/postgres`
//! writes it, `.ci/run` sets it); skipped with a message without it.

#[path = "support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::path::PathBuf;

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_api::client::webchat::WebchatClient;
use c24_chatcore::{Config, Database};
use pg::TestDb;

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The server's CA file, or why the test is skipped.
fn ca_file() -> Option<PathBuf> {
    let required = std::env::var("C24_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1");
    match std::env::var("C24_TEST_POSTGRES_CA") {
        Ok(p) if std::path::Path::new(&p).is_file() => Some(PathBuf::from(p)),
        other => {
            assert!(
                !required,
                "C24_TEST_POSTGRES_CA ({other:?}) names no file but C24_TEST_POSTGRES_REQUIRED=1"
            );
            eprintln!(
                "SKIPPED PostgreSQL TLS: C24_TEST_POSTGRES_CA is not set (.ci/postgres writes the certificate)"
            );
            None
        }
    }
}

fn with_sslmode(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=require")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_of_a_node_is_tls_with_sslmode_require() {
    let Some(ca) = ca_file() else { return };
    let Some(db) = TestDb::create("postgres_tls").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::embedded(dir.path());
    cfg.admin_token = Some("tls-admin".into());
    cfg.database = Database::Postgres {
        url: with_sslmode(&db.url),
    };
    cfg.database_ca_files = vec![ca];
    let core = c24_chatcore::start(cfg).await.unwrap();
    let admin = Client::new(&core.url(), core.admin_token()).unwrap();
    let t = admin
        .create_tenant(&CreateTenant {
            name: "Sealed in transit".into(),
            dpa_signed: true,
        })
        .await
        .unwrap();
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v")
        .await
        .unwrap();
    let (ack, _) = v.send_message("k1", None, "over TLS", WAIT).await.unwrap();
    v.close().await;
    let read = Client::new(&core.url(), &t.api_key)
        .unwrap()
        .messages(&ack.conversation_id, 10, None)
        .await
        .unwrap();
    assert_eq!(read.items[0].content, "over TLS");

    // The server's view of the node's connections (pools and listener).
    let sql = db.sql().await;
    let rows = sql
        .query(
            "SELECT a.application_name, s.ssl, coalesce(s.version, '')
             FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
             WHERE a.datname = current_database() AND a.application_name LIKE 'c24-%'",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(names.iter().any(|n| n == "c24-core"), "{names:?}");
    assert!(names.iter().any(|n| n == "c24-listen"), "{names:?}");
    for r in &rows {
        let (name, ssl, version): (String, bool, String) = (r.get(0), r.get(1), r.get(2));
        assert!(ssl, "{name} connected in plaintext");
        assert!(
            version == "TLSv1.2" || version == "TLSv1.3",
            "{name}: {version}"
        );
    }
    core.shutdown().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_stops_the_start() {
    let Some(_) = ca_file() else { return };
    let Some(db) = TestDb::create("postgres_tls_untrusted").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::embedded(dir.path());
    cfg.database = Database::Postgres {
        url: with_sslmode(&db.url),
    };
    let err = match c24_chatcore::start(cfg).await {
        Ok(_) => panic!("started trusting a self-signed certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.to_lowercase().contains("certificate"),
        "the error should name the certificate: {err}"
    );
    assert!(!err.contains(":c24@"), "password shown: {err}");
    db.drop_db().await;
}

//! A fresh PostgreSQL database per test, on the server `C24_TEST_POSTGRES_URL`
//! names (`.ci/postgres` starts one). Without it, or without a reachable
//! server, `TestDb::create` prints why and gives `None` (the test passes
//! having checked nothing), unless `C24_TEST_POSTGRES_REQUIRED=1` (CI)
//! makes that a failure.

pub const PG_ENV: &str = "C24_TEST_POSTGRES_URL";

pub struct TestDb {
    pub admin_url: String,
    pub db: String,
    /// The URL of the fresh database.
    pub url: String,
}

impl TestDb {
    pub async fn create(test: &str) -> Option<Self> {
        let required = std::env::var("C24_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1");
        let Ok(admin_url) = std::env::var(PG_ENV) else {
            assert!(
                !required,
                "{PG_ENV} is not set but C24_TEST_POSTGRES_REQUIRED=1"
            );
            eprintln!(
                "SKIPPED {test} on PostgreSQL: {PG_ENV} is not set (.ci/postgres starts a server)"
            );
            return None;
        };
        let admin = match tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
            }
            Err(e) => {
                assert!(!required, "PostgreSQL at {PG_ENV} unreachable: {e}");
                eprintln!("SKIPPED {test} on PostgreSQL: none reachable at {PG_ENV}: {e}");
                return None;
            }
        };
        let short: String = test.chars().take(30).collect();
        let db = format!(
            "c24t_{short}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin
            .batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .await
            .unwrap();
        let url = with_database(&admin_url, &db);
        Some(TestDb { admin_url, db, url })
    }

    /// A direct connection to the test database.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// Drops the database (a failed test leaves it for inspection). Best
    /// effort: a server process still in it (autovacuum) is waited for
    /// briefly, then the database is left and named.
    pub async fn drop_db(&self) {
        let (admin, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db);
        let mut last = None;
        for _ in 0..20 {
            match admin.batch_execute(&sql).await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        eprintln!("left test database {} behind: {last:?}", self.db);
    }
}

/// The URL with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

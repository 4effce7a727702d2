//! Versioned schema migrations, run at start.
//!
//! Each migration is one SQL file under `migrations/`, numbered. They run in
//! one transaction that first takes a transaction-scoped advisory lock, so
//! two nodes starting at once apply them once (the second waits, then finds
//! them recorded). `schema_migrations` records what ran. A database whose
//! newest recorded version is above the newest this binary knows is refused:
//! an older binary must not write to a schema it does not understand.

use tokio_postgres::Client;

use crate::store::StoreError;

/// (version, name, SQL), ascending.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "node_seconds",
        include_str!("migrations/0002_node_seconds.sql"),
    ),
    (
        3,
        "traffic_trace",
        include_str!("migrations/0003_traffic_trace.sql"),
    ),
    (
        4,
        "node_tenant_seconds",
        include_str!("migrations/0004_node_tenant_seconds.sql"),
    ),
    (
        5,
        "node_latency_and_nodes",
        include_str!("migrations/0005_node_latency_and_nodes.sql"),
    ),
    (6, "versions", include_str!("migrations/0006_versions.sql")),
    (
        7,
        "totp_steps",
        include_str!("migrations/0007_totp_steps.sql"),
    ),
];

/// The newest schema version this binary knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Key of the advisory lock that serialises migrations ("c24mig").
const LOCK_KEY: i64 = 0x6332_346d_6967;

/// Brings the schema up to date, then checks (or records, on a fresh
/// database) the at-rest encryption mode, all in one transaction.
/// Returns the versions applied now.
pub async fn run(client: &mut Client, at_rest_encryption: bool) -> Result<Vec<i64>, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     bigint PRIMARY KEY,
             name        text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = latest();
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Io(format!(
                "schema migration {version:04}_{name} failed: {}",
                describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    check_meta(&tx, at_rest_encryption).await?;
    tx.commit().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied PostgreSQL schema migrations");
    }
    Ok(applied)
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Records the encryption mode on first start; refuses a mismatch later.
async fn check_meta(
    tx: &tokio_postgres::Transaction<'_>,
    at_rest_encryption: bool,
) -> Result<(), StoreError> {
    let asked = on_off(at_rest_encryption);
    let stored: Option<String> = tx
        .query_opt(
            "SELECT value FROM meta WHERE key = 'at_rest_encryption'",
            &[],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match stored.as_deref() {
        None => {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('at_rest_encryption', $1)",
                &[&asked],
            )
            .await?;
            Ok(())
        }
        Some(s) if s == asked => Ok(()),
        Some(s) => Err(StoreError::EncryptionMismatch {
            stored: if s == "on" { "on" } else { "off" },
            asked,
        }),
    }
}

/// The server's message, code (and detail) of a database error; else the
/// client's own text ("db error" alone says nothing).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} [{}] ({d})", db.message(), db.code().code()),
            None => format!("{} [{}]", db.message(), db.code().code()),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

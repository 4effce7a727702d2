//! Which database the cores of an end-to-end test use. Every test in
//! `tests/tests/` is written once and run twice by [`crate::both!`]: on
//! SQLite in the core's data dir, and on a fresh PostgreSQL database of the
//! server `C24_TEST_POSTGRES_URL` names (`.ci/postgres` starts one). Without
//! a server the PostgreSQL half prints `SKIPPED …` and passes having checked
//! nothing, unless `C24_TEST_POSTGRES_REQUIRED=1` (CI) makes that a failure.
//!
//! The choice travels in a task-local, so `Core::start*` picks it up without
//! every test passing it along; each core started in a PostgreSQL run gets
//! its own database (as each SQLite core gets its own dir), remembered in its
//! data dir so a restart on that dir finds the same data.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[path = "../../chatcore/tests/support/pg.rs"]
mod pg;
pub use pg::TestDb;

/// The file in a core's data dir naming its PostgreSQL database.
const DATABASE_FILE: &str = ".c24-test-database";

tokio::task_local! {
    static BACKEND: Backend;
}

/// The database a test's cores run on.
#[derive(Clone)]
pub enum Backend {
    Sqlite,
    Postgres(Arc<PgRun>),
}

/// One test's PostgreSQL databases: the first made up front (to find out
/// whether a server is there at all), the rest as cores start.
pub struct PgRun {
    test: &'static str,
    spare: Mutex<Option<TestDb>>,
    made: Mutex<Vec<TestDb>>,
}

/// What a skipped test returns.
pub trait Skipped {
    fn skipped() -> Self;
}

impl Skipped for () {
    fn skipped() -> Self {}
}

impl<E> Skipped for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

/// The backend of the running test (SQLite outside [`both!`](crate::both)).
pub fn current() -> Backend {
    BACKEND.try_with(Backend::clone).unwrap_or(Backend::Sqlite)
}

/// Runs a test body with its cores on SQLite.
pub async fn on_sqlite<F: Future>(body: F) -> F::Output {
    BACKEND.scope(Backend::Sqlite, body).await
}

/// Runs a test body with its cores on PostgreSQL, or skips it visibly.
/// The databases are dropped after a passing run (a failed one leaves them
/// for inspection).
pub async fn on_postgres<F>(test: &'static str, body: F) -> F::Output
where
    F: Future,
    F::Output: Skipped,
{
    let Some(first) = TestDb::create(test).await else {
        return F::Output::skipped();
    };
    let run = Arc::new(PgRun {
        test,
        spare: Mutex::new(Some(first)),
        made: Mutex::new(Vec::new()),
    });
    let out = BACKEND.scope(Backend::Postgres(run.clone()), body).await;
    let made: Vec<TestDb> = run
        .made
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    for db in made {
        db.drop_db().await;
    }
    if let Some(spare) = run.spare.lock().ok().and_then(|mut s| s.take()) {
        spare.drop_db().await;
    }
    out
}

/// The PostgreSQL URL for a core in `dir`: the one it had (a restart), or
/// a fresh database when the test runs on PostgreSQL; `None` for SQLite.
pub(crate) async fn database_for(dir: &Path) -> anyhow::Result<Option<String>> {
    let file = dir.join(DATABASE_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Ok(Some(url));
    }
    let Backend::Postgres(run) = current() else {
        return Ok(None);
    };
    let spare = run.spare.lock().ok().and_then(|mut s| s.take());
    let db = match spare {
        Some(db) => db,
        None => TestDb::create(run.test)
            .await
            .ok_or_else(|| anyhow::anyhow!("PostgreSQL went away during {}", run.test))?,
    };
    std::fs::write(&file, &db.url)?;
    let url = db.url.clone();
    if let Ok(mut made) = run.made.lock() {
        made.push(db);
    }
    Ok(Some(url))
}

/// The PostgreSQL URL a core in `dir` was started on, if any.
pub fn database_of(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(DATABASE_FILE)).ok()
}

/// A direct connection to a test database.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Where `needle` occurs in the live rows of the database at `url`: every
/// text, jsonb and bytea column of every table (the chat core's own schema
/// and the keyring's), as `schema.table.column (n rows)`.
pub async fn rows_containing(url: &str, needle: &[u8]) -> anyhow::Result<Vec<String>> {
    let sql = connect(url).await?;
    let columns = sql
        .query(
            "SELECT table_schema, table_name, column_name, data_type
             FROM information_schema.columns
             WHERE table_schema IN ('public', 'keyring')
               AND data_type IN ('text', 'bytea', 'jsonb', 'character varying')",
            &[],
        )
        .await?;
    anyhow::ensure!(!columns.is_empty(), "no columns to search at {url}");
    let mut hits = Vec::new();
    for c in &columns {
        let (schema, table, column, ty): (String, String, String, String) =
            (c.get(0), c.get(1), c.get(2), c.get(3));
        let value = if ty == "bytea" {
            format!("\"{column}\"")
        } else {
            format!("convert_to(\"{column}\"::text, 'UTF8')")
        };
        let n: i64 = sql
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE position($1::bytea in {value}) > 0"
                ),
                &[&needle],
            )
            .await?
            .get(0);
        if n > 0 {
            hits.push(format!("{schema}.{table}.{column} ({n} rows)"));
        }
    }
    Ok(hits)
}

/// Runs one test body on both backends: `both! { async fn name() … }` makes
/// the tests `name::sqlite` and `name::postgres` (see the module doc).
#[macro_export]
macro_rules! both {
    ($(#[$meta:meta])* async fn $name:ident() $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $(-> $ret)? $body

            #[tokio::test]
            async fn sqlite() $(-> $ret)? {
                $crate::backend::on_sqlite(body()).await
            }

            #[tokio::test]
            async fn postgres() $(-> $ret)? {
                $crate::backend::on_postgres(stringify!($name), body()).await
            }
        }
    };
}

//! Reading (and, to provoke failures, damaging) a core's stored rows
//! directly, on either backend: the tests that check what is at rest — a
//! person's blobs gone after an erasure, a wrapped key gone after its
//! destruction — write their SQL once, with `?1` placeholders, and this
//! runs it on the core's SQLite file or its PostgreSQL database.

use crate::Core;

/// One query argument.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// A direct connection to a core's store.
pub enum Inspector {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

/// Which of the core's databases: the data, or the key ring (on SQLite its
/// own file; on PostgreSQL the `keyring` schema of the same database).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Data,
    Keyring,
}

impl Inspector {
    /// Opens the core's store (SQLite read-write so a test can damage a row).
    pub async fn open(core: &Core, part: Part) -> anyhow::Result<Self> {
        if let Some(url) = core.database_url() {
            let client = crate::backend::connect(&url).await?;
            if part == Part::Keyring {
                client.batch_execute("SET search_path TO keyring").await?;
            }
            return Ok(Inspector::Postgres(client));
        }
        let file = match part {
            Part::Data => "c24.sqlite",
            Part::Keyring => "keyring.sqlite",
        };
        let db = rusqlite::Connection::open(core.data_dir().join(file))?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Inspector::Sqlite(db))
    }

    /// The rows of `sql` (every column a nullable byte string).
    pub async fn rows(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> anyhow::Result<Vec<Vec<Option<Vec<u8>>>>> {
        match self {
            Inspector::Sqlite(db) => {
                let mut stmt = db.prepare(sql)?;
                let n = stmt.column_count();
                let params = sqlite_params(args);
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n).map(|i| r.get::<_, Option<Vec<u8>>>(i)).collect()
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Inspector::Postgres(client) => {
                let params = pg_params(args);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref()).collect();
                let rows = client.query(&pg_sql(sql), &refs).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<Vec<u8>>>(i))
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The first column of `sql`'s only row, a count.
    pub async fn count(&self, sql: &str, args: &[Arg<'_>]) -> anyhow::Result<i64> {
        match self {
            Inspector::Sqlite(db) => {
                let params = sqlite_params(args);
                Ok(
                    db.query_row(sql, rusqlite::params_from_iter(params.iter()), |r| {
                        r.get::<_, i64>(0)
                    })?,
                )
            }
            Inspector::Postgres(client) => {
                let params = pg_params(args);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref()).collect();
                Ok(client
                    .query_one(&pg_sql(sql), &refs)
                    .await?
                    .get::<_, i64>(0))
            }
        }
    }

    /// Runs a statement: the rows it changed.
    pub async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> anyhow::Result<u64> {
        match self {
            Inspector::Sqlite(db) => {
                let params = sqlite_params(args);
                Ok(db.execute(sql, rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Inspector::Postgres(client) => {
                let params = pg_params(args);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref()).collect();
                Ok(client.execute(&pg_sql(sql), &refs).await?)
            }
        }
    }
}

fn sqlite_params(args: &[Arg<'_>]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => rusqlite::types::Value::Text((*s).to_string()),
            Arg::Bytes(b) => rusqlite::types::Value::Blob(b.to_vec()),
        })
        .collect()
}

fn pg_params(args: &[Arg<'_>]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> {
    args.iter()
        .map(|a| -> Box<dyn tokio_postgres::types::ToSql + Sync> {
            match a {
                Arg::Text(s) => Box::new((*s).to_string()),
                Arg::Bytes(b) => Box::new(b.to_vec()),
            }
        })
        .collect()
}

/// `?1` placeholders as PostgreSQL's `$1`.
fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            super::pg_sql("SELECT a FROM t WHERE x = ?1 OR y = ?12 AND z = '?'"),
            "SELECT a FROM t WHERE x = $1 OR y = $12 AND z = '?'"
        );
    }
}

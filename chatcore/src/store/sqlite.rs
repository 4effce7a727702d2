//! The embedded SQLite backend: one WAL database in the data dir, a
//! group-commit writer thread, and a small pool of read-only connections
//! (WAL lets them read while the writer commits).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::writer::{self, Job};
use super::{
    AuditRecord, ConsentCounts, ConsentRecord, ContactRecord, ConversationRecord, DsrRecord,
    DueCounts, IncidentRecord, MessageRecord, PendingWrite, PurgeTable, Store, StoreError,
    TenantRecord, TraceBatch, TraceCursor, WriteOp,
};
use crate::clock::{Clock, Millis};

const SCHEMA: &str = include_str!("schema.sql");
const KEYRING_SCHEMA: &str = include_str!("keyring.sql");
/// The keyring database file inside the data dir (tenant data keys).
pub const KEYRING_FILE: &str = "keyring.sqlite";
const SCHEMA_VERSION: &str = "1";
const READERS: usize = 4;
/// The database file inside the data dir.
pub const DB_FILE: &str = "c24.sqlite";
/// Exists in the data dir while a WAL truncation after an erasure or a key
/// destruction is owed (see `WalGate`); found at start, it is retried.
pub const WAL_TRUNCATION_MARKER: &str = "wal-truncation-owed";

pub struct SqliteStore {
    path: PathBuf,
    sender: Mutex<Option<tokio::sync::mpsc::Sender<Job>>>,
    writer_running: Arc<std::sync::atomic::AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    checkpointer: Mutex<Option<Checkpointer>>,
    wal: Arc<writer::WalGate>,
}

/// Checkpoints the WAL from its own connection and thread, so the writer's
/// COMMIT never stalls on it (the writer has automatic checkpoints off).
struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

fn spawn_checkpointer(
    path: &Path,
    keyring: &Path,
    wal: Arc<writer::WalGate>,
) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    attach_keyring(&conn, keyring)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("c24-checkpoint".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(CHECKPOINT_EVERY);
                // Never at the same time as the writer's truncation (see WalGate).
                wal.checkpoint(&conn);
            }
        })
        .map_err(|e| StoreError::Io(format!("starting checkpointer: {e}")))?;
    Ok(Checkpointer { stop, thread })
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, recording
    /// the traffic trace.
    pub fn open(
        data_dir: &Path,
        at_rest_encryption: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::open_with(data_dir, at_rest_encryption, clock, true)
    }

    /// [`Self::open`], with the traffic trace on or off (`traffic_trace`:
    /// each stored message also writes its trace row in the same commit).
    pub fn open_with(
        data_dir: &Path,
        at_rest_encryption: bool,
        clock: Arc<dyn Clock>,
        traffic_trace: bool,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Io(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let keyring = data_dir.join(KEYRING_FILE);
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;",
        )?;
        attach_keyring(&conn, &keyring)?;
        conn.execute_batch(
            "PRAGMA keyring.journal_mode = WAL;
             PRAGMA keyring.synchronous = FULL;
             PRAGMA keyring.secure_delete = ON;",
        )?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
        conn.execute_batch(KEYRING_SCHEMA)?;
        check_meta(&conn, at_rest_encryption)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.execute_batch("PRAGMA busy_timeout = 5000;")?;
            attach_keyring(&r, &keyring)?;
            r.execute_batch("PRAGMA query_only = ON;")?;
            readers.push(Arc::new(Mutex::new(r)));
        }
        conn.execute_batch(writer::WRITER_PRAGMAS)?;
        let wal = Arc::new(writer::WalGate::new(Some(
            data_dir.join(WAL_TRUNCATION_MARKER),
        )));
        if wal.pending()
            && let Err(e) = wal.truncate(&conn, writer::WRITER_TRUNCATE_WAIT)
        {
            tracing::warn!(error = %e, "owed WAL truncation not possible at start; the checkpointer retries it");
        }
        let checkpointer = spawn_checkpointer(&path, &keyring, wal.clone())?;
        let handle = writer::spawn(conn, clock, traffic_trace, wal.clone())
            .map_err(|e| StoreError::Io(format!("starting writer: {e}")))?;
        Ok(Self {
            path,
            sender: Mutex::new(Some(handle.tx)),
            writer_running: handle.running,
            thread: Mutex::new(Some(handle.thread)),
            readers,
            next_reader: AtomicUsize::new(0),
            checkpointer: Mutex::new(Some(checkpointer)),
            wal,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a pooled connection off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| StoreError::Io("reader lock poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Io(format!("read task: {e}")))?
    }
}

/// [`Store::due_counts`] of the traffic trace, in messages (a row holds a
/// commit's worth); its total is kept in memory.
fn trace_due_counts(c: &Connection, now: Millis) -> Result<DueCounts, StoreError> {
    let (overdue, due_24h, due_7d, oldest_overdue) = c
        .prepare_cached(
            "SELECT coalesce(sum(count) FILTER (WHERE purge_after <= ?1), 0),
                    coalesce(sum(count) FILTER (WHERE purge_after > ?1
                        AND purge_after <= ?1 + 86400000), 0),
                    coalesce(sum(count) FILTER (WHERE purge_after > ?1
                        AND purge_after <= ?1 + 604800000), 0),
                    min(purge_after) FILTER (WHERE purge_after <= ?1)
             FROM traffic_trace WHERE purge_after <= ?1 + 604800000",
        )?
        .query_row(params![now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    Ok(DueCounts {
        records: 0,
        bytes: 0,
        overdue,
        due_24h,
        due_7d,
        oldest_overdue,
    })
}

fn attach_keyring(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let p = path
        .to_str()
        .ok_or_else(|| StoreError::Io(format!("{} is not valid UTF-8", path.display())))?;
    conn.execute("ATTACH DATABASE ?1 AS keyring", params![p])?;
    Ok(())
}

/// Records the encryption mode on first open; refuses a mismatch later.
/// Columns added to tables after their first release: (table, column,
/// definition). `CREATE TABLE IF NOT EXISTS` leaves an existing file's
/// tables as they were, so these are added at open when missing.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Optimistic concurrency of read-modify-write documents (see
    // `IncidentRecord::version`); PostgreSQL migration 0010.
    ("dsr_requests", "version", "INTEGER NOT NULL DEFAULT 1"),
    ("consent_records", "version", "INTEGER NOT NULL DEFAULT 1"),
    (
        "security_incidents",
        "version",
        "INTEGER NOT NULL DEFAULT 1",
    ),
];

fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

fn check_meta(conn: &Connection, at_rest_encryption: bool) -> Result<(), StoreError> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'at_rest_encryption'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let asked = on_off(at_rest_encryption);
    match stored.as_deref() {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('at_rest_encryption', ?1), ('schema_version', ?2)",
                params![asked, SCHEMA_VERSION],
            )?;
            Ok(())
        }
        Some(s) if s == asked => Ok(()),
        Some(s) => Err(StoreError::EncryptionMismatch {
            stored: if s == "on" { "on" } else { "off" },
            asked,
        }),
    }
}

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        channel: r.get(2)?,
        contact_id: r.get(3)?,
        contact_bi: r.get(4)?,
        created_at: r.get(5)?,
        last_activity_at: r.get(6)?,
        message_count: r.get(7)?,
    })
}

const DSR_COLUMNS: &str = "id, tenant_id, kind, subject_kind, subject_bi, status, received_at,
    due_at, doc, purge_after, version FROM dsr_requests";

fn dsr_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DsrRecord> {
    Ok(DsrRecord {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        kind: r.get(2)?,
        subject_kind: r.get(3)?,
        subject_bi: r.get(4)?,
        status: r.get(5)?,
        received_at: r.get(6)?,
        due_at: r.get(7)?,
        doc: r.get(8)?,
        purge_after: r.get(9)?,
        version: r.get(10)?,
    })
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRecord> {
    Ok(IncidentRecord {
        id: r.get(0)?,
        aware_at: r.get(1)?,
        doc: r.get(2)?,
        purge_after: r.get(3)?,
        version: r.get(4)?,
    })
}

const CONSENT_COLUMNS: &str =
    "id, tenant_id, subject_kind, subject_bi, doc, purge_after, version FROM consent_records";

fn consent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentRecord> {
    Ok(ConsentRecord {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        subject_kind: r.get(2)?,
        subject_bi: r.get(3)?,
        doc: r.get(4)?,
        purge_after: r.get(5)?,
        version: r.get(6)?,
    })
}

const CONVERSATION_COLUMNS: &str = "c.id, c.tenant_id, c.channel, c.contact_id, k.ident_bi,
    c.created_at, c.last_activity_at, c.message_count
    FROM conversations c JOIN contacts k ON k.id = c.contact_id";

#[async_trait]
impl Store for SqliteStore {
    async fn submit(&self, op: WriteOp) -> Result<PendingWrite, StoreError> {
        let sender = self
            .sender
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        let (tx, rx) = oneshot::channel();
        sender
            .send((op, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    async fn load_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT t.id, t.name, t.status, t.dpa_signed_at, t.created_at, t.api_key_hash,
                        t.widget_key_hash, t.phone_number_id, t.email_address, t.secrets,
                        k.wrapped_dek, k.destroyed_at, t.terminated_at, t.purge_after
                 FROM tenants t LEFT JOIN keyring.tenant_keys k ON k.tenant_id = t.id
                 ORDER BY t.id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TenantRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        status: r.get(2)?,
                        dpa_signed_at: r.get(3)?,
                        created_at: r.get(4)?,
                        api_key_hash: r.get(5)?,
                        widget_key_hash: r.get(6)?,
                        phone_number_id: r.get(7)?,
                        email_address: r.get(8)?,
                        secrets: r.get(9)?,
                        wrapped_dek: r.get(10)?,
                        key_destroyed_at: r.get(11)?,
                        terminated_at: r.get(12)?,
                        purge_after: r.get(13)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn conversations(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {CONVERSATION_COLUMNS}
                 WHERE c.tenant_id = ?1 AND (?2 IS NULL OR c.id < ?2)
                 ORDER BY c.id DESC LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![tenant_id, before_id, limit], conversation_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let sql = format!("SELECT {CONVERSATION_COLUMNS} WHERE c.id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row(params![id], conversation_row)
                .optional()?)
        })
        .await
    }

    async fn messages(
        &self,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let conversation_id = conversation_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, conversation_id, seq, direction, body_ct, subject_ct, received_at
                 FROM messages WHERE conversation_id = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![conversation_id, after_seq, limit], |r| {
                    Ok(MessageRecord {
                        id: r.get(0)?,
                        conversation_id: r.get(1)?,
                        seq: r.get(2)?,
                        direction: r.get(3)?,
                        body_ct: r.get(4)?,
                        subject_ct: r.get(5)?,
                        received_at: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, actor, role, action, target, status, outcome, purge_after
                 FROM audit_log WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![before, limit], |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        role: r.get(3)?,
                        action: r.get(4)?,
                        target: r.get(5)?,
                        status: r.get(6)?,
                        outcome: r.get(7)?,
                        purge_after: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn due_counts(
        &self,
        table: PurgeTable,
        now: Millis,
        totals: bool,
    ) -> Result<DueCounts, StoreError> {
        self.read(move |c| {
            let name = table.name();
            if table == PurgeTable::TrafficTrace {
                return trace_due_counts(c, now);
            }
            let (records, bytes): (i64, i64) = if totals {
                c.prepare_cached(&format!("SELECT count(*) FROM {name}"))?
                    .query_row([], |r| Ok((r.get(0)?, 0)))?
            } else {
                (0, 0)
            };
            // Served by the partial purge_after indexes.
            let sql = format!(
                "SELECT count(*) FILTER (WHERE purge_after <= ?1),
                        count(*) FILTER (WHERE purge_after > ?1 AND purge_after <= ?1 + 86400000),
                        count(*) FILTER (WHERE purge_after > ?1 AND purge_after <= ?1 + 604800000),
                        min(purge_after) FILTER (WHERE purge_after <= ?1)
                 FROM {name} WHERE purge_after IS NOT NULL AND purge_after <= ?1 + 604800000"
            );
            let (overdue, due_24h, due_7d, oldest_overdue) =
                c.prepare_cached(&sql)?.query_row(params![now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
            Ok(DueCounts {
                records,
                bytes,
                overdue,
                due_24h,
                due_7d,
                oldest_overdue,
            })
        })
        .await
    }

    async fn usage(&self) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        self.read(|c| {
            let mut out: std::collections::HashMap<String, (i64, i64, i64)> = Default::default();
            let mut stmt = c.prepare(
                "SELECT tenant_id, count(*), coalesce(sum(size), 0) FROM messages GROUP BY tenant_id",
            )?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let e = out.entry(r.get(0)?).or_default();
                e.0 = r.get(1)?;
                e.1 = r.get(2)?;
            }
            let mut stmt =
                c.prepare("SELECT tenant_id, count(*) FROM conversations GROUP BY tenant_id")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                out.entry(r.get(0)?).or_default().2 = r.get(1)?;
            }
            Ok(out.into_iter().map(|(t, (m, b, cv))| (t, m, b, cv)).collect())
        })
        .await
    }

    async fn tenant_has_data(&self, tenant_id: &str) -> Result<bool, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = ?1)
                     OR EXISTS (SELECT 1 FROM contacts WHERE tenant_id = ?1)
                     OR EXISTS (SELECT 1 FROM email_threads WHERE tenant_id = ?1)",
            )?
            .query_row(params![tenant_id], |r| r.get(0))?)
        })
        .await
    }

    async fn traffic_trace(
        &self,
        from: Millis,
        to: Millis,
        after: Option<TraceCursor>,
        limit: u32,
    ) -> Result<Vec<TraceBatch>, StoreError> {
        self.read(move |c| {
            // Keyset paging over the `at` index: each page is a range scan
            // from where the last one stopped.
            let (after_at, after_id) = after.unwrap_or((Millis::MIN, i64::MIN));
            let mut stmt = c.prepare_cached(
                "SELECT id, at, entries FROM traffic_trace
                 WHERE at >= ?1 AND at < ?2 AND (at, id) > (?3, ?4)
                 ORDER BY at, id LIMIT ?5",
            )?;
            let rows = stmt
                .query_map(params![from, to, after_at, after_id, limit], |r| {
                    Ok(TraceBatch {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        entries: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn traffic_trace_rows(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT coalesce(sum(count), 0) FROM traffic_trace")?
                    .query_row([], |r| r.get(0))?,
            )
        })
        .await
    }

    async fn open_conversations(&self, since: Millis) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT tenant_id, count(*) FROM conversations WHERE last_activity_at >= ?1
                 GROUP BY tenant_id",
            )?;
            let rows = stmt
                .query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn subprocessors(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT doc FROM subprocessors ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn contact(
        &self,
        tenant_id: &str,
        kind: &str,
        ident_bi: &[u8],
    ) -> Result<Option<ContactRecord>, StoreError> {
        let (tenant_id, kind, ident_bi) =
            (tenant_id.to_string(), kind.to_string(), ident_bi.to_vec());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, tenant_id, kind, ident_ct, name_ct, created_at FROM contacts
                 WHERE tenant_id = ?1 AND kind = ?2 AND ident_bi = ?3",
            )?
            .query_row(params![tenant_id, kind, ident_bi], |r| {
                Ok(ContactRecord {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    kind: r.get(2)?,
                    ident_ct: r.get(3)?,
                    name_ct: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn contact_conversations(
        &self,
        contact_id: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let contact_id = contact_id.to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {CONVERSATION_COLUMNS} WHERE c.contact_id = ?1 ORDER BY c.created_at, c.id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![contact_id], conversation_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn dsr_requests(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<DsrRecord>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {DSR_COLUMNS} WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![tenant_id, before_id, limit], dsr_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn dsr_request(&self, id: &str) -> Result<Option<DsrRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let sql = format!("SELECT {DSR_COLUMNS} WHERE id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row(params![id], dsr_row)
                .optional()?)
        })
        .await
    }

    async fn dsr_counts(&self, tenant_id: &str, now: Millis) -> Result<(u64, u64), StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT count(*), count(*) FILTER (WHERE due_at < ?2) FROM dsr_requests
                 WHERE status <> 'completed' AND tenant_id = ?1",
            )?
            .query_row(params![tenant_id, now], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .await
    }

    async fn open_dsrs(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant_id, due_at FROM dsr_requests WHERE status <> 'completed'",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn restrictions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT tenant_id, ident_bi FROM restrictions")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn incidents(
        &self,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, aware_at, doc, purge_after, version FROM security_incidents
                 WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![before_id, limit], incident_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, aware_at, doc, purge_after, version FROM security_incidents WHERE id = ?1",
            )?
            .query_row(params![id], incident_row)
            .optional()?)
        })
        .await
    }

    async fn consents(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {CONSENT_COLUMNS} WHERE tenant_id = ?1 AND (?2 IS NULL OR subject_bi = ?2)
                   AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(
                    params![tenant_id, subject_bi, before_id, limit],
                    consent_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn consent(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let sql = format!("SELECT {CONSENT_COLUMNS} WHERE id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row(params![id], consent_row)
                .optional()?)
        })
        .await
    }

    async fn consent_counts(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
    ) -> Result<ConsentCounts, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            // The purposes live in the receipt document: one row per purpose.
            let (total, withdrawn): (u64, u64) = c
                .prepare_cached(
                    "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS
                        (SELECT 1 FROM json_each(r.doc, '$.purposes') p
                         WHERE p.value ->> 'withdrawn_at' IS NULL))
                     FROM consent_records r
                     WHERE r.tenant_id = ?1 AND (?2 IS NULL OR r.subject_bi = ?2)",
                )?
                .query_row(params![tenant_id, subject_bi], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let mut stmt = c.prepare_cached(
                "SELECT p.value ->> 'purpose', count(*),
                        count(*) FILTER (WHERE p.value ->> 'withdrawn_at' IS NOT NULL)
                 FROM consent_records r, json_each(r.doc, '$.purposes') p
                 WHERE r.tenant_id = ?1 AND (?2 IS NULL OR r.subject_bi = ?2)
                 GROUP BY 1 ORDER BY 1",
            )?;
            let by_purpose = stmt
                .query_map(params![tenant_id, subject_bi], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<(String, u64, u64)>, _>>()?;
            let withdrawals = by_purpose.iter().map(|p| p.2).sum();
            Ok(ConsentCounts {
                total,
                withdrawn,
                withdrawals,
                by_purpose,
            })
        })
        .await
    }

    fn wal_truncation_pending(&self) -> bool {
        self.wal.pending()
    }

    fn ready(&self) -> bool {
        self.writer_running.load(Ordering::SeqCst)
            && self.sender.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    async fn close(&self) {
        // Dropping the last sender lets the writer drain its queue and stop.
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Some(c) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            c.stop.store(true, Ordering::Relaxed);
            c.thread.thread().unpark();
            let _ = tokio::task::spawn_blocking(move || c.thread.join()).await;
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(format!("{DB_FILE}-wal")))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// B4: the owed truncation survives a restart. Reopened with the marker
    /// present while a reader holds an old snapshot, the store reports it
    /// pending (the start attempt cannot truncate) and keeps the marker;
    /// once the reader is gone the checkpointer truncates and removes it.
    /// Reopened with the marker and no reader, the start truncates at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_owed_truncation_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let store = SqliteStore::open(dir.path(), false, clock.clone()).unwrap();
        assert!(!store.wal_truncation_pending());
        store.close().await;
        let marker = dir.path().join(WAL_TRUNCATION_MARKER);
        std::fs::write(&marker, b"owed\n").unwrap();

        // A reader on a snapshot older than the WAL's newest frames.
        let reader = Connection::open(dir.path().join(DB_FILE)).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM meta;")
            .unwrap();
        let other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        other
            .execute_batch("INSERT INTO meta (key, value) VALUES ('test', 'x');")
            .unwrap();
        assert!(wal_len(dir.path()) > 0);

        let store = SqliteStore::open(dir.path(), false, clock.clone()).unwrap();
        assert!(store.wal_truncation_pending());
        assert!(marker.exists());

        reader.execute_batch("COMMIT;").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        // The counter says done a moment before the marker file goes.
        while store.wal_truncation_pending() || marker.exists() {
            assert!(std::time::Instant::now() < deadline, "never truncated");
            tokio::task::yield_now().await;
        }
        assert_eq!(wal_len(dir.path()), 0);
        store.close().await;

        std::fs::write(&marker, b"owed\n").unwrap();
        let store = SqliteStore::open(dir.path(), false, clock).unwrap();
        assert!(!store.wal_truncation_pending());
        assert!(!marker.exists());
        store.close().await;
    }
}

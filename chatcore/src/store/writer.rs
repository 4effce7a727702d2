//! Group commit: one thread owns the write connection. Producers queue
//! `(op, reply)` pairs; the writer drains everything queued, applies it in one
//! transaction, commits with one fsync, then answers every reply. Nothing is
//! acknowledged before its commit returned. If one op fails, the batch is
//! replayed with a savepoint per op so that op alone fails.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::Channel;
use super::{
    AuditRecord, ConsentRecord, ConversationTarget, DsrAction, DsrCompletion, DsrRecord, Erased,
    InboundMessage, IncidentRecord, OutboundMessage, PurgeTable, PurgedBatch, StoreError,
    StoredMessage, TenantRecord, TenantTransition, TenantUpdate, WriteOp, WriteOutcome,
};
use crate::clock::{Clock, Millis};

/// Most ops in one transaction; bounds commit latency under a flood.
const MAX_BATCH: usize = 4096;

pub(crate) type Reply = oneshot::Sender<Result<WriteOutcome, StoreError>>;
pub(crate) type Job = (WriteOp, Reply);

pub(crate) struct WriterHandle {
    pub tx: mpsc::Sender<Job>,
    pub running: Arc<AtomicBool>,
    pub thread: std::thread::JoinHandle<()>,
}

/// Serialises the WAL checkpoints of the writer and the checkpointer thread,
/// and keeps track of a truncation still owed.
///
/// After an erasure or a key destruction, the erased rows' old page images
/// stay in the WAL (and the database file's pages are not yet overwritten by
/// the zeroed ones) until a `wal_checkpoint(TRUNCATE)` succeeds. SQLite runs
/// one checkpoint at a time: a truncation that meets another connection's
/// checkpoint does not wait, it answers busy and truncates nothing. So both
/// threads take `lock` around every checkpoint.
///
/// A truncation never waits long: it holds SQLite's writer lock while it
/// waits for readers of older snapshots (an online backup can hold one for
/// minutes), so a long wait would fail the writer's next `BEGIN IMMEDIATE`.
/// The writer tries once, briefly ([`WRITER_TRUNCATE_WAIT`]); the
/// checkpointer tries once per round without waiting. Until one succeeds the
/// truncation is owed: counted in `requested` (over `done`), and persisted as
/// the marker file, so a restart keeps retrying it.
pub(crate) struct WalGate {
    lock: Mutex<()>,
    /// Truncations asked for so far (erasures, key destructions, a marker
    /// found at start).
    requested: AtomicU64,
    /// The `requested` count read, under `lock`, by the last truncation that
    /// succeeded: a request counted after it started is still owed.
    done: AtomicU64,
    /// "Truncation owed" on disk: exists while `requested > done`.
    marker: Option<PathBuf>,
}

/// How long the writer's own truncation waits for readers: short, as the
/// writer's next batch waits behind it; the checkpointer retries without
/// waiting.
pub(crate) const WRITER_TRUNCATE_WAIT: Duration = Duration::from_millis(100);

impl Default for WalGate {
    fn default() -> Self {
        Self::new(None)
    }
}

impl WalGate {
    /// A gate persisting an owed truncation in `marker`; a marker left by an
    /// earlier run makes the truncation owed from the start.
    pub(crate) fn new(marker: Option<PathBuf>) -> Self {
        let owed = marker.as_deref().is_some_and(Path::exists);
        if let (true, Some(m)) = (owed, &marker) {
            tracing::warn!(
                marker = %m.display(),
                "a WAL truncation owed after an erasure or key destruction was not done before the last stop; retrying"
            );
        }
        Self {
            lock: Mutex::new(()),
            requested: AtomicU64::new(u64::from(owed)),
            done: AtomicU64::new(0),
            marker,
        }
    }

    /// A truncation is owed: asked for and not yet done.
    pub(crate) fn pending(&self) -> bool {
        self.requested.load(Ordering::SeqCst) > self.done.load(Ordering::SeqCst)
    }

    /// After an erasure or a key destruction committed: counts the
    /// truncation as owed (persisting the marker first), then tries it once,
    /// waiting at most [`WRITER_TRUNCATE_WAIT`] for readers. An error leaves
    /// it owed; the checkpointer retries it.
    pub(crate) fn truncate_after_erasure(&self, conn: &Connection) -> Result<(), String> {
        let _turn = self.lock.lock().map_err(|_| "checkpoint lock poisoned")?;
        self.owe();
        self.attempt(conn, WRITER_TRUNCATE_WAIT)
    }

    /// One truncation, waiting at most `wait` for readers; clears what was
    /// owed when it started if it succeeds. Used at start and at stop.
    pub(crate) fn truncate(&self, conn: &Connection, wait: Duration) -> Result<(), String> {
        let _turn = self.lock.lock().map_err(|_| "checkpoint lock poisoned")?;
        self.attempt(conn, wait)
    }

    /// The checkpointer's round: an owed truncation (one try, no waiting),
    /// else a passive checkpoint (copies what it can without blocking).
    pub(crate) fn checkpoint(&self, conn: &Connection) {
        let Ok(_turn) = self.lock.lock() else {
            return;
        };
        if self.pending() {
            match self.attempt(conn, Duration::ZERO) {
                Ok(()) => tracing::info!("owed WAL truncation done"),
                Err(e) => tracing::debug!(error = %e, "owed WAL truncation not possible yet"),
            }
            return;
        }
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::debug!(error = %e, "passive checkpoint skipped");
        }
    }

    /// Counts one more owed truncation and persists the marker. Under `lock`,
    /// so a concurrent success cannot remove the marker after this.
    fn owe(&self) {
        self.requested.fetch_add(1, Ordering::SeqCst);
        if let Some(m) = &self.marker
            && let Err(e) = write_marker(m)
        {
            tracing::error!(
                marker = %m.display(),
                error = %e,
                "could not persist the owed WAL truncation; a restart before it is done forgets it"
            );
        }
    }

    /// One truncation of both databases with `wait` as busy timeout, then
    /// the connection's own busy timeout again. Called under `lock`.
    fn attempt(&self, conn: &Connection, wait: Duration) -> Result<(), String> {
        let started = self.requested.load(Ordering::SeqCst);
        let normal: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .map_err(|e| format!("reading busy timeout: {e}"))?;
        conn.busy_timeout(wait)
            .map_err(|e| format!("setting busy timeout: {e}"))?;
        let result = truncate_both(conn);
        let restored = conn.busy_timeout(Duration::from_millis(u64::try_from(normal).unwrap_or(0)));
        if let Err(e) = restored {
            tracing::error!(error = %e, "could not restore the busy timeout");
        }
        result?;
        self.truncated(started);
        Ok(())
    }

    /// A truncation that started when `started` truncations were owed
    /// succeeded: those are done; the marker goes once nothing is owed.
    fn truncated(&self, started: u64) {
        self.done.fetch_max(started, Ordering::SeqCst);
        if !self.pending()
            && let Some(m) = &self.marker
        {
            match std::fs::remove_file(m) {
                Ok(()) => sync_parent(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    marker = %m.display(),
                    error = %e,
                    "could not remove the WAL truncation marker; the next start truncates again"
                ),
            }
        }
    }
}

/// Writes the marker durably: file contents and its directory entry.
fn write_marker(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    std::io::Write::write_all(
        &mut f,
        b"A WAL truncation is owed after an erasure or key destruction.\n",
    )?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all())
    {
        tracing::debug!(error = %e, "syncing the data dir after removing the marker");
    }
}

fn truncate_both(conn: &Connection) -> Result<(), String> {
    for schema in ["main", "keyring"] {
        let (busy, log, done): (i64, i64, i64) = conn
            .query_row(
                &format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| format!("{schema}: {e}"))?;
        if busy != 0 {
            return Err(format!(
                "{schema}: checkpoint busy ({done} of {log} frames copied), WAL not truncated"
            ));
        }
    }
    Ok(())
}

pub(crate) fn spawn(
    conn: Connection,
    clock: Arc<dyn Clock>,
    traffic_trace: bool,
    wal: Arc<WalGate>,
) -> std::io::Result<WriterHandle> {
    let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let thread = std::thread::Builder::new()
        .name("c24-writer".into())
        .spawn(move || {
            run(conn, rx, clock, traffic_trace, &wal);
            flag.store(false, Ordering::SeqCst);
        })?;
    Ok(WriterHandle {
        tx,
        running,
        thread,
    })
}

/// Recent `client_key`s per web-chat conversation, so a resend is answered
/// with its first ack without a random-key index on every message (which
/// made each insert dirty its own page once the index outgrew the cache).
/// A conversation's keys are loaded from its newest rows on first use.
/// Owned by the writer thread: no locks.
#[derive(Default)]
struct RecentKeys {
    convs: HashMap<String, ConvKeys>,
    tick: u64,
}

#[derive(Default)]
struct ConvKeys {
    keys: HashMap<Vec<u8>, StoredMessage>,
    order: VecDeque<Vec<u8>>,
    last_used: u64,
}

/// A resend among a conversation's last this-many web-chat messages is
/// recognised (a client resends only what is unacknowledged).
pub const RECENT_KEYS_PER_CONVERSATION: usize = 256;
/// Conversations whose keys are held; the least recently used go first.
const RECENT_CONVERSATIONS: usize = 20_000;

impl ConvKeys {
    fn note(&mut self, key: &[u8], m: &StoredMessage) {
        if self.keys.insert(key.to_vec(), m.clone()).is_none() {
            self.order.push_back(key.to_vec());
            while self.order.len() > RECENT_KEYS_PER_CONVERSATION {
                if let Some(old) = self.order.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
    }
}

impl RecentKeys {
    fn conversation(
        &mut self,
        c: &Connection,
        conversation_id: &str,
    ) -> Result<&mut ConvKeys, StoreError> {
        self.tick += 1;
        if !self.convs.contains_key(conversation_id) {
            if self.convs.len() >= RECENT_CONVERSATIONS {
                self.evict();
            }
            let mut ck = ConvKeys::default();
            let mut stmt = c.prepare_cached(
                "SELECT client_key, id, seq, received_at, committed_at FROM messages
                 WHERE conversation_id = ?1 AND client_key IS NOT NULL
                 ORDER BY seq DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![
                conversation_id,
                RECENT_KEYS_PER_CONVERSATION as i64
            ])?;
            let mut loaded = Vec::new();
            while let Some(r) = rows.next()? {
                let key: Vec<u8> = r.get(0)?;
                loaded.push((
                    key,
                    StoredMessage {
                        message_id: r.get(1)?,
                        conversation_id: conversation_id.to_string(),
                        seq: r.get(2)?,
                        received_at: r.get(3)?,
                        committed_at: r.get(4)?,
                        duplicate: true,
                        new_conversation: false,
                    },
                ));
            }
            for (key, m) in loaded.into_iter().rev() {
                ck.note(&key, &m);
            }
            self.convs.insert(conversation_id.to_string(), ck);
        }
        let tick = self.tick;
        let ck = self
            .convs
            .get_mut(conversation_id)
            .ok_or(StoreError::NotFound("conversation"))?;
        ck.last_used = tick;
        Ok(ck)
    }

    /// Drops the least recently used tenth.
    fn evict(&mut self) {
        let mut ages: Vec<(u64, String)> = self
            .convs
            .iter()
            .map(|(k, v)| (v.last_used, k.clone()))
            .collect();
        ages.sort_unstable();
        for (_, k) in ages.into_iter().take(RECENT_CONVERSATIONS / 10) {
            self.convs.remove(&k);
        }
    }
}

/// What ops need besides the connection.
struct Ctx {
    recent: RecentKeys,
    /// A key was destroyed or a person erased in this batch: after the
    /// commit the WAL is checkpointed and truncated, so no old page image
    /// keeps the wrapped key or the erased rows.
    truncate_wal: bool,
    /// Each stored message is also recorded in its commit's traffic-trace row.
    traffic_trace: bool,
    /// This batch's messages for the traffic trace, packed
    /// ([`crate::traffic::push_entry`]), and how many: one row at commit.
    trace: Vec<u8>,
    trace_count: i64,
}

/// Writes the batch's traffic-trace row inside its transaction: one row for
/// every message of the commit, dated `now` (when the batch was stored).
fn flush_trace(c: &Connection, ctx: &mut Ctx, now: Millis) -> Result<(), rusqlite::Error> {
    let count = std::mem::take(&mut ctx.trace_count);
    let entries = std::mem::take(&mut ctx.trace);
    if count == 0 {
        return Ok(());
    }
    c.prepare_cached(
        "INSERT INTO traffic_trace (at, count, entries, purge_after) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        now,
        count,
        entries,
        now.saturating_add(crate::traffic::TRACE_RETENTION_MS)
    ])?;
    Ok(())
}

fn clear_trace(ctx: &mut Ctx) {
    ctx.trace.clear();
    ctx.trace_count = 0;
}

/// Connection settings for the writer: no automatic checkpoint inside
/// COMMIT (a separate thread checkpoints), temp data in memory.
pub(crate) const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 0;
     PRAGMA temp_store = MEMORY;";

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    clock: Arc<dyn Clock>,
    traffic_trace: bool,
    wal: &WalGate,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut ctx = Ctx {
        recent: RecentKeys::default(),
        truncate_wal: false,
        traffic_trace,
        trace: Vec::new(),
        trace_count: 0,
    };
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut ctx, &mut batch, clock.as_ref(), wal);
    }
    if let Err(e) = wal.truncate(&conn, WRITER_TRUNCATE_WAIT) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
    tracing::debug!("writer stopped");
}

/// Applies the batch in one transaction. Fast path: no savepoints. If any
/// op fails, the whole transaction is rolled back and replayed with a
/// savepoint per op, so the bad op fails alone and leaves nothing behind.
fn apply_batch(
    conn: &mut Connection,
    ctx: &mut Ctx,
    batch: &[Job],
    now: Millis,
) -> Result<Vec<Result<WriteOutcome, StoreError>>, rusqlite::Error> {
    clear_trace(ctx);
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut failed = false;
        for (op, _) in batch {
            let r = apply(&tx, ctx, op, now);
            failed |= r.is_err();
            results.push(r);
            if failed {
                break;
            }
        }
        if !failed {
            flush_trace(&tx, ctx, now)?;
            tx.commit()?;
            return Ok(results);
        }
        // Dropping `tx` rolls it back; keys it noted are not durable, and
        // its trace entries were never written.
        clear_trace(ctx);
    }
    ctx.recent = RecentKeys::default();
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for (op, _) in batch {
        let traced = (ctx.trace.len(), ctx.trace_count);
        let sp = tx.savepoint()?;
        let r = apply(&sp, ctx, op, now);
        if r.is_ok() {
            sp.commit()?;
        } else {
            // A rolled-back op may have loaded or noted keys of its own
            // rows, and queued a trace row for a message not stored.
            drop(sp);
            ctx.recent = RecentKeys::default();
            ctx.trace.truncate(traced.0);
            ctx.trace_count = traced.1;
        }
        results.push(r);
    }
    flush_trace(&tx, ctx, now)?;
    tx.commit()?;
    Ok(results)
}

fn commit_batch(
    conn: &mut Connection,
    ctx: &mut Ctx,
    batch: &mut Vec<Job>,
    clock: &dyn Clock,
    wal: &WalGate,
) {
    let started = clock.now_ms();
    let outcome = apply_batch(conn, ctx, batch, started);
    // Before the replies: an erasure is answered once its old page images
    // are out of the WAL and overwritten in the database file.
    if std::mem::take(&mut ctx.truncate_wal)
        && let Err(e) = wal.truncate_after_erasure(conn)
    {
        tracing::warn!(
            error = %e,
            "WAL truncation after a key destruction or erasure not possible yet; it stays owed (marker file) and the checkpointer retries it"
        );
    }
    let committed = clock.now_ms();
    match outcome {
        Ok(results) => {
            for ((_, reply), mut result) in batch.drain(..).zip(results) {
                if let Ok(WriteOutcome::Message(m)) = &mut result
                    && !m.duplicate
                {
                    m.committed_at = committed;
                }
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            ctx.recent = RecentKeys::default();
            clear_trace(ctx);
            tracing::error!(error = %e, ops = batch.len(), "group commit failed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Io(format!("commit failed: {e}"))));
            }
        }
    }
}

fn apply(
    c: &Connection,
    ctx: &mut Ctx,
    op: &WriteOp,
    now: Millis,
) -> Result<WriteOutcome, StoreError> {
    match op {
        WriteOp::CreateTenant(t) => create_tenant(c, t).map(|_| WriteOutcome::Done),
        WriteOp::Audit(a) => audit(c, a).map(|_| WriteOutcome::Done),
        WriteOp::UpdateTenant(u) => update_tenant(c, u).map(|_| WriteOutcome::Done),
        WriteOp::TransitionTenant(t) => transition_tenant(c, t).map(|_| WriteOutcome::Done),
        WriteOp::StampTenantPurge {
            tenant_id,
            purge_after,
            batch,
        } => stamp_tenant_purge(c, tenant_id, *purge_after, *batch).map(WriteOutcome::Count),
        WriteOp::PurgeBatch { table, now, batch } => {
            // Purged rows may be cached as recent keys.
            ctx.recent = RecentKeys::default();
            purge_batch(c, *table, *now, *batch).map(WriteOutcome::Purged)
        }
        WriteOp::PutSubprocessors(docs) => put_subprocessors(c, docs).map(|_| WriteOutcome::Done),
        WriteOp::SeedSubprocessors(docs) => seed_subprocessors(c, docs).map(|_| WriteOutcome::Done),
        WriteOp::ReplaceSubprocessor { id, expected, doc } => {
            replace_subprocessor(c, id, expected.as_deref(), doc).map(|_| WriteOutcome::Done)
        }
        WriteOp::DestroyKey { tenant_id, at } => {
            ctx.truncate_wal = true;
            destroy_key(c, tenant_id, *at).map(|_| WriteOutcome::Done)
        }
        WriteOp::Inbound(m) => inbound(c, ctx, m, now).map(WriteOutcome::Message),
        WriteOp::Outbound(m) => outbound(c, ctx, m, now).map(WriteOutcome::Message),
        WriteOp::PutDsr(r) => put_dsr(c, r).map(|_| WriteOutcome::Done),
        WriteOp::CompleteDsr(d) => complete_dsr(c, ctx, d),
        WriteOp::TakeDsrExport(r) => take_dsr_export(c, r).map(WriteOutcome::Blob),
        WriteOp::PutIncident(i) => put_incident(c, i).map(|_| WriteOutcome::Done),
        WriteOp::PutConsent(r) => put_consent(c, r).map(|_| WriteOutcome::Done),
        WriteOp::EndTenantConsents {
            tenant_id,
            purge_after,
        } => end_tenant_consents(c, tenant_id, *purge_after).map(WriteOutcome::Count),
    }
}

/// Stores a request at its next version (see `IncidentRecord::version`).
fn put_dsr(c: &Connection, r: &DsrRecord) -> Result<(), StoreError> {
    // purge_after is the store's (set at termination): an update keeps it.
    let n = if r.version == 0 {
        c.prepare_cached(
            "INSERT INTO dsr_requests (id, tenant_id, kind, subject_kind, subject_bi, status,
                received_at, due_at, doc, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            r.id,
            r.tenant_id,
            r.kind,
            r.subject_kind,
            r.subject_bi,
            r.status,
            r.received_at,
            r.due_at,
            r.doc
        ])?
    } else {
        c.prepare_cached(
            "UPDATE dsr_requests SET subject_bi = ?3, status = ?4, due_at = ?5, doc = ?6,
                version = version + 1
             WHERE id = ?1 AND tenant_id = ?2 AND version = ?7",
        )?
        .execute(params![
            r.id,
            r.tenant_id,
            r.subject_bi,
            r.status,
            r.due_at,
            r.doc,
            r.version
        ])?
    };
    if n == 0 {
        return Err(stale_or_missing(
            c,
            "dsr_requests",
            "data-subject request",
            &r.id,
        )?);
    }
    Ok(())
}

/// Why a conditional write of row `id` changed nothing: it was changed
/// concurrently ([`StoreError::Stale`]), or it does not exist.
fn stale_or_missing(
    c: &Connection,
    table: &str,
    what: &'static str,
    id: &str,
) -> Result<StoreError, StoreError> {
    let exists: bool = c
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"
        ))?
        .query_row(params![id], |r| r.get(0))?;
    Ok(if exists {
        StoreError::Stale(what)
    } else {
        StoreError::NotFound(what)
    })
}

fn identifier_taken() -> StoreError {
    StoreError::Conflict("another contact of this tenant already has that identifier".into())
}

fn complete_dsr(
    c: &Connection,
    ctx: &mut Ctx,
    d: &DsrCompletion,
) -> Result<WriteOutcome, StoreError> {
    let r = &d.record;
    // The version check first, as on PostgreSQL: a request changed since
    // it was read runs no action.
    if r.version > 0 {
        let stored: Option<i64> = c
            .prepare_cached("SELECT version FROM dsr_requests WHERE id = ?1 AND tenant_id = ?2")?
            .query_row(params![r.id, r.tenant_id], |row| row.get(0))
            .optional()?;
        match stored {
            None => return Err(StoreError::NotFound("data-subject request")),
            Some(v) if v != r.version => return Err(StoreError::Stale("data-subject request")),
            Some(_) => {}
        }
    }
    let outcome = match &d.action {
        DsrAction::None => WriteOutcome::Done,
        DsrAction::Erase { kind, ident_bi } => {
            // Erased rows may be cached as recent keys; the WAL may hold
            // their old page images.
            ctx.recent = RecentKeys::default();
            ctx.truncate_wal = true;
            let mut erased = erase_subject(c, &r.tenant_id, kind, ident_bi)?;
            put_dsr(c, r)?;
            // Entries of this batch not yet written (a message stored earlier
            // in the same commit) go too; only now that nothing can fail.
            erased.trace_entries += drop_pending_trace(ctx, &erased.conversation_ids);
            return Ok(WriteOutcome::Erased(erased));
        }
        DsrAction::Rectify {
            contact_id,
            ident_bi,
            name_ct,
            ident,
        } => {
            let n = match (name_ct, ident) {
                (Some(name), None) => c
                    .prepare_cached(
                        "UPDATE contacts SET name_ct = ?4
                         WHERE id = ?1 AND tenant_id = ?2 AND ident_bi = ?3",
                    )?
                    .execute(params![contact_id, r.tenant_id, ident_bi, name])?,
                (None, Some((ct, bi))) => {
                    // Unique per (tenant, kind, identifier), as the index is.
                    let taken: bool = c
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM contacts k JOIN contacts me ON me.id = ?3
                               WHERE k.tenant_id = ?1 AND k.kind = me.kind AND k.ident_bi = ?2
                                 AND k.id <> ?3)",
                        )?
                        .query_row(params![r.tenant_id, bi, contact_id], |row| row.get(0))?;
                    if taken {
                        return Err(identifier_taken());
                    }
                    // The old identifier's ciphertext leaves the WAL too.
                    ctx.truncate_wal = true;
                    c.prepare_cached(
                        "UPDATE contacts SET ident_ct = ?4, ident_bi = ?5
                         WHERE id = ?1 AND tenant_id = ?2 AND ident_bi = ?3",
                    )?
                    .execute(params![contact_id, r.tenant_id, ident_bi, ct, bi])
                    .map_err(|e| match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => identifier_taken(),
                        _ => e.into(),
                    })?
                }
                _ => return Err(StoreError::Io("a rectification changes one field".into())),
            };
            if n == 0 {
                return Err(StoreError::NotFound("contact"));
            }
            WriteOutcome::Done
        }
        DsrAction::Restrict { ident_bi } => {
            c.prepare_cached(
                "INSERT INTO restrictions (tenant_id, ident_bi, dsr_id, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![r.tenant_id, ident_bi, r.id, d.at])?;
            WriteOutcome::Done
        }
        DsrAction::Export {
            sealed,
            purge_after,
        } => {
            c.prepare_cached(
                "INSERT INTO dsr_exports (dsr_id, tenant_id, sealed, created_at, purge_after)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![r.id, r.tenant_id, sealed, d.at, purge_after])?;
            WriteOutcome::Done
        }
    };
    put_dsr(c, r)?;
    Ok(outcome)
}

/// Erasure: everything stored of one contact. Its conversations are its
/// own (each has one contact), so they go with their messages (the
/// agents' replies too), email threads and traffic-trace entries.
fn erase_subject(
    c: &Connection,
    tenant_id: &str,
    kind: &str,
    ident_bi: &[u8],
) -> Result<Erased, StoreError> {
    let mut out = Erased::default();
    // Exports of the person's own requests hold their data too; completed
    // requests forget whom they were about (open ones still need to know).
    c.prepare_cached(
        "DELETE FROM dsr_exports WHERE dsr_id IN
           (SELECT id FROM dsr_requests WHERE tenant_id = ?1 AND subject_bi = ?2)",
    )?
    .execute(params![tenant_id, ident_bi])?;
    c.prepare_cached(
        "UPDATE dsr_requests SET subject_bi = NULL, version = version + 1
         WHERE tenant_id = ?1 AND subject_bi = ?2 AND status = 'completed'",
    )?
    .execute(params![tenant_id, ident_bi])?;
    let contact: Option<String> = c
        .prepare_cached(
            "SELECT id FROM contacts WHERE tenant_id = ?1 AND kind = ?2 AND ident_bi = ?3",
        )?
        .query_row(params![tenant_id, kind, ident_bi], |r| r.get(0))
        .optional()?;
    let Some(contact_id) = contact else {
        return Ok(out);
    };
    let spans: Vec<(String, Millis, Millis)> = c
        .prepare_cached(
            "SELECT id, created_at, last_activity_at FROM conversations
             WHERE contact_id = ?1 AND tenant_id = ?2",
        )?
        .query_map(params![contact_id, tenant_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    out.trace_entries += erase_trace_entries(c, &spans)?;
    let conversations: Vec<String> = spans.into_iter().map(|(id, _, _)| id).collect();
    for id in &conversations {
        {
            let mut stmt = c.prepare_cached(
                "DELETE FROM messages WHERE conversation_id = ?1 AND tenant_id = ?2 RETURNING size",
            )?;
            let mut q = stmt.query(params![id, tenant_id])?;
            while let Some(r) = q.next()? {
                out.messages += 1;
                out.bytes += r.get::<_, i64>(0)?;
            }
        }
        c.prepare_cached(
            "DELETE FROM email_threads WHERE conversation_id = ?1 AND tenant_id = ?2",
        )?
        .execute(params![id, tenant_id])?;
        out.conversations += c
            .prepare_cached("DELETE FROM conversations WHERE id = ?1 AND tenant_id = ?2")?
            .execute(params![id, tenant_id])? as u64;
    }
    out.contacts += c
        .prepare_cached("DELETE FROM contacts WHERE id = ?1")?
        .execute(params![contact_id])? as u64;
    out.conversation_ids = conversations;
    Ok(out)
}

/// Rewrites the traffic-trace rows holding entries of the erased
/// conversations without them (a row left empty is deleted); returns how
/// many entries went. Only rows dated within a conversation's lifetime can
/// hold its entries (a row is dated by the commit that stored its
/// messages, the same clock reading the conversation's times come from),
/// so only those are read, by the `at` index, with
/// [`crate::traffic::ERASURE_MARGIN_MS`] either side.
fn erase_trace_entries(
    c: &Connection,
    spans: &[(String, Millis, Millis)],
) -> Result<u64, StoreError> {
    let Some(windows) = crate::traffic::erasure_windows(spans) else {
        return Ok(0);
    };
    let erased: std::collections::HashSet<&str> =
        spans.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut removed = 0;
    for (from, to) in windows {
        let rows: Vec<(i64, Vec<u8>)> = c
            .prepare_cached("SELECT id, entries FROM traffic_trace WHERE at >= ?1 AND at <= ?2")?
            .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (row, packed) in rows {
            let Some(kept) = crate::traffic::without_conversations(&packed, &erased) else {
                continue;
            };
            removed += kept.removed;
            if kept.count == 0 {
                c.prepare_cached("DELETE FROM traffic_trace WHERE id = ?1")?
                    .execute(params![row])?;
            } else {
                c.prepare_cached(
                    "UPDATE traffic_trace SET entries = ?2, count = ?3 WHERE id = ?1",
                )?
                .execute(params![row, kept.entries, kept.count])?;
            }
        }
    }
    Ok(removed)
}

/// Drops this batch's not yet written trace entries of the erased
/// conversations; returns how many.
fn drop_pending_trace(ctx: &mut Ctx, conversations: &[String]) -> u64 {
    if ctx.trace_count == 0 || conversations.is_empty() {
        return 0;
    }
    let erased: std::collections::HashSet<&str> =
        conversations.iter().map(String::as_str).collect();
    match crate::traffic::without_conversations(&ctx.trace, &erased) {
        Some(kept) => {
            ctx.trace = kept.entries;
            ctx.trace_count = kept.count;
            kept.removed
        }
        None => 0,
    }
}

fn take_dsr_export(c: &Connection, r: &DsrRecord) -> Result<Vec<u8>, StoreError> {
    let sealed: Option<Vec<u8>> = c
        .prepare_cached(
            "DELETE FROM dsr_exports WHERE dsr_id = ?1 AND tenant_id = ?2 RETURNING sealed",
        )?
        .query_row(params![r.id, r.tenant_id], |row| row.get(0))
        .optional()?;
    let sealed = sealed.ok_or(StoreError::NotFound("export"))?;
    put_dsr(c, r)?;
    Ok(sealed)
}

/// Stores a breach record at its next version (see `IncidentRecord::version`).
fn put_incident(c: &Connection, i: &IncidentRecord) -> Result<(), StoreError> {
    let n = if i.version == 0 {
        c.prepare_cached(
            "INSERT INTO security_incidents (id, aware_at, doc, purge_after, version)
             VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![i.id, i.aware_at, i.doc, i.purge_after])?
    } else {
        c.prepare_cached(
            "UPDATE security_incidents SET doc = ?2, version = version + 1
             WHERE id = ?1 AND version = ?3",
        )?
        .execute(params![i.id, i.doc, i.version])?
    };
    if n == 0 {
        return Err(stale_or_missing(
            c,
            "security_incidents",
            "incident",
            &i.id,
        )?);
    }
    Ok(())
}

/// Stores a consent record at its next version (see `IncidentRecord::version`).
fn put_consent(c: &Connection, r: &ConsentRecord) -> Result<(), StoreError> {
    let n = if r.version == 0 {
        c.prepare_cached(
            "INSERT INTO consent_records (id, tenant_id, subject_kind, subject_bi, doc,
                purge_after, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            r.id,
            r.tenant_id,
            r.subject_kind,
            r.subject_bi,
            r.doc,
            r.purge_after
        ])?
    } else {
        c.prepare_cached(
            "UPDATE consent_records SET doc = ?3,
                purge_after = coalesce(?4, purge_after), version = version + 1
             WHERE id = ?1 AND tenant_id = ?2 AND version = ?5",
        )?
        .execute(params![r.id, r.tenant_id, r.doc, r.purge_after, r.version])?
    };
    if n == 0 {
        return Err(stale_or_missing(
            c,
            "consent_records",
            "consent record",
            &r.id,
        )?);
    }
    Ok(())
}

fn end_tenant_consents(
    c: &Connection,
    tenant_id: &str,
    purge_after: Millis,
) -> Result<u64, StoreError> {
    Ok(c.prepare_cached(
        "UPDATE consent_records SET purge_after = ?2 WHERE tenant_id = ?1 AND purge_after IS NULL",
    )?
    .execute(params![tenant_id, purge_after])? as u64)
}

fn create_tenant(c: &Connection, t: &TenantRecord) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO tenants (id, name, status, dpa_signed_at, created_at, api_key_hash,
            widget_key_hash, phone_number_id, email_address, secrets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        t.id,
        t.name,
        t.status,
        t.dpa_signed_at,
        t.created_at,
        t.api_key_hash,
        t.widget_key_hash,
        t.phone_number_id,
        t.email_address,
        t.secrets
    ])?;
    c.prepare_cached("INSERT INTO keyring.tenant_keys (tenant_id, wrapped_dek) VALUES (?1, ?2)")?
        .execute(params![t.id, t.wrapped_dek])?;
    Ok(())
}

fn update_tenant(c: &Connection, u: &TenantUpdate) -> Result<(), StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE tenants SET status = ?2, dpa_signed_at = ?3, terminated_at = ?4, purge_after = ?5
             WHERE id = ?1",
        )?
        .execute(params![u.id, u.status, u.dpa_signed_at, u.terminated_at, u.purge_after])?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    Ok(())
}

fn transition_tenant(c: &Connection, t: &TenantTransition) -> Result<(), StoreError> {
    let (from, to) = (&t.from, &t.to);
    let n = c
        .prepare_cached(
            "UPDATE tenants SET status = ?2, dpa_signed_at = ?3, terminated_at = ?4, purge_after = ?5
             WHERE id = ?1 AND status = ?6 AND dpa_signed_at IS ?7 AND terminated_at IS ?8
               AND purge_after IS ?9",
        )?
        .execute(params![
            to.id,
            to.status,
            to.dpa_signed_at,
            to.terminated_at,
            to.purge_after,
            from.status,
            from.dpa_signed_at,
            from.terminated_at,
            from.purge_after
        ])?;
    if n == 0 {
        return Err(stale_or_missing(c, "tenants", "tenant", &to.id)?);
    }
    Ok(())
}

fn stamp_tenant_purge(
    c: &Connection,
    tenant_id: &str,
    purge_after: Millis,
    batch: u32,
) -> Result<u64, StoreError> {
    let ids: Vec<String> = c
        .prepare_cached(
            "UPDATE conversations SET purge_after = ?2 WHERE rowid IN
               (SELECT rowid FROM conversations WHERE tenant_id = ?1 AND purge_after IS NULL LIMIT ?3)
             RETURNING id",
        )?
        .query_map(params![tenant_id, purge_after, batch], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut n = ids.len() as u64;
    let mut msgs = c.prepare_cached(
        "UPDATE messages SET purge_after = ?2 WHERE conversation_id = ?1 AND purge_after IS NULL",
    )?;
    for id in &ids {
        n += msgs.execute(params![id, purge_after])? as u64;
    }
    // A request's record and a restriction are the tenant's end-user data
    // too (exports expire on their own; consent records keep their schedule).
    for table in ["contacts", "email_threads", "dsr_requests", "restrictions"] {
        let sql = format!(
            "UPDATE {table} SET purge_after = ?2 WHERE rowid IN
               (SELECT rowid FROM {table} WHERE tenant_id = ?1 AND purge_after IS NULL LIMIT ?3)"
        );
        n += c
            .prepare_cached(&sql)?
            .execute(params![tenant_id, purge_after, batch])? as u64;
    }
    Ok(n)
}

fn purge_batch(
    c: &Connection,
    table: PurgeTable,
    now: Millis,
    batch: u32,
) -> Result<PurgedBatch, StoreError> {
    use std::collections::HashMap;
    let mut per: HashMap<String, (i64, i64, i64)> = HashMap::new();
    let mut rows = 0u64;
    match table {
        PurgeTable::Messages | PurgeTable::Conversations => {
            let sql = match table {
                PurgeTable::Messages => {
                    "DELETE FROM messages WHERE rowid IN
                       (SELECT rowid FROM messages WHERE purge_after <= ?1 LIMIT ?2)
                     RETURNING tenant_id, size"
                }
                _ => {
                    "DELETE FROM conversations WHERE rowid IN
                       (SELECT rowid FROM conversations WHERE purge_after <= ?1 LIMIT ?2)
                     RETURNING tenant_id, 0"
                }
            };
            let mut stmt = c.prepare_cached(sql)?;
            let mut q = stmt.query(params![now, batch])?;
            while let Some(r) = q.next()? {
                let tenant: String = r.get(0)?;
                let size: i64 = r.get(1)?;
                let e = per.entry(tenant).or_default();
                if table == PurgeTable::Messages {
                    e.0 += 1;
                    e.1 += size;
                } else {
                    e.2 += 1;
                }
                rows += 1;
            }
        }
        PurgeTable::TrafficTrace => {
            // A row holds a commit's messages: counted in messages, like
            // the retention report counts them.
            let mut stmt = c.prepare_cached(
                "DELETE FROM traffic_trace WHERE rowid IN
                   (SELECT rowid FROM traffic_trace WHERE purge_after <= ?1 LIMIT ?2)
                 RETURNING count",
            )?;
            let mut q = stmt.query(params![now, batch])?;
            while let Some(r) = q.next()? {
                rows += u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0);
            }
        }
        other => {
            let name = other.name();
            let sql = format!(
                "DELETE FROM {name} WHERE rowid IN
                   (SELECT rowid FROM {name} WHERE purge_after <= ?1 LIMIT ?2)"
            );
            rows = c.prepare_cached(&sql)?.execute(params![now, batch])? as u64;
        }
    }
    Ok(PurgedBatch {
        rows,
        per_tenant: per
            .into_iter()
            .map(|(t, (m, b, cv))| (t, m, b, cv))
            .collect(),
    })
}

fn destroy_key(c: &Connection, tenant_id: &str, at: Millis) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE keyring.tenant_keys SET wrapped_dek = NULL, destroyed_at = ?2 WHERE tenant_id = ?1",
    )?
    .execute(params![tenant_id, at])?;
    c.prepare_cached("UPDATE tenants SET status = 'purged' WHERE id = ?1")?
        .execute(params![tenant_id])?;
    Ok(())
}

fn put_subprocessors(c: &Connection, docs: &[(String, String)]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO subprocessors (id, doc) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
    )?;
    for (id, doc) in docs {
        stmt.execute(params![id, doc])?;
    }
    Ok(())
}

fn seed_subprocessors(c: &Connection, docs: &[(String, String)]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO subprocessors (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
    )?;
    for (id, doc) in docs {
        stmt.execute(params![id, doc])?;
    }
    Ok(())
}

fn replace_subprocessor(
    c: &Connection,
    id: &str,
    expected: Option<&str>,
    doc: &str,
) -> Result<(), StoreError> {
    let n = match expected {
        Some(old) => c
            .prepare_cached("UPDATE subprocessors SET doc = ?3 WHERE id = ?1 AND doc = ?2")?
            .execute(params![id, old, doc])?,
        None => c
            .prepare_cached(
                "INSERT INTO subprocessors (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![id, doc])?,
    };
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "sub-processor {id} changed meanwhile"
        )));
    }
    Ok(())
}

fn audit(c: &Connection, a: &AuditRecord) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO audit_log (at, actor, role, action, target, status, outcome, purge_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        a.at,
        a.actor,
        a.role,
        a.action,
        a.target,
        a.status,
        a.outcome,
        a.purge_after
    ])?;
    Ok(())
}

fn find_duplicate(
    c: &Connection,
    tenant_id: &str,
    key: &[u8],
) -> Result<Option<StoredMessage>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT id, conversation_id, seq, received_at, committed_at FROM messages
         WHERE tenant_id = ?1 AND dedupe_key = ?2",
    )?
    .query_row(params![tenant_id, key], |r| {
        Ok(StoredMessage {
            message_id: r.get(0)?,
            conversation_id: r.get(1)?,
            seq: r.get(2)?,
            received_at: r.get(3)?,
            committed_at: r.get(4)?,
            duplicate: true,
            new_conversation: false,
        })
    })
    .optional()?)
}

fn upsert_contact(c: &Connection, m: &InboundMessage, now: Millis) -> Result<String, StoreError> {
    let ct = &m.contact;
    if ct.ident_ct.is_empty() {
        // Sent into an existing conversation: its contact exists (the
        // producer did not seal the identifier again); a miss means the
        // conversation is not this person's.
        return c
            .prepare_cached(
                "SELECT id FROM contacts WHERE tenant_id = ?1 AND kind = ?2 AND ident_bi = ?3",
            )?
            .query_row(params![m.tenant_id, ct.kind, ct.ident_bi], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::NotFound("conversation"));
    }
    c.prepare_cached(
        "INSERT INTO contacts (id, tenant_id, kind, ident_bi, ident_ct, name_ct, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant_id, kind, ident_bi) DO NOTHING",
    )?
    .execute(params![
        ct.id,
        m.tenant_id,
        ct.kind,
        ct.ident_bi,
        ct.ident_ct,
        ct.name_ct,
        now
    ])?;
    Ok(c.prepare_cached(
        "SELECT id FROM contacts WHERE tenant_id = ?1 AND kind = ?2 AND ident_bi = ?3",
    )?
    .query_row(params![m.tenant_id, ct.kind, ct.ident_bi], |r| r.get(0))?)
}

fn new_conversation(
    c: &Connection,
    id: &str,
    m: &InboundMessage,
    contact_id: &str,
    now: Millis,
) -> Result<(String, bool), StoreError> {
    c.prepare_cached(
        "INSERT INTO conversations (id, tenant_id, channel, contact_id, created_at, last_activity_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![id, m.tenant_id, m.channel.as_str(), contact_id, now])?;
    Ok((id.to_string(), true))
}

fn resolve_conversation(
    c: &Connection,
    m: &InboundMessage,
    contact_id: &str,
    now: Millis,
) -> Result<(String, bool), StoreError> {
    match &m.target {
        ConversationTarget::New { id } => new_conversation(c, id, m, contact_id, now),
        ConversationTarget::Existing { id } => {
            let owner: Option<(String, String, String)> = c
                .prepare_cached(
                    "SELECT tenant_id, contact_id, channel FROM conversations WHERE id = ?1",
                )?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match owner {
                Some((t, ct, ch))
                    if t == m.tenant_id && ct == contact_id && ch == m.channel.as_str() =>
                {
                    Ok((id.clone(), false))
                }
                _ => Err(StoreError::NotFound("conversation")),
            }
        }
        ConversationTarget::EmailThread { candidates, new_id } => {
            let mut stmt = c.prepare_cached(
                "SELECT conversation_id FROM email_threads WHERE tenant_id = ?1 AND msgid_bi = ?2",
            )?;
            for cand in candidates {
                let hit: Option<String> = stmt
                    .query_row(params![m.tenant_id, cand], |r| r.get(0))
                    .optional()?;
                if let Some(id) = hit {
                    return Ok((id, false));
                }
            }
            drop(stmt);
            new_conversation(c, new_id, m, contact_id, now)
        }
        ConversationTarget::LatestForContact { new_id, within_ms } => {
            let hit: Option<String> = c
                .prepare_cached(
                    "SELECT id FROM conversations
                     WHERE contact_id = ?1 AND channel = ?2 AND last_activity_at >= ?3
                     ORDER BY last_activity_at DESC LIMIT 1",
                )?
                .query_row(
                    params![contact_id, m.channel.as_str(), now - within_ms],
                    |r| r.get(0),
                )
                .optional()?;
            match hit {
                Some(id) => Ok((id, false)),
                None => new_conversation(c, new_id, m, contact_id, now),
            }
        }
    }
}

fn next_seq(c: &Connection, conversation_id: &str, now: Millis) -> Result<i64, StoreError> {
    c.prepare_cached(
        "UPDATE conversations SET message_count = message_count + 1, last_activity_at = ?2
         WHERE id = ?1 RETURNING message_count",
    )?
    .query_row(params![conversation_id, now], |r| r.get(0))
    .optional()?
    .ok_or(StoreError::NotFound("conversation"))
}

#[allow(clippy::too_many_arguments)]
fn insert_message(
    c: &Connection,
    id: &str,
    tenant_id: &str,
    conversation_id: &str,
    seq: i64,
    direction: &str,
    dedupe_key: Option<&[u8]>,
    client_key: Option<&[u8]>,
    body_ct: &[u8],
    subject_ct: Option<&[u8]>,
    size: i64,
    received_at: Millis,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        // A message into a conversation already stamped for purge (its
        // tenant terminated a moment ago) is stamped with it, so it goes
        // with the conversation and never outlives it.
        "INSERT INTO messages (id, tenant_id, conversation_id, seq, direction, dedupe_key,
            client_key, body_ct, subject_ct, size, received_at, committed_at, purge_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                 (SELECT purge_after FROM conversations WHERE id = ?3))",
    )?
    .execute(params![
        id,
        tenant_id,
        conversation_id,
        seq,
        direction,
        dedupe_key,
        client_key,
        body_ct,
        subject_ct,
        size,
        received_at,
        now
    ])?;
    Ok(())
}

/// Adds the message to the batch's traffic-trace row: shape only (tenant,
/// channel, conversation, direction, size). [`flush_trace`] writes it in the
/// message's own transaction, so an entry exists exactly when its message
/// committed.
fn queue_trace(ctx: &mut Ctx, e: &crate::traffic::Entry) {
    if ctx.traffic_trace {
        if ctx.trace.is_empty() {
            ctx.trace = crate::traffic::entries_start();
        }
        crate::traffic::push_entry(&mut ctx.trace, e);
        ctx.trace_count += 1;
    }
}

fn inbound(
    c: &Connection,
    ctx: &mut Ctx,
    m: &InboundMessage,
    now: Millis,
) -> Result<StoredMessage, StoreError> {
    if let Some(key) = &m.dedupe_key
        && let Some(existing) = find_duplicate(c, &m.tenant_id, key)?
    {
        return Ok(existing);
    }
    if let (ConversationTarget::Existing { id }, Some(key)) = (&m.target, &m.client_key)
        && let Some(existing) = ctx.recent.conversation(c, id)?.keys.get(key)
    {
        let mut existing = existing.clone();
        existing.duplicate = true;
        return Ok(existing);
    }
    let contact_id = upsert_contact(c, m, now)?;
    let (conversation_id, new_conversation) = resolve_conversation(c, m, &contact_id, now)?;
    let seq = next_seq(c, &conversation_id, now)?;
    insert_message(
        c,
        &m.message_id,
        &m.tenant_id,
        &conversation_id,
        seq,
        "inbound",
        m.dedupe_key.as_deref(),
        m.client_key.as_deref(),
        &m.body_ct,
        m.subject_ct.as_deref(),
        m.size,
        m.received_at,
        now,
    )?;
    if ctx.traffic_trace {
        queue_trace(
            ctx,
            &crate::traffic::Entry {
                tenant_id: m.tenant_id.clone(),
                conversation_id: conversation_id.clone(),
                channel: m.channel,
                direction: crate::stats::Direction::Inbound,
                size: u64::try_from(m.size).unwrap_or(0),
            },
        );
    }
    if let Some(key) = &m.thread_key {
        c.prepare_cached(
            "INSERT INTO email_threads (tenant_id, msgid_bi, conversation_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![m.tenant_id, key, conversation_id])?;
    }
    let stored = StoredMessage {
        message_id: m.message_id.clone(),
        conversation_id,
        seq,
        received_at: m.received_at,
        committed_at: now,
        duplicate: false,
        new_conversation,
    };
    if let Some(key) = &m.client_key {
        let conv = if new_conversation {
            ctx.recent.tick += 1;
            ctx.recent
                .convs
                .entry(stored.conversation_id.clone())
                .or_default()
        } else {
            ctx.recent.conversation(c, &stored.conversation_id)?
        };
        conv.note(key, &stored);
    }
    Ok(stored)
}

fn outbound(
    c: &Connection,
    ctx: &mut Ctx,
    m: &OutboundMessage,
    now: Millis,
) -> Result<StoredMessage, StoreError> {
    let owner: Option<(String, String)> = c
        .prepare_cached("SELECT tenant_id, channel FROM conversations WHERE id = ?1")?
        .query_row(params![m.conversation_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((_, channel)) = owner.filter(|(t, _)| *t == m.tenant_id) else {
        return Err(StoreError::NotFound("conversation"));
    };
    // A stored channel this build does not know is not traced.
    let channel = Channel::parse(&channel);
    let seq = next_seq(c, &m.conversation_id, now)?;
    insert_message(
        c,
        &m.message_id,
        &m.tenant_id,
        &m.conversation_id,
        seq,
        "outbound",
        None,
        None,
        &m.body_ct,
        None,
        m.size,
        m.received_at,
        now,
    )?;
    if let Some(channel) = channel.filter(|_| ctx.traffic_trace) {
        queue_trace(
            ctx,
            &crate::traffic::Entry {
                tenant_id: m.tenant_id.clone(),
                conversation_id: m.conversation_id.clone(),
                channel,
                direction: crate::stats::Direction::Outbound,
                size: u64::try_from(m.size).unwrap_or(0),
            },
        );
    }
    Ok(StoredMessage {
        message_id: m.message_id.clone(),
        conversation_id: m.conversation_id.clone(),
        seq,
        received_at: m.received_at,
        committed_at: now,
        duplicate: false,
        new_conversation: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Connection {
        let c = Connection::open(dir.join("main.sqlite")).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 50;")
            .unwrap();
        let k = dir.join("keyring.sqlite");
        c.execute("ATTACH DATABASE ?1 AS keyring", [k.to_str().unwrap()])
            .unwrap();
        c.execute_batch("PRAGMA keyring.journal_mode = WAL;")
            .unwrap();
        c
    }

    fn wal_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("main.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// A database with rows in both files, a reader holding the snapshot
    /// before a newer write (so TRUNCATE cannot reset the WAL under it), and
    /// the writer connection.
    fn busy_wal(dir: &std::path::Path) -> (Connection, Connection) {
        let writer = open(dir);
        writer
            .execute_batch(
                "CREATE TABLE t (v BLOB); INSERT INTO t VALUES (randomblob(5000));
                 CREATE TABLE keyring.k (v BLOB);",
            )
            .unwrap();
        let reader = open(dir);
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        writer
            .execute_batch("DELETE FROM t; INSERT INTO t VALUES (randomblob(5000));")
            .unwrap();
        (writer, reader)
    }

    fn busy_timeout_ms(c: &Connection) -> i64 {
        c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap()
    }

    fn poll(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::yield_now();
        }
    }

    /// A truncation SQLite answers with busy is not taken for done: it stays
    /// owed (and on disk), and the checkpointer's next round finishes it.
    #[test]
    fn a_truncation_that_sqlite_refuses_stays_pending_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = busy_wal(dir.path());
        let marker = dir.path().join("owed");
        let gate = WalGate::new(Some(marker.clone()));
        assert!(!gate.pending());
        let err = gate.truncate_after_erasure(&writer).unwrap_err();
        assert!(err.contains("busy"), "{err}");
        assert!(gate.pending());
        assert!(marker.exists());
        assert!(wal_len(dir.path()) > 0);
        // The connection's own busy timeout is back.
        assert_eq!(busy_timeout_ms(&writer), 50);

        // Still held: the checkpointer's round does not clear it either.
        let checkpointer = open(dir.path());
        gate.checkpoint(&checkpointer);
        assert!(gate.pending());
        assert!(marker.exists());

        reader.execute_batch("COMMIT;").unwrap();
        gate.checkpoint(&checkpointer);
        assert!(!gate.pending());
        assert!(!marker.exists());
        assert_eq!(wal_len(dir.path()), 0);
    }

    /// B3: while a reader holds an old snapshot, an owed truncation retried
    /// by the checkpointer round after round never holds SQLite's writer
    /// lock long enough to fail a commit: the writer's busy timeout here
    /// (1 s) is far below the wait a blocking truncation would take (its
    /// 5 s busy timeout). Every commit succeeds; the truncation stays owed
    /// until the reader is gone, then the checkpointer does it.
    #[test]
    fn an_owed_truncation_never_fails_a_concurrent_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = busy_wal(dir.path());
        writer.busy_timeout(Duration::from_secs(1)).unwrap();
        let marker = dir.path().join("owed");
        let gate = Arc::new(WalGate::new(Some(marker.clone())));
        assert!(gate.truncate_after_erasure(&writer).is_err());
        assert_eq!(busy_timeout_ms(&writer), 1000);

        let checkpointer = open(dir.path());
        checkpointer.busy_timeout(Duration::from_secs(5)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (gate, stop, rounds) = (gate.clone(), stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    gate.checkpoint(&checkpointer);
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
                checkpointer
            })
        };
        // Commits interleaved with at least 50 checkpointer rounds.
        let mut commits = 0;
        let first_round = rounds.load(Ordering::SeqCst);
        while commits < 50 || rounds.load(Ordering::SeqCst) < first_round + 50 {
            writer
                .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (randomblob(100)); COMMIT;")
                .unwrap_or_else(|e| panic!("commit {commits} failed: {e}"));
            commits += 1;
            assert!(commits < 1_000_000, "the checkpointer made no rounds");
        }
        assert!(gate.pending(), "truncated under a reader's snapshot");
        assert!(marker.exists());

        reader.execute_batch("COMMIT;").unwrap();
        poll("the checkpointer truncates once the reader is gone", || {
            !gate.pending()
        });
        stop.store(true, Ordering::SeqCst);
        let checkpointer = thread.join().unwrap();
        assert_eq!(busy_timeout_ms(&checkpointer), 5000);
        assert!(!marker.exists());
        assert_eq!(wal_len(dir.path()), 0);
    }

    /// B5: a truncation that started before a request was counted does not
    /// clear it, even if it succeeds after the request.
    #[test]
    fn a_request_counted_after_a_truncation_started_stays_owed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("owed");
        let gate = WalGate::new(Some(marker.clone()));
        gate.owe(); // an earlier erasure, still owed
        // The checkpointer's truncation starts, seeing one request owed.
        let started = gate.requested.load(Ordering::SeqCst);
        assert_eq!(started, 1);
        gate.owe(); // a new erasure commits meanwhile
        gate.truncated(started); // the in-flight truncation succeeds
        assert!(gate.pending(), "the newer request was dropped");
        assert!(marker.exists());
        // A truncation started after the request clears it.
        gate.truncated(gate.requested.load(Ordering::SeqCst));
        assert!(!gate.pending());
        assert!(!marker.exists());
        // An old success reported late does not go backwards.
        gate.truncated(started);
        assert!(!gate.pending());
    }

    /// A marker left by an earlier run makes the truncation owed at start.
    #[test]
    fn a_marker_found_at_start_makes_the_truncation_owed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("owed");
        assert!(!WalGate::new(Some(marker.clone())).pending());
        write_marker(&marker).unwrap();
        let gate = WalGate::new(Some(marker.clone()));
        assert!(gate.pending());
        let c = open(dir.path());
        gate.checkpoint(&c);
        assert!(!gate.pending());
        assert!(!marker.exists());
    }
}

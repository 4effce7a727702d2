//! Group commit on PostgreSQL: a writer task per lane drains everything
//! queued, applies it in one transaction on one connection, commits, then
//! answers every reply. Nothing is acknowledged before its COMMIT returned.
//! If one op fails, the batch is rolled back and replayed with a savepoint
//! per op so that op alone fails (as the SQLite writer does). A deadlock or
//! serialization failure against another node's batch retries the batch.
//!
//! The same SQL as `store/writer.rs`, with two differences that several
//! nodes on one database need:
//! - no in-memory resend cache: a web-chat resend is recognised through an
//!   index on (conversation, client key), so a resend reaching another node
//!   is still answered with its first ack (any resend in the conversation,
//!   where SQLite recognises one among the newest 256);
//! - a batch first locks the contacts whose WhatsApp or email messages it
//!   stores, then the existing conversations it writes to, each in id
//!   order, so two nodes' batches over the same conversations queue behind
//!   each other instead of deadlocking, and two nodes getting a sender's
//!   first message of a session (or thread) at once start one conversation,
//!   not one each ([`lock_contacts`]);
//! - a web-chat message into an existing conversation, and an agent reply,
//!   is one statement, and runs of them into distinct conversations are
//!   pipelined (one round trip for the run);
//! - retention purges take their rows with `FOR UPDATE SKIP LOCKED`, so two
//!   nodes purging at once never delete (or count) the same row, and a purge
//!   never waits on rows that ingest holds.
//!
//! The traffic trace ([`crate::traffic`]) is written as on SQLite: one
//! `traffic_trace` row per committed batch, in its transaction, packing the
//! entries of exactly the messages that batch stored (an op rolled back to
//! its savepoint, or an attempt of the batch rolled back and retried, leaves
//! none).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::{ClientWrapper, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::notify;
use crate::clock::{Clock, Millis};
use crate::stats::Direction;
use crate::store::{
    AuditRecord, Channel, ClusterEvent, ConsentRecord, ConversationTarget, DsrAction,
    DsrCompletion, DsrRecord, Erased, InboundMessage, IncidentRecord, OutboundMessage, PurgeTable,
    PurgedBatch, StoreError, StoredMessage, TenantRecord, TenantTransition, TenantUpdate, WriteOp,
    WriteOutcome,
};

/// Most ops in one transaction; bounds commit latency under a flood.
const MAX_BATCH: usize = 4096;
/// Fast-path attempts of a batch that hit a deadlock or serialization failure.
const TRANSIENT_TRIES: usize = 3;

pub(crate) type Reply = oneshot::Sender<Result<WriteOutcome, StoreError>>;
pub(crate) type Job = (WriteOp, Reply);
type Conn = ClientWrapper;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One writer task and its queue.
pub(crate) struct Lane {
    pub tx: mpsc::Sender<Job>,
    pub running: Arc<AtomicBool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// `traffic_trace`: each stored message is also recorded in its batch's
/// traffic-trace row (`--no-traffic-trace` turns it off).
pub(crate) fn spawn_lane(
    pool: Pool,
    clock: Arc<dyn Clock>,
    name: &'static str,
    node: Arc<str>,
    traffic_trace: bool,
) -> Lane {
    let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let task = tokio::spawn(async move {
        // Key destructions go through the main lane: it owes the keyring
        // rewrite at start too (a node stopped before rewriting it).
        let keyring_owed = name == "main";
        run(pool, rx, clock, node, traffic_trace, keyring_owed).await;
        flag.store(false, Ordering::SeqCst);
        tracing::debug!(lane = name, "PostgreSQL writer stopped");
    });
    Lane { tx, running, task }
}

/// What ops need besides the connection, and leave to do after the commit.
struct Ctx {
    /// This node, named in the events it notifies.
    node: Arc<str>,
    /// A key was destroyed: rewrite the keyring table so the old row
    /// version (with the wrapped key) leaves the table's files.
    vacuum_keyring: bool,
    /// Each stored message is also recorded in the batch's traffic-trace row.
    traffic_trace: bool,
}

/// A batch's traffic-trace row in the making: the packed entries
/// ([`crate::traffic::push_entry`]) of the messages stored so far.
#[derive(Default)]
struct Trace {
    entries: Vec<u8>,
    count: i64,
    /// Entries of this batch an erasure in it removed before they were
    /// written (counted in the erasure's `trace_entries` too).
    forgotten: i64,
}

impl Trace {
    fn push(&mut self, e: &crate::traffic::Entry) {
        if self.entries.is_empty() {
            self.entries = crate::traffic::entries_start();
        }
        crate::traffic::push_entry(&mut self.entries, e);
        self.count += 1;
    }

    /// An erasure in this batch: its conversations' entries not yet written
    /// (messages stored earlier in the batch) go too, and are counted.
    fn forget_erased(&mut self, o: &mut WriteOutcome) {
        let WriteOutcome::Erased(x) = o else {
            return;
        };
        if self.count == 0 || x.conversation_ids.is_empty() {
            return;
        }
        let erased: std::collections::HashSet<&str> =
            x.conversation_ids.iter().map(String::as_str).collect();
        if let Some(kept) = crate::traffic::without_conversations(&self.entries, &erased) {
            self.entries = kept.entries;
            self.count = kept.count;
            x.trace_entries += kept.removed;
            self.forgotten += i64::try_from(kept.removed).unwrap_or(i64::MAX);
        }
    }

    /// Writes the row inside the batch's transaction, dated `now` (when the
    /// batch was stored); nothing when the batch stored no message.
    async fn write(self, c: &Conn, now: Millis) -> Result<(), StoreError> {
        if self.count == 0 {
            return Ok(());
        }
        exec(
            c,
            "INSERT INTO traffic_trace (at, count, entries, purge_after) VALUES ($1, $2, $3, $4)",
            &[
                &now,
                &self.count,
                &self.entries,
                &now.saturating_add(crate::traffic::TRACE_RETENTION_MS),
            ],
        )
        .await?;
        Ok(())
    }
}

/// What an op wrote, and the trace entry of the message it stored (if any).
type Applied = (WriteOutcome, Option<crate::traffic::Entry>);

async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<Job>,
    clock: Arc<dyn Clock>,
    node: Arc<str>,
    traffic_trace: bool,
    mut keyring_owed: bool,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // An owed rewrite is tried at once, then at most every KEYRING_RETRY
    // (each try may wait its lock timeout: never before every batch).
    let mut keyring_try_at = tokio::time::Instant::now();
    loop {
        if keyring_owed && tokio::time::Instant::now() >= keyring_try_at {
            keyring_owed = !rewrite_keyring(&pool).await;
            keyring_try_at = tokio::time::Instant::now() + KEYRING_RETRY;
        }
        let next = if keyring_owed {
            match tokio::time::timeout_at(keyring_try_at, rx.recv()).await {
                Ok(next) => next,
                Err(_) => continue,
            }
        } else {
            rx.recv().await
        };
        let Some(first) = next else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if commit_batch(&pool, &node, traffic_trace, &mut batch, clock.as_ref()).await {
            keyring_owed = true;
            keyring_try_at = tokio::time::Instant::now();
        }
    }
}

/// How long the keyring rewrite may wait for its table lock, so ingest on
/// this lane never stalls behind a long reader of the keyring (it is
/// tried again instead, as SQLite's owed WAL truncation is).
const KEYRING_LOCK_TIMEOUT: &str = "100ms";
/// Pause between tries of an owed keyring rewrite on an idle lane.
const KEYRING_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Rewrites the keyring table (`VACUUM FULL`) so a destroyed key's old row
/// version leaves the table's files; `false` when it could not (the lock
/// was not had in time, or the database is away).
async fn rewrite_keyring(pool: &Pool) -> bool {
    let Ok(conn) = pool.get().await else {
        return false;
    };
    // VACUUM cannot run in a multi-statement string: one call each.
    let result = async {
        conn.batch_execute(&format!("SET lock_timeout = '{KEYRING_LOCK_TIMEOUT}'"))
            .await?;
        let vacuumed = conn.batch_execute("VACUUM FULL keyring.tenant_keys").await;
        conn.batch_execute("RESET lock_timeout").await?;
        vacuumed
    }
    .await;
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "rewriting the keyring after a key destruction: trying again later");
            false
        }
    }
}

async fn commit_batch(
    pool: &Pool,
    node: &Arc<str>,
    traffic_trace: bool,
    batch: &mut Vec<Job>,
    clock: &dyn Clock,
) -> bool {
    let mut ctx = Ctx {
        node: node.clone(),
        vacuum_keyring: false,
        traffic_trace,
    };
    // A connection lost before COMMIT was sent (a database restart, a
    // terminated backend) leaves nothing behind: the batch is applied again
    // on a fresh connection. Lost during COMMIT, the outcome is unknown and
    // the batch fails (the clients' resends are idempotent).
    let mut outcome = Err(StoreError::Closed);
    for attempt in 0..2 {
        let conn = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                outcome = Err(StoreError::Io(format!(
                    "database unavailable: {}",
                    super::pool_error(&e)
                )));
                continue;
            }
        };
        match apply_batch(&conn, &mut ctx, batch, clock.now_ms()).await {
            Ok(results) => {
                outcome = Ok(results);
                break;
            }
            Err(BatchError::BeforeCommit(e)) if attempt == 0 && connection_lost(&conn, &e) => {
                tracing::warn!(error = %e, ops = batch.len(), "database connection lost; applying the batch again");
                drop(deadpool_postgres::Object::take(conn));
                outcome = Err(e);
            }
            Err(BatchError::BeforeCommit(e) | BatchError::AtCommit(e)) => {
                // Leave no open transaction on a connection that goes back to the pool.
                let _ = conn.batch_execute("ROLLBACK").await;
                outcome = Err(e);
                break;
            }
        }
    }
    // A key destruction may have committed (even when COMMIT's answer was
    // lost): the keyring rewrite is owed; a needless one is harmless.
    let keyring_owed = ctx.vacuum_keyring;
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
            tracing::error!(error = %e, ops = batch.len(), "group commit failed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Io(format!("commit failed: {e}"))));
            }
        }
    }
    keyring_owed
}

/// Why a batch did not commit.
enum BatchError {
    /// Nothing was committed.
    BeforeCommit(StoreError),
    /// COMMIT itself failed: it may or may not have taken effect.
    AtCommit(StoreError),
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::BeforeCommit(e)
    }
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        BatchError::BeforeCommit(e.into())
    }
}

async fn commit(c: &Conn) -> Result<(), BatchError> {
    c.batch_execute("COMMIT")
        .await
        .map_err(|e| BatchError::AtCommit(e.into()))
}

/// The connection died (not an error of the batch's own).
pub(crate) fn connection_lost(conn: &Conn, e: &StoreError) -> bool {
    if conn.is_closed() {
        return true;
    }
    match e {
        StoreError::Postgres(pe) => {
            pe.is_closed()
                || pe.code().is_some_and(|c| {
                    *c == SqlState::ADMIN_SHUTDOWN
                        || *c == SqlState::CRASH_SHUTDOWN
                        || *c == SqlState::CANNOT_CONNECT_NOW
                })
        }
        _ => false,
    }
}

fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(pe) => pe.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }),
        _ => false,
    }
}

/// Begins the batch's transaction and takes its advance locks (contacts,
/// then conversations, each in id order). Rows an op finds only as it runs
/// (a WhatsApp session's conversation) are locked then, so another node's
/// batch can still meet these in another order: PostgreSQL then aborts one
/// of the two, and if it is this one while it takes its advance locks, it
/// starts again rather than failing the whole batch.
async fn begin_locked(
    c: &Conn,
    contacts: &[(&str, &str, &[u8])],
    conversations: &[&str],
) -> Result<(), StoreError> {
    let mut last = StoreError::Closed;
    for _ in 0..TRANSIENT_TRIES {
        c.batch_execute("BEGIN").await?;
        let locked = async {
            lock_contacts(c, contacts).await?;
            lock_conversations(c, conversations).await
        }
        .await;
        match locked {
            Ok(()) => return Ok(()),
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, "advance locks met another batch's; starting again");
                c.batch_execute("ROLLBACK").await?;
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Applies the batch in one transaction. Fast path: no savepoints. If an op
/// fails, the transaction is rolled back; a deadlock retries the fast path,
/// anything else replays the batch with a savepoint per op.
async fn apply_batch(
    c: &Conn,
    ctx: &mut Ctx,
    batch: &[Job],
    now: Millis,
) -> Result<Vec<Result<WriteOutcome, StoreError>>, BatchError> {
    let contacts = session_contacts(batch);
    let conversations = existing_conversations(batch);
    for _ in 0..TRANSIENT_TRIES {
        begin_locked(c, &contacts, &conversations).await?;
        // Rebuilt on every attempt: a rolled-back attempt's entries are gone.
        let mut trace = Trace::default();
        let mut results = Vec::with_capacity(batch.len());
        let mut failed = None;
        let mut i = 0;
        while i < batch.len() && failed.is_none() {
            // A run of messages into distinct conversations is pipelined:
            // their statements go out together, one round trip for all.
            let run = pipelined_run(&batch[i..]);
            if run > 1 {
                // Prepared first, so the run's statements go out at once
                // instead of each waiting for its own Parse.
                for sql in [INBOUND_EXISTING, OUTBOUND, NOTIFY] {
                    c.prepare_cached(sql).await?;
                }
                let shared: &Ctx = ctx;
                let outs = futures_util::future::join_all(
                    batch[i..i + run]
                        .iter()
                        .map(|(op, _)| apply_message(c, shared, op, now)),
                )
                .await;
                for o in outs {
                    match o {
                        Ok((o, entry)) if failed.is_none() => {
                            if let Some(e) = &entry {
                                trace.push(e);
                            }
                            results.push(Ok(o));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                i += run;
                continue;
            }
            match apply(c, ctx, &batch[i].0, now).await {
                Ok((mut o, entry)) => {
                    if let Some(e) = &entry {
                        trace.push(e);
                    }
                    trace.forget_erased(&mut o);
                    results.push(Ok(o));
                }
                Err(e) => failed = Some(e),
            }
            i += 1;
        }
        let Some(e) = failed else {
            let traced = trace.count + trace.forgotten;
            trace.write(c, now).await?;
            notify_usage(c, ctx, batch, &results, traced).await?;
            commit(c).await?;
            return Ok(results);
        };
        if connection_lost(c, &e) {
            return Err(BatchError::BeforeCommit(e));
        }
        c.batch_execute("ROLLBACK").await?;
        if !is_transient(&e) {
            break;
        }
        tracing::debug!(error = %e, "batch hit a transient conflict; retrying");
    }
    begin_locked(c, &contacts, &conversations).await?;
    // Only ops that keep their savepoint add their entry.
    let mut trace = Trace::default();
    let mut results = Vec::with_capacity(batch.len());
    for (op, _) in batch {
        let mut r = Err(StoreError::Closed);
        for _ in 0..TRANSIENT_TRIES {
            c.batch_execute("SAVEPOINT op").await?;
            r = apply(c, ctx, op, now).await;
            if r.is_ok() {
                c.batch_execute("RELEASE SAVEPOINT op").await?;
                break;
            }
            c.batch_execute("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
                .await?;
            if !r.as_ref().err().is_some_and(is_transient) {
                break;
            }
        }
        match r {
            Err(e) if connection_lost(c, &e) => return Err(BatchError::BeforeCommit(e)),
            Ok((mut o, entry)) => {
                if let Some(e) = &entry {
                    trace.push(e);
                }
                trace.forget_erased(&mut o);
                results.push(Ok(o));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let traced = trace.count + trace.forgotten;
    trace.write(c, now).await?;
    notify_usage(c, ctx, batch, &results, traced).await?;
    commit(c).await?;
    Ok(results)
}

/// The contacts (tenant, kind, identifier blind index) whose messages may
/// start a conversation: a WhatsApp session or an email thread, where the
/// store, not the client, decides between an existing conversation and a
/// new one. Sorted, once each.
fn session_contacts(batch: &[Job]) -> Vec<(&str, &str, &[u8])> {
    let mut keys: Vec<(&str, &str, &[u8])> = batch
        .iter()
        .filter_map(|(op, _)| match op {
            WriteOp::Inbound(m)
                if matches!(
                    m.target,
                    ConversationTarget::LatestForContact { .. }
                        | ConversationTarget::EmailThread { .. }
                ) =>
            {
                Some((
                    m.tenant_id.as_str(),
                    m.contact.kind,
                    m.contact.ident_bi.as_slice(),
                ))
            }
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Locks the existing rows of those contacts, in id order, before any op
/// runs. Two nodes' batches with a message of one sender then run one after
/// the other: the second looks up the sender's conversation only once the
/// first committed, so it finds the conversation the first created instead
/// of creating another (and a second delivery of one email or WhatsApp
/// message finds the first, rather than failing on its unique key). A
/// contact not stored yet needs no lock: the second node's insert of it
/// waits on the first's uniquely indexed row, with the same effect.
async fn lock_contacts(c: &Conn, keys: &[(&str, &str, &[u8])]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let kinds: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let idents: Vec<&[u8]> = keys.iter().map(|k| k.2).collect();
    query(
        c,
        "SELECT 1 FROM contacts c
         JOIN unnest($1::text[], $2::text[], $3::bytea[]) AS k (tenant_id, kind, ident_bi)
           ON c.tenant_id = k.tenant_id AND c.kind = k.kind AND c.ident_bi = k.ident_bi
         ORDER BY c.id FOR UPDATE OF c",
        &[&tenants, &kinds, &idents],
    )
    .await?;
    Ok(())
}

/// The existing conversations the batch's messages go to, sorted.
fn existing_conversations(batch: &[Job]) -> Vec<&str> {
    let mut ids: Vec<&str> = batch
        .iter()
        .filter_map(|(op, _)| match op {
            WriteOp::Inbound(m) => match &m.target {
                ConversationTarget::Existing { id } => Some(id.as_str()),
                _ => None,
            },
            WriteOp::Outbound(m) => Some(m.conversation_id.as_str()),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Takes the conversations' row locks in id order, before any op runs: the
/// batch's `next_seq` updates then never wait on another node's batch in an
/// order that could deadlock.
async fn lock_conversations(c: &Conn, ids: &[&str]) -> Result<(), StoreError> {
    if !ids.is_empty() {
        query(
            c,
            "SELECT 1 FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
    }
    Ok(())
}

async fn exec(c: &Conn, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}

async fn query(c: &Conn, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

async fn query_opt(c: &Conn, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

async fn query_one(c: &Conn, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_one(&st, params).await?)
}

/// Web chat's hot path: see [`inbound_existing`].
const INBOUND_EXISTING: &str = "WITH conv AS (
             UPDATE conversations SET message_count = message_count + 1, last_activity_at = $1
             WHERE id = $2 AND tenant_id = $3 AND channel = $4
               AND contact_id = (SELECT id FROM contacts
                                 WHERE tenant_id = $3 AND kind = $5 AND ident_bi = $6)
               AND ($7::bytea IS NULL OR NOT EXISTS
                     (SELECT 1 FROM messages WHERE conversation_id = $2 AND client_key = $7))
             RETURNING message_count, purge_after
         )
         INSERT INTO messages (id, tenant_id, conversation_id, seq, direction, dedupe_key,
             client_key, body_ct, subject_ct, size, received_at, committed_at, purge_after)
         SELECT $8, $3, $2, conv.message_count, 'inbound', NULL, $7, $9, $10, $11, $12, $1,
                conv.purge_after
         FROM conv
         RETURNING seq";
/// An agent reply: the owner check, the seq and the insert; returns the
/// seq and the conversation's channel (for the traffic trace).
const OUTBOUND: &str = "WITH conv AS (
             UPDATE conversations SET message_count = message_count + 1, last_activity_at = $1
             WHERE id = $2 AND tenant_id = $3
             RETURNING message_count, channel, purge_after
         ), ins AS (
             INSERT INTO messages (id, tenant_id, conversation_id, seq, direction, dedupe_key,
                 client_key, body_ct, subject_ct, size, received_at, committed_at, purge_after)
             SELECT $4, $3, $2, conv.message_count, 'outbound', NULL, NULL, $5, NULL, $6, $7, $1,
                    conv.purge_after
             FROM conv
             RETURNING seq
         )
         SELECT ins.seq, conv.channel FROM ins CROSS JOIN conv";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// Ops that may share a pipelined round trip on the fast path: a message
/// into an existing conversation (web chat) or an agent reply. Each is one
/// statement that writes, or writes nothing and falls back to reads.
fn pipelines(op: &WriteOp) -> bool {
    match op {
        WriteOp::Inbound(m) => {
            matches!(m.target, ConversationTarget::Existing { .. })
                && m.dedupe_key.is_none()
                && m.thread_key.is_none()
                && m.contact.ident_ct.is_empty()
        }
        WriteOp::Outbound(_) => true,
        _ => false,
    }
}

/// How many ops from the start of `ops` form a pipelined run: messages
/// that [`pipelines`] allows, each into a conversation no earlier op of the
/// run writes to. Ops of one conversation therefore never overtake each
/// other, whatever order the pipelined statements reach the server in.
fn pipelined_run(ops: &[Job]) -> usize {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    ops.iter()
        .take_while(|(op, _)| {
            pipelines(op)
                && match op {
                    WriteOp::Inbound(m) => match &m.target {
                        ConversationTarget::Existing { id } => seen.insert(id.as_str()),
                        _ => false,
                    },
                    WriteOp::Outbound(m) => seen.insert(m.conversation_id.as_str()),
                    _ => false,
                }
        })
        .count()
}

/// A message write, with its trace entry when the trace is on and a
/// message was stored (a resend stores none); needs nothing of the context
/// but the node's name and the trace switch.
async fn apply_message(
    c: &Conn,
    ctx: &Ctx,
    op: &WriteOp,
    now: Millis,
) -> Result<Applied, StoreError> {
    match op {
        WriteOp::Inbound(m) => {
            let stored = inbound(c, m, now).await?;
            let entry = (ctx.traffic_trace && !stored.duplicate).then(|| crate::traffic::Entry {
                tenant_id: m.tenant_id.clone(),
                conversation_id: stored.conversation_id.clone(),
                channel: m.channel,
                direction: Direction::Inbound,
                size: u64::try_from(m.size).unwrap_or(0),
            });
            Ok((WriteOutcome::Message(stored), entry))
        }
        WriteOp::Outbound(m) => {
            let (stored, channel) = outbound(c, m, now).await?;
            let event = ClusterEvent::Outbound {
                tenant_id: m.tenant_id.clone(),
                conversation_id: stored.conversation_id.clone(),
                seq: stored.seq,
            };
            notify(c, ctx, &event).await?;
            // A stored channel this build does not know is not traced (as on SQLite).
            let entry = Channel::parse(&channel)
                .filter(|_| ctx.traffic_trace)
                .map(|channel| crate::traffic::Entry {
                    tenant_id: m.tenant_id.clone(),
                    conversation_id: stored.conversation_id.clone(),
                    channel,
                    direction: Direction::Outbound,
                    size: u64::try_from(m.size).unwrap_or(0),
                });
            Ok((WriteOutcome::Message(stored), entry))
        }
        _ => Err(StoreError::Io("not a message write".into())),
    }
}

async fn apply(c: &Conn, ctx: &mut Ctx, op: &WriteOp, now: Millis) -> Result<Applied, StoreError> {
    if matches!(op, WriteOp::Inbound(_) | WriteOp::Outbound(_)) {
        return apply_message(c, ctx, op, now).await;
    }
    apply_other(c, ctx, op, now).await.map(|o| (o, None))
}

/// Every write but a message's.
async fn apply_other(
    c: &Conn,
    ctx: &mut Ctx,
    op: &WriteOp,
    now: Millis,
) -> Result<WriteOutcome, StoreError> {
    match op {
        WriteOp::CreateTenant(t) => {
            create_tenant(c, t).await?;
            notify_tenant(c, ctx, &t.id).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Audit(a) => audit(c, a).await.map(|_| WriteOutcome::Done),
        WriteOp::UpdateTenant(u) => {
            update_tenant(c, u).await?;
            notify_tenant(c, ctx, &u.id).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::TransitionTenant(t) => {
            transition_tenant(c, t).await?;
            notify_tenant(c, ctx, &t.to.id).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::StampTenantPurge {
            tenant_id,
            purge_after,
            batch,
        } => stamp_tenant_purge(c, tenant_id, *purge_after, *batch)
            .await
            .map(WriteOutcome::Count),
        WriteOp::PurgeBatch { table, now, batch } => purge_batch(c, *table, *now, *batch)
            .await
            .map(WriteOutcome::Purged),
        WriteOp::PutSubprocessors(docs) => {
            put_subprocessors(c, docs).await.map(|_| WriteOutcome::Done)
        }
        WriteOp::SeedSubprocessors(docs) => seed_subprocessors(c, docs)
            .await
            .map(|_| WriteOutcome::Done),
        WriteOp::ReplaceSubprocessor { id, expected, doc } => {
            replace_subprocessor(c, id, expected.as_deref(), doc).await?;
            // The other nodes reload the registry once this commits.
            notify(c, ctx, &ClusterEvent::Registry).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DestroyKey { tenant_id, at } => {
            ctx.vacuum_keyring = true;
            destroy_key(c, tenant_id, *at).await?;
            notify_tenant(c, ctx, tenant_id).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Inbound(_) | WriteOp::Outbound(_) => {
            apply_message(c, ctx, op, now).await.map(|(o, _)| o)
        }
        // Requests and incidents: the other nodes reload their restrictions
        // and open clocks once this commits (sent in the transaction, so a
        // crash after the commit cannot lose it).
        WriteOp::PutDsr(r) => {
            put_dsr(c, r).await?;
            notify(c, ctx, &ClusterEvent::Compliance).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::CompleteDsr(d) => {
            let out = complete_dsr(c, d).await?;
            notify(c, ctx, &ClusterEvent::Compliance).await?;
            Ok(out)
        }
        WriteOp::TakeDsrExport(r) => take_dsr_export(c, r).await.map(WriteOutcome::Blob),
        WriteOp::PutIncident(i) => {
            put_incident(c, i).await?;
            notify(c, ctx, &ClusterEvent::Compliance).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutConsent(r) => put_consent(c, r).await.map(|_| WriteOutcome::Done),
        WriteOp::EndTenantConsents {
            tenant_id,
            purge_after,
        } => end_tenant_consents(c, tenant_id, *purge_after)
            .await
            .map(WriteOutcome::Count),
    }
}

/// Tells the other nodes, at this transaction's commit (nothing if it rolls back).
async fn notify(c: &Conn, ctx: &Ctx, event: &ClusterEvent) -> Result<(), StoreError> {
    if let Some(p) = notify::payload(&ctx.node, event) {
        exec(c, NOTIFY, &[&notify::CHANNEL, &p]).await?;
    }
    Ok(())
}

/// Traffic-trace messages the batch's purges deleted.
fn trace_purged(batch: &[Job], results: &[Result<WriteOutcome, StoreError>]) -> i64 {
    batch
        .iter()
        .zip(results)
        .filter_map(|((op, _), r)| match (op, r) {
            (
                WriteOp::PurgeBatch {
                    table: PurgeTable::TrafficTrace,
                    ..
                },
                Ok(WriteOutcome::Purged(p)),
            ) => Some(i64::try_from(p.rows).unwrap_or(i64::MAX)),
            _ => None,
        })
        .sum()
}

/// The trace entries the batch's erasures removed.
fn trace_erased(results: &[Result<WriteOutcome, StoreError>]) -> i64 {
    results
        .iter()
        .filter_map(|r| match r {
            Ok(WriteOutcome::Erased(e)) => Some(i64::try_from(e.trace_entries).unwrap_or(i64::MAX)),
            _ => None,
        })
        .sum()
}

/// What the batch's committed ops change in each tenant's stored data.
fn usage_deltas(
    batch: &[Job],
    results: &[Result<WriteOutcome, StoreError>],
) -> Vec<(String, i64, i64, i64)> {
    let mut per: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for ((op, _), r) in batch.iter().zip(results) {
        match (op, r) {
            (WriteOp::Inbound(m), Ok(WriteOutcome::Message(s))) if !s.duplicate => {
                let e = per.entry(&m.tenant_id).or_default();
                e.0 += 1;
                e.1 += m.size;
                e.2 += i64::from(s.new_conversation);
            }
            (WriteOp::Outbound(m), Ok(WriteOutcome::Message(_))) => {
                let e = per.entry(&m.tenant_id).or_default();
                e.0 += 1;
                e.1 += m.size;
            }
            (WriteOp::PurgeBatch { .. }, Ok(WriteOutcome::Purged(p))) => {
                for (t, m, b, cv) in &p.per_tenant {
                    let e = per.entry(t).or_default();
                    e.0 -= m;
                    e.1 -= b;
                    e.2 -= cv;
                }
            }
            (WriteOp::CompleteDsr(d), Ok(WriteOutcome::Erased(x))) => {
                let e = per.entry(&d.record.tenant_id).or_default();
                e.0 -= x.messages as i64;
                e.1 -= x.bytes;
                e.2 -= x.conversations as i64;
            }
            _ => {}
        }
    }
    per.into_iter()
        .filter(|(_, d)| *d != (0, 0, 0))
        .map(|(t, (m, b, cv))| (t.to_string(), m, b, cv))
        .collect()
}

/// Tells the other nodes what this batch changes in their usage counters
/// and trace total, at its commit (the origin node counts its own when it
/// acknowledges). `traced`: the messages its trace row holds plus those an
/// erasure in the batch removed before the row was written — the erasures'
/// `trace_entries` count those too, and are subtracted whole, as the
/// origin node does, so the net change is what was written less what was
/// removed from rows written before.
async fn notify_usage(
    c: &Conn,
    ctx: &Ctx,
    batch: &[Job],
    results: &[Result<WriteOutcome, StoreError>],
    traced: i64,
) -> Result<(), StoreError> {
    let deltas = usage_deltas(batch, results);
    // The trace delta rides on the first notification (or one of its own).
    let mut trace = traced - trace_purged(batch, results) - trace_erased(results);
    let mut chunks: Vec<&[(String, i64, i64, i64)]> = deltas.chunks(notify::USAGE_CHUNK).collect();
    if chunks.is_empty() && trace != 0 {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let event = ClusterEvent::Usage {
            deltas: chunk.to_vec(),
            trace: std::mem::take(&mut trace),
        };
        notify(c, ctx, &event).await?;
    }
    Ok(())
}

async fn notify_tenant(c: &Conn, ctx: &Ctx, tenant_id: &str) -> Result<(), StoreError> {
    let event = ClusterEvent::Tenant {
        tenant_id: tenant_id.to_string(),
    };
    notify(c, ctx, &event).await
}

async fn create_tenant(c: &Conn, t: &TenantRecord) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO tenants (id, name, status, dpa_signed_at, created_at, api_key_hash,
            widget_key_hash, phone_number_id, email_address, secrets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &t.id,
            &t.name,
            &t.status,
            &t.dpa_signed_at,
            &t.created_at,
            &t.api_key_hash,
            &t.widget_key_hash,
            &t.phone_number_id,
            &t.email_address,
            &t.secrets,
        ],
    )
    .await?;
    exec(
        c,
        "INSERT INTO keyring.tenant_keys (tenant_id, wrapped_dek) VALUES ($1, $2)",
        &[&t.id, &t.wrapped_dek],
    )
    .await?;
    Ok(())
}

async fn update_tenant(c: &Conn, u: &TenantUpdate) -> Result<(), StoreError> {
    let n = exec(
        c,
        "UPDATE tenants SET status = $2, dpa_signed_at = $3, terminated_at = $4, purge_after = $5
         WHERE id = $1",
        &[
            &u.id,
            &u.status,
            &u.dpa_signed_at,
            &u.terminated_at,
            &u.purge_after,
        ],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    Ok(())
}

async fn transition_tenant(c: &Conn, t: &TenantTransition) -> Result<(), StoreError> {
    let (from, to) = (&t.from, &t.to);
    let n = exec(
        c,
        "UPDATE tenants SET status = $2, dpa_signed_at = $3, terminated_at = $4, purge_after = $5
         WHERE id = $1 AND status = $6 AND dpa_signed_at IS NOT DISTINCT FROM $7
           AND terminated_at IS NOT DISTINCT FROM $8 AND purge_after IS NOT DISTINCT FROM $9",
        &[
            &to.id,
            &to.status,
            &to.dpa_signed_at,
            &to.terminated_at,
            &to.purge_after,
            &from.status,
            &from.dpa_signed_at,
            &from.terminated_at,
            &from.purge_after,
        ],
    )
    .await?;
    if n == 0 {
        return Err(stale_or_missing(c, "tenants", "tenant", &to.id).await);
    }
    Ok(())
}

/// Why a conditional write of row `id` changed nothing: it was changed
/// concurrently ([`StoreError::Stale`]), or it does not exist.
async fn stale_or_missing(c: &Conn, table: &str, what: &'static str, id: &str) -> StoreError {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)");
    match query_one(c, &sql, &[&id]).await {
        Ok(row) => match row.try_get::<_, bool>(0) {
            Ok(true) => StoreError::Stale(what),
            Ok(false) => StoreError::NotFound(what),
            Err(e) => e.into(),
        },
        Err(e) => e,
    }
}

async fn stamp_tenant_purge(
    c: &Conn,
    tenant_id: &str,
    purge_after: Millis,
    batch: u32,
) -> Result<u64, StoreError> {
    let batch = i64::from(batch);
    let ids: Vec<String> = query(
        c,
        "UPDATE conversations SET purge_after = $2 WHERE id IN
           (SELECT id FROM conversations WHERE tenant_id = $1 AND purge_after IS NULL LIMIT $3)
         RETURNING id",
        &[&tenant_id, &purge_after, &batch],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    let mut n = ids.len() as u64;
    n += exec(
        c,
        "UPDATE messages SET purge_after = $2
         WHERE conversation_id = ANY($1) AND purge_after IS NULL",
        &[&ids, &purge_after],
    )
    .await?;
    // A request's record and a restriction are the tenant's end-user data
    // too (exports expire on their own; consent records keep their schedule).
    for (table, key) in [
        ("contacts", "id"),
        ("email_threads", "msgid_bi"),
        ("dsr_requests", "id"),
        ("restrictions", "ident_bi"),
    ] {
        let sql = format!(
            "UPDATE {table} SET purge_after = $2 WHERE tenant_id = $1 AND {key} IN
               (SELECT {key} FROM {table} WHERE tenant_id = $1 AND purge_after IS NULL LIMIT $3)"
        );
        n += exec(c, &sql, &[&tenant_id, &purge_after, &batch]).await?;
    }
    Ok(n)
}

/// Each table's key, for deleting exactly the rows a batch locked.
fn purge_key(table: PurgeTable) -> &'static str {
    match table {
        PurgeTable::EmailThreads => "(tenant_id, msgid_bi)",
        PurgeTable::Restrictions => "(tenant_id, ident_bi)",
        PurgeTable::DsrExports => "dsr_id",
        _ => "id",
    }
}

async fn purge_batch(
    c: &Conn,
    table: PurgeTable,
    now: Millis,
    batch: u32,
) -> Result<PurgedBatch, StoreError> {
    let name = table.name();
    let key = purge_key(table);
    // The subquery selects the key's columns, not one row value of them.
    let columns = key.trim_start_matches('(').trim_end_matches(')');
    let returning = match table {
        PurgeTable::Messages => "tenant_id, size",
        PurgeTable::Conversations => "tenant_id, 0::bigint",
        // A row holds a commit's messages: counted in messages, as SQLite
        // and the retention report count them.
        PurgeTable::TrafficTrace => "NULL::text, count",
        _ => "NULL::text, 0::bigint",
    };
    // Rows another node (or ingest) holds are skipped, not waited for.
    let sql = format!(
        "DELETE FROM {name} WHERE {key} IN
           (SELECT {columns} FROM {name} WHERE purge_after <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING {returning}"
    );
    let rows = query(c, &sql, &[&now, &i64::from(batch)]).await?;
    let mut per: HashMap<String, (i64, i64, i64)> = HashMap::new();
    if matches!(table, PurgeTable::Messages | PurgeTable::Conversations) {
        for r in &rows {
            let tenant: String = r.try_get(0)?;
            let size: i64 = r.try_get(1)?;
            let e = per.entry(tenant).or_default();
            if table == PurgeTable::Messages {
                e.0 += 1;
                e.1 += size;
            } else {
                e.2 += 1;
            }
        }
    }
    let purged = if table == PurgeTable::TrafficTrace {
        let mut n = 0u64;
        for r in &rows {
            n += u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0);
        }
        n
    } else {
        rows.len() as u64
    };
    Ok(PurgedBatch {
        rows: purged,
        per_tenant: per
            .into_iter()
            .map(|(t, (m, b, cv))| (t, m, b, cv))
            .collect(),
    })
}

async fn destroy_key(c: &Conn, tenant_id: &str, at: Millis) -> Result<(), StoreError> {
    exec(
        c,
        "UPDATE keyring.tenant_keys SET wrapped_dek = NULL, destroyed_at = $2 WHERE tenant_id = $1",
        &[&tenant_id, &at],
    )
    .await?;
    exec(
        c,
        "UPDATE tenants SET status = 'purged' WHERE id = $1",
        &[&tenant_id],
    )
    .await?;
    Ok(())
}

async fn put_subprocessors(c: &Conn, docs: &[(String, String)]) -> Result<(), StoreError> {
    for (id, doc) in docs {
        exec(
            c,
            "INSERT INTO subprocessors (id, doc) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            &[id, doc],
        )
        .await?;
    }
    Ok(())
}

async fn seed_subprocessors(c: &Conn, docs: &[(String, String)]) -> Result<(), StoreError> {
    for (id, doc) in docs {
        exec(
            c,
            "INSERT INTO subprocessors (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[id, doc],
        )
        .await?;
    }
    Ok(())
}

async fn replace_subprocessor(
    c: &Conn,
    id: &str,
    expected: Option<&str>,
    doc: &str,
) -> Result<(), StoreError> {
    let n =
        match expected {
            Some(old) => {
                exec(
                    c,
                    "UPDATE subprocessors SET doc = $3 WHERE id = $1 AND doc = $2",
                    &[&id, &old, &doc],
                )
                .await?
            }
            None => exec(
                c,
                "INSERT INTO subprocessors (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &doc],
            )
            .await?,
        };
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "sub-processor {id} changed meanwhile"
        )));
    }
    Ok(())
}

async fn audit(c: &Conn, a: &AuditRecord) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO audit_log (at, actor, role, action, target, status, outcome, purge_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &a.at,
            &a.actor,
            &a.role,
            &a.action,
            &a.target,
            &i32::from(a.status),
            &a.outcome,
            &a.purge_after,
        ],
    )
    .await?;
    Ok(())
}

fn duplicate_of(r: &Row, conversation_id: Option<&str>) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        message_id: r.try_get("id")?,
        conversation_id: match conversation_id {
            Some(c) => c.to_string(),
            None => r.try_get("conversation_id")?,
        },
        seq: r.try_get("seq")?,
        received_at: r.try_get("received_at")?,
        committed_at: r.try_get("committed_at")?,
        duplicate: true,
        new_conversation: false,
    })
}

async fn find_duplicate(
    c: &Conn,
    tenant_id: &str,
    key: &[u8],
) -> Result<Option<StoredMessage>, StoreError> {
    query_opt(
        c,
        "SELECT id, conversation_id, seq, received_at, committed_at FROM messages
         WHERE tenant_id = $1 AND dedupe_key = $2",
        &[&tenant_id, &key],
    )
    .await?
    .map(|r| duplicate_of(&r, None))
    .transpose()
}

/// A web-chat resend: the key among the conversation's (`messages_client_key`).
async fn find_client_key(
    c: &Conn,
    conversation_id: &str,
    key: &[u8],
) -> Result<Option<StoredMessage>, StoreError> {
    query_opt(
        c,
        "SELECT id, seq, received_at, committed_at FROM messages
         WHERE conversation_id = $1 AND client_key = $2 LIMIT 1",
        &[&conversation_id, &key],
    )
    .await?
    .map(|r| duplicate_of(&r, Some(conversation_id)))
    .transpose()
}

async fn contact_id(
    c: &Conn,
    tenant_id: &str,
    kind: &str,
    ident_bi: &[u8],
) -> Result<Option<String>, StoreError> {
    query_opt(
        c,
        "SELECT id FROM contacts WHERE tenant_id = $1 AND kind = $2 AND ident_bi = $3",
        &[&tenant_id, &kind, &ident_bi],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(StoreError::from)
}

async fn upsert_contact(c: &Conn, m: &InboundMessage, now: Millis) -> Result<String, StoreError> {
    let ct = &m.contact;
    if ct.ident_ct.is_empty() {
        // Sent into an existing conversation: its contact exists; a miss
        // means the conversation is not this person's.
        return contact_id(c, &m.tenant_id, ct.kind, &ct.ident_bi)
            .await?
            .ok_or(StoreError::NotFound("conversation"));
    }
    exec(
        c,
        "INSERT INTO contacts (id, tenant_id, kind, ident_bi, ident_ct, name_ct, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, kind, ident_bi) DO NOTHING",
        &[
            &ct.id,
            &m.tenant_id,
            &ct.kind,
            &ct.ident_bi,
            &ct.ident_ct,
            &ct.name_ct,
            &now,
        ],
    )
    .await?;
    // Key-share lock: an erasure of this person on another node waits for
    // this batch, or this batch for it (then the contact is gone, the op
    // fails and is replayed alone, creating the contact afresh).
    query_opt(
        c,
        "SELECT id FROM contacts WHERE tenant_id = $1 AND kind = $2 AND ident_bi = $3
         FOR KEY SHARE",
        &[&m.tenant_id, &ct.kind, &ct.ident_bi],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?
    .ok_or(StoreError::NotFound("contact"))
}

async fn new_conversation(
    c: &Conn,
    id: &str,
    m: &InboundMessage,
    contact_id: &str,
    now: Millis,
) -> Result<(String, bool), StoreError> {
    exec(
        c,
        "INSERT INTO conversations (id, tenant_id, channel, contact_id, created_at, last_activity_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        &[&id, &m.tenant_id, &m.channel.as_str(), &contact_id, &now],
    )
    .await?;
    Ok((id.to_string(), true))
}

async fn resolve_conversation(
    c: &Conn,
    m: &InboundMessage,
    contact_id: &str,
    now: Millis,
) -> Result<(String, bool), StoreError> {
    match &m.target {
        ConversationTarget::New { id } => new_conversation(c, id, m, contact_id, now).await,
        ConversationTarget::Existing { id } => {
            let owner = query_opt(
                c,
                "SELECT tenant_id, contact_id, channel FROM conversations WHERE id = $1",
                &[id],
            )
            .await?;
            let owner: Option<(String, String, String)> = owner
                .map(|r| {
                    Ok::<_, tokio_postgres::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                })
                .transpose()?;
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
            for cand in candidates {
                let hit = query_opt(
                    c,
                    "SELECT conversation_id FROM email_threads WHERE tenant_id = $1 AND msgid_bi = $2",
                    &[&m.tenant_id, cand],
                )
                .await?;
                if let Some(r) = hit {
                    return Ok((r.try_get(0)?, false));
                }
            }
            new_conversation(c, new_id, m, contact_id, now).await
        }
        ConversationTarget::LatestForContact { new_id, within_ms } => {
            let hit = query_opt(
                c,
                "SELECT id FROM conversations
                 WHERE contact_id = $1 AND channel = $2 AND last_activity_at >= $3
                 ORDER BY last_activity_at DESC LIMIT 1",
                &[&contact_id, &m.channel.as_str(), &(now - within_ms)],
            )
            .await?;
            match hit {
                Some(r) => Ok((r.try_get(0)?, false)),
                None => new_conversation(c, new_id, m, contact_id, now).await,
            }
        }
    }
}

/// Takes the conversation's next seq; the row lock orders writers of one
/// conversation across nodes until their commit.
async fn next_seq(c: &Conn, conversation_id: &str, now: Millis) -> Result<i64, StoreError> {
    query_opt(
        c,
        "UPDATE conversations SET message_count = message_count + 1, last_activity_at = $2
         WHERE id = $1 RETURNING message_count",
        &[&conversation_id, &now],
    )
    .await?
    .ok_or(StoreError::NotFound("conversation"))?
    .try_get(0)
    .map_err(StoreError::from)
}

struct NewMessage<'a> {
    id: &'a str,
    tenant_id: &'a str,
    conversation_id: &'a str,
    seq: i64,
    direction: &'a str,
    dedupe_key: Option<&'a [u8]>,
    client_key: Option<&'a [u8]>,
    body_ct: &'a [u8],
    subject_ct: Option<&'a [u8]>,
    size: i64,
    received_at: Millis,
}

async fn insert_message(c: &Conn, m: NewMessage<'_>, now: Millis) -> Result<(), StoreError> {
    exec(
        c,
        // Stamped like its conversation if that is already due for purge
        // (see the SQLite writer's `insert_message`).
        "INSERT INTO messages (id, tenant_id, conversation_id, seq, direction, dedupe_key,
            client_key, body_ct, subject_ct, size, received_at, committed_at, purge_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 (SELECT purge_after FROM conversations WHERE id = $3))",
        &[
            &m.id,
            &m.tenant_id,
            &m.conversation_id,
            &m.seq,
            &m.direction,
            &m.dedupe_key,
            &m.client_key,
            &m.body_ct,
            &m.subject_ct,
            &m.size,
            &m.received_at,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// Web chat's hot path in one round trip: a message into an existing
/// conversation of the sender's (the seq taken and the row inserted in one
/// statement). `None` when nothing was written: a resend, or not the
/// sender's conversation; the general path then tells which.
async fn inbound_existing(
    c: &Conn,
    m: &InboundMessage,
    conversation_id: &str,
    now: Millis,
) -> Result<Option<i64>, StoreError> {
    let row = query_opt(
        c,
        INBOUND_EXISTING,
        &[
            &now,
            &conversation_id,
            &m.tenant_id,
            &m.channel.as_str(),
            &m.contact.kind,
            &m.contact.ident_bi,
            &m.client_key,
            &m.message_id,
            &m.body_ct,
            &m.subject_ct,
            &m.size,
            &m.received_at,
        ],
    )
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn inbound(c: &Conn, m: &InboundMessage, now: Millis) -> Result<StoredMessage, StoreError> {
    if let ConversationTarget::Existing { id } = &m.target
        && m.dedupe_key.is_none()
        && m.thread_key.is_none()
        && m.contact.ident_ct.is_empty()
        && let Some(seq) = inbound_existing(c, m, id, now).await?
    {
        return Ok(StoredMessage {
            message_id: m.message_id.clone(),
            conversation_id: id.clone(),
            seq,
            received_at: m.received_at,
            committed_at: now,
            duplicate: false,
            new_conversation: false,
        });
    }
    if let Some(key) = &m.dedupe_key
        && let Some(existing) = find_duplicate(c, &m.tenant_id, key).await?
    {
        return Ok(existing);
    }
    if let (ConversationTarget::Existing { id }, Some(key)) = (&m.target, &m.client_key)
        && let Some(existing) = find_client_key(c, id, key).await?
    {
        return Ok(existing);
    }
    let contact_id = upsert_contact(c, m, now).await?;
    let (conversation_id, new_conversation) = resolve_conversation(c, m, &contact_id, now).await?;
    let seq = next_seq(c, &conversation_id, now).await?;
    insert_message(
        c,
        NewMessage {
            id: &m.message_id,
            tenant_id: &m.tenant_id,
            conversation_id: &conversation_id,
            seq,
            direction: "inbound",
            dedupe_key: m.dedupe_key.as_deref(),
            client_key: m.client_key.as_deref(),
            body_ct: &m.body_ct,
            subject_ct: m.subject_ct.as_deref(),
            size: m.size,
            received_at: m.received_at,
        },
        now,
    )
    .await?;
    if let Some(key) = &m.thread_key {
        exec(
            c,
            "INSERT INTO email_threads (tenant_id, msgid_bi, conversation_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&m.tenant_id, key, &conversation_id],
        )
        .await?;
    }
    Ok(StoredMessage {
        message_id: m.message_id.clone(),
        conversation_id,
        seq,
        received_at: m.received_at,
        committed_at: now,
        duplicate: false,
        new_conversation,
    })
}

/// The stored reply, and its conversation's channel as stored.
async fn outbound(
    c: &Conn,
    m: &OutboundMessage,
    now: Millis,
) -> Result<(StoredMessage, String), StoreError> {
    // The owner check, the seq and the insert in one statement.
    let row = query_opt(
        c,
        OUTBOUND,
        &[
            &now,
            &m.conversation_id,
            &m.tenant_id,
            &m.message_id,
            &m.body_ct,
            &m.size,
            &m.received_at,
        ],
    )
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let stored = StoredMessage {
        message_id: m.message_id.clone(),
        conversation_id: m.conversation_id.clone(),
        seq: row.try_get(0)?,
        received_at: m.received_at,
        committed_at: now,
        duplicate: false,
        new_conversation: false,
    };
    Ok((stored, row.try_get(1)?))
}

/// Stores a request at its next version (see `IncidentRecord::version`).
async fn put_dsr(c: &Conn, r: &DsrRecord) -> Result<(), StoreError> {
    // purge_after is the store's (set at termination): an update keeps it.
    let n = if r.version == 0 {
        exec(
            c,
            "INSERT INTO dsr_requests (id, tenant_id, kind, subject_kind, subject_bi, status,
                received_at, due_at, doc, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)
             ON CONFLICT (id) DO NOTHING",
            &[
                &r.id,
                &r.tenant_id,
                &r.kind,
                &r.subject_kind,
                &r.subject_bi,
                &r.status,
                &r.received_at,
                &r.due_at,
                &r.doc,
            ],
        )
        .await?
    } else {
        exec(
            c,
            "UPDATE dsr_requests SET subject_bi = $3, status = $4, due_at = $5, doc = $6,
                version = version + 1
             WHERE id = $1 AND tenant_id = $2 AND version = $7",
            &[
                &r.id,
                &r.tenant_id,
                &r.subject_bi,
                &r.status,
                &r.due_at,
                &r.doc,
                &r.version,
            ],
        )
        .await?
    };
    if n == 0 {
        return Err(stale_or_missing(c, "dsr_requests", "data-subject request", &r.id).await);
    }
    Ok(())
}

async fn complete_dsr(c: &Conn, d: &DsrCompletion) -> Result<WriteOutcome, StoreError> {
    let r = &d.record;
    // The version check first: it locks the request's row, so a second
    // node completing the same request waits here, then finds it changed
    // and runs no action (no second export, no duplicate key).
    if r.version > 0 {
        let stored: Option<i64> = query_opt(
            c,
            "SELECT version FROM dsr_requests WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            &[&r.id, &r.tenant_id],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        match stored {
            None => return Err(StoreError::NotFound("data-subject request")),
            Some(v) if v != r.version => return Err(StoreError::Stale("data-subject request")),
            Some(_) => {}
        }
    }
    let outcome = match &d.action {
        DsrAction::None => WriteOutcome::Done,
        DsrAction::Erase { kind, ident_bi } => {
            WriteOutcome::Erased(erase_subject(c, &r.tenant_id, kind, ident_bi).await?)
        }
        DsrAction::Rectify {
            contact_id,
            ident_bi,
            name_ct,
            ident,
        } => {
            let n = match (name_ct, ident) {
                (Some(name), None) => {
                    exec(
                        c,
                        "UPDATE contacts SET name_ct = $4
                         WHERE id = $1 AND tenant_id = $2 AND ident_bi = $3",
                        &[contact_id, &r.tenant_id, ident_bi, name],
                    )
                    .await?
                }
                (None, Some((ct, bi))) => {
                    // Unique per (tenant, kind, identifier), as the index is.
                    let taken: bool = query_one(
                        c,
                        "SELECT EXISTS (SELECT 1 FROM contacts k JOIN contacts me ON me.id = $3
                           WHERE k.tenant_id = $1 AND k.kind = me.kind AND k.ident_bi = $2
                             AND k.id <> $3)",
                        &[&r.tenant_id, bi, contact_id],
                    )
                    .await?
                    .try_get(0)?;
                    if taken {
                        return Err(identifier_taken());
                    }
                    // Another node's rectification to the same identifier,
                    // not committed when we checked, meets the unique index.
                    exec(
                        c,
                        "UPDATE contacts SET ident_ct = $4, ident_bi = $5
                         WHERE id = $1 AND tenant_id = $2 AND ident_bi = $3",
                        &[contact_id, &r.tenant_id, ident_bi, ct, bi],
                    )
                    .await
                    .map_err(|e| match &e {
                        StoreError::Postgres(pe)
                            if pe.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
                        {
                            identifier_taken()
                        }
                        _ => e,
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
            exec(
                c,
                "INSERT INTO restrictions (tenant_id, ident_bi, dsr_id, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&r.tenant_id, ident_bi, &r.id, &d.at],
            )
            .await?;
            WriteOutcome::Done
        }
        DsrAction::Export {
            sealed,
            purge_after,
        } => {
            exec(
                c,
                "INSERT INTO dsr_exports (dsr_id, tenant_id, sealed, created_at, purge_after)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&r.id, &r.tenant_id, sealed, &d.at, purge_after],
            )
            .await?;
            WriteOutcome::Done
        }
    };
    put_dsr(c, r).await?;
    Ok(outcome)
}

fn identifier_taken() -> StoreError {
    StoreError::Conflict("another contact of this tenant already has that identifier".into())
}

/// Erasure: everything stored of one contact, with its conversations, their
/// messages, email threads and traffic-trace entries (as
/// `writer::erase_subject` on SQLite).
async fn erase_subject(
    c: &Conn,
    tenant_id: &str,
    kind: &str,
    ident_bi: &[u8],
) -> Result<Erased, StoreError> {
    let mut out = Erased::default();
    exec(
        c,
        "DELETE FROM dsr_exports WHERE dsr_id IN
           (SELECT id FROM dsr_requests WHERE tenant_id = $1 AND subject_bi = $2)",
        &[&tenant_id, &ident_bi],
    )
    .await?;
    exec(
        c,
        "UPDATE dsr_requests SET subject_bi = NULL, version = version + 1
         WHERE tenant_id = $1 AND subject_bi = $2 AND status = 'completed'",
        &[&tenant_id, &ident_bi],
    )
    .await?;
    let Some(contact) = contact_id(c, tenant_id, kind, ident_bi).await? else {
        return Ok(out);
    };
    // Another node may be storing a message of this person right now. Its
    // batch holds the contact's row lock (WhatsApp and email senders: see
    // [`lock_contacts`]; a new web-chat conversation key-shares it in
    // [`upsert_contact`]) and the row lock of a conversation it writes to.
    // Taking the same locks in the same order — the contact, then its
    // conversations — waits for such a batch to commit and keeps new ones
    // out; the statements below then see everything it stored (READ
    // COMMITTED reads afresh per statement), so nothing of the person is
    // left behind as an orphan.
    if query_opt(
        c,
        "SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE",
        &[&contact],
    )
    .await?
    .is_none()
    {
        // Erased meanwhile (by another node's erasure).
        return Ok(out);
    }
    let spans: Vec<(String, Millis, Millis)> = query(
        c,
        "SELECT id, created_at, last_activity_at FROM conversations
         WHERE contact_id = $1 AND tenant_id = $2 ORDER BY id FOR UPDATE",
        &[&contact, &tenant_id],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect::<Result<_, tokio_postgres::Error>>()?;
    out.trace_entries += erase_trace_entries(c, &spans).await?;
    let conversations: Vec<String> = spans.into_iter().map(|(id, _, _)| id).collect();
    for r in query(
        c,
        "DELETE FROM messages WHERE conversation_id = ANY($1) AND tenant_id = $2 RETURNING size",
        &[&conversations, &tenant_id],
    )
    .await?
    {
        out.messages += 1;
        out.bytes += r.try_get::<_, i64>(0)?;
    }
    exec(
        c,
        "DELETE FROM email_threads WHERE conversation_id = ANY($1) AND tenant_id = $2",
        &[&conversations, &tenant_id],
    )
    .await?;
    out.conversations += exec(
        c,
        "DELETE FROM conversations WHERE id = ANY($1) AND tenant_id = $2",
        &[&conversations, &tenant_id],
    )
    .await?;
    out.contacts += exec(c, "DELETE FROM contacts WHERE id = $1", &[&contact]).await?;
    out.conversation_ids = conversations;
    Ok(out)
}

/// Rewrites the traffic-trace rows holding entries of the erased
/// conversations without them (a row left empty is deleted); returns how
/// many entries went. Only rows dated within a conversation's lifetime
/// (with [`crate::traffic::ERASURE_MARGIN_MS`] either side) can hold its
/// entries, so only those are read, by `traffic_trace_at`; they are
/// locked, so a concurrent rewrite cannot put an entry back.
async fn erase_trace_entries(
    c: &Conn,
    spans: &[(String, Millis, Millis)],
) -> Result<u64, StoreError> {
    let Some(windows) = crate::traffic::erasure_windows(spans) else {
        return Ok(0);
    };
    let erased: std::collections::HashSet<&str> =
        spans.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut removed = 0;
    for (from, to) in windows {
        let rows = query(
            c,
            "SELECT id, entries FROM traffic_trace WHERE at >= $1 AND at <= $2 FOR UPDATE",
            &[&from, &to],
        )
        .await?;
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let packed: Vec<u8> = r.try_get(1)?;
            let Some(kept) = crate::traffic::without_conversations(&packed, &erased) else {
                continue;
            };
            removed += kept.removed;
            if kept.count == 0 {
                exec(c, "DELETE FROM traffic_trace WHERE id = $1", &[&id]).await?;
            } else {
                exec(
                    c,
                    "UPDATE traffic_trace SET entries = $2, count = $3 WHERE id = $1",
                    &[&id, &kept.entries, &kept.count],
                )
                .await?;
            }
        }
    }
    Ok(removed)
}

async fn take_dsr_export(c: &Conn, r: &DsrRecord) -> Result<Vec<u8>, StoreError> {
    let sealed: Vec<u8> = query_opt(
        c,
        "DELETE FROM dsr_exports WHERE dsr_id = $1 AND tenant_id = $2 RETURNING sealed",
        &[&r.id, &r.tenant_id],
    )
    .await?
    .ok_or(StoreError::NotFound("export"))?
    .try_get(0)?;
    put_dsr(c, r).await?;
    Ok(sealed)
}

/// Stores a breach record at its next version (see `IncidentRecord::version`).
async fn put_incident(c: &Conn, i: &IncidentRecord) -> Result<(), StoreError> {
    let n = if i.version == 0 {
        exec(
            c,
            "INSERT INTO security_incidents (id, aware_at, doc, purge_after, version)
             VALUES ($1, $2, $3, $4, 1) ON CONFLICT (id) DO NOTHING",
            &[&i.id, &i.aware_at, &i.doc, &i.purge_after],
        )
        .await?
    } else {
        exec(
            c,
            "UPDATE security_incidents SET doc = $2, version = version + 1
             WHERE id = $1 AND version = $3",
            &[&i.id, &i.doc, &i.version],
        )
        .await?
    };
    if n == 0 {
        return Err(stale_or_missing(c, "security_incidents", "incident", &i.id).await);
    }
    Ok(())
}

/// Stores a consent record at its next version (see `IncidentRecord::version`).
async fn put_consent(c: &Conn, r: &ConsentRecord) -> Result<(), StoreError> {
    let n = if r.version == 0 {
        exec(
            c,
            "INSERT INTO consent_records (id, tenant_id, subject_kind, subject_bi, doc,
                purge_after, version)
             VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (id) DO NOTHING",
            &[
                &r.id,
                &r.tenant_id,
                &r.subject_kind,
                &r.subject_bi,
                &r.doc,
                &r.purge_after,
            ],
        )
        .await?
    } else {
        exec(
            c,
            "UPDATE consent_records SET doc = $3,
                purge_after = coalesce($4, purge_after), version = version + 1
             WHERE id = $1 AND tenant_id = $2 AND version = $5",
            &[&r.id, &r.tenant_id, &r.doc, &r.purge_after, &r.version],
        )
        .await?
    };
    if n == 0 {
        return Err(stale_or_missing(c, "consent_records", "consent record", &r.id).await);
    }
    Ok(())
}

async fn end_tenant_consents(
    c: &Conn,
    tenant_id: &str,
    purge_after: Millis,
) -> Result<u64, StoreError> {
    exec(
        c,
        "UPDATE consent_records SET purge_after = $2 WHERE tenant_id = $1 AND purge_after IS NULL",
        &[&tenant_id, &purge_after],
    )
    .await
}

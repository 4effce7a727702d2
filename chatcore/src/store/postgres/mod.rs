//! The PostgreSQL backend: several `c24-core` nodes on one database
//! (`--database postgres://...`). The same tables, columns and semantics as
//! the SQLite backend; the chat core seals every personal field before it
//! gets here, so PostgreSQL only ever sees ciphertext and blind indexes.
//!
//! - [`migrate`]: versioned migrations (`migrations/NNNN_*.sql`) run at
//!   start under an advisory lock; a newer schema than the binary knows is
//!   refused.
//! - [`writer`]: group commit, one writer task per lane. Ingest and admin
//!   writes share the main lane; retention purges have their own lane and
//!   connection, so ingest never waits behind a purge batch.
//! - [`notify`]: cross-node events (`LISTEN/NOTIFY`): agent replies for
//!   visitors connected to another node, tenant changes for its directory,
//!   usage and traffic-trace deltas for its counters.
//! - This file: the [`PgStore`] and its reads (a small connection pool),
//!   and each node's published figures that the others combine with theirs:
//!   per-second counts (`node_seconds`, `node_tenant_seconds`), latency
//!   histograms per slot (`node_latency`), and a heartbeat with the totals
//!   since start (`nodes`).
//!
//! The keyring (each tenant's wrapped data key) is the table
//! `keyring.tenant_keys`, in its own schema as SQLite keeps it in its own
//! file: a logical backup of the data can leave it out
//! (`pg_dump --exclude-schema=keyring`). Destroying a key (crypto-shredding)
//! sets it to NULL and then rewrites that table (`VACUUM FULL`), so the old
//! row version leaves the live files. PostgreSQL's WAL, a replica, or a
//! physical base backup taken before still hold the wrapped key (readable
//! only with the KEK) until they are recycled or expired: shredding is
//! complete once WAL archives and base backups older than the destruction are
//! gone, the same 7-day horizon as `c24-core backup` files on SQLite.

pub mod migrate;
pub(crate) mod notify;
pub mod transport;
pub(crate) mod writer;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use self::transport::Transport;
use self::writer::{Job, Lane};
use super::{
    AuditRecord, ClusterEvent, ClusterLock, ConsentCounts, ConsentRecord, ContactRecord,
    ConversationRecord, DsrRecord, DueCounts, IncidentRecord, MessageRecord, NodeLatencyRow,
    NodeRow, PendingWrite, PurgeTable, Store, StoreError, TenantRecord, TraceBatch, TraceCursor,
    WriteOp,
};
use crate::clock::{Clock, Millis};

/// Read connections per node.
const READERS: usize = 8;
/// Cluster events held for a slow consumer before it must resync.
const EVENT_BUFFER: usize = 4096;
/// How long a start waits for the event listener.
const LISTEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a node checks that it reaches the database (`/readyz`).
const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A check not answered within this counts as unreachable.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct PgStore {
    /// Ingest and every other write.
    main: Mutex<Option<mpsc::Sender<Job>>>,
    /// Retention purges.
    purge: Mutex<Option<mpsc::Sender<Job>>>,
    running: Vec<Arc<std::sync::atomic::AtomicBool>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    read_pool: Pool,
    write_pool: Pool,
    /// This node's name in cluster events and `node_seconds`.
    node: Arc<str>,
    events: broadcast::Sender<ClusterEvent>,
    stop_listener: watch::Sender<bool>,
    /// Whether the last check reached the database: a node that cannot
    /// commit reports not ready, so a load balancer sends its traffic to
    /// nodes that can (all of them, once the database is back).
    reachable: Arc<std::sync::atomic::AtomicBool>,
}

fn pool(
    config: &tokio_postgres::Config,
    transport: &Transport,
    size: usize,
) -> Result<Pool, StoreError> {
    let manager_config = || ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match transport {
        Transport::Plain => Manager::from_config(config.clone(), NoTls, manager_config()),
        Transport::Tls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config()),
    };
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| StoreError::Io(format!("database pool: {e}")))
}

/// A pool error with the server's own message ("db error" alone says nothing).
pub(crate) fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pe) => migrate::describe(pe),
        other => other.to_string(),
    }
}

/// Hides the password when a URL is logged or shown in an error.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects, migrates the schema (or refuses a newer one), checks the
    /// encryption mode, starts the writers; records the traffic trace.
    pub async fn open(
        url: &str,
        at_rest_encryption: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::open_with(url, at_rest_encryption, clock, true).await
    }

    /// [`Self::open_with_trust`] trusting the system's roots only.
    pub async fn open_with(
        url: &str,
        at_rest_encryption: bool,
        clock: Arc<dyn Clock>,
        traffic_trace: bool,
    ) -> Result<Self, StoreError> {
        Self::open_with_trust(url, at_rest_encryption, clock, traffic_trace, &[]).await
    }

    /// [`Self::open`], with the traffic trace on or off (`traffic_trace`:
    /// each stored message is also recorded in its batch's trace row, in
    /// the same commit), as [`super::sqlite::SqliteStore::open_with`]; TLS
    /// as the URL's `sslmode` asks, trusting the system's roots and
    /// `ca_files` ([`transport`]).
    pub async fn open_with_trust(
        url: &str,
        at_rest_encryption: bool,
        clock: Arc<dyn Clock>,
        traffic_trace: bool,
        ca_files: &[std::path::PathBuf],
    ) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Io(format!("--database {}: {e}", redact_url(url))))?;
        if config.get_application_name().is_none() {
            config.application_name("c24-core");
        }
        // An unreachable server fails the start (and a commit) in bounded time.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let transport = transport::transport(&config, ca_files)?;
        let write_pool = pool(&config, &transport, 3)?;
        let read_pool = pool(&config, &transport, READERS)?;
        {
            let mut conn = write_pool.get().await.map_err(|e| {
                StoreError::Io(format!(
                    "connecting to {}: {}",
                    redact_url(url),
                    pool_error(&e)
                ))
            })?;
            migrate::run(&mut conn, at_rest_encryption).await?;
        }
        let node: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (stop_listener, stop) = watch::channel(false);
        let reachable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health = tokio::spawn(watch_health(
            read_pool.clone(),
            reachable.clone(),
            stop.clone(),
        ));
        let (ready_tx, ready_rx) = oneshot::channel();
        let listener = match &transport {
            Transport::Plain => tokio::spawn(notify::listen(
                config.clone(),
                NoTls,
                node.clone(),
                events.clone(),
                stop,
                ready_tx,
            )),
            Transport::Tls(tls) => tokio::spawn(notify::listen(
                config.clone(),
                tls.clone(),
                node.clone(),
                events.clone(),
                stop,
                ready_tx,
            )),
        };
        // Listening before this node serves, so no event committed after
        // its start is missed.
        if tokio::time::timeout(LISTEN_WAIT, ready_rx).await.is_err() {
            tracing::warn!("the cluster event listener is not ready yet; continuing");
        }
        let main = writer::spawn_lane(
            write_pool.clone(),
            clock.clone(),
            "main",
            node.clone(),
            traffic_trace,
        );
        // Purges store no message: nothing to trace.
        let purge = writer::spawn_lane(write_pool.clone(), clock, "purge", node.clone(), false);
        let Lane {
            tx: main_tx,
            running: main_running,
            task: main_task,
        } = main;
        let Lane {
            tx: purge_tx,
            running: purge_running,
            task: purge_task,
        } = purge;
        Ok(Self {
            main: Mutex::new(Some(main_tx)),
            purge: Mutex::new(Some(purge_tx)),
            running: vec![main_running, purge_running],
            tasks: Mutex::new(vec![main_task, purge_task, listener, health]),
            read_pool,
            write_pool,
            node,
            events,
            stop_listener,
            reachable,
        })
    }

    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        // A pooled connection the server has dropped since (a restart, a
        // terminated backend) fails once; the read is tried again on a new one.
        let mut last = StoreError::Closed;
        for _ in 0..2 {
            let c =
                self.read_pool.get().await.map_err(|e| {
                    StoreError::Io(format!("database unavailable: {}", pool_error(&e)))
                })?;
            let result = async {
                let st = c.prepare_cached(sql).await?;
                Ok::<_, StoreError>(c.query(&st, params).await?)
            }
            .await;
            match result {
                Ok(rows) => return Ok(rows),
                Err(e) if writer::connection_lost(&c, &e) => {
                    drop(deadpool_postgres::Object::take(c));
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    async fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        self.row(sql, params)
            .await?
            .ok_or_else(|| StoreError::Io("query returned no row".into()))
    }
}

/// A session-level advisory lock, held by its connection: dropping it
/// closes that connection (not back to the pool), so the server releases
/// the lock at once, whatever path the holder left by.
struct SessionLock(Option<deadpool_postgres::Object>);

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// Checks every [`HEALTH_EVERY`] that a read connection answers, until
/// `stop`; a connection that failed is dropped, not returned to the pool.
async fn watch_health(
    pool: Pool,
    reachable: Arc<std::sync::atomic::AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let status = pool.status();
        if status.available == 0 && status.size >= status.max_size {
            // Every read connection is busy with a query, so the database
            // answers; a probe would only queue behind them (and a slow
            // report must not take every node out of the load balancer).
            continue;
        }
        let probe = async {
            let c = pool.get().await.ok()?;
            match c.simple_query("SELECT 1").await {
                Ok(_) => Some(()),
                Err(_) => {
                    drop(deadpool_postgres::Object::take(c));
                    None
                }
            }
        };
        let ok = matches!(
            tokio::time::timeout(HEALTH_TIMEOUT, probe).await,
            Ok(Some(()))
        );
        if reachable.swap(ok, Ordering::SeqCst) != ok {
            if ok {
                tracing::info!("the database is reachable again");
            } else {
                tracing::warn!("the database is unreachable: reporting not ready");
            }
        }
    }
}

/// Seconds between two prunes of `node_tenant_seconds` by one node.
const TENANT_PRUNE_EVERY_S: i64 = 15;

/// Per node of this process, how far its `node_tenant_seconds` rows go.
#[derive(Clone, Copy, Default)]
struct TenantMarks {
    /// The `prune_before_s` its last prune reached (every older row was
    /// gone then; nodes only write recent seconds): the next prune deletes
    /// from there.
    pruned_to: Option<i64>,
    /// The newest second it has written: a later one has no row yet.
    written_to: Option<i64>,
}

static TENANT_MARKS: Mutex<Option<std::collections::HashMap<Arc<str>, TenantMarks>>> =
    Mutex::new(None);

fn tenant_marks(node: &Arc<str>) -> TenantMarks {
    let map = TENANT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
    map.as_ref()
        .and_then(|m| m.get(node).copied())
        .unwrap_or_default()
}

fn update_tenant_marks(node: &Arc<str>, f: impl FnOnce(&mut TenantMarks)) {
    let mut map = TENANT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
    f(map
        .get_or_insert_with(Default::default)
        .entry(node.clone())
        .or_default());
}

type TenantRow = (i64, String, i16, i64, i64);

impl PgStore {
    /// Writes this node's per-tenant rows: a plain insert (`upsert`:
    /// false; about half what an upsert costs, for rows known to be new) or
    /// an upsert.
    async fn write_tenant_rows(&self, rows: &[TenantRow], upsert: bool) -> Result<(), StoreError> {
        let node: &str = &self.node;
        let seconds: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let tenants: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let series: Vec<i16> = rows.iter().map(|r| r.2).collect();
        let messages: Vec<i64> = rows.iter().map(|r| r.3).collect();
        let bytes: Vec<i64> = rows.iter().map(|r| r.4).collect();
        let sql = if upsert {
            "INSERT INTO node_tenant_seconds (node, second, tenant_id, series, messages, bytes)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::smallint[],
                                      $5::bigint[], $6::bigint[])
             ON CONFLICT (second, node, tenant_id, series)
             DO UPDATE SET messages = excluded.messages, bytes = excluded.bytes"
        } else {
            "INSERT INTO node_tenant_seconds (node, second, tenant_id, series, messages, bytes)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::smallint[],
                                      $5::bigint[], $6::bigint[])"
        };
        self.rows(
            sql,
            &[&node, &seconds, &tenants, &series, &messages, &bytes],
        )
        .await?;
        Ok(())
    }
}

impl PgStore {
    /// [`Store::due_counts`] of the traffic trace, in messages (a row holds
    /// a commit's worth); its total is kept in memory (records: 0), as on
    /// SQLite. Served by `traffic_trace_purge`.
    async fn trace_due_counts(&self, now: Millis) -> Result<DueCounts, StoreError> {
        let r = self
            .one(
                "SELECT coalesce(sum(count) FILTER (WHERE purge_after <= $1), 0)::bigint,
                        coalesce(sum(count) FILTER (WHERE purge_after > $1
                            AND purge_after <= $1 + 86400000), 0)::bigint,
                        coalesce(sum(count) FILTER (WHERE purge_after > $1
                            AND purge_after <= $1 + 604800000), 0)::bigint,
                        min(purge_after) FILTER (WHERE purge_after <= $1)
                 FROM traffic_trace WHERE purge_after <= $1 + 604800000",
                &[&now],
            )
            .await?;
        Ok(DueCounts {
            records: 0,
            bytes: 0,
            overdue: r.try_get(0)?,
            due_24h: r.try_get(1)?,
            due_7d: r.try_get(2)?,
            oldest_overdue: r.try_get(3)?,
        })
    }
}

fn conversation_row(r: &Row) -> Result<ConversationRecord, tokio_postgres::Error> {
    Ok(ConversationRecord {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        channel: r.try_get(2)?,
        contact_id: r.try_get(3)?,
        contact_bi: r.try_get(4)?,
        created_at: r.try_get(5)?,
        last_activity_at: r.try_get(6)?,
        message_count: r.try_get(7)?,
    })
}

const CONVERSATION_COLUMNS: &str = "c.id, c.tenant_id, c.channel, c.contact_id, k.ident_bi,
    c.created_at, c.last_activity_at, c.message_count
    FROM conversations c JOIN contacts k ON k.id = c.contact_id";

const DSR_COLUMNS: &str = "id, tenant_id, kind, subject_kind, subject_bi, status, received_at,
    due_at, doc, purge_after, version FROM dsr_requests";

fn dsr_row(r: &Row) -> Result<DsrRecord, tokio_postgres::Error> {
    Ok(DsrRecord {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        subject_kind: r.try_get(3)?,
        subject_bi: r.try_get(4)?,
        status: r.try_get(5)?,
        received_at: r.try_get(6)?,
        due_at: r.try_get(7)?,
        doc: r.try_get(8)?,
        purge_after: r.try_get(9)?,
        version: r.try_get(10)?,
    })
}

fn incident_row(r: &Row) -> Result<IncidentRecord, tokio_postgres::Error> {
    Ok(IncidentRecord {
        id: r.try_get(0)?,
        aware_at: r.try_get(1)?,
        doc: r.try_get(2)?,
        purge_after: r.try_get(3)?,
        version: r.try_get(4)?,
    })
}

const CONSENT_COLUMNS: &str =
    "id, tenant_id, subject_kind, subject_bi, doc, purge_after, version FROM consent_records";

fn consent_row(r: &Row) -> Result<ConsentRecord, tokio_postgres::Error> {
    Ok(ConsentRecord {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        subject_kind: r.try_get(2)?,
        subject_bi: r.try_get(3)?,
        doc: r.try_get(4)?,
        purge_after: r.try_get(5)?,
        version: r.try_get(6)?,
    })
}

fn all<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| f(r).map_err(StoreError::from))
        .collect()
}

fn count(r: &Row, i: usize) -> Result<u64, StoreError> {
    Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
}

#[async_trait]
impl Store for PgStore {
    async fn submit(&self, op: WriteOp) -> Result<PendingWrite, StoreError> {
        let lane = if matches!(op, WriteOp::PurgeBatch { .. }) {
            &self.purge
        } else {
            &self.main
        };
        let sender = lane
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
        let rows = self
            .rows(
                "SELECT t.id, t.name, t.status, t.dpa_signed_at, t.created_at, t.api_key_hash,
                        t.widget_key_hash, t.phone_number_id, t.email_address, t.secrets,
                        k.wrapped_dek, k.destroyed_at, t.terminated_at, t.purge_after
                 FROM tenants t LEFT JOIN keyring.tenant_keys k ON k.tenant_id = t.id
                 ORDER BY t.id",
                &[],
            )
            .await?;
        all(rows, |r| {
            Ok(TenantRecord {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                status: r.try_get(2)?,
                dpa_signed_at: r.try_get(3)?,
                created_at: r.try_get(4)?,
                api_key_hash: r.try_get(5)?,
                widget_key_hash: r.try_get(6)?,
                phone_number_id: r.try_get(7)?,
                email_address: r.try_get(8)?,
                secrets: r.try_get(9)?,
                wrapped_dek: r.try_get(10)?,
                key_destroyed_at: r.try_get(11)?,
                terminated_at: r.try_get(12)?,
                purge_after: r.try_get(13)?,
            })
        })
    }

    async fn conversations(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS}
             WHERE c.tenant_id = $1 AND ($2::text IS NULL OR c.id < $2)
             ORDER BY c.id DESC LIMIT $3"
        );
        let rows = self
            .rows(&sql, &[&tenant_id, &before_id, &i64::from(limit)])
            .await?;
        all(rows, conversation_row)
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} WHERE c.id = $1");
        Ok(self
            .row(&sql, &[&id])
            .await?
            .map(|r| conversation_row(&r))
            .transpose()?)
    }

    async fn messages(
        &self,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, conversation_id, seq, direction, body_ct, subject_ct, received_at
                 FROM messages WHERE conversation_id = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
                &[&conversation_id, &after_seq, &i64::from(limit)],
            )
            .await?;
        all(rows, |r| {
            Ok(MessageRecord {
                id: r.try_get(0)?,
                conversation_id: r.try_get(1)?,
                seq: r.try_get(2)?,
                direction: r.try_get(3)?,
                body_ct: r.try_get(4)?,
                subject_ct: r.try_get(5)?,
                received_at: r.try_get(6)?,
            })
        })
    }

    async fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, at, actor, role, action, target, status, outcome, purge_after
                 FROM audit_log WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                &[&before, &i64::from(limit)],
            )
            .await?;
        all(rows, |r| {
            Ok(AuditRecord {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                actor: r.try_get(2)?,
                role: r.try_get(3)?,
                action: r.try_get(4)?,
                target: r.try_get(5)?,
                status: u16::try_from(r.try_get::<_, i32>(6)?).unwrap_or(0),
                outcome: r.try_get(7)?,
                purge_after: r.try_get(8)?,
            })
        })
    }

    async fn due_counts(
        &self,
        table: PurgeTable,
        now: Millis,
        totals: bool,
    ) -> Result<DueCounts, StoreError> {
        if table == PurgeTable::TrafficTrace {
            return self.trace_due_counts(now).await;
        }
        let name = table.name();
        let records = if totals {
            self.one(&format!("SELECT count(*) FROM {name}"), &[])
                .await?
                .try_get(0)?
        } else {
            0
        };
        // Served by the partial purge_after indexes.
        let sql = format!(
            "SELECT count(*) FILTER (WHERE purge_after <= $1),
                    count(*) FILTER (WHERE purge_after > $1 AND purge_after <= $1 + 86400000),
                    count(*) FILTER (WHERE purge_after > $1 AND purge_after <= $1 + 604800000),
                    min(purge_after) FILTER (WHERE purge_after <= $1)
             FROM {name} WHERE purge_after IS NOT NULL AND purge_after <= $1 + 604800000"
        );
        let r = self.one(&sql, &[&now]).await?;
        Ok(DueCounts {
            records,
            bytes: 0,
            overdue: r.try_get(0)?,
            due_24h: r.try_get(1)?,
            due_7d: r.try_get(2)?,
            oldest_overdue: r.try_get(3)?,
        })
    }

    async fn traffic_trace(
        &self,
        from: Millis,
        to: Millis,
        after: Option<TraceCursor>,
        limit: u32,
    ) -> Result<Vec<TraceBatch>, StoreError> {
        // Keyset paging over `traffic_trace_at` (at, id): each page is a
        // range scan from where the last one stopped.
        let (after_at, after_id) = after.unwrap_or((Millis::MIN, i64::MIN));
        let rows = self
            .rows(
                "SELECT id, at, entries FROM traffic_trace
                 WHERE at >= $1 AND at < $2 AND (at, id) > ($3, $4)
                 ORDER BY at, id LIMIT $5",
                &[&from, &to, &after_at, &after_id, &i64::from(limit)],
            )
            .await?;
        all(rows, |r| {
            Ok(TraceBatch {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                entries: r.try_get(2)?,
            })
        })
    }

    async fn traffic_trace_rows(&self) -> Result<i64, StoreError> {
        Ok(self
            .one(
                "SELECT coalesce(sum(count), 0)::bigint FROM traffic_trace",
                &[],
            )
            .await?
            .try_get(0)?)
    }

    async fn usage(&self) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        let mut out: std::collections::HashMap<String, (i64, i64, i64)> = Default::default();
        for r in self
            .rows(
                "SELECT tenant_id, count(*), coalesce(sum(size), 0)::bigint FROM messages
                 GROUP BY tenant_id",
                &[],
            )
            .await?
        {
            let e = out.entry(r.try_get(0)?).or_default();
            e.0 = r.try_get(1)?;
            e.1 = r.try_get(2)?;
        }
        for r in self
            .rows(
                "SELECT tenant_id, count(*) FROM conversations GROUP BY tenant_id",
                &[],
            )
            .await?
        {
            out.entry(r.try_get(0)?).or_default().2 = r.try_get(1)?;
        }
        Ok(out
            .into_iter()
            .map(|(t, (m, b, cv))| (t, m, b, cv))
            .collect())
    }

    async fn tenant_has_data(&self, tenant_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1)
                     OR EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1)
                     OR EXISTS (SELECT 1 FROM email_threads WHERE tenant_id = $1)",
                &[&tenant_id],
            )
            .await?
            .try_get(0)?)
    }

    async fn open_conversations(&self, since: Millis) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .rows(
                "SELECT tenant_id, count(*) FROM conversations WHERE last_activity_at >= $1
                 GROUP BY tenant_id",
                &[&since],
            )
            .await?;
        all(rows, |r| Ok((r.try_get(0)?, r.try_get(1)?)))
    }

    async fn subprocessors(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .rows("SELECT doc FROM subprocessors ORDER BY id", &[])
            .await?;
        all(rows, |r| r.try_get(0))
    }

    async fn contact(
        &self,
        tenant_id: &str,
        kind: &str,
        ident_bi: &[u8],
    ) -> Result<Option<ContactRecord>, StoreError> {
        let row = self
            .row(
                "SELECT id, tenant_id, kind, ident_ct, name_ct, created_at FROM contacts
                 WHERE tenant_id = $1 AND kind = $2 AND ident_bi = $3",
                &[&tenant_id, &kind, &ident_bi],
            )
            .await?;
        Ok(row
            .map(|r| {
                Ok::<_, tokio_postgres::Error>(ContactRecord {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    ident_ct: r.try_get(3)?,
                    name_ct: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .transpose()?)
    }

    async fn contact_conversations(
        &self,
        contact_id: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} WHERE c.contact_id = $1 ORDER BY c.created_at, c.id"
        );
        let rows = self.rows(&sql, &[&contact_id]).await?;
        all(rows, conversation_row)
    }

    async fn dsr_requests(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<DsrRecord>, StoreError> {
        let sql = format!(
            "SELECT {DSR_COLUMNS} WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        );
        let rows = self
            .rows(&sql, &[&tenant_id, &before_id, &i64::from(limit)])
            .await?;
        all(rows, dsr_row)
    }

    async fn dsr_request(&self, id: &str) -> Result<Option<DsrRecord>, StoreError> {
        let sql = format!("SELECT {DSR_COLUMNS} WHERE id = $1");
        Ok(self
            .row(&sql, &[&id])
            .await?
            .map(|r| dsr_row(&r))
            .transpose()?)
    }

    async fn dsr_counts(&self, tenant_id: &str, now: Millis) -> Result<(u64, u64), StoreError> {
        let r = self
            .one(
                "SELECT count(*), count(*) FILTER (WHERE due_at < $2) FROM dsr_requests
                 WHERE status <> 'completed' AND tenant_id = $1",
                &[&tenant_id, &now],
            )
            .await?;
        Ok((count(&r, 0)?, count(&r, 1)?))
    }

    async fn open_dsrs(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, tenant_id, due_at FROM dsr_requests WHERE status <> 'completed'",
                &[],
            )
            .await?;
        all(rows, |r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    }

    async fn restrictions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = self
            .rows("SELECT tenant_id, ident_bi FROM restrictions", &[])
            .await?;
        all(rows, |r| Ok((r.try_get(0)?, r.try_get(1)?)))
    }

    async fn incidents(
        &self,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, aware_at, doc, purge_after, version FROM security_incidents
                 WHERE ($1::text IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                &[&before_id, &i64::from(limit)],
            )
            .await?;
        all(rows, incident_row)
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>, StoreError> {
        Ok(self
            .row(
                "SELECT id, aware_at, doc, purge_after, version FROM security_incidents WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| incident_row(&r))
            .transpose()?)
    }

    async fn consents(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let sql = format!(
            "SELECT {CONSENT_COLUMNS} WHERE tenant_id = $1
               AND ($2::bytea IS NULL OR subject_bi = $2)
               AND ($3::text IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        );
        let rows = self
            .rows(
                &sql,
                &[&tenant_id, &subject_bi, &before_id, &i64::from(limit)],
            )
            .await?;
        all(rows, consent_row)
    }

    async fn consent(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let sql = format!("SELECT {CONSENT_COLUMNS} WHERE id = $1");
        Ok(self
            .row(&sql, &[&id])
            .await?
            .map(|r| consent_row(&r))
            .transpose()?)
    }

    async fn consent_counts(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
    ) -> Result<ConsentCounts, StoreError> {
        // The purposes live in the receipt document: one row per purpose.
        let r = self
            .one(
                "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS
                    (SELECT 1 FROM jsonb_array_elements(coalesce(r.doc::jsonb -> 'purposes', '[]')) p
                     WHERE p ->> 'withdrawn_at' IS NULL))
                 FROM consent_records r
                 WHERE r.tenant_id = $1 AND ($2::bytea IS NULL OR r.subject_bi = $2)",
                &[&tenant_id, &subject_bi],
            )
            .await?;
        let (total, withdrawn) = (count(&r, 0)?, count(&r, 1)?);
        let rows = self
            .rows(
                "SELECT p ->> 'purpose' COLLATE \"C\", count(*),
                        count(*) FILTER (WHERE p ->> 'withdrawn_at' IS NOT NULL)
                 FROM consent_records r,
                      jsonb_array_elements(coalesce(r.doc::jsonb -> 'purposes', '[]')) p
                 WHERE r.tenant_id = $1 AND ($2::bytea IS NULL OR r.subject_bi = $2)
                 GROUP BY 1 ORDER BY 1",
                &[&tenant_id, &subject_bi],
            )
            .await?;
        let mut by_purpose = Vec::with_capacity(rows.len());
        for r in &rows {
            by_purpose.push((r.try_get(0)?, count(r, 1)?, count(r, 2)?));
        }
        let withdrawals = by_purpose.iter().map(|p: &(String, u64, u64)| p.2).sum();
        Ok(ConsentCounts {
            total,
            withdrawn,
            withdrawals,
            by_purpose,
        })
    }

    async fn publish_seconds(
        &self,
        rows: Vec<(i64, i16, i64, i64)>,
        prune_before_s: i64,
    ) -> Result<(), StoreError> {
        let node: &str = &self.node;
        let seconds: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let series: Vec<i16> = rows.iter().map(|r| r.1).collect();
        let messages: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let bytes: Vec<i64> = rows.iter().map(|r| r.3).collect();
        if !rows.is_empty() {
            self.rows(
                "INSERT INTO node_seconds (node, second, series, messages, bytes)
                 SELECT $1, * FROM unnest($2::bigint[], $3::smallint[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (second, node, series)
                 DO UPDATE SET messages = excluded.messages, bytes = excluded.bytes",
                &[&node, &seconds, &series, &messages, &bytes],
            )
            .await?;
        }
        self.rows(
            "DELETE FROM node_seconds WHERE second < $1",
            &[&prune_before_s],
        )
        .await?;
        Ok(())
    }

    async fn other_nodes_seconds(
        &self,
        from_s: i64,
        to_s: i64,
    ) -> Result<Vec<(i64, i16, i64, i64)>, StoreError> {
        let node: &str = &self.node;
        let rows = self
            .rows(
                "SELECT second, series, sum(messages)::bigint, sum(bytes)::bigint
                 FROM node_seconds WHERE second >= $2 AND second < $3 AND node <> $1
                 GROUP BY 1, 2",
                &[&node, &from_s, &to_s],
            )
            .await?;
        all(rows, |r| {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
        })
    }

    async fn publish_tenant_seconds(
        &self,
        rows: Vec<(i64, String, i16, i64, i64)>,
        prune_before_s: i64,
    ) -> Result<(), StoreError> {
        let marks = tenant_marks(&self.node);
        // Seconds after the newest this node wrote have no row yet; the
        // others may (a count that changed).
        let (fresh, rewritten): (Vec<TenantRow>, Vec<TenantRow>) = rows
            .into_iter()
            .partition(|r| marks.written_to.is_none_or(|w| r.0 > w));
        if !rewritten.is_empty() {
            self.write_tenant_rows(&rewritten, true).await?;
        }
        if let Some(newest) = fresh.iter().map(|r| r.0).max() {
            match self.write_tenant_rows(&fresh, false).await {
                Ok(()) => {}
                // Written after all (a commit whose answer was lost).
                Err(StoreError::Postgres(e))
                    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    self.write_tenant_rows(&fresh, true).await?;
                }
                Err(e) => return Err(e),
            }
            update_tenant_marks(&self.node, |m| {
                m.written_to = Some(m.written_to.map_or(newest, |w| w.max(newest)));
            });
        }
        // Pruned in batches, from where this node's last prune ended: a
        // deleted row's index entries stay until VACUUM, and a delete of
        // `second < $1` alone walks all of them each time (at 10,000 busy
        // tenants, 20,000 a second); a batch deletes a row for a fifth of
        // what a delete a second costs.
        match marks.pruned_to {
            Some(to) if prune_before_s < to + TENANT_PRUNE_EVERY_S => {}
            Some(to) => {
                self.rows(
                    "DELETE FROM node_tenant_seconds WHERE second >= $1 AND second < $2",
                    &[&to, &prune_before_s],
                )
                .await?;
                update_tenant_marks(&self.node, |m| m.pruned_to = Some(prune_before_s));
            }
            None => {
                self.rows(
                    "DELETE FROM node_tenant_seconds WHERE second < $1",
                    &[&prune_before_s],
                )
                .await?;
                update_tenant_marks(&self.node, |m| m.pruned_to = Some(prune_before_s));
            }
        }
        Ok(())
    }

    async fn other_nodes_tenant_seconds(
        &self,
        from_s: i64,
        to_s: i64,
        tenant: Option<&str>,
    ) -> Result<Vec<(i64, String, i16, i64, i64)>, StoreError> {
        let node: &str = &self.node;
        let rows = self
            .rows(
                "SELECT second, tenant_id, series, sum(messages)::bigint, sum(bytes)::bigint
                 FROM node_tenant_seconds
                 WHERE second >= $2 AND second < $3 AND node <> $1
                   AND ($4::text IS NULL OR tenant_id = $4)
                 GROUP BY 1, 2, 3",
                &[&node, &from_s, &to_s, &tenant],
            )
            .await?;
        all(rows, |r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
    }

    async fn publish_latency(
        &self,
        rows: Vec<NodeLatencyRow>,
        horizons: [(i16, i64); 3],
    ) -> Result<(), StoreError> {
        let node: &str = &self.node;
        if !rows.is_empty() {
            let rings: Vec<i16> = rows.iter().map(|r| r.ring).collect();
            let slots: Vec<i64> = rows.iter().map(|r| r.slot).collect();
            let channels: Vec<i16> = rows.iter().map(|r| r.channel).collect();
            let histograms: Vec<&[u8]> = rows.iter().map(|r| r.histogram.as_slice()).collect();
            let encrypt: Vec<i64> = rows.iter().map(|r| r.encrypt_ns).collect();
            self.rows(
                "INSERT INTO node_latency (node, ring, slot, channel, histogram, encrypt_ns)
                 SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::smallint[],
                                          $5::bytea[], $6::bigint[])
                 ON CONFLICT (ring, slot, node, channel)
                 DO UPDATE SET histogram = excluded.histogram, encrypt_ns = excluded.encrypt_ns",
                &[&node, &rings, &slots, &channels, &histograms, &encrypt],
            )
            .await?;
        }
        // Per ring, a range of the primary key: no scan of the table.
        let rings: Vec<i16> = horizons.iter().map(|h| h.0).collect();
        let oldest: Vec<i64> = horizons.iter().map(|h| h.1).collect();
        self.rows(
            "DELETE FROM node_latency l
             USING unnest($1::smallint[], $2::bigint[]) AS h(ring, oldest)
             WHERE l.ring = h.ring AND l.slot < h.oldest",
            &[&rings, &oldest],
        )
        .await?;
        Ok(())
    }

    async fn other_nodes_latency(
        &self,
        ring: i16,
        first: i64,
        last: i64,
    ) -> Result<Vec<NodeLatencyRow>, StoreError> {
        let node: &str = &self.node;
        let rows = self
            .rows(
                "SELECT ring, slot, channel, histogram, encrypt_ns FROM node_latency
                 WHERE ring = $2 AND slot >= $3 AND slot <= $4 AND node <> $1",
                &[&node, &ring, &first, &last],
            )
            .await?;
        all(rows, |r| {
            Ok(NodeLatencyRow {
                ring: r.try_get(0)?,
                slot: r.try_get(1)?,
                channel: r.try_get(2)?,
                histogram: r.try_get(3)?,
                encrypt_ns: r.try_get(4)?,
            })
        })
    }

    async fn publish_node(&self, row: NodeRow, forget_before_ms: Millis) -> Result<(), StoreError> {
        let node: &str = &self.node;
        self.rows(
            "INSERT INTO nodes (node, started_at_ms, heartbeat_ms, messages_total, bytes_total,
                                errors_total, error_codes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (node) DO UPDATE SET
                 started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms,
                 messages_total = excluded.messages_total, bytes_total = excluded.bytes_total,
                 errors_total = excluded.errors_total, error_codes = excluded.error_codes",
            &[
                &node,
                &row.started_at_ms,
                &row.heartbeat_ms,
                &row.messages_total,
                &row.bytes_total,
                &row.errors_total,
                &row.error_codes,
            ],
        )
        .await?;
        self.rows(
            "DELETE FROM nodes WHERE heartbeat_ms < $1",
            &[&forget_before_ms],
        )
        .await?;
        Ok(())
    }

    async fn other_live_nodes(&self, since_ms: Millis) -> Result<Vec<NodeRow>, StoreError> {
        let node: &str = &self.node;
        let rows = self
            .rows(
                "SELECT node, started_at_ms, heartbeat_ms, messages_total, bytes_total,
                        errors_total, error_codes
                 FROM nodes WHERE heartbeat_ms >= $2 AND node <> $1 ORDER BY node",
                &[&node, &since_ms],
            )
            .await?;
        all(rows, |r| {
            Ok(NodeRow {
                node: r.try_get(0)?,
                started_at_ms: r.try_get(1)?,
                heartbeat_ms: r.try_get(2)?,
                messages_total: r.try_get(3)?,
                bytes_total: r.try_get(4)?,
                errors_total: r.try_get(5)?,
                error_codes: r.try_get(6)?,
            })
        })
    }

    fn node_id(&self) -> Option<&str> {
        Some(&self.node)
    }

    async fn cluster_lock(&self, key: i64) -> Result<Option<ClusterLock>, StoreError> {
        let c = self
            .read_pool
            .get()
            .await
            .map_err(|e| StoreError::Io(format!("database unavailable: {}", pool_error(&e))))?;
        let st = c.prepare_cached("SELECT pg_advisory_lock($1)").await?;
        c.execute(&st, &[&key]).await?;
        Ok(Some(ClusterLock::new(SessionLock(Some(c)))))
    }

    async fn claim_totp_step(
        &self,
        token_key: &str,
        step: i64,
        prune_below: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .rows(
                "INSERT INTO totp_steps (token_key, step) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING RETURNING step",
                &[&token_key, &step],
            )
            .await?;
        self.rows("DELETE FROM totp_steps WHERE step < $1", &[&prune_below])
            .await?;
        Ok(!inserted.is_empty())
    }

    fn cluster_events(&self) -> Option<broadcast::Receiver<ClusterEvent>> {
        Some(self.events.subscribe())
    }

    fn ready(&self) -> bool {
        self.running.iter().all(|r| r.load(Ordering::SeqCst))
            && self.main.lock().map(|s| s.is_some()).unwrap_or(false)
            && self.reachable.load(Ordering::SeqCst)
    }

    async fn close(&self) {
        // Dropping the senders lets each writer drain its queue and stop.
        for lane in [&self.main, &self.purge] {
            if let Ok(mut s) = lane.lock() {
                s.take();
            }
        }
        let _ = self.stop_listener.send(true);
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
        self.read_pool.close();
        self.write_pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;
    use crate::config::Database;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgres://c24:s3cret@db:5432/c24?sslmode=disable"),
            "postgres://c24:***@db:5432/c24?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://c24@db/c24"), "postgres://c24@db/c24");
        assert_eq!(redact_url("postgres://db/c24"), "postgres://db/c24");
        let db = Database::parse("postgresql://u:hunter2@h/d").unwrap();
        let shown = format!("{db:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("u:***@h/d"),
            "{shown}"
        );
    }

    #[test]
    fn database_flag_takes_only_postgres_urls() {
        assert!(matches!(
            Database::parse("postgres://h/d"),
            Ok(Database::Postgres { .. })
        ));
        let err = Database::parse("sqlite:///tmp/x").unwrap_err();
        assert!(err.contains("postgres://"), "{err}");
    }
}

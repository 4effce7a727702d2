//! Durable storage behind one trait, so a PostgreSQL backend can follow SQLite.
//!
//! - [`Store`]: what the rest of the chat core may ask of storage.
//! - [`sqlite`]: the embedded default (WAL, read pool).
//! - [`writer`]: the group-commit writer that owns the one write connection.
//! - [`postgres`]: PostgreSQL for several nodes on one database
//!   (`--database postgres://...`), with versioned migrations.
//!
//! Callers hand in rows that are already sealed: encryption runs in the
//! producers, in parallel, never in the single writer.

pub mod postgres;
pub mod sqlite;
pub mod writer;

use async_trait::async_trait;

use crate::clock::Millis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A conditional write found the record changed since it was read
    /// (another node, or another request, wrote it first): nothing was
    /// written. Re-read it and decide again.
    #[error("the {0} was changed concurrently; nothing was written")]
    Stale(&'static str),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {}", postgres::migrate::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "the database schema is at version {found}, newer than this c24-core knows ({known}); \
         refusing to start: run a c24-core at least as new as the one that migrated it"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("storage is shutting down")]
    Closed,
    #[error("{0}")]
    Io(String),
    #[error(
        "this database was created with at-rest encryption {stored}, but the server was started with it {asked}; refusing to open"
    )]
    EncryptionMismatch {
        stored: &'static str,
        asked: &'static str,
    },
}

/// The three ingress channels (the contract crate's names).
pub use c24_api::Channel;

/// A tenant row, as stored (secrets sealed under the KEK).
#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub status: String,
    pub dpa_signed_at: Option<Millis>,
    pub created_at: Millis,
    pub api_key_hash: Vec<u8>,
    pub widget_key_hash: Vec<u8>,
    pub phone_number_id: String,
    pub email_address: String,
    pub secrets: Vec<u8>,
    pub wrapped_dek: Option<Vec<u8>>,
    pub key_destroyed_at: Option<Millis>,
    pub terminated_at: Option<Millis>,
    pub purge_after: Option<Millis>,
}

/// A tenant's new lifecycle state.
#[derive(Debug, Clone)]
pub struct TenantUpdate {
    pub id: String,
    pub status: String,
    pub dpa_signed_at: Option<Millis>,
    pub terminated_at: Option<Millis>,
    pub purge_after: Option<Millis>,
}

/// A lifecycle change computed from the state `from`: it applies only while
/// the stored tenant is still in exactly that state (status, DPA,
/// termination, purge date), else [`StoreError::Stale`] and nothing is
/// written. Two nodes each acting on their own copy cannot both win.
#[derive(Debug, Clone)]
pub struct TenantTransition {
    pub from: TenantUpdate,
    pub to: TenantUpdate,
}

/// Tables the purge worker deletes from, each row carrying `purge_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTable {
    Messages,
    EmailThreads,
    Conversations,
    Contacts,
    AuditLog,
    DsrExports,
    DsrRequests,
    Restrictions,
    SecurityIncidents,
    ConsentRecords,
    TrafficTrace,
}

impl PurgeTable {
    /// In deletion order: children before parents.
    pub const ALL: [PurgeTable; 11] = [
        PurgeTable::Messages,
        PurgeTable::EmailThreads,
        PurgeTable::Conversations,
        PurgeTable::Contacts,
        PurgeTable::AuditLog,
        PurgeTable::DsrExports,
        PurgeTable::DsrRequests,
        PurgeTable::Restrictions,
        PurgeTable::SecurityIncidents,
        PurgeTable::ConsentRecords,
        PurgeTable::TrafficTrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PurgeTable::Messages => "messages",
            PurgeTable::EmailThreads => "email_threads",
            PurgeTable::Conversations => "conversations",
            PurgeTable::Contacts => "contacts",
            PurgeTable::AuditLog => "audit_log",
            PurgeTable::DsrExports => "dsr_exports",
            PurgeTable::DsrRequests => "dsr_requests",
            PurgeTable::Restrictions => "restrictions",
            PurgeTable::SecurityIncidents => "security_incidents",
            PurgeTable::ConsentRecords => "consent_records",
            PurgeTable::TrafficTrace => "traffic_trace",
        }
    }
}

/// What one purge batch deleted, per tenant (for the usage counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgedBatch {
    pub rows: u64,
    /// (tenant, messages, bytes, conversations) removed.
    pub per_tenant: Vec<(String, i64, i64, i64)>,
}

/// Counts of rows due for deletion in one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueCounts {
    pub records: i64,
    pub bytes: i64,
    pub overdue: i64,
    pub due_24h: i64,
    pub due_7d: i64,
    /// `purge_after` of the oldest overdue row.
    pub oldest_overdue: Option<Millis>,
}

/// The end user behind an inbound message, sealed.
#[derive(Debug, Clone)]
pub struct NewContact {
    /// Used only when the contact is new; an existing one keeps its id.
    pub id: String,
    /// `visitor`, `phone` or `email`.
    pub kind: &'static str,
    pub ident_bi: Vec<u8>,
    /// Empty when the message goes into an existing conversation: the
    /// contact exists, and is only looked up.
    pub ident_ct: Vec<u8>,
    pub name_ct: Option<Vec<u8>>,
}

/// Which conversation an inbound message belongs to.
#[derive(Debug, Clone)]
pub enum ConversationTarget {
    /// Start one with this id.
    New { id: String },
    /// An existing one; must belong to the tenant and the contact.
    Existing { id: String },
    /// Email threading: the first conversation that holds any of these
    /// Message-ID blind indexes, else a new one.
    EmailThread {
        candidates: Vec<Vec<u8>>,
        new_id: String,
    },
    /// The contact's latest conversation on this channel active within the
    /// window, else a new one (WhatsApp's 24-hour session).
    LatestForContact { new_id: String, within_ms: Millis },
}

#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub tenant_id: String,
    pub channel: Channel,
    pub contact: NewContact,
    pub target: ConversationTarget,
    pub message_id: String,
    /// Blind index that makes a resend idempotent tenant-wide (WhatsApp and
    /// email ids, and the first message of a web-chat conversation); indexed.
    pub dedupe_key: Option<Vec<u8>>,
    /// Web chat: the same kind of key, scoped to the conversation and
    /// recognised among its recent messages (not indexed).
    pub client_key: Option<Vec<u8>>,
    pub body_ct: Vec<u8>,
    pub subject_ct: Option<Vec<u8>>,
    /// Plaintext size in bytes (for throughput and backlog figures).
    pub size: i64,
    pub received_at: Millis,
    /// Email: this message's own Message-ID blind index, for later replies.
    pub thread_key: Option<Vec<u8>>,
    /// Time spent sealing it (not stored; for the live figures).
    pub encrypt_ns: u64,
}

#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub tenant_id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub body_ct: Vec<u8>,
    pub size: i64,
    pub received_at: Millis,
    /// Time spent sealing it (not stored).
    pub encrypt_ns: u64,
}

/// One entry of the audit log: who did what, when, with what outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Assigned by the store; ascending.
    pub id: i64,
    pub at: Millis,
    pub actor: String,
    pub role: String,
    /// `METHOD /route/{template}`.
    pub action: String,
    /// The concrete path.
    pub target: String,
    pub status: u16,
    /// `ok` or the error code.
    pub outcome: String,
    pub purge_after: Millis,
}

/// A data-subject request row. The person is only `subject_bi` (a blind
/// index, cleared after an erasure); `doc` is the rest as JSON.
#[derive(Debug, Clone)]
pub struct DsrRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    /// `email`, `phone` or `visitor_id`.
    pub subject_kind: String,
    pub subject_bi: Option<Vec<u8>>,
    /// `received`, `extended` or `completed`.
    pub status: String,
    pub received_at: Millis,
    /// The deadline now (with any extension).
    pub due_at: Millis,
    pub doc: String,
    /// Set by the store (tenant termination); writes leave it as it is.
    pub purge_after: Option<Millis>,
    /// See [`IncidentRecord::version`].
    pub version: i64,
}

/// What completing a data-subject request does, in the same transaction
/// as the request's new state.
#[derive(Debug, Clone)]
pub enum DsrAction {
    /// Only the state changes.
    None,
    /// Deletes the contact of (`kind`, `ident_bi`), its conversations, their
    /// messages and email threads, exports of the person's requests, and the
    /// blind index from the tenant's other requests about the person.
    Erase {
        /// `visitor`, `phone` or `email` (as in `contacts.kind`).
        kind: &'static str,
        ident_bi: Vec<u8>,
    },
    /// Replaces sealed fields of one contact, which must still carry `ident_bi`.
    Rectify {
        contact_id: String,
        ident_bi: Vec<u8>,
        name_ct: Option<Vec<u8>>,
        /// A new identifier: its sealed value and its blind index.
        ident: Option<(Vec<u8>, Vec<u8>)>,
    },
    /// Ingress refuses the identifier from now on.
    Restrict { ident_bi: Vec<u8> },
    /// Stores the sealed export until its download (or `purge_after`).
    Export {
        sealed: Vec<u8>,
        purge_after: Millis,
    },
}

#[derive(Debug, Clone)]
pub struct DsrCompletion {
    pub record: DsrRecord,
    pub action: DsrAction,
    pub at: Millis,
}

/// What an erasure deleted, for the usage counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub contacts: u64,
    pub conversations: u64,
    pub messages: u64,
    /// Plaintext bytes of the deleted messages.
    pub bytes: i64,
    /// Traffic-trace entries of the erased conversations removed with them
    /// (the in-memory trace total goes down by as many).
    pub trace_entries: u64,
    /// The erased conversations' ids, for the writer alone (it drops their
    /// entries from the trace row its batch has yet to write).
    pub conversation_ids: Vec<String>,
}

/// A contact row, sealed.
#[derive(Debug, Clone)]
pub struct ContactRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub ident_ct: Vec<u8>,
    pub name_ct: Option<Vec<u8>>,
    pub created_at: Millis,
}

/// A breach record: one JSON document (no end-user data).
#[derive(Debug, Clone)]
pub struct IncidentRecord {
    pub id: String,
    pub aware_at: Millis,
    pub doc: String,
    pub purge_after: Millis,
    /// Optimistic concurrency: the stored version this record was read at
    /// (0: not stored yet). A write applies only while the stored version
    /// is still this one (0: while no record has the id) and stores
    /// version + 1; else [`StoreError::Stale`], nothing written.
    pub version: i64,
}

/// A consent record: the person as a blind index, the receipt as JSON.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub id: String,
    pub tenant_id: String,
    pub subject_kind: String,
    pub subject_bi: Vec<u8>,
    pub doc: String,
    /// Consent end + 3 years; `None` leaves a stored value as it is.
    pub purge_after: Option<Millis>,
    /// See [`IncidentRecord::version`].
    pub version: i64,
}

/// Consent counts over a tenant's records (or one person's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentCounts {
    pub total: u64,
    /// Records with every purpose withdrawn.
    pub withdrawn: u64,
    /// Purposes withdrawn.
    pub withdrawals: u64,
    /// (purpose, given, withdrawn), by purpose.
    pub by_purpose: Vec<(String, u64, u64)>,
}

/// One latency slot of one channel as a node publishes it for the others
/// (several nodes on one database; see `cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLatencyRow {
    /// 0: 10-second slots, 1: 1-minute slots, 2: 1-hour slots.
    pub ring: i16,
    /// Time ÷ the ring's slot width.
    pub slot: i64,
    /// Index into [`Channel::ALL`].
    pub channel: i16,
    /// Receive → commit µs: an HdrHistogram, V2 format with DEFLATE.
    pub histogram: Vec<u8>,
    /// Time spent sealing the same messages.
    pub encrypt_ns: i64,
}

/// A node's heartbeat and its totals since start, as it publishes them
/// for the others (several nodes on one database; see `cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    pub started_at_ms: Millis,
    pub heartbeat_ms: Millis,
    pub messages_total: i64,
    pub bytes_total: i64,
    pub errors_total: i64,
    /// JSON: `[{"channel","code","count"}]`.
    pub error_codes: String,
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    CreateTenant(Box<TenantRecord>),
    /// Writes a tenant's lifecycle state whatever is stored (the admin API
    /// uses [`WriteOp::TransitionTenant`], which cannot lose another node's change).
    UpdateTenant(Box<TenantUpdate>),
    /// A conditional [`WriteOp::UpdateTenant`] (see [`TenantTransition`]).
    TransitionTenant(Box<TenantTransition>),
    /// Sets `purge_after` on up to `batch` conversations of the tenant still
    /// without one (and on their messages), and on its contacts and threads.
    StampTenantPurge {
        tenant_id: String,
        purge_after: Millis,
        batch: u32,
    },
    /// Deletes up to `batch` rows of `table` due at `now`.
    PurgeBatch {
        table: PurgeTable,
        now: Millis,
        batch: u32,
    },
    /// Crypto-shredding: forgets the tenant's wrapped DEK.
    DestroyKey {
        tenant_id: String,
        at: Millis,
    },
    Audit(Box<AuditRecord>),
    Inbound(Box<InboundMessage>),
    Outbound(Box<OutboundMessage>),
    /// Upserts sub-processor registry entries: (id, JSON document).
    PutSubprocessors(Vec<(String, String)>),
    /// Inserts registry entries whose id is not stored yet, leaving stored
    /// ones as they are (the seed: two nodes starting at once seed once).
    SeedSubprocessors(Vec<(String, String)>),
    /// Writes one registry entry if it is still as read: `expected` is the
    /// stored document (or `None`: no entry of that id yet); otherwise
    /// `StoreError::Conflict` and nothing changes (another node changed it
    /// since).
    ReplaceSubprocessor {
        id: String,
        expected: Option<String>,
        doc: String,
    },
    /// Inserts or updates a data-subject request, checking its version
    /// ([`IncidentRecord::version`]).
    PutDsr(Box<DsrRecord>),
    /// Runs a request's action and stores its completed state, atomically;
    /// the request's version is checked first, so of two nodes completing
    /// one request only one runs the action.
    CompleteDsr(Box<DsrCompletion>),
    /// Deletes a request's export and answers it ([`WriteOutcome::Blob`]),
    /// storing the request's new state (version checked); `NotFound("export")` when gone.
    TakeDsrExport(Box<DsrRecord>),
    /// Inserts or updates a breach record, checking its version.
    PutIncident(Box<IncidentRecord>),
    /// Inserts or updates a consent record, checking its version.
    PutConsent(Box<ConsentRecord>),
    /// The tenant's contract ended: consents still standing end now, and
    /// are due for deletion at `purge_after`.
    EndTenantConsents {
        tenant_id: String,
        purge_after: Millis,
    },
}

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub received_at: Millis,
    pub committed_at: Millis,
    /// A resend of a message already stored; nothing new was written.
    pub duplicate: bool,
    /// This message started its conversation.
    pub new_conversation: bool,
}

#[derive(Debug, Clone)]
pub enum WriteOutcome {
    Done,
    Message(StoredMessage),
    Count(u64),
    Purged(PurgedBatch),
    Erased(Erased),
    Blob(Vec<u8>),
}

impl WriteOutcome {
    pub fn message(self) -> Result<StoredMessage, StoreError> {
        match self {
            WriteOutcome::Message(m) => Ok(m),
            _ => Err(StoreError::Io("expected a stored message".into())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConversationRecord {
    pub id: String,
    pub tenant_id: String,
    pub channel: String,
    pub contact_id: String,
    pub contact_bi: Vec<u8>,
    pub created_at: Millis,
    pub last_activity_at: Millis,
    pub message_count: i64,
}

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub direction: String,
    pub body_ct: Vec<u8>,
    pub subject_ct: Option<Vec<u8>>,
    pub received_at: Millis,
}

/// One row of the traffic trace: the messages of one group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceBatch {
    pub id: i64,
    /// When the batch was stored.
    pub at: Millis,
    /// Packed entries ([`crate::traffic::decode_entries`]).
    pub entries: Vec<u8>,
}

/// Where a traffic-trace export stands: `(at, id)` of the last batch written.
pub type TraceCursor = (Millis, i64);

/// A change another node committed to the shared database (PostgreSQL's
/// `LISTEN/NOTIFY`), for this node's sockets and caches. One SQLite node
/// has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// An agent reply was stored (only ids: the body stays in the database, sealed).
    Outbound {
        tenant_id: String,
        conversation_id: String,
        seq: i64,
    },
    /// A tenant was created or changed (state, key): reload it.
    Tenant { tenant_id: String },
    /// What another node's committed batch added to (or purged or erased
    /// from) tenants' stored data: (tenant, messages, bytes, conversations).
    Usage {
        deltas: Vec<(String, i64, i64, i64)>,
        /// Messages the batch added to the traffic trace, less those its
        /// purge deleted from it (the retention report's trace total).
        trace: i64,
    },
    /// Data-subject requests, restrictions or breach records changed:
    /// reload what ingress and the overview keep of them.
    Compliance,
    /// The sub-processor registry changed: reload it.
    Registry,
    /// Events may have been missed (the listener reconnected): reload all.
    Resync,
}

/// A lock other nodes wait for ([`Store::cluster_lock`]); released on drop.
pub struct ClusterLock(#[allow(dead_code)] Box<dyn Send>);

impl ClusterLock {
    pub fn new(held: impl Send + 'static) -> Self {
        Self(Box::new(held))
    }
}

/// A queued write; await it for the commit.
pub type PendingWrite = tokio::sync::oneshot::Receiver<Result<WriteOutcome, StoreError>>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues a write in arrival order; the returned receiver resolves once it
    /// is durably committed. Writes queued by one caller commit in order.
    async fn submit(&self, op: WriteOp) -> Result<PendingWrite, StoreError>;

    /// Queues a write and waits for its commit.
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let rx = self.submit(op).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn load_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// One tenant as stored (after a lost race, to catch up with it).
    async fn load_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.load_tenants().await?.into_iter().find(|t| t.id == id))
    }

    /// The tenant's conversations, newest first, `limit` after the cursor id.
    async fn conversations(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError>;

    /// Messages with `seq > after_seq`, oldest first.
    async fn messages(
        &self,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// The audit log, newest first, `limit` entries with id below `before`.
    async fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditRecord>, StoreError>;

    /// Row counts by `purge_after` for one table, at `now`.
    /// With `totals`, also counts the table's rows (a scan); messages and
    /// conversations are counted in memory instead (the tenants' usage).
    async fn due_counts(
        &self,
        table: PurgeTable,
        now: Millis,
        totals: bool,
    ) -> Result<DueCounts, StoreError>;

    /// Traffic-trace batches with `from <= at < to`, ordered by (at, id), at
    /// most `limit` after `after`: a page of a streamed export.
    async fn traffic_trace(
        &self,
        from: Millis,
        to: Millis,
        after: Option<TraceCursor>,
        limit: u32,
    ) -> Result<Vec<TraceBatch>, StoreError>;

    /// Messages in the traffic trace (once at start; then counted in memory).
    async fn traffic_trace_rows(&self) -> Result<i64, StoreError>;

    /// Per tenant: (messages, bytes, conversations) stored, to seed the usage counters at start.
    async fn usage(&self) -> Result<Vec<(String, i64, i64, i64)>, StoreError>;

    /// Whether the tenant still has any end-user row.
    async fn tenant_has_data(&self, tenant_id: &str) -> Result<bool, StoreError>;

    /// Conversations per tenant active since `since` ("open").
    async fn open_conversations(&self, since: Millis) -> Result<Vec<(String, i64)>, StoreError>;

    /// The sub-processor registry's JSON documents.
    async fn subprocessors(&self) -> Result<Vec<String>, StoreError>;

    /// The tenant's contact of this kind and identifier blind index.
    async fn contact(
        &self,
        tenant_id: &str,
        kind: &str,
        ident_bi: &[u8],
    ) -> Result<Option<ContactRecord>, StoreError>;

    /// Every conversation of a contact, oldest first.
    async fn contact_conversations(
        &self,
        contact_id: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// The tenant's data-subject requests, newest first, `limit` after the cursor id.
    async fn dsr_requests(
        &self,
        tenant_id: &str,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<DsrRecord>, StoreError>;

    async fn dsr_request(&self, id: &str) -> Result<Option<DsrRecord>, StoreError>;

    /// (open, overdue at `now`) requests of the tenant.
    async fn dsr_counts(&self, tenant_id: &str, now: Millis) -> Result<(u64, u64), StoreError>;

    /// Every request not completed: (id, tenant, due_at).
    async fn open_dsrs(&self) -> Result<Vec<(String, String, Millis)>, StoreError>;

    /// Every restricted identifier: (tenant, blind index).
    async fn restrictions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Breach records, newest first, `limit` after the cursor id.
    async fn incidents(
        &self,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<IncidentRecord>, StoreError>;

    async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>, StoreError>;

    /// The tenant's consent records (of one person, if `subject_bi`),
    /// newest first, `limit` after the cursor id.
    async fn consents(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
        limit: u32,
        before_id: Option<String>,
    ) -> Result<Vec<ConsentRecord>, StoreError>;

    async fn consent(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError>;

    async fn consent_counts(
        &self,
        tenant_id: &str,
        subject_bi: Option<Vec<u8>>,
    ) -> Result<ConsentCounts, StoreError>;

    /// Publishes this node's per-second message counts for the other nodes'
    /// live figures: (second, series 0..5, messages, bytes); drops every
    /// node's rows before `prune_before_s`. A no-op with one node.
    async fn publish_seconds(
        &self,
        _rows: Vec<(i64, i16, i64, i64)>,
        _prune_before_s: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The other nodes' counts for seconds in `from_s..to_s`, summed per
    /// (second, series). Empty with one node.
    async fn other_nodes_seconds(
        &self,
        _from_s: i64,
        _to_s: i64,
    ) -> Result<Vec<(i64, i16, i64, i64)>, StoreError> {
        Ok(Vec::new())
    }

    /// Publishes this node's per-second counts per tenant, as
    /// [`Store::publish_seconds`] does platform-wide: (second, tenant,
    /// series 0..5, messages, bytes). A no-op with one node.
    async fn publish_tenant_seconds(
        &self,
        _rows: Vec<(i64, String, i16, i64, i64)>,
        _prune_before_s: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The other nodes' per-tenant counts for seconds in `from_s..to_s`
    /// (of one tenant, or all), summed per (second, tenant, series).
    /// Empty with one node.
    async fn other_nodes_tenant_seconds(
        &self,
        _from_s: i64,
        _to_s: i64,
        _tenant: Option<&str>,
    ) -> Result<Vec<(i64, String, i16, i64, i64)>, StoreError> {
        Ok(Vec::new())
    }

    /// Publishes this node's latency slots for the other nodes (upserting
    /// each); drops every node's slots older than each ring's horizon
    /// (ring, oldest slot kept). A no-op with one node.
    async fn publish_latency(
        &self,
        _rows: Vec<NodeLatencyRow>,
        _horizons: [(i16, i64); 3],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The other nodes' latency slots of `ring` from `first` to `last`
    /// (both included). Empty with one node.
    async fn other_nodes_latency(
        &self,
        _ring: i16,
        _first: i64,
        _last: i64,
    ) -> Result<Vec<NodeLatencyRow>, StoreError> {
        Ok(Vec::new())
    }

    /// Upserts this node's heartbeat and totals (`row.node` is ignored:
    /// the store's own node id is used); forgets nodes whose heartbeat is
    /// before `forget_before_ms`. A no-op with one node.
    async fn publish_node(
        &self,
        _row: NodeRow,
        _forget_before_ms: Millis,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The other nodes with a heartbeat at or after `since_ms`. Empty with
    /// one node.
    async fn other_live_nodes(&self, _since_ms: Millis) -> Result<Vec<NodeRow>, StoreError> {
        Ok(Vec::new())
    }

    /// This node's id among several on one database (the `node` column of
    /// the published figures); `None` when this node is the only one.
    fn node_id(&self) -> Option<&str> {
        None
    }

    /// Records that staff token `token_key` used TOTP step `step`; `false`
    /// if some node recorded it already (a replayed code). Drops steps
    /// below `prune_below`. With one node its memory suffices: always `true`.
    async fn claim_totp_step(
        &self,
        _token_key: &str,
        _step: i64,
        _prune_below: i64,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Held while this node reads, changes and writes back a shared
    /// document: no other node holds the same `key` meanwhile (released
    /// when dropped). `None` with one node: its own lock suffices.
    async fn cluster_lock(&self, _key: i64) -> Result<Option<ClusterLock>, StoreError> {
        Ok(None)
    }

    /// Changes other nodes commit; `None` when this node is the only one.
    fn cluster_events(&self) -> Option<tokio::sync::broadcast::Receiver<ClusterEvent>> {
        None
    }

    /// A WAL truncation owed after an erasure or a key destruction is not
    /// done yet (SQLite: a reader held an old snapshot); it is retried.
    fn wal_truncation_pending(&self) -> bool {
        false
    }

    /// Storage open and the writer running.
    fn ready(&self) -> bool;

    /// Stops accepting writes, commits what was queued, closes.
    async fn close(&self);
}

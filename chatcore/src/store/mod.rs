//! Durable storage behind one trait, so a PostgreSQL backend can follow SQLite.
//!
//! - [`Store`]: what the rest of the chat core may ask of storage.
//! - [`sqlite`]: the embedded default (WAL, read pool).
//! - [`writer`]: the group-commit writer that owns the one write connection.
//!
//! Callers hand in rows that are already sealed: encryption runs in the
//! producers, in parallel, never in the single writer.

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
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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

/// The three ingress channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Webchat,
    Whatsapp,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Webchat, Channel::Whatsapp, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

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
}

/// The end user behind an inbound message, sealed.
#[derive(Debug, Clone)]
pub struct NewContact {
    /// Used only when the contact is new; an existing one keeps its id.
    pub id: String,
    /// `visitor`, `phone` or `email`.
    pub kind: &'static str,
    pub ident_bi: Vec<u8>,
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
    /// Blind index that makes a resend idempotent.
    pub dedupe_key: Option<Vec<u8>>,
    pub body_ct: Vec<u8>,
    pub subject_ct: Option<Vec<u8>>,
    /// Plaintext size in bytes (for throughput and backlog figures).
    pub size: i64,
    pub received_at: Millis,
    /// Email: this message's own Message-ID blind index, for later replies.
    pub thread_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub tenant_id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub body_ct: Vec<u8>,
    pub size: i64,
    pub received_at: Millis,
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    CreateTenant(Box<TenantRecord>),
    Inbound(Box<InboundMessage>),
    Outbound(Box<OutboundMessage>),
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
}

#[derive(Debug, Clone)]
pub enum WriteOutcome {
    Done,
    Message(StoredMessage),
}

impl WriteOutcome {
    pub fn message(self) -> Result<StoredMessage, StoreError> {
        match self {
            WriteOutcome::Message(m) => Ok(m),
            WriteOutcome::Done => Err(StoreError::Io("expected a stored message".into())),
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

    /// Storage open and the writer running.
    fn ready(&self) -> bool;

    /// Stops accepting writes, commits what was queued, closes.
    async fn close(&self);
}

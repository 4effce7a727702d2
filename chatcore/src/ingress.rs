//! Turning a channel's inbound message into sealed rows for the store.
//!
//! Each channel handler authenticates and parses; this module seals the body
//! and the end user's identifiers under the tenant's DEK, computes the blind
//! indexes, and names the row ids the AAD binds to. It runs in the request's
//! task, so encryption is spread over all cores, not done in the writer.

use crate::clock::Millis;
use crate::crypto::{Aad, BlindKind, CryptoError, TenantCipher};
use crate::store::{Channel, ConversationTarget, InboundMessage, NewContact};

/// How the conversation is chosen, before ids are minted.
pub enum Thread {
    New,
    Existing(String),
    /// Email: Message-IDs this one replies to.
    Email(Vec<String>),
    /// WhatsApp: the contact's latest conversation within the window.
    Latest {
        within_ms: Millis,
    },
}

/// One inbound message in plaintext, as a channel parsed it.
pub struct Incoming<'a> {
    pub tenant_id: &'a str,
    pub channel: Channel,
    pub contact_kind: BlindKind,
    pub contact_ident: &'a str,
    pub contact_name: Option<&'a str>,
    pub thread: Thread,
    /// Idempotency key: a resend with the same key stores nothing new.
    pub dedupe: Option<(BlindKind, String)>,
    /// The key is scoped to the conversation (web chat): recognised among
    /// the conversation's recent messages, and tenant-wide only for the
    /// message that starts a conversation.
    pub conversation_scoped_dedupe: bool,
    pub body: &'a str,
    pub subject: Option<&'a str>,
    pub received_at: Millis,
    /// Email: this message's own Message-ID.
    pub own_message_id: Option<&'a str>,
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn contact_kind_name(kind: BlindKind) -> &'static str {
    match kind {
        BlindKind::Phone => "phone",
        BlindKind::Email => "email",
        _ => "visitor",
    }
}

/// Seals an incoming message into a store write.
pub fn seal(cipher: &TenantCipher, m: Incoming<'_>) -> Result<InboundMessage, CryptoError> {
    let started = std::time::Instant::now();
    let tenant = m.tenant_id;
    let contact_id = new_id();
    let message_id = new_id();
    // Into an existing conversation the contact exists already: sealing its
    // identifier again would only be thrown away by the store.
    let existing = matches!(m.thread, Thread::Existing(_));
    let (ident_ct, name_ct) = if existing {
        (Vec::new(), None)
    } else {
        let ident_ct = cipher.seal(
            Aad {
                tenant,
                table: "contacts",
                row: &contact_id,
                column: "ident",
            },
            m.contact_ident.as_bytes(),
        )?;
        let name_ct = m
            .contact_name
            .map(|n| {
                cipher.seal(
                    Aad {
                        tenant,
                        table: "contacts",
                        row: &contact_id,
                        column: "name",
                    },
                    n.as_bytes(),
                )
            })
            .transpose()?;
        (ident_ct, name_ct)
    };
    let body_ct = cipher.seal(
        Aad {
            tenant,
            table: "messages",
            row: &message_id,
            column: "body",
        },
        m.body.as_bytes(),
    )?;
    let subject_ct = m
        .subject
        .map(|s| {
            cipher.seal(
                Aad {
                    tenant,
                    table: "messages",
                    row: &message_id,
                    column: "subject",
                },
                s.as_bytes(),
            )
        })
        .transpose()?;
    let key = m.dedupe.map(|(k, v)| cipher.blind_index(k, &v));
    let (dedupe_key, client_key) = if m.conversation_scoped_dedupe {
        let starts = matches!(m.thread, Thread::New);
        (key.clone().filter(|_| starts), key)
    } else {
        (key, None)
    };
    let target = match m.thread {
        Thread::New => ConversationTarget::New { id: new_id() },
        Thread::Existing(id) => ConversationTarget::Existing { id },
        Thread::Email(refs) => ConversationTarget::EmailThread {
            candidates: refs
                .iter()
                .map(|r| cipher.blind_index(BlindKind::EmailMessageId, r))
                .collect(),
            new_id: new_id(),
        },
        Thread::Latest { within_ms } => ConversationTarget::LatestForContact {
            new_id: new_id(),
            within_ms,
        },
    };
    Ok(InboundMessage {
        tenant_id: tenant.to_string(),
        channel: m.channel,
        contact: NewContact {
            id: contact_id,
            kind: contact_kind_name(m.contact_kind),
            ident_bi: cipher.blind_index(m.contact_kind, m.contact_ident),
            ident_ct,
            name_ct,
        },
        target,
        message_id,
        dedupe_key,
        client_key,
        body_ct,
        subject_ct,
        size: m.body.len() as i64,
        received_at: m.received_at,
        thread_key: m
            .own_message_id
            .map(|id| cipher.blind_index(BlindKind::EmailMessageId, id)),
        encrypt_ns: started.elapsed().as_nanos() as u64,
    })
}

pub use crate::stats::Direction;

/// What to count once a write commits: the tenant's usage counters and the
/// live figures. Built when the write is queued.
pub struct Accounting {
    pub app: crate::http::AppState,
    pub tenant: std::sync::Arc<crate::tenants::TenantEntry>,
    pub channel: Channel,
    pub direction: Direction,
    pub bytes: i64,
    pub encrypt_ns: u64,
    /// When the request arrived: receive → commit is the ingest latency.
    pub received: std::time::Instant,
}

impl Accounting {
    pub fn committed(&self, m: &crate::store::StoredMessage) {
        if m.duplicate {
            return;
        }
        self.tenant
            .usage
            .add(1, self.bytes, i64::from(m.new_conversation));
        if self.app.traffic_trace {
            self.app
                .trace_rows
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.app.stats.record(
            &self.tenant.id,
            self.channel,
            self.direction,
            self.bytes.max(0) as u64,
            self.received.elapsed().as_micros() as u64,
            self.encrypt_ns,
            m.committed_at,
        );
    }
}

/// Opens a stored message body.
pub fn open_body(
    cipher: &TenantCipher,
    tenant: &str,
    message_id: &str,
    sealed: &[u8],
) -> Result<String, CryptoError> {
    cipher.open_string(
        Aad {
            tenant,
            table: "messages",
            row: message_id,
            column: "body",
        },
        sealed,
    )
}

/// Opens a stored email subject.
pub fn open_subject(
    cipher: &TenantCipher,
    tenant: &str,
    message_id: &str,
    sealed: &[u8],
) -> Result<String, CryptoError> {
    cipher.open_string(
        Aad {
            tenant,
            table: "messages",
            row: message_id,
            column: "subject",
        },
        sealed,
    )
}

/// Seals an agent reply into a store write.
pub fn seal_outbound(
    cipher: &TenantCipher,
    tenant: &str,
    conversation_id: &str,
    body: &str,
    received_at: Millis,
) -> Result<crate::store::OutboundMessage, CryptoError> {
    let started = std::time::Instant::now();
    let message_id = new_id();
    let body_ct = cipher.seal(
        Aad {
            tenant,
            table: "messages",
            row: &message_id,
            column: "body",
        },
        body.as_bytes(),
    )?;
    Ok(crate::store::OutboundMessage {
        encrypt_ns: started.elapsed().as_nanos() as u64,
        tenant_id: tenant.to_string(),
        conversation_id: conversation_id.to_string(),
        message_id,
        body_ct,
        size: body.len() as i64,
        received_at,
    })
}

//! The storage suite: the same tests against every backend behind `Store`.
//!
//! Each `both!` test runs twice, as `NAME::sqlite` (a fresh data dir) and
//! `NAME::postgres` (a fresh database: see `support/pg.rs`, which also says
//! when the PostgreSQL half is skipped).

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;

use c24_chatcore::clock::{Clock, Millis, OffsetClock};
use c24_chatcore::stats::Direction;
use c24_chatcore::store::postgres::{PgStore, migrate};
use c24_chatcore::store::sqlite::SqliteStore;
use c24_chatcore::store::{
    AuditRecord, Channel, ClusterEvent, ConsentRecord, ConversationTarget, DsrAction,
    DsrCompletion, DsrRecord, InboundMessage, NewContact, OutboundMessage, PurgeTable, Store,
    StoreError, StoredMessage, TenantRecord, TraceBatch, WriteOp, WriteOutcome,
};
use c24_chatcore::traffic;
use pg::TestDb;

// ---------------------------------------------------------------- backends

enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

/// One backend's fresh storage, reopenable (a restart) and shareable (nodes).
struct Backend {
    kind: Kind,
    clock: Arc<OffsetClock>,
}

impl Backend {
    fn sqlite() -> Self {
        Backend {
            kind: Kind::Sqlite(tempfile::tempdir().unwrap()),
            clock: Arc::default(),
        }
    }

    /// A fresh database on the test server, or `None` (printed) when there is none.
    async fn postgres(test: &str) -> Option<Self> {
        Some(Backend {
            kind: Kind::Postgres(TestDb::create(test).await?),
            clock: Arc::default(),
        })
    }

    fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    async fn try_open(&self) -> Result<Arc<dyn Store>, StoreError> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Ok(match &self.kind {
            Kind::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path(), true, clock)?),
            Kind::Postgres(db) => Arc::new(PgStore::open(&db.url, true, clock).await?),
        })
    }

    /// Opened with the traffic trace on or off (`--no-traffic-trace`).
    async fn open_traced(&self, traffic_trace: bool) -> Arc<dyn Store> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        match &self.kind {
            Kind::Sqlite(dir) => {
                Arc::new(SqliteStore::open_with(dir.path(), true, clock, traffic_trace).unwrap())
            }
            Kind::Postgres(db) => Arc::new(
                PgStore::open_with(&db.url, true, clock, traffic_trace)
                    .await
                    .unwrap(),
            ),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        self.try_open().await.unwrap()
    }

    /// A direct connection to the test database (PostgreSQL only).
    async fn sql(&self) -> tokio_postgres::Client {
        let Kind::Postgres(db) = &self.kind else {
            panic!("not PostgreSQL");
        };
        db.sql().await
    }

    /// Holds the database's write lock from outside, so the writer stalls
    /// on its next batch and what is queued meanwhile commits as one batch.
    /// Submit one `UpdateTenant` of `tenant_id` right after: it is the op
    /// the writer stalls on.
    async fn hold_writes(&self, tenant_id: &str) -> Hold {
        match &self.kind {
            Kind::Sqlite(dir) => {
                let c = rusqlite::Connection::open(dir.path().join("c24.sqlite")).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                Hold::Sqlite(c)
            }
            Kind::Postgres { .. } => {
                let c = self.sql().await;
                c.batch_execute("BEGIN").await.unwrap();
                c.execute(
                    "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
                    &[&tenant_id],
                )
                .await
                .unwrap();
                Hold::Postgres(c)
            }
        }
    }

    /// Drops the test database (a failed test leaves it for inspection).
    async fn finish(self) {
        if let Kind::Postgres(db) = &self.kind {
            db.drop_db().await;
        }
    }
}

enum Hold {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Hold {
    async fn release(self) {
        match self {
            Hold::Sqlite(c) => c.execute_batch("COMMIT").unwrap(),
            Hold::Postgres(c) => c.batch_execute("COMMIT").await.unwrap(),
        }
    }
}

/// Queues a write that stalls on the held lock (see `Backend::hold_writes`).
async fn stalled_write(
    store: &Arc<dyn Store>,
    t: &TenantRecord,
) -> c24_chatcore::store::PendingWrite {
    store
        .submit(WriteOp::UpdateTenant(Box::new(
            c24_chatcore::store::TenantUpdate {
                id: t.id.clone(),
                status: t.status.clone(),
                dpa_signed_at: t.dpa_signed_at,
                terminated_at: None,
                purge_after: None,
            },
        )))
        .await
        .unwrap()
}

/// Runs `$name(backend)` on SQLite and on PostgreSQL.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let b = super::Backend::sqlite();
                super::$name(&b).await;
                b.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(b) = super::Backend::postgres(stringify!($name)).await else {
                    return;
                };
                super::$name(&b).await;
                b.finish().await;
            }
        }
    };
}

/// Runs `$name(backend)` on PostgreSQL only.
macro_rules! postgres_only {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(b) = super::Backend::postgres(stringify!($name)).await else {
                    return;
                };
                super::$name(&b).await;
                b.finish().await;
            }
        }
    };
}

// ---------------------------------------------------------------- rows

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn bytes(label: &str) -> Vec<u8> {
    // Stand-ins for ciphertext and blind indexes: the store treats them as opaque.
    format!("{label}:{}", uuid::Uuid::new_v4()).into_bytes()
}

fn tenant(now: Millis) -> TenantRecord {
    let t = id();
    TenantRecord {
        id: t.clone(),
        name: "Acme".into(),
        status: "active".into(),
        dpa_signed_at: Some(now),
        created_at: now,
        api_key_hash: bytes("api"),
        widget_key_hash: bytes("widget"),
        phone_number_id: format!("pn-{t}"),
        email_address: format!("{t}@in.example"),
        secrets: bytes("secrets"),
        wrapped_dek: Some(bytes("dek")),
        key_destroyed_at: None,
        terminated_at: None,
        purge_after: None,
    }
}

struct Visitor {
    bi: Vec<u8>,
}

fn visitor() -> Visitor {
    Visitor {
        bi: bytes("visitor-bi"),
    }
}

/// A web-chat message: the first of a conversation (`conversation: None`)
/// is deduplicated tenant-wide, later ones among the conversation's keys.
fn webchat(
    tenant_id: &str,
    who: &Visitor,
    conversation: Option<&str>,
    key: &[u8],
    body: &[u8],
    now: Millis,
) -> InboundMessage {
    let (target, dedupe_key, client_key, ident_ct) = match conversation {
        None => (
            ConversationTarget::New { id: id() },
            Some(key.to_vec()),
            None,
            bytes("visitor-ct"),
        ),
        Some(c) => (
            ConversationTarget::Existing { id: c.to_string() },
            None,
            Some(key.to_vec()),
            Vec::new(),
        ),
    };
    InboundMessage {
        tenant_id: tenant_id.to_string(),
        channel: Channel::Webchat,
        contact: NewContact {
            id: id(),
            kind: "visitor",
            ident_bi: who.bi.clone(),
            ident_ct,
            name_ct: None,
        },
        target,
        message_id: id(),
        dedupe_key,
        client_key,
        body_ct: body.to_vec(),
        subject_ct: None,
        size: body.len() as i64,
        received_at: now,
        thread_key: None,
        encrypt_ns: 0,
    }
}

async fn send(store: &Arc<dyn Store>, m: InboundMessage) -> StoredMessage {
    store
        .write(WriteOp::Inbound(Box::new(m)))
        .await
        .unwrap()
        .message()
        .unwrap()
}

async fn create_tenant(store: &Arc<dyn Store>, now: Millis) -> TenantRecord {
    let t = tenant(now);
    store
        .write(WriteOp::CreateTenant(Box::new(t.clone())))
        .await
        .unwrap();
    t
}

/// A completed erasure of the web-chat visitor `bi`, as the DSR handler
/// writes it (filed at `now`, completed at `at`).
fn visitor_erasure(tenant_id: &str, bi: &[u8], now: Millis, at: Millis) -> DsrCompletion {
    DsrCompletion {
        record: DsrRecord {
            id: id(),
            tenant_id: tenant_id.to_string(),
            kind: "erasure".into(),
            subject_kind: "visitor_id".into(),
            subject_bi: Some(bi.to_vec()),
            status: "completed".into(),
            received_at: now,
            due_at: now + 1000,
            doc: "{}".into(),
            purge_after: None,
            version: 0,
        },
        action: DsrAction::Erase {
            kind: "visitor",
            ident_bi: bi.to_vec(),
        },
        at,
    }
}

// ---------------------------------------------------------------- tests

both!(webchat_message_acked_and_read_back);
async fn webchat_message_acked_and_read_back(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(
        &store,
        webchat(&t.id, &v, None, b"k1", b"sealed-hello", now),
    )
    .await;
    assert_eq!(first.seq, 1);
    assert!(first.new_conversation && !first.duplicate);
    assert!(first.committed_at >= now);
    let second = send(
        &store,
        webchat(
            &t.id,
            &v,
            Some(&first.conversation_id),
            b"k2",
            b"sealed-again",
            now,
        ),
    )
    .await;
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!(second.seq, 2);
    assert!(!second.new_conversation && !second.duplicate);

    // Another visitor cannot write into this conversation (nothing is stored).
    let other = visitor();
    send(&store, webchat(&t.id, &other, None, b"o1", b"theirs", now)).await;
    let intruder = store
        .write(WriteOp::Inbound(Box::new(webchat(
            &t.id,
            &other,
            Some(&first.conversation_id),
            b"o2",
            b"intrusion",
            now,
        ))))
        .await;
    assert!(
        matches!(intruder, Err(StoreError::NotFound("conversation"))),
        "{intruder:?}"
    );

    let convs = store.conversations(&t.id, 10, None).await.unwrap();
    assert_eq!(convs.len(), 2);
    let convs: Vec<_> = convs
        .into_iter()
        .filter(|c| c.id == first.conversation_id)
        .collect();
    assert_eq!(convs[0].id, first.conversation_id);
    assert_eq!(convs[0].channel, "webchat");
    assert_eq!(convs[0].message_count, 2);
    assert_eq!(convs[0].contact_bi, v.bi);
    let msgs = store.messages(&first.conversation_id, 0, 10).await.unwrap();
    let bodies: Vec<&[u8]> = msgs.iter().map(|m| m.body_ct.as_slice()).collect();
    assert_eq!(
        bodies,
        [b"sealed-hello".as_slice(), b"sealed-again".as_slice()]
    );
    assert_eq!(msgs[0].id, first.message_id);
    assert_eq!(msgs[1].direction, "inbound");
    // Paging after a seq.
    let tail = store.messages(&first.conversation_id, 1, 10).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, 2);
    // An agent reply lands after them.
    let reply = store
        .write(WriteOp::Outbound(Box::new(OutboundMessage {
            tenant_id: t.id.clone(),
            conversation_id: first.conversation_id.clone(),
            message_id: id(),
            body_ct: b"sealed-reply".to_vec(),
            size: 5,
            received_at: now,
            encrypt_ns: 0,
        })))
        .await
        .unwrap()
        .message()
        .unwrap();
    assert_eq!(reply.seq, 3);
    let usage = store.usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].0, t.id);
    assert_eq!(usage[0].1, 4, "messages");
    assert_eq!(usage[0].2, (12 + 12 + 5 + 6) as i64, "bytes");
    assert_eq!(usage[0].3, 2, "conversations");
    assert!(store.tenant_has_data(&t.id).await.unwrap());
    store.close().await;
}

both!(idempotent_resend);
async fn idempotent_resend(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(&store, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    let conv = first.conversation_id.clone();
    let second = send(&store, webchat(&t.id, &v, Some(&conv), b"k2", b"two", now)).await;

    // Resends (new message ids, same keys) answer with the first acks.
    let again1 = send(&store, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    assert!(again1.duplicate);
    assert_eq!(
        (&again1.message_id, &again1.conversation_id, again1.seq),
        (&first.message_id, &conv, 1)
    );
    let again2 = send(&store, webchat(&t.id, &v, Some(&conv), b"k2", b"two", now)).await;
    assert!(again2.duplicate);
    assert_eq!((&again2.message_id, again2.seq), (&second.message_id, 2));

    // A message and its resend queued together (one batch): stored once.
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(&store, &t).await;
    let a = store
        .submit(WriteOp::Inbound(Box::new(webchat(
            &t.id,
            &v,
            Some(&conv),
            b"k3",
            b"three",
            now,
        ))))
        .await
        .unwrap();
    let a2 = store
        .submit(WriteOp::Inbound(Box::new(webchat(
            &t.id,
            &v,
            Some(&conv),
            b"k3",
            b"three",
            now,
        ))))
        .await
        .unwrap();
    hold.release().await;
    stalled.await.unwrap().unwrap();
    let a = a.await.unwrap().unwrap().message().unwrap();
    let a2 = a2.await.unwrap().unwrap().message().unwrap();
    assert!(!a.duplicate && a2.duplicate);
    assert_eq!((a2.message_id, a2.seq), (a.message_id, 3));

    let msgs = store.messages(&conv, 0, 100).await.unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        store
            .conversation(&conv)
            .await
            .unwrap()
            .unwrap()
            .message_count,
        3
    );
    store.close().await;
}

both!(failing_op_fails_alone);
async fn failing_op_fails_alone(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(&store, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    let conv = first.conversation_id.clone();
    // Queued while the writer stalls, so they commit in one batch: the
    // middle ops fail; the others commit, and nothing of the failed ones remains.
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(&store, &t).await;
    let ok1 = store
        .submit(WriteOp::Inbound(Box::new(webchat(
            &t.id,
            &v,
            Some(&conv),
            b"k2",
            b"two",
            now,
        ))))
        .await
        .unwrap();
    let bad = store
        .submit(WriteOp::Outbound(Box::new(OutboundMessage {
            tenant_id: t.id.clone(),
            conversation_id: "no-such-conversation".into(),
            message_id: id(),
            body_ct: b"lost".to_vec(),
            size: 4,
            received_at: now,
            encrypt_ns: 0,
        })))
        .await
        .unwrap();
    let dup_tenant = store
        .submit(WriteOp::CreateTenant(Box::new(t.clone())))
        .await
        .unwrap();
    let ok2 = store
        .submit(WriteOp::Inbound(Box::new(webchat(
            &t.id,
            &v,
            Some(&conv),
            b"k3",
            b"three",
            now,
        ))))
        .await
        .unwrap();
    hold.release().await;
    stalled.await.unwrap().unwrap();
    let ok1 = ok1.await.unwrap().unwrap().message().unwrap();
    assert!(matches!(
        bad.await.unwrap(),
        Err(StoreError::NotFound("conversation"))
    ));
    assert!(
        dup_tenant.await.unwrap().is_err(),
        "a second tenant with the same id"
    );
    let ok2 = ok2.await.unwrap().unwrap().message().unwrap();
    assert_eq!((ok1.seq, ok2.seq), (2, 3));
    assert_eq!(store.messages(&conv, 0, 100).await.unwrap().len(), 3);
    assert_eq!(store.load_tenants().await.unwrap().len(), 1);
    store.close().await;
}

both!(restart_keeps_data);
async fn restart_keeps_data(b: &Backend) {
    let now = b.clock.now_ms();
    let (t, conv) = {
        let store = b.open().await;
        let t = create_tenant(&store, now).await;
        let v = visitor();
        let m = send(&store, webchat(&t.id, &v, None, b"k1", b"kept", now)).await;
        store
            .write(WriteOp::Audit(Box::new(AuditRecord {
                id: 0,
                at: now,
                actor: "bootstrap-admin".into(),
                role: "admin".into(),
                action: "POST /admin/v1/tenants".into(),
                target: "/admin/v1/tenants".into(),
                status: 201,
                outcome: "ok".into(),
                purge_after: now + 1000,
            })))
            .await
            .unwrap();
        store.close().await;
        (t, m.conversation_id)
    };
    let store = b.open().await;
    let tenants = store.load_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].id, t.id);
    assert_eq!(tenants[0].wrapped_dek, t.wrapped_dek);
    assert_eq!(tenants[0].api_key_hash, t.api_key_hash);
    assert_eq!(tenants[0].secrets, t.secrets);
    let msgs = store.messages(&conv, 0, 10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body_ct, b"kept");
    let audit = store.audit(10, None).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].status, audit[0].outcome.as_str()), (201, "ok"));
    store.close().await;
}

both!(email_threading_and_whatsapp_session);
async fn email_threading_and_whatsapp_session(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let sender_bi = bytes("email-bi");
    let email = |msgid: &[u8], refs: Vec<Vec<u8>>| InboundMessage {
        tenant_id: t.id.clone(),
        channel: Channel::Email,
        contact: NewContact {
            id: id(),
            kind: "email",
            ident_bi: sender_bi.clone(),
            ident_ct: bytes("email-ct"),
            name_ct: Some(bytes("name-ct")),
        },
        target: ConversationTarget::EmailThread {
            candidates: refs,
            new_id: id(),
        },
        message_id: id(),
        dedupe_key: Some(msgid.to_vec()),
        client_key: None,
        body_ct: b"mail".to_vec(),
        subject_ct: Some(b"subject".to_vec()),
        size: 4,
        received_at: now,
        thread_key: Some(msgid.to_vec()),
        encrypt_ns: 0,
    };
    let m1 = send(&store, email(b"<a@x>", vec![])).await;
    assert!(m1.new_conversation);
    // A reply naming the first message joins its conversation.
    let m2 = send(
        &store,
        email(b"<b@x>", vec![b"<zzz@x>".to_vec(), b"<a@x>".to_vec()]),
    )
    .await;
    assert_eq!(
        (m2.conversation_id.as_str(), m2.seq),
        (m1.conversation_id.as_str(), 2)
    );
    assert!(!m2.new_conversation);
    // An unrelated message starts its own.
    let m3 = send(&store, email(b"<c@x>", vec![b"<nope@x>".to_vec()])).await;
    assert_ne!(m3.conversation_id, m1.conversation_id);
    let subj = store.messages(&m1.conversation_id, 0, 10).await.unwrap();
    assert_eq!(subj[0].subject_ct.as_deref(), Some(b"subject".as_slice()));

    // WhatsApp: within 24 h the same conversation, after it a new one.
    let phone_bi = bytes("phone-bi");
    let wa = |wamid: &[u8]| InboundMessage {
        tenant_id: t.id.clone(),
        channel: Channel::Whatsapp,
        contact: NewContact {
            id: id(),
            kind: "phone",
            ident_bi: phone_bi.clone(),
            ident_ct: bytes("phone-ct"),
            name_ct: None,
        },
        target: ConversationTarget::LatestForContact {
            new_id: id(),
            within_ms: 24 * 3600 * 1000,
        },
        message_id: id(),
        dedupe_key: Some(wamid.to_vec()),
        client_key: None,
        body_ct: b"wa".to_vec(),
        subject_ct: None,
        size: 2,
        received_at: now,
        thread_key: None,
        encrypt_ns: 0,
    };
    let w1 = send(&store, wa(b"wamid.1")).await;
    b.clock.advance(23 * 3600 * 1000);
    let w2 = send(&store, wa(b"wamid.2")).await;
    assert_eq!(w2.conversation_id, w1.conversation_id);
    b.clock.advance(25 * 3600 * 1000);
    let w3 = send(&store, wa(b"wamid.3")).await;
    assert_ne!(w3.conversation_id, w1.conversation_id);
    assert!(w3.new_conversation);
    // The contact was stored once; both of its conversations are listed.
    let contact = store
        .contact(&t.id, "phone", &phone_bi)
        .await
        .unwrap()
        .unwrap();
    let convs = store.contact_conversations(&contact.id).await.unwrap();
    let ids: Vec<&str> = convs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [w1.conversation_id.as_str(), w3.conversation_id.as_str()]
    );
    store.close().await;
}

both!(erasure_and_key_destruction);
async fn erasure_and_key_destruction(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(&store, webchat(&t.id, &v, None, b"k1", b"abcd", now)).await;
    send(
        &store,
        webchat(&t.id, &v, Some(&first.conversation_id), b"k2", b"ef", now),
    )
    .await;
    let other = visitor();
    send(&store, webchat(&t.id, &other, None, b"k9", b"kept", now)).await;
    let erasure = visitor_erasure(&t.id, &v.bi, now, now);
    let dsr = erasure.record.clone();
    let out = store
        .write(WriteOp::CompleteDsr(Box::new(erasure)))
        .await
        .unwrap();
    let WriteOutcome::Erased(e) = out else {
        panic!("expected Erased, got {out:?}");
    };
    assert_eq!(
        (e.contacts, e.conversations, e.messages, e.bytes),
        (1, 1, 2, 6)
    );
    assert!(
        store
            .contact(&t.id, "visitor", &v.bi)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .conversation(&first.conversation_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.conversations(&t.id, 10, None).await.unwrap().len(), 1);
    let stored = store.dsr_request(&dsr.id).await.unwrap().unwrap();
    assert_eq!(stored.status, "completed");
    assert_eq!(stored.subject_bi, Some(v.bi.clone()));

    store
        .write(WriteOp::DestroyKey {
            tenant_id: t.id.clone(),
            at: now + 5,
        })
        .await
        .unwrap();
    let tenants = store.load_tenants().await.unwrap();
    assert_eq!(tenants[0].wrapped_dek, None);
    assert_eq!(tenants[0].key_destroyed_at, Some(now + 5));
    assert_eq!(tenants[0].status, "purged");
    store.close().await;
}

both!(erasure_removes_trace_entries);
/// An erasure takes the person's entries out of the traffic trace, in its
/// transaction: rows holding only theirs go, mixed rows are rewritten,
/// everyone else's entries stay, and the count it reports is exact.
async fn erasure_removes_trace_entries(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let other = visitor();
    // Someone else, long before the person's conversation (outside its
    // time span: that row is not even read).
    let early = send(&store, webchat(&t.id, &other, None, b"o1", b"early", now)).await;
    b.clock.advance(86_400_000);
    let first = send(
        &store,
        webchat(&t.id, &v, None, b"k1", b"abcd", b.clock.now_ms()),
    )
    .await;
    b.clock.advance(60_000);
    // The person and the other one together, likely in one commit (one row
    // holding both), whichever way the writer batches them.
    let at = b.clock.now_ms();
    let (p2, o2) = tokio::join!(
        send(
            &store,
            webchat(&t.id, &v, Some(&first.conversation_id), b"k2", b"ef", at)
        ),
        send(
            &store,
            webchat(
                &t.id,
                &other,
                Some(&early.conversation_id),
                b"o2",
                b"mid",
                at
            )
        ),
    );
    assert_eq!(p2.conversation_id, first.conversation_id);
    assert_eq!(o2.conversation_id, early.conversation_id);
    b.clock.advance(60_000);
    send(
        &store,
        webchat(
            &t.id,
            &v,
            Some(&first.conversation_id),
            b"k3",
            b"ghi",
            b.clock.now_ms(),
        ),
    )
    .await;
    b.clock.advance(2 * 86_400_000);
    send(
        &store,
        webchat(
            &t.id,
            &other,
            Some(&early.conversation_id),
            b"o3",
            b"late",
            b.clock.now_ms(),
        ),
    )
    .await;
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 6);

    let out = store
        .write(WriteOp::CompleteDsr(Box::new(visitor_erasure(
            &t.id,
            &v.bi,
            now,
            b.clock.now_ms(),
        ))))
        .await
        .unwrap();
    let WriteOutcome::Erased(e) = out else {
        panic!("expected Erased, got {out:?}");
    };
    assert_eq!((e.conversations, e.messages, e.trace_entries), (1, 3, 3));
    assert_eq!(
        e.conversation_ids,
        std::slice::from_ref(&first.conversation_id)
    );

    let batches = all_trace_batches(&store, 10).await;
    let entries: Vec<traffic::Entry> = batches.iter().flat_map(decode).collect();
    assert!(
        entries
            .iter()
            .all(|x| x.conversation_id != first.conversation_id),
        "{entries:?}"
    );
    // The other conversation keeps all three, in order; no row is empty.
    let sizes: Vec<u64> = entries.iter().map(|x| x.size).collect();
    assert_eq!(sizes, [5, 3, 4], "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|x| x.conversation_id == early.conversation_id)
    );
    assert_eq!(batches.len(), 3, "rows left empty are deleted");
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 3);

    // Erasing the other one empties the trace.
    let again = store
        .write(WriteOp::CompleteDsr(Box::new(visitor_erasure(
            &t.id,
            &other.bi,
            now,
            b.clock.now_ms(),
        ))))
        .await
        .unwrap();
    let WriteOutcome::Erased(e) = again else {
        panic!("expected Erased, got {again:?}");
    };
    assert_eq!(e.trace_entries, 3);
    assert!(all_trace_batches(&store, 10).await.is_empty());
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 0);
    store.close().await;
}

both!(consents_and_audit_paging);
async fn consents_and_audit_paging(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let person = bytes("subject-bi");
    let docs = [
        r#"{"purposes":[{"purpose":"marketing","withdrawn_at":null},{"purpose":"analytics","withdrawn_at":"2026-01-01T00:00:00Z"}]}"#,
        r#"{"purposes":[{"purpose":"marketing","withdrawn_at":"2026-01-02T00:00:00Z"}]}"#,
    ];
    let mut ids = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let r = ConsentRecord {
            id: format!("cons-{i}"),
            tenant_id: t.id.clone(),
            subject_kind: "email".into(),
            subject_bi: if i == 0 {
                person.clone()
            } else {
                bytes("someone")
            },
            doc: doc.to_string(),
            purge_after: None,
            version: 0,
        };
        ids.push(r.id.clone());
        store.write(WriteOp::PutConsent(Box::new(r))).await.unwrap();
    }
    let counts = store.consent_counts(&t.id, None).await.unwrap();
    assert_eq!(
        (counts.total, counts.withdrawn, counts.withdrawals),
        (2, 1, 2)
    );
    assert_eq!(
        counts.by_purpose,
        vec![
            ("analytics".to_string(), 1, 1),
            ("marketing".to_string(), 2, 1)
        ]
    );
    let mine = store
        .consent_counts(&t.id, Some(person.clone()))
        .await
        .unwrap();
    assert_eq!((mine.total, mine.withdrawn), (1, 0));
    let page = store.consents(&t.id, None, 1, None).await.unwrap();
    assert_eq!(page[0].id, "cons-1");
    let next = store
        .consents(&t.id, None, 5, Some(page[0].id.clone()))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, "cons-0");
    // The stored document comes back byte for byte.
    assert_eq!(store.consent("cons-0").await.unwrap().unwrap().doc, docs[0]);

    for i in 0..3u16 {
        store
            .write(WriteOp::Audit(Box::new(AuditRecord {
                id: 0,
                at: now + i64::from(i),
                actor: "a".into(),
                role: "admin".into(),
                action: format!("GET /x/{i}"),
                target: "/x".into(),
                status: 200 + i,
                outcome: "ok".into(),
                purge_after: now + 1000,
            })))
            .await
            .unwrap();
    }
    let newest = store.audit(2, None).await.unwrap();
    assert_eq!(newest.len(), 2);
    assert_eq!(newest[0].action, "GET /x/2");
    assert!(newest[0].id > newest[1].id);
    let older = store.audit(10, Some(newest[1].id)).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].status, 200);
    store.close().await;
}

both!(purge_batch_runs_on_every_table);
/// Every table the retention engine purges takes a batch (PostgreSQL's
/// composite keys, `(tenant_id, msgid_bi)` and `(tenant_id, ident_bi)`,
/// once made the email-thread and restriction batches fail), and the
/// due rows of a terminated tenant are deleted.
async fn purge_batch_runs_on_every_table(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    send(&store, webchat(&t.id, &v, None, b"k1", b"1234", now)).await;
    store
        .write(WriteOp::StampTenantPurge {
            tenant_id: t.id.clone(),
            purge_after: now - 1,
            batch: 100,
        })
        .await
        .unwrap();
    let mut per_table = Vec::new();
    for table in PurgeTable::ALL {
        let WriteOutcome::Purged(p) = store
            .write(WriteOp::PurgeBatch {
                table,
                now,
                batch: 100,
            })
            .await
            .unwrap_or_else(|e| panic!("purging {}: {e}", table.name()))
        else {
            panic!("expected Purged from {}", table.name());
        };
        per_table.push((table.name(), p.rows));
    }
    let deleted = |name: &str| per_table.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    assert_eq!(deleted("messages"), Some(1), "{per_table:?}");
    assert_eq!(deleted("conversations"), Some(1), "{per_table:?}");
    assert!(!store.tenant_has_data(&t.id).await.unwrap());
}

both!(purge_from_two_stores_deletes_each_row_once);
async fn purge_from_two_stores_deletes_each_row_once(b: &Backend) {
    const CONVERSATIONS: usize = 40;
    const PER_CONVERSATION: usize = 15;
    let a = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;
    let mut pending = Vec::new();
    for c in 0..CONVERSATIONS {
        let v = visitor();
        let first = send(
            &a,
            webchat(&t.id, &v, None, format!("c{c}").as_bytes(), b"1234", now),
        )
        .await;
        for m in 1..PER_CONVERSATION {
            let key = format!("c{c}m{m}");
            pending.push(
                a.submit(WriteOp::Inbound(Box::new(webchat(
                    &t.id,
                    &v,
                    Some(&first.conversation_id),
                    key.as_bytes(),
                    b"1234",
                    now,
                ))))
                .await
                .unwrap(),
            );
        }
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let total = (CONVERSATIONS * PER_CONVERSATION) as u64;
    let stamped = a
        .write(WriteOp::StampTenantPurge {
            tenant_id: t.id.clone(),
            purge_after: now - 1,
            batch: 10_000,
        })
        .await
        .unwrap();
    assert!(matches!(stamped, WriteOutcome::Count(n) if n >= total));
    let due = a.due_counts(PurgeTable::Messages, now, true).await.unwrap();
    assert_eq!((due.records, due.overdue), (total as i64, total as i64));

    // A second node (store) on the same data; both purge at once.
    let second = b.open().await;
    let purge = |store: Arc<dyn Store>| async move {
        let (mut rows, mut messages, mut bytes) = (0u64, 0i64, 0i64);
        loop {
            let out = store
                .write(WriteOp::PurgeBatch {
                    table: PurgeTable::Messages,
                    now,
                    batch: 25,
                })
                .await
                .unwrap();
            let WriteOutcome::Purged(p) = out else {
                panic!("expected Purged");
            };
            if p.rows == 0 {
                break;
            }
            rows += p.rows;
            for (_, m, b, _) in p.per_tenant {
                messages += m;
                bytes += b;
            }
        }
        (rows, messages, bytes)
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(purge(a.clone())),
        tokio::spawn(purge(second.clone()))
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // A store that found every due row locked by the other stops early;
    // one more pass each picks up anything left.
    let (rc, rd) = (purge(a.clone()).await, purge(second.clone()).await);
    let rows = ra.0 + rb.0 + rc.0 + rd.0;
    let messages = ra.1 + rb.1 + rc.1 + rd.1;
    let bytes = ra.2 + rb.2 + rc.2 + rd.2;
    assert_eq!(
        rows, total,
        "each due message deleted exactly once (a: {ra:?}, b: {rb:?})"
    );
    assert_eq!(messages as u64, total, "each deletion counted once");
    assert_eq!(bytes, 4 * total as i64);
    let due = a.due_counts(PurgeTable::Messages, now, true).await.unwrap();
    assert_eq!((due.records, due.overdue), (0, 0));
    // Then the conversations, again from both.
    let convs = |store: Arc<dyn Store>| async move {
        let mut n = 0;
        loop {
            let WriteOutcome::Purged(p) = store
                .write(WriteOp::PurgeBatch {
                    table: PurgeTable::Conversations,
                    now,
                    batch: 7,
                })
                .await
                .unwrap()
            else {
                panic!("expected Purged");
            };
            if p.rows == 0 {
                return n;
            }
            n += p.per_tenant.iter().map(|x| x.3).sum::<i64>();
        }
    };
    let (ca, cb) = tokio::join!(convs(a.clone()), convs(second.clone()));
    let rest = convs(a.clone()).await + convs(second.clone()).await;
    assert_eq!(ca + cb + rest, CONVERSATIONS as i64);
    assert!(a.usage().await.unwrap().is_empty());
    second.close().await;
    a.close().await;
}

postgres_only!(newer_schema_refused);
async fn newer_schema_refused(b: &Backend) {
    assert!(b.is_postgres());
    let store = b.open().await;
    store.close().await;
    let sql = b.sql().await;
    let version = |rows: Vec<tokio_postgres::Row>| -> i64 { rows[0].get(0) };
    let recorded = version(
        sql.query("SELECT max(version) FROM schema_migrations", &[])
            .await
            .unwrap(),
    );
    assert_eq!(recorded, migrate::latest());
    // A newer binary migrated this database.
    let newer = migrate::latest() + 1;
    sql.execute(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')",
        &[&newer],
    )
    .await
    .unwrap();
    let err = match b.try_open().await {
        Ok(_) => panic!("opened a database with a newer schema"),
        Err(e) => e,
    };
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known } if found == newer && known == migrate::latest()),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("newer") && text.contains(&newer.to_string()),
        "{text}"
    );
    // Nothing was changed by the refused start.
    let n: i64 = sql
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, migrate::MIGRATIONS.len() as i64 + 1);
}

postgres_only!(two_nodes_migrate_at_once);
async fn two_nodes_migrate_at_once(b: &Backend) {
    // Both start on an empty database together: the advisory lock lets one
    // migrate; the other waits, then finds the schema current.
    let (x, y) = tokio::join!(b.try_open(), b.try_open());
    let (x, y) = (x.unwrap(), y.unwrap());
    let sql = b.sql().await;
    let rows = sql
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i64> = migrate::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, expected);
    x.close().await;
    y.close().await;
}

postgres_only!(encryption_mode_remembered);
async fn encryption_mode_remembered(b: &Backend) {
    let store = b.open().await;
    store.close().await;
    let Kind::Postgres(db) = &b.kind else {
        unreachable!()
    };
    let err = match PgStore::open(&db.url, false, b.clock.clone()).await {
        Ok(_) => panic!("opened an encrypted database with encryption off"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            StoreError::EncryptionMismatch {
                stored: "on",
                asked: "off"
            }
        ),
        "{err}"
    );
}

/// Ends every server connection of the test database but the caller's.
async fn terminate_backends(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

postgres_only!(survives_lost_connections);
async fn survives_lost_connections(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(&store, webchat(&t.id, &v, None, b"k1", b"before", now)).await;
    assert_eq!(
        store
            .messages(&first.conversation_id, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A database restart, as the nodes see it: every connection dropped.
    let sql = b.sql().await;
    assert!(terminate_backends(&sql).await >= 2);
    // The next write and read go through on fresh connections.
    let second = send(
        &store,
        webchat(
            &t.id,
            &v,
            Some(&first.conversation_id),
            b"k2",
            b"after",
            now,
        ),
    )
    .await;
    assert_eq!(second.seq, 2);
    let msgs = store.messages(&first.conversation_id, 0, 10).await.unwrap();
    assert_eq!(msgs.len(), 2);

    // Lost in the middle of a batch (the writer waits on a lock): the batch
    // is applied again on a fresh connection and commits.
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(&store, &t).await;
    let Hold::Postgres(holder) = &hold else {
        unreachable!()
    };
    until_lock_wait(holder).await;
    assert!(terminate_backends(holder).await >= 1);
    hold.release().await;
    stalled.await.unwrap().unwrap();
    assert!(store.ready());
    store.close().await;
}

/// The next cluster event, within a deadline.
async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<ClusterEvent>) -> ClusterEvent {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("no cluster event within 10s")
        .unwrap()
}

postgres_only!(cluster_events_reach_the_other_node);
async fn cluster_events_reach_the_other_node(b: &Backend) {
    let a = b.open().await;
    let other = b.open().await;
    let mut own = a.cluster_events().unwrap();
    let mut rx = other.cluster_events().unwrap();
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;
    assert_eq!(
        next_event(&mut rx).await,
        ClusterEvent::Tenant {
            tenant_id: t.id.clone()
        }
    );
    let v = visitor();
    let first = send(&a, webchat(&t.id, &v, None, b"k1", b"hi", now)).await;
    let reply = a
        .write(WriteOp::Outbound(Box::new(OutboundMessage {
            tenant_id: t.id.clone(),
            conversation_id: first.conversation_id.clone(),
            message_id: id(),
            body_ct: b"sealed".to_vec(),
            size: 6,
            received_at: now,
            encrypt_ns: 0,
        })))
        .await
        .unwrap()
        .message()
        .unwrap();
    // The visitor's message changes usage; the reply is announced (ids
    // only) and changes usage too.
    assert_eq!(
        next_event(&mut rx).await,
        ClusterEvent::Usage {
            deltas: vec![(t.id.clone(), 1, 2, 1)],
            trace: 1
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        ClusterEvent::Outbound {
            tenant_id: t.id.clone(),
            conversation_id: first.conversation_id.clone(),
            seq: reply.seq,
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        ClusterEvent::Usage {
            deltas: vec![(t.id.clone(), 1, 6, 0)],
            trace: 1
        }
    );
    // A node does not hear its own events.
    assert!(matches!(
        own.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));

    // After the connections drop, the listener comes back and says events
    // may have been missed; later ones arrive again.
    let sql = b.sql().await;
    terminate_backends(&sql).await;
    assert_eq!(next_event(&mut rx).await, ClusterEvent::Resync);
    a.write(WriteOp::DestroyKey {
        tenant_id: t.id.clone(),
        at: now,
    })
    .await
    .unwrap();
    assert_eq!(
        next_event(&mut rx).await,
        ClusterEvent::Tenant {
            tenant_id: t.id.clone()
        }
    );
    other.close().await;
    a.close().await;
}

both!(one_batch_keeps_queue_order);
async fn one_batch_keeps_queue_order(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let (v1, v2) = (visitor(), visitor());
    let c1 = send(&store, webchat(&t.id, &v1, None, b"a0", b"a0", now)).await;
    let c2 = send(&store, webchat(&t.id, &v2, None, b"b0", b"b0", now)).await;
    // Visitor messages and agent replies into two conversations, queued as
    // one batch (PostgreSQL pipelines them).
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(&store, &t).await;
    let mut pending = Vec::new();
    for n in 1..=40 {
        let (who, conv) = if n % 2 == 0 { (&v1, &c1) } else { (&v2, &c2) };
        let body = format!("{}-{n}", &conv.conversation_id[..8]);
        let op = if n % 5 == 0 {
            WriteOp::Outbound(Box::new(OutboundMessage {
                tenant_id: t.id.clone(),
                conversation_id: conv.conversation_id.clone(),
                message_id: id(),
                body_ct: body.clone().into_bytes(),
                size: body.len() as i64,
                received_at: now,
                encrypt_ns: 0,
            }))
        } else {
            WriteOp::Inbound(Box::new(webchat(
                &t.id,
                who,
                Some(&conv.conversation_id),
                body.as_bytes(),
                body.as_bytes(),
                now,
            )))
        };
        pending.push((
            conv.conversation_id.clone(),
            body,
            store.submit(op).await.unwrap(),
        ));
    }
    hold.release().await;
    stalled.await.unwrap().unwrap();
    let mut expected: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (conv, body, p) in pending {
        let m = p.await.unwrap().unwrap().message().unwrap();
        let list = expected.entry(conv).or_default();
        list.push(body);
        assert_eq!(m.seq, list.len() as i64 + 1, "seq follows the queue");
    }
    for (conv, bodies) in expected {
        let stored = store.messages(&conv, 1, 100).await.unwrap();
        let got: Vec<String> = stored
            .iter()
            .map(|m| String::from_utf8(m.body_ct.clone()).unwrap())
            .collect();
        assert_eq!(got, bodies);
    }
    store.close().await;
}

// ---------------------------------------------------------------- traffic trace

const DAY_MS: Millis = 86_400_000;

/// Queues `ops` while the writer stalls, so they commit as one batch (after
/// the stalled op's own), and returns their outcomes in queue order.
async fn one_batch(
    b: &Backend,
    store: &Arc<dyn Store>,
    t: &TenantRecord,
    ops: Vec<WriteOp>,
) -> Vec<Result<WriteOutcome, StoreError>> {
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(store, t).await;
    let mut pending = Vec::new();
    for op in ops {
        pending.push(store.submit(op).await.unwrap());
    }
    hold.release().await;
    stalled.await.unwrap().unwrap();
    let mut out = Vec::new();
    for p in pending {
        out.push(p.await.unwrap());
    }
    out
}

fn reply(t: &TenantRecord, conversation_id: &str, body: &[u8], now: Millis) -> WriteOp {
    WriteOp::Outbound(Box::new(OutboundMessage {
        tenant_id: t.id.clone(),
        conversation_id: conversation_id.to_string(),
        message_id: id(),
        body_ct: body.to_vec(),
        size: body.len() as i64,
        received_at: now,
        encrypt_ns: 0,
    }))
}

fn inbound(m: InboundMessage) -> WriteOp {
    WriteOp::Inbound(Box::new(m))
}

/// Every trace batch, read page by page with the cursor (`page` per read).
async fn all_trace_batches(store: &Arc<dyn Store>, page: u32) -> Vec<TraceBatch> {
    let mut out: Vec<TraceBatch> = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .traffic_trace(Millis::MIN, Millis::MAX, after, page)
            .await
            .unwrap();
        assert!(rows.len() <= page as usize, "a page holds at most `limit`");
        let Some(last) = rows.last() else {
            return out;
        };
        after = Some((last.at, last.id));
        out.extend(rows);
    }
}

fn decode(batch: &TraceBatch) -> Vec<traffic::Entry> {
    traffic::decode_entries(&batch.entries).expect("entries this build writes")
}

/// The trace entry a stored message should have.
fn entry(
    t: &TenantRecord,
    conversation_id: &str,
    channel: Channel,
    direction: Direction,
    size: usize,
) -> traffic::Entry {
    traffic::Entry {
        tenant_id: t.id.clone(),
        conversation_id: conversation_id.to_string(),
        channel,
        direction,
        size: size as u64,
    }
}

both!(traffic_trace_written_with_each_batch);
async fn traffic_trace_written_with_each_batch(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    assert!(
        all_trace_batches(&store, 10).await.is_empty(),
        "a batch without messages writes no trace row"
    );
    let (v1, v2) = (visitor(), visitor());
    let c1 = send(&store, webchat(&t.id, &v1, None, b"a0", b"hello", now)).await;
    let first = all_trace_batches(&store, 10).await;
    assert_eq!(first.len(), 1, "the first message's commit: {first:?}");
    assert!(first[0].at >= now && first[0].at <= b.clock.now_ms());
    assert_eq!(
        decode(&first[0]),
        [entry(
            &t,
            &c1.conversation_id,
            Channel::Webchat,
            Direction::Inbound,
            5
        )]
    );

    // One batch: a new conversation, a message and a resend into the first,
    // an agent reply, an email: one row for the batch, in queue order; the
    // resend stores nothing and is not traced.
    let mail = InboundMessage {
        tenant_id: t.id.clone(),
        channel: Channel::Email,
        contact: NewContact {
            id: id(),
            kind: "email",
            ident_bi: bytes("email-bi"),
            ident_ct: bytes("email-ct"),
            name_ct: None,
        },
        target: ConversationTarget::EmailThread {
            candidates: vec![],
            new_id: id(),
        },
        message_id: id(),
        dedupe_key: Some(b"<m@x>".to_vec()),
        client_key: None,
        body_ct: b"a mail body".to_vec(),
        subject_ct: Some(b"subject".to_vec()),
        size: 11,
        received_at: now,
        thread_key: Some(b"<m@x>".to_vec()),
        encrypt_ns: 0,
    };
    let out = one_batch(
        b,
        &store,
        &t,
        vec![
            inbound(webchat(&t.id, &v2, None, b"b0", b"hi there", now)),
            inbound(webchat(
                &t.id,
                &v1,
                Some(&c1.conversation_id),
                b"a1",
                b"again",
                now,
            )),
            inbound(webchat(
                &t.id,
                &v1,
                Some(&c1.conversation_id),
                b"a1",
                b"again",
                now,
            )),
            reply(&t, &c1.conversation_id, b"agent says", now),
            inbound(mail),
        ],
    )
    .await;
    let stored: Vec<StoredMessage> = out
        .into_iter()
        .map(|r| r.unwrap().message().unwrap())
        .collect();
    assert!(stored[2].duplicate && !stored[1].duplicate);
    let batches = all_trace_batches(&store, 10).await;
    let later: Vec<traffic::Entry> = batches[1..].iter().flat_map(decode).collect();
    assert_eq!(
        later,
        [
            entry(
                &t,
                &stored[0].conversation_id,
                Channel::Webchat,
                Direction::Inbound,
                8
            ),
            entry(
                &t,
                &c1.conversation_id,
                Channel::Webchat,
                Direction::Inbound,
                5
            ),
            entry(
                &t,
                &c1.conversation_id,
                Channel::Webchat,
                Direction::Outbound,
                10
            ),
            entry(
                &t,
                &stored[4].conversation_id,
                Channel::Email,
                Direction::Inbound,
                11
            ),
        ]
    );
    // One row per commit, not per message (the stalled op may, at most, have
    // taken the first queued message into its own batch).
    assert!(
        (1..=2).contains(&(batches.len() - 1)),
        "4 messages queued together: {} rows",
        batches.len() - 1
    );
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 5);
    // The trace holds what the messages table holds, message for message.
    let usage = store.usage().await.unwrap();
    assert_eq!(usage[0].1, 5);
    // And it survives a restart.
    store.close().await;
    let store = b.open().await;
    assert_eq!(all_trace_batches(&store, 10).await, batches);
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 5);
    store.close().await;
}

both!(traffic_trace_pages_with_the_cursor);
async fn traffic_trace_pages_with_the_cursor(b: &Backend) {
    const BATCHES: usize = 7;
    let store = b.open().await;
    let t = create_tenant(&store, b.clock.now_ms()).await;
    let v = visitor();
    let mut sent = Vec::new();
    let mut conv: Option<String> = None;
    for n in 0..BATCHES {
        // Each message commits alone (the next is sent after its ack); a
        // minute apart, so each batch has its own `at`.
        let now = b.clock.now_ms();
        let body = "x".repeat(n + 1);
        let m = send(
            &store,
            webchat(
                &t.id,
                &v,
                conv.as_deref(),
                format!("k{n}").as_bytes(),
                body.as_bytes(),
                now,
            ),
        )
        .await;
        conv.get_or_insert(m.conversation_id.clone());
        sent.push(m);
        b.clock.advance(60_000);
    }
    let conv = conv.unwrap();
    for page in [1, 3, 7, 100] {
        let batches = all_trace_batches(&store, page).await;
        assert_eq!(batches.len(), BATCHES, "page size {page}");
        assert!(
            batches
                .windows(2)
                .all(|w| (w[0].at, w[0].id) < (w[1].at, w[1].id)),
            "ordered by (at, id)"
        );
        for (n, batch) in batches.iter().enumerate() {
            assert_eq!(
                decode(batch),
                [entry(
                    &t,
                    &conv,
                    Channel::Webchat,
                    Direction::Inbound,
                    n + 1
                )],
                "batch {n}, page size {page}"
            );
        }
    }
    // A window: from is inclusive, to exclusive; the cursor resumes inside it.
    let all = all_trace_batches(&store, 100).await;
    let (from, to) = (all[2].at, all[5].at);
    let window = store.traffic_trace(from, to, None, 100).await.unwrap();
    assert_eq!(window, all[2..5].to_vec());
    let rest = store
        .traffic_trace(from, to, Some((all[2].at, all[2].id)), 1)
        .await
        .unwrap();
    assert_eq!(rest, all[3..4].to_vec());
    let past = store
        .traffic_trace(from, to, Some((all[4].at, all[4].id)), 10)
        .await
        .unwrap();
    assert!(past.is_empty(), "{past:?}");
    assert_eq!(store.traffic_trace_rows().await.unwrap(), BATCHES as i64);
    store.close().await;
}

both!(traffic_trace_due_and_purged_after_90_days);
async fn traffic_trace_due_and_purged_after_90_days(b: &Backend) {
    let store = b.open().await;
    let start = b.clock.now_ms();
    let t = create_tenant(&store, start).await;
    // 4 sequential commits of one message and one batch of 5: 9 messages
    // in (at most) 6 rows.
    let mut convs = Vec::new();
    for n in 0..4 {
        let m = send(
            &store,
            webchat(
                &t.id,
                &visitor(),
                None,
                format!("s{n}").as_bytes(),
                b"1234",
                start,
            ),
        )
        .await;
        convs.push(m.conversation_id);
    }
    let v = visitor();
    let c = send(&store, webchat(&t.id, &v, None, b"b0", b"1234", start)).await;
    let out = one_batch(
        b,
        &store,
        &t,
        (1..5)
            .map(|n| {
                inbound(webchat(
                    &t.id,
                    &v,
                    Some(&c.conversation_id),
                    format!("b{n}").as_bytes(),
                    b"1234",
                    start,
                ))
            })
            .collect(),
    )
    .await;
    assert!(out.iter().all(|r| r.is_ok()));
    const MESSAGES: i64 = 9;
    let batches = all_trace_batches(&store, 100).await;
    assert!(batches.len() < MESSAGES as usize, "{} rows", batches.len());
    assert_eq!(store.traffic_trace_rows().await.unwrap(), MESSAGES);
    let first_at = batches.iter().map(|x| x.at).min().unwrap();
    let last_at = batches.iter().map(|x| x.at).max().unwrap();
    let retention = 90 * DAY_MS;
    let due = |now: Millis| {
        let store = store.clone();
        async move {
            let d = store
                .due_counts(PurgeTable::TrafficTrace, now, true)
                .await
                .unwrap();
            // The total is the in-memory counter's, never a scan.
            assert_eq!((d.records, d.bytes), (0, 0));
            (d.overdue, d.due_24h, d.due_7d, d.oldest_overdue)
        }
    };
    // Counted in messages, not rows.
    assert_eq!(due(b.clock.now_ms()).await, (0, 0, 0, None));
    assert_eq!(
        due(last_at + retention - 3 * DAY_MS).await,
        (0, 0, MESSAGES, None)
    );
    assert_eq!(
        due(last_at + retention - 3_600_000).await,
        (0, MESSAGES, MESSAGES, None)
    );
    // Nothing is purged before its 90 days.
    let early = store
        .write(WriteOp::PurgeBatch {
            table: PurgeTable::TrafficTrace,
            now: first_at + retention - 1,
            batch: 100,
        })
        .await
        .unwrap();
    assert!(matches!(early, WriteOutcome::Purged(p) if p.rows == 0));

    // 90 days later (the injectable clock): all overdue; a new message's row is not.
    b.clock.advance(retention + 60_000);
    let now = b.clock.now_ms();
    assert_eq!(due(now).await, (MESSAGES, 0, 0, Some(first_at + retention)));
    let fresh = send(
        &store,
        webchat(&t.id, &v, Some(&c.conversation_id), b"late", b"1234", now),
    )
    .await;
    assert_eq!(store.traffic_trace_rows().await.unwrap(), MESSAGES + 1);
    // Two stores purge at once, one row per batch: each message counted once.
    let second = b.open().await;
    let purge = |store: Arc<dyn Store>| async move {
        let mut messages = 0u64;
        loop {
            let WriteOutcome::Purged(p) = store
                .write(WriteOp::PurgeBatch {
                    table: PurgeTable::TrafficTrace,
                    now,
                    batch: 1,
                })
                .await
                .unwrap()
            else {
                panic!("expected Purged");
            };
            assert!(
                p.per_tenant.is_empty(),
                "the trace is no tenant's stored data"
            );
            if p.rows == 0 {
                return messages;
            }
            messages += p.rows;
        }
    };
    let (pa, pb) = tokio::join!(
        tokio::spawn(purge(store.clone())),
        tokio::spawn(purge(second.clone()))
    );
    let rest = purge(store.clone()).await + purge(second.clone()).await;
    assert_eq!(pa.unwrap() + pb.unwrap() + rest, MESSAGES as u64);
    assert_eq!(due(now).await, (0, 0, 0, None));
    let left = all_trace_batches(&store, 100).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        decode(&left[0]),
        [entry(
            &t,
            &fresh.conversation_id,
            Channel::Webchat,
            Direction::Inbound,
            4
        )]
    );
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 1);
    // The messages themselves keep their own schedule.
    assert_eq!(store.usage().await.unwrap()[0].1, MESSAGES + 1);
    second.close().await;
    store.close().await;
}

both!(failing_op_leaves_no_trace_entry);
async fn failing_op_leaves_no_trace_entry(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let (v, other) = (visitor(), visitor());
    let c = send(&store, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    let theirs = send(&store, webchat(&t.id, &other, None, b"o1", b"theirs", now)).await;
    // One batch whose failing ops fail alone (the batch is replayed with a
    // savepoint per op): a reply into no conversation, a visitor writing
    // into another's conversation, a tenant created twice. Only the
    // messages that were stored are traced, each once.
    let out = one_batch(
        b,
        &store,
        &t,
        vec![
            inbound(webchat(
                &t.id,
                &v,
                Some(&c.conversation_id),
                b"k2",
                b"two",
                now,
            )),
            reply(&t, "no-such-conversation", b"lost", now),
            inbound(webchat(
                &t.id,
                &other,
                Some(&c.conversation_id),
                b"o2",
                b"intrusion",
                now,
            )),
            WriteOp::CreateTenant(Box::new(t.clone())),
            reply(&t, &c.conversation_id, b"answer", now),
            inbound(webchat(
                &t.id,
                &v,
                Some(&c.conversation_id),
                b"k3",
                b"three",
                now,
            )),
        ],
    )
    .await;
    let failed: Vec<bool> = out.iter().map(|r| r.is_err()).collect();
    assert_eq!(failed, [false, true, true, true, false, false]);
    let entries: Vec<traffic::Entry> = all_trace_batches(&store, 100)
        .await
        .iter()
        .flat_map(decode)
        .collect();
    let cid = &c.conversation_id;
    assert_eq!(
        entries,
        [
            entry(&t, cid, Channel::Webchat, Direction::Inbound, 3),
            entry(
                &t,
                &theirs.conversation_id,
                Channel::Webchat,
                Direction::Inbound,
                6
            ),
            entry(&t, cid, Channel::Webchat, Direction::Inbound, 3),
            entry(&t, cid, Channel::Webchat, Direction::Outbound, 6),
            entry(&t, cid, Channel::Webchat, Direction::Inbound, 5),
        ]
    );
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 5);
    assert_eq!(store.messages(cid, 0, 100).await.unwrap().len(), 4);
    store.close().await;
}

both!(traffic_trace_off_records_nothing);
async fn traffic_trace_off_records_nothing(b: &Backend) {
    let store = b.open_traced(false).await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let c = send(&store, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    store
        .write(reply(&t, &c.conversation_id, b"reply", now))
        .await
        .unwrap();
    assert!(all_trace_batches(&store, 10).await.is_empty());
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 0);
    assert_eq!(
        store.usage().await.unwrap()[0].1,
        2,
        "the messages are stored"
    );
    store.close().await;
    // Switched on again, the next message is traced.
    let store = b.open_traced(true).await;
    send(
        &store,
        webchat(&t.id, &v, Some(&c.conversation_id), b"k2", b"two", now),
    )
    .await;
    assert_eq!(store.traffic_trace_rows().await.unwrap(), 1);
    store.close().await;
}

both!(tenant_conversations_page_newest_first);
async fn tenant_conversations_page_newest_first(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let other = create_tenant(&store, now).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let m = send(
            &store,
            webchat(
                &t.id,
                &visitor(),
                None,
                format!("k{n}").as_bytes(),
                b"x",
                now,
            ),
        )
        .await;
        ids.push(m.conversation_id);
    }
    send(
        &store,
        webchat(&other.id, &visitor(), None, b"o", b"x", now),
    )
    .await;
    // The route's order: by id, descending; `before_id` is the cursor.
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.conversations(&t.id, 2, cursor.clone()).await.unwrap();
        assert!(page.len() <= 2);
        assert!(
            page.iter()
                .all(|c| c.tenant_id == t.id && c.message_count == 1)
        );
        let Some(last) = page.last() else { break };
        cursor = Some(last.id.clone());
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, ids);
    store.close().await;
}

/// Waits until some connection of the test database waits on a row lock.
async fn until_lock_wait(sql: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "nobody waited");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

// An erasure on one node while another node's batch is storing a message
// of the same person (here that batch's statements, held open from a raw
// connection with the locks the writer takes): into the person's existing
// conversation, and into a new conversation of theirs. The erasure waits
// for it and takes its rows too: nothing of the person is left behind.
postgres_only!(erasure_waits_for_another_nodes_batch_of_the_person);
async fn erasure_waits_for_another_nodes_batch_of_the_person(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    for new_conversation in [false, true] {
        let v = visitor();
        let first = send(&store, webchat(&t.id, &v, None, b"k1", b"abcd", now)).await;
        let contact = store
            .contact(&t.id, "visitor", &v.bi)
            .await
            .unwrap()
            .unwrap();
        let other = b.sql().await;
        other.batch_execute("BEGIN").await.unwrap();
        let into = if new_conversation {
            // As `upsert_contact` + `new_conversation` do.
            other
                .execute(
                    "SELECT id FROM contacts WHERE id = $1 FOR KEY SHARE",
                    &[&contact.id],
                )
                .await
                .unwrap();
            let conv = id();
            other
                .execute(
                    "INSERT INTO conversations (id, tenant_id, channel, contact_id, created_at, last_activity_at)
                     VALUES ($1, $2, 'webchat', $3, $4, $4)",
                    &[&conv, &t.id, &contact.id, &now],
                )
                .await
                .unwrap();
            conv
        } else {
            // As `lock_conversations` + the insert do.
            other
                .execute(
                    "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
                    &[&first.conversation_id],
                )
                .await
                .unwrap();
            first.conversation_id.clone()
        };
        let seq: i64 = if new_conversation { 1 } else { 2 };
        other
            .execute(
                "INSERT INTO messages (id, tenant_id, conversation_id, seq, direction, body_ct, size,
                                       received_at, committed_at)
                 VALUES ($1, $2, $3, $4, 'inbound', '\\x00', 1, $5, $5)",
                &[&id(), &t.id, &into, &seq, &now],
            )
            .await
            .unwrap();
        let erasure = {
            let store = store.clone();
            let (tenant, bi) = (t.id.clone(), v.bi.clone());
            tokio::spawn(async move {
                let erasure = visitor_erasure(&tenant, &bi, now, now);
                store
                    .write(WriteOp::CompleteDsr(Box::new(erasure)))
                    .await
                    .unwrap()
            })
        };
        until_lock_wait(&other).await;
        other.batch_execute("COMMIT").await.unwrap();
        let WriteOutcome::Erased(e) = erasure.await.unwrap() else {
            panic!("expected Erased");
        };
        assert_eq!(e.messages, 2, "new conversation: {new_conversation}");
        let sql = b.sql().await;
        let left: i64 = sql
            .query_one(
                "SELECT (SELECT count(*) FROM messages WHERE conversation_id = $1)
                      + (SELECT count(*) FROM conversations WHERE contact_id = $2)
                      + (SELECT count(*) FROM contacts WHERE id = $2)",
                &[&into, &contact.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            left, 0,
            "rows of the erased person left (new conversation: {new_conversation})"
        );
    }
    store.close().await;
}

both!(messages_after_the_stamp_go_with_their_conversation);
// A terminated tenant's rows are stamped for purge; a message that reaches
// one of its conversations after that (another node not yet told of the
// termination, or a reply) is stamped with the conversation, so the purge
// of the conversation takes it too instead of leaving it unstamped forever.
async fn messages_after_the_stamp_go_with_their_conversation(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let v = visitor();
    let first = send(&store, webchat(&t.id, &v, None, b"k1", b"1234", now)).await;
    loop {
        let stamped = store
            .write(WriteOp::StampTenantPurge {
                tenant_id: t.id.clone(),
                purge_after: now - 1,
                batch: 100,
            })
            .await
            .unwrap();
        if matches!(stamped, WriteOutcome::Count(0)) {
            break;
        }
    }
    send(
        &store,
        webchat(&t.id, &v, Some(&first.conversation_id), b"k2", b"late", now),
    )
    .await;
    store
        .write(reply(&t, &first.conversation_id, b"reply", now))
        .await
        .unwrap();
    for table in PurgeTable::ALL {
        store
            .write(WriteOp::PurgeBatch {
                table,
                now,
                batch: 100,
            })
            .await
            .unwrap();
    }
    let left = store
        .usage()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.0 == t.id)
        .map(|u| u.1)
        .unwrap_or(0);
    assert_eq!(left, 0, "messages of the purged conversation left behind");
    assert!(
        store
            .conversation(&first.conversation_id)
            .await
            .unwrap()
            .is_none()
    );
}

/// A WhatsApp message from the sender `phone_bi`, in its session.
fn whatsapp(tenant_id: &str, phone_bi: &[u8], wamid: &str, now: Millis) -> InboundMessage {
    InboundMessage {
        tenant_id: tenant_id.to_string(),
        channel: Channel::Whatsapp,
        contact: NewContact {
            id: id(),
            kind: "phone",
            ident_bi: phone_bi.to_vec(),
            ident_ct: bytes("phone-ct"),
            name_ct: None,
        },
        target: ConversationTarget::LatestForContact {
            new_id: id(),
            within_ms: 24 * 3600 * 1000,
        },
        message_id: id(),
        dedupe_key: Some(wamid.as_bytes().to_vec()),
        client_key: None,
        body_ct: wamid.as_bytes().to_vec(),
        subject_ct: None,
        size: wamid.len() as i64,
        received_at: now,
        thread_key: None,
        encrypt_ns: 0,
    }
}

/// An email from `sender_bi` with Message-ID `msgid`, replying to `refs`.
fn email(
    tenant_id: &str,
    sender_bi: &[u8],
    msgid: &str,
    refs: &[&str],
    now: Millis,
) -> InboundMessage {
    InboundMessage {
        tenant_id: tenant_id.to_string(),
        channel: Channel::Email,
        contact: NewContact {
            id: id(),
            kind: "email",
            ident_bi: sender_bi.to_vec(),
            ident_ct: bytes("email-ct"),
            name_ct: None,
        },
        target: ConversationTarget::EmailThread {
            candidates: refs.iter().map(|r| r.as_bytes().to_vec()).collect(),
            new_id: id(),
        },
        message_id: id(),
        dedupe_key: Some(msgid.as_bytes().to_vec()),
        client_key: None,
        body_ct: msgid.as_bytes().to_vec(),
        subject_ct: Some(b"subject".to_vec()),
        size: msgid.len() as i64,
        received_at: now,
        thread_key: Some(msgid.as_bytes().to_vec()),
        encrypt_ns: 0,
    }
}

/// Writes `x` through store `a` and `y` through store `b` at the same instant.
async fn at_once(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    x: InboundMessage,
    y: InboundMessage,
) -> (StoredMessage, StoredMessage) {
    let (a, b) = (a.clone(), b.clone());
    let (x, y) = tokio::join!(
        tokio::spawn(async move { send(&a, x).await }),
        tokio::spawn(async move { send(&b, y).await })
    );
    (x.unwrap(), y.unwrap())
}

/// The bodies stored in a conversation, oldest first.
async fn bodies(store: &Arc<dyn Store>, conversation_id: &str) -> Vec<Vec<u8>> {
    let rows = store.messages(conversation_id, 0, 100).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>());
    rows.into_iter().map(|m| m.body_ct).collect()
}

both!(first_message_of_a_sender_on_two_stores_starts_one_conversation);
/// Two nodes (stores on one database) get a sender's first message of a
/// conversation at the same instant, round after round: a WhatsApp sender
/// known from an expired session, a new one, and one email (or WhatsApp
/// message) delivered to both. Each round makes one conversation holding
/// every message once, and both acks name it.
async fn first_message_of_a_sender_on_two_stores_starts_one_conversation(b: &Backend) {
    const ROUNDS: usize = 30;
    let a = b.open().await;
    let other = b.open().await;
    let t = create_tenant(&a, b.clock.now_ms()).await;
    // Senders known from an earlier session (and an earlier email thread).
    let mut known = Vec::new();
    for r in 0..ROUNDS {
        let (phone, mail) = (bytes("phone-bi"), bytes("email-bi"));
        let now = b.clock.now_ms();
        let old = send(&a, whatsapp(&t.id, &phone, &format!("old.{r}"), now)).await;
        send(&a, email(&t.id, &mail, &format!("<old{r}@x>"), &[], now)).await;
        known.push((phone, mail, old.conversation_id));
    }
    // Every session expires.
    b.clock.advance(25 * 3600 * 1000);
    let now = b.clock.now_ms();
    let mut conversations = std::collections::HashSet::new();
    for (r, (phone, mail, old)) in known.iter().enumerate() {
        // Known sender, two messages: a new session, one conversation.
        let (x, y) = at_once(
            &a,
            &other,
            whatsapp(&t.id, phone, &format!("wa.{r}.a"), now),
            whatsapp(&t.id, phone, &format!("wa.{r}.b"), now),
        )
        .await;
        assert_eq!(
            x.conversation_id, y.conversation_id,
            "round {r}: two sessions"
        );
        assert_ne!(
            &x.conversation_id, old,
            "round {r}: the expired session reused"
        );
        assert_eq!(
            (
                x.new_conversation as u8 + y.new_conversation as u8,
                x.duplicate || y.duplicate
            ),
            (1, false),
            "round {r}"
        );
        let mut want = vec![
            format!("wa.{r}.a").into_bytes(),
            format!("wa.{r}.b").into_bytes(),
        ];
        let mut got = bodies(&a, &x.conversation_id).await;
        got.sort();
        want.sort();
        assert_eq!(got, want, "round {r}: each message stored once");
        conversations.insert(x.conversation_id);

        // A new sender, two messages.
        let fresh = bytes("phone-bi");
        let (x, y) = at_once(
            &a,
            &other,
            whatsapp(&t.id, &fresh, &format!("new.{r}.a"), now),
            whatsapp(&t.id, &fresh, &format!("new.{r}.b"), now),
        )
        .await;
        assert_eq!(
            x.conversation_id, y.conversation_id,
            "round {r}: new sender"
        );
        assert_eq!(bodies(&other, &x.conversation_id).await.len(), 2);
        conversations.insert(x.conversation_id);

        // One email, the first of its thread, delivered to both nodes; and
        // one WhatsApp message delivered to both.
        let msgid = format!("<first{r}@x>");
        let (x, y) = at_once(
            &a,
            &other,
            email(&t.id, mail, &msgid, &[], now),
            email(&t.id, mail, &msgid, &[], now),
        )
        .await;
        assert_eq!(
            (&x.message_id, &x.conversation_id, x.seq),
            (&y.message_id, &y.conversation_id, y.seq),
            "round {r}: both acks name the stored email"
        );
        assert!(x.duplicate != y.duplicate, "round {r}: stored once");
        assert_eq!(bodies(&a, &x.conversation_id).await, [msgid.into_bytes()]);
        conversations.insert(x.conversation_id);
        let wamid = format!("twice.{r}");
        let (x, y) = at_once(
            &a,
            &other,
            whatsapp(&t.id, phone, &wamid, now),
            whatsapp(&t.id, phone, &wamid, now),
        )
        .await;
        assert_eq!((&x.message_id, x.seq), (&y.message_id, y.seq), "round {r}");
        assert!(x.duplicate != y.duplicate, "round {r}: stored once");
        assert!(conversations.contains(&x.conversation_id), "round {r}");
    }
    // The expired sessions and first threads, and one conversation per
    // round's session, new sender and email: no other.
    assert_eq!(conversations.len(), 3 * ROUNDS);
    let mut listed = 0;
    let mut cursor = None;
    loop {
        let page = other
            .conversations(&t.id, 100, cursor.clone())
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.id.clone());
        listed += page.len();
    }
    assert_eq!(listed, 5 * ROUNDS);
    other.close().await;
    a.close().await;
}

postgres_only!(keyring_rewrite_never_stalls_ingest);
// Destroying a key rewrites the keyring table (VACUUM FULL), which needs
// its exclusive lock. A long reader of the keyring (a backup, a replica's
// query) must not stall the lane: the rewrite is tried with a short lock
// timeout, ingest goes on, and the rewrite happens once the reader is gone.
async fn keyring_rewrite_never_stalls_ingest(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let gone = create_tenant(&store, now).await;
    let kept = create_tenant(&store, now).await;
    let sql = b.sql().await;
    let filenode = async |sql: &tokio_postgres::Client| -> u32 {
        sql.query_one(
            "SELECT pg_relation_filenode('keyring.tenant_keys')::oid",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    };
    let reader = b.sql().await;
    reader.batch_execute("BEGIN").await.unwrap();
    reader
        .query("SELECT * FROM keyring.tenant_keys", &[])
        .await
        .unwrap();
    let before = filenode(&sql).await;
    store
        .write(WriteOp::DestroyKey {
            tenant_id: gone.id.clone(),
            at: now,
        })
        .await
        .unwrap();
    // The lane goes on while the reader holds the table.
    let v = visitor();
    let stored = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        send_result(&store, webchat(&kept.id, &v, None, b"k1", b"go on", now)),
    )
    .await
    .expect("ingest stalled behind the keyring rewrite");
    assert!(stored.is_ok(), "{stored:?}");
    assert_eq!(filenode(&sql).await, before, "rewritten despite the reader");
    reader.batch_execute("COMMIT").await.unwrap();
    // Then the owed rewrite happens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while filenode(&sql).await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the keyring was never rewritten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    store.close().await;
}

async fn send_result(
    store: &Arc<dyn Store>,
    m: InboundMessage,
) -> Result<c24_chatcore::store::WriteOutcome, StoreError> {
    store.write(WriteOp::Inbound(Box::new(m))).await
}

postgres_only!(an_erasure_moves_the_other_nodes_trace_total);
// The traffic-trace entries an erasure removes leave the other nodes'
// trace totals too (the retention report's access logs), as purges do:
// the erasure's usage notification carries them.
async fn an_erasure_moves_the_other_nodes_trace_total(b: &Backend) {
    let a = b.open().await;
    let other = b.open().await;
    let mut rx = other.cluster_events().unwrap();
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;
    let v = visitor();
    let first = send(&a, webchat(&t.id, &v, None, b"k1", b"one", now)).await;
    for key in [b"k2", b"k3"] {
        send(
            &a,
            webchat(&t.id, &v, Some(&first.conversation_id), key, b"more", now),
        )
        .await;
    }
    let erasure = visitor_erasure(&t.id, &v.bi, now, now);
    let WriteOutcome::Erased(e) = a
        .write(WriteOp::CompleteDsr(Box::new(erasure)))
        .await
        .unwrap()
    else {
        panic!("expected Erased");
    };
    assert_eq!(e.trace_entries, 3);
    // The erasure's notification: the tenant's messages go down by 3, and
    // the trace total with them.
    loop {
        if let ClusterEvent::Usage { deltas, trace } = next_event(&mut rx).await
            && deltas.iter().any(|d| d.0 == t.id && d.1 < 0)
        {
            assert_eq!(trace, -3, "{deltas:?}");
            break;
        }
    }
    a.close().await;
    other.close().await;
}

// ------------------------------------------------ conditional writes (nodes)

/// Two writers on one backend: two stores ("nodes") on one PostgreSQL
/// database; SQLite has one writer, so both are the same store.
async fn two_writers(b: &Backend) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let first = b.open().await;
    let second = if b.is_postgres() {
        b.open().await
    } else {
        first.clone()
    };
    (first, second)
}

fn lifecycle(
    t: &TenantRecord,
    status: &str,
    terminated_at: Option<Millis>,
    purge_after: Option<Millis>,
) -> c24_chatcore::store::TenantUpdate {
    c24_chatcore::store::TenantUpdate {
        id: t.id.clone(),
        status: status.into(),
        dpa_signed_at: t.dpa_signed_at,
        terminated_at,
        purge_after,
    }
}

fn transition(
    from: c24_chatcore::store::TenantUpdate,
    to: c24_chatcore::store::TenantUpdate,
) -> WriteOp {
    WriteOp::TransitionTenant(Box::new(c24_chatcore::store::TenantTransition { from, to }))
}

both!(tenant_transitions_apply_only_from_the_state_read);
/// A lifecycle change applies only while the stored tenant is in the state
/// it was computed from; of two computed from one state (two nodes, each
/// from its own copy), exactly one applies, and the other changes nothing.
async fn tenant_transitions_apply_only_from_the_state_read(b: &Backend) {
    let (a, other) = two_writers(b).await;
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;
    let active = lifecycle(&t, "active", None, None);
    let suspended = lifecycle(&t, "suspended", None, None);
    a.write(transition(active.clone(), suspended.clone()))
        .await
        .unwrap();
    // From a state no longer stored (a node that has not seen the suspension).
    let stale = a
        .write(transition(
            active.clone(),
            lifecycle(&t, "active", None, None),
        ))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Stale("tenant"))),
        "{stale:?}"
    );
    // The DPA date is part of the state compared.
    let mut wrong_dpa = suspended.clone();
    wrong_dpa.dpa_signed_at = None;
    let stale = a.write(transition(wrong_dpa, active.clone())).await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    let mut missing = suspended.clone();
    missing.id = id();
    let mut missing_to = active.clone();
    missing_to.id = missing.id.clone();
    let gone = a.write(transition(missing, missing_to)).await;
    assert!(
        matches!(gone, Err(StoreError::NotFound("tenant"))),
        "{gone:?}"
    );

    // Terminate and resume, both from "suspended", at once, many times.
    for round in 0..10 {
        let t = create_tenant(&a, now).await;
        let active = lifecycle(&t, "active", None, None);
        let suspended = lifecycle(&t, "suspended", None, None);
        a.write(transition(active.clone(), suspended.clone()))
            .await
            .unwrap();
        let terminated = lifecycle(&t, "terminated", Some(now), Some(now + 1000));
        let (x, y) = if round % 2 == 0 {
            (&a, &other)
        } else {
            (&other, &a)
        };
        let terminate = x
            .submit(transition(suspended.clone(), terminated))
            .await
            .unwrap();
        let resume = y
            .submit(transition(suspended.clone(), active.clone()))
            .await
            .unwrap();
        let (terminate, resume) = (terminate.await.unwrap(), resume.await.unwrap());
        assert!(
            terminate.is_ok() != resume.is_ok(),
            "round {round}: exactly one wins: {terminate:?} / {resume:?}"
        );
        let lost = if terminate.is_ok() { resume } else { terminate };
        assert!(matches!(lost, Err(StoreError::Stale("tenant"))), "{lost:?}");
        let stored = a
            .load_tenants()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.id == t.id)
            .unwrap();
        match stored.status.as_str() {
            "terminated" => assert_eq!(
                (stored.terminated_at, stored.purge_after),
                (Some(now), Some(now + 1000))
            ),
            "active" => assert_eq!((stored.terminated_at, stored.purge_after), (None, None)),
            other => panic!("round {round}: status {other}"),
        }
    }
    if b.is_postgres() {
        other.close().await;
    }
    a.close().await;
}

fn dsr_record(tenant_id: &str, status: &str, doc: &str, version: i64) -> DsrRecord {
    DsrRecord {
        id: "dsr-versioned".into(),
        tenant_id: tenant_id.to_string(),
        kind: "restriction".into(),
        subject_kind: "visitor_id".into(),
        subject_bi: Some(b"subject".to_vec()),
        status: status.into(),
        received_at: 1,
        due_at: 2,
        doc: doc.into(),
        purge_after: None,
        version,
    }
}

both!(versioned_documents_refuse_a_stale_write);
/// Requests, consents and incidents are written only at the version they
/// were read at, and each write stores the next; a write from an older
/// read changes nothing (a completion runs no action), and of two writes
/// from one read, on two nodes at once, exactly one applies.
async fn versioned_documents_refuse_a_stale_write(b: &Backend) {
    let (a, other) = two_writers(b).await;
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;

    // A request: inserted at 0 (stored as 1), then updated from 1.
    a.write(WriteOp::PutDsr(Box::new(dsr_record(
        &t.id, "received", "v1", 0,
    ))))
    .await
    .unwrap();
    let dup = a
        .write(WriteOp::PutDsr(Box::new(dsr_record(
            &t.id, "received", "dup", 0,
        ))))
        .await;
    assert!(matches!(dup, Err(StoreError::Stale(_))), "{dup:?}");
    let read = a.dsr_request("dsr-versioned").await.unwrap().unwrap();
    assert_eq!((read.version, read.doc.as_str()), (1, "v1"));
    a.write(WriteOp::PutDsr(Box::new(dsr_record(
        &t.id, "extended", "v2", 1,
    ))))
    .await
    .unwrap();
    // Another writer still holding version 1 (B extending what A changed).
    let stale = other
        .write(WriteOp::PutDsr(Box::new(dsr_record(
            &t.id, "extended", "lost", 1,
        ))))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Stale("data-subject request"))),
        "{stale:?}"
    );
    // A completion from version 1 runs no action (no restriction appears).
    let stale = other
        .write(WriteOp::CompleteDsr(Box::new(DsrCompletion {
            record: dsr_record(&t.id, "completed", "lost", 1),
            action: DsrAction::Restrict {
                ident_bi: b"subject".to_vec(),
            },
            at: now,
        })))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    assert!(a.restrictions().await.unwrap().is_empty());
    let read = a.dsr_request("dsr-versioned").await.unwrap().unwrap();
    assert_eq!(
        (read.version, read.status.as_str(), read.doc.as_str()),
        (2, "extended", "v2")
    );
    // Two completions from version 2 at once: one restricts, one is refused.
    let first = a
        .submit(WriteOp::CompleteDsr(Box::new(DsrCompletion {
            record: dsr_record(&t.id, "completed", "done-a", 2),
            action: DsrAction::Restrict {
                ident_bi: b"subject".to_vec(),
            },
            at: now,
        })))
        .await
        .unwrap();
    let second = other
        .submit(WriteOp::CompleteDsr(Box::new(DsrCompletion {
            record: dsr_record(&t.id, "completed", "done-b", 2),
            action: DsrAction::Restrict {
                ident_bi: b"subject".to_vec(),
            },
            at: now,
        })))
        .await
        .unwrap();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first.is_ok() != second.is_ok(), "{first:?} / {second:?}");
    let read = a.dsr_request("dsr-versioned").await.unwrap().unwrap();
    assert_eq!(read.version, 3);
    assert_eq!(read.doc, if first.is_ok() { "done-a" } else { "done-b" });
    assert_eq!(a.restrictions().await.unwrap().len(), 1);
    let missing = a
        .write(WriteOp::PutDsr(Box::new(DsrRecord {
            id: id(),
            ..dsr_record(&t.id, "received", "x", 4)
        })))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    // A consent record: a stale withdrawal changes nothing; a purge date
    // set by the store (the contract's end) survives a write without one.
    let consent = |doc: &str, purge_after: Option<Millis>, version: i64| ConsentRecord {
        id: "consent-versioned".into(),
        tenant_id: t.id.clone(),
        subject_kind: "email".into(),
        subject_bi: b"person".to_vec(),
        doc: doc.into(),
        purge_after,
        version,
    };
    a.write(WriteOp::PutConsent(Box::new(consent("c1", None, 0))))
        .await
        .unwrap();
    a.write(WriteOp::EndTenantConsents {
        tenant_id: t.id.clone(),
        purge_after: now + 9,
    })
    .await
    .unwrap();
    // Concurrent withdrawals from version 1: exactly one applies.
    let x = a
        .submit(WriteOp::PutConsent(Box::new(consent(
            "withdrew-a",
            None,
            1,
        ))))
        .await
        .unwrap();
    let y = other
        .submit(WriteOp::PutConsent(Box::new(consent(
            "withdrew-b",
            None,
            1,
        ))))
        .await
        .unwrap();
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    assert!(x.is_ok() != y.is_ok(), "{x:?} / {y:?}");
    let lost = if x.is_ok() { y } else { x };
    assert!(
        matches!(lost, Err(StoreError::Stale("consent record"))),
        "{lost:?}"
    );
    let read = a.consent("consent-versioned").await.unwrap().unwrap();
    assert_eq!(read.version, 2);
    assert_eq!(read.purge_after, Some(now + 9));

    // A breach record.
    let incident = |doc: &str, version: i64| c24_chatcore::store::IncidentRecord {
        id: "incident-versioned".into(),
        aware_at: now,
        doc: doc.into(),
        purge_after: now + 10,
        version,
    };
    a.write(WriteOp::PutIncident(Box::new(incident("i1", 0))))
        .await
        .unwrap();
    a.write(WriteOp::PutIncident(Box::new(incident("i2", 1))))
        .await
        .unwrap();
    let stale = other
        .write(WriteOp::PutIncident(Box::new(incident("lost", 1))))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Stale("incident"))),
        "{stale:?}"
    );
    let read = a.incident("incident-versioned").await.unwrap().unwrap();
    assert_eq!((read.version, read.doc.as_str()), (2, "i2"));
    if b.is_postgres() {
        other.close().await;
    }
    a.close().await;
}

fn rectify_to(tenant_id: &str, contact_id: &str, ident_bi: &[u8], new_bi: &[u8]) -> WriteOp {
    WriteOp::CompleteDsr(Box::new(DsrCompletion {
        record: DsrRecord {
            id: id(),
            tenant_id: tenant_id.to_string(),
            kind: "rectification".into(),
            subject_kind: "visitor_id".into(),
            subject_bi: Some(ident_bi.to_vec()),
            status: "completed".into(),
            received_at: 1,
            due_at: 2,
            doc: "{}".into(),
            purge_after: None,
            version: 0,
        },
        action: DsrAction::Rectify {
            contact_id: contact_id.to_string(),
            ident_bi: ident_bi.to_vec(),
            name_ct: None,
            ident: Some((bytes("new-ct"), new_bi.to_vec())),
        },
        at: 3,
    }))
}

both!(rectifications_to_one_identifier_conflict);
/// Two rectifications giving two contacts one identifier, on two nodes at
/// once: one applies, the other is `Conflict` (whether the check saw the
/// first or the unique index did), never a storage error; an identifier
/// of a contact of another kind does not count.
async fn rectifications_to_one_identifier_conflict(b: &Backend) {
    let (a, other) = two_writers(b).await;
    let now = b.clock.now_ms();
    let t = create_tenant(&a, now).await;
    for round in 0..10 {
        let (p, q) = (visitor(), visitor());
        send(&a, webchat(&t.id, &p, None, &bytes("k"), b"p", now)).await;
        send(&a, webchat(&t.id, &q, None, &bytes("k"), b"q", now)).await;
        let cp = a.contact(&t.id, "visitor", &p.bi).await.unwrap().unwrap();
        let cq = a.contact(&t.id, "visitor", &q.bi).await.unwrap().unwrap();
        let target = bytes("same-new-identifier");
        let x = a
            .submit(rectify_to(&t.id, &cp.id, &p.bi, &target))
            .await
            .unwrap();
        let y = other
            .submit(rectify_to(&t.id, &cq.id, &q.bi, &target))
            .await
            .unwrap();
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} / {y:?}");
        let lost = if x.is_ok() { y } else { x };
        assert!(
            matches!(&lost, Err(StoreError::Conflict(_))),
            "round {round}: {lost:?}"
        );
        let holders = [
            a.contact(&t.id, "visitor", &target).await.unwrap(),
            a.contact(&t.id, "visitor", &p.bi).await.unwrap(),
            a.contact(&t.id, "visitor", &q.bi).await.unwrap(),
        ];
        assert_eq!(holders.iter().filter(|h| h.is_some()).count(), 2);
    }

    // A phone contact already holds the blind index: a visitor may too
    // (unique per kind, as the index is).
    let phone_bi = bytes("phone-bi");
    let mut m = webchat(&t.id, &visitor(), None, &bytes("k"), b"w", now);
    m.channel = Channel::Whatsapp;
    m.contact.kind = "phone";
    m.contact.ident_bi = phone_bi.clone();
    m.target = ConversationTarget::New { id: id() };
    send(&a, m).await;
    let v = visitor();
    send(&a, webchat(&t.id, &v, None, &bytes("k"), b"v", now)).await;
    let cv = a.contact(&t.id, "visitor", &v.bi).await.unwrap().unwrap();
    a.write(rectify_to(&t.id, &cv.id, &v.bi, &phone_bi))
        .await
        .unwrap();
    assert!(
        a.contact(&t.id, "visitor", &phone_bi)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        a.contact(&t.id, "phone", &phone_bi)
            .await
            .unwrap()
            .is_some()
    );
    if b.is_postgres() {
        other.close().await;
    }
    a.close().await;
}

postgres_only!(a_rectification_meeting_the_unique_index_is_a_conflict);
/// The race the check alone cannot see: another node's rectification to
/// the same identifier is not committed yet when this one checks, so this
/// one's update meets the unique index once that commits. It is a
/// `Conflict` (409), not a storage error, and changes nothing (the
/// violation is mapped, and the writer's savepoint replay of the batch
/// finds the identifier taken by the check as well).
async fn a_rectification_meeting_the_unique_index_is_a_conflict(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let (p, q) = (visitor(), visitor());
    send(&store, webchat(&t.id, &p, None, &bytes("k"), b"p", now)).await;
    send(&store, webchat(&t.id, &q, None, &bytes("k"), b"q", now)).await;
    let cp = store
        .contact(&t.id, "visitor", &p.bi)
        .await
        .unwrap()
        .unwrap();
    let cq = store
        .contact(&t.id, "visitor", &q.bi)
        .await
        .unwrap()
        .unwrap();
    let target = bytes("same-new-identifier");
    // "Node A": its rectification of p, not committed yet.
    let node_a = b.sql().await;
    node_a.batch_execute("BEGIN").await.unwrap();
    node_a
        .execute(
            "UPDATE contacts SET ident_bi = $2 WHERE id = $1",
            &[&cp.id, &target],
        )
        .await
        .unwrap();
    // This node's check passes (A's row is not visible); its update waits
    // on the unique index for A's transaction.
    let pending = store
        .submit(rectify_to(&t.id, &cq.id, &q.bi, &target))
        .await
        .unwrap();
    let watcher = b.sql().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'UPDATE contacts SET ident_ct%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rectification never waited on the other transaction"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    node_a.batch_execute("COMMIT").await.unwrap();
    let lost = pending.await.unwrap();
    assert!(matches!(&lost, Err(StoreError::Conflict(_))), "{lost:?}");
    // Nothing of it stayed: q keeps its identifier, its request is not stored.
    assert!(
        store
            .contact(&t.id, "visitor", &q.bi)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .contact(&t.id, "visitor", &target)
            .await
            .unwrap()
            .map(|c| c.id),
        Some(cp.id)
    );
    assert!(
        store
            .dsr_requests(&t.id, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

/// A SQLite file written before requests, consents and incidents had a
/// version gains the column at open (existing rows at 1), and versioned
/// writes then work on those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_from_before_versions_gains_the_column() {
    let b = Backend::sqlite();
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    store
        .write(WriteOp::PutDsr(Box::new(dsr_record(
            &t.id, "received", "old", 0,
        ))))
        .await
        .unwrap();
    store.close().await;
    let Kind::Sqlite(dir) = &b.kind else {
        unreachable!()
    };
    {
        let c = rusqlite::Connection::open(dir.path().join("c24.sqlite")).unwrap();
        for table in ["dsr_requests", "consent_records", "security_incidents"] {
            c.execute_batch(&format!("ALTER TABLE {table} DROP COLUMN version"))
                .unwrap();
        }
    }
    let store = b.open().await;
    let read = store.dsr_request("dsr-versioned").await.unwrap().unwrap();
    assert_eq!((read.version, read.doc.as_str()), (1, "old"));
    store
        .write(WriteOp::PutDsr(Box::new(dsr_record(
            &t.id, "extended", "new", 1,
        ))))
        .await
        .unwrap();
    let stale = store
        .write(WriteOp::PutDsr(Box::new(dsr_record(
            &t.id, "extended", "lost", 1,
        ))))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    assert!(store.incidents(10, None).await.unwrap().is_empty());
    assert!(
        store
            .consents(&t.id, None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

postgres_only!(a_deadlock_while_taking_the_batchs_locks_is_retried);
// Another node's transaction holds conversation Y and then asks for X while
// this node's batch (a reply into X, a message into Y) holds X and waits for
// Y: PostgreSQL aborts this batch's transaction (it waited first). The
// batch starts again instead of failing every op in it.
async fn a_deadlock_while_taking_the_batchs_locks_is_retried(b: &Backend) {
    let store = b.open().await;
    let now = b.clock.now_ms();
    let t = create_tenant(&store, now).await;
    let (vx, vy) = (visitor(), visitor());
    // Ids are time-ordered: X < Y, so the batch locks X first.
    let x = send(&store, webchat(&t.id, &vx, None, b"x1", b"x", now)).await;
    let y = send(&store, webchat(&t.id, &vy, None, b"y1", b"y", now)).await;
    assert!(x.conversation_id < y.conversation_id);
    // Queue both ops behind a stalled batch, so they form one batch.
    let hold = b.hold_writes(&t.id).await;
    let stalled = stalled_write(&store, &t).await;
    let Hold::Postgres(holder) = &hold else {
        unreachable!()
    };
    until_lock_wait(holder).await;
    let reply = store
        .submit(reply(&t, &x.conversation_id, b"reply", now))
        .await
        .unwrap();
    let message = store
        .submit(inbound(webchat(
            &t.id,
            &vy,
            Some(&y.conversation_id),
            b"y2",
            b"more",
            now,
        )))
        .await
        .unwrap();
    let other = b.sql().await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .execute(
            "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
            &[&y.conversation_id],
        )
        .await
        .unwrap();
    hold.release().await;
    stalled.await.unwrap().unwrap();
    // The batch holds X and waits for Y; now the other asks for X.
    until_lock_wait(&other).await;
    let other = std::sync::Arc::new(other);
    let takes_x = {
        let other = other.clone();
        let xid = x.conversation_id.clone();
        tokio::spawn(async move {
            other
                .execute(
                    "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
                    &[&xid],
                )
                .await
        })
    };
    takes_x.await.unwrap().unwrap();
    other.batch_execute("COMMIT").await.unwrap();
    let r = reply.await.unwrap();
    let m = message.await.unwrap();
    assert!(r.is_ok(), "the reply failed: {r:?}");
    assert!(m.is_ok(), "the message failed: {m:?}");
    store.close().await;
}

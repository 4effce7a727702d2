-- c24 chat core, PostgreSQL schema version 1: the SQLite schema v1
-- (schema.sql, keyring.sql) with the same columns and meanings.
-- Every personal field is sealed bytea (AES-256-GCM, sealed by the chat
-- core before it reaches the database); lookups go through *_bi blind
-- indexes (HMAC), never plaintext. Times are ms since the epoch (bigint);
-- `purge_after` NULL = not scheduled. Ids compare bytewise (COLLATE "C"),
-- as in SQLite, so cursors page the same on both backends.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE tenants (
    id               text COLLATE "C" PRIMARY KEY,
    name             text NOT NULL,
    status           text NOT NULL,
    dpa_signed_at    bigint,
    created_at       bigint NOT NULL,
    api_key_hash     bytea NOT NULL UNIQUE,
    widget_key_hash  bytea NOT NULL UNIQUE,
    phone_number_id  text NOT NULL UNIQUE,
    email_address    text NOT NULL UNIQUE,
    secrets          bytea NOT NULL,
    terminated_at    bigint,
    purge_after      bigint
);

-- The keyring: each tenant's data key (DEK), wrapped by the KEK, in its own
-- schema so a logical backup of the data can leave it out
-- (`pg_dump --exclude-schema=keyring`), as SQLite keeps it in its own file.
CREATE SCHEMA keyring;
CREATE TABLE keyring.tenant_keys (
    tenant_id     text COLLATE "C" PRIMARY KEY,
    wrapped_dek   bytea,
    destroyed_at  bigint
);

CREATE TABLE contacts (
    id          text COLLATE "C" PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    ident_bi    bytea NOT NULL,
    ident_ct    bytea NOT NULL,
    name_ct     bytea,
    created_at  bigint NOT NULL,
    purge_after bigint,
    UNIQUE (tenant_id, kind, ident_bi)
);

CREATE TABLE conversations (
    id                text COLLATE "C" PRIMARY KEY,
    tenant_id         text COLLATE "C" NOT NULL,
    channel           text NOT NULL,
    contact_id        text COLLATE "C" NOT NULL,
    created_at        bigint NOT NULL,
    last_activity_at  bigint NOT NULL,
    message_count     bigint NOT NULL DEFAULT 0,
    purge_after       bigint
) WITH (fillfactor = 50);
-- Every message bumps its conversation's count and activity: no index
-- covers those columns, and pages keep room, so the update stays HOT (no
-- new index entries, no bloat of the indexes per message).
CREATE INDEX conversations_tenant ON conversations (tenant_id, id);
CREATE INDEX conversations_contact ON conversations (contact_id, channel);

CREATE TABLE messages (
    id               text COLLATE "C" PRIMARY KEY,
    tenant_id        text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    direction        text NOT NULL,
    dedupe_key       bytea,
    client_key       bytea,
    body_ct          bytea NOT NULL,
    subject_ct       bytea,
    size             bigint NOT NULL,
    received_at      bigint NOT NULL,
    committed_at     bigint NOT NULL,
    purge_after      bigint,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_dedupe ON messages (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;
-- Web-chat resends are recognised per conversation through this index (any
-- node may get the resend, so there is no per-node cache as on SQLite).
CREATE INDEX messages_client_key ON messages (conversation_id, client_key) WHERE client_key IS NOT NULL;

CREATE TABLE email_threads (
    tenant_id        text COLLATE "C" NOT NULL,
    msgid_bi         bytea NOT NULL,
    conversation_id  text COLLATE "C" NOT NULL,
    purge_after      bigint,
    PRIMARY KEY (tenant_id, msgid_bi)
);
CREATE INDEX email_threads_conversation ON email_threads (conversation_id);

CREATE INDEX contacts_purge ON contacts (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX conversations_purge ON conversations (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX messages_purge ON messages (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX email_threads_purge ON email_threads (purge_after) WHERE purge_after IS NOT NULL;

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           bigint NOT NULL,
    actor        text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    status       integer NOT NULL,
    outcome      text NOT NULL,
    purge_after  bigint NOT NULL
);
CREATE INDEX audit_log_purge ON audit_log (purge_after);

-- The sub-processor registry: one JSON document per entry (no personal data).
CREATE TABLE subprocessors (
    id   text COLLATE "C" PRIMARY KEY,
    doc  text NOT NULL
);

-- Data-subject requests: the person only as the blind index of one identifier.
CREATE TABLE dsr_requests (
    id            text COLLATE "C" PRIMARY KEY,
    tenant_id     text COLLATE "C" NOT NULL,
    kind          text NOT NULL,
    subject_kind  text NOT NULL,
    subject_bi    bytea,
    status        text NOT NULL,
    received_at   bigint NOT NULL,
    due_at        bigint NOT NULL,
    doc           text NOT NULL,
    purge_after   bigint
);
CREATE INDEX dsr_requests_tenant ON dsr_requests (tenant_id, id);
CREATE INDEX dsr_requests_open ON dsr_requests (status) WHERE status <> 'completed';
CREATE INDEX dsr_requests_purge ON dsr_requests (purge_after) WHERE purge_after IS NOT NULL;

-- An access or portability export, sealed under the tenant's DEK.
CREATE TABLE dsr_exports (
    dsr_id       text COLLATE "C" PRIMARY KEY,
    tenant_id    text COLLATE "C" NOT NULL,
    sealed       bytea NOT NULL,
    created_at   bigint NOT NULL,
    purge_after  bigint NOT NULL
);
CREATE INDEX dsr_exports_purge ON dsr_exports (purge_after);

-- Identifiers whose processing is restricted: ingress refuses them.
CREATE TABLE restrictions (
    tenant_id    text COLLATE "C" NOT NULL,
    ident_bi     bytea NOT NULL,
    dsr_id       text COLLATE "C" NOT NULL,
    created_at   bigint NOT NULL,
    purge_after  bigint,
    PRIMARY KEY (tenant_id, ident_bi)
);
CREATE INDEX restrictions_purge ON restrictions (purge_after) WHERE purge_after IS NOT NULL;

-- Personal-data breach records, one JSON document each.
CREATE TABLE security_incidents (
    id           text COLLATE "C" PRIMARY KEY,
    aware_at     bigint NOT NULL,
    doc          text NOT NULL,
    purge_after  bigint NOT NULL
);
CREATE INDEX security_incidents_purge ON security_incidents (purge_after);

-- Consent records: the person as a blind index, the receipt as JSON text
-- (kept byte for byte; queries cast it to jsonb).
CREATE TABLE consent_records (
    id            text COLLATE "C" PRIMARY KEY,
    tenant_id     text COLLATE "C" NOT NULL,
    subject_kind  text NOT NULL,
    subject_bi    bytea NOT NULL,
    doc           text NOT NULL,
    purge_after   bigint
);
CREATE INDEX consent_records_tenant ON consent_records (tenant_id, id);
CREATE INDEX consent_records_subject ON consent_records (tenant_id, subject_bi);
CREATE INDEX consent_records_purge ON consent_records (purge_after) WHERE purge_after IS NOT NULL;

-- c24 chat core, SQLite schema v1.
-- Every personal field is a sealed BLOB (AES-256-GCM, AAD = tenant/table/row/column);
-- lookups go through *_bi blind-index columns (HMAC), never plaintext.
-- Every row that holds personal data carries `purge_after` (ms since epoch, NULL = not scheduled).
-- Columns added after a table's first release are also in ADDED_COLUMNS
-- (sqlite.rs), which adds them to an existing file at open.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS tenants (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    dpa_signed_at    INTEGER,
    created_at       INTEGER NOT NULL,
    api_key_hash     BLOB NOT NULL UNIQUE,
    widget_key_hash  BLOB NOT NULL UNIQUE,
    phone_number_id  TEXT NOT NULL UNIQUE,
    email_address    TEXT NOT NULL UNIQUE,
    secrets          BLOB NOT NULL,
    terminated_at    INTEGER,
    purge_after      INTEGER
) STRICT;

-- Tenant data keys live in the keyring database (keyring.sql), never in backups.

CREATE TABLE IF NOT EXISTS contacts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    ident_bi    BLOB NOT NULL,
    ident_ct    BLOB NOT NULL,
    name_ct     BLOB,
    created_at  INTEGER NOT NULL,
    purge_after INTEGER,
    UNIQUE (tenant_id, kind, ident_bi)
) STRICT;

CREATE TABLE IF NOT EXISTS conversations (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    channel           TEXT NOT NULL,
    contact_id        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL,
    message_count     INTEGER NOT NULL DEFAULT 0,
    purge_after       INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS conversations_tenant ON conversations (tenant_id, id);
CREATE INDEX IF NOT EXISTS conversations_contact ON conversations (contact_id, channel, last_activity_at);

CREATE TABLE IF NOT EXISTS messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    direction        TEXT NOT NULL,
    dedupe_key       BLOB,
    client_key       BLOB,
    body_ct          BLOB NOT NULL,
    subject_ct       BLOB,
    size             INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    committed_at     INTEGER NOT NULL,
    purge_after      INTEGER,
    UNIQUE (conversation_id, seq)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedupe ON messages (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS email_threads (
    tenant_id        TEXT NOT NULL,
    msgid_bi         BLOB NOT NULL,
    conversation_id  TEXT NOT NULL,
    purge_after      INTEGER,
    PRIMARY KEY (tenant_id, msgid_bi)
) STRICT;

CREATE INDEX IF NOT EXISTS contacts_purge ON contacts (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversations_purge ON conversations (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_purge ON messages (purge_after) WHERE purge_after IS NOT NULL;
CREATE INDEX IF NOT EXISTS email_threads_purge ON email_threads (purge_after) WHERE purge_after IS NOT NULL;

CREATE TABLE IF NOT EXISTS audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    role         TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    status       INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    purge_after  INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_purge ON audit_log (purge_after);

-- The sub-processor registry: one JSON document per entry (no personal data).
CREATE TABLE IF NOT EXISTS subprocessors (
    id   TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
) STRICT;

-- Data-subject requests (privacy policy §9.2). The person is named only by
-- the blind index of one identifier (subject_kind: email/phone/visitor),
-- cleared once an erasure has run; `doc` holds the history and outcome
-- (JSON, no identifier). Open requests are found by status.
CREATE TABLE IF NOT EXISTS dsr_requests (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subject_kind  TEXT NOT NULL,
    subject_bi    BLOB,
    status        TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    doc           TEXT NOT NULL,
    purge_after   INTEGER,
    version       INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX IF NOT EXISTS dsr_requests_tenant ON dsr_requests (tenant_id, id);
CREATE INDEX IF NOT EXISTS dsr_requests_open ON dsr_requests (status) WHERE status <> 'completed';
CREATE INDEX IF NOT EXISTS dsr_requests_purge ON dsr_requests (purge_after) WHERE purge_after IS NOT NULL;

-- The export of an access or portability request: the JSON document sealed
-- under the tenant's DEK, deleted at its first download (or unfetched at
-- purge_after).
CREATE TABLE IF NOT EXISTS dsr_exports (
    dsr_id       TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    purge_after  INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS dsr_exports_purge ON dsr_exports (purge_after);

-- Identifiers whose processing is restricted (restriction or objection):
-- ingress refuses them. Loaded into memory at start.
CREATE TABLE IF NOT EXISTS restrictions (
    tenant_id    TEXT NOT NULL,
    ident_bi     BLOB NOT NULL,
    dsr_id       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    purge_after  INTEGER,
    PRIMARY KEY (tenant_id, ident_bi)
) STRICT;
CREATE INDEX IF NOT EXISTS restrictions_purge ON restrictions (purge_after) WHERE purge_after IS NOT NULL;

-- Personal-data breach records (§11), one JSON document each; kept 3 years
-- from awareness.
CREATE TABLE IF NOT EXISTS security_incidents (
    id           TEXT PRIMARY KEY,
    aware_at     INTEGER NOT NULL,
    doc          TEXT NOT NULL,
    purge_after  INTEGER NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX IF NOT EXISTS security_incidents_purge ON security_incidents (purge_after);

-- Consent records (§4.4): the person as a blind index, the receipt as JSON
-- (purposes with their timestamps). purge_after = consent end + 3 years,
-- NULL while the consent stands.
CREATE TABLE IF NOT EXISTS consent_records (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    subject_kind  TEXT NOT NULL,
    subject_bi    BLOB NOT NULL,
    doc           TEXT NOT NULL,
    purge_after   INTEGER,
    version       INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX IF NOT EXISTS consent_records_tenant ON consent_records (tenant_id, id);
CREATE INDEX IF NOT EXISTS consent_records_subject ON consent_records (tenant_id, subject_bi);
CREATE INDEX IF NOT EXISTS consent_records_purge ON consent_records (purge_after) WHERE purge_after IS NOT NULL;

-- Traffic trace (for `c24-loadgen replay`): per stored message its time,
-- tenant, channel, conversation, direction and body size; never content or
-- an identifier of the end user. One row per group commit (`at` is when it
-- was stored, `count` its messages), written in that commit's transaction;
-- `entries` packs the messages (crate::traffic::push_entry), so a message
-- costs ingest no row insert of its own. The conversation is referenced by
-- its stored id (a random UUID), which the export never shows: it shows an
-- HMAC of it under a key drawn for that export. Operational usage data, kept
-- as system logs are (privacy policy §6: 90 days): purge_after = at + 90 d.
CREATE TABLE IF NOT EXISTS traffic_trace (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    entries      BLOB NOT NULL,
    purge_after  INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS traffic_trace_at ON traffic_trace (at);
CREATE INDEX IF NOT EXISTS traffic_trace_purge ON traffic_trace (purge_after);

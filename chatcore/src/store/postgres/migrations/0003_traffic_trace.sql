-- c24 chat core, PostgreSQL schema version 3: the traffic trace, as the
-- SQLite schema keeps it (schema.sql, `traffic_trace`; crate::traffic).
-- Per stored message its time, tenant, channel, conversation, direction and
-- body size; never content or an identifier of the end user. One row per
-- group commit (`at` is when it was stored, `count` its messages), written
-- in that commit's transaction; `entries` packs the messages
-- (crate::traffic::push_entry). Operational usage data, kept as system logs
-- are (privacy policy §6: 90 days): purge_after = at + 90 d.
CREATE TABLE traffic_trace (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           bigint NOT NULL,
    count        bigint NOT NULL,
    entries      bytea NOT NULL,
    purge_after  bigint NOT NULL
);
-- The export pages by (at, id) (a row comparison this index serves).
CREATE INDEX traffic_trace_at ON traffic_trace (at, id);
CREATE INDEX traffic_trace_purge ON traffic_trace (purge_after);

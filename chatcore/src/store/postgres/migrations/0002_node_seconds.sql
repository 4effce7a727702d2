-- c24 chat core, PostgreSQL schema version 2: each node's live figures.
-- Every node upserts its own per-second message counts here (platform-wide,
-- per channel and direction; no tenant, no content); the admin API adds the
-- other nodes' rows to its own figures. Rows older than 25 h are deleted by
-- whichever node prunes first.
CREATE TABLE node_seconds (
    second    bigint NOT NULL,
    node      text NOT NULL,
    -- 0..5: the throughput series, channel then direction.
    series    smallint NOT NULL,
    messages  bigint NOT NULL,
    bytes     bigint NOT NULL,
    PRIMARY KEY (second, node, series)
);

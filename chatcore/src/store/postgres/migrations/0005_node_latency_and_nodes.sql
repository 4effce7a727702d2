-- c24 chat core, PostgreSQL schema version 5: the rest of each node's live
-- figures, for the others to combine with theirs.
-- node_latency: every node upserts, each second, its receive -> commit
-- latency histograms of the latency slots it is filling (per channel; 10 s,
-- 1 min and 1 h slots, the ones its own figures are read from), as
-- HdrHistogram V2 with DEFLATE. A reader merges the other nodes' slots of
-- its window into its own histograms. Slots no window can read any more
-- (older than 5 min, 1 h and 24 h by ring) are deleted by whichever node
-- prunes first.
CREATE TABLE node_latency (
    -- 0: 10-second slots, 1: 1-minute slots, 2: 1-hour slots.
    ring        smallint NOT NULL,
    -- Time divided by the ring's slot width.
    slot        bigint NOT NULL,
    node        text NOT NULL,
    -- 0..2: webchat, whatsapp, email.
    channel     smallint NOT NULL,
    histogram   bytea NOT NULL,
    -- Time spent sealing the same messages.
    encrypt_ns  bigint NOT NULL,
    PRIMARY KEY (ring, slot, node, channel)
);
-- nodes: every node upserts, each second, a heartbeat and what it counted
-- since it started; the overview's totals since start are the sum over the
-- nodes with a recent heartbeat. Nodes silent for 25 h are deleted.
CREATE TABLE nodes (
    node            text PRIMARY KEY,
    started_at_ms   bigint NOT NULL,
    heartbeat_ms    bigint NOT NULL,
    messages_total  bigint NOT NULL,
    bytes_total     bigint NOT NULL,
    errors_total    bigint NOT NULL,
    -- JSON: [{"channel","code","count"}], ingress errors per code.
    error_codes     text NOT NULL
);

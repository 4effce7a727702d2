-- c24 chat core, PostgreSQL schema version 4: each node's live figures per
-- tenant. Every node upserts its own per-second message counts of each
-- tenant with traffic (per channel and direction; no content); the admin
-- API adds the other nodes' rows to a tenant's throughput and to the tenant
-- list's rates and histories. Rows older than 25 h are deleted by whichever
-- node prunes first.
CREATE TABLE node_tenant_seconds (
    second    bigint NOT NULL,
    node      text NOT NULL,
    tenant_id text NOT NULL,
    -- 0..5: the throughput series, channel then direction.
    series    smallint NOT NULL,
    messages  bigint NOT NULL,
    bytes     bigint NOT NULL,
    PRIMARY KEY (second, node, tenant_id, series)
);
CREATE INDEX node_tenant_seconds_tenant ON node_tenant_seconds (tenant_id, second);

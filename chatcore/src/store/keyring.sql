-- The keyring: each tenant's data key (DEK), wrapped by the KEK.
-- A separate database file, attached as `keyring`, so a backup of the data
-- carries no key: destroying a key here (crypto-shredding) makes every copy
-- of that tenant's data, backups included, unreadable.
CREATE TABLE IF NOT EXISTS keyring.tenant_keys (
    tenant_id     TEXT PRIMARY KEY,
    wrapped_dek   BLOB,
    destroyed_at  INTEGER
) STRICT;

-- Optimistic concurrency for the documents several nodes read, change and
-- write back (data-subject requests, consent records, breach records): a
-- write applies only while the stored version is the one its writer read,
-- and stores the next (`WHERE id = $1 AND version = $2`). Rows stored
-- before this migration start at 1, as a fresh insert does.
ALTER TABLE dsr_requests ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
ALTER TABLE consent_records ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
ALTER TABLE security_incidents ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;

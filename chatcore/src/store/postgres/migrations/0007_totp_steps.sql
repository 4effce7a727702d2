-- c24 chat core, PostgreSQL schema version 9: the TOTP steps staff tokens
-- used, so a code accepted by one node is refused by every other (a code is
-- good once). The token is named by a digest of its hash, never the token;
-- steps older than a few minutes are deleted by the next check.
CREATE TABLE totp_steps (
    token_key text NOT NULL,
    step      bigint NOT NULL,
    PRIMARY KEY (token_key, step)
);
CREATE INDEX totp_steps_step ON totp_steps (step);

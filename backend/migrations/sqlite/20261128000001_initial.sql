-- Timestamps are Unix seconds (UTC).

-- One ACME account per CA directory, reused across restarts.
CREATE TABLE accounts (
    directory_url TEXT PRIMARY KEY NOT NULL,
    account_url   TEXT NOT NULL,
    -- instant-acme AccountCredentials as JSON (holds the account's private key).
    credentials   TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE domains (
    name         TEXT PRIMARY KEY NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'validating', 'issued', 'failed', 'disabled')),
    key_type     TEXT NOT NULL,
    -- When the worker should pick the domain up (new, retry or renewal); NULL: nothing due.
    due_at       INTEGER,
    -- Set while a worker holds the domain (state 'validating'); results of a worker whose
    -- lease no longer matches are discarded.
    lease        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    retry_at     INTEGER,
    renew_at     INTEGER,
    not_before   INTEGER,
    not_after    INTEGER,
    -- JSON: {"reason", "message", "problem"}.
    last_error   TEXT,
    chain_pem    TEXT,
    key_pem      TEXT,
    cert_version TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- The due-work query: what is due, earliest first.
CREATE INDEX domains_due ON domains (due_at, state) WHERE due_at IS NOT NULL;
CREATE INDEX domains_state ON domains (state);

-- HTTP-01 tokens between "stored" and "authorization done". Looked up by (host, token):
-- a token is only ever answered for the host it was issued for.
CREATE TABLE challenges (
    host              TEXT NOT NULL,
    token             TEXT NOT NULL,
    key_authorization TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (host, token)
);

-- The SQLite schema (migrations/sqlite) in PostgreSQL, for a fleet of replicas sharing one
-- database. Timestamps are Unix seconds (UTC), as in SQLite, so both stores share one model.

-- One ACME account per CA directory, reused across restarts and replicas.
CREATE TABLE accounts (
    directory_url TEXT PRIMARY KEY NOT NULL,
    account_url   TEXT NOT NULL,
    -- instant-acme AccountCredentials as JSON (holds the account's private key).
    credentials   TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE domains (
    name             TEXT PRIMARY KEY NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'validating', 'issued', 'failed', 'disabled')),
    key_type         TEXT NOT NULL,
    -- When a worker should pick the domain up (new, retry or renewal); NULL: nothing due.
    due_at           BIGINT,
    -- Set while a worker holds the domain (state 'validating'); results of a worker whose
    -- lease no longer matches are discarded.
    lease            TEXT,
    -- The holder renews its lease while the order runs; past this time the holder is
    -- presumed dead and any replica may take the domain over. NULL counts as expired.
    lease_expires_at BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    retry_at         BIGINT,
    renew_at         BIGINT,
    not_before       BIGINT,
    not_after        BIGINT,
    -- JSON: {"reason", "message", "problem"}.
    last_error       TEXT,
    chain_pem        TEXT,
    key_pem          TEXT,
    cert_version     TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- The due-work query: what is due, earliest first.
CREATE INDEX domains_due ON domains (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX domains_state ON domains (state);
-- The take-over query: in-flight domains by lease expiry.
CREATE INDEX domains_lease_expiry ON domains (lease_expires_at) WHERE state = 'validating';
-- Catching up after the change listener lost its connection: rows changed since then.
CREATE INDEX domains_updated ON domains (updated_at);

-- HTTP-01 tokens between "stored" and "authorization done". Looked up by (host, token):
-- a token is only ever answered for the host it was issued for, by any replica.
CREATE TABLE challenges (
    host              TEXT NOT NULL,
    token             TEXT NOT NULL,
    key_authorization TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (host, token)
);

-- Every replica serves every certificate over SDS: a change to what is served for a name is
-- announced on channel `acme_edge_certs` with payload '<kind> <name>' (kind 'updated' or
-- 'removed'), delivered when the transaction commits. A trigger, so that no writer (another
-- version of the backend, an operator's SQL) can change a certificate silently.
CREATE FUNCTION acme_edge_notify_certificate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_served BOOLEAN := TG_OP <> 'INSERT' AND OLD.state <> 'disabled' AND OLD.cert_version IS NOT NULL;
    is_served  BOOLEAN := TG_OP <> 'DELETE' AND NEW.state <> 'disabled' AND NEW.cert_version IS NOT NULL;
BEGIN
    IF is_served AND (NOT was_served OR NEW.cert_version IS DISTINCT FROM OLD.cert_version) THEN
        PERFORM pg_notify('acme_edge_certs', 'updated ' || NEW.name);
    ELSIF was_served AND NOT is_served THEN
        PERFORM pg_notify('acme_edge_certs', 'removed ' || OLD.name);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER domains_notify_certificate
    AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION acme_edge_notify_certificate();

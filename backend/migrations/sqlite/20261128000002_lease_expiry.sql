-- Leases expire: a worker renews its lease while an order runs; a lease not renewed by
-- `lease_expires_at` belongs to a stopped worker and may be taken over. NULL (rows claimed
-- before this column existed) counts as expired.
ALTER TABLE domains ADD COLUMN lease_expires_at INTEGER;

-- The take-over query: in-flight domains by lease expiry.
CREATE INDEX domains_lease_expiry ON domains (lease_expires_at) WHERE state = 'validating';

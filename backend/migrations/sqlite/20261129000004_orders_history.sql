-- The order log as a domain's history: which kind of order it was ('new', or 'renewal' when
-- a certificate was already stored), whether it was taken up again after the process
-- stopped mid-order, how it ended ('issued', 'failed': the CA declared it invalid,
-- 'abandoned': the CA no longer had it, or it could not be used again), and the last
-- failure while it ran (JSON, like domains.last_error). Orders logged before this have none.
ALTER TABLE orders ADD COLUMN kind TEXT;
ALTER TABLE orders ADD COLUMN resumed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE orders ADD COLUMN outcome TEXT;
ALTER TABLE orders ADD COLUMN problem TEXT;
-- A domain's history, newest first.
CREATE INDEX orders_name ON orders (name, created_at);

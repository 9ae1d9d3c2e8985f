-- When a worker was about to tell the CA that a challenge is ready (written before the
-- request): a resumed order does not tell it twice, since a CA that keeps a challenge
-- `pending` while it validates would run a second validation, which can fail after the first
-- one's certificate was issued.
ALTER TABLE challenges ADD COLUMN told_ready_at BIGINT;

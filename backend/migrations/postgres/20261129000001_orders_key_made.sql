-- Keys are deleted when their order ends; whether an order got as far as making one (and so
-- maybe a certificate) stays: it is how many certificates each domain was given.
ALTER TABLE orders ADD COLUMN key_made BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE orders SET key_made = TRUE WHERE key_pem IS NOT NULL;

-- The order log: every order placed with the CA, one row each, kept after it closes.
-- It paces new orders against the account-wide budget (rows by `created_at` over a sliding
-- window, shared by every replica using this database), lets an order cut short by a crash
-- be resumed instead of placing a second one (the open row of a domain, with the key its
-- CSR was made from), and shows how many certificates each domain was given.
CREATE TABLE orders (
    order_url  TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- PKCS#8 PEM of the certificate key, stored before the CSR is sent (finalize).
    key_pem    TEXT,
    -- Set when the order is done with: certificate stored, order invalid, or abandoned.
    closed_at  INTEGER
);

-- The budget: orders placed since a time.
CREATE INDEX orders_created ON orders (created_at);
-- Resuming: a domain's open order.
CREATE INDEX orders_open ON orders (name) WHERE closed_at IS NULL;

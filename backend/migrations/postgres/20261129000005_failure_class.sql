-- Whose failure a failed domain's last attempt was ('domain', 'ca', 'ours'): domains that
-- wait on the CA are made due at once when it is back. NULL for failures recorded before.
ALTER TABLE domains ADD COLUMN failure_class TEXT;

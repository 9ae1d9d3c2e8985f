-- The certificate profile a domain's orders ask the CA for (`shortlived`, `tlsserver`, ...),
-- kept across renewals; NULL: the configured default (`acme.profile`).
ALTER TABLE domains ADD COLUMN profile TEXT;

-- The admin API's event stream follows every domain's state on every replica: a change of a
-- domain's state, attempts, due time or certificate is announced on channel
-- `acme_edge_domains` with the domain's name as payload, delivered on commit.
CREATE FUNCTION acme_edge_notify_domain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('acme_edge_domains', OLD.name);
    ELSIF TG_OP = 'INSERT'
        OR NEW.state IS DISTINCT FROM OLD.state
        OR NEW.attempts IS DISTINCT FROM OLD.attempts
        OR NEW.due_at IS DISTINCT FROM OLD.due_at
        OR NEW.cert_version IS DISTINCT FROM OLD.cert_version THEN
        PERFORM pg_notify('acme_edge_domains', NEW.name);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER domains_notify_domain
    AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION acme_edge_notify_domain();

-- Pages of the domains in one state, by name (`GET /v1/domains?state=...`): keyset pages
-- read from this index alone, however many domains are in other states.
CREATE INDEX domains_state_name ON domains (state, name);

-- A key is written when a publisher claims it (pending) and rewritten once its publish is
-- confirmed (done). Neither rewritten column (state, updated_at) is indexed, so with room left on
-- the page PostgreSQL rewrites the row without new entries in the key's two indexes (a HOT
-- update), as `deliveries` does. Applies to pages written from now on.
ALTER TABLE idempotency_keys SET (fillfactor = 70);

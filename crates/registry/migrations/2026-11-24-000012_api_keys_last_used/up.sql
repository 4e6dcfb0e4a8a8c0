-- When a key was last used, to the minute: the lookup that authenticates a request writes it at
-- most once a minute per key.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

-- When the webhook's current run of failures began (null after a success): a webhook failing
-- for longer than `webhooks.auto_disable_after` is deactivated.
ALTER TABLE webhooks ADD COLUMN failing_since timestamptz;

-- GCRA rate limiting shared by every registry replica: one row per (key, limit), holding the
-- theoretical arrival time of the next request. One statement per request.
CREATE TABLE rate_limits (
    bucket  text PRIMARY KEY,
    tat     timestamptz NOT NULL
);

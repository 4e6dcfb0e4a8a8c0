-- `unconfirmed`: the claim's publish failed in a way that may still have stored the event (a
-- confirm timeout, a nack within a batch, the connection lost mid-publish). The next claim of the
-- key takes it over at once and publishes again under the same event id, so a receiver that gets
-- both copies sees one `webhook-id`.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_state;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_state
    CHECK (state IN ('pending', 'done', 'unconfirmed'));

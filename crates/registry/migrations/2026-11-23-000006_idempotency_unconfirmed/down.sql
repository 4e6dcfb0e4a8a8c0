-- Unconfirmed claims are released, as they were before the state existed.
DELETE FROM idempotency_keys WHERE state = 'unconfirmed';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_state;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_state CHECK (state IN ('pending', 'done'));

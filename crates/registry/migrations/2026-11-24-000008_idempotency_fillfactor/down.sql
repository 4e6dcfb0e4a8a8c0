ALTER TABLE idempotency_keys RESET (fillfactor);

-- Every latest attempt back into delivery_attempts before its signature column goes.
INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, response_status, error, duration_ms, signature)
SELECT id, attempts, last_attempt_at, response_status, error, COALESCE(duration_ms, 0), signature
FROM deliveries
WHERE signature IS NOT NULL AND attempts > 0 AND last_attempt_at IS NOT NULL
ON CONFLICT ON CONSTRAINT delivery_attempts_pkey DO NOTHING;
ALTER TABLE deliveries DROP COLUMN signature;

DROP TABLE rate_limits;
ALTER TABLE webhooks DROP COLUMN failing_since;

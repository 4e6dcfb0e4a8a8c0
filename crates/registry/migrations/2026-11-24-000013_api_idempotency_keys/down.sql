DROP TABLE api_idempotency_keys;

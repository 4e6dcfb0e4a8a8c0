-- Every API-key request writes its rate-limit row. Logged, that write made each request's commit
-- wait for a WAL flush; unlogged, a request that writes nothing else commits without one
-- (measured: GET /v1/webhooks 1,156–1,261 → 1,484–1,742 requests/s, PostgreSQL CPU per request
-- −10 to −25 %, docs/benchmarks.md). What it gives up: after a crash of PostgreSQL (not a clean
-- restart) the table starts empty, and a standby does not have it, so every key's quota starts
-- full once more. A quota is a traffic shaper, not a record.
ALTER TABLE rate_limits SET UNLOGGED;

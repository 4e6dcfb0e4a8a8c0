-- `holder`: the id of the claim that holds a pending key, new for every claim (publishers from
-- before it send none: NULL). Releasing a claim, or leaving it unconfirmed, needs the same
-- holder, so a publisher that stalled past the 30 s takeover cannot undo the claim of the
-- publisher that resumed the key meanwhile under the same event id.
ALTER TABLE idempotency_keys ADD COLUMN holder uuid;

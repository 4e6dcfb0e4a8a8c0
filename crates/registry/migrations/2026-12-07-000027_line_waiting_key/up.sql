-- A line's next delivery is the lowest `seq` of its (webhook_id, line). With `seq` alone as the
-- key, the planner could walk that key in order, filtering for the line, and did whenever the
-- table's statistics were stale (a fresh table, or one analyzed while empty): one lookup then
-- passed every row queued before the line's first, and PostgreSQL's CPU per ordered delivery
-- rose about fivefold. Keyed by line first, no index offers that walk, and one index fewer is
-- written per waiting delivery.
ALTER TABLE line_waiting DROP CONSTRAINT line_waiting_pkey;
DROP INDEX line_waiting_line;
ALTER TABLE line_waiting ADD PRIMARY KEY (webhook_id, line, seq);

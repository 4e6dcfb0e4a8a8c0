-- The line tables churn: each delivery of an ordered webhook is inserted into and deleted from
-- `line_waiting`, and updates its line's `delivery_lines` row (about 1.3 KB, with its task) as
-- it goes out. Half-empty pages let those updates stay on their page (HOT, no new index
-- entries), and vacuum runs after a fixed number of dead rows rather than a share of a table
-- that is small and hot, so lookups do not walk long chains of dead versions.
ALTER TABLE delivery_lines SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE line_waiting SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_cost_delay = 0);

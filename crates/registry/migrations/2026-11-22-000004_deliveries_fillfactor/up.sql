-- A delivery row is written when its event is routed (pending) and rewritten with each attempt's
-- outcome. None of the rewritten columns is indexed, so with room left on the page PostgreSQL
-- updates the row in place of a new index entry in each of the table's three indexes (a HOT
-- update). Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 70);

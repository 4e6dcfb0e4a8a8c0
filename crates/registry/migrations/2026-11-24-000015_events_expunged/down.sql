DROP INDEX events_expunged_idx;
DROP INDEX events_subject_idx;
ALTER TABLE events DROP COLUMN expunged_at;

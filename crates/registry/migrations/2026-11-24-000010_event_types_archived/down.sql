ALTER TABLE event_types DROP COLUMN archived;

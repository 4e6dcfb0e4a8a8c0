ALTER TABLE event_types DROP COLUMN example;

DROP TABLE event_erasures;

-- An archived type leaves the catalog customers see and subscribe from; producers still publish
-- it and the webhooks subscribed to it still get it.
ALTER TABLE event_types ADD COLUMN archived boolean NOT NULL DEFAULT false;

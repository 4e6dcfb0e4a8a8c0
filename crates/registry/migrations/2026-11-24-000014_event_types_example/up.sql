-- An example payload (`data`) of the type, valid against its schema: shown to customers in the
-- catalog and sent by a webhook's test.
ALTER TABLE event_types ADD COLUMN example jsonb;

-- Hookwire's own types get an example each (checked against their schemas by
-- tests/it/publisher.rs).
UPDATE event_types SET example = '{"delivery_id": "01936b1e-7f40-7d1c-9a55-0c2f1e7d4b21",
  "webhook_id": "01936b1a-2c11-7a80-b7f2-5e9d0c4a1f07", "event_id": "01936b1e-7f3f-7c02-8b1d-3a4e5f607182",
  "event_type": "person.created", "attempts": 9, "response_status": 503,
  "error": "http_status: the receiver answered 503", "last_attempt_at": "2026-11-24T10:15:30Z"}'
WHERE value = 'hookwire.delivery_exhausted';
UPDATE event_types SET example = '{"webhook_id": "01936b1a-2c11-7a80-b7f2-5e9d0c4a1f07",
  "url": "https://hooks.example.com/hookwire",
  "disabled_reason": "deactivated automatically: every delivery failed for more than 5days", "failing_since": "2026-11-19T10:15:30Z",
  "disabled_at": "2026-11-24T10:15:30Z"}'
WHERE value = 'hookwire.webhook_disabled';

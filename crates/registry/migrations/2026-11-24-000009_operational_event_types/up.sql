-- Hookwire's own events about a tenant's webhooks (hookwire_core::operational), in every
-- installation's catalog: a webhook subscribes to them with `hookwire.*`. Their schemas are what
-- the registry sends, and the publisher checks them like any catalog schema.
INSERT INTO event_types (value, label, description, schema) VALUES
('hookwire.delivery_exhausted', 'Delivery exhausted',
 'One of the tenant''s deliveries ran out of retries. The subject is the webhook''s id.',
 '{"type": "object",
   "required": ["delivery_id", "webhook_id", "event_id", "event_type", "attempts", "response_status", "error", "last_attempt_at"],
   "properties": {
     "delivery_id": {"type": "string", "format": "uuid"},
     "webhook_id": {"type": "string", "format": "uuid"},
     "event_id": {"type": "string", "format": "uuid"},
     "event_type": {"type": "string"},
     "attempts": {"type": "integer", "minimum": 1},
     "response_status": {"type": ["integer", "null"]},
     "error": {"type": ["string", "null"]},
     "last_attempt_at": {"type": ["string", "null"], "format": "date-time"}}}'),
('hookwire.webhook_disabled', 'Webhook disabled',
 'One of the tenant''s webhooks was deactivated because every delivery failed for too long. The subject is the webhook''s id.',
 '{"type": "object",
   "required": ["webhook_id", "url", "disabled_reason", "disabled_at"],
   "properties": {
     "webhook_id": {"type": "string", "format": "uuid"},
     "url": {"type": "string"},
     "disabled_reason": {"type": "string"},
     "failing_since": {"type": ["string", "null"], "format": "date-time"},
     "disabled_at": {"type": "string", "format": "date-time"}}}')
ON CONFLICT (value) DO NOTHING;

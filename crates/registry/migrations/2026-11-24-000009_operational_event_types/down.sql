DELETE FROM event_types WHERE value IN ('hookwire.delivery_exhausted', 'hookwire.webhook_disabled');

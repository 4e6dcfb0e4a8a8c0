//! Hookwire's own events about a tenant's webhooks ("operational events"): a tenant subscribes a
//! webhook to them with `hookwire.*` (or a type by name) and is told when one of its deliveries
//! runs out of retries or one of its webhooks is deactivated for failing too long. They are
//! catalog types (migration `2026-11-24-000009_operational_event_types`), routed, signed,
//! retried and logged like any event. The registry publishes them to the ingest exchange as
//! [`KIND`] messages; producers cannot publish these types (`patterns::is_reserved`).

/// The `kind` of an operational event on the ingest exchange (a producer's event is `event.v1`).
pub const KIND: &str = "operational_event.v1";

/// A delivery ran out of retries (status `exhausted`).
pub const DELIVERY_EXHAUSTED: &str = "hookwire.delivery_exhausted";

/// A webhook was deactivated because every delivery failed for longer than
/// `webhooks.auto_disable_after`.
pub const WEBHOOK_DISABLED: &str = "hookwire.webhook_disabled";

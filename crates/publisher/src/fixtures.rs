//! Subscriptions and events in one shape for the unit tests and the bench's routing rows, so
//! what the bench times is what the tests check. Not used by the service itself.

use chrono::Utc;
use hookwire_core::messages::{Event, Subscription, Target};
use hookwire_core::retry::{RetryPolicy, Strategy};
use uuid::Uuid;

/// A webhook of `tenant` on `events` (patterns) and `channels`.
pub fn subscription(tenant: Uuid, events: &[&str], channels: &[&str], is_test: bool, is_active: bool) -> Subscription {
    Subscription {
        events: events.iter().map(|s| s.to_string()).collect(),
        channels: channels.iter().map(|s| s.to_string()).collect(),
        is_active,
        is_test,
        modified_at: Utc::now(),
        target: Target {
            webhook_id: Uuid::new_v4(),
            tenant_id: tenant,
            url: "http://127.0.0.1:1/".into(),
            secrets_sealed: vec![],
            auth_header: None,
            headers: Default::default(),
            timeout_seconds: 30,
            retry_policy: RetryPolicy {
                strategy: Strategy::Fixed,
                max_retries: 1,
                interval_seconds: 1,
                max_age_seconds: 10,
            },
            rate_limit_per_second: None,
        },
    }
}

/// An event of type `event_type` for `tenant` (`None`: a feed event).
pub fn event(tenant: Option<Uuid>, event_type: &str, channels: &[&str], is_test: bool) -> Event {
    Event {
        id: hookwire_core::id::v7(),
        event_type: event_type.into(),
        tenant_id: tenant,
        subject: None,
        channels: channels.iter().map(|s| s.to_string()).collect(),
        data: serde_json::Value::Null,
        is_test,
        created_at: Utc::now(),
    }
}

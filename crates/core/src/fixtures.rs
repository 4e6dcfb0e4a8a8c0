//! Subscriptions and events in one shape for the services' unit tests and the bench's routing
//! rows, so what the bench times is what the tests check. Not used by the services themselves.

use crate::messages::{Event, Subscription, Target};
use crate::retry::{RetryPolicy, Strategy};
use chrono::Utc;
use uuid::Uuid;

/// A webhook of `tenant` on `events` (patterns) and `channels`.
pub fn subscription(tenant: Uuid, events: &[&str], channels: &[&str], is_test: bool, is_active: bool) -> Subscription {
    let modified_at = Utc::now();
    Subscription {
        events: events.iter().map(|s| s.to_string()).collect(),
        channels: channels.iter().map(|s| s.to_string()).collect(),
        is_active,
        is_test,
        modified_at,
        ordered: false,
        target: Target {
            webhook_id: Uuid::new_v4(),
            tenant_id: tenant,
            url: "http://127.0.0.1:1/".into(),
            secrets_sealed: vec![],
            overlap_ends_at: None,
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
            modified_at: Some(modified_at),
        },
    }
}

/// An event of type `event_type` for `tenant` (`None`: a feed event).
pub fn event(tenant: Option<Uuid>, event_type: &str, channels: &[&str], is_test: bool) -> Event {
    Event {
        id: crate::id::v7(),
        event_type: event_type.into(),
        tenant_id: tenant,
        subject: None,
        channels: channels.iter().map(|s| s.to_string()).collect(),
        data: serde_json::Value::Null,
        is_test,
        created_at: Utc::now(),
    }
}

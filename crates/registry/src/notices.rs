//! Change notices: after a webhook is created, changed or deleted, the registry tells publishers
//! and dispatchers on the changes fanout exchange, so routing follows within a second.
//!
//! A notice is sent after the database commit. If it is lost (broker down at that instant),
//! publishers and dispatchers still converge: they reload the whole snapshot from
//! `/v1/internal/routing` every `registry.resync_interval` and whenever they reconnect.

use chrono::{DateTime, Utc};
use hookwire_broker::{Link, Outgoing};
use hookwire_core::messages::{AuthHeader, CatalogType, ChangeNotice, Subscription, Target};
use hookwire_core::retry::RetryPolicy;
use hookwire_core::topology::Topology;
use uuid::Uuid;

use crate::db::models::Webhook;

/// Where and how a webhook is delivered to. Secrets pass through sealed, exactly as stored; the
/// signing secret being rotated out travels too until its overlap ends, with that end.
pub fn target(w: &Webhook, default_policy: RetryPolicy) -> Target {
    let mut secrets_sealed = vec![w.secret_sealed.clone()];
    let mut overlap_ends_at = None;
    if let (Some(prev), Some(until)) = (&w.previous_secret_sealed, w.previous_secret_expires_at) {
        if until > Utc::now() {
            secrets_sealed.push(prev.clone());
            overlap_ends_at = Some(until);
        }
    }
    Target {
        webhook_id: w.id,
        tenant_id: w.tenant_id,
        url: w.url.clone(),
        secrets_sealed,
        overlap_ends_at,
        auth_header: match (&w.header_name, &w.auth_secret_sealed) {
            (Some(name), Some(secret)) => Some(AuthHeader {
                name: name.clone(),
                prefix: w.prefix.clone(),
                secret_sealed: secret.clone(),
            }),
            _ => None,
        },
        headers: serde_json::from_value(w.headers.clone()).unwrap_or_default(),
        timeout_seconds: u32::try_from(w.timeout_seconds).unwrap_or(30),
        retry_policy: serde_json::from_value(w.retry_policy.clone()).unwrap_or(default_policy),
        rate_limit_per_second: w.rate_limit_per_second.and_then(|r| u32::try_from(r).ok()),
        modified_at: Some(w.modified_at),
    }
}

/// The routing view of a webhook.
pub fn subscription(w: &Webhook, default_policy: RetryPolicy) -> Subscription {
    Subscription {
        events: w.events.clone(),
        channels: w.channels.clone(),
        is_active: w.is_active,
        is_test: w.is_test,
        modified_at: w.modified_at,
        target: target(w, default_policy),
        ordered: w.ordered(),
    }
}

/// Sends change notices over the registry's broker link.
#[derive(Clone)]
pub struct Notices {
    link: Link,
    exchange: String,
    default_policy: RetryPolicy,
}

impl Notices {
    pub fn new(link: Link, topology: &Topology, default_policy: RetryPolicy) -> Self {
        Self {
            link,
            exchange: topology.changes_exchange(),
            default_policy,
        }
    }

    async fn send(&self, id: Uuid, notice: &ChangeNotice) {
        self.send_all(&[(id, notice)]).await;
    }

    /// Sends notices in one publish (each its own message).
    async fn send_all(&self, notices: &[(Uuid, &ChangeNotice)]) {
        if notices.is_empty() {
            return;
        }
        let encoded: Vec<(Vec<u8>, String)> = notices
            .iter()
            .map(|(id, n)| (serde_json::to_vec(n).expect("notices serialize"), id.to_string()))
            .collect();
        let msgs: Vec<Outgoing<'_>> = encoded
            .iter()
            .map(|(body, message_id)| Outgoing {
                exchange: &self.exchange,
                routing_key: "",
                body,
                message_id,
                delay: None,
            })
            .collect();
        if let Err(e) = self.link.publish(&msgs).await {
            // Not fatal: publishers and dispatchers resync periodically. Logged so an operator sees the delay.
            let first = notices.first().map(|(id, _)| *id);
            tracing::warn!(webhook_id = ?first, notices = notices.len(), error = %e, "change notice not sent; publishers and dispatchers will pick the change up at their next resync");
        }
    }

    pub async fn upserted(&self, w: &Webhook) {
        let subscription = subscription(w, self.default_policy);
        self.send(
            w.id,
            &ChangeNotice::Upserted {
                subscription: Box::new(subscription),
            },
        )
        .await;
    }

    pub async fn event_type(&self, t: CatalogType) {
        self.send(Uuid::new_v4(), &ChangeNotice::EventTypeUpserted { event_type: t })
            .await;
    }

    /// Delivery `delivery_id` was sent again by request at `at` (its task's `resent_at`).
    pub async fn resent(&self, delivery_id: Uuid, at: DateTime<Utc>) {
        self.send(delivery_id, &ChangeNotice::Resent { delivery_id, at }).await;
    }

    /// Events whose payloads were erased, in notices of at most 10,000 ids.
    pub async fn expunged(&self, event_ids: &[Uuid]) {
        let notices: Vec<(Uuid, ChangeNotice)> = event_ids
            .chunks(10_000)
            .map(|ids| {
                (
                    ids[0],
                    ChangeNotice::Expunged {
                        event_ids: ids.to_vec(),
                    },
                )
            })
            .collect();
        let pairs: Vec<(Uuid, &ChangeNotice)> = notices.iter().map(|(id, n)| (*id, n)).collect();
        self.send_all(&pairs).await;
    }

    /// Webhooks deleted (one, or a deleted tenant's all).
    pub async fn deleted(&self, webhook_ids: &[Uuid]) {
        let deleted_at = Utc::now();
        let notices: Vec<ChangeNotice> = webhook_ids
            .iter()
            .map(|&webhook_id| ChangeNotice::Deleted { webhook_id, deleted_at })
            .collect();
        let pairs: Vec<(Uuid, &ChangeNotice)> = webhook_ids.iter().copied().zip(&notices).collect();
        self.send_all(&pairs).await;
    }

    /// A producer token was created: publishers accept it from now on.
    pub async fn producer_token(&self, grant: hookwire_core::messages::ProducerGrant) {
        self.send(grant.id, &ChangeNotice::ProducerTokenUpserted { token: grant })
            .await;
    }

    /// A producer token was revoked: publishers refuse it from now on.
    pub async fn producer_token_revoked(&self, id: Uuid) {
        self.send(id, &ChangeNotice::ProducerTokenRevoked { id }).await;
    }

    /// A tenant's ceiling on deliveries per second was set or removed.
    pub async fn tenant_limit(&self, limit: hookwire_core::messages::TenantLimit) {
        self.send(limit.tenant_id, &ChangeNotice::TenantLimitSet(limit)).await;
    }
}

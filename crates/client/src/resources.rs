//! The operations a program calls most, typed: webhooks, the delivery log, and publishing. Any
//! other operation is [`Client::get`], [`Client::post`], [`Client::patch`] or [`Client::delete`]
//! with a `hookwire_api` type.

use hookwire_api::deliveries::{Delivery, DeliveryDetail, RetryAccepted};
use hookwire_api::events::{Accepted, BatchAccepted, NewEvent, NewEventBatch};
use hookwire_api::webhooks::{Webhook, WebhookIn, WebhookPatch};
use hookwire_api::Page;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{with_query, ApiError, Client};

impl Client {
    /// `POST /v1/webhooks`: the webhook, with its signing secret (shown on creation).
    pub async fn create_webhook(&self, webhook: &WebhookIn) -> Result<Webhook, ApiError> {
        self.post("/v1/webhooks", webhook).await
    }

    /// `GET /v1/webhooks`, the first page (follow it with [`Client::next_page`]).
    pub async fn webhooks(&self) -> Result<Page<Webhook>, ApiError> {
        self.get("/v1/webhooks").await
    }

    pub async fn webhook(&self, id: Uuid) -> Result<Webhook, ApiError> {
        self.get(&format!("/v1/webhooks/{id}")).await
    }

    /// `PATCH /v1/webhooks/{id}`: only the fields set in `patch` change.
    pub async fn update_webhook(&self, id: Uuid, patch: &WebhookPatch) -> Result<Webhook, ApiError> {
        self.patch(&format!("/v1/webhooks/{id}"), patch).await
    }

    pub async fn delete_webhook(&self, id: Uuid) -> Result<(), ApiError> {
        self.delete(&format!("/v1/webhooks/{id}")).await
    }

    /// A new signing secret; the old one keeps signing alongside for a day.
    pub async fn rotate_secret(&self, id: Uuid) -> Result<Webhook, ApiError> {
        self.post(&format!("/v1/webhooks/{id}/rotate-secret"), &serde_json::json!({}))
            .await
    }

    /// `GET /v1/deliveries`, newest first, of one webhook or of all.
    pub async fn deliveries(&self, webhook_id: Option<Uuid>) -> Result<Page<Delivery>, ApiError> {
        let path = with_query("/v1/deliveries", &[("webhook_id", webhook_id.map(|id| id.to_string()))]);
        self.get(&path).await
    }

    /// One delivery with every attempt and the payload its receiver got.
    pub async fn delivery(&self, id: Uuid) -> Result<DeliveryDetail, ApiError> {
        self.get(&format!("/v1/deliveries/{id}")).await
    }

    /// Sends a delivery again now.
    pub async fn retry_delivery(&self, id: Uuid) -> Result<RetryAccepted, ApiError> {
        self.post(&format!("/v1/deliveries/{id}/retry"), &serde_json::json!({}))
            .await
    }

    /// The page after `page`, or None on the last one.
    pub async fn next_page<T: DeserializeOwned>(&self, page: &Page<T>) -> Result<Option<Page<T>>, ApiError> {
        match &page.next {
            Some(next) => self.get(next).await.map(Some),
            None => Ok(None),
        }
    }

    /// `POST /v1/events` on a publisher (a client made with a producer token).
    pub async fn publish(&self, event: &NewEvent) -> Result<Accepted, ApiError> {
        self.post("/v1/events", event).await
    }

    /// `POST /v1/events:batch`: accepted or refused together.
    pub async fn publish_batch(&self, batch: &NewEventBatch) -> Result<BatchAccepted, ApiError> {
        self.post("/v1/events:batch", batch).await
    }
}

//! `idempotency_key`: the same key (per tenant, or among feed events) within 24 h returns the
//! first `event_id` and sends nothing again, across publisher replicas. Keys are kept by the
//! registry (`/v1/internal/idempotency/*`): claimed before publishing, marked done once the broker
//! confirmed, released when nothing was sent, so a failed publish never turns into "already
//! sent". A publish that failed after sending (a confirm timeout, say) may still be delivered:
//! its key is left unconfirmed, and the producer's retry publishes the event again under the same
//! id, so receivers that deduplicate on `webhook-id` see it once. An event without a key costs
//! nothing here.

use std::collections::HashMap;

pub use hookwire_core::event_keys::Settlement;
use hookwire_core::event_keys::{Answers, Claim, Claimed, Claims, Settle};
use hookwire_http::registry_client::RegistryClient;
use hookwire_http::ApiError;
use uuid::Uuid;

use crate::ingest::Accepted;

/// What to do with an event that carried a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Publish it, then settle the claim.
    New,
    /// Publish it under this event id (an earlier, unconfirmed publish of the key may have
    /// stored it), then settle the claim.
    Resume(Uuid),
    /// Answer with this (first) event id; send nothing.
    Duplicate(Uuid),
}

/// The claims of the events that carry a key, by their index in the request.
pub fn claims(events: &[Accepted]) -> Vec<(usize, Claim)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let key = a.idempotency_key.clone()?;
            let scope = a.event.tenant_id.map_or_else(|| "feed".to_owned(), |t| t.to_string());
            Some((
                i,
                Claim {
                    scope,
                    key,
                    event_id: a.event.id,
                    holder: Some(hookwire_core::id::v7()),
                },
            ))
        })
        .collect()
}

/// Claims every key. A key repeated within the request counts as a duplicate of its first use.
/// A resumed claim's event id becomes the one of the earlier publish.
pub async fn claim(
    registry: &RegistryClient,
    claims: &mut [(usize, Claim)],
) -> Result<HashMap<usize, Outcome>, ApiError> {
    let mut first_use: HashMap<(&str, &str), usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut repeats = Vec::new();
    for (i, c) in claims.iter() {
        match first_use.get(&(c.scope.as_str(), c.key.as_str())) {
            Some(first) => repeats.push((*i, *first)),
            None => {
                first_use.insert((&c.scope, &c.key), *i);
                unique.push((*i, c));
            }
        }
    }
    let mut outcomes = HashMap::new();
    if unique.is_empty() {
        return Ok(outcomes);
    }
    let body = Claims {
        claims: unique.iter().map(|(_, c)| (*c).clone()).collect(),
    };
    let answers: Answers = match registry.post("/v1/internal/idempotency/claim", &body).await {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => return Err(ApiError::Unavailable(
            "idempotency keys cannot be checked right now (the registry is unreachable); send the event again shortly",
        )),
    };
    if answers.results.len() != unique.len() {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the registry answered a different number of claims"
        )));
    }
    let mut busy = None;
    for ((i, c), answer) in unique.iter().zip(answers.results) {
        let outcome = match answer {
            Claimed::New => Outcome::New,
            Claimed::Resume { event_id } => Outcome::Resume(event_id),
            Claimed::Duplicate { event_id } => Outcome::Duplicate(event_id),
            Claimed::InProgress => {
                busy.get_or_insert(c.key.clone());
                continue;
            }
        };
        outcomes.insert(*i, outcome);
    }
    if let Some(key) = busy {
        // Nothing of this request is sent: the keys it did get are given back as they were, so
        // the producer's retry is not refused for them while the other request finishes.
        let (mut released, mut unconfirmed) = (Vec::new(), Vec::new());
        for (i, c) in &unique {
            match outcomes.get(i) {
                Some(Outcome::New) => released.push((*c).clone()),
                Some(Outcome::Resume(id)) => unconfirmed.push(Claim {
                    event_id: *id,
                    ..(*c).clone()
                }),
                _ => {}
            }
        }
        settle(registry, released, Settlement::Released).await;
        settle(registry, unconfirmed, Settlement::Unconfirmed).await;
        return Err(ApiError::Conflict {
            code: "idempotency_in_progress",
            detail: format!("an event with idempotency_key `{key}` is being accepted right now; retry shortly"),
        });
    }
    for (i, first) in repeats {
        let id = match outcomes[&first] {
            Outcome::New => claims
                .iter()
                .find(|(j, _)| *j == first)
                .map(|(_, c)| c.event_id)
                .expect("first use is claimed"),
            Outcome::Resume(id) | Outcome::Duplicate(id) => id,
        };
        outcomes.insert(i, Outcome::Duplicate(id));
    }
    for (i, c) in claims.iter_mut() {
        if let Some(Outcome::Resume(id)) = outcomes.get(i) {
            c.event_id = *id;
        }
    }
    Ok(outcomes)
}

/// Settles the claims. A failure here is logged: a key left pending is taken over (resumed)
/// after 30 s, so a retry may then be delivered twice under one event id (at-least-once), never
/// lost.
pub async fn settle(registry: &RegistryClient, claims: Vec<Claim>, how: Settlement) {
    if claims.is_empty() {
        return;
    }
    let body = Settle::new(claims, how);
    if let Err(e) = registry
        .post::<_, serde_json::Value>("/v1/internal/idempotency/settle", &body)
        .await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            keys = body.claims.len(),
            settlement = ?how,
            "idempotency keys not settled"
        );
    }
}

//! One task's way through: its attempt, its record, its retry or its parking, or no room.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookwire_broker::lapin::Channel;
use hookwire_broker::Outgoing;
use hookwire_core::messages::{DeliveryStatus, DeliveryTask, LedgerMessage, TaskMessage};
use hookwire_core::topology::retry_tier;
use hookwire_core::trace::TraceParent;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::client::{self, Attempt};
use crate::metrics::OutcomeLabels;
use crate::webhooks::Known;

use super::gates::{Gate, STALL};
use super::sink::{record_of, Pending, Retry};
use super::{Outcome, Worker};

/// A retry due within this much is attempted now rather than hopping through the queues again.
pub(super) const DUE_SLACK: Duration = Duration::from_millis(500);

impl Worker {
    /// Hands `task` to the deliveries queue as a `delivery_task.v1` of its own.
    pub(super) async fn spill(&self, publish: &Channel, task: DeliveryTask) -> anyhow::Result<Outcome> {
        self.metrics.spilled.inc();
        let id = task.delivery_id.to_string();
        let routing_key = self
            .topology
            .delivery_queue(task.delivery_id, false, task.bulk_lane)
            .routing_key();
        let body = serde_json::to_vec(&TaskMessage::V1(task))?;
        let exchange = self.topology.deliveries_exchange();
        let outgoing = Outgoing {
            exchange: &exchange,
            routing_key: &routing_key,
            body: &body,
            message_id: &id,
            delay: None,
        };
        hookwire_broker::publish_confirmed(publish, &[outgoing]).await?;
        Ok(Outcome::Spilled)
    }

    /// Puts a task of a stalled webhook back in the retry queues. Each park of the same task
    /// waits twice as long (up to 32×): a dead receiver's backlog settles instead of circling
    /// through the broker every second.
    pub(super) async fn park(&self, publish: &Channel, task: &mut DeliveryTask) -> anyhow::Result<Outcome> {
        self.metrics.parked.inc();
        let delay = self.config.delivery.park_delay * 2u32.pow(task.parked.min(5));
        task.parked += 1;
        self.schedule(publish, task, Utc::now() + delay).await?;
        Ok(Outcome::Parked)
    }

    pub(super) async fn handle(
        &self,
        publish: &Channel,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        gate: Arc<Gate>,
        park: bool,
    ) -> anyhow::Result<Outcome> {
        if self.webhooks.superseded(task.delivery_id, task.resent_at) {
            // Its delivery was sent again by request since: that task's chain carries it on.
            if !park {
                gate.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            self.metrics.superseded.inc();
            tracing::debug!(delivery_id = %task.delivery_id, attempt = task.attempts + 1, "task dropped: its delivery was sent again since");
            return Ok(Outcome::Superseded);
        }
        if park {
            return self.no_room(publish, sink, task, &gate).await;
        }
        // Wait for a slot; a task still waiting when its webhook has stalled parks itself, so
        // a webhook that turns slow after a burst gives its share of the prefetch window back.
        let permit = loop {
            match tokio::time::timeout(STALL, gate.slots.acquire()).await {
                Ok(permit) => break permit.expect("gate semaphores are never closed"),
                Err(_) if self.stalled(&gate) => {
                    gate.waiting.fetch_sub(1, Ordering::AcqRel);
                    return self.no_room(publish, sink, task, &gate).await;
                }
                Err(_) => {}
            }
        };
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(due) = not_yet_due(&task) {
            drop(permit);
            self.schedule(publish, &task, due).await?;
            return Ok(Outcome::Waiting);
        }
        if let Some(outcome) = self.refresh(sink, &mut task).await? {
            return Ok(outcome);
        }
        let others = self.in_flight(&gate).saturating_sub(1);
        if others == 0 {
            // A busy spell starts: nothing in it is overdue yet.
            gate.last_progress_ms.fetch_max(self.elapsed_ms(), Ordering::AcqRel);
        }
        // A receiver that times out holds a whole gate of deliveries for its timeout, and a few
        // such receivers would hold every delivery this dispatcher has room for: while a
        // webhook's attempts fail slowly, or its requests in flight have not moved for `STALL`
        // (a receiver that stopped answering, before its first timeout), its requests share
        // `max_in_flight_failing` with the other failing webhooks', and a task that finds none
        // of it left has no room.
        let suspect = gate.failing.load(Ordering::Acquire) || (others > 0 && self.stalled(&gate));
        let _failing = if suspect {
            match self.failing_room.clone().try_acquire_owned() {
                Ok(share) => Some(share),
                Err(_) => {
                    drop(permit);
                    return self.no_room(publish, sink, task, &gate).await;
                }
            }
        } else {
            None
        };
        if let Some(rate) = self.webhooks.tenant_limit(task.target.tenant_id) {
            self.pace(&self.tenant_pace(task.target.tenant_id), rate).await;
        }
        if let Some(rate) = task.target.rate_limit_per_second {
            self.pace(&gate.next_slot_us, rate).await;
        }
        let span = tracing::info_span!("deliver", webhook_id = %task.target.webhook_id, delivery_id = %task.delivery_id, attempt = task.attempts + 1);
        let parent = task.traceparent.as_deref().and_then(TraceParent::parse);
        hookwire_core::trace::continue_from(&span, task.traceparent.as_deref());
        // The receiver sees this attempt's span as the parent.
        let traceparent = hookwire_core::trace::next_hop(&span, parent.as_ref()).header();
        let senders = client::Senders {
            http: &self.client,
            relay: &self.relay,
            topology: &self.topology,
        };
        let attempt = client::attempt(senders, &self.secrets, self.config.profile, &task, &traceparent)
            .instrument(span)
            .await;
        gate.last_progress_ms.fetch_max(self.elapsed_ms(), Ordering::AcqRel);
        gate.slow.store(attempt.duration > STALL, Ordering::Release);
        gate.failing
            .store(!attempt.succeeded() && attempt.duration > STALL, Ordering::Release);
        drop(permit);
        self.metrics.attempt_seconds.observe(attempt.duration.as_secs_f64());
        self.record(sink, task, attempt).await
    }

    /// Decides the delivery's state after `attempt` and publishes the record (and retry).
    pub(super) async fn record(
        &self,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        attempt: Attempt,
    ) -> anyhow::Result<Outcome> {
        let now = Utc::now();
        let first = *task.first_attempt_at.get_or_insert(now);
        task.attempts += 1;
        let (status, next) = if attempt.succeeded() {
            (DeliveryStatus::Success, None)
        } else if attempt.response_status == Some(410) {
            (DeliveryStatus::Failed, None)
        } else {
            let age = (now - first).to_std().unwrap_or_default();
            let jitter = hookwire_core::id::random();
            match task.target.retry_policy.next_delay(task.attempts, age, jitter) {
                Some(delay) => {
                    let delay = match attempt.retry_after {
                        Some(s) => delay.max(Duration::from_secs(s)).min(hookwire_core::retry::MAX_DELAY),
                        None => delay,
                    };
                    (DeliveryStatus::Retrying, Some(now + delay))
                }
                None => (DeliveryStatus::Exhausted, None),
            }
        };
        let record = record_of(&task, &attempt, now, status, next);
        self.submit(sink, record, next.map(|at| (&task, at))).await?;
        if next.is_some() {
            self.metrics.retries_scheduled.inc();
        }
        if status == DeliveryStatus::Success {
            let e2e = (now - task.event_created_at).to_std().unwrap_or_default();
            self.metrics.end_to_end_seconds.observe(e2e.as_secs_f64());
        }
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str().to_owned(),
            })
            .inc();
        Ok(match status {
            DeliveryStatus::Success => Outcome::Delivered,
            DeliveryStatus::Retrying | DeliveryStatus::Pending | DeliveryStatus::Waiting => Outcome::Retrying,
            DeliveryStatus::Failed => Outcome::Failed,
            DeliveryStatus::Exhausted => Outcome::Exhausted,
        })
    }

    /// Gives `task` its webhook's latest settings, or ends it without a request when the webhook
    /// was deleted or deactivated, or the event's payload erased (`Some(outcome)`).
    pub(super) async fn refresh(
        &self,
        sink: &mpsc::Sender<Pending>,
        task: &mut DeliveryTask,
    ) -> anyhow::Result<Option<Outcome>> {
        if self.webhooks.expunged(task.event_id) {
            let why = "payload_expunged: the event's payload was erased; not sent";
            return self.give_up(sink, task, why).await.map(Some);
        }
        let why = match self
            .webhooks
            .get(task.target.webhook_id, task.event_created_at, task.target.modified_at)
        {
            Some(Known::Deleted) => "webhook_deleted: the webhook was deleted",
            Some(Known::Inactive) => "webhook_disabled: the webhook is not active",
            Some(Known::Active(target)) => {
                task.target = *target;
                return Ok(None);
            }
            None => return Ok(None),
        };
        self.give_up(sink, task, why).await.map(Some)
    }

    /// A task that found no request to spare for its webhook. While the webhook's receiver is
    /// failing (its last attempt failed slowly: a timeout, say), the task counts as a failed
    /// attempt without a request and follows the webhook's retry policy, like the attempts that
    /// were sent: so a long outage under steady traffic costs each delivery its retry schedule,
    /// not a trip through the broker every `park_delay`, and `max_age_seconds` still ends it.
    /// Otherwise (the receiver is slow, or its first attempts have not finished) it is parked.
    pub(super) async fn no_room(
        &self,
        publish: &Channel,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        gate: &Gate,
    ) -> anyhow::Result<Outcome> {
        if !gate.failing.load(Ordering::Acquire) {
            return self.park(publish, &mut task).await;
        }
        if let Some(due) = not_yet_due(&task) {
            self.schedule(publish, &task, due).await?;
            return Ok(Outcome::Waiting);
        }
        if let Some(outcome) = self.refresh(sink, &mut task).await? {
            return Ok(outcome);
        }
        self.metrics.not_sent.inc();
        let attempt = Attempt::not_sent(format!(
            "receiver_failing: not sent; the receiver's last attempt failed after more than {} ms \
             (a timeout?) and its other requests are all in use; counted as a failed attempt",
            STALL.as_millis()
        ));
        self.record(sink, task, attempt).await
    }

    /// Ends a delivery whose task the broker has delivered `redeliveries` times before to
    /// dispatchers that stopped with it: `failed`, unsent, so that its log says so, a retry by
    /// hand can send it once the cause is fixed, and its line (if ordered) moves on.
    pub(super) async fn set_aside(
        &self,
        sink: &mpsc::Sender<Pending>,
        task: &DeliveryTask,
        redeliveries: u32,
    ) -> anyhow::Result<Outcome> {
        self.metrics.set_aside.inc();
        tracing::error!(delivery_id = %task.delivery_id, webhook_id = %task.target.webhook_id, redeliveries, "task set aside as failed: delivered time after time without its outcome settled");
        let why = format!(
            "set_aside: not sent; the broker had delivered this task {redeliveries} times before \
             without its outcome settled (dispatchers stopped with it, a crash it causes?, or \
             the broker did not confirm its record); retry it by hand once the cause is fixed"
        );
        self.give_up(sink, task, &why).await
    }

    /// Ends a delivery without an HTTP request (its webhook is gone or disabled, or its payload
    /// erased).
    pub(super) async fn give_up(
        &self,
        sink: &mpsc::Sender<Pending>,
        task: &DeliveryTask,
        why: &str,
    ) -> anyhow::Result<Outcome> {
        let mut task = task.clone();
        task.attempts += 1;
        let attempt = Attempt::not_sent(why.to_owned());
        let record = record_of(&task, &attempt, Utc::now(), DeliveryStatus::Failed, None);
        self.submit(sink, record, None).await?;
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabels {
                outcome: "failed".into(),
            })
            .inc();
        Ok(Outcome::Failed)
    }

    /// `task`, due at `at`, addressed to the retry tier that brings it back closest to `at`
    /// without overshooting.
    pub(super) fn retry_message(&self, task: &DeliveryTask, at: DateTime<Utc>) -> anyhow::Result<Retry> {
        let mut task = task.clone();
        task.not_before = Some(at);
        let remaining = (at - Utc::now()).num_seconds().max(0) as u64;
        Ok(Retry {
            exchange: self.topology.delay_exchange(),
            routing_key: self
                .topology
                .delivery_queue(task.delivery_id, false, task.bulk_lane)
                .routing_key(),
            tier: retry_tier(remaining),
            body: serde_json::to_vec(&TaskMessage::V1(task.clone()))?,
            id: task.delivery_id.to_string(),
        })
    }

    /// Puts `task` in the retry queues until `at` (parking, or waiting out a retry delay).
    pub(super) async fn schedule(
        &self,
        publish: &Channel,
        task: &DeliveryTask,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let retry = self.retry_message(task, at)?;
        hookwire_broker::publish_confirmed(publish, &[retry.outgoing()]).await?;
        Ok(())
    }

    /// Hands an attempt record (and the retry task, if any) to the session's record sink and
    /// waits until the broker has confirmed them.
    pub(super) async fn submit(
        &self,
        sink: &mpsc::Sender<Pending>,
        record: LedgerMessage,
        retry: Option<(&DeliveryTask, DateTime<Utc>)>,
    ) -> anyhow::Result<()> {
        let retry = retry.map(|(task, at)| self.retry_message(task, at)).transpose()?;
        let (reply, confirmed) = oneshot::channel();
        sink.send(Pending { record, retry, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the record sink has stopped"))?;
        confirmed
            .await
            .map_err(|_| anyhow::anyhow!("the record sink has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

pub(super) fn not_yet_due(task: &DeliveryTask) -> Option<DateTime<Utc>> {
    task.not_before
        .filter(|due| (*due - Utc::now()).to_std().is_ok_and(|left| left > DUE_SLACK))
}

//! Acknowledging finished tasks in runs.
//!
//! Every acknowledgement is a frame for the dispatcher to write and, on a quorum queue, a
//! command for RabbitMQ to commit. Tasks finish out of order, so the acker keeps the set of
//! tasks still open on the channel: everything below the oldest open task is finished, and one
//! `basic.ack` with `multiple` settles it all. A finished task stuck above a slow one (a receiver
//! taking seconds) is not kept waiting for it: after `STRAY` it is acknowledged on its own, so a
//! slow webhook never holds finished work in the prefetch window.
//!
//! A `multiple` acknowledgement settles *every* tag below it that the broker delivered, seen or
//! not. The channel carries two consumers (tasks and groups), whose deliveries the session takes
//! in whichever order they are ready, so tag 7 may be finished before tag 6 has even been read.
//! The run therefore ends below the first tag not seen yet: the broker numbers a channel's
//! deliveries 1, 2, 3 …, so every tag under that one has been seen.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookwire_broker::lapin::options::BasicAckOptions;
use hookwire_broker::lapin::Channel;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a finished task may wait for the tasks below it before it is acknowledged alone.
const STRAY: Duration = Duration::from_millis(10);
/// How long the acker gathers finished tasks before it writes (the first one waits this long).
const GATHER: Duration = Duration::from_millis(1);

/// What happened to a delivery tag.
#[derive(Debug, Clone, Copy)]
pub enum Tag {
    /// Received and handed to a worker.
    Opened(u64),
    /// Worked and safe: acknowledge it.
    Done(u64),
    /// Already settled some other way (rejected or requeued): only forget it.
    Settled(u64),
}

/// The sending side, one clone per task. Sends never block and never fail while the acker runs.
#[derive(Clone)]
pub struct Acks(mpsc::UnboundedSender<Tag>);

impl Acks {
    pub fn opened(&self, tag: u64) {
        let _ = self.0.send(Tag::Opened(tag));
    }
    pub fn done(&self, tag: u64) {
        let _ = self.0.send(Tag::Done(tag));
    }
    pub fn settled(&self, tag: u64) {
        let _ = self.0.send(Tag::Settled(tag));
    }
}

/// Starts the acker for `channel`; it ends (after acknowledging everything finished) once every
/// `Acks` clone is dropped.
pub fn start(channel: Channel) -> (Acks, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Acks(tx), tokio::spawn(run(channel, rx)))
}

/// The acker's bookkeeping, apart from the channel (unit-tested on its own).
#[derive(Debug)]
struct Ledger {
    open: BTreeSet<u64>,
    /// Finished, not yet acknowledged, with when they finished.
    done: BTreeMap<u64, Instant>,
    /// The lowest tag not seen yet: every tag below it has been opened.
    unseen: u64,
    /// Tags seen above `unseen` (taken out of order).
    ahead: BTreeSet<u64>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            open: BTreeSet::new(),
            done: BTreeMap::new(),
            unseen: 1,
            ahead: BTreeSet::new(),
        }
    }
}

/// One acknowledgement to send.
#[derive(Debug, PartialEq, Eq)]
enum Ack {
    UpTo(u64),
    One(u64),
}

impl Ledger {
    fn note(&mut self, tag: Tag, now: Instant) {
        match tag {
            Tag::Opened(t) => {
                self.open.insert(t);
                if t == self.unseen {
                    self.unseen += 1;
                    while self.ahead.remove(&self.unseen) {
                        self.unseen += 1;
                    }
                } else if t > self.unseen {
                    self.ahead.insert(t);
                }
            }
            Tag::Done(t) => {
                self.open.remove(&t);
                self.done.insert(t, now);
            }
            Tag::Settled(t) => {
                self.open.remove(&t);
            }
        }
    }

    /// The acknowledgements to send now: one `multiple` for the finished run below the oldest
    /// open task and the first unseen one, and single ones for strays older than `STRAY` (all of
    /// them when `all`).
    fn take(&mut self, now: Instant, all: bool) -> Vec<Ack> {
        let mut acks = Vec::new();
        let below = self
            .open
            .first()
            .map_or(u64::MAX, |t| t.saturating_sub(1))
            .min(self.unseen - 1);
        let run_end = self.done.range(..=below).next_back().map(|(t, _)| *t);
        if let Some(end) = run_end {
            self.done = self.done.split_off(&(end + 1));
            acks.push(Ack::UpTo(end));
        }
        self.done.retain(|t, at| {
            let stray = all || now.duration_since(*at) >= STRAY;
            if stray {
                acks.push(Ack::One(*t));
            }
            !stray
        });
        acks
    }

    /// When the oldest stray is due.
    fn next_due(&self) -> Option<Instant> {
        self.done.values().min().map(|at| *at + STRAY)
    }
}

async fn run(channel: Channel, mut rx: mpsc::UnboundedReceiver<Tag>) {
    let mut ledger = Ledger::default();
    let mut closed = false;
    while !closed {
        // `None`: a stray is due; `Some(None)`: every sender is gone.
        let first = match ledger.next_due() {
            Some(due) => tokio::select! {
                tag = rx.recv() => Some(tag),
                () = tokio::time::sleep_until(due) => None,
            },
            None => Some(rx.recv().await),
        };
        match first {
            Some(Some(tag)) => {
                ledger.note(tag, Instant::now());
                // Gather what finishes meanwhile, so one frame settles many tasks.
                let until = Instant::now() + GATHER;
                loop {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(tag)) => ledger.note(tag, Instant::now()),
                        Ok(None) => {
                            closed = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            Some(None) => closed = true,
            None => {}
        }
        for ack in ledger.take(Instant::now(), closed) {
            let (tag, multiple) = match ack {
                Ack::UpTo(t) => (t, true),
                Ack::One(t) => (t, false),
            };
            if let Err(e) = channel.basic_ack(tag, BasicAckOptions { multiple }).await {
                // The channel is gone: the broker redelivers what was not acknowledged.
                tracing::warn!(error = %e, "acknowledgement lost; the broker will redeliver the task");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledges_runs_below_the_oldest_open_task_and_strays_after_a_while() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        for t in 1..=6 {
            l.note(Tag::Opened(t), t0);
        }
        l.note(Tag::Done(1), t0);
        l.note(Tag::Done(2), t0);
        l.note(Tag::Settled(3), t0); // requeued: settled, never acknowledged
        l.note(Tag::Done(5), t0); // above 4, which is still open
        assert_eq!(l.take(t0, false), vec![Ack::UpTo(2)]);
        assert_eq!(l.take(t0 + STRAY / 2, false), vec![], "5 waits a little for 4");
        assert_eq!(l.take(t0 + STRAY, false), vec![Ack::One(5)], "then goes alone");
        l.note(Tag::Done(4), t0 + STRAY);
        l.note(Tag::Done(6), t0 + STRAY);
        assert_eq!(l.take(t0 + STRAY, false), vec![Ack::UpTo(6)]);
        assert!(l.done.is_empty() && l.open.is_empty());
    }

    #[test]
    fn a_run_never_covers_a_tag_not_seen_yet() {
        // Tag 2 (a task) is read and finished while tag 1 (a group) still waits in the other
        // consumer's buffer: `basic.ack(2, multiple)` would settle the group unworked.
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.note(Tag::Opened(2), t0);
        l.note(Tag::Done(2), t0);
        assert_eq!(l.take(t0, false), vec![], "2 waits for 1 to be seen");
        l.note(Tag::Opened(1), t0);
        l.note(Tag::Opened(4), t0);
        l.note(Tag::Done(4), t0);
        assert_eq!(l.take(t0, false), vec![], "1 is open now, 3 unseen");
        l.note(Tag::Done(1), t0);
        assert_eq!(l.take(t0, false), vec![Ack::UpTo(2)], "4 waits for 3");
        assert_eq!(l.take(t0 + STRAY, false), vec![Ack::One(4)], "alone after a while");
        l.note(Tag::Opened(3), t0 + STRAY);
        l.note(Tag::Done(3), t0 + STRAY);
        l.note(Tag::Opened(5), t0 + STRAY);
        l.note(Tag::Done(5), t0 + STRAY);
        assert_eq!(l.take(t0 + STRAY, false), vec![Ack::UpTo(5)]);
        assert!(l.done.is_empty() && l.open.is_empty() && l.ahead.is_empty());
    }

    #[test]
    fn at_the_end_everything_finished_is_acknowledged() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        for t in 1..=3 {
            l.note(Tag::Opened(t), t0);
        }
        l.note(Tag::Done(3), t0);
        assert_eq!(l.take(t0, true), vec![Ack::One(3)]);
    }
}

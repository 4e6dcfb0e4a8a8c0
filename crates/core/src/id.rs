//! Identifiers for what Hookwire creates: events, deliveries, messages, keys, trace and span ids.
//!
//! [`v7`] is the one way to make a time-ordered UUID here; `Uuid::now_v7` is refused by clippy
//! (`clippy.toml`). uuid's `now_v7` keeps one context behind a process-wide mutex and may call
//! the random source while holding it, so two threads making ids at the same moment take turns:
//! in the publisher a request was seen waiting on that lock while another worker held it
//! (bench/history.md, "Runs 27–29"). Here each thread keeps its own context: ids stay unique
//! (42 random-seeded counter bits and 32 random bits besides the millisecond) and increase
//! within a thread; two threads' ids from the same millisecond are in no set order, which is
//! what ids from two replicas have always been.

use uuid::{ContextV7, Timestamp, Uuid};

thread_local! {
    static CONTEXT: ContextV7 = const { ContextV7::new() };
}

/// A new UUIDv7 from this thread's context.
pub fn v7() -> Uuid {
    CONTEXT.with(|context| Uuid::new_v7(Timestamp::now(context)))
}

/// A random value for what must not repeat or be predictable in bulk but is no secret: trace and
/// span ids (byte arrays), retry jitter (an `f64` in `[0, 1)`). They come from rand's thread-local
/// generator (seeded from the operating system), with no system call per use; keys, nonces and
/// secrets come from [`crate::crypto::random`].
pub fn random<T>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    rand::random()
}

/// The id of the delivery of event `event_id` to webhook `webhook_id`: the same every time the
/// event is published (a producer's retry resumed under the event's id, after a publish the broker
/// did not confirm but stored, lands on the same delivery in the log instead of a second one).
/// A UUIDv7 with the event id's millisecond, so the delivery log's index stays in time order, and
/// 74 bits of SHA-256 of the two ids.
pub fn delivery(event_id: Uuid, webhook_id: Uuid) -> Uuid {
    use sha2::{Digest as _, Sha256};
    let millis = unix_millis(event_id).unwrap_or(0);
    let digest = Sha256::new()
        .chain_update(event_id.as_bytes())
        .chain_update(webhook_id.as_bytes())
        .finalize();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

/// The Unix millisecond a time-ordered id (v7) carries; `None` for ids without a time.
fn unix_millis(id: Uuid) -> Option<u64> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    Some(seconds * 1000 + u64::from(nanos) / 1_000_000)
}

/// The smallest UUIDv7 created at `at`: every v7 id made before `at`'s millisecond sorts below
/// it (PostgreSQL compares uuids bytewise, and v7 starts with the big-endian millisecond).
pub fn v7_floor(at: chrono::DateTime<chrono::Utc>) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_version_7_unique_and_increase_within_a_thread() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| v7()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids from one thread are ordered");
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| v7()).collect::<Vec<_>>()))
            .collect();
        let mut all: HashSet<Uuid> = ids.into_iter().collect();
        for t in threads {
            for id in t.join().expect("thread") {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), 50_000);
    }

    #[test]
    fn random_bytes_do_not_repeat_across_threads() {
        let draw = || (0..10_000).map(|_| random::<[u8; 8]>()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw);
        let mut seen: HashSet<[u8; 8]> = draw().into_iter().collect();
        for bytes in other.join().expect("thread") {
            assert!(seen.insert(bytes), "repeated {bytes:?}");
        }
        assert_eq!(seen.len(), 20_000);
    }

    #[test]
    fn a_delivery_id_is_one_per_event_and_webhook_and_keeps_the_events_time() {
        let (event, other_event) = (v7(), v7());
        let webhooks: Vec<Uuid> = (0..1_000).map(|_| v7()).collect();
        let ids: HashSet<Uuid> = webhooks.iter().map(|w| delivery(event, *w)).collect();
        assert_eq!(ids.len(), 1_000, "one id per webhook");
        assert_eq!(
            delivery(event, webhooks[0]),
            delivery(event, webhooks[0]),
            "the same every time"
        );
        assert_ne!(delivery(event, webhooks[0]), delivery(other_event, webhooks[0]));
        let id = delivery(event, webhooks[0]);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(millis(id), millis(event));
    }

    fn millis(id: Uuid) -> u64 {
        unix_millis(id).expect("v7 has a timestamp")
    }

    #[test]
    fn ids_carry_the_current_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let now = millis(v7());
        assert!(now >= before && now < before + 5_000, "{now} vs {before}");
    }
}

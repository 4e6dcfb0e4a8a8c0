//! Retry policies: the types live with the API's (`hookwire_api::retry`), since a webhook's
//! policy is part of its API shape; what only the services need is here.

pub use hookwire_api::retry::{RetryPolicy, Strategy, MAX_DELAY};

/// How long a delivery sent again by request is remembered (by the registry, for the routing
/// snapshot, and by dispatchers): a task of the chain it replaced comes back at its next retry,
/// at most `MAX_DELAY` after it was scheduled; the hour covers a park on top. A `TimeDelta`:
/// every use compares it with times.
pub const RESENDS_KEPT: chrono::TimeDelta = chrono::TimeDelta::seconds(MAX_DELAY.as_secs() as i64 + 3600);

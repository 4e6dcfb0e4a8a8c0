#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod event_keys;
#[doc(hidden)]
pub mod fixtures;
pub mod id;
pub mod lanes;
pub mod messages;
pub mod net;
pub mod operational;
pub mod patterns;
pub mod relay;
pub mod retry;
pub mod schema;
pub mod shutdown;
pub mod signing;
pub mod telemetry;
pub mod topology;
pub mod trace;

/// The version every service reports, and sends in `user-agent: hookwire/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! The dispatcher's configuration (defaults in `config/default.toml`, keys in docs/operations.md).

use std::path::Path;
use std::time::Duration;

use hookwire_core::config::{BrokerConfig, Profile, RuntimeConfig, TelemetryConfig};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `development` or `production` (production refuses private destinations).
    pub profile: Profile,
    pub http: HttpConfig,
    pub broker: BrokerConfig,
    pub registry: RegistryConfig,
    pub delivery: DeliveryConfig,
    pub telemetry: TelemetryConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegistryConfig {
    /// Base URL of the registry, whose webhook snapshot is read. Default `http://127.0.0.1:8080`.
    pub url: String,
    /// How often the whole snapshot is reloaded, on top of change notices. Default 30 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub resync_interval: Duration,
    /// Timeout of one snapshot request. Default 10 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Address of `/healthz`, `/readyz`, `/metrics`. Default `127.0.0.1:8082`.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryConfig {
    /// RabbitMQ prefetch of single tasks held unacknowledged, per delivery shard. Default 1000.
    pub prefetch: u16,
    /// RabbitMQ prefetch of delivery groups held unacknowledged, per delivery shard. Default 32.
    pub group_prefetch: u16,
    /// Deliveries worked or waiting in memory at once, across messages. Default 1000.
    pub max_in_flight: usize,
    /// Concurrent requests to one webhook. Default 64.
    pub max_in_flight_per_webhook: usize,
    /// Tasks of one webhook waiting in memory before new ones find no room (parked, or failed
    /// without a request while its receiver is failing). Default 256.
    pub max_waiting_per_webhook: usize,
    /// Concurrent requests, across webhooks, to webhooks whose last attempt failed after more
    /// than 250 ms (a timeout, say) or whose requests have not moved for 250 ms; their other
    /// tasks find no room. Default 500.
    pub max_in_flight_failing: usize,
    /// Deliveries of one tenant in memory at once, out of `max_in_flight`: a tenant's flood
    /// waits within its share while every other tenant's deliveries find room. A message counts
    /// toward the tenant of its first delivery. Default 500.
    pub max_in_flight_per_tenant: usize,
    /// Delay of a parked task. Default 1 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub park_delay: Duration,
    /// Connect timeout. Default 5 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub connect_timeout: Duration,
    /// Idle keep-alive connections per host. Default 256.
    pub pool_max_idle_per_host: usize,
    /// A keep-alive connection idle this long is closed. Default 30 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Grace period for in-flight attempts on SIGTERM. Default 25 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub drain_timeout: Duration,
    /// How often the dispatchers consuming tasks are counted (the deliveries queue's consumers),
    /// to share each webhook's `rate_limit_per_second` among them. Default 5 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub replica_census_interval: Duration,
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        hookwire_core::config::load(DEFAULTS, file)
    }
}

//! The publisher's configuration (defaults in `config/default.toml`, keys in docs/operations.md).

use std::path::Path;
use std::time::Duration;

use hookwire_core::config::{BrokerConfig, Profile, RuntimeConfig, TelemetryConfig};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `development` or `production`.
    pub profile: Profile,
    pub http: HttpConfig,
    pub broker: BrokerConfig,
    pub registry: RegistryConfig,
    pub ingest: IngestConfig,
    pub telemetry: TelemetryConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Address of the ingest API. Default `127.0.0.1:8081`; port 0 picks a free port.
    pub listen: String,
    /// Largest request body, in bytes (413 above). Default 8 MiB.
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per core. Default 0.
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegistryConfig {
    /// Base URL of the registry. Default `http://127.0.0.1:8080`.
    pub url: String,
    /// How often the whole routing snapshot is reloaded. Default 30 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub resync_interval: Duration,
    /// Timeout of one snapshot request. Default 10 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IngestConfig {
    /// Most events in one batch request. Default 1000.
    pub max_batch: usize,
    /// Most webhooks in one `delivery_group.v1` message (an event routed to several webhooks
    /// travels as one message per this many); 1 sends one `delivery_task.v1` per webhook.
    /// Default 100.
    pub task_group_size: usize,
    /// Deliveries a second one tenant sends through the standard lane, across the publishers:
    /// each takes its share (this divided by the publishers it counts); past it, the tenant's
    /// deliveries take the bulk lane (`hookwire_core::lanes`). 0 turns the bulk lane off. Default 1000.
    pub bulk_lane_after: u32,
    /// How often a publisher counts the publishers running (the ingest queue's consumers, one
    /// each). Default 5 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub replica_census_interval: Duration,
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        hookwire_core::config::load(DEFAULTS, file)
    }
}

//! The registry's configuration (defaults in `config/default.toml`, keys in docs/operations.md).

use std::path::Path;
use std::time::Duration;

use hookwire_core::config::{BrokerConfig, Profile, RuntimeConfig, TelemetryConfig};
use hookwire_core::retry::RetryPolicy;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `development` or `production`.
    pub profile: Profile,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub ledger: LedgerConfig,
    pub lines: LinesConfig,
    pub webhooks: WebhooksConfig,
    pub rate_limits: RateLimitsConfig,
    pub retention: RetentionConfig,
    pub console: ConsoleConfig,
    pub telemetry: TelemetryConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionConfig {
    /// How long the delivery log (deliveries, attempts, event payloads) is kept, from routing;
    /// a delivery still pending or being retried is kept until it ends. At least 1 h. Default
    /// 30 days.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub deliveries: Duration,
    /// How often old rows are deleted; 0 turns retention off. Default 10 min.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub interval: Duration,
}

/// The console (`/console/`): the customer portal and the operator dashboard.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleConfig {
    /// Serve the console. Default true.
    pub enabled: bool,
    /// The name the portal shows. Default `Hookwire`.
    pub name: String,
    /// The accent colour, `#rrggbb`. Default `#2457d6`.
    pub color: String,
    /// A PNG, SVG or JPEG file shown as the portal's logo; empty for none. Read at start.
    pub logo: String,
    /// Origins allowed to embed the console in an iframe (CSP `frame-ancestors`), e.g.
    /// `https://app.example.com`. Empty: no site may frame it. When set, the session cookie is
    /// `SameSite=None; Secure; Partitioned`, which an embedded console needs.
    pub frame_ancestors: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitsConfig {
    /// `POST /v1/webhooks` per API key. Default 5 per hour.
    pub create_webhook: Limit,
    /// Every other API-key call. Default 120 per minute.
    pub default: Limit,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Address the API listens on. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: String,
    /// Largest request body accepted, in bytes (413 above it). Default 256 KiB.
    pub max_body_bytes: usize,
    /// Base URL for pagination links; empty: taken from the request. Default empty.
    pub public_url: String,
    /// HTTP worker threads; 0 means one per core. Default 0.
    pub workers: usize,
    /// The delivery log counts the deliveries a filter matches exactly up to this many; past it
    /// `count` is a lower bound (`count_exact: false`). Default 10,000.
    pub count_limit: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    /// PostgreSQL URL. Default `postgres://hookwire:hookwire@127.0.0.1:5432/hookwire?sslmode=disable`.
    /// TLS as libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey` say (`db::connect`).
    pub url: String,
    /// Lets the production profile connect without `sslmode` require or stronger. Default false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Pool size. Default 16.
    pub max_connections: usize,
    /// How long a request waits for a pooled connection before 503. Default 5 s.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub connect_timeout: Duration,
}

impl DatabaseConfig {
    /// Refuses a URL that cannot work or that the profile forbids, before the first connection.
    pub fn check(&self, profile: Profile) -> anyhow::Result<()> {
        crate::db::connect::check(&self.url, profile, self.allow_plaintext)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LedgerConfig {
    /// Most ledger messages written in one transaction. Default 500.
    pub batch_size: usize,
    /// Most bytes of ledger messages written in one transaction (a message holds many records,
    /// so this, not the count, bounds the memory of a batch). Default 4 MiB.
    pub batch_max_bytes: usize,
    /// How long to wait for a batch to fill after its first message. Default 20 ms.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub batch_wait: Duration,
    /// RabbitMQ prefetch of the ledger consumer. Default 500.
    pub prefetch: u16,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinesConfig {
    /// Tasks a second one tenant's lines release through the standard lane; past it, the
    /// tenant's further released tasks take the bulk lane (`hookwire_core::lanes`). 0 keeps
    /// them all in the standard lane. Default 1000.
    pub bulk_lane_after: u32,
    /// Most bytes of lines-queue messages taken into lines in one transaction, which holds
    /// the lock of every line it touches until it commits. Default 128 KiB.
    pub batch_max_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhooksConfig {
    /// Webhook limit of API keys created without `max_webhooks`. Default 10.
    pub default_max_webhooks: i32,
    /// How long a rotated-out signing secret keeps signing. Default 24 h.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub secret_rotation_overlap: Duration,
    /// A webhook whose deliveries have all failed for this long is deactivated. Default 5 days.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub auto_disable_after: Duration,
    /// Retry policy of webhooks created without one.
    pub default_retry_policy: RetryPolicy,
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let config: Self = hookwire_core::config::load(DEFAULTS, file)?;
        anyhow::ensure!(
            config.retention.deliveries >= Duration::from_secs(3600),
            "retention.deliveries must be at least 1h"
        );
        anyhow::ensure!(
            config.console.color.len() == 7
                && config.console.color.starts_with('#')
                && config.console.color[1..].bytes().all(|b| b.is_ascii_hexdigit()),
            "console.color must be #rrggbb, not {:?}",
            config.console.color
        );
        for origin in &config.console.frame_ancestors {
            let url =
                url::Url::parse(origin).map_err(|e| anyhow::anyhow!("console.frame_ancestors: {origin:?}: {e}"))?;
            anyhow::ensure!(
                matches!(url.scheme(), "https" | "http") && url.path() == "/" && url.query().is_none(),
                "console.frame_ancestors: {origin:?} must be an origin such as https://app.example.com"
            );
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_log_kept_less_than_an_hour_is_refused() {
        let file = std::env::temp_dir().join(format!("hookwire-retention-{}.toml", std::process::id()));
        std::fs::write(&file, "[retention]\ndeliveries = \"10m\"\n").unwrap();
        let refused = Config::load(Some(&file));
        std::fs::remove_file(&file).unwrap();
        let error = refused.expect_err("10 minutes of log is refused").to_string();
        assert!(error.contains("retention.deliveries must be at least 1h"), "{error}");
        assert_eq!(
            Config::load(None).unwrap().retention.deliveries,
            Duration::from_secs(30 * 86_400)
        );
    }
}

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Limit {
    /// Requests allowed per period.
    pub count: u32,
    /// The period, e.g. `1h`.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub period: std::time::Duration,
}

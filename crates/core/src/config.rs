//! Configuration loading shared by the services: compiled-in defaults, then an optional TOML file,
//! then environment variables `HOOKWIRE__SECTION__KEY` (double underscores). Secrets are never in
//! the TOML file: they are read from `HOOKWIRE_ADMIN_TOKEN`, `HOOKWIRE_PRODUCER_TOKEN`,
//! `HOOKWIRE_ENCRYPTION_KEY` and `HOOKWIRE_ENCRYPTION_KEYS_RETIRED` by [`Secrets::from_env`].
//! Any of these variables, and any `HOOKWIRE__SECTION__KEY` (a URL with a password), may instead
//! be given as `NAME_FILE`, the path of a file holding the value, as Kubernetes mounts secrets.

use std::path::Path;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::crypto::Keyring;

/// Re-exported so service configs can read humantime durations (`"5s"`) with one dependency.
pub use humantime_serde;

/// Loads a service's configuration: `defaults` (TOML text compiled into the binary), then `file`,
/// then the environment.
pub fn load<T: DeserializeOwned>(defaults: &str, file: Option<&Path>) -> anyhow::Result<T> {
    let mut builder =
        ::config::Config::builder().add_source(::config::File::from_str(defaults, ::config::FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(::config::File::from(path).required(true));
    }
    let environment = with_files(std::env::vars())?;
    builder
        .add_source(
            ::config::Environment::with_prefix("HOOKWIRE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(environment.into_iter().collect())),
        )
        .build()
        .context("reading configuration sources")?
        .try_deserialize()
        .context("configuration has a missing or invalid key")
}

/// Suffix of a variable that names a file holding the value of the variable without it.
const FILE_SUFFIX: &str = "_FILE";

/// The environment with every `NAME_FILE=path` replaced by `NAME=<the file's content>` (one
/// trailing line break dropped, as editors and `kubectl create secret --from-file` leave one).
/// Setting both `NAME` and `NAME_FILE` is an error: which one wins would be a guess.
pub fn with_files(
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut plain = std::collections::HashMap::new();
    let mut files = Vec::new();
    for (name, value) in vars {
        match name.strip_suffix(FILE_SUFFIX) {
            Some(base) if base.starts_with("HOOKWIRE") => files.push((base.to_owned(), value)),
            _ => {
                plain.insert(name, value);
            }
        }
    }
    for (name, path) in files {
        anyhow::ensure!(
            !plain.contains_key(&name),
            "both {name} and {name}{FILE_SUFFIX} are set; set one of them"
        );
        let content =
            std::fs::read_to_string(&path).with_context(|| format!("reading {name}{FILE_SUFFIX} ({path})"))?;
        let content = content.strip_suffix('\n').unwrap_or(&content);
        let content = content.strip_suffix('\r').unwrap_or(content);
        plain.insert(name, content.to_owned());
    }
    Ok(plain)
}

/// Which safety rules apply. `development` allows `http://` and loopback webhook URLs and has
/// default secrets; `production` requires `https://`, refuses private destinations and refuses to
/// start without the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Development,
    Production,
}

/// The RabbitMQ connection.
#[derive(Debug, Clone, Deserialize)]
pub struct BrokerConfig {
    /// AMQP URI. Default `amqp://guest:guest@127.0.0.1:5672/%2f`; `amqps://` for TLS. The nodes
    /// of a cluster as several URIs, comma-separated: tried in turn (failover).
    pub url: String,
    /// Prefix of every exchange and queue name. Default `hookwire`; tests use a random one.
    pub prefix: String,
    /// Delivery shards: pairs of task and group queues the deliveries are spread over, so their
    /// leaders can sit on different nodes of a cluster. Every service of an installation must
    /// use the same number; raising it is safe, lowering it strands the last shards' messages.
    /// Default 1.
    #[serde(default = "one_shard")]
    pub delivery_shards: u16,
    /// PEM file of the certificate authorities trusted for the broker's certificate, added to the
    /// system's. The server is always verified, name included, on `amqps://`.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM files of a client certificate and its PKCS#8 key, for brokers that require one.
    #[serde(default)]
    pub client_cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<std::path::PathBuf>,
    /// Lets the production profile connect with plain `amqp://` (a broker on the same host, or
    /// behind a sidecar that encrypts). Default false.
    #[serde(default)]
    pub allow_plaintext: bool,
}

fn one_shard() -> u16 {
    1
}

impl BrokerConfig {
    /// A connection to `url` with no TLS files, under `prefix`.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            delivery_shards: 1,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            allow_plaintext: false,
        }
    }

    /// The names of the installation's exchanges and queues.
    pub fn topology(&self) -> crate::topology::Topology {
        crate::topology::Topology::sharded(&self.prefix, self.delivery_shards)
    }

    /// The addresses `url` lists (one, or a cluster's nodes, comma-separated).
    pub fn addresses(&self) -> Vec<&str> {
        self.url.split(',').map(str::trim).filter(|a| !a.is_empty()).collect()
    }

    /// Whether every address asks for TLS.
    pub fn uses_tls(&self) -> bool {
        let addresses = self.addresses();
        !addresses.is_empty()
            && addresses
                .iter()
                .all(|a| a.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("amqps://")))
    }

    /// Refuses settings that cannot work or that the profile forbids, before the first connection.
    pub fn check(&self, profile: Profile) -> anyhow::Result<()> {
        anyhow::ensure!(self.delivery_shards >= 1, "broker.delivery_shards must be at least 1");
        if profile == Profile::Production && !self.uses_tls() && !self.allow_plaintext {
            anyhow::bail!(
                "broker.url is plain amqp:// in the production profile; use amqps:// \
                 (or set broker.allow_plaintext = true to accept an unencrypted broker connection)"
            );
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            anyhow::bail!("broker.client_cert_file and broker.client_key_file go together; set both or neither");
        }
        for file in [&self.ca_file, &self.client_cert_file, &self.client_key_file]
            .into_iter()
            .flatten()
        {
            anyhow::ensure!(
                self.uses_tls(),
                "{} is set for the broker but broker.url is not amqps://",
                file.display()
            );
            std::fs::metadata(file).with_context(|| format!("reading the broker's TLS file {}", file.display()))?;
        }
        Ok(())
    }
}

/// The tokio runtime a service runs on.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RuntimeConfig {
    /// Worker threads; 0 means one per core. Each service's default is in its `default.toml`
    /// (docs/operations.md, "Threads").
    pub worker_threads: usize,
}

impl RuntimeConfig {
    /// The runtime the service's `main` blocks on.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if self.worker_threads > 0 {
            builder.worker_threads(self.worker_threads);
        }
        builder.enable_all().build()
    }

    /// A service's `main`: builds the runtime and runs `service` on it to the end.
    pub fn run<F: std::future::Future>(self, service: F) -> anyhow::Result<F::Output> {
        use anyhow::Context as _;
        Ok(self.build().context("starting the async runtime")?.block_on(service))
    }
}

/// Where logs go and how much is logged.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// `json` (one object a line, the default) or `pretty`.
    pub log_format: LogFormat,
    /// A `tracing` filter, such as `info` or `hookwire_dispatcher=debug,info`. `RUST_LOG` wins when set.
    pub log_level: String,
    /// OTLP/gRPC endpoint spans are exported to (`http://otel-collector:4317`); empty (the
    /// default) exports nothing.
    #[serde(default)]
    pub otlp_endpoint: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The development defaults of the secrets. They are public: the production profile refuses them.
pub mod dev_defaults {
    pub const ADMIN_TOKEN: &str = "dev-admin-token";
    pub const PRODUCER_TOKEN: &str = "dev-producer-token";
    pub const INTERNAL_TOKEN: &str = "dev-internal-token";
    /// base64 of the 32 bytes `hookwire-development-key-000000!`.
    pub const ENCRYPTION_KEY: &str = "aG9va3dpcmUtZGV2ZWxvcG1lbnQta2V5LTAwMDAwMCE=";
}

/// Which service reads the secrets: each reads only those it needs (least privilege), so a
/// dispatcher never holds the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The admin, internal and encryption keys.
    Registry,
    /// The bootstrap producer token and the internal token.
    Publisher,
    /// The internal token and the encryption keys.
    Dispatcher,
}

/// The secrets a service was given through its environment. One its role does not need holds
/// a random value nobody knows, so it matches nothing.
pub struct Secrets {
    /// Bearer token of the admin API (`HOOKWIRE_ADMIN_TOKEN`).
    pub admin_token: SecretString,
    /// Bearer token of event ingest (`HOOKWIRE_PRODUCER_TOKEN`): the bootstrap producer.
    pub producer_token: SecretString,
    /// Bearer token of the registry's internal API, which publishers and dispatchers call
    /// (`HOOKWIRE_INTERNAL_TOKEN`): routing data and idempotency claims, nothing of the admin API.
    pub internal_token: SecretString,
    /// Keys that seal secrets at rest and in broker messages (`HOOKWIRE_ENCRYPTION_KEY`, and
    /// `HOOKWIRE_ENCRYPTION_KEYS_RETIRED`, comma-separated, for rotation).
    pub keyring: Keyring,
}

impl Secrets {
    /// Reads the secrets from the environment (each may be given as `NAME_FILE`). In production
    /// each must be set and must differ from its development default.
    pub fn from_env(profile: Profile, role: Role) -> anyhow::Result<Self> {
        let environment = with_files(std::env::vars())?;
        Self::from_lookup(profile, role, |name| environment.get(name).cloned())
    }

    fn from_lookup(profile: Profile, role: Role, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let read = |name: &str, default: &str| -> anyhow::Result<String> {
            match (var(name).filter(|v| !v.is_empty()), profile) {
                (Some(v), Profile::Production) if v == default => {
                    anyhow::bail!("{name} is the public development default; set a real secret")
                }
                (Some(v), _) => Ok(v),
                (None, Profile::Development) => Ok(default.to_owned()),
                (None, Profile::Production) => {
                    anyhow::bail!("{name} must be set in the production profile")
                }
            }
        };
        let unknown = || -> String {
            let random: [u8; 32] = crate::crypto::random();
            random.iter().map(|b| format!("{b:02x}")).collect()
        };
        let token = |needed: bool, name: &str, default: &str| -> anyhow::Result<SecretString> {
            Ok(if needed { read(name, default)? } else { unknown() }.into())
        };
        let keyring = if role == Role::Publisher {
            // It forwards sealed secrets and never opens one.
            Keyring::new(dev_defaults::ENCRYPTION_KEY, "").context("the placeholder keyring")?
        } else {
            Keyring::new(
                &read("HOOKWIRE_ENCRYPTION_KEY", dev_defaults::ENCRYPTION_KEY)?,
                &var("HOOKWIRE_ENCRYPTION_KEYS_RETIRED").unwrap_or_default(),
            )
            .context("HOOKWIRE_ENCRYPTION_KEY")?
        };
        Ok(Self {
            admin_token: token(
                role == Role::Registry,
                "HOOKWIRE_ADMIN_TOKEN",
                dev_defaults::ADMIN_TOKEN,
            )?,
            producer_token: token(
                role == Role::Publisher,
                "HOOKWIRE_PRODUCER_TOKEN",
                dev_defaults::PRODUCER_TOKEN,
            )?,
            internal_token: token(true, "HOOKWIRE_INTERNAL_TOKEN", dev_defaults::INTERNAL_TOKEN)?,
            keyring,
        })
    }
}

/// Compares a presented bearer token with the expected one in constant time.
pub fn token_matches(expected: &SecretString, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests keeps the time independent of where the strings differ and of their length.
    let a = Sha256::digest(expected.expose_secret().as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str) -> BrokerConfig {
        BrokerConfig::new(url, "hookwire")
    }

    #[test]
    fn production_refuses_a_plain_broker_connection_unless_allowed() {
        let plain = broker("amqp://guest:guest@rabbitmq:5672/%2f");
        assert!(plain.check(Profile::Development).is_ok());
        let err = plain.check(Profile::Production).unwrap_err().to_string();
        assert!(err.contains("amqps://") && err.contains("allow_plaintext"), "{err}");
        assert!(BrokerConfig {
            allow_plaintext: true,
            ..plain.clone()
        }
        .check(Profile::Production)
        .is_ok());
        assert!(broker("AMQPS://rabbitmq:5671/%2f").check(Profile::Production).is_ok());
        // A cluster's nodes: every one must be TLS.
        let nodes = broker("amqps://r1:5671/%2f, amqps://r2:5671/%2f,amqps://r3:5671/%2f");
        assert_eq!(nodes.addresses().len(), 3);
        assert!(nodes.check(Profile::Production).is_ok());
        assert!(broker("amqps://r1:5671/%2f,amqp://r2:5672/%2f")
            .check(Profile::Production)
            .is_err());
        // TLS files on a plain URL would be silently unused: refused.
        let err = BrokerConfig {
            ca_file: Some("/etc/hostname".into()),
            ..plain.clone()
        }
        .check(Profile::Development)
        .unwrap_err();
        assert!(err.to_string().contains("not amqps://"), "{err}");
        let err = BrokerConfig {
            client_cert_file: Some("/etc/hostname".into()),
            ..broker("amqps://r/%2f")
        }
        .check(Profile::Development)
        .unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let err = BrokerConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..broker("amqps://r/%2f")
        }
        .check(Profile::Development)
        .unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/ca.pem"), "{err:#}");
    }

    #[test]
    fn development_falls_back_to_documented_defaults() {
        let s = Secrets::from_lookup(Profile::Development, Role::Registry, |_| None).unwrap();
        assert!(token_matches(&s.admin_token, dev_defaults::ADMIN_TOKEN));
        assert!(!token_matches(&s.admin_token, "dev-admin-tokeN"));
        assert!(token_matches(&s.internal_token, dev_defaults::INTERNAL_TOKEN));
    }

    #[test]
    fn a_service_reads_only_the_secrets_its_role_needs() {
        // A production dispatcher given only its own secrets starts, and holds no admin token.
        let given = |name: &str| match name {
            "HOOKWIRE_INTERNAL_TOKEN" => Some("internal-secret".to_owned()),
            "HOOKWIRE_ENCRYPTION_KEY" => Some("cHJvZHVjdGlvbi1rZXktMDAwMDAwMDAwMDAwMDAwMCE=".to_owned()),
            _ => None,
        };
        let d = Secrets::from_lookup(Profile::Production, Role::Dispatcher, given).unwrap();
        assert!(token_matches(&d.internal_token, "internal-secret"));
        for guess in ["", dev_defaults::ADMIN_TOKEN, "internal-secret"] {
            assert!(!token_matches(&d.admin_token, guess));
        }
        let err = Secrets::from_lookup(Profile::Production, Role::Registry, given)
            .err()
            .unwrap();
        assert!(err.to_string().contains("HOOKWIRE_ADMIN_TOKEN"), "{err}");
    }

    #[test]
    fn production_refuses_missing_or_default_secrets() {
        let err = Secrets::from_lookup(Profile::Production, Role::Registry, |_| None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("must be set"), "{err}");
        let err = Secrets::from_lookup(Profile::Production, Role::Registry, |name| match name {
            "HOOKWIRE_ENCRYPTION_KEY" => Some(dev_defaults::ENCRYPTION_KEY.into()),
            _ => Some("x".into()),
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("development default"), "{err}");
    }

    #[test]
    fn a_secret_can_come_from_a_mounted_file() {
        let dir = std::env::temp_dir().join(format!("hookwire-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("admin-token");
        std::fs::write(&token, "s3cret-from-a-file\n").unwrap();
        let path = token.display().to_string();
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };

        let env = with_files(vars(&[("HOOKWIRE_ADMIN_TOKEN_FILE", &path), ("HOME", "/root")])).unwrap();
        assert_eq!(
            env.get("HOOKWIRE_ADMIN_TOKEN").map(String::as_str),
            Some("s3cret-from-a-file")
        );
        assert_eq!(env.get("HOME").map(String::as_str), Some("/root"));
        let secrets = Secrets::from_lookup(Profile::Development, Role::Registry, |n| env.get(n).cloned()).unwrap();
        assert!(token_matches(&secrets.admin_token, "s3cret-from-a-file"));

        let env = with_files(vars(&[("HOOKWIRE__DATABASE__URL_FILE", &path)])).unwrap();
        assert_eq!(
            env.get("HOOKWIRE__DATABASE__URL").map(String::as_str),
            Some("s3cret-from-a-file")
        );

        let both = with_files(vars(&[
            ("HOOKWIRE_ADMIN_TOKEN", "x"),
            ("HOOKWIRE_ADMIN_TOKEN_FILE", &path),
        ]));
        assert!(both.unwrap_err().to_string().contains("set one of them"));
        let missing = with_files(vars(&[("HOOKWIRE_ADMIN_TOKEN_FILE", "/nonexistent/token")]));
        assert!(missing.unwrap_err().to_string().contains("HOOKWIRE_ADMIN_TOKEN_FILE"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_runtime_has_as_many_workers_as_configured() {
        let workers = |n| {
            RuntimeConfig { worker_threads: n }
                .build()
                .unwrap()
                .metrics()
                .num_workers()
        };
        assert_eq!(workers(1), 1);
        assert_eq!(workers(3), 3);
        assert!(workers(0) >= 1, "0 means tokio's default, one per core");
    }
}

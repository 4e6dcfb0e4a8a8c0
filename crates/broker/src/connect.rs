//! Opening a connection to RabbitMQ: the addresses of `broker.url` in turn, with TLS when asked.

use std::time::Duration;

use hookwire_core::config::BrokerConfig;
use lapin::{Connection, ConnectionProperties};

/// How long one broker address may take to connect before it counts as failed and the next is
/// tried: an address that swallows packets, or a broker still starting that accepted the socket,
/// must not hold a service's reconnection forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest AMQP frame proposed when `broker.url` names none (`?frame_max=`). lapin keeps a
/// read and a write buffer of 32 frames for each connection, written through at connect, so
/// RabbitMQ's own default (128 KiB) would hold 8 MiB of resident memory per connection. At 32 KiB
/// it is 2 MiB, and a group of 100 deliveries (about 51 KB) still fits in two frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Opens a connection, named so an operator sees who is who in the management UI:
/// `hookwire-publisher (hookwire)`, the installation's prefix in brackets, so several
/// installations on one broker are told apart.
///
/// `broker.url` may list the nodes of a cluster, comma-separated: they are tried in turn from a
/// random one (so replicas spread over the nodes), each for at most 10 s, and the first that
/// answers is used; a failed connection is replaced the same way, which is the failover.
///
/// On `amqps://` the broker's certificate is verified against the system's authorities and
/// `broker.ca_file`, its name included. The TLS files are read at each connection, so a rotated
/// certificate mounted from a Kubernetes secret is picked up at the next reconnect.
pub async fn connect(config: &BrokerConfig, name: &str) -> lapin::Result<Connection> {
    let addresses = config.addresses();
    let start = rand::random_range(0..addresses.len().max(1));
    let mut last = None;
    for i in 0..addresses.len() {
        let url = addresses[(start + i) % addresses.len()];
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_to(url, config, name)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                )))
            }
        }
        if addresses.len() > 1 {
            tracing::warn!(connection = %name, node = %redacted(url), error = ?last, "broker node unreachable; trying the next");
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("broker.url names no address").into()))
}

/// `url` without its password, for logs.
fn redacted(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, host)) => {
            let scheme = credentials.split_once("://").map_or("amqp", |(s, _)| s);
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}

async fn connect_to(url: &str, config: &BrokerConfig, name: &str) -> lapin::Result<Connection> {
    use lapin::Connect as _;
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(std::io::Error::other)?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    let name = format!("{name} ({})", config.prefix);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    uri.connect_with_config(props, tls_config(config)?, lapin::runtime::default_runtime()?)
        .await
}

/// The trusted authorities and the client certificate of `config`, read from their files.
fn tls_config(config: &BrokerConfig) -> std::io::Result<lapin::tcp::OwnedTLSConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
    };
    let cert_chain = match &config.ca_file {
        Some(path) => Some(String::from_utf8(read(path)?).map_err(std::io::Error::other)?),
        None => None,
    };
    let identity = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(lapin::tcp::OwnedTLSConfig { identity, cert_chain })
}

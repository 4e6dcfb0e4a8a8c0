//! Services started as processes of their own (the binaries next to the test binary), so a
//! test can stop them with SIGTERM or SIGKILL.

use crate::{broker_url, TestEnv};

impl TestEnv {
    /// Starts a dispatcher as a separate process (the `hookwire-dispatcher` binary next to the
    /// test binary), so a test can SIGKILL it. Waits until it consumes. The process is killed
    /// when the handle is dropped, so a failing test leaves none behind.
    pub async fn spawn_dispatcher_process(&self, port: u16) -> ServiceProcess {
        self.spawn_dispatcher_process_with(port, &[]).await
    }

    /// As `spawn_dispatcher_process`, with `settings` (environment variables) on top.
    pub async fn spawn_dispatcher_process_with(&self, port: u16, settings: &[(&str, String)]) -> ServiceProcess {
        let mut all = vec![
            ("HOOKWIRE__DELIVERY__DRAIN_TIMEOUT", "5s".to_owned()),
            ("HOOKWIRE__DELIVERY__REPLICA_CENSUS_INTERVAL", "500ms".to_owned()),
        ];
        all.extend(settings.iter().cloned());
        self.spawn_service("hookwire-dispatcher", port, &all).await
    }

    /// Starts a second publisher as a separate process, with `ingest.bulk_lane_after` at
    /// `bulk_lane_after` and a census of the publishers every 200 ms. Waits until it is ready.
    pub async fn spawn_publisher_process(&self, port: u16, bulk_lane_after: u32) -> ServiceProcess {
        let settings = [
            ("HOOKWIRE__INGEST__BULK_LANE_AFTER", bulk_lane_after.to_string()),
            ("HOOKWIRE__INGEST__REPLICA_CENSUS_INTERVAL", "200ms".to_owned()),
        ];
        self.spawn_service("hookwire-publisher", port, &settings).await
    }

    /// Starts service `name` on `port`, on this installation's broker, shards and registry, with
    /// `settings` on top; waits until it answers ready.
    async fn spawn_service(&self, name: &str, port: u16, settings: &[(&str, String)]) -> ServiceProcess {
        let child = std::process::Command::new(service_binary(name))
            .arg("serve")
            .env("HOOKWIRE__BROKER__URL", broker_url())
            .env("HOOKWIRE__BROKER__PREFIX", &self.prefix)
            .env(
                "HOOKWIRE__BROKER__DELIVERY_SHARDS",
                self.topology().shards().to_string(),
            )
            .env("HOOKWIRE__REGISTRY__URL", &self.registry)
            .env("HOOKWIRE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKWIRE__TELEMETRY__LOG_LEVEL", "warn")
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the {name} binary starts: {e}"));
        let process = ServiceProcess(child);
        self.wait_ready(&format!("http://127.0.0.1:{port}")).await;
        process
    }
}

/// The path of a service's binary, built beside the test binary.
pub fn service_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// A loopback port nobody listens on right now (for a service started as a separate process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Stops a service started as a separate process the way Kubernetes does (SIGTERM) and waits
/// until it has exited.
pub fn terminate(mut service: ServiceProcess) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM sent");
    service.wait().expect("the service exits")
}

/// A service started as a process by [`TestEnv::spawn_dispatcher_process`] and the like; killed when
/// dropped (a test that panics would otherwise leave it running, holding its output pipes).
pub struct ServiceProcess(std::process::Child);

impl std::ops::Deref for ServiceProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ServiceProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

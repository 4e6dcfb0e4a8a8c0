//! Services started as processes of their own (the binaries next to the test binary), so a
//! test can stop them with SIGTERM or SIGKILL.

use crate::{broker_url, TestEnv};

impl TestEnv {
    /// Starts a dispatcher as a separate process (the `hookwire-dispatcher` binary next to the
    /// test binary), so a test can SIGKILL it. Waits until it consumes. The process is killed
    /// when the handle is dropped, so a failing test leaves none behind.
    pub async fn spawn_dispatcher_process(&self, port: u16) -> DispatcherProcess {
        let child = std::process::Command::new(service_binary("hookwire-dispatcher"))
            .arg("serve")
            .env("HOOKWIRE__BROKER__URL", broker_url())
            .env("HOOKWIRE__BROKER__PREFIX", &self.prefix)
            .env(
                "HOOKWIRE__BROKER__DELIVERY_SHARDS",
                self.topology().shards().to_string(),
            )
            .env("HOOKWIRE__REGISTRY__URL", &self.registry)
            .env("HOOKWIRE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKWIRE__DELIVERY__DRAIN_TIMEOUT", "5s")
            .env("HOOKWIRE__DELIVERY__REPLICA_CENSUS_INTERVAL", "500ms")
            .env("HOOKWIRE__TELEMETRY__LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the dispatcher binary starts");
        let process = DispatcherProcess(child);
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

/// Stops a dispatcher started as a separate process the way Kubernetes does (SIGTERM) and waits
/// until it has exited.
pub fn terminate(mut service: DispatcherProcess) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM sent");
    service.wait().expect("the service exits")
}

/// A dispatcher started as a process by [`TestEnv::spawn_dispatcher_process`]; killed when
/// dropped (a test that panics would otherwise leave it running, holding its output pipes).
pub struct DispatcherProcess(std::process::Child);

impl std::ops::Deref for DispatcherProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for DispatcherProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for DispatcherProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

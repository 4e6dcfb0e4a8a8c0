//! Every log line the in-process services write during a test run, as JSON (the production
//! format), kept in memory so tests can search it, e.g. for secrets that must never be logged.

use std::io::Write;
use std::sync::{Mutex, Once, OnceLock};

static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
static INSTALL: Once = Once::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LINES
            .get_or_init(Default::default)
            .lock()
            .expect("log buffer")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once per test binary: debug for Hookwire's crates.
pub fn install() {
    INSTALL.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new("info,hookwire_registry=debug,hookwire_publisher=debug,hookwire_dispatcher=debug,hookwire_broker=debug,hookwire_http=debug");
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(filter)
            .with_writer(|| Capture)
            .try_init();
    });
}

/// Everything logged so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&LINES.get_or_init(Default::default).lock().expect("log buffer")).into_owned()
}

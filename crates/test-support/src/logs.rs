//! Every log line the in-process services write during a test run, as JSON (the production
//! format), kept in memory so tests can search it, e.g. for secrets that must never be logged;
//! and every span they record, exported to OpenTelemetry's in-memory exporter.

use std::io::Write;
use std::sync::{Mutex, Once, OnceLock};

static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
static INSTALL: Once = Once::new();
static SPANS: OnceLock<opentelemetry_sdk::trace::InMemorySpanExporter> = OnceLock::new();

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
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    INSTALL.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,hookwire_registry=debug,hookwire_publisher=debug,hookwire_dispatcher=debug,hookwire_broker=debug,hookwire_http=debug",
        );
        let exporter = SPANS.get_or_init(opentelemetry_sdk::trace::InMemorySpanExporter::default).clone();
        // Exported as each span ends, so a test sees them at once.
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        hookwire_core::telemetry::install_propagator();
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(|| Capture);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(hookwire_core::telemetry::otel_layer(&provider, "hookwire-tests"))
            .try_init();
        // The provider must outlive every test: it is leaked on purpose.
        std::mem::forget(provider);
    });
}

/// Everything logged so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&LINES.get_or_init(Default::default).lock().expect("log buffer")).into_owned()
}

/// Every span finished so far.
pub fn spans() -> Vec<opentelemetry_sdk::trace::SpanData> {
    SPANS
        .get()
        .map(|e| e.get_finished_spans().unwrap_or_default())
        .unwrap_or_default()
}

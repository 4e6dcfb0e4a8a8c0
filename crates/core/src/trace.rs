//! W3C Trace Context (`traceparent`): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
//! Hookwire carries the producer's trace from `POST /v1/events` through the broker to the
//! receiver; each hop that sends a request names itself as the parent with a new span id.

use std::fmt::Write as _;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl TraceParent {
    /// Parses a version-00 header; `None` when it is malformed or all-zero (the spec says to
    /// ignore such a header and start a new trace).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (Some("00"), Some(trace), Some(parent), Some(flags), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tp = Self {
            trace_id: hex::<16>(trace)?,
            parent_id: hex::<8>(parent)?,
            flags: hex::<1>(flags)?[0],
        };
        (tp.trace_id != [0; 16] && tp.parent_id != [0; 8]).then_some(tp)
    }

    /// A new trace, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: crate::id::random(),
            parent_id: crate::id::random(),
            flags: 1,
        }
    }

    /// The same trace with a new span as the parent (the hop that sends the next request).
    pub fn child(&self) -> Self {
        Self {
            parent_id: crate::id::random(),
            ..*self
        }
    }

    pub fn header(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        for b in self.trace_id {
            let _ = write!(s, "{b:02x}");
        }
        s.push('-');
        for b in self.parent_id {
            let _ = write!(s, "{b:02x}");
        }
        let _ = write!(s, "-{:02x}", self.flags);
        s
    }
}

/// The parent a span should continue: `header` when it is a valid `traceparent`. Nothing to do
/// for a span the subscriber does not record (below the log level): the propagator's extraction
/// showed in the dispatcher's profile of every delivery.
pub fn continue_from(span: &tracing::Span, header: Option<&str>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() {
        return;
    }
    let Some(header) = header.filter(|h| TraceParent::parse(h).is_some()) else {
        return;
    };
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), header.to_owned())]);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(cx);
}

/// The `traceparent` that names `span` as the parent of the next hop, when OpenTelemetry is
/// recording it; otherwise a new span id under `fallback`'s trace (or a new trace).
pub fn next_hop(span: &tracing::Span, fallback: Option<&TraceParent>) -> TraceParent {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !span.is_disabled() {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            return TraceParent {
                trace_id: sc.trace_id().to_bytes(),
                parent_id: sc.span_id().to_bytes(),
                flags: sc.trace_flags().to_u8(),
            };
        }
    }
    fallback.map_or_else(TraceParent::new_root, TraceParent::child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_continues_a_trace() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(h).unwrap();
        assert_eq!(tp.header(), h);
        let child = tp.child();
        assert_eq!(child.trace_id, tp.trace_id);
        assert_ne!(child.parent_id, tp.parent_id);
        assert!(child.header().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert_eq!(
            TraceParent::parse(&TraceParent::new_root().header()).map(|t| t.flags),
            Some(1)
        );
    }
}

//! `hookwire events publish`: one event, or a file of them through the batch endpoint.

use std::io::{IsTerminal as _, Write as _};

use clap::Subcommand;
use hookwire_api::events::{Accepted, BatchAccepted};
use serde_json::{json, Value};

use super::json_arg;
use crate::output;
use crate::Context;

/// Most events one batch request takes.
const BATCH: usize = 1000;

#[derive(Subcommand)]
pub enum Events {
    /// Publish one event (`--type` and `--data`), or every event of `--file`.
    Publish {
        #[arg(long = "type", required_unless_present = "file")]
        event_type: Option<String>,
        /// The event's data, as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Only this tenant's webhooks; default every tenant's.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        /// A file of events: a JSON array, or one JSON object per line.
        #[arg(long, conflicts_with = "event_type")]
        file: Option<std::path::PathBuf>,
    },
}

pub async fn run(ctx: &Context, command: Events) -> anyhow::Result<()> {
    let api = ctx.producer()?;
    let Events::Publish {
        event_type,
        data,
        tenant,
        subject,
        idempotency_key,
        file,
    } = command;
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let events = parse_file(&text)?;
        let total = events.len();
        let progress = std::io::stderr().is_terminal() && !ctx.json;
        let mut accepted = Vec::with_capacity(total);
        for chunk in events.chunks(BATCH) {
            let r: BatchAccepted = api.post("/v1/events:batch", &json!({ "events": chunk })).await?;
            accepted.extend(r.results);
            if progress {
                let width = 30 * accepted.len() / total.max(1);
                eprint!("\r[{:<30}] {}/{total}", "#".repeat(width), accepted.len());
                let _ = std::io::stderr().flush();
            }
        }
        if progress {
            eprintln!();
        }
        if ctx.json {
            return output::json(&BatchAccepted { results: accepted });
        }
        let matched: u64 = accepted.iter().map(|a| u64::from(a.matched)).sum();
        println!("Published {total} events; {matched} deliveries started.");
        return Ok(());
    }
    let mut event = json!({
        "type": event_type.expect("required by clap"),
        "data": json_arg("--data", &data)?,
    });
    for (k, v) in [
        ("tenant_id", tenant),
        ("subject", subject),
        ("idempotency_key", idempotency_key),
    ] {
        if let Some(v) = v {
            event[k] = Value::String(v);
        }
    }
    let a: Accepted = api.post("/v1/events", &event).await?;
    if ctx.json {
        return output::json(&a);
    }
    println!(
        "Published event {}: {} webhook(s){}.",
        a.event_id,
        a.matched,
        if a.duplicate {
            " (a duplicate: nothing sent again)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A JSON array of events, or one event per non-blank line.
fn parse_file(text: &str) -> anyhow::Result<Vec<Value>> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the file is not a JSON array of events: {e}"));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("line {}: not a JSON event: {e}", n + 1)))
        .collect()
}

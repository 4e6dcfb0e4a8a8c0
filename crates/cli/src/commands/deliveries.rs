//! `hookwire deliveries …`: the delivery log.

use std::collections::HashSet;
use std::time::Duration;

use clap::{Args, Subcommand};
use hookwire_api::deliveries::{Delivery, DeliveryDetail, RetryAccepted};
use hookwire_api::Page;
use serde_json::json;

use super::text;
use crate::output::{self, opt, opt_time, time};
use crate::Context;
use hookwire_client::with_query;

#[derive(Subcommand)]
pub enum Deliveries {
    /// The newest deliveries, filtered.
    List {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One delivery with every attempt and the payload sent.
    Get { id: String },
    /// Attempt a delivery again now.
    Retry { id: String },
    /// Follow new deliveries as they are logged (Ctrl-C to stop).
    Tail {
        #[command(flatten)]
        filter: Filter,
    },
}

#[derive(Args, Clone)]
pub struct Filter {
    /// waiting, pending, retrying, success, failed or exhausted.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    event_type: Option<String>,
    #[arg(long)]
    webhook: Option<String>,
    /// RFC 3339, e.g. 2026-12-07T10:00:00Z.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
}

impl Filter {
    fn query(&self, limit: u32, since: Option<String>) -> String {
        with_query(
            "/v1/deliveries",
            &[
                ("status", self.status.clone()),
                ("event_type", self.event_type.clone()),
                ("webhook_id", self.webhook.clone()),
                ("since", since.or_else(|| self.since.clone())),
                ("until", self.until.clone()),
                ("limit", Some(limit.to_string())),
            ],
        )
    }
}

fn row(d: &Delivery) -> Vec<String> {
    vec![
        time(&d.created_at),
        d.id.to_string(),
        text(&d.status),
        d.event_type.clone(),
        opt(&d.response_status),
        d.duration_ms.map_or_else(|| "-".into(), |ms| format!("{ms} ms")),
        d.attempts.to_string(),
    ]
}

const HEADINGS: [&str; 7] = ["CREATED", "ID", "STATUS", "TYPE", "RESPONSE", "DURATION", "ATTEMPTS"];

pub async fn run(ctx: &Context, command: Deliveries) -> anyhow::Result<()> {
    let api = ctx.customer()?;
    match command {
        Deliveries::List { filter, limit } => {
            let page: Page<Delivery> = api.get(&filter.query(limit, None)).await?;
            if ctx.json {
                return output::json(&page);
            }
            output::table(&HEADINGS, &page.results.iter().map(row).collect::<Vec<_>>());
            let more = if page.count_exact == Some(false) {
                "more than "
            } else {
                ""
            };
            println!("({} of {more}{})", page.results.len(), page.count);
        }
        Deliveries::Get { id } => {
            let d: DeliveryDetail = api.get(&format!("/v1/deliveries/{id}")).await?;
            if ctx.json {
                return output::json(&d);
            }
            output::fields(&[
                ("id", d.id.to_string()),
                ("status", text(&d.status)),
                ("waiting_for", opt(&d.waiting_for)),
                ("event", format!("{} ({})", d.event_type, d.event_id)),
                ("webhook", d.webhook_id.to_string()),
                ("created_at", time(&d.created_at)),
                ("next_retry_at", opt_time(&d.next_retry_at)),
                ("response_body", opt(&d.response_body)),
            ]);
            println!();
            let attempts: Vec<Vec<String>> = d
                .attempts
                .iter()
                .map(|a| {
                    vec![
                        a.attempt.to_string(),
                        time(&a.attempted_at),
                        opt(&a.response_status),
                        format!("{} ms", a.duration_ms),
                        opt(&a.error),
                    ]
                })
                .collect();
            output::table(&["#", "AT", "STATUS", "DURATION", "ERROR"], &attempts);
            println!("\npayload:\n{}", serde_json::to_string_pretty(&d.payload)?);
        }
        Deliveries::Retry { id } => {
            let r: RetryAccepted = api.post(&format!("/v1/deliveries/{id}/retry"), &json!({})).await?;
            if ctx.json {
                return output::json(&r);
            }
            println!("Retry queued for delivery {} ({}).", r.delivery_id, text(&r.status));
        }
        Deliveries::Tail { filter } => tail(ctx, &api, filter).await?,
    }
    Ok(())
}

/// Prints each delivery once, oldest first, as new ones are logged; a line per JSON object with
/// `--json`.
async fn tail(ctx: &Context, api: &hookwire_client::Client, filter: Filter) -> anyhow::Result<()> {
    let mut seen: HashSet<uuid::Uuid> = HashSet::new();
    let mut since = filter.since.clone().or_else(|| Some(chrono::Utc::now().to_rfc3339()));
    if !ctx.json {
        output::table(&HEADINGS, &[]);
    }
    loop {
        let page: Page<Delivery> = api.get(&filter.query(100, since.clone())).await?;
        for d in page.results.iter().rev().filter(|d| seen.insert(d.id)) {
            if ctx.json {
                println!("{}", serde_json::to_string(d)?);
            } else {
                println!("{}", row(d).join("  "));
            }
            // Within the last second, so a delivery logged late in the same second is not missed.
            since = Some((d.created_at - chrono::Duration::seconds(1)).to_rfc3339());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

//! `hookwire webhooks …`: a tenant's webhooks.

use clap::Subcommand;
use hookwire_api::webhooks::{Recovered, TestSent, Webhook};
use hookwire_api::Page;
use serde_json::{json, Value};

use crate::output::{self, opt, opt_time, time};
use crate::Context;
use hookwire_client::with_query;

#[derive(Subcommand)]
pub enum Webhooks {
    /// List the tenant's webhooks.
    List {
        /// Only those subscribed to patterns that overlap this one.
        #[arg(long)]
        event_type: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One webhook, with its signing secret.
    Get {
        id: String,
    },
    /// Subscribe a URL to events.
    Create {
        #[arg(long)]
        url: String,
        /// Event patterns, e.g. `person.created`, `person.*`, `*` (repeat or comma-separate).
        #[arg(long, required = true, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// `subject`: events with the same subject arrive in order, one after another.
        #[arg(long, value_parser = ["none", "subject"])]
        ordering: Option<String>,
    },
    /// Change a webhook's URL, events, name, description or ordering.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_parser = ["none", "subject"])]
        ordering: Option<String>,
    },
    Delete {
        id: String,
    },
    /// Start delivering again.
    Enable {
        id: String,
    },
    /// Stop delivering until enabled.
    Disable {
        id: String,
    },
    /// A new signing secret; the old one keeps signing for the overlap period.
    RotateSecret {
        id: String,
    },
    /// Send a test event.
    Test {
        id: String,
        /// A type the webhook takes; default one of them.
        #[arg(long)]
        event_type: Option<String>,
    },
    /// Send again every failed delivery since a time (RFC 3339).
    Recover {
        id: String,
        #[arg(long)]
        since: String,
    },
}

pub async fn run(ctx: &Context, command: Webhooks) -> anyhow::Result<()> {
    let api = ctx.customer()?;
    let show = |w: &Webhook| -> anyhow::Result<()> {
        if ctx.json {
            return output::json(w);
        }
        output::fields(&[
            ("id", w.id.to_string()),
            ("url", w.url.clone()),
            ("name", w.name.clone()),
            ("events", w.events.join(", ")),
            ("active", w.is_active.to_string()),
            ("ordering", w.ordering.as_str().to_owned()),
            ("disabled_reason", opt(&w.disabled_reason)),
            ("failure_count", w.failure_count.to_string()),
            ("last_success_at", opt_time(&w.last_success_at)),
            ("secret", opt(&w.secret)),
            ("created_at", time(&w.created_at)),
        ]);
        Ok(())
    };
    match command {
        Webhooks::List { event_type, limit } => {
            let path = with_query(
                "/v1/webhooks",
                &[("event_type", event_type), ("limit", Some(limit.to_string()))],
            );
            let page: Page<Webhook> = api.get(&path).await?;
            if ctx.json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|w| {
                    vec![
                        w.id.to_string(),
                        w.url.clone(),
                        w.events.join(","),
                        if w.is_active {
                            "active".into()
                        } else {
                            "disabled".into()
                        },
                        w.failure_count.to_string(),
                    ]
                })
                .collect();
            output::table(&["ID", "URL", "EVENTS", "STATE", "FAILURES"], &rows);
        }
        Webhooks::Get { id } => show(&api.get(&format!("/v1/webhooks/{id}")).await?)?,
        Webhooks::Create {
            url,
            events,
            name,
            description,
            ordering,
        } => {
            let mut body = json!({ "url": url, "events": events });
            set(&mut body, "name", name);
            set(&mut body, "description", description);
            set(&mut body, "ordering", ordering);
            show(&api.post("/v1/webhooks", &body).await?)?;
        }
        Webhooks::Update {
            id,
            url,
            events,
            name,
            description,
            ordering,
        } => {
            let mut body = json!({});
            set(&mut body, "url", url);
            set(&mut body, "name", name);
            set(&mut body, "description", description);
            set(&mut body, "ordering", ordering);
            if let Some(events) = events {
                body["events"] = json!(events);
            }
            show(&api.patch(&format!("/v1/webhooks/{id}"), &body).await?)?;
        }
        Webhooks::Delete { id } => {
            api.delete(&format!("/v1/webhooks/{id}")).await?;
            if !ctx.json {
                println!("Deleted webhook {id}.");
            }
        }
        Webhooks::Enable { id } => show(
            &api.patch(&format!("/v1/webhooks/{id}"), &json!({"is_active": true}))
                .await?,
        )?,
        Webhooks::Disable { id } => show(
            &api.patch(&format!("/v1/webhooks/{id}"), &json!({"is_active": false}))
                .await?,
        )?,
        Webhooks::RotateSecret { id } => show(
            &api.post(&format!("/v1/webhooks/{id}/rotate-secret"), &json!({}))
                .await?,
        )?,
        Webhooks::Test { id, event_type } => {
            let mut body = json!({});
            set(&mut body, "event_type", event_type);
            let sent: TestSent = api.post(&format!("/v1/webhooks/{id}/test"), &body).await?;
            if ctx.json {
                return output::json(&sent);
            }
            println!(
                "Sent a test {} (event {}); delivery {}.",
                sent.event_type, sent.event_id, sent.delivery_id
            );
        }
        Webhooks::Recover { id, since } => {
            let done: Recovered = api
                .post(&format!("/v1/webhooks/{id}/recover"), &json!({ "since": since }))
                .await?;
            if ctx.json {
                return output::json(&done);
            }
            println!(
                "Sending {} failed deliveries again{}.",
                done.retried,
                if done.more { "; more remain: run it again" } else { "" }
            );
        }
    }
    Ok(())
}

/// Sets `body[key]` when `value` is given.
pub fn set(body: &mut Value, key: &str, value: Option<String>) {
    if let Some(v) = value {
        body[key] = Value::String(v);
    }
}

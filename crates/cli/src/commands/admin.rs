//! `hookwire admin …` (the admin token) and `hookwire portal` (a tenant's key).

use clap::Subcommand;
use hookwire_api::api_keys::ApiKey;
use hookwire_api::overview::Overview;
use hookwire_api::portal::PortalSession;
use hookwire_api::tenants::Tenant;
use hookwire_api::Page;
use serde_json::json;

use super::json_arg;
use super::webhooks::set;
use crate::output::{self, opt_time, time};
use crate::Context;
use hookwire_client::with_query;

#[derive(Subcommand)]
pub enum Admin {
    #[command(subcommand)]
    Tenants(Tenants),
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeys),
    #[command(subcommand, name = "event-types")]
    EventTypes(AdminEventTypes),
    /// A one-time link to a tenant's portal.
    Portal {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        read_only: bool,
    },
    /// Throughput, queue depths, failing and slow webhooks.
    Overview,
    #[command(subcommand, name = "producer-tokens")]
    ProducerTokens(ProducerTokens),
    /// Every change, newest first.
    AuditLog(AuditArgs),
}

#[derive(Subcommand)]
pub enum ProducerTokens {
    List,
    /// A token for one producing service (shown once).
    Create {
        name: String,
        /// Patterns of the types it may publish (default any).
        #[arg(long, value_delimiter = ',')]
        event_types: Option<Vec<String>>,
        /// The tenants it may publish for (default any).
        #[arg(long = "tenant", value_delimiter = ',')]
        tenant_ids: Option<Vec<String>>,
    },
    Revoke {
        id: String,
    },
}

/// Filters of the audit log.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// One tenant's changes (the admin's log only).
    #[arg(long)]
    tenant: Option<String>,
    /// Changes to one resource (a webhook's or key's id, an event type).
    #[arg(long)]
    resource: Option<String>,
    /// One action, e.g. webhook.updated.
    #[arg(long)]
    action: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Prints a page of the audit log.
pub async fn audit_log(
    ctx: &Context,
    api: &hookwire_client::Client,
    path: &str,
    args: AuditArgs,
) -> anyhow::Result<()> {
    let path = with_query(
        path,
        &[
            ("tenant_id", args.tenant),
            ("resource_id", args.resource),
            ("action", args.action),
            ("limit", Some(args.limit.to_string())),
        ],
    );
    let page: Page<hookwire_api::audit::AuditEntry> = api.get(&path).await?;
    if ctx.json {
        return output::json(&page);
    }
    let rows: Vec<Vec<String>> = page
        .results
        .iter()
        .map(|e| {
            let fields: Vec<&String> = e.changes.as_object().map(|c| c.keys().collect()).unwrap_or_default();
            let who = format!("{} {}", e.actor.kind, e.actor.name.clone().unwrap_or_default());
            let what: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
            vec![
                time(&e.at),
                who.trim().to_owned(),
                e.action.clone(),
                e.resource_id.clone(),
                what.join(","),
            ]
        })
        .collect();
    output::table(&["AT", "WHO", "ACTION", "RESOURCE", "FIELDS"], &rows);
    Ok(())
}

#[derive(Subcommand)]
pub enum Tenants {
    List,
    Create {
        name: String,
    },
    /// Delete a tenant with its keys, webhooks and delivery log.
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ApiKeys {
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// A new key for a tenant (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// webhooks:read, webhooks:write (default both).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum AdminEventTypes {
    Create {
        value: String,
        #[arg(long)]
        label: String,
        #[arg(long)]
        description: Option<String>,
        /// A JSON Schema the events' data must follow.
        #[arg(long)]
        schema: Option<String>,
    },
    Archive {
        value: String,
    },
}

pub async fn run(ctx: &Context, command: Admin) -> anyhow::Result<()> {
    let api = ctx.admin()?;
    match command {
        Admin::Tenants(Tenants::List) => {
            let page: Page<Tenant> = api.get("/v1/admin/tenants?limit=100").await?;
            if ctx.json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|t| vec![t.id.to_string(), t.name.clone(), time(&t.created_at)])
                .collect();
            output::table(&["ID", "NAME", "CREATED"], &rows);
        }
        Admin::Tenants(Tenants::Create { name }) => {
            let t: Tenant = api.post("/v1/admin/tenants", &json!({ "name": name })).await?;
            if ctx.json {
                return output::json(&t);
            }
            println!("Created tenant {} ({}).", t.name, t.id);
        }
        Admin::Tenants(Tenants::Delete { id }) => {
            api.delete(&format!("/v1/admin/tenants/{id}")).await?;
            println!("Deleted tenant {id}.");
        }
        Admin::ApiKeys(ApiKeys::List { tenant }) => {
            let page: Page<ApiKey> = api
                .get(&with_query(
                    "/v1/admin/api-keys",
                    &[("tenant_id", tenant), ("limit", Some("100".into()))],
                ))
                .await?;
            if ctx.json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|k| {
                    vec![
                        k.id.to_string(),
                        k.tenant_id.to_string(),
                        format!("{}…", k.key_prefix),
                        k.scopes.join(","),
                        format!("{}/{}", k.webhook_count, k.max_webhooks),
                        opt_time(&k.last_used_at),
                    ]
                })
                .collect();
            output::table(&["ID", "TENANT", "KEY", "SCOPES", "WEBHOOKS", "LAST USED"], &rows);
        }
        Admin::ApiKeys(ApiKeys::Create { tenant, scopes }) => {
            let mut body = json!({ "tenant_id": tenant });
            if let Some(scopes) = scopes {
                body["scopes"] = json!(scopes);
            }
            let k: ApiKey = api.post("/v1/admin/api-keys", &body).await?;
            if ctx.json {
                return output::json(&k);
            }
            println!("{}", k.key.unwrap_or_default());
            eprintln!("The key is shown once: store it now.");
        }
        Admin::ApiKeys(ApiKeys::Revoke { id }) => {
            api.delete(&format!("/v1/admin/api-keys/{id}")).await?;
            println!("Revoked key {id}.");
        }
        Admin::EventTypes(AdminEventTypes::Create {
            value,
            label,
            description,
            schema,
        }) => {
            let mut body = json!({ "value": value, "label": label });
            set(&mut body, "description", description);
            if let Some(schema) = schema {
                body["schema"] = json_arg("--schema", &schema)?;
            }
            let t: serde_json::Value = api.post("/v1/admin/event-types", &body).await?;
            output::json(&t)?;
        }
        Admin::EventTypes(AdminEventTypes::Archive { value }) => {
            api.delete(&format!("/v1/admin/event-types/{value}")).await?;
            println!("Archived {value}.");
        }
        Admin::Portal { tenant, read_only } => {
            let s: PortalSession = api
                .post(
                    "/v1/admin/portal-sessions",
                    &json!({ "tenant_id": tenant, "read_only": read_only }),
                )
                .await?;
            print_portal(ctx, &s)?;
        }
        Admin::ProducerTokens(ProducerTokens::List) => {
            let page: Page<hookwire_api::producer_tokens::ProducerToken> =
                api.get("/v1/admin/producer-tokens?limit=100").await?;
            if ctx.json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.name.clone(),
                        format!("{}…", t.token_prefix),
                        t.event_types.as_ref().map_or("any".into(), |p| p.join(",")),
                        t.tenant_ids.as_ref().map_or("any".into(), |t| t.len().to_string()),
                    ]
                })
                .collect();
            output::table(&["ID", "NAME", "TOKEN", "TYPES", "TENANTS"], &rows);
        }
        Admin::ProducerTokens(ProducerTokens::Create {
            name,
            event_types,
            tenant_ids,
        }) => {
            let mut body = json!({ "name": name });
            if let Some(p) = event_types {
                body["event_types"] = json!(p);
            }
            if let Some(t) = tenant_ids {
                body["tenant_ids"] = json!(t);
            }
            let t: hookwire_api::producer_tokens::ProducerToken = api.post("/v1/admin/producer-tokens", &body).await?;
            if ctx.json {
                return output::json(&t);
            }
            println!("{}", t.token.unwrap_or_default());
            eprintln!("The token is shown once: store it now.");
        }
        Admin::ProducerTokens(ProducerTokens::Revoke { id }) => {
            api.delete(&format!("/v1/admin/producer-tokens/{id}")).await?;
            println!("Revoked producer token {id}.");
        }
        Admin::AuditLog(args) => audit_log(ctx, &api, "/v1/admin/audit-log", args).await?,
        Admin::Overview => {
            let o: Overview = api.get("/v1/admin/overview").await?;
            if ctx.json {
                return output::json(&o);
            }
            output::fields(&[
                ("deliveries/s", format!("{:.1}", o.deliveries_per_second)),
                ("succeeded/s", format!("{:.1}", o.succeeded_per_second)),
                ("failed/s", format!("{:.1}", o.failed_per_second)),
                ("failing webhooks", o.failing.count.to_string()),
                ("disabled webhooks", o.disabled.count.to_string()),
            ]);
            if let Some(queues) = &o.queues {
                println!();
                let rows: Vec<Vec<String>> = queues
                    .iter()
                    .map(|q| vec![q.queue.clone(), q.messages.to_string()])
                    .collect();
                output::table(&["QUEUE", "MESSAGES"], &rows);
            }
        }
    }
    Ok(())
}

/// `hookwire portal`: a link to the calling key's tenant's portal.
pub async fn portal(ctx: &Context, read_only: bool) -> anyhow::Result<()> {
    let s: PortalSession = ctx
        .customer()?
        .post("/v1/portal-sessions", &json!({ "read_only": read_only }))
        .await?;
    print_portal(ctx, &s)
}

fn print_portal(ctx: &Context, s: &PortalSession) -> anyhow::Result<()> {
    if ctx.json {
        return output::json(s);
    }
    println!("{}", s.url);
    eprintln!(
        "Opens once, until {}{}.",
        time(&s.expires_at),
        if s.read_only { ", read-only" } else { "" }
    );
    Ok(())
}

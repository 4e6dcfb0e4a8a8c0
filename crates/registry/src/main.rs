//! `hookwire-registry`: serve the API, apply migrations, or run an admin task.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookwire_api as api;
use hookwire_core::config::Secrets;
use hookwire_registry::db::models::EventType;
use hookwire_registry::notices::Notices;
use hookwire_registry::routes::{admin_tokens, api_keys, erasure, event_types, tenants};
use hookwire_registry::{db, Application, Config};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "hookwire-registry",
    version,
    about = "Hookwire management API and delivery log"
)]
struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables still win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and consume the ledger queue.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Administrative tasks, printed as JSON.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant.
    CreateTenant {
        #[arg(long)]
        name: String,
    },
    /// Create a named admin token; prints it once.
    CreateAdminToken {
        #[arg(long)]
        name: String,
    },
    /// Create an API key for a tenant; prints the key once.
    CreateApiKey {
        #[arg(long)]
        tenant_id: uuid::Uuid,
        /// Comma-separated scopes (default: webhooks:read,webhooks:write).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[arg(long)]
        max_webhooks: Option<u32>,
        #[arg(long)]
        webhooks_disabled: bool,
    },
    /// List every tenant.
    ListTenants,
    /// Rename a tenant.
    RenameTenant {
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Delete a tenant with its keys and webhooks; the registry's retention task deletes its
    /// delivery log. Publishers and dispatchers are told at once, as by the HTTP API.
    DeleteTenant { id: String },
    /// Erase the payloads of one event or of every event with a subject (a data-protection
    /// request), as `POST /v1/admin/events/expunge`; dispatchers are told at once.
    ExpungeEvents {
        #[arg(long, conflicts_with = "subject", required_unless_present = "subject")]
        event_id: Option<uuid::Uuid>,
        #[arg(long)]
        subject: Option<String>,
        /// Only this tenant's events.
        #[arg(long)]
        tenant_id: Option<uuid::Uuid>,
    },
    /// List API keys (never the keys themselves), with how many webhooks each created.
    ListApiKeys {
        #[arg(long)]
        tenant_id: Option<String>,
        #[arg(long)]
        include_revoked: bool,
    },
    /// Change an API key's scopes, webhooks flag or webhook limit.
    UpdateApiKey {
        id: String,
        /// Comma-separated scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[arg(long)]
        max_webhooks: Option<u32>,
        #[arg(long)]
        webhooks_enabled: Option<bool>,
    },
    /// Revoke an API key: refused from now on; its webhooks stay.
    RevokeApiKey { id: String },
    /// List the event-type catalog with each type's schema.
    ListEventTypes {
        #[arg(long)]
        include_archived: bool,
    },
    /// Add an event type to the catalog.
    AddEventType {
        #[arg(long)]
        value: String,
        #[arg(long)]
        label: String,
        #[arg(long)]
        description: Option<String>,
        /// A JSON Schema enforced on events of this type.
        #[arg(long)]
        schema: Option<String>,
        /// An example of the events' `data` (JSON), valid against the schema.
        #[arg(long)]
        example: Option<String>,
    },
    /// Change a catalog type's label, description, schema (`--schema null` lifts it) or example
    /// (`--example null` removes it), or archive it (`--archived true`; still published and
    /// delivered, no longer subscribable).
    UpdateEventType {
        value: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        schema: Option<String>,
        #[arg(long)]
        example: Option<String>,
        #[arg(long)]
        archived: Option<bool>,
    },
}

/// Scopes given by name (`webhooks:read`).
fn scopes_arg(given: Option<Vec<String>>) -> anyhow::Result<Option<Vec<api::api_keys::Scope>>> {
    given
        .map(|names| serde_json::from_value(json!(names)))
        .transpose()
        .context("--scopes takes webhooks:read and/or webhooks:write")
}

/// Runs `op` on `input` once its JSON passes the schema a request's body would have to: a
/// command's options are held to the same rules as the API's requests.
async fn checked<T, R>(
    input: T,
    op: impl AsyncFnOnce(T) -> Result<R, hookwire_http::ApiError>,
) -> Result<R, hookwire_http::ApiError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + utoipa::ToSchema + 'static,
{
    op(hookwire_http::typed::checked(input)?).await
}

/// What a command answers, as the JSON it prints.
fn printed<T: serde::Serialize>(answer: Result<T, hookwire_http::ApiError>) -> Result<Value, hookwire_http::ApiError> {
    answer.map(|v| serde_json::to_value(v).expect("an API type serializes"))
}

/// An option given as JSON (`--schema`, `--example`): `Some(None)` for `null`.
fn json_arg(name: &str, given: Option<String>) -> anyhow::Result<Option<Option<Value>>> {
    given
        .map(|s| serde_json::from_str::<Value>(&s).map(|v| (!v.is_null()).then_some(v)))
        .transpose()
        .with_context(|| format!("--{name} is not JSON"))
}

/// Tells publishers and dispatchers of a change at once, as the API does. When RabbitMQ cannot be
/// reached within 5 s they learn it at their next resync (`registry.resync_interval`), which the
/// command says.
async fn notify<F: std::future::Future<Output = ()>>(config: &Config, send: impl FnOnce(Notices) -> F) {
    let cancel = tokio_util::sync::CancellationToken::new();
    let topology = config.broker.topology();
    let link = hookwire_broker::Link::start(
        config.broker.clone(),
        "hookwire-registry admin".into(),
        topology.clone(),
        cancel.clone(),
    );
    if link.wait_connected(std::time::Duration::from_secs(5)).await {
        send(Notices::new(link, &topology, config.webhooks.default_retry_policy)).await;
    } else {
        eprintln!("RabbitMQ is not reachable: publishers and dispatchers pick the change up at their next resync");
    }
    cancel.cancel();
}

/// A type added or changed: publishers are told, and the command prints it.
async fn announced(
    config: &Config,
    added_or_changed: Result<EventType, hookwire_http::ApiError>,
) -> Result<Value, hookwire_http::ApiError> {
    let t = added_or_changed?;
    notify(config, async |n| n.event_type(t.catalog_entry()).await).await;
    printed(Ok(event_types::event_type_view(&t)))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    config.runtime.run(run(cli, config))?
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let _telemetry = hookwire_core::telemetry::init(&config.telemetry, "hookwire-registry")?;
    match cli.command {
        Command::Migrate => db::migrate(&config.database.url).await,
        Command::Serve => {
            let secrets = Secrets::from_env(config.profile, hookwire_core::config::Role::Registry)?;
            let app = Application::build(config, secrets).await?;
            tracing::info!(port = app.port(), "hookwire-registry listening");
            app.run_until_stopped(hookwire_core::shutdown::signal()).await
        }
        Command::Admin(task) => {
            let pool = db::pool(&config.database)?;
            let mut conn = pool.get().await.context("connecting to PostgreSQL")?;
            let by = hookwire_registry::audit::By::command();
            let result = match task {
                AdminCommand::CreateAdminToken { name } => printed(
                    checked(api::admin_tokens::AdminTokenIn { name }, async |b| {
                        admin_tokens::admin_token(&mut conn, &by, b).await
                    })
                    .await,
                ),
                AdminCommand::CreateTenant { name } => printed(
                    checked(
                        api::tenants::TenantIn {
                            name,
                            max_deliveries_per_second: None,
                        },
                        async |b| tenants::tenant(&mut conn, &by, b).await,
                    )
                    .await,
                ),
                AdminCommand::CreateApiKey {
                    tenant_id,
                    scopes,
                    max_webhooks,
                    webhooks_disabled,
                } => {
                    let given = api::api_keys::ApiKeyIn {
                        tenant_id,
                        scopes: scopes_arg(scopes)?,
                        webhooks_enabled: Some(!webhooks_disabled),
                        max_webhooks,
                    };
                    printed(
                        checked(given, async |b| {
                            api_keys::api_key(&mut conn, &by, b, config.webhooks.default_max_webhooks).await
                        })
                        .await,
                    )
                }
                AdminCommand::ListTenants => printed(tenants::all_tenants(&mut conn).await),
                AdminCommand::RenameTenant { id, name } => printed(
                    checked(
                        api::tenants::TenantPatch {
                            name: Some(name),
                            ..Default::default()
                        },
                        async |b| tenants::update_tenant_fields(&mut conn, &by, &id, b).await,
                    )
                    .await,
                ),
                AdminCommand::DeleteTenant { id } => {
                    let deleted = tenants::delete_tenant(&mut conn, &by, &id).await;
                    if let Ok(webhooks) = &deleted {
                        notify(&config, async |n| n.deleted(webhooks).await).await;
                    }
                    deleted.map(|webhooks| json!({ "deleted": id, "webhooks_deleted": webhooks }))
                }
                AdminCommand::ExpungeEvents {
                    event_id,
                    subject,
                    tenant_id,
                } => {
                    let given = match (event_id, subject) {
                        (Some(event_id), _) => {
                            api::erasure::ExpungeIn::Event(api::erasure::ExpungeEvent { event_id, tenant_id })
                        }
                        (None, subject) => api::erasure::ExpungeIn::Subject(api::erasure::ExpungeSubject {
                            subject: subject.unwrap_or_default(),
                            tenant_id,
                        }),
                    };
                    let erased = checked(given, async |b| erasure::expunge(&mut conn, &by, b).await).await;
                    if let Ok(erased) = &erased {
                        notify(&config, async |n| n.expunged(&erased.events).await).await;
                    }
                    printed(erased.map(|e| erasure::expunged_view(&e)))
                }
                AdminCommand::ListApiKeys {
                    tenant_id,
                    include_revoked,
                } => printed(api_keys::all_api_keys(&mut conn, tenant_id.as_deref(), include_revoked).await),
                AdminCommand::UpdateApiKey {
                    id,
                    scopes,
                    max_webhooks,
                    webhooks_enabled,
                } => {
                    let given = api::api_keys::ApiKeyPatch {
                        scopes: scopes_arg(scopes)?,
                        webhooks_enabled,
                        max_webhooks,
                    };
                    printed(checked(given, async |b| api_keys::update_key(&mut conn, &by, &id, b).await).await)
                }
                AdminCommand::RevokeApiKey { id } => printed(api_keys::revoke_key(&mut conn, &by, &id).await),
                AdminCommand::ListEventTypes { include_archived } => {
                    printed(event_types::all_event_types(&mut conn, include_archived).await)
                }
                AdminCommand::AddEventType {
                    value,
                    label,
                    description,
                    schema,
                    example,
                } => {
                    let given = api::event_types::EventTypeIn {
                        value,
                        label,
                        description,
                        schema: json_arg("schema", schema)?.flatten(),
                        example: json_arg("example", example)?.flatten(),
                    };
                    announced(
                        &config,
                        checked(given, async |b| event_types::event_type(&mut conn, &by, b).await).await,
                    )
                    .await
                }
                AdminCommand::UpdateEventType {
                    value,
                    label,
                    description,
                    schema,
                    example,
                    archived,
                } => {
                    let given = api::event_types::EventTypePatch {
                        label,
                        description: description.map(Some),
                        schema: json_arg("schema", schema)?,
                        example: json_arg("example", example)?,
                        archived,
                    };
                    announced(
                        &config,
                        checked(given, async |b| {
                            event_types::update_event_type(&mut conn, &by, &value, b).await
                        })
                        .await,
                    )
                    .await
                }
            };
            match result {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(())
                }
                Err(hookwire_http::ApiError::Validation(errors)) => {
                    for e in errors {
                        eprintln!("{}: {}", e.field, e.message);
                    }
                    std::process::exit(2)
                }
                // With its cause (a database behind the binary's migrations says so).
                Err(e) => Err(anyhow::Error::new(e)),
            }
        }
    }
}

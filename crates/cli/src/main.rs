//! `hookwire`: the management API from a terminal, and `hookwire listen`, which relays a
//! temporary webhook's signed deliveries to a local receiver (docs/cli.md).

mod commands;
mod output;
mod profiles;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::commands::{admin, deliveries, event_types, events, listen, webhooks};
use hookwire_client::{ApiError, Auth, Client};

#[derive(Parser)]
#[command(
    name = "hookwire",
    version,
    about = "Hookwire from a terminal: webhooks, deliveries, events, and `listen`"
)]
struct Cli {
    /// The registry (management API). Default http://127.0.0.1:8080.
    #[arg(long, global = true, env = "HOOKWIRE_URL")]
    registry_url: Option<String>,
    /// A tenant's API key, for the customer commands.
    #[arg(long, global = true, env = "HOOKWIRE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The publisher (event ingest). Default http://127.0.0.1:8081.
    #[arg(long, global = true, env = "HOOKWIRE_PRODUCER_URL")]
    producer_url: Option<String>,
    /// A producer token, for `events publish`.
    #[arg(long, global = true, env = "HOOKWIRE_PRODUCER_TOKEN", hide_env_values = true)]
    producer_token: Option<String>,
    /// The admin token, for `admin …`.
    #[arg(long, global = true, env = "HOOKWIRE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The profile of the config file that fills what flags and environment leave unset.
    #[arg(long, global = true, env = "HOOKWIRE_PROFILE", default_value = "default")]
    profile: String,
    /// Print JSON (the API's bodies) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Save endpoints and credentials as a named profile (owner-only file).
    Login(LoginArgs),
    /// The tenant's webhooks: list, create, update, enable, disable, rotate, test, recover.
    #[command(subcommand)]
    Webhooks(webhooks::Webhooks),
    /// The delivery log: list, get, retry, and tail as it grows.
    #[command(subcommand)]
    Deliveries(deliveries::Deliveries),
    /// The event-type catalog.
    #[command(subcommand, name = "event-types")]
    EventTypes(event_types::EventTypes),
    /// Publish events (producer token).
    #[command(subcommand)]
    Events(events::Events),
    /// A one-time link to this tenant's portal in the browser.
    Portal {
        /// A link that can look but not change anything.
        #[arg(long)]
        read_only: bool,
    },
    /// Relay a temporary webhook's deliveries to a local URL.
    Listen(listen::ListenArgs),
    /// The tenant's changes, newest first: who, what, which fields.
    AuditLog(admin::AuditArgs),
    /// Operator commands (admin token): tenants, API keys, event types, portal links, overview.
    #[command(subcommand)]
    Admin(admin::Admin),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(clap::Args)]
struct LoginArgs {
    /// Check the API key (or the admin token) against the registry before saving.
    #[arg(long)]
    no_check: bool,
}

/// Endpoints and credentials, as the flags, the environment and the profile settle them.
pub struct Context {
    pub url: String,
    pub api_key: Option<String>,
    pub producer_url: String,
    pub producer_token: Option<String>,
    pub admin_token: Option<String>,
    pub json: bool,
}

impl Context {
    /// The registry with the tenant's API key.
    pub fn customer(&self) -> anyhow::Result<Client> {
        let key = self.api_key.clone().ok_or_else(|| {
            anyhow::anyhow!("no API key: pass --api-key, set HOOKWIRE_API_KEY or run `hookwire login`")
        })?;
        Ok(Client::new(&self.url, Auth::ApiKey(key)).with_user_agent(USER_AGENT))
    }

    /// The registry with the admin token.
    pub fn admin(&self) -> anyhow::Result<Client> {
        let token = self.admin_token.clone().ok_or_else(|| {
            anyhow::anyhow!("no admin token: pass --admin-token, set HOOKWIRE_ADMIN_TOKEN or run `hookwire login`")
        })?;
        Ok(Client::new(&self.url, Auth::Bearer(token)).with_user_agent(USER_AGENT))
    }

    /// The publisher with the producer token.
    pub fn producer(&self) -> anyhow::Result<Client> {
        let token = self.producer_token.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no producer token: pass --producer-token, set HOOKWIRE_PRODUCER_TOKEN or run `hookwire login`"
            )
        })?;
        Ok(Client::new(&self.producer_url, Auth::Bearer(token)).with_user_agent(USER_AGENT))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<ApiError>().map_or(1, exit_code);
            std::process::ExitCode::from(code)
        }
    }
}

/// What the CLI calls itself in `User-Agent`.
const USER_AGENT: &str = concat!("hookwire-cli/", env!("CARGO_PKG_VERSION"));

/// The process's exit code for a failed call (docs/cli.md).
fn exit_code(e: &ApiError) -> u8 {
    match e.status() {
        Some(404) => 3,
        Some(401 | 403) => 4,
        Some(400 | 409 | 413 | 422) => 5,
        Some(429 | 503) | None => 6,
        Some(_) => 1,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let saved = profiles::load()?;
    let profile = saved.profiles.get(&cli.profile).cloned().unwrap_or_default();
    let ctx = Context {
        url: cli
            .registry_url
            .clone()
            .or(profile.url)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        api_key: cli.api_key.clone().or(profile.api_key),
        producer_url: cli
            .producer_url
            .clone()
            .or(profile.producer_url)
            .unwrap_or_else(|| "http://127.0.0.1:8081".into()),
        producer_token: cli.producer_token.clone().or(profile.producer_token),
        admin_token: cli.admin_token.clone().or(profile.admin_token),
        json: cli.json,
    };
    match cli.command {
        Command::Login(args) => login(&cli.profile, saved, &ctx, args).await,
        Command::Webhooks(c) => webhooks::run(&ctx, c).await,
        Command::Deliveries(c) => deliveries::run(&ctx, c).await,
        Command::EventTypes(c) => event_types::run(&ctx, c).await,
        Command::Events(c) => events::run(&ctx, c).await,
        Command::Portal { read_only } => admin::portal(&ctx, read_only).await,
        Command::Listen(args) => listen::run(&ctx, args).await,
        Command::AuditLog(args) => admin::audit_log(&ctx, &ctx.customer()?, "/v1/audit-log", args).await,
        Command::Admin(c) => admin::run(&ctx, c).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hookwire", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Saves what the flags and the environment gave as profile `name`.
async fn login(name: &str, mut saved: profiles::File, ctx: &Context, args: LoginArgs) -> anyhow::Result<()> {
    if ctx.api_key.is_none() && ctx.admin_token.is_none() && ctx.producer_token.is_none() {
        anyhow::bail!(
            "nothing to save: pass --api-key, --admin-token or --producer-token (or set them in the environment)"
        );
    }
    if !args.no_check {
        if ctx.api_key.is_some() {
            ctx.customer()?
                .get::<serde_json::Value>("/v1/webhooks?limit=1")
                .await
                .map_err(|e| anyhow::anyhow!("the API key was not accepted: {e}"))?;
        }
        if ctx.admin_token.is_some() {
            ctx.admin()?
                .get::<serde_json::Value>("/v1/admin/tenants?limit=1")
                .await
                .map_err(|e| anyhow::anyhow!("the admin token was not accepted: {e}"))?;
        }
    }
    saved.profiles.insert(
        name.to_owned(),
        profiles::Profile {
            url: Some(ctx.url.clone()),
            api_key: ctx.api_key.clone(),
            producer_url: Some(ctx.producer_url.clone()),
            producer_token: ctx.producer_token.clone(),
            admin_token: ctx.admin_token.clone(),
        },
    );
    let path = profiles::save(&saved)?;
    println!("Saved profile `{name}` in {} (readable by you only).", path.display());
    Ok(())
}

//! `hookwire-dispatcher`: deliver webhooks.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookwire_core::config::Secrets;
use hookwire_dispatcher::{Application, Config};

#[derive(Parser)]
#[command(name = "hookwire-dispatcher", version, about = "Hookwire delivery worker")]
struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables still win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and deliver (the default).
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    config.runtime.run(run(cli, config))?
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let _telemetry = hookwire_core::telemetry::init(&config.telemetry, "hookwire-dispatcher")?;
    // One TLS provider for the whole process (ring; see docs/dependencies.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let secrets = Secrets::from_env(config.profile, hookwire_core::config::Role::Dispatcher)?;
            let app = Application::build(config, secrets).await?;
            tracing::info!(port = app.port(), "hookwire-dispatcher health and metrics listening");
            app.run_until_stopped(hookwire_core::shutdown::signal()).await
        }
    }
}

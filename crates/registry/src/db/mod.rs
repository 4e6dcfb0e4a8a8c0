//! PostgreSQL: the connection pool, embedded migrations, the schema and the model functions.
//! Every model function takes `&mut AsyncPgConnection` and scopes its queries by tenant.

pub mod connect;
pub mod event_keys;
pub mod ledger;
pub mod lines;
pub mod models;
pub mod overview;
pub mod prepared;
pub mod schema;

use anyhow::Context as _;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseConfig;

pub type DbPool = Pool<AsyncPgConnection>;
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// The time now, to the microsecond as PostgreSQL keeps it: a webhook written with it reads back
/// the same, so its answer to a change, its change notice and a snapshot read later name one
/// version (`modified_at`) alike. (Notices once carried nanoseconds, and after a reload every
/// task routed from a notice looked newer than the dispatcher's version of its webhook.)
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(6)
}

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of connections. Connections are opened lazily, so building never waits for the database.
///
/// A connection taken from the pool is not pinged first (`RecyclingMethod::Fast`; the default
/// runs `SELECT 1` at every checkout, and an API request takes a connection twice: for its key,
/// then for its work). One whose socket PostgreSQL closed (a restart, a terminated backend) is
/// still discarded at checkout, as is one left in a broken transaction.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<DbPool> {
    let mut checkout = ManagerConfig::default();
    checkout.recycling_method = RecyclingMethod::Fast;
    checkout.custom_setup = Box::new(|url| Box::pin(connect::connect(url)));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&config.url, checkout);
    Pool::builder(manager)
        .max_size(config.max_connections)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Applies pending migrations. Runs as a deploy step (`hookwire-registry migrate`), and by
/// `serve` in the development profile.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = tokio::runtime::Handle::current()
            .block_on(connect::connect(&url))
            .context("connecting to PostgreSQL to migrate")?;
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        // A migration may take longer than the API's statement timeout in `database.url`.
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "SET statement_timeout = 0")
            .context("lifting the statement timeout to migrate")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
        for m in applied {
            tracing::info!(migration = %m, "migration applied");
        }
        Ok(())
    })
    .await
    .context("migration task panicked")?
}

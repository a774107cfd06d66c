//! Opening pools (SQLite pragmas, PostgreSQL options) and the migration runner.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{args, map_err, DbPool};
use crate::{DbError, Engine, Result, StoreOptions};

/// One migration: version, name, SQL script.
type Migration = (i64, &'static str, &'static str);

const SQLITE_MIGRATIONS: &[Migration] = &[(
    1,
    "initial",
    include_str!("../migrations/sqlite/0001_initial.sql"),
)];

const POSTGRES_MIGRATIONS: &[Migration] = &[(
    1,
    "initial",
    include_str!("../migrations/postgres/0001_initial.sql"),
)];

/// Advisory lock key serialising migrations across processes on PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x006f_6374_6176_6961;

pub(crate) async fn open(opts: &StoreOptions) -> Result<DbPool> {
    let url = opts.url.as_str();
    let max = opts.max_connections.max(1);
    if url.starts_with("sqlite:") {
        let o = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbError::Invalid(format!("invalid database url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        // No ping before handing out a connection: it is one more round trip to the
        // connection's thread per request, and a broken connection fails the query anyway.
        let mut po = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { max })
            .test_before_acquire(false);
        if memory {
            // Every connection to `:memory:` is its own database: keep exactly one forever.
            po = po.min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let pool = po.connect_with(o).await.map_err(map_err)?;
        tracing::debug!(url = %url, "opened sqlite store");
        Ok(DbPool::Sqlite(pool, Default::default()))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        // No ping before handing out a connection (one network round trip per request);
        // a connection that broke meanwhile fails its query with a retryable error.
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(map_err)?;
        tracing::debug!("opened postgresql store");
        Ok(DbPool::Postgres(pool))
    } else {
        Err(DbError::Invalid(
            "database url must start with sqlite: or postgres:".to_string(),
        ))
    }
}

/// Apply pending migrations in one transaction (SQLite: under `BEGIN IMMEDIATE`;
/// PostgreSQL: under a transaction-level advisory lock), so concurrent starts are safe.
pub(crate) async fn migrate(pool: &DbPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    let mut c = tx.conn();
    let list = match c.engine() {
        Engine::Sqlite => SQLITE_MIGRATIONS,
        Engine::Postgres => {
            c.execute(
                "SELECT pg_advisory_xact_lock($1)",
                args![MIGRATION_LOCK_KEY],
            )
            .await?;
            POSTGRES_MIGRATIONS
        }
    };
    c.raw(
        "CREATE TABLE IF NOT EXISTS octavia_schema_migrations (version BIGINT PRIMARY KEY, \
         name VARCHAR(255) NOT NULL, applied_at TIMESTAMP NOT NULL)",
    )
    .await?;
    let done: Vec<(i64,)> = c
        .fetch_all("SELECT version FROM octavia_schema_migrations", vec![])
        .await?;
    for (version, name, sql) in list {
        if done.iter().any(|d| d.0 == *version) {
            continue;
        }
        c.raw(sql).await?;
        c.execute(
            "INSERT INTO octavia_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            args![*version, *name, octavia_model::now()],
        )
        .await?;
        tracing::info!(version, name, "applied database migration");
    }
    tx.commit().await
}

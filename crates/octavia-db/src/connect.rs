//! Opening pools (SQLite pragmas, PostgreSQL options) and the migration runner.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{args, DbPool, Serial, SqliteWriter};
use crate::pgpool::PgPool;
use crate::{DbError, Result, StoreOptions};

/// One migration: version, name, SQL script.
type Migration = (i64, &'static str, &'static str);

pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "load_balancer_derived_ids",
        include_str!("../migrations/sqlite/0002_load_balancer_derived_ids.sql"),
    ),
    (
        3,
        "job_queue_indexes",
        include_str!("../migrations/sqlite/0003_job_queue_indexes.sql"),
    ),
    (
        4,
        "flavors_availability_zones",
        include_str!("../migrations/sqlite/0004_flavors_availability_zones.sql"),
    ),
    (
        5,
        "job_rotation",
        include_str!("../migrations/sqlite/0005_job_rotation.sql"),
    ),
    (
        6,
        "spare_amphora",
        include_str!("../migrations/sqlite/0006_spare_amphora.sql"),
    ),
    (
        7,
        "heartbeat_keys",
        include_str!("../migrations/sqlite/0007_heartbeat_keys.sql"),
    ),
];

const POSTGRES_MIGRATIONS: &[Migration] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "load_balancer_derived_ids",
        include_str!("../migrations/postgres/0002_load_balancer_derived_ids.sql"),
    ),
    (
        3,
        "job_queue_indexes",
        include_str!("../migrations/postgres/0003_job_queue_indexes.sql"),
    ),
    (
        4,
        "flavors_availability_zones",
        include_str!("../migrations/postgres/0004_flavors_availability_zones.sql"),
    ),
    (
        5,
        "job_rotation",
        include_str!("../migrations/postgres/0005_job_rotation.sql"),
    ),
    (
        6,
        "spare_amphora",
        include_str!("../migrations/postgres/0006_spare_amphora.sql"),
    ),
    (
        7,
        "heartbeat_keys",
        include_str!("../migrations/postgres/0007_heartbeat_keys.sql"),
    ),
];

/// How long a request waits for a PostgreSQL connection (a free slot and the connect).
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

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
        // One connection kept open forever: the writer's, and the whole of `:memory:`
        // (every connection to it is its own database).
        let single = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false);
        // SQLite runs one write transaction at a time: they all go through one connection
        // of their own, so its page cache stays valid (no other connection writes) and
        // waiting writers hold no read connection. `:memory:` has only its one.
        let (pool, writes) = if memory {
            let pool = single.connect_with(o).await?;
            (pool.clone(), pool)
        } else {
            let readers = SqlitePoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .connect_with(o.clone())
                .await?;
            let writer = single.connect_with(o).await?;
            (readers, writer)
        };
        tracing::debug!(url = %url, "opened sqlite store");
        Ok(DbPool::Sqlite(pool, SqliteWriter::new(writes)))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        // Our own pool (crate::pgpool): no round trip to hand a connection out or to
        // take it back. One connection is opened now, so a wrong URL fails at start.
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| DbError::Invalid(format!("invalid database url: {e}")))?;
        let pool = PgPool::new(options, max, PG_ACQUIRE_TIMEOUT);
        drop(pool.acquire().await?);
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
    c.serialize(Serial::Migrations).await?;
    let list = c.pick(SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS);
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

#[cfg(test)]
mod tests {
    //! Migration 0002 on data written under 0001 (the PostgreSQL case needs
    //! `OCTAVIA_TEST_PG_URL`, required under `CI=true`; it works in a scratch schema).
    use super::*;
    use sqlx::{Connection, Executor};

    const FIXTURE: &str = "\
        INSERT INTO load_balancer (id, project_id, provisioning_status, operating_status, \
            enabled, topology, created_at) VALUES \
            ('lb-1', 'p', 'ACTIVE', 'ONLINE', TRUE, 'SINGLE', '2026-01-01 00:00:00'), \
            ('lb-2', 'p', 'ACTIVE', 'ONLINE', TRUE, 'SINGLE', '2026-01-01 00:00:00'); \
        INSERT INTO listener (id, project_id, load_balancer_id, provisioning_status, \
            operating_status, enabled, protocol, protocol_port, connection_limit, \
            timeout_client_data, timeout_member_connect, timeout_member_data, \
            timeout_tcp_inspect, created_at) VALUES \
            ('li-b', 'p', 'lb-1', 'ACTIVE', 'ONLINE', TRUE, 'TCP', 81, -1, 1, 1, 1, 0, \
             '2026-01-01 00:00:02'), \
            ('li-a', 'p', 'lb-1', 'ACTIVE', 'ONLINE', TRUE, 'TCP', 80, -1, 1, 1, 1, 0, \
             '2026-01-01 00:00:01'); \
        INSERT INTO pool (id, project_id, load_balancer_id, provisioning_status, \
            operating_status, enabled, protocol, lb_algorithm, created_at) VALUES \
            ('po-1', 'p', 'lb-1', 'ACTIVE', 'ONLINE', TRUE, 'TCP', 'ROUND_ROBIN', \
             '2026-01-01 00:00:00'); \
        INSERT INTO tags (resource_id, tag, position) VALUES \
            ('lb-1', 'y', 0), ('lb-1', 'x', 1), ('li-a', 'not-the-lb', 0);";

    const AFTER: &str = "\
        INSERT INTO listener (id, project_id, load_balancer_id, provisioning_status, \
            operating_status, enabled, protocol, protocol_port, connection_limit, \
            timeout_client_data, timeout_member_connect, timeout_member_data, \
            timeout_tcp_inspect, created_at) VALUES \
            ('li-c', 'p', 'lb-2', 'ACTIVE', 'ONLINE', TRUE, 'TCP', 80, -1, 1, 1, 1, 0, \
             '2026-01-01 00:00:03'); \
        DELETE FROM listener WHERE id = 'li-a'; \
        DELETE FROM pool WHERE id = 'po-1'; \
        DELETE FROM tags WHERE resource_id = 'lb-1' AND tag = 'y';";

    const READ: &str = "SELECT id, listener_id_list, pool_id_list, tag_list \
        FROM load_balancer ORDER BY id";

    type Derived = (String, Option<String>, Option<String>, Vec<String>);
    type Raw = (String, Option<String>, Option<String>, Option<String>);

    /// Rows of [`READ`] with the tag list parsed (the engines print JSON differently).
    fn read(rows: Vec<Raw>) -> Vec<Derived> {
        rows.into_iter()
            .map(|(id, listeners, pools, tags)| {
                let tags = tags
                    .map(|t| serde_json::from_str(&t).expect("tag_list is a JSON array"))
                    .unwrap_or_default();
                (id, listeners, pools, tags)
            })
            .collect()
    }

    fn check_backfill(rows: Vec<Derived>) {
        assert_eq!(
            rows,
            vec![
                (
                    "lb-1".into(),
                    Some("li-a,li-b".into()),
                    Some("po-1".into()),
                    vec!["y".into(), "x".into()]
                ),
                ("lb-2".into(), None, None, vec![]),
            ]
        );
    }

    fn check_triggers(rows: Vec<Derived>) {
        assert_eq!(
            rows,
            vec![
                ("lb-1".into(), Some("li-b".into()), None, vec!["x".into()]),
                ("lb-2".into(), Some("li-c".into()), None, vec![]),
            ]
        );
    }

    #[tokio::test]
    async fn sqlite_0002_backfills_and_triggers_follow() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        c.execute(sqlx::raw_sql(SQLITE_MIGRATIONS[0].2))
            .await
            .unwrap();
        c.execute(sqlx::raw_sql(FIXTURE)).await.unwrap();
        c.execute(sqlx::raw_sql(SQLITE_MIGRATIONS[1].2))
            .await
            .unwrap();
        check_backfill(read(sqlx::query_as(READ).fetch_all(&mut c).await.unwrap()));
        c.execute(sqlx::raw_sql(AFTER)).await.unwrap();
        check_triggers(read(sqlx::query_as(READ).fetch_all(&mut c).await.unwrap()));
    }

    #[tokio::test]
    async fn postgres_0002_backfills_and_triggers_follow() {
        let Some(url) = crate::db::test_pg_url() else {
            return;
        };
        let schema = format!("migration_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        c.execute(sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}"
        )))
        .await
        .unwrap();
        let result = async {
            c.execute(sqlx::raw_sql(POSTGRES_MIGRATIONS[0].2)).await?;
            c.execute(sqlx::raw_sql(FIXTURE)).await?;
            c.execute(sqlx::raw_sql(POSTGRES_MIGRATIONS[1].2)).await?;
            let before: Vec<Raw> = sqlx::query_as(READ).fetch_all(&mut c).await?;
            c.execute(sqlx::raw_sql(AFTER)).await?;
            let after: Vec<Raw> = sqlx::query_as(READ).fetch_all(&mut c).await?;
            Ok::<_, sqlx::Error>((before, after))
        }
        .await;
        c.execute(sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")))
            .await
            .unwrap();
        let (before, after) = result.unwrap();
        check_backfill(read(before));
        check_triggers(read(after));
    }
}

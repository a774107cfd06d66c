//! Engine dispatch: one body of query code running on SQLite or PostgreSQL.
//!
//! Every query is written once, with `$1, $2, ...` placeholders (understood by both
//! engines), and bound from a list of [`Arg`]s. [`Conn`] is a borrowed connection of
//! either engine (from the pool or inside a [`Tx`]); its methods match on the engine
//! and run the same text on the concrete sqlx types.

use std::fmt::Display;

use octavia_model::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{FromRow, Sqlite, Transaction};

use crate::pgpool::{PgLease, PgPool};

use crate::{DbError, Engine, Result};

/// The two concrete pools behind a store: on SQLite the read pool and the writer.
#[derive(Clone, Debug)]
pub(crate) enum DbPool {
    Sqlite(SqlitePool, SqliteWriter),
    Postgres(PgPool),
}

/// SQLite allows one writer at a time. Write transactions queue in order on an in-process
/// lock instead of polling the busy handler (other processes on the same file still meet
/// the busy timeout), and the holder runs on the writer connection.
#[derive(Clone, Debug)]
pub(crate) struct SqliteWriter {
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// One connection for every write transaction (for `:memory:`, the read pool's only one).
    conn: SqlitePool,
}

impl SqliteWriter {
    pub(crate) fn new(conn: SqlitePool) -> Self {
        Self {
            lock: Default::default(),
            conn,
        }
    }
}

/// One bind value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(Option<String>),
    I32(Option<i32>),
    I64(Option<i64>),
    Bool(Option<bool>),
    F64(Option<f64>),
    Ts(Option<Timestamp>),
}

macro_rules! arg_from {
    ($t:ty, $v:ident, $conv:expr) => {
        impl From<$t> for Arg {
            fn from(x: $t) -> Arg {
                let f = $conv;
                f(x)
            }
        }
    };
}
arg_from!(&str, Text, |x: &str| Arg::Text(Some(x.to_string())));
arg_from!(String, Text, |x: String| Arg::Text(Some(x)));
arg_from!(&String, Text, |x: &String| Arg::Text(Some(x.clone())));
arg_from!(Option<String>, Text, Arg::Text);
arg_from!(&Option<String>, Text, |x: &Option<String>| Arg::Text(
    x.clone()
));
arg_from!(i32, I32, |x| Arg::I32(Some(x)));
arg_from!(Option<i32>, I32, Arg::I32);
arg_from!(i64, I64, |x| Arg::I64(Some(x)));
arg_from!(Option<i64>, I64, Arg::I64);
arg_from!(bool, Bool, |x| Arg::Bool(Some(x)));
arg_from!(Option<f64>, F64, Arg::F64);
arg_from!(Timestamp, Ts, |x| Arg::Ts(Some(x)));
arg_from!(Option<Timestamp>, Ts, Arg::Ts);

/// An id (or anything displayable) as a text argument.
pub(crate) fn id<T: Display>(x: T) -> Arg {
    Arg::Text(Some(x.to_string()))
}

/// An optional id as a text argument.
pub(crate) fn opt_id<T: Display>(x: Option<T>) -> Arg {
    Arg::Text(x.map(|v| v.to_string()))
}

/// Build a `Vec<Arg>` from heterogeneous values.
macro_rules! args {
    ($($e:expr),* $(,)?) => { vec![$($crate::db::Arg::from($e)),*] };
}
pub(crate) use args;

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::I32(v) => q.bind(v),
                Arg::I64(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::F64(v) => q.bind(v),
                Arg::Ts(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type decodable on both engines (`#[derive(sqlx::FromRow)]` gives both).
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A borrowed connection of either engine.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgLease),
}

impl Conn<'_> {
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }

    /// `" FOR UPDATE"` on PostgreSQL, nothing on SQLite (whose write transactions
    /// already hold the database lock from `BEGIN IMMEDIATE`).
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => " FOR UPDATE",
        }
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        let r = match self {
            Conn::Sqlite(c) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
            Conn::Postgres(l) => {
                let r = bind_args!(sqlx::query(sql), args)
                    .execute(l.start())
                    .await
                    .map(|r| r.rows_affected());
                l.finish(&r);
                r
            }
        };
        r.map_err(map_err)
    }

    pub(crate) async fn fetch_all<R: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<R>> {
        let r = match self {
            Conn::Sqlite(c) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
            Conn::Postgres(l) => {
                let r = bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(l.start())
                    .await;
                l.finish(&r);
                r
            }
        };
        r.map_err(map_err)
    }

    pub(crate) async fn fetch_optional<R: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<R>> {
        let r = match self {
            Conn::Sqlite(c) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(&mut **c)
                    .await
            }
            Conn::Postgres(l) => {
                let r = bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(l.start())
                    .await;
                l.finish(&r);
                r
            }
        };
        r.map_err(map_err)
    }

    /// A single `BIGINT` (e.g. `COUNT(*)`).
    pub(crate) async fn count(&mut self, sql: &str, args: Vec<Arg>) -> Result<i64> {
        let row: Option<(i64,)> = self.fetch_optional(sql, args).await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }

    /// Run a script of several statements without arguments.
    pub(crate) async fn raw(&mut self, sql: &str) -> Result<()> {
        let r = match self {
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(|_| ()),
            Conn::Postgres(l) => {
                let r = sqlx::raw_sql(sql).execute(l.start()).await.map(|_| ());
                l.finish(&r);
                r
            }
        };
        r.map_err(map_err)
    }
}

/// A connection checked out of the pool (for reads).
pub(crate) enum Held {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PgLease),
}

impl Held {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Held::Sqlite(c) => Conn::Sqlite(c),
            Held::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A write transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: READ COMMITTED).
pub(crate) enum Tx {
    /// The guard is the in-process writer lock, released when the transaction ends.
    Sqlite(
        Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(PgLease),
}

impl Tx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t, _) => Conn::Sqlite(t),
            Tx::Postgres(l) => Conn::Postgres(l),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t, _writer) => t.commit().await.map_err(map_err),
            Tx::Postgres(l) => l.commit().await.map_err(map_err),
        }
    }
}

impl DbPool {
    pub(crate) fn engine(&self) -> Engine {
        match self {
            DbPool::Sqlite(..) => Engine::Sqlite,
            DbPool::Postgres(_) => Engine::Postgres,
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Held> {
        match self {
            DbPool::Sqlite(p, _) => p.acquire().await.map(Held::Sqlite).map_err(map_err),
            DbPool::Postgres(p) => p.acquire().await.map(Held::Postgres).map_err(map_err),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        match self {
            DbPool::Sqlite(_, writer) => {
                // The lock first: waiting writers hold no connection. The holder then waits
                // at most for a reader to finish (`:memory:`) or for nothing at all.
                let guard = writer.lock.clone().lock_owned().await;
                let conn = writer.conn.acquire().await.map_err(map_err)?;
                Transaction::begin(conn, Some("BEGIN IMMEDIATE".into()))
                    .await
                    .map(|t| Tx::Sqlite(t, guard))
                    .map_err(map_err)
            }
            DbPool::Postgres(p) => p.begin().await.map(Tx::Postgres).map_err(map_err),
        }
    }
}

/// Classify a driver error: busy/serialization/connection → Retryable, unique → Conflict.
pub(crate) fn map_err(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return DbError::Conflict("record already exists".to_string());
            }
            if db.is_foreign_key_violation() {
                return DbError::Invalid("a referenced object does not exist".to_string());
            }
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let retryable = match code.as_str() {
                // SQLite: BUSY, LOCKED and their extended codes (low byte 5 / 6).
                c if c
                    .parse::<i32>()
                    .map(|n| n & 0xff == 5 || n & 0xff == 6)
                    .unwrap_or(false) =>
                {
                    true
                }
                // PostgreSQL: serialization failure, deadlock, lock not available,
                // shutdown / connection failures.
                "40001" | "40P01" | "55P03" => true,
                c => ends_session(c),
            };
            if retryable {
                DbError::Retryable(db.message().to_string())
            } else {
                DbError::Other(db.message().to_string())
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => DbError::Retryable(e.to_string()),
        _ => DbError::Other(e.to_string()),
    }
}

/// A PostgreSQL error code after which the session is gone: admin shutdown, crash
/// recovery, cannot connect now (57P01..03) and the connection exceptions (class 08).
pub(crate) fn ends_session(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

/// The PostgreSQL admin URL of the tests that need a server (`OCTAVIA_TEST_PG_URL`); `None`
/// (the test skips) when unset, except under `CI=true`, which must never skip them.
#[cfg(test)]
pub(crate) fn test_pg_url() -> Option<String> {
    match std::env::var("OCTAVIA_TEST_PG_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "OCTAVIA_TEST_PG_URL must be set under CI"
            );
            eprintln!("OCTAVIA_TEST_PG_URL not set: PostgreSQL test not run");
            None
        }
    }
}

/// A stored value that does not parse back (corrupt row).
pub(crate) fn corrupt(what: &str, e: impl Display) -> DbError {
    DbError::Other(format!("corrupt {what} in database: {e}"))
}

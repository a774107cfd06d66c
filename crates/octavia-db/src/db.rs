//! Engine dispatch: one body of query code running on SQLite or PostgreSQL.
//!
//! Every query is written once, with `$1, $2, ...` placeholders (understood by both
//! engines), and bound from a list of [`Arg`]s. [`Conn`] is a borrowed connection of
//! either engine (from the pool or inside a [`Tx`]); its methods match on the engine
//! and run the same text on the concrete sqlx types. Where the SQL itself differs, the
//! rest of the crate asks a [`Conn`] for it (`pick`, `for_update`, `for_share`,
//! `for_update_skip_locked`, `text_sort_key`, `serialize`, `native`): nothing outside this
//! module matches on the engine.

use std::fmt::Display;

use octavia_model::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgRow};
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

/// Run `$body` (an expression using the driver connection `$e`, awaited inside) on either
/// engine; a PostgreSQL statement is bracketed by the lease's start/finish marks.
macro_rules! on_conn {
    ($conn:expr, |$e:ident| $body:expr) => {{
        let r = match $conn {
            Conn::Sqlite(c) => {
                let $e = &mut **c;
                $body
            }
            Conn::Postgres(l) => {
                let $e = l.start();
                let r = $body;
                l.finish(&r);
                r
            }
        };
        r.map_err(DbError::from)
    }};
}

/// What a transaction serialises on with other processes. PostgreSQL takes a
/// transaction-level advisory lock; SQLite needs nothing, its write transactions already
/// hold the database lock (`BEGIN IMMEDIATE`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Serial<'a> {
    /// Applying migrations.
    Migrations,
    /// Counting running jobs and claiming one (capped claims).
    Claims,
    /// Checking and using one project's quota (the load balancer lock does not cover
    /// writes to different load balancers of the same project).
    Quota(&'a str),
    /// Counting and refilling the spare pools (two housekeepers never build one spare
    /// twice).
    SparePool,
}

/// Advisory lock key serialising migrations across processes on PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x006f_6374_6176_6961;
/// Advisory lock key serialising capped claims on PostgreSQL.
const CLAIM_LOCK_KEY: i64 = 0x006f_6374_6163_6c6d;
/// Advisory lock key serialising spare pool passes on PostgreSQL.
const SPARE_LOCK_KEY: i64 = 0x006f_6374_7370_6172;

/// The driver connection under a [`Conn`], for statements that bind arrays (heartbeat
/// batches), which [`Arg`] does not carry. Inside a transaction only: a statement cut short
/// there is rolled back with the transaction.
pub(crate) enum Native<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// The engine-specific parts of SQL. Every branch on the engine outside the dispatch
/// itself goes through these methods: [`Conn::pick`] for text, the named fragments built on
/// it, [`Conn::serialize`] for the one engine-specific statement, [`Conn::native`] for the
/// batch statements.
impl Conn<'_> {
    /// `sqlite` on SQLite, `postgres` on PostgreSQL.
    pub(crate) fn pick<T>(&self, sqlite: T, postgres: T) -> T {
        match self {
            Conn::Sqlite(_) => sqlite,
            Conn::Postgres(_) => postgres,
        }
    }

    /// `" FOR UPDATE"` on PostgreSQL, nothing on SQLite (whose write transactions
    /// already hold the database lock from `BEGIN IMMEDIATE`).
    pub(crate) fn for_update(&self) -> &'static str {
        self.pick("", " FOR UPDATE")
    }

    /// `" FOR SHARE"` on PostgreSQL (the row cannot change or go until the transaction
    /// ends; others may share it), nothing on SQLite (whose write transactions already hold
    /// the database lock).
    pub(crate) fn for_share(&self) -> &'static str {
        self.pick("", " FOR SHARE")
    }

    /// `" FOR UPDATE SKIP LOCKED"` on PostgreSQL (rows another transaction holds are
    /// passed over), nothing on SQLite.
    pub(crate) fn for_update_skip_locked(&self) -> &'static str {
        self.pick("", " FOR UPDATE SKIP LOCKED")
    }

    /// A text expression that sorts the same on both engines (bytewise, NULL first).
    pub(crate) fn text_sort_key(&self, e: &str) -> String {
        self.pick(
            format!("COALESCE({e}, '')"),
            format!("(COALESCE({e}, '') COLLATE \"C\")"),
        )
    }

    /// Serialise the rest of the transaction with other processes doing the same ([`Serial`]).
    pub(crate) async fn serialize(&mut self, on: Serial<'_>) -> Result<()> {
        if let Conn::Sqlite(_) = self {
            return Ok(());
        }
        match on {
            Serial::Migrations => {
                self.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    args![MIGRATION_LOCK_KEY],
                )
                .await
            }
            Serial::Claims => {
                self.execute("SELECT pg_advisory_xact_lock($1)", args![CLAIM_LOCK_KEY])
                    .await
            }
            Serial::SparePool => {
                self.execute("SELECT pg_advisory_xact_lock($1)", args![SPARE_LOCK_KEY])
                    .await
            }
            Serial::Quota(project) => {
                self.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('octavia-quota:' || $1))",
                    args![project],
                )
                .await
            }
        }
        .map(|_| ())
    }

    /// The driver connection, for statements that bind arrays ([`Native`]).
    pub(crate) fn native(&mut self) -> Native<'_> {
        match self {
            Conn::Sqlite(c) => Native::Sqlite(c),
            Conn::Postgres(l) => Native::Postgres(l.raw()),
        }
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        on_conn!(self, |e| bind_args!(sqlx::query(sql), args)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))
    }

    pub(crate) async fn fetch_all<R: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<R>> {
        on_conn!(self, |e| bind_args!(sqlx::query_as::<_, R>(sql), args)
            .fetch_all(e)
            .await)
    }

    pub(crate) async fn fetch_optional<R: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<R>> {
        on_conn!(self, |e| bind_args!(sqlx::query_as::<_, R>(sql), args)
            .fetch_optional(e)
            .await)
    }

    /// A single `BIGINT` (e.g. `COUNT(*)`).
    pub(crate) async fn count(&mut self, sql: &str, args: Vec<Arg>) -> Result<i64> {
        let row: Option<(i64,)> = self.fetch_optional(sql, args).await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }

    /// Run a script of several statements without arguments.
    pub(crate) async fn raw(&mut self, sql: &str) -> Result<()> {
        on_conn!(self, |e| sqlx::raw_sql(sql).execute(e).await.map(|_| ()))
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
            Tx::Sqlite(t, _writer) => Ok(t.commit().await?),
            Tx::Postgres(l) => Ok(l.commit().await?),
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
            DbPool::Sqlite(p, _) => Ok(Held::Sqlite(p.acquire().await?)),
            DbPool::Postgres(p) => Ok(Held::Postgres(p.acquire().await?)),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        match self {
            DbPool::Sqlite(_, writer) => {
                // The lock first: waiting writers hold no connection. The holder then waits
                // at most for a reader to finish (`:memory:`) or for nothing at all.
                let guard = writer.lock.clone().lock_owned().await;
                let conn = writer.conn.acquire().await?;
                let t = Transaction::begin(conn, Some("BEGIN IMMEDIATE".into())).await?;
                Ok(Tx::Sqlite(t, guard))
            }
            DbPool::Postgres(p) => Ok(Tx::Postgres(p.begin().await?)),
        }
    }
}

/// Classify a driver error: busy/serialization/connection → Retryable, unique → Conflict,
/// foreign key → Invalid, anything else → Other.
impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        let retryable = match &e {
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return DbError::Conflict("record already exists".to_string());
                }
                if db.is_foreign_key_violation() {
                    return DbError::Invalid("a referenced object does not exist".to_string());
                }
                match db.code().as_deref() {
                    // SQLite: BUSY, LOCKED and their extended codes (low byte 5 / 6).
                    Some(c)
                        if c.parse::<i32>()
                            .is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6) =>
                    {
                        true
                    }
                    // PostgreSQL: serialization failure, deadlock, lock not available,
                    // shutdown / connection failures.
                    Some("40001" | "40P01" | "55P03") => true,
                    c => ends_session(c.unwrap_or_default()),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        };
        if retryable {
            DbError::Retryable(e)
        } else {
            DbError::Other(e)
        }
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
    DbError::Internal(format!("corrupt {what} in database: {e}"))
}

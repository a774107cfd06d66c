//! The PostgreSQL connection pool: hands a connection back without a round trip.
//!
//! sqlx's own pool pings every connection as it is released (a `Sync` and a wait for the
//! server's `ReadyForQuery`). For a request that runs one indexed read, that is a second
//! network round trip and a second wake-up of a server backend, and on a small host it costs
//! about a third of the read throughput. This pool instead remembers, per lease, whether the
//! connection is known to be clean:
//!
//! - the last statement finished and no transaction is open → straight back to the idle
//!   list, no I/O;
//! - a statement was cancelled midway (its future dropped) or a transaction was never
//!   committed → a background task drains the connection (`ROLLBACK` or a ping) before it
//!   goes back, so a half-done transaction never holds its row locks while idle;
//! - a statement failed because the connection or the server went away → the connection
//!   is closed, and so are the idle ones (they most likely lost the same server).
//!
//! A slot (semaphore permit) is held from acquire until the connection is back in the idle
//! list or closed, so `max_connections` bounds the connections open at any time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long draining a connection released in an unknown state may take before it is
/// closed instead.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of PostgreSQL connections (cheap to clone; clones share the connections).
#[derive(Clone)]
pub(crate) struct PgPool(Arc<Shared>);

struct Shared {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    slots: Arc<Semaphore>,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("max_connections", &self.0.max_connections)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl PgPool {
    /// A pool of at most `max_connections` (≥ 1) connections. No connection is opened
    /// until the first acquire.
    pub(crate) fn new(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> PgPool {
        let max_connections = max_connections.max(1);
        PgPool(Arc::new(Shared {
            options,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max_connections as usize)),
            max_connections,
            acquire_timeout,
        }))
    }

    /// Connections open and not leased.
    pub(crate) fn idle_count(&self) -> usize {
        self.0.idle()
    }

    /// A connection: an idle one, or a new one while fewer than `max_connections` are
    /// open. Waits at most the acquire timeout for a slot and the connect together
    /// (`PoolTimedOut` after that).
    pub(crate) async fn acquire(&self) -> Result<PgLease, sqlx::Error> {
        let shared = &self.0;
        let deadline = tokio::time::Instant::now() + shared.acquire_timeout;
        let slot = tokio::time::timeout_at(deadline, shared.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = shared.lock_idle().pop();
        let conn = match reused {
            Some(c) => c,
            None => tokio::time::timeout_at(deadline, PgConnection::connect_with(&shared.options))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        Ok(PgLease {
            conn: Some(conn),
            slot: Some(slot),
            shared: self.0.clone(),
            in_flight: false,
            in_transaction: false,
            broken: false,
        })
    }

    /// A connection inside `BEGIN` (READ COMMITTED). Dropping the lease without
    /// [`PgLease::commit`] rolls the transaction back before the connection is reused.
    pub(crate) async fn begin(&self) -> Result<PgLease, sqlx::Error> {
        let mut lease = self.acquire().await?;
        // Marked first: if the BEGIN is cancelled midway, the release path rolls back.
        lease.in_transaction = true;
        let r = sqlx::Executor::execute(lease.start(), "BEGIN").await;
        lease.finish(&r);
        r.map(|_| lease)
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        // The list stays consistent whatever a panicking holder did (push/pop/clear only).
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> usize {
        self.lock_idle().len()
    }
}

/// One connection out of a [`PgPool`]; goes back (or is drained or closed) when dropped.
pub(crate) struct PgLease {
    conn: Option<PgConnection>,
    slot: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
    /// A statement started and has not finished (its future may have been dropped).
    in_flight: bool,
    /// `BEGIN` was sent and no `COMMIT` succeeded.
    in_transaction: bool,
    /// A statement failed with a connection-level error.
    broken: bool,
}

impl PgLease {
    /// The connection, for one statement: the lease counts it as in flight until
    /// [`PgLease::finish`] sees the statement's result.
    pub(crate) fn start(&mut self) -> &mut PgConnection {
        self.in_flight = true;
        self.raw()
    }

    /// Record how the statement begun with [`PgLease::start`] ended.
    pub(crate) fn finish<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.in_flight = false;
        if let Err(e) = result {
            if is_connection_error(e) {
                self.broken = true;
            }
        }
    }

    /// The connection without tracking. Only for statements inside a transaction, whose
    /// release path (rollback unless committed) already covers a cancelled statement.
    pub(crate) fn raw(&mut self) -> &mut PgConnection {
        // Invariant: `conn` is only taken in `drop`.
        self.conn
            .as_mut()
            .expect("a live lease holds its connection")
    }

    /// `COMMIT` the transaction begun by [`PgPool::begin`].
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let r = sqlx::Executor::execute(self.start(), "COMMIT").await;
        self.finish(&r);
        if r.is_ok() {
            self.in_transaction = false;
        }
        r.map(|_| ())
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let slot = self.slot.take();
        let shared = self.shared.clone();
        if self.broken {
            // The server or the link is gone: close this one and the idle ones, so the
            // next requests connect afresh instead of failing one stale connection each.
            let stale = std::mem::take(&mut *shared.lock_idle());
            tracing::debug!(
                closed_idle = stale.len(),
                "closing PostgreSQL connections after a connection error"
            );
            return;
        }
        if !self.in_flight && !self.in_transaction {
            shared.lock_idle().push(conn);
            drop(slot);
            return;
        }
        let rollback = self.in_transaction;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to drain it on: closing the socket makes the server roll back.
            return;
        };
        runtime.spawn(async move {
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, drain(&mut conn, rollback)).await;
            match drained {
                Ok(Ok(())) => shared.lock_idle().push(conn),
                Ok(Err(e)) => tracing::debug!(error = %e, "closing a PostgreSQL connection that did not drain"),
                Err(_) => tracing::debug!("closing a PostgreSQL connection that did not drain in time"),
            }
            drop(slot);
        });
    }
}

/// Bring a connection released in an unknown state back to idle: `ROLLBACK` if a
/// transaction may be open, else a ping (both first read whatever the cancelled statement
/// left unread).
async fn drain(conn: &mut PgConnection, rollback: bool) -> Result<(), sqlx::Error> {
    if rollback {
        sqlx::Executor::execute(&mut *conn, "ROLLBACK")
            .await
            .map(|_| ())
    } else {
        conn.ping().await
    }
}

/// Errors after which the connection cannot be trusted: I/O and protocol failures, and
/// the server ending the session (admin shutdown, crash recovery, connection exceptions).
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| crate::db::ends_session(&c)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! Need PostgreSQL: `OCTAVIA_TEST_PG_URL` (required under `CI=true`, else skipped).
    use super::*;
    use std::str::FromStr;

    fn pool(max: u32) -> Option<PgPool> {
        pool_with(max, Duration::from_secs(10))
    }

    fn pool_with(max: u32, acquire_timeout: Duration) -> Option<PgPool> {
        let url = crate::db::test_pg_url()?;
        let options = PgConnectOptions::from_str(&url).expect("a valid OCTAVIA_TEST_PG_URL");
        Some(PgPool::new(options, max, acquire_timeout))
    }

    async fn one_i64(lease: &mut PgLease, sql: &str) -> i64 {
        let r = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(lease.start())
            .await;
        lease.finish(&r);
        r.expect("query")
    }

    async fn backend_pid(lease: &mut PgLease) -> i64 {
        one_i64(lease, "SELECT CAST(pg_backend_pid() AS BIGINT)").await
    }

    fn lock_key() -> i64 {
        (uuid::Uuid::new_v4().as_u128() as i64) & 0x7fff_ffff_ffff
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_connection_goes_straight_back_and_is_reused() {
        let Some(pool) = pool(2) else { return };
        let mut a = pool.acquire().await.unwrap();
        let pid = backend_pid(&mut a).await;
        drop(a);
        // Returned synchronously in drop: no task, no round trip.
        assert_eq!(pool.idle_count(), 1);
        let mut b = pool.acquire().await.unwrap();
        assert_eq!(backend_pid(&mut b).await, pid);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uncommitted_transaction_is_rolled_back_before_reuse() {
        let Some(pool) = pool(1) else { return };
        let Some(other) = self::pool(1) else { return };
        let key = lock_key();
        let mut tx = pool.begin().await.unwrap();
        let r = sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(tx.start())
            .await;
        tx.finish(&r);
        r.unwrap();
        drop(tx); // no commit: an error path or a cancelled request

        // One slot: this waits until the drain has returned the connection.
        let mut again = pool.acquire().await.unwrap();
        backend_pid(&mut again).await;
        // The transaction-level lock is gone: another session takes it at once.
        let mut o = other.acquire().await.unwrap();
        let r = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_xact_lock($1)")
            .bind(key)
            .fetch_one(o.start())
            .await;
        o.finish(&r);
        assert!(r.unwrap(), "the dropped transaction still holds its lock");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_transaction_goes_straight_back() {
        let Some(pool) = pool(1) else { return };
        let mut tx = pool.begin().await.unwrap();
        let pid = backend_pid(&mut tx).await;
        tx.commit().await.unwrap();
        assert_eq!(pool.idle_count(), 1);
        let mut b = pool.acquire().await.unwrap();
        assert_eq!(backend_pid(&mut b).await, pid);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_statement_is_drained_before_reuse() {
        let Some(pool) = pool(1) else { return };
        let mut a = pool.acquire().await.unwrap();
        let pid = backend_pid(&mut a).await;
        // A statement that cannot finish within the timeout: its future is dropped midway,
        // like a request whose client went away.
        let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
            let r = sqlx::query("SELECT pg_sleep(0.5)").execute(a.start()).await;
            a.finish(&r);
        })
        .await;
        assert!(cancelled.is_err());
        drop(a);

        let mut b = pool.acquire().await.unwrap();
        // Same connection, and it answers this statement, not the cancelled one.
        assert_eq!(backend_pid(&mut b).await, pid);
        assert_eq!(one_i64(&mut b, "SELECT CAST(41 + 1 AS BIGINT)").await, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connection_error_closes_it_and_the_idle_ones() {
        let Some(pool) = pool(3) else { return };
        let Some(admin) = self::pool(1) else { return };
        let mut a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        let pid_a = backend_pid(&mut a).await;
        backend_pid(&mut b).await;
        drop(b);
        assert_eq!(pool.idle_count(), 1);

        // The server ends `a`'s session (as on a restart); `a` learns it on its next use.
        let mut adm = admin.acquire().await.unwrap();
        let r = sqlx::query("SELECT pg_terminate_backend(CAST($1 AS INT))")
            .bind(pid_a)
            .execute(adm.start())
            .await;
        adm.finish(&r);
        r.unwrap();
        let r = sqlx::query("SELECT 1").execute(a.start()).await;
        a.finish(&r);
        assert!(r.is_err());
        assert!(a.broken);
        drop(a);
        assert_eq!(
            pool.idle_count(),
            0,
            "idle connections closed with the broken one"
        );

        let mut c = pool.acquire().await.unwrap();
        assert_ne!(backend_pid(&mut c).await, pid_a);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acquire_waits_for_a_slot_and_times_out() {
        let Some(pool) = pool_with(1, Duration::from_millis(200)) else {
            return;
        };
        let held = pool.acquire().await.unwrap();
        assert!(matches!(
            pool.acquire().await,
            Err(sqlx::Error::PoolTimedOut)
        ));
        drop(held);
        pool.acquire().await.unwrap();
    }
}

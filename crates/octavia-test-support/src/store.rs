//! Throwaway stores for test suites, on octavia-db's public API.
//!
//! `OCTAVIA_TEST_PG_URL` (an admin URL such as
//! `postgres://octavia:octavia@127.0.0.1:5432/postgres`) enables the PostgreSQL engine; each
//! [`TestStore`] gets its own fresh database, dropped afterwards. Under `CI=true` a missing
//! `OCTAVIA_TEST_PG_URL` is an error, so CI can never silently skip the PostgreSQL half of a
//! suite; elsewhere [`engines`] leaves PostgreSQL out and says so.

use octavia_db::{admin, Engine, QuotaDefaults, Store, StoreOptions};

/// Environment variable holding the PostgreSQL admin URL for tests.
pub const PG_URL_ENV: &str = "OCTAVIA_TEST_PG_URL";

/// Pool size of a test store.
const MAX_CONNECTIONS: u32 = 8;

/// A migrated store on a fresh database; cleaned up on drop.
pub struct TestStore {
    pub store: Store,
    /// The URL the store was opened with (to open a second store on the same database).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The SQLite file's directory, removed when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        database: String,
    },
}

impl TestStore {
    /// A fresh, migrated store on `engine`.
    pub async fn new(engine: Engine) -> TestStore {
        Self::with_quota_defaults(engine, QuotaDefaults::default()).await
    }

    /// A fresh, migrated store with the given quota defaults.
    pub async fn with_quota_defaults(engine: Engine, quota_defaults: QuotaDefaults) -> TestStore {
        let (url, cleanup) = match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("create temp dir for test store");
                let url = format!("sqlite://{}/octavia.db", dir.path().display());
                (url, Cleanup::Sqlite(dir))
            }
            Engine::Postgres => {
                let admin_url = std::env::var(PG_URL_ENV)
                    .unwrap_or_else(|_| panic!("{PG_URL_ENV} must be set to test PostgreSQL"));
                let database = format!("octavia_test_{}", uuid::Uuid::new_v4().simple());
                let url = admin::create_database(&admin_url, &database)
                    .await
                    .expect("create test database");
                (
                    url,
                    Cleanup::Postgres {
                        admin_url,
                        database,
                    },
                )
            }
        };
        let store = open(&url, quota_defaults, "test store").await;
        TestStore {
            store,
            url,
            cleanup,
        }
    }

    /// Another store (own pool) on the same database, like a second process.
    pub async fn second_store(&self) -> Store {
        open(&self.url, self.store.quota_defaults(), "second store").await
    }
}

/// Connects to `url` and migrates; panics naming `what` on failure.
async fn open(url: &str, quota_defaults: QuotaDefaults, what: &str) -> Store {
    let store = Store::connect(StoreOptions {
        url: url.to_string(),
        max_connections: MAX_CONNECTIONS,
        quota_defaults,
    })
    .await
    .unwrap_or_else(|e| panic!("connect {what}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {what}: {e}"));
    store
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Cleanup::Postgres {
            admin_url,
            database,
        } = &self.cleanup
        {
            let _ = admin::drop_database_blocking(admin_url, database);
        }
    }
}

/// The engines this run must test: SQLite always, PostgreSQL when configured.
///
/// Without `OCTAVIA_TEST_PG_URL` the PostgreSQL half is skipped with a printed reason, or,
/// under `CI=true`, this panics.
pub fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sqlite];
    match std::env::var(PG_URL_ENV) {
        Ok(u) if !u.is_empty() => v.push(Engine::Postgres),
        _ => {
            if crate::require::under_ci() {
                panic!(
                    "CI=true but {PG_URL_ENV} is not set: the PostgreSQL half of the store \
                     suite must run in CI (e.g. {PG_URL_ENV}=postgres://octavia:octavia@127.0.0.1:5432/postgres)"
                );
            }
            eprintln!("{PG_URL_ENV} not set: PostgreSQL cases not run");
        }
    }
    v
}

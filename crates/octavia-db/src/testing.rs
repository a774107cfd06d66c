//! Throwaway stores for test suites (feature `testing`).
//!
//! `OCTAVIA_TEST_PG_URL` (an admin URL such as
//! `postgres://octavia:octavia@127.0.0.1:5432/postgres`) enables the PostgreSQL
//! engine; each [`TestStore`] gets its own fresh database, dropped afterwards.
//! Under `CI=true` a missing `OCTAVIA_TEST_PG_URL` is an error, so CI can never
//! silently skip the PostgreSQL half of a suite.

use crate::{admin, Engine, QuotaDefaults, Store, StoreOptions};

/// Environment variable holding the PostgreSQL admin URL for tests.
pub const PG_URL_ENV: &str = "OCTAVIA_TEST_PG_URL";

/// A migrated store on a fresh database; cleaned up on drop.
pub struct TestStore {
    pub store: Store,
    /// The URL the store was opened with (to open a second store on the same database).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
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
        let store = Store::connect(StoreOptions {
            url: url.clone(),
            max_connections: 8,
            quota_defaults,
        })
        .await
        .expect("connect test store");
        store.migrate().await.expect("migrate test store");
        TestStore {
            store,
            url,
            cleanup,
        }
    }

    /// Another store (own pool) on the same database, like a second process.
    pub async fn second_store(&self) -> Store {
        let s = Store::connect(StoreOptions {
            url: self.url.clone(),
            max_connections: 8,
            quota_defaults: self.store.quota_defaults(),
        })
        .await
        .expect("connect second store");
        s.migrate().await.expect("migrate second store");
        s
    }
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
pub fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sqlite];
    match std::env::var(PG_URL_ENV) {
        Ok(u) if !u.is_empty() => v.push(Engine::Postgres),
        _ => {
            if std::env::var("CI").map(|c| c == "true").unwrap_or(false) {
                panic!(
                    "CI=true but {PG_URL_ENV} is not set: the PostgreSQL half of the store \
                     suite must run in CI (e.g. {PG_URL_ENV}=postgres://octavia:octavia@127.0.0.1:5432/postgres)"
                );
            }
        }
    }
    v
}

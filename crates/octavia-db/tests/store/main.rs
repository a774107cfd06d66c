//! The store suite: every case runs on SQLite and (when configured) PostgreSQL. One module
//! per concern; the fixtures they share are in `common`.

/// Generate one `#[tokio::test]` per engine for each case of the calling module.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(octavia_db::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !octavia_test_support::engines().contains(&octavia_db::Engine::Postgres) {
                        return;
                    }
                    super::$name(octavia_db::Engine::Postgres).await;
                }
            )*
        }
    };
}

mod amphorae;
mod catalogue;
mod common;
mod heartbeat_key;
mod housekeeping;
mod jobs;
mod lifecycle;
mod lists;
mod locking;
mod quotas;
mod rotation;
mod settlement;
mod spares;
mod stale;

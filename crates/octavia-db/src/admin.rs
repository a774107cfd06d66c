//! Creating and dropping whole PostgreSQL databases: throwaway databases for test suites
//! (`octavia-test-support`) and the benchmark, and bootstrap. The one place that does it, so callers need
//! no SQL and no database driver of their own.
//!
//! `admin_url` is a PostgreSQL URL of a role allowed to create databases, pointing at an
//! existing database (`postgres://octavia:octavia@127.0.0.1:5432/postgres`). Database names
//! are checked against `[a-z_][a-z0-9_]{0,62}` before they reach SQL, which cannot take them
//! as bind parameters.

use sqlx::Connection;

use crate::DbError;

/// Create the database `name`; returns the URL of the new database (`admin_url` with its
/// database replaced by `name`).
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, DbError> {
    let name = checked_name(name)?;
    let mut conn = admin_connection(admin_url).await?;
    let created = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(DbError::from);
    let _ = conn.close().await;
    created?;
    Ok(database_url(admin_url, name))
}

/// Drop the database `name` if it exists, disconnecting its sessions (`WITH (FORCE)`).
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    let name = checked_name(name)?;
    let mut conn = admin_connection(admin_url).await?;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map_err(DbError::from);
    let _ = conn.close().await;
    dropped.map(|_| ())
}

/// [`drop_database`] for synchronous code such as `Drop` impls: runs it on a thread of its
/// own with a small runtime, so it works inside or outside a Tokio runtime.
pub fn drop_database_blocking(admin_url: &str, name: &str) -> Result<(), DbError> {
    let (admin_url, name) = (admin_url.to_string(), name.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Internal(format!("cannot start a runtime: {e}")))?
            .block_on(drop_database(&admin_url, &name))
    })
    .join()
    .unwrap_or_else(|_| Err(DbError::Internal("drop_database panicked".into())))
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn checked_name(name: &str) -> Result<&str, DbError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(name)
    } else {
        Err(DbError::Invalid(format!(
            "database name '{name}' must match [a-z_][a-z0-9_]* and have at most 63 characters"
        )))
    }
}

async fn admin_connection(admin_url: &str) -> Result<sqlx::PgConnection, DbError> {
    if !(admin_url.starts_with("postgres:") || admin_url.starts_with("postgresql:")) {
        return Err(DbError::Invalid(
            "the admin url must start with postgres: or postgresql:".into(),
        ));
    }
    sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(DbError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_inject_sql_are_refused() {
        for ok in ["octavia_test_0a1b", "_x", "a"] {
            assert_eq!(checked_name(ok).unwrap(), ok);
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1db",
            "Octavia",
            "x; DROP DATABASE postgres",
            "x\"",
            "a-b",
            long.as_str(),
        ] {
            assert!(
                matches!(checked_name(bad), Err(DbError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn database_url_replaces_the_database() {
        assert_eq!(
            database_url("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "x"), "postgres://h/x");
    }

    #[tokio::test]
    async fn create_and_drop() {
        let Some(admin) = crate::db::test_pg_url() else {
            return;
        };
        let name = format!("octavia_admin_{}", uuid::Uuid::new_v4().simple());
        let url = create_database(&admin, &name).await.unwrap();
        let c = sqlx::PgConnection::connect(&url).await.unwrap();
        c.close().await.unwrap();
        assert!(
            create_database(&admin, &name).await.is_err(),
            "created twice"
        );
        drop_database(&admin, &name).await.unwrap();
        assert!(sqlx::PgConnection::connect(&url).await.is_err());
        drop_database_blocking(&admin, &name).unwrap();
        assert!(matches!(
            create_database("sqlite::memory:", "x").await,
            Err(DbError::Invalid(_))
        ));
    }
}

//! The store: every table the gateway keeps (catalogue, dataset rows, audit
//! log, clients, keys) lives in one SQLite file or one PostgreSQL database.
//!
//! SQL lives in this layer only. Dataset SQL is built with `QueryBuilder`,
//! values bound as parameters, identifiers taken from the schema's whitelist.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod datasets;
pub mod sql;

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

/// Errors of the store layer, with the context an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply the store's migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Which database engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the store: cheap to clone (the pools are reference counted).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`) and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let store = Store::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// A pool of its own on the same database as `self` (already migrated),
    /// so that one kind of work cannot take every connection of the others.
    /// An in-memory SQLite database exists once per pool: it is shared instead.
    pub async fn sibling(&self, url: &str, max_connections: u32) -> Result<Store, StoreError> {
        if self.backend() == Backend::Sqlite && url.contains(":memory:") {
            return Ok(self.clone());
        }
        Store::connect(url, max_connections).await
    }

    async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact_password(url),
            source,
        };
        let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            Store::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(connect_error)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                // LIKE is case-sensitive on PostgreSQL; make SQLite agree.
                .pragma("case_sensitive_like", "ON");
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            Store::Sqlite(pool)
        };
        Ok(store)
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// True when the store answers a trivial query (readiness).
    pub async fn ping(&self) -> bool {
        let result = match self {
            Store::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
            Store::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
        };
        result.is_ok()
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// Hides the password of a database URL before it reaches a log or an error.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme_end], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords never appear in messages about the store.
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://app@db/x"),
            "postgres://app@db/x"
        );
        assert_eq!(redact_password("sqlite:data/p.db"), "sqlite:data/p.db");
    }
}

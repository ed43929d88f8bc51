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

pub mod alter;
pub mod changes;
pub mod copy;
pub mod copy_binary;
pub mod datasets;
pub mod direct;
pub mod policies;
pub mod probe;
pub mod publishing;
pub mod replica;
pub mod retired;
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
    #[error(
        "the table {0} of an unfinished import was cleaned up: the import stalled past the grace period"
    )]
    ImportCleanedUp(String),
    #[error("the value {value} does not fit column `{column}`")]
    Unfit { column: String, value: String },
}

impl StoreError {
    /// The query named a table that is gone: a catalogue older than the
    /// cleanup of a retired version (PostgreSQL 42P01, SQLite "no such table").
    pub fn is_missing_table(&self) -> bool {
        match self {
            StoreError::Sql(sqlx::Error::Database(error)) => {
                error.code().as_deref() == Some("42P01")
                    || error.message().starts_with("no such table")
            }
            _ => false,
        }
    }
}

impl StoreError {
    /// True when the store cannot serve right now (down, unreachable, busy)
    /// rather than refusing this statement: the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } | StoreError::Sql(source) => is_unavailable(source),
            StoreError::Migrate(_) | StoreError::ImportCleanedUp(_) | StoreError::Unfit { .. } => {
                false
            }
        }
    }
}

/// PostgreSQL codes of a server that is going away, starting or full:
/// `57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect
/// now, `53300` too many connections (class `08`, connection exceptions, too).
const POSTGRES_UNAVAILABLE: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];

/// SQLite primary result codes of a file that is locked or cannot be read:
/// `SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_IOERR`, `SQLITE_CANTOPEN`.
const SQLITE_UNAVAILABLE: [i32; 4] = [5, 6, 10, 14];

/// True for the errors of a store that cannot serve right now: a pool
/// timeout or a closed pool, a refused, reset or lost connection, a server
/// shutting down or starting up, a locked SQLite file.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => {
            if let Some(error) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = error.code();
                code.starts_with("08") || POSTGRES_UNAVAILABLE.contains(&code)
            } else {
                // SQLite reports extended codes: the primary code is the low byte.
                error
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| SQLITE_UNAVAILABLE.contains(&(code & 0xff)))
            }
        }
        _ => false,
    }
}

/// Which database engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool's connections at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, idle or in use.
    pub open: u32,
    pub idle: usize,
    /// Most connections the pool may open.
    pub max: u32,
}

/// A handle on the store: cheap to clone (the pools are reference counted).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`) and applies migrations.
    /// A request waits at most `acquire_timeout` for a connection: when the
    /// store is down it fails after that, instead of queueing.
    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let store = Store::connect(url, max_connections, acquire_timeout).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// A pool of its own on the same database as `self` (already migrated),
    /// so that one kind of work cannot take every connection of the others.
    /// An in-memory SQLite database exists once per pool: it is shared instead.
    pub async fn sibling(
        &self,
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store, StoreError> {
        if self.backend() == Backend::Sqlite && url.contains(":memory:") {
            return Ok(self.clone());
        }
        Store::connect(url, max_connections, acquire_timeout).await
    }

    async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact_password(url),
            source,
        };
        let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
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
                .acquire_timeout(acquire_timeout)
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

    /// The pool's connections now (for the metrics).
    pub fn pool_status(&self) -> PoolStatus {
        match self {
            Store::Sqlite(pool) => PoolStatus {
                open: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            },
            Store::Postgres(pool) => PoolStatus {
                open: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            },
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
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

    /// A store that cannot serve right now is told apart from a failed statement.
    #[test]
    fn classifies_driver_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
        ] {
            assert!(StoreError::Sql(error).is_unavailable());
        }
        for error in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            assert!(!StoreError::Sql(error).is_unavailable());
        }
    }

    /// SQLite: a locked file is unavailable; a bad statement is not.
    #[tokio::test]
    async fn classifies_sqlite_errors() {
        use sqlx::{ConnectOptions, Connection};
        let (store, _guard) = test_support::sqlite().await;
        let Store::Sqlite(pool) = &store else {
            unreachable!("a SQLite test store")
        };
        let options = (*pool.connect_options())
            .clone()
            .busy_timeout(Duration::ZERO);
        let mut holder = options.connect().await.unwrap();
        let mut other = options.connect().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let busy = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(is_unavailable(&busy), "{busy}");
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(!is_unavailable(&missing), "{missing}");
        holder.close().await.unwrap();
    }

    /// PostgreSQL: a connection the server ends (`57P01`) is unavailable; an
    /// unknown relation is not.
    #[tokio::test]
    async fn classifies_postgres_errors() {
        let Some((store, _guard)) = test_support::postgres().await else {
            return;
        };
        let Store::Postgres(pool) = &store else {
            unreachable!("a PostgreSQL test store")
        };
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(pool)
            .await
            .unwrap_err();
        assert!(!is_unavailable(&missing), "{missing}");
        let ended = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
            .execute(pool)
            .await
            .unwrap_err();
        assert!(is_unavailable(&ended), "{ended:?}");
    }
}

//! Stores for tests: a private SQLite file, or a fresh PostgreSQL database
//! dropped when the guard goes. With `CI=true`, PostgreSQL must be reachable:
//! a test that needs it fails rather than skips.

use sqlx::{Connection, PgConnection};

use super::Store;

/// Where the tests' PostgreSQL server is (`TEST_DATABASE_URL`, else the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A store on a new SQLite file in a temporary folder (kept alive by the guard).
pub async fn sqlite() -> (Store, TestDatabase) {
    let (url, guard) = sqlite_url();
    let store = Store::open(&url, 4, std::time::Duration::from_secs(5))
        .await
        .expect("open SQLite store");
    (store, guard)
}

/// The URL of a new SQLite file in a temporary folder (kept alive by the guard).
pub fn sqlite_url() -> (String, TestDatabase) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("test.db").display());
    (url, TestDatabase::Sqlite(folder))
}

/// A store on a new PostgreSQL database; `None` only outside CI when no server runs.
pub async fn postgres() -> Option<(Store, TestDatabase)> {
    let (url, guard) = postgres_url().await?;
    let store = Store::open(&url, 8, std::time::Duration::from_secs(5))
        .await
        .expect("open PostgreSQL store");
    Some((store, guard))
}

/// The URL of a new, empty PostgreSQL database; `None` only outside CI when no server runs.
pub async fn postgres_url() -> Option<(String, TestDatabase)> {
    let admin_url = postgres_admin_url();
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping PostgreSQL test outside CI: {error}");
            return None;
        }
        Err(error) => panic!("PostgreSQL is required in CI ({admin_url}): {error}"),
    };
    let name = format!("passerelle_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = database_url(&admin_url, &name);
    Some((url, TestDatabase::Postgres { admin_url, name }))
}

fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

/// Removes the test database when dropped.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime guarantee: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

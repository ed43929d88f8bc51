//! `spawn_app`: the real router on a random port, against a fresh store
//! (SQLite file or PostgreSQL database) synced from the demo catalogue.

use std::net::SocketAddr;
use std::path::PathBuf;

use passerelle::config::Settings;
use passerelle::http::state::AppState;
use passerelle::limits::LimitSet;
use passerelle::store::test_support::{self, TestDatabase};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    _database: TestDatabase,
}

pub fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Settings for a test gateway on `database_url`.
pub fn test_settings(database_url: String) -> Settings {
    let mut settings = Settings {
        database_url,
        catalog_dir: repository_path("catalog"),
        policies_dir: repository_path("policies"),
        dev_mode: true,
        database_max_connections: 8,
        ..Settings::default()
    };
    // Tests send hundreds of requests from one address: limits on (every
    // answer carries the RateLimit fields) but far above what they send.
    // tests/api/rate_limits.rs sets the limits it tests.
    let high = LimitSet {
        requests: Some(1_000_000),
        burst: Some(1_000_000),
        daily_rows: Some(0),
        daily_bytes: Some(0),
        ..LimitSet::default()
    };
    settings.limits.anonymous = high;
    settings.limits.partners = high;
    settings
}

/// Starts the gateway; `None` only for PostgreSQL outside CI when no server runs.
pub async fn spawn_app(kind: StoreKind) -> Option<TestApp> {
    spawn_app_with(kind, |_| {}).await
}

/// Starts the gateway with adjusted settings.
pub async fn spawn_app_with(
    kind: StoreKind,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_app_at(kind, |settings, _| adjust(settings)).await
}

/// Starts the gateway with settings that may name its own address
/// (`http://127.0.0.1:port`, the second argument of `adjust`).
pub async fn spawn_app_at(
    kind: StoreKind,
    adjust: impl FnOnce(&mut Settings, &str),
) -> Option<TestApp> {
    passerelle::telemetry::init();
    let (url, database) = match kind {
        StoreKind::Sqlite => test_support::sqlite_url(),
        StoreKind::Postgres => test_support::postgres_url().await?,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let mut settings = test_settings(url);
    adjust(&mut settings, &address);
    let state = passerelle::startup::build_state(settings)
        .await
        .expect("gateway starts");
    let app = passerelle::http::router(state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    });
    Some(TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        _database: database,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn post_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// A token from the gateway's own key, as `passerelle token` mints it.
    pub async fn token(&self, subject: &str, roles: &[&str], org: Option<&str>) -> String {
        let roles: Vec<String> = roles.iter().map(|role| role.to_string()).collect();
        let keys = passerelle::auth::KeyRing::load(&self.state.store, &self.state.settings.auth)
            .await
            .expect("key ring");
        keys.mint(subject, org, &roles, 600).await.expect("token")
    }
}

/// Runs one async test body on SQLite and on PostgreSQL (skipped outside CI
/// only when no PostgreSQL server runs; in CI it must run).
#[macro_export]
macro_rules! on_both_stores {
    ($(#[$meta:meta])* async fn $name:ident($app:ident: TestApp) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$meta])*
            async fn run($app: $crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::StoreKind::Sqlite).await.expect("SQLite app");
                run(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::StoreKind::Postgres).await {
                    run(app).await;
                }
            }
        }
    };
}

/// Runs `async fn $function(kind: StoreKind)` as a SQLite test and as a
/// PostgreSQL test, for tests that start their own gateways.
#[macro_export]
macro_rules! test_both_stores {
    ($function:ident) => {
        mod $function {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$function($crate::helpers::StoreKind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$function($crate::helpers::StoreKind::Postgres).await;
            }
        }
    };
}

/// Parses a problem document and checks its required members.
pub async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/problem+json")
    );
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("X-Request-Id");
    let body: serde_json::Value = response.json().await.expect("problem JSON");
    for member in [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "request_id",
        "message",
    ] {
        assert!(
            body.get(member).is_some(),
            "problem lacks `{member}`: {body}"
        );
    }
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], request_id.as_str());
    body
}

impl TestApp {
    /// Audit events matching `filters` (a query string), newest first, as an auditor reads them.
    pub async fn audit_events(&self, filters: &str) -> Vec<serde_json::Value> {
        let auditor = self.token("test-auditor", &["auditor"], None).await;
        let response = self
            .get_as(&format!("/api/v1/audit/events?{filters}"), &auditor)
            .await;
        assert_eq!(
            response.status(),
            200,
            "audit events readable by an auditor"
        );
        let page: serde_json::Value = response.json().await.expect("event page");
        page["events"].as_array().cloned().expect("events array")
    }

    /// The audit event of one request, by its `X-Request-Id`.
    pub async fn audit_event_of(&self, response: &reqwest::Response) -> serde_json::Value {
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .expect("request id")
            .to_owned();
        let events = self.audit_events("limit=1000").await;
        events
            .into_iter()
            .find(|event| event["request_id"] == request_id.as_str())
            .unwrap_or_else(|| panic!("no audit event for request {request_id}"))
    }
}

/// Runs one SQL statement directly on the test store (to tamper with it).
pub async fn execute(app: &TestApp, sql: &str) {
    use passerelle::store::Store;
    let statement = sqlx::AssertSqlSafe(sql.to_owned());
    match &app.state.store {
        Store::Sqlite(pool) => sqlx::raw_sql(statement).execute(pool).await.map(|_| ()),
        Store::Postgres(pool) => sqlx::raw_sql(statement).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// Whether the Python module `module` (from PyPI package `package`) can be
/// imported. In CI (`CI=true`) it must be: `.ci/run` installs it, and a
/// missing one fails the test rather than skipping it.
pub fn python_module_available(module: &str, package: &str) -> bool {
    let available = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install the {package} package"
        );
        eprintln!("skipping: python3 -m pip install {package} to run this test");
    }
    available
}

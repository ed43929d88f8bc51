//! The store goes away and comes back: PostgreSQL stopped and restarted
//! during reads. Callers get a 503 problem with `Retry-After` quickly (never
//! a 500, never a hang), readiness answers at once from its cached probe, and
//! everything recovers by itself when the store returns, with no audit event
//! lost for any answer that was given.
//!
//! The PostgreSQL server is the test's own, on a free port in a temporary
//! folder: stopping the shared server would break every other test.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use passerelle::audit::EventQuery;
use sqlx::{Connection, PgConnection};

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
const OPEN: &str = "/api/v1/data/frequentation-musees";
const CLOSED: &str = "/api/v1/data/effectifs-services";
/// How long the store stays down: long enough for several failed reads in a row.
const OUTAGE: Duration = Duration::from_secs(3);

/// A PostgreSQL server of the test's own, stopped and removed on drop.
struct TemporaryPostgres {
    folder: tempfile::TempDir,
    port: u16,
    /// PostgreSQL refuses to run as root: then its commands run as `postgres`.
    as_postgres_user: bool,
}

impl TemporaryPostgres {
    /// Creates and starts a cluster; `None` outside CI when PostgreSQL is not installed.
    async fn start() -> Option<TemporaryPostgres> {
        if !Path::new(POSTGRES_BIN).join("pg_ctl").exists() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "PostgreSQL binaries are required in CI ({POSTGRES_BIN})"
            );
            eprintln!("skipping the outage test: no PostgreSQL binaries in {POSTGRES_BIN}");
            return None;
        }
        let folder = tempfile::tempdir().expect("temporary folder");
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(folder.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster folder to postgres");
        }
        let port = free_port();
        let server = TemporaryPostgres {
            folder,
            port,
            as_postgres_user,
        };
        let data = server.data_dir();
        server
            .run(
                "initdb",
                &[
                    "-D",
                    path_str(&data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .await;
        server.start_server().await;
        let mut admin = PgConnection::connect(&server.url("postgres"))
            .await
            .expect("connect to the test's PostgreSQL");
        sqlx::query("CREATE DATABASE passerelle")
            .execute(&mut admin)
            .await
            .expect("create the gateway's database");
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            path_str(self.folder.path())
        );
        let data = self.data_dir();
        let log = self.folder.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
        .await;
    }

    /// Stops at once, as a crash or a cut network would: no goodbye to clients.
    async fn stop_server(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        )
        .await;
    }

    async fn run(&self, program: &str, arguments: &[&str]) {
        let binary = Path::new(POSTGRES_BIN).join(program);
        let mut command = if self.as_postgres_user {
            let mut command = tokio::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            tokio::process::Command::new(&binary)
        };
        let output = command
            .args(arguments)
            .current_dir(self.folder.path())
            .output()
            .await
            .unwrap_or_else(|error| panic!("{program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {arguments:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for TemporaryPostgres {
    fn drop(&mut self) {
        let binary = Path::new(POSTGRES_BIN).join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_postgres_user {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            std::process::Command::new(&binary)
        };
        // Already stopped is fine: the folder goes with the guard either way.
        let _ = command
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .current_dir(self.folder.path())
            .output();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// One answer seen by a reader, on the test's clock.
#[derive(Debug, Clone)]
struct Answer {
    path: &'static str,
    started: Duration,
    elapsed: Duration,
    status: u16,
    retry_after: bool,
    problem: bool,
    request_id: String,
}

/// Reads `path` in a loop (distinct pages, so the page cache does not answer)
/// until `stop`, recording every answer.
fn spawn_reader(
    app: &TestApp,
    path: &'static str,
    token: Option<String>,
    origin: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    pages: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let client = app.client.clone();
    let base = app.url(path);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let page = pages.fetch_add(1, Ordering::Relaxed);
            let mut request = client
                .get(format!("{base}?limit=2&offset={page}"))
                .timeout(Duration::from_secs(30));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let started = origin.elapsed();
            let response = request
                .send()
                .await
                .expect("an answer, not a cut connection");
            let elapsed = origin.elapsed() - started;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let answer = Answer {
                path,
                started,
                elapsed,
                status: response.status().as_u16(),
                retry_after: header("retry-after").is_some(),
                problem: header("content-type").as_deref() == Some("application/problem+json"),
                request_id: header("x-request-id").unwrap_or_default(),
            };
            let _ = response.bytes().await;
            answers.lock().unwrap().push(answer);
        }
    })
}

/// One answer of `/health/ready`.
#[derive(Debug, Clone)]
struct Readiness {
    started: Duration,
    elapsed: Duration,
    status: u16,
    /// Its `store` member: the store answered the last probe.
    store: bool,
}

/// Polls `/health/ready` every 100 ms until `stop`.
fn spawn_readiness_poller(
    app: &TestApp,
    origin: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Readiness>>>,
) -> tokio::task::JoinHandle<()> {
    let client = app.client.clone();
    let url = app.url("/health/ready");
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let started = origin.elapsed();
            let response = client
                .get(&url)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("readiness answers");
            let elapsed = origin.elapsed() - started;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("readiness JSON");
            answers.lock().unwrap().push(Readiness {
                started,
                elapsed,
                status,
                store: body["store"] == true,
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// PostgreSQL stopped and restarted during reads of open and closed data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_during_reads() {
    let Some(postgres) = TemporaryPostgres::start().await else {
        return;
    };
    let database_url = postgres.url("passerelle");
    // The SQLite kind only gives a throwaway folder: the store is our own PostgreSQL.
    let app = spawn_app_with(StoreKind::Sqlite, |settings| {
        settings.database_url = database_url;
    })
    .await
    .expect("gateway on the test's PostgreSQL");
    let agent = app.token("agent-outage", &["agent"], None).await;
    for (path, token) in [(OPEN, None), (CLOSED, Some(&agent))] {
        let mut request = app.client.get(app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            200,
            "{path} before the outage"
        );
    }

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let readiness = Arc::new(Mutex::new(Vec::new()));
    let pages = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (path, token) in [
        (OPEN, None),
        (OPEN, None),
        (CLOSED, Some(agent.clone())),
        (CLOSED, Some(agent.clone())),
    ] {
        tasks.push(spawn_reader(
            &app,
            path,
            token,
            origin,
            stop.clone(),
            answers.clone(),
            pages.clone(),
        ));
    }
    tasks.push(spawn_readiness_poller(
        &app,
        origin,
        stop.clone(),
        readiness.clone(),
    ));

    // Act: reads flow, the store goes away, stays away, comes back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    postgres.stop_server().await;
    let stopped_at = origin.elapsed();
    tokio::time::sleep(OUTAGE).await;
    let restart_begun = origin.elapsed();
    postgres.start_server().await;
    let restarted_at = origin.elapsed();
    let recovery_deadline = restarted_at + Duration::from_secs(10);
    let recovered = |answers: &[Answer], path: &str| {
        answers
            .iter()
            .filter(|answer| answer.path == path && answer.started >= restarted_at)
            .find(|answer| answer.status == 200)
            .map(|answer| answer.started + answer.elapsed - restarted_at)
    };
    let ready_again = |readiness: &[Readiness]| {
        readiness
            .iter()
            .find(|probe| probe.started >= restarted_at && probe.status == 200)
            .map(|probe| probe.started + probe.elapsed - restarted_at)
    };
    while origin.elapsed() < recovery_deadline {
        {
            let answers = answers.lock().unwrap();
            if recovered(&answers, OPEN).is_some()
                && recovered(&answers, CLOSED).is_some()
                && ready_again(&readiness.lock().unwrap()).is_some()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little more traffic once recovered: it is served and audited too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("reader");
    }

    // Assert: what callers saw.
    let answers = answers.lock().unwrap().clone();
    let readiness = readiness.lock().unwrap().clone();
    let unexpected: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status != 200 && answer.status != 503)
        .collect();
    let refusals_without_retry: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == 503 && !(answer.problem && answer.retry_after))
        .collect();
    assert!(
        refusals_without_retry.is_empty(),
        "every 503 is a problem document with Retry-After: {refusals_without_retry:?}"
    );
    let during_outage: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.started >= stopped_at && answer.started < restart_begun)
        .collect();
    let slowest = during_outage
        .iter()
        .map(|answer| answer.elapsed)
        .max()
        .unwrap_or_default();
    let refused = during_outage
        .iter()
        .filter(|answer| answer.status == 503)
        .count();
    let ready_during_outage: Vec<&Readiness> = readiness
        .iter()
        .filter(|probe| probe.started >= stopped_at && probe.started < restart_begun)
        .collect();
    let slowest_readiness = ready_during_outage
        .iter()
        .map(|probe| probe.elapsed)
        .max()
        .unwrap_or_default();
    let readiness_down_after = ready_during_outage
        .iter()
        .find(|probe| probe.status == 503 && !probe.store)
        .map(|probe| probe.started + probe.elapsed - stopped_at);
    let ready_after_restart = ready_again(&readiness);
    let open_back = recovered(&answers, OPEN);
    let closed_back = recovered(&answers, CLOSED);
    eprintln!(
        "outage: {} reads started while the store was down, {refused} refused with 503, {} other errors, slowest answer {}; \
         readiness slowest {} (503 {} after the stop); \
         after the restart: open data 200 after {}, closed data after {}, readiness 200 after {}",
        during_outage.len(),
        unexpected.len(),
        seconds(slowest),
        seconds(slowest_readiness),
        readiness_down_after.map_or("never".to_owned(), seconds),
        open_back.map_or("never".to_owned(), seconds),
        closed_back.map_or("never".to_owned(), seconds),
        ready_after_restart.map_or("never".to_owned(), seconds),
    );
    assert!(
        unexpected.is_empty(),
        "only 200 or 503, never a 500: {unexpected:?}"
    );
    assert!(
        refused >= 4,
        "reads kept being answered (503) while the store was down: {refused}"
    );
    assert!(
        slowest <= Duration::from_millis(2500),
        "a read while the store is down is refused within ~1 s: slowest {}",
        seconds(slowest)
    );
    for answer in &during_outage {
        if answer.started + answer.elapsed < restart_begun {
            assert_eq!(
                answer.status, 503,
                "no data without the store and its audit: {answer:?}"
            );
        }
    }
    assert!(
        readiness_down_after.is_some(),
        "readiness said 503 while the store was down: {ready_during_outage:?}"
    );
    assert!(
        slowest_readiness < Duration::from_millis(500),
        "readiness answers at once while the store is down: slowest {}",
        seconds(slowest_readiness)
    );
    for (path, back) in [(OPEN, open_back), (CLOSED, closed_back)] {
        let back = back.unwrap_or_else(|| panic!("{path} never answered 200 after the restart"));
        assert!(
            back <= Duration::from_millis(2500),
            "{path} answers again within ~1 s of the store's return: {}",
            seconds(back)
        );
    }
    let ready_after_restart = ready_after_restart.expect("readiness 200 again after the restart");
    assert!(
        ready_after_restart <= Duration::from_millis(2500),
        "readiness follows the store back within about a probe interval: {}",
        seconds(ready_after_restart)
    );

    // Assert: the audit trail holds every answer that was given and verifies.
    let verification = app.state.audit.verify(None, None).await.expect("verify");
    assert!(verification.ok, "the chain verifies: {verification:?}");
    let recorded: HashSet<String> = app
        .state
        .audit
        .stream(EventQuery::default())
        .map(|event| event.expect("event").event.request_id)
        .collect()
        .await;
    let lost: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == 200 && !recorded.contains(&answer.request_id))
        .collect();
    assert!(lost.is_empty(), "no event lost for a 200: {lost:?}");
}

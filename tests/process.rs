//! The gateway as a process: killed with SIGKILL under load, every closed-data
//! response a client fully received has its audit event, open-data events
//! (buffered) are missing only for the last `buffer_ms`, and the chain still verifies;
//! two gateways on one PostgreSQL keep one valid chain.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passerelle::store::test_support::{self, TestDatabase};

fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// `passerelle` with the test's store and the demo catalogue and policies.
fn command(database_url: &str, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    command
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("PASSERELLE_CATALOG_DIR", repository_path("catalog"))
        .env("PASSERELLE_POLICIES_DIR", repository_path("policies"))
        .env("PASSERELLE_DEV_MODE", "true")
        .env("RUST_LOG", "warn");
    command
}

struct Gateway {
    child: Child,
    address: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(database_url: &str) -> Gateway {
    // The HTTP client needs the process's TLS provider, even for plain HTTP.
    passerelle::telemetry::init();
    let port = free_port();
    let child = command(database_url, &["serve"])
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
    // Owned by the guard from here on: killed and waited for on every path.
    let gateway = Gateway {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let ready = client
            .get(format!("{}/health/ready", gateway.address))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not become ready");
}

/// A response that reached the client: its request id, whether it carried
/// closed data, and when it arrived.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    closed: bool,
    at: std::time::Instant,
}

/// Sends requests from `workers` tasks until stopped, alternating an open
/// page and, with `token`, a closed one; returns the responses that arrived
/// complete.
async fn load(
    address: String,
    workers: usize,
    prefix: &'static str,
    token: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Received> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let address = address.clone();
        let received = received.clone();
        let stop = stop.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut index = 0;
            while !*stop.borrow() {
                index += 1;
                let id = format!("{prefix}-{worker}-{index}");
                let closed = token.is_some() && (worker + index) % 2 == 0;
                let mut request = if closed {
                    client.get(format!(
                        "{address}/api/v1/data/effectifs-services?limit=5&offset={}",
                        index % 10
                    ))
                } else {
                    client.get(format!(
                        "{address}/api/v1/data/consommations-energie-batiments?limit=5&offset={index}"
                    ))
                };
                if let (true, Some(token)) = (closed, &token) {
                    request = request.bearer_auth(token);
                }
                let Ok(response) = request.header("X-Request-Id", &id).send().await else {
                    break;
                };
                if response.status() != 200 {
                    continue;
                }
                if response.bytes().await.is_ok() {
                    received.lock().unwrap().push(Received {
                        id,
                        closed,
                        at: std::time::Instant::now(),
                    });
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }

    received.lock().unwrap().clone()
}

/// Request ids in the audit log, through `passerelle audit export`.
fn audited_ids(database_url: &str) -> HashSet<String> {
    let output = command(database_url, &["audit", "export", "--format", "ndjson"])
        .output()
        .expect("audit export runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("NDJSON event"))
        .filter_map(|event| event["request_id"].as_str().map(str::to_owned))
        .collect()
}

fn verify(database_url: &str) -> serde_json::Value {
    let output = command(database_url, &["audit", "verify"])
        .output()
        .expect("audit verify runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("verify report: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(output.status.success(), "chain broken: {report}");
    report
}

async fn database(postgres: bool) -> Option<(String, TestDatabase)> {
    if postgres {
        test_support::postgres_url().await
    } else {
        Some(test_support::sqlite_url())
    }
}

/// SIGTERM, then waits for the process to exit.
fn stop_gracefully(mut gateway: Gateway) {
    let status = Command::new("kill")
        .args(["-TERM", &gateway.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exited = gateway.child.wait().expect("wait");
    assert!(exited.success(), "clean exit: {exited}");
}

/// `audit.buffer_ms` of the gateways these tests start (the default).
const BUFFER_MS: u64 = 50;
/// A commit that was under way when the process was killed: on a loaded test
/// machine one transaction can take this long, and the events it held were
/// queued before it began.
const COMMIT_IN_FLIGHT: Duration = Duration::from_millis(250);

/// A development token, minted by the command line on the gateway's store.
fn dev_token(database_url: &str, subject: &str, roles: &str) -> String {
    let output = command(database_url, &["token", "--sub", subject, "--roles", roles])
        .output()
        .expect("passerelle token runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// SIGKILL under open and closed traffic: every closed-data response that
/// reached the client has its event; open-data events (buffered) may be
/// missing only for responses of the last `buffer_ms` before the kill; the
/// chain verifies.
async fn survives_sigkill(postgres: bool) {
    let Some((url, _database)) = database(postgres).await else {
        return;
    };
    let mut gateway = start(&url).await;
    let token = dev_token(&url, "agent-crash", "agent");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(load(
        gateway.address.clone(),
        8,
        "crash",
        Some(token),
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = std::time::Instant::now();
    gateway.child.kill().expect("SIGKILL");
    let _ = gateway.child.wait();
    let _ = stop.send(true);
    let received = load.await.unwrap();
    let closed = received.iter().filter(|response| response.closed).count();
    assert!(
        closed > 10 && received.len() - closed > 10,
        "the load ran ({} responses, {closed} of closed data)",
        received.len()
    );
    drop(gateway);
    // Restart, then check with the command line as an operator would.
    let restarted = start(&url).await;
    drop(restarted);
    let audited = audited_ids(&url);
    let missing: Vec<&Received> = received
        .iter()
        .filter(|response| !audited.contains(&response.id))
        .collect();
    let closed_missing: Vec<&Received> = missing
        .iter()
        .copied()
        .filter(|response| response.closed)
        .collect();
    assert!(
        closed_missing.is_empty(),
        "{} closed-data responses have no audit event: {closed_missing:?}",
        closed_missing.len()
    );
    let window = Duration::from_millis(BUFFER_MS) + COMMIT_IN_FLIGHT;
    let old_missing: Vec<(String, Duration)> = missing
        .iter()
        .filter(|response| response.at + window < killed)
        .map(|response| (response.id.clone(), killed - response.at))
        .collect();
    assert!(
        old_missing.is_empty(),
        "open-data events missing for responses received well before the kill: {old_missing:?}"
    );
    eprintln!(
        "{} responses ({closed} closed), {} open-data events lost to the kill",
        received.len(),
        missing.len()
    );
    verify(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_audit_event_sqlite() {
    survives_sigkill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_audit_event_postgres() {
    survives_sigkill(true).await;
}

/// Two gateways writing to one PostgreSQL at once keep one verifiable chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_one_chain() {
    let Some((url, _database)) = database(true).await else {
        return;
    };
    let first = start(&url).await;
    let second = start(&url).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let one = tokio::spawn(load(first.address.clone(), 4, "one", None, stopped.clone()));
    let two = tokio::spawn(load(second.address.clone(), 4, "two", None, stopped));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    // Stopped as an operator would: the buffered open-data events are written.
    stop_gracefully(first);
    stop_gracefully(second);
    assert!(!one.is_empty() && !two.is_empty());
    let audited = audited_ids(&url);
    assert!(
        one.iter()
            .chain(&two)
            .all(|response| audited.contains(&response.id))
    );
    let report = verify(&url);
    assert!(
        report["checked"].as_i64().unwrap() >= (one.len() + two.len()) as i64,
        "{report}"
    );
}

fn run(database_url: &str, arguments: &[&str], dev_mode: bool) -> (bool, i32, String, String) {
    let output = command(database_url, arguments)
        .env("PASSERELLE_DEV_MODE", dev_mode.to_string())
        .output()
        .expect("passerelle runs");
    (
        output.status.success(),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The operator's and steward's commands, as the README shows them.
#[test]
fn command_line() {
    let (url, _database) = test_support::sqlite_url();
    let (ok, _, out, err) = run(&url, &["catalog", "sync"], false);
    assert!(ok, "{out}{err}");
    assert!(out.contains("imported 10"), "{out}");

    // Development tokens only in dev mode.
    let (ok, _, _, err) = run(&url, &["token", "--sub", "x", "--roles", "agent"], false);
    assert!(!ok && err.contains("dev mode"), "{err}");
    let (ok, _, out, _) = run(&url, &["token", "--sub", "x", "--roles", "agent"], true);
    assert!(ok && out.trim().split('.').count() == 3, "{out}");

    // Stewards test a decision before deploying a policy change.
    let (ok, _, out, _) = run(
        &url,
        &[
            "policy",
            "check",
            "--roles",
            "partenaire",
            "--dataset",
            "locations-velos",
        ],
        false,
    );
    let decision: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        ok && decision["allowed"] == true && decision["view"] == "par-commune",
        "{decision}"
    );
    let (ok, code, _, _) = run(
        &url,
        &[
            "policy",
            "check",
            "--dataset",
            "infractions-videoprotection",
        ],
        false,
    );
    assert!(!ok && code == 3, "refused decisions exit with 3");

    // Partner clients: the secret is shown once, never listed.
    let (ok, _, out, _) = run(
        &url,
        &[
            "clients",
            "create",
            "--org",
            "Troyes",
            "--roles",
            "partenaire",
        ],
        false,
    );
    assert!(ok, "{out}");
    let secret = out
        .lines()
        .find_map(|line| line.strip_prefix("client_secret: "))
        .expect("the secret is printed")
        .to_owned();
    let (ok, _, listing, _) = run(&url, &["clients", "list"], false);
    assert!(
        ok && listing.contains("Troyes") && !listing.contains(&secret),
        "{listing}"
    );

    // An import with a bad row changes nothing and says where.
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("air.csv");
    std::fs::write(
        &file,
        "station,commune,position,date,polluant,concentration_ugm3\nA,Troyes,\"48.3,4.07\",2024-13-01,no2,1\n",
    )
    .unwrap();
    let (ok, _, _, err) = run(
        &url,
        &["import", "qualite-air-stations", file.to_str().unwrap()],
        false,
    );
    assert!(
        !ok && err.contains("line 2") && err.contains("date"),
        "{err}"
    );

    // A dry run reports and imports nothing.
    let (ok, _, out, _) = run(
        &url,
        &[
            "import",
            "--dry-run",
            "qualite-air-stations",
            file.to_str().unwrap(),
        ],
        false,
    );
    assert!(
        !ok && out.contains("1 bad row(s)") && out.contains("line 2"),
        "{out}"
    );

    // Scripts create, fill and retire datasets served from the store.
    let definition = folder.path().join("comptages.yaml");
    std::fs::write(
        &definition,
        "id: comptages\ntitle: Comptages\npublisher: Troyes Champagne Métropole\nlicence: etalab-2.0\n\
         access: internal\nschema: {fields: [{name: compteur, type: string}, {name: passages, type: integer}]}\n",
    )
    .unwrap();
    let create = ["datasets", "create", definition.to_str().unwrap()];
    let (ok, _, out, err) = run(&url, &create, false);
    assert!(ok && out.contains("created `comptages`"), "{out}{err}");
    let (ok, _, _, err) = run(&url, &create, false);
    assert!(!ok && err.contains("already"), "{err}");
    let rows = folder.path().join("comptages.csv");
    std::fs::write(&rows, "compteur,passages\nPont,1\nGare,2\n").unwrap();
    let (ok, _, out, err) = run(
        &url,
        &["import", "comptages", rows.to_str().unwrap()],
        false,
    );
    assert!(ok && out.contains("imported 2 rows"), "{out}{err}");
    let (ok, _, out, err) = run(
        &url,
        &["datasets", "retire", "comptages", "--by", "ops"],
        false,
    );
    assert!(ok && out.contains("retired"), "{out}{err}");

    // The audit chain verifies from the command line.
    let (ok, _, out, _) = run(&url, &["audit", "verify"], false);
    assert!(ok, "{out}");
}

/// Changes made from a shell are audited in the API's chain: `datasets
/// create|update|retire` and `import` each write one event (subject
/// `cli:$USER`, the action the API would record, what changed), and the
/// chain still verifies. On both stores.
async fn operator_changes_are_audited(postgres: bool) {
    let Some((url, _database)) = database(postgres).await else {
        return;
    };
    let as_operator = |arguments: &[&str]| {
        let output = command(&url, arguments)
            .env("USER", "ines")
            .output()
            .expect("passerelle runs");
        let (out, err) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(output.status.success(), "{arguments:?}: {out}{err}");
    };
    let folder = tempfile::tempdir().unwrap();
    let definition = folder.path().join("comptages.yaml");
    let write_definition = |title: &str| {
        std::fs::write(
            &definition,
            format!(
                "id: comptages\ntitle: {title}\npublisher: Troyes Champagne Métropole\nlicence: etalab-2.0\n\
                 access: internal\nschema: {{fields: [{{name: compteur, type: string}}, {{name: passages, type: integer}}]}}\n"
            ),
        )
        .unwrap();
    };
    write_definition("Comptages");
    let rows = folder.path().join("comptages.csv");
    std::fs::write(&rows, "compteur,passages\nPont,1\nGare,2\n").unwrap();
    let definition_path = definition.to_str().unwrap().to_owned();
    as_operator(&["datasets", "create", &definition_path]);
    write_definition("Comptages vélo");
    as_operator(&["datasets", "update", &definition_path]);
    as_operator(&["import", "comptages", rows.to_str().unwrap()]);
    as_operator(&["datasets", "retire", "comptages"]);

    let report = verify(&url);
    assert_eq!(report["ok"], true, "{report}");
    let output = command(&url, &["audit", "export", "--format", "ndjson"])
        .output()
        .expect("audit export runs");
    assert!(output.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("NDJSON event"))
        .filter(|event: &serde_json::Value| event["auth_method"] == "local")
        .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|event| {
            (
                event["path"].as_str().unwrap().to_owned(),
                event["action"].as_str().unwrap().to_owned(),
                event["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("passerelle datasets create", "classify"),
        ("passerelle datasets update", "manage"),
        ("passerelle import", "publish"),
        ("passerelle datasets retire", "manage"),
    ];
    assert_eq!(
        summary,
        expected
            .iter()
            .map(|(path, action)| (path.to_string(), action.to_string(), "cli:ines".to_owned()))
            .collect::<Vec<_>>()
    );
    for event in &events {
        assert_eq!(event["dataset"], "comptages", "{event}");
        assert_eq!(event["decision"], "allow", "{event}");
    }
    let changes = |index: usize| -> serde_json::Value {
        serde_json::from_str(events[index]["changes"].as_str().unwrap()).unwrap()
    };
    assert_eq!(changes(0)["created"], true);
    assert_eq!(
        changes(1)["fields"][0],
        serde_json::json!({"field": "title", "old": "Comptages", "new": "Comptages vélo"})
    );
    assert_eq!(changes(2)["rows"], 2);
    assert_eq!(changes(2)["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(changes(3)["by"], "cli:ines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_are_audited_sqlite() {
    operator_changes_are_audited(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_are_audited_postgres() {
    operator_changes_are_audited(true).await;
}

/// Rows of each table that a read-only command must leave alone.
async fn table_counts(database_url: &str) -> Vec<(String, i64)> {
    let store = passerelle::store::Store::open(database_url, 1, Duration::from_secs(5))
        .await
        .expect("store");
    let mut counts = Vec::new();
    for table in ["auth_signing_keys", "audit_events", "audit_checkpoints"] {
        let sql = format!("SELECT count(*) FROM {table}");
        let count = match &store {
            passerelle::store::Store::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
            }
            passerelle::store::Store::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("count");
        counts.push((table.to_owned(), count));
    }
    store.close().await;
    counts
}

/// `audit verify` and `audit export` only read: no signing key created, no
/// checkpoint signed, no event written (they used to start the writer,
/// which signed a checkpoint on exit, and to create a key on a fresh store).
/// On both stores.
async fn read_only_audit_commands(postgres: bool) {
    let Some((url, _database)) = database(postgres).await else {
        return;
    };
    let (ok, _, out, err) = run(&url, &["catalog", "sync"], false);
    assert!(ok, "{out}{err}");
    let before = table_counts(&url).await;
    let (ok, _, out, err) = run(&url, &["audit", "verify"], false);
    assert!(ok, "{out}{err}");
    let (ok, _, out, err) = run(&url, &["audit", "export", "--format", "ndjson"], false);
    assert!(ok, "{out}{err}");
    assert_eq!(table_counts(&url).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_audit_commands_write_nothing_sqlite() {
    read_only_audit_commands(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_audit_commands_write_nothing_postgres() {
    read_only_audit_commands(true).await;
}

/// `passerelle health`, the container's health check: exit 0 while the
/// gateway it is pointed at is ready, 1 when nothing answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_command_asks_the_gateway() {
    let (url, _database) = test_support::sqlite_url();
    let gateway = start(&url).await;
    let listen = gateway.address.trim_start_matches("http://").to_owned();
    let output = command(&url, &["health"])
        .env("PASSERELLE_SERVER__LISTEN", &listen)
        .output()
        .expect("passerelle health runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(gateway);
    let output = command(&url, &["health", "--url", &format!("http://{listen}")])
        .output()
        .expect("passerelle health runs");
    assert_eq!(output.status.code(), Some(1), "nothing listens any more");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not ready"));
}

/// A wrong setting is reported once, by its key and its file, without the
/// `default.` profile prefix figment adds; an environment variable is named
/// as it was set.
#[test]
fn configuration_errors_name_the_setting_once() {
    let (url, _database) = test_support::sqlite_url();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("passerelle.toml");
    std::fs::write(&file, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let (ok, _, _, err) = run(
        &url,
        &["--config", file.to_str().unwrap(), "audit", "verify"],
        false,
    );
    assert!(!ok);
    assert!(err.contains("`server.listen`"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(!err.contains("default."), "{err}");
    assert_eq!(err.matches("listen").count(), 1, "printed once: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let output = command(&url, &["audit", "verify"])
        .env("PASSERELLE_SERVER__MAX_PAGE_SIZE", "many")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("PASSERELLE_SERVER__MAX_PAGE_SIZE"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// With `PASSERELLE_LOG_FORMAT=json` and the log going to a pipe, every API
/// request is one JSON line (method, route template, status, duration,
/// request id, subject, dataset, rows, bytes) without colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_log_line_per_request() {
    passerelle::telemetry::init();
    let (url, _database) = test_support::sqlite_url();
    let port = free_port();
    let mut child = command(&url, &["serve"])
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PASSERELLE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway starts");
    let stderr = child.stderr.take().expect("stderr");
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let gateway = Gateway {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let path = "/api/v1/data/consommations-energie-batiments?limit=2";
    let mut answered = false;
    for _ in 0..300 {
        let response = client
            .get(format!("{}{path}", gateway.address))
            .header("X-Request-Id", "log-line-1")
            .send()
            .await;
        if let Ok(response) = response {
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the gateway answers");
    drop(gateway);
    let lines = lines.join().unwrap();
    assert!(
        lines.iter().all(|line| !line.contains('\u{1b}')),
        "no colour codes in a pipe"
    );
    let requests: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .filter(|line| line["target"] == "passerelle::request")
        .collect();
    assert_eq!(requests.len(), 1, "{lines:#?}");
    let fields = &requests[0]["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/api/v1/data/{id}");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["request_id"], "log-line-1");
    assert_eq!(fields["subject"], "anonymous");
    assert_eq!(fields["dataset"], "consommations-energie-batiments");
    assert_eq!(fields["rows"], 2);
    assert!(
        fields["bytes"].as_u64().is_some_and(|bytes| bytes > 0),
        "{fields}"
    );
    assert!(fields["duration_ms"].as_f64().is_some(), "{fields}");
}

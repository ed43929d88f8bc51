//! The gateway as a process on SIGTERM: readiness fails at once, new
//! connections are refused, open exports are cut after the grace period with
//! their completion events, the audit chain is flushed and verifies, and the
//! process exits in bounded time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use passerelle::store::test_support::{self, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATASET: &str = "grand-export";
const GRACE_SECONDS: u64 = 2;

fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// A catalogue folder with one open dataset large enough to outlast a slow reader.
fn big_catalog(rows: usize) -> tempfile::TempDir {
    use std::io::Write;
    let folder = tempfile::tempdir().expect("catalogue folder");
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(folder.path().join(format!("{DATASET}.csv"))).expect("csv"),
    );
    writeln!(csv, "id,label,value").unwrap();
    for id in 1..=rows {
        writeln!(
            csv,
            "{id},ligne numéro {id} du jeu de test,{}",
            id * 7 % 10_000
        )
        .unwrap();
    }
    csv.flush().unwrap();
    std::fs::write(
        folder.path().join(format!("{DATASET}.yaml")),
        format!(
            "id: {DATASET}\ntitle: Grand export\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
             source:\n  file: {DATASET}.csv\n  delimiter: \",\"\n"
        ),
    )
    .unwrap();
    folder
}

/// `passerelle` with the test's store, catalogue and the demo policies.
fn command(database_url: &str, catalog: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    command
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("PASSERELLE_CATALOG_DIR", catalog)
        .env("PASSERELLE_POLICIES_DIR", repository_path("policies"))
        .env("PASSERELLE_DEV_MODE", "true")
        .env("RUST_LOG", "warn");
    command
}

struct Gateway {
    child: Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn start(database_url: &str, catalog: &Path) -> Gateway {
    passerelle::telemetry::init();
    let port = free_port();
    let child = command(database_url, catalog, &["serve"])
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "PASSERELLE_SERVER__SHUTDOWN_GRACE_SECONDS",
            GRACE_SECONDS.to_string(),
        )
        // Only the shutdown may cut the slow export here.
        .env("PASSERELLE_EXPORTS__STALL_SECONDS", "120")
        .env("PASSERELLE_EXPORTS__MIN_BYTES_PER_SECOND", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
    let gateway = Gateway { child, port };
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let ready = client
            .get(gateway.url("/health/ready"))
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

/// Opens a CSV export and reads it slowly until the server closes the connection.
async fn slow_export(port: u16, request_id: &'static str) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let request = format!(
        "GET /api/v1/data/{DATASET}?format=csv HTTP/1.1\r\nHost: test\r\nX-Request-Id: {request_id}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buffer = [0_u8; 512];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Events of the store as `passerelle audit export` prints them.
fn audit_events(database_url: &str, catalog: &Path) -> Vec<serde_json::Value> {
    let output = command(
        database_url,
        catalog,
        &["audit", "export", "--format", "ndjson"],
    )
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
        .map(|line| serde_json::from_str(line).expect("NDJSON event"))
        .collect()
}

fn verify(database_url: &str, catalog: &Path) -> serde_json::Value {
    let output = command(database_url, catalog, &["audit", "verify"])
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

async fn sigterm_with_a_slow_export(postgres: bool) {
    let Some((url, _database)) = database(postgres).await else {
        return;
    };
    let catalog = big_catalog(200_000);
    let mut gateway = start(&url, catalog.path()).await;
    let port = gateway.port;
    let reader = tokio::spawn(slow_export(port, "cut-by-shutdown"));
    // The export is open and streaming.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!reader.is_finished(), "the slow export is still open");

    let signalled = Instant::now();
    terminate(&gateway.child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Readiness fails at once: a 503 while draining, or no answer at all
    // once the listener is closed; new connections are never left hanging.
    let probe = reqwest::Client::new()
        .get(gateway.url("/health/ready"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    match &probe {
        Ok(response) => assert_eq!(response.status(), 503, "readiness while draining"),
        Err(error) => assert!(error.is_connect(), "new connections are refused: {error}"),
    }
    let mut exited = None;
    while signalled.elapsed() < Duration::from_secs(GRACE_SECONDS + 8) {
        if let Some(status) = gateway.child.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = signalled.elapsed();
    eprintln!("exit after SIGTERM: {exited:?} in {waited:?}");
    let status = exited.unwrap_or_else(|| panic!("still running {waited:?} after SIGTERM"));
    assert!(status.success(), "clean exit: {status}");
    assert!(
        waited >= Duration::from_secs(GRACE_SECONDS),
        "requests in flight had their grace period ({waited:?})"
    );
    // The client still reads what the kernel had buffered; the transfer is over.
    reader.abort();

    let events = audit_events(&url, catalog.path());
    let access = events
        .iter()
        .find(|event| event["request_id"] == "cut-by-shutdown" && event["kind"] == "access")
        .expect("access event of the export");
    let completions: Vec<_> = events
        .iter()
        .filter(|event| event["kind"] == "completion" && event["refers_to"] == access["seq"])
        .collect();
    assert_eq!(
        completions.len(),
        1,
        "one completion event: {completions:?}"
    );
    let completion = completions[0];
    assert_eq!(completion["complete"], false, "{completion}");
    // What reached the connection: far from the whole export (about 9 MB).
    let bytes = completion["bytes"].as_i64().expect("bytes");
    assert!(
        bytes > 0 && bytes < 6 * 1024 * 1024,
        "bytes recorded {bytes}: {completion}"
    );
    verify(&url, catalog.path());
}

/// SIGTERM with a slow export open on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_slow_exports_sqlite() {
    sigterm_with_a_slow_export(false).await;
}

/// SIGTERM with a slow export open on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_slow_exports_postgres() {
    sigterm_with_a_slow_export(true).await;
}

/// SIGTERM writes the buffered open-data events still waiting: with
/// `audit.buffer_ms` at a minute the writer would linger twelve seconds for
/// more, so only the shutdown's flush can have written them.
async fn sigterm_flushes_buffered_events(postgres: bool) {
    let Some((url, _database)) = database(postgres).await else {
        return;
    };
    let catalog = big_catalog(10);
    let port = free_port();
    let child = command(&url, catalog.path(), &["serve"])
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PASSERELLE_AUDIT__BUFFER_MS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
    let mut gateway = Gateway { child, port };
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        ready = client
            .get(gateway.url("/health/ready"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway did not become ready");
    for index in 0..3 {
        let response = client
            .get(gateway.url(&format!("/api/v1/data/{DATASET}?limit=2")))
            .header("X-Request-Id", format!("buffered-{index}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
    }
    let signalled = Instant::now();
    terminate(&gateway.child);
    let status = loop {
        if let Some(status) = gateway.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit: {status}");
    let events = audit_events(&url, catalog.path());
    for index in 0..3 {
        let id = format!("buffered-{index}");
        assert!(
            events
                .iter()
                .any(|event| event["request_id"] == id.as_str()),
            "the buffered event of {id} was written at shutdown"
        );
    }
    verify(&url, catalog.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_events_sqlite() {
    sigterm_flushes_buffered_events(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_events_postgres() {
    sigterm_flushes_buffered_events(true).await;
}

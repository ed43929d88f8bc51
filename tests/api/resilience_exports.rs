//! Exports under hostile conditions: slow readers never starve other
//! requests, every export ends with exactly one completion event (finished,
//! cut by the server, or dropped by the client), and one caller cannot hold
//! more exports than its share.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use crate::test_both_stores;

const DATASET: &str = "grand-export";
const ROWS: usize = 200_000;

/// A catalogue folder holding one open dataset of `rows` rows (about 60 bytes each).
fn big_catalog(rows: usize) -> tempfile::TempDir {
    use std::io::Write;
    let folder = tempfile::tempdir().expect("catalogue folder");
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(folder.path().join(format!("{DATASET}.csv"))).expect("csv"),
    );
    writeln!(csv, "id,label,commune,value").unwrap();
    for id in 1..=rows {
        writeln!(
            csv,
            "{id},ligne numéro {id} du jeu,Commune {},{}.{}",
            id % 97,
            id * 7 % 10_000,
            id % 100
        )
        .unwrap();
    }
    csv.flush().unwrap();
    std::fs::write(
        folder.path().join(format!("{DATASET}.yaml")),
        format!(
            "id: {DATASET}\ntitle: Grand export\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
             source:\n  file: {DATASET}.csv\n  delimiter: \",\"\n\
             schema:\n  primaryKey: id\n  fields:\n    - {{name: id, type: integer}}\n    - {{name: label, type: string}}\n    - {{name: commune, type: string, filterable: true}}\n    - {{name: value, type: number}}\n"
        ),
    )
    .unwrap();
    folder
}

fn socket_address(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

/// How a raw, slow client's export ended.
#[derive(Debug)]
struct SlowRead {
    request_id: String,
    status: u16,
    /// Bytes of body read before the server closed or cut the transfer.
    bytes: usize,
    /// True when the body ended with the final chunk (the export finished).
    finished: bool,
    retry_after: bool,
}

/// A client that asks for the CSV export and then reads a few bytes every
/// 100 ms with a small receive buffer, as `curl --limit-rate` on a bad link,
/// until the server closes the connection or `give_up` passes.
async fn slow_reader(
    address: SocketAddr,
    request_id: String,
    forwarded_for: Option<String>,
    give_up: Duration,
) -> SlowRead {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket.connect(address).await.expect("connect");
    let forwarded = forwarded_for
        .map(|ip| format!("X-Forwarded-For: {ip}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /api/v1/data/{DATASET}?format=csv HTTP/1.1\r\nHost: test\r\nX-Request-Id: {request_id}\r\n{forwarded}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 256];
    while started.elapsed() < give_up {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    SlowRead {
        request_id,
        status,
        bytes: body.len(),
        finished: body.ends_with("\r\n0\r\n\r\n"),
        retry_after: head.to_ascii_lowercase().contains("\r\nretry-after:"),
    }
}

/// Latencies of `count` distinct point reads and readiness probes, one after another.
async fn normal_traffic(
    app: &TestApp,
    count: usize,
    salt: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<u16>) {
    let (mut reads, mut probes, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..count {
        let started = Instant::now();
        let response = app
            .client
            .get(app.url(&format!(
                "/api/v1/data/{DATASET}?id=eq.{}",
                salt * 1000 + index + 1
            )))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        statuses.push(response.map_or(0, |response| response.status().as_u16()));
        reads.push(started.elapsed());
        let started = Instant::now();
        let ready = app
            .client
            .get(app.url("/health/ready"))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        statuses.push(ready.map_or(0, |response| response.status().as_u16()));
        probes.push(started.elapsed());
    }
    (reads, probes, statuses)
}

fn percentile(values: &[Duration], fraction: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

/// The access event of request `request_id` and the completion events that refer to it.
async fn export_events(
    app: &TestApp,
    request_id: &str,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    for _ in 0..50 {
        let events = app
            .audit_events(&format!("dataset={DATASET}&limit=1000"))
            .await;
        let access = events
            .iter()
            .find(|event| event["request_id"] == request_id && event["kind"] == "access")
            .cloned();
        if let Some(access) = access {
            let completions: Vec<_> = events
                .iter()
                .filter(|event| {
                    event["kind"] == "completion" && event["refers_to"] == access["seq"]
                })
                .cloned()
                .collect();
            if !completions.is_empty() {
                return (access, completions);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no access and completion events for {request_id}");
}

/// Ten slow downloads (more than twice the pool; one reads nothing) beside normal traffic: other
/// requests keep answering 200 with their usual latency, readiness answers
/// at once, exports beyond the export pool are refused with 503 and
/// `Retry-After` instead of hanging, and the slow readers are cut after the
/// grace period, each with a `complete: false` completion event.
async fn slow_readers_do_not_starve_the_gateway(kind: StoreKind) {
    let catalog = big_catalog(ROWS);
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.catalog_dir = catalog.path().to_owned();
        settings.database_max_connections = 4;
        settings.database_export_connections = Some(4);
        // Each slow reader comes from its own address, through a trusted proxy.
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        settings.exports.stall_seconds = 2;
        settings.exports.min_bytes_per_second = 64 * 1024;
    })
    .await
    else {
        return;
    };
    let address = socket_address(&app);
    let (baseline, _, _) = normal_traffic(&app, 30, 0).await;
    // A client that reads nothing at all, its socket kept open.
    let mut silent = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    silent
        .write_all(
            format!("GET /api/v1/data/{DATASET}?format=csv HTTP/1.1\r\nHost: test\r\nX-Request-Id: silent\r\nX-Forwarded-For: 198.51.100.200\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let readers: Vec<_> = (0..9)
        .map(|index| {
            tokio::spawn(slow_reader(
                address,
                format!("slow-{index}"),
                Some(format!("198.51.100.{}", index + 1)),
                Duration::from_secs(20),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (loaded, probes, statuses) = normal_traffic(&app, 30, 1).await;
    let (baseline_p99, loaded_p99) = (percentile(&baseline, 0.99), percentile(&loaded, 0.99));
    let readiness = percentile(&probes, 0.5);
    eprintln!(
        "{kind:?}: baseline p99 {baseline_p99:?}, with slow readers p99 {loaded_p99:?}, readiness median {readiness:?}"
    );
    assert!(
        statuses.iter().all(|status| *status == 200),
        "every normal request answers 200: {statuses:?}"
    );
    // The bound is 2x; a shared test machine running other tests at
    // the same time gets a generous margin (starved, this was 9 to 12 s).
    assert!(
        loaded_p99 <= (baseline_p99 * 4).max(Duration::from_secs(1)),
        "p99 {loaded_p99:?} against {baseline_p99:?} without slow readers"
    );
    assert!(
        readiness < Duration::from_millis(100),
        "readiness median {readiness:?}"
    );

    let mut streamed = 0;
    for reader in readers {
        let read = reader.await.unwrap();
        eprintln!("{read:?}");
        match read.status {
            200 => {
                streamed += 1;
                assert!(
                    !read.finished,
                    "a slow reader never gets the whole export: {read:?}"
                );
                let (_, completions) = export_events(&app, &read.request_id).await;
                assert_eq!(
                    completions.len(),
                    1,
                    "one completion event: {completions:?}"
                );
                let completion = &completions[0];
                assert_eq!(completion["complete"], false, "{completion}");
                // Bytes handed to the connection: what the client read (with
                // the chunked framing), plus what the socket buffers held.
                let bytes = completion["bytes"].as_i64().unwrap();
                assert!(
                    bytes < 6 * 1024 * 1024 && read.bytes as i64 <= bytes + 1024,
                    "{completion}, client read {} bytes",
                    read.bytes
                );
            }
            503 => assert!(read.retry_after, "503 with Retry-After: {read:?}"),
            other => panic!("unexpected status {other}: {read:?}"),
        }
    }
    assert!(
        (1..=4).contains(&streamed),
        "at most the export pool streams at once ({streamed})"
    );
    // Cut while its connection is still open: the event does not wait for it.
    let (_, completions) = export_events(&app, "silent").await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["complete"], false, "{completions:?}");
    drop(silent);
}

test_both_stores!(slow_readers_do_not_starve_the_gateway);

/// A finished export, one the client drops half-way, and one over the
/// caller's share: each is accounted for in the audit log.
async fn every_export_is_accounted_for(kind: StoreKind) {
    let catalog = big_catalog(ROWS);
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.catalog_dir = catalog.path().to_owned();
    })
    .await
    else {
        return;
    };
    let path = format!("/api/v1/data/{DATASET}?format=csv");

    // To the last byte: complete, every row.
    let started = Instant::now();
    let response = app.get(&path).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let full = response.bytes().await.expect("whole export").len();
    eprintln!(
        "{kind:?}: full CSV export of {ROWS} rows, {full} bytes in {:?}",
        started.elapsed()
    );
    let (_, completions) = export_events(&app, &request_id).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["complete"], true);
    assert_eq!(completions[0]["rows"], ROWS as i64);
    assert_eq!(completions[0]["bytes"], full as i64);

    // The client goes away after the first chunk.
    let mut response = app.get(&path).await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = response
        .chunk()
        .await
        .expect("first chunk")
        .expect("some bytes");
    assert!(!first.is_empty());
    drop(response);
    let (_, completions) = export_events(&app, &request_id).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    let completion = &completions[0];
    assert_eq!(completion["complete"], false, "{completion}");
    let bytes = completion["bytes"].as_i64().unwrap();
    assert!(
        bytes > 0 && (bytes as usize) < full,
        "{bytes} of {full}: {completion}"
    );
    assert!(
        completion["rows"].as_i64().unwrap() < ROWS as i64,
        "{completion}"
    );

    // A third export while two are open: 429, and a deny in the audit log.
    let address = socket_address(&app);
    let holders: Vec<_> = (0..2)
        .map(|index| {
            tokio::spawn(slow_reader(
                address,
                format!("holder-{index}"),
                None,
                Duration::from_secs(3),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let response = app.get(&path).await;
    assert!(
        response.headers().contains_key("retry-after"),
        "Retry-After"
    );
    let event = app.audit_event_of(&response).await;
    let problem = crate::helpers::problem(response, 429).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("at most 2"),
        "{problem}"
    );
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(event["status"], 429, "{event}");
    assert!(
        event["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("concurrent exports"),
        "{event}"
    );
    // The share is given back when the holders go away.
    for holder in holders {
        assert_eq!(holder.await.unwrap().status, 200);
    }
    let mut admitted = false;
    for _ in 0..50 {
        let response = app.get(&format!("{path}&limit=10")).await;
        if response.status() == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a new export is admitted once the others ended");
}

test_both_stores!(every_export_is_accounted_for);

/// Once a stop is asked for, readiness answers 503 at once, so that load
/// balancers stop sending traffic while requests in flight finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_draining() {
    let app = crate::helpers::spawn_app(StoreKind::Sqlite)
        .await
        .expect("SQLite app");
    assert_eq!(app.get("/health/ready").await.status(), 200);
    app.state.lifecycle.begin_drain();
    let started = Instant::now();
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

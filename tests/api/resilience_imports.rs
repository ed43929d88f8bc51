//! Imports under traffic (issue 10, cases 3 and 4): a new version of a
//! dataset lands while uncached reads run continuously and a slow export of
//! the old version is in flight. Readers never get a 5xx nor stall, the
//! export finishes with the old rows, readers switch to the new version at
//! the next catalogue refresh, and the old table is dropped only once nothing
//! uses it any more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use passerelle::catalog::CatalogHandle;
use passerelle::catalog::sync::{import_file, read_definition};
use passerelle::store::Store;
use passerelle::store::retired::TablesInUse;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const ID: &str = "charges-import";
/// Large enough that its CSV export (about 13 MB) cannot sit in socket buffers.
const ROWS: u64 = 100_000;
const READERS: usize = 3;
/// Longest acceptable read while an import lands: far above a normal read on
/// a loaded debug build (up to 2.5 s seen on 2 busy cores), below the stalls
/// seen behind the export (5 to 8 s).
const STALL_BOUND: Duration = Duration::from_secs(4);

/// Writes the definition and a CSV of `rows` rows whose `version` column says `version`.
fn write_dataset(folder: &std::path::Path, file: &str, version: &str, rows: u64) {
    std::fs::write(
        folder.join(format!("{ID}.yaml")),
        format!(
            "id: {ID}\ntitle: Charges\ndescription: Lignes générées pour les imports sous charge.\n\
             theme: Test\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
             source:\n  file: {ID}.csv\n\
             schema:\n  primaryKey: id\n  fields:\n\
             \x20   - {{name: id, type: integer, filterable: true}}\n\
             \x20   - {{name: version, type: string}}\n\
             \x20   - {{name: label, type: string}}\n"
        ),
    )
    .unwrap();
    let mut csv = String::with_capacity(rows as usize * 130);
    csv.push_str("id,version,label\n");
    let label = "x".repeat(110);
    for id in 0..rows {
        csv.push_str(&format!("{id},{version},{label}\n"));
    }
    std::fs::write(folder.join(file), csv).unwrap();
}

/// What one read saw.
struct Sample {
    started: Instant,
    latency: Duration,
    status: u16,
    version: Option<String>,
}

/// Uncached point reads (each at a new offset, so the page cache never answers)
/// until `stop` is set.
fn spawn_readers(
    app: &TestApp,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sample>>> {
    let offsets = Arc::new(AtomicU64::new(0));
    (0..READERS)
        .map(|_| {
            let (client, base, stop, offsets) = (
                app.client.clone(),
                app.address.clone(),
                stop.clone(),
                offsets.clone(),
            );
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let offset = offsets.fetch_add(7919, Ordering::Relaxed) % (ROWS - 1);
                    let started = Instant::now();
                    let response = client
                        .get(format!(
                            "{base}/api/v1/data/{ID}?select=id,version&limit=1&offset={offset}"
                        ))
                        .send()
                        .await
                        .expect("read sent");
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    let version = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|rows| rows[0]["version"].as_str().map(str::to_owned));
                    if status >= 500 {
                        eprintln!("read answered {status}: {body}");
                    }
                    samples.push(Sample {
                        started,
                        latency: started.elapsed(),
                        status,
                        version,
                    });
                }
                samples
            })
        })
        .collect()
}

/// A CSV export read by a client that stops reading after its first bytes
/// (a small receive window, so the gateway cannot push the rest ahead).
struct SlowExport {
    stream: tokio::net::TcpStream,
    received: Vec<u8>,
}

impl SlowExport {
    async fn start(app: &TestApp) -> SlowExport {
        let address: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /api/v1/data/{ID}?format=csv HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = vec![0; 16 * 1024];
        while received.len() < 64 * 1024 {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "export ended early");
            received.extend_from_slice(&buffer[..read]);
        }
        assert!(
            received.starts_with(b"HTTP/1.1 200"),
            "export starts: {}",
            String::from_utf8_lossy(&received[..80])
        );
        SlowExport { stream, received }
    }

    /// Reads the rest and returns the CSV body.
    async fn finish(mut self) -> String {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.stream.read_to_end(&mut self.received),
        )
        .await
        .expect("export finishes")
        .unwrap();
        let split = self
            .received
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap();
        let head = String::from_utf8_lossy(&self.received[..split]).to_ascii_lowercase();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        String::from_utf8(dechunk(&self.received[split + 4..])).expect("UTF-8 CSV")
    }
}

/// The payload of a chunked HTTP/1.1 body; a missing last chunk (a cut
/// transfer) is a failure.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("chunk size line (transfer cut?)");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        assert!(data.len() >= size + 2, "chunk cut short");
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

async fn table_exists(store: &Store, table: &str) -> bool {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(table)
            .fetch_one(pool)
            .await
            .unwrap()
                > 0
        }
        Store::Postgres(pool) => {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                .bind(format!("\"{table}\""))
                .fetch_one(pool)
                .await
                .unwrap()
        }
    }
}

/// Imports the rows of `file` as the new version, as `passerelle import` does.
async fn import(store: &Store, folder: &std::path::Path, file: &str) -> Result<i64, String> {
    let definition = read_definition(&folder.join(format!("{ID}.yaml"))).unwrap();
    let definition_json = serde_json::to_string(&definition).unwrap();
    let path = folder.join(file);
    let bytes = std::fs::read(&path).unwrap();
    import_file(
        store,
        &definition,
        &path,
        bytes,
        &definition_json,
        "definition",
        file,
    )
    .await
}

/// Where the new version is imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Importer {
    /// The store the gateway uses, as `passerelle import` on the same database.
    SameStore,
    /// Another instance: its own pool and catalogue, refreshed at once.
    OtherInstance,
}

async fn import_under_reads_and_a_slow_export(kind: StoreKind, importer: Importer) {
    let folder = tempfile::tempdir().unwrap();
    write_dataset(folder.path(), &format!("{ID}.csv"), "v1", ROWS);
    write_dataset(folder.path(), "v2.csv", "v2", ROWS);
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.catalog_dir = catalog.clone();
        settings.server.catalog_refresh_seconds = 1;
        settings.server.retired_table_grace_seconds = 2;
        settings.server.page_cache_bytes = 0;
    })
    .await
    else {
        return;
    };
    passerelle::startup::spawn_background_tasks(&app.state);
    let old_table = app
        .state
        .catalog
        .current()
        .get(ID)
        .unwrap()
        .table_name
        .clone();

    // Readers alone, for the latency before.
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_readers(&app, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let export = SlowExport::start(&app).await;

    let import_started = Instant::now();
    let mut importing = {
        let folder = folder.path().to_path_buf();
        let (store, url) = (
            app.state.store.clone(),
            app.state.settings.database_url.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let version = match importer {
                Importer::SameStore => import(&store, &folder, "v2.csv").await,
                Importer::OtherInstance => {
                    let other = Store::open(&url, 4, std::time::Duration::from_secs(5))
                        .await
                        .unwrap();
                    let catalog = CatalogHandle::default();
                    let version = import(&other, &folder, "v2.csv").await;
                    assert!(version.is_ok(), "import by another instance: {version:?}");
                    catalog.refresh(&other).await.unwrap();
                    assert_eq!(
                        catalog.current().get(ID).map(|entry| entry.version),
                        version.clone().ok(),
                        "the importing instance serves the new version at once"
                    );
                    other.close().await;
                    version
                }
            };
            (version, started.elapsed())
        })
    };
    // The export keeps the old version in use while the import lands, the
    // readers switch, and the cleanup comes by more than once.
    let mut import_done = None;
    // Long enough for the import to land here (a few seconds on a loaded
    // machine), and for a stall behind the export to show.
    let deadline = Instant::now() + Duration::from_secs(15);
    while import_done.is_none() && Instant::now() < deadline {
        if importing.is_finished() {
            import_done = Some((&mut importing).await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (import_landed, swap, export_body) = match import_done {
        Some((version, took)) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert!(
                table_exists(&app.state.store, &old_table).await,
                "the old table is kept while the export reads it"
            );
            let export_body = export.finish().await;
            (version, took, export_body)
        }
        None => {
            // The import waits for the export: let the export go, then it lands.
            let export_body = export.finish().await;
            let (version, took) = tokio::time::timeout(Duration::from_secs(30), importing)
                .await
                .expect("import lands once the export is done")
                .unwrap();
            (version, took, export_body)
        }
    };
    check_export(&export_body);
    let import_landed = import_landed.expect("import succeeds");
    assert_eq!(import_landed, 2);
    let import_finished = import_started + swap;

    // Readers see the new version after the next refresh.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for reader in readers {
        samples.extend(reader.await.unwrap());
    }
    let failures = samples.iter().filter(|sample| sample.status >= 500).count();
    let worst = |from: Instant, to: Instant| {
        samples
            .iter()
            .filter(|sample| sample.started >= from && sample.started < to)
            .map(|sample| sample.latency)
            .max()
            .unwrap_or_default()
    };
    let before = worst(import_started - Duration::from_secs(2), import_started);
    let during = worst(import_started, Instant::now());
    eprintln!(
        "{kind:?}/{importer:?}: {} reads, {failures} answered 5xx, import took {swap:?}, \
         longest read before the import {before:?}, during and after {during:?}",
        samples.len()
    );
    assert_eq!(failures, 0, "no read fails while an import lands");
    assert!(
        samples.iter().all(|sample| sample.status == 200),
        "every read answers 200"
    );
    assert!(
        during <= STALL_BOUND,
        "longest read during the import: {during:?}"
    );
    let last = samples.iter().max_by_key(|sample| sample.started).unwrap();
    assert!(last.started > import_finished + Duration::from_secs(2));
    assert_eq!(
        last.version.as_deref(),
        Some("v2"),
        "readers switch to the new version"
    );

    // The old table goes once its grace has passed and nothing reads it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while table_exists(&app.state.store, &old_table).await {
        assert!(
            Instant::now() < deadline,
            "old table {old_table} dropped by the cleanup"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let current = app
        .state
        .catalog
        .current()
        .get(ID)
        .unwrap()
        .table_name
        .clone();
    assert!(table_exists(&app.state.store, &current).await);
}

/// The export has every row of the old version, and only those.
fn check_export(body: &str) {
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("id,version,label"));
    let mut count = 0;
    for line in lines {
        assert!(line.contains(",v1,"), "old version only: {line}");
        count += 1;
    }
    assert_eq!(count, ROWS, "every row of the old version");
}

async fn import_through_the_same_store(kind: StoreKind) {
    import_under_reads_and_a_slow_export(kind, Importer::SameStore).await;
}

async fn import_by_another_instance(kind: StoreKind) {
    import_under_reads_and_a_slow_export(kind, Importer::OtherInstance).await;
}

crate::test_both_stores!(import_through_the_same_store);
crate::test_both_stores!(import_by_another_instance);

/// A reader elsewhere (another instance's export) keeps a transaction open on
/// a retired table: the cleanup neither waits for it nor makes others wait
/// (PostgreSQL gives up after its lock timeout and tries again next pass),
/// and drops the table once the reader is gone.
async fn cleanup_never_waits_for_a_reader(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    write_dataset(folder.path(), &format!("{ID}.csv"), "v1", 1_000);
    write_dataset(folder.path(), "v2.csv", "v2", 1_000);
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone()).await
    else {
        return;
    };
    let store = &app.state.store;
    let old_table = app
        .state
        .catalog
        .current()
        .get(ID)
        .unwrap()
        .table_name
        .clone();
    assert_eq!(import(store, folder.path(), "v2.csv").await, Ok(2));
    assert!(
        table_exists(store, &old_table).await,
        "the import leaves the old table to the cleanup"
    );
    let count_old = format!("SELECT count(*) FROM \"{old_table}\"");
    let nobody = TablesInUse::default();

    let (started, cleanup) = match store {
        Store::Sqlite(pool) => {
            let mut reader = pool.begin().await.unwrap();
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_old.clone()))
                .fetch_one(&mut *reader)
                .await
                .unwrap();
            assert_eq!(rows, 1_000);
            let started = Instant::now();
            let cleanup = store
                .drop_retired_tables(Duration::ZERO, &nobody)
                .await
                .unwrap();
            let elapsed = started.elapsed();
            // The reader's snapshot still holds every row of the old version.
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_old.clone()))
                .fetch_one(&mut *reader)
                .await
                .unwrap();
            assert_eq!(rows, 1_000);
            reader.rollback().await.unwrap();
            (elapsed, cleanup)
        }
        Store::Postgres(pool) => {
            let mut reader = pool.begin().await.unwrap();
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_old.clone()))
                .fetch_one(&mut *reader)
                .await
                .unwrap();
            assert_eq!(rows, 1_000);
            let started = Instant::now();
            let cleanup = store
                .drop_retired_tables(Duration::ZERO, &nobody)
                .await
                .unwrap();
            let elapsed = started.elapsed();
            assert_eq!(
                cleanup.deferred,
                vec![old_table.clone()],
                "the DROP gives up while a reader holds the table"
            );
            assert!(table_exists(store, &old_table).await);
            // Another reader of the old table is not queued behind a waiting DROP.
            let other = Instant::now();
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_old.clone()))
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(rows, 1_000);
            assert!(other.elapsed() < STALL_BOUND);
            reader.rollback().await.unwrap();
            (elapsed, cleanup)
        }
    };
    eprintln!("{kind:?}: cleanup pass with a reader took {started:?}: {cleanup:?}");
    assert!(
        started < STALL_BOUND,
        "the cleanup does not wait for the reader: {started:?}"
    );
    store
        .drop_retired_tables(Duration::ZERO, &nobody)
        .await
        .unwrap();
    assert!(
        !table_exists(store, &old_table).await,
        "dropped once the reader is gone"
    );
    let current = app.state.catalog.current();
    app.state.refresh_catalog().await.unwrap();
    assert_ne!(
        current.get(ID).unwrap().table_name,
        app.state.catalog.current().get(ID).unwrap().table_name
    );
    let response = app
        .get(&format!("/api/v1/data/{ID}?select=version&limit=1"))
        .await;
    assert_eq!(response.status(), 200);
    let rows: serde_json::Value = response.json().await.unwrap();
    assert_eq!(rows[0]["version"], "v2");
}

crate::test_both_stores!(cleanup_never_waits_for_a_reader);

/// Should a stale catalogue still name a dropped table (its refresh failed
/// for longer than the grace), the read answers 503 with `Retry-After`, not
/// 500, and the catalogue is re-read at once: the retry gets the new version.
async fn read_of_a_dropped_table_is_retried(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    write_dataset(folder.path(), &format!("{ID}.csv"), "v1", 100);
    write_dataset(folder.path(), "v2.csv", "v2", 100);
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone()).await
    else {
        return;
    };
    assert_eq!(
        import(&app.state.store, folder.path(), "v2.csv").await,
        Ok(2)
    );
    app.state
        .store
        .drop_retired_tables(Duration::ZERO, &TablesInUse::default())
        .await
        .unwrap();

    let response = app
        .get(&format!("/api/v1/data/{ID}?select=version&limit=1"))
        .await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    crate::helpers::problem(response, 503).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = app
            .get(&format!(
                "/api/v1/data/{ID}?select=version&limit=1&offset=1"
            ))
            .await;
        if response.status() == 200 {
            let rows: serde_json::Value = response.json().await.unwrap();
            assert_eq!(rows[0]["version"], "v2");
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the catalogue was refreshed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

crate::test_both_stores!(read_of_a_dropped_table_is_retried);

/// Two imports of one dataset at once both land, one after the other: the
/// served version is one whole file, never a mix, and versions go up.
async fn concurrent_imports_never_mix(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    write_dataset(folder.path(), &format!("{ID}.csv"), "v1", 5_000);
    write_dataset(folder.path(), "a.csv", "va", 5_000);
    write_dataset(folder.path(), "b.csv", "vb", 5_000);
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone()).await
    else {
        return;
    };
    let (first, second) = tokio::join!(
        import(&app.state.store, folder.path(), "a.csv"),
        import(&app.state.store, folder.path(), "b.csv")
    );
    let (first, second) = (first.expect("first import"), second.expect("second import"));
    assert!(
        first > 1 && second > 1 && first != second,
        "{first}, {second}"
    );
    app.state.refresh_catalog().await.unwrap();
    assert_eq!(
        app.state.catalog.current().get(ID).unwrap().version,
        first.max(second),
        "the import that landed last is served"
    );
    let response = app
        .get(&format!("/api/v1/data/{ID}?select=version&limit=10000"))
        .await;
    assert_eq!(response.status(), 200);
    let rows: Vec<serde_json::Value> = response.json().await.unwrap();
    assert_eq!(rows.len(), 5_000);
    let served = rows[0]["version"].clone();
    assert!(
        rows.iter().all(|row| row["version"] == served),
        "one version's rows only"
    );
}

crate::test_both_stores!(concurrent_imports_never_mix);

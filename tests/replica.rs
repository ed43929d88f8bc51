//! Dataset reads on a real PostgreSQL streaming replica (`database_read_url`).
//!
//! The test takes a base backup of the test server (`pg_basebackup`), starts
//! it as a hot standby on another loopback port, and runs the gateway (the
//! real binary) with the primary as its store and the standby as its read
//! replica. It shows that reads are served by the replica; that a version
//! published on the primary which the standby has not replayed (replay
//! paused) is read from the primary, new rows and all, and that reads go
//! back to the replica once it has replayed it; and that a replica that
//! stops costs no request.
//!
//! Needs, as `.ci/run` arranges: the test server accepts replication from
//! 127.0.0.1 (`host replication all 127.0.0.1/32 trust` in its pg_hba.conf)
//! and its server binaries are installed. PostgreSQL refuses to run as
//! root: the standby runs as the `postgres` user (through `runuser` when the
//! test runs as root). With `CI=true` it runs, never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use passerelle::store::test_support;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// An open dataset of the demo catalogue, republished by the test.
const DATASET: &str = "consommations-energie-batiments";

/// Generous bound on anything the test waits for (no timing is asserted).
const PATIENCE: Duration = Duration::from_secs(60);

fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// True when this process runs as root (PostgreSQL must then be run as
/// `postgres`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// `program` run as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A hot standby of the test server, on a loopback port of its own; stopped
/// and its folder removed when dropped (the test failing included).
struct Standby {
    server: Child,
    binaries: PathBuf,
    folder: tempfile::TempDir,
    port: u16,
}

impl Standby {
    /// Base backup of the primary at `primary`, started as a standby.
    async fn start(primary: &PgConnectOptions) -> Standby {
        let mut admin = PgConnection::connect_with(primary)
            .await
            .expect("the test server");
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let binaries = std::env::var_os("PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(format!("/usr/lib/postgresql/{}/bin", version / 10000))
            });
        // A standby needs these at least as high as on its primary.
        let copied: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', \
             'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', \
             'max_locks_per_transaction')",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let folder = tempfile::Builder::new()
            .prefix("passerelle-standby-")
            .tempdir()
            .expect("a folder for the standby");
        let path = folder.path().to_owned();
        if running_as_root() {
            let chowned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&path)
                .status()
                .expect("chown");
            assert!(chowned.success(), "chown of {}", path.display());
        }
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
        std::fs::set_permissions(&path, permissions).unwrap();
        // `-c fast`: do not wait for the primary's next scheduled checkpoint.
        let backup = as_postgres(&binaries.join("pg_basebackup"))
            .args(["-h", primary.get_host()])
            .args(["-p", &primary.get_port().to_string()])
            .args(["-U", primary.get_username()])
            .arg("-D")
            .arg(&path)
            .args(["-X", "stream", "-R", "-c", "fast"])
            .output()
            .expect("pg_basebackup runs");
        assert!(
            backup.status.success(),
            "pg_basebackup failed (does the test server's pg_hba.conf accept replication from \
             127.0.0.1? .ci/run adds it): {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        let port = free_port();
        let mut configuration = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nhot_standby = on\n\
             unix_socket_directories = '{}'\nshared_buffers = 16MB\n",
            path.display()
        );
        for (name, setting) in copied {
            configuration.push_str(&format!("{name} = {setting}\n"));
        }
        std::fs::write(path.join("postgresql.conf"), configuration).unwrap();
        std::fs::write(
            path.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        std::fs::write(path.join("pg_ident.conf"), "").unwrap();
        if running_as_root() {
            let chowned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&path)
                .status()
                .expect("chown");
            assert!(chowned.success());
        }
        // In the folder: removed with it.
        let log = std::fs::File::create(path.join("standby.log")).expect("standby log");
        let server = as_postgres(&binaries.join("postgres"))
            .arg("-D")
            .arg(&path)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the standby starts");
        let standby = Standby {
            server,
            binaries,
            folder,
            port,
        };
        // Ready and replaying.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(mut connection) = standby.connect("postgres").await
                && sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut connection)
                    .await
                    .unwrap_or(false)
            {
                return standby;
            }
            assert!(Instant::now() < deadline, "the standby did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn connect(&self, database: &str) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect(&self.url(database)).await
    }

    /// Stops the standby now (immediate shutdown: it is thrown away).
    fn stop(&mut self) {
        let _ = as_postgres(&self.binaries.join("pg_ctl"))
            .arg("-D")
            .arg(self.folder.path())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop();
        // The folder is removed when `folder` drops, after this.
    }
}

/// The gateway (the real binary) on `database_url`, reading datasets from
/// `read_url`; killed when dropped.
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

fn command(database_url: &str, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    command
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("PASSERELLE_CATALOG_DIR", repository_path("catalog"))
        .env("PASSERELLE_POLICIES_DIR", repository_path("policies"))
        .env("PASSERELLE_DEV_MODE", "true")
        // Only the notification of a change refreshes the catalogue here.
        .env("PASSERELLE_SERVER__CATALOG_REFRESH_SECONDS", "3600")
        .env("PASSERELLE_SERVER__RETIRED_TABLE_GRACE_SECONDS", "10800")
        .env("RUST_LOG", "warn");
    command
}

async fn start_gateway(database_url: &str, read_url: &str) -> Gateway {
    let port = free_port();
    let child = command(database_url, &["serve"])
        .env("PASSERELLE_DATABASE_READ_URL", read_url)
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
    let gateway = Gateway {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = client
            .get(format!("{}/health/ready", gateway.address))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return gateway;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads of the dataset so far by `store` and `reason`
/// (`passerelle_dataset_reads_total`).
async fn reads(client: &reqwest::Client, gateway: &Gateway, store: &str, reason: &str) -> f64 {
    let text = client
        .get(format!("{}/metrics", gateway.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.starts_with("passerelle_dataset_reads_total{")
                && line.contains(&format!("store=\"{store}\""))
                && line.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The dataset's exact row count as the gateway answers it, through a read
/// that bypasses the page cache (`offset` differs each time).
async fn total(client: &reqwest::Client, gateway: &Gateway, offset: u32) -> u64 {
    let response = client
        .get(format!(
            "{}/api/v1/data/{DATASET}?limit=1&offset={offset}",
            gateway.address
        ))
        .header("Prefer", "count=exact")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        status == 200 || status == 206 || status == 416,
        "a read answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
    let range = response.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_owned();
    range.rsplit('/').next().unwrap().parse().unwrap()
}

/// Sequential scans of the dataset's current table counted by the standby
/// itself (statistics are per server: the primary does not count them).
async fn standby_scans(standby: &Standby, database: &str, table: &str) -> i64 {
    let mut connection = standby.connect(database).await.unwrap();
    sqlx::query_scalar(
        "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint \
         FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(&mut connection)
    .await
    .unwrap()
}

async fn current_table(primary: &mut PgConnection) -> String {
    sqlx::query_scalar("SELECT table_name FROM datasets WHERE id = $1")
        .bind(DATASET)
        .fetch_one(primary)
        .await
        .unwrap()
}

/// Polls `check` until it holds; fails after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: still not the case");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads go to the replica once it has replayed the version in force; a
/// version it has not replayed (replay paused) is read from the primary
/// with its new rows; after replay resumes reads go back to the replica;
/// a replica that stops fails no read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_the_replica_only_as_far_as_it_has_replayed() {
    passerelle::telemetry::init();
    let Some((url, _database)) = test_support::postgres_url().await else {
        return;
    };
    let database = url.rsplit('/').next().unwrap().to_owned();
    let primary_options = PgConnectOptions::from_str(&test_support::postgres_admin_url()).unwrap();
    // Declared after `_database`: stopped before the database is dropped.
    let mut standby = Standby::start(&primary_options).await;
    let gateway = start_gateway(&url, &standby.url(&database)).await;
    let client = &reqwest::Client::new();
    let gateway = &gateway;
    let mut primary = PgConnection::connect(&url).await.unwrap();
    // Each read asks for another offset: no answer comes from the page cache.
    let offset = &std::cell::Cell::new(0_u32);
    let next = move || {
        offset.set(offset.get() + 1);
        offset.get()
    };
    let original = total(client, gateway, 0).await;
    assert!(original > 5, "{original} rows in the demo dataset");

    // 1. Served by the replica: the gateway counts it, and so does the
    // standby's own statistics on the dataset's table.
    let table = current_table(&mut primary).await;
    let (standby_ref, database_ref) = (&standby, database.as_str());
    let scans_before = standby_scans(standby_ref, database_ref, &table).await;
    eventually("a read served by the replica", || async move {
        let before = reads(client, gateway, "replica", "replayed").await;
        assert_eq!(total(client, gateway, next()).await, original);
        reads(client, gateway, "replica", "replayed").await > before
    })
    .await;
    let table_ref = table.as_str();
    eventually("the standby counts the scans", || async move {
        standby_scans(standby_ref, database_ref, table_ref).await > scans_before
    })
    .await;

    // 2. Replay paused: a new version (5 rows), imported on the primary by
    // the CLI, is read from the primary as soon as the gateway hears of it.
    let mut control = standby.connect("postgres").await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut control)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while sqlx::query_scalar::<_, String>("SELECT pg_get_wal_replay_pause_state()")
        .fetch_one(&mut control)
        .await
        .unwrap()
        != "paused"
    {
        assert!(Instant::now() < deadline, "replay not paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let source = std::fs::read(repository_path(&format!("catalog/{DATASET}.csv"))).unwrap();
    let five: Vec<u8> = source
        .split_inclusive(|byte| *byte == b'\n')
        .take(6)
        .flatten()
        .copied()
        .collect();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join(format!("{DATASET}.csv"));
    std::fs::write(&file, five).unwrap();
    let imported = command(&url, &["import", DATASET, file.to_str().unwrap()])
        .output()
        .expect("the CLI runs");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let new_table = current_table(&mut primary).await;
    assert_ne!(new_table, table);
    // The standby has not replayed the new table.
    let mut replica_side = standby.connect(&database).await.unwrap();
    let replayed: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&new_table)
        .fetch_one(&mut replica_side)
        .await
        .unwrap();
    assert!(
        !replayed,
        "replay is paused: {new_table} cannot be there yet"
    );
    eventually("the new version served", || async move {
        total(client, gateway, next()).await == 5
    })
    .await;
    let behind = reads(client, gateway, "primary", "replica_behind").await;
    for _ in 0..5 {
        assert_eq!(total(client, gateway, next()).await, 5);
    }
    assert!(
        reads(client, gateway, "primary", "replica_behind").await >= behind + 5.0,
        "reads of the unreplayed version go to the primary"
    );

    // 3. Replay resumed: reads go back to the replica, with the new rows.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut control)
        .await
        .unwrap();
    eventually("reads back on the replica", || async move {
        let before = reads(client, gateway, "replica", "replayed").await;
        assert_eq!(total(client, gateway, next()).await, 5);
        reads(client, gateway, "replica", "replayed").await > before
    })
    .await;
    let new_table_ref = new_table.as_str();
    let scans_before = standby_scans(standby_ref, database_ref, new_table_ref).await;
    assert_eq!(total(client, gateway, next()).await, 5);
    eventually("the standby counts scans of the new table", || async move {
        standby_scans(standby_ref, database_ref, new_table_ref).await > scans_before
    })
    .await;

    // 4. The replica stops: every read still answers, from the primary.
    drop(replica_side);
    drop(control);
    standby.stop();
    for _ in 0..10 {
        assert_eq!(total(client, gateway, next()).await, 5);
    }
    let fell_back = reads(client, gateway, "primary", "replica_down").await
        + reads(client, gateway, "primary", "replica_failed").await;
    assert!(
        fell_back >= 10.0,
        "{fell_back} reads fell back to the primary"
    );
}

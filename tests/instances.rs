//! Several instances, one truth: two gateway processes (the real binary) on
//! one PostgreSQL database and one Redis. A change made by a third process
//! (the CLI, as an operator on any instance's host would) reaches both
//! within a second, through PostgreSQL notifications: the polling
//! fallbacks are set to an hour here, so only the notifications can do it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passerelle::store::test_support;
use sqlx::Connection;

/// The contract: a change applies on every instance within this.
const PROPAGATION: Duration = Duration::from_secs(1);

const REDIS: &str = "redis://127.0.0.1:6379";

fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Redis on loopback: required in CI, else the test is skipped.
fn redis_available() -> bool {
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().unwrap(),
        Duration::from_secs(1),
    )
    .is_ok();
    if !reachable {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run redis-server on 127.0.0.1:6379"
        );
        eprintln!("skipping: no Redis on 127.0.0.1:6379");
    }
    reachable
}

/// `passerelle` on the test's store and Redis, with the demo catalogue and
/// policies, and every polling fallback an hour long.
fn command(database_url: &str, redis_prefix: &str, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    command
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("PASSERELLE_CATALOG_DIR", repository_path("catalog"))
        .env("PASSERELLE_POLICIES_DIR", repository_path("policies"))
        .env("PASSERELLE_DEV_MODE", "true")
        .env("PASSERELLE_LIMITS__REDIS_URL", REDIS)
        .env("PASSERELLE_LIMITS__REDIS_KEY_PREFIX", redis_prefix)
        .env("PASSERELLE_LIMITS__CLIENT_LIMITS_CACHE_SECONDS", "3600")
        .env("PASSERELLE_SERVER__CATALOG_REFRESH_SECONDS", "3600")
        .env("PASSERELLE_SERVER__RETIRED_TABLE_GRACE_SECONDS", "10800")
        .env("PASSERELLE_AUTH__CLIENT_STATE_CACHE_SECONDS", "3600")
        .env("PASSERELLE_AUTH__API_KEY_CACHE_SECONDS", "3600")
        .env("RUST_LOG", "warn");
    command
}

/// Runs a CLI command to completion; its standard output.
fn run(database_url: &str, redis_prefix: &str, arguments: &[&str]) -> String {
    let output = command(database_url, redis_prefix, arguments)
        .output()
        .expect("the CLI runs");
    assert!(
        output.status.success(),
        "{arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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

async fn start(database_url: &str, redis_prefix: &str) -> Gateway {
    start_with_policies(database_url, redis_prefix, &repository_path("policies")).await
}

async fn start_with_policies(database_url: &str, redis_prefix: &str, policies: &Path) -> Gateway {
    let port = free_port();
    let child = command(database_url, redis_prefix, &["serve"])
        .env("PASSERELLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PASSERELLE_POLICIES_DIR", policies)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
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

/// Waits until `count` connections listen for changes on the database (a
/// change announced before an instance listens is not heard: it refreshes
/// everything when it starts listening instead).
async fn wait_for_listeners(database_url: &str, count: i64) {
    let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap();
        if listening >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{listening} of {count} instances listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `client_id: …` and `client_secret: …` of `clients create`.
fn credentials(output: &str) -> (String, String) {
    let value = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| panic!("{name} in {output}"))
    };
    (value("client_id:"), value("client_secret:"))
}

async fn token(client: &reqwest::Client, gateway: &Gateway, id: &str, secret: &str) -> String {
    let response = client
        .post(format!("{}/api/v1/auth/token", gateway.address))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

const PARTNER_READ: &str = "/api/v1/data/locations-velos?select=commune&limit=1";

async fn status_with(client: &reqwest::Client, gateway: &Gateway, token: &str) -> u16 {
    client
        .get(format!("{}{PARTNER_READ}", gateway.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `check` on every gateway until it holds on all of them; fails
/// when that takes longer than [`PROPAGATION`] from `since`.
async fn within_propagation<F, Fut>(gateways: &[&Gateway], since: Instant, what: &str, check: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut pending: Vec<&Gateway> = gateways.to_vec();
    loop {
        let mut still = Vec::new();
        for gateway in pending {
            if !check(gateway.address.clone()).await {
                still.push(gateway);
            }
        }
        if still.is_empty() {
            return;
        }
        assert!(
            since.elapsed() <= PROPAGATION,
            "{what}: not applied by {:?} within {PROPAGATION:?}",
            still
                .iter()
                .map(|gateway| &gateway.address)
                .collect::<Vec<_>>()
        );
        pending = still;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A partner disabled by the CLI has its token refused by both instances
/// within a second; a dataset imported by the CLI is served in its new
/// version by both within a second; a partner's rate limit is one across
/// both instances (Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_instance_within_a_second() {
    passerelle::telemetry::init();
    if !redis_available() {
        return;
    }
    let Some((url, _database)) = test_support::postgres_url().await else {
        return;
    };
    let prefix = format!("passerelle-test-{}:", uuid::Uuid::new_v4().simple());
    // The first one creates the schema and imports the catalogue alone.
    let first = start(&url, &prefix).await;
    let second = start(&url, &prefix).await;
    wait_for_listeners(&url, 2).await;
    let both = [&first, &second];
    let client = reqwest::Client::new();

    // Revocation: a token issued by the first instance, used on both.
    let (partner, secret) = credentials(&run(
        &url,
        &prefix,
        &[
            "clients",
            "create",
            "--org",
            "Troyes",
            "--roles",
            "partenaire",
        ],
    ));
    let issued = token(&client, &first, &partner, &secret).await;
    for gateway in both {
        assert_eq!(status_with(&client, gateway, &issued).await, 200);
    }
    run(&url, &prefix, &["clients", "disable", &partner]);
    let disabled_at = Instant::now();
    within_propagation(&both, disabled_at, "client disabled", |address| {
        let (client, issued) = (client.clone(), issued.clone());
        async move {
            let response = client
                .get(format!("{address}{PARTNER_READ}"))
                .bearer_auth(&issued)
                .send()
                .await
                .unwrap();
            match response.status().as_u16() {
                200 => false,
                401 => true,
                other => panic!("{other} from {address}"),
            }
        }
    })
    .await;

    // A new version of a dataset, imported by the CLI: 5 rows instead of all.
    let dataset = "consommations-energie-batiments";
    // Bytes: the file is in the encoding its definition declares.
    let source = std::fs::read(repository_path(&format!("catalog/{dataset}.csv"))).unwrap();
    let five: Vec<u8> = source
        .split_inclusive(|byte| *byte == b'\n')
        .take(6)
        .flatten()
        .copied()
        .collect();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join(format!("{dataset}.csv"));
    std::fs::write(&file, five).unwrap();
    let total = |address: String| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("{address}/api/v1/data/{dataset}?limit=1"))
                .header("Prefer", "count=exact")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16() / 100, 2, "{address}");
            let range = response.headers()["content-range"]
                .to_str()
                .unwrap()
                .to_owned();
            range.rsplit('/').next().unwrap().parse::<u64>().unwrap()
        }
    };
    for gateway in both {
        assert!(total(gateway.address.clone()).await > 5);
    }
    run(&url, &prefix, &["import", dataset, file.to_str().unwrap()]);
    let imported_at = Instant::now();
    within_propagation(
        &both,
        imported_at,
        "dataset imported",
        |address| async move { total(address).await == 5 },
    )
    .await;

    // One rate limit across both instances: 4 requests at once, then 429
    // whichever instance is asked.
    let (limited, limited_secret) = credentials(&run(
        &url,
        &prefix,
        &[
            "clients",
            "create",
            "--org",
            "Troyes",
            "--roles",
            "partenaire",
        ],
    ));
    run(
        &url,
        &prefix,
        &[
            "clients",
            "set-limit",
            &limited,
            "--requests",
            "4",
            "--per-seconds",
            "3600",
            "--burst",
            "4",
        ],
    );
    let limited_token = token(&client, &second, &limited, &limited_secret).await;
    let mut statuses = Vec::new();
    for round in 0..6 {
        statuses.push(status_with(&client, both[round % 2], &limited_token).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

/// nginx from the distribution's packages, in front of `upstreams`, on
/// loopback; stopped (and its workers with it) when dropped.
struct Balancer {
    child: Child,
    address: String,
    _folder: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // SIGTERM to the master stops the workers too (SIGKILL would not).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// nginx, installed (on the PATH or in /usr/sbin, where Debian puts it):
/// required in CI (`.ci/run` installs it), else the test is skipped.
fn nginx() -> Option<PathBuf> {
    let found = ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .find(|candidate| Command::new(candidate).arg("-v").output().is_ok())
        .map(PathBuf::from);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have nginx (apt-get install nginx)"
        );
        eprintln!("skipping: nginx is not installed");
    }
    found
}

async fn balance(nginx: &Path, upstreams: &[&Gateway]) -> Balancer {
    let folder = tempfile::tempdir().unwrap();
    let port = free_port();
    let servers: String = upstreams
        .iter()
        .map(|gateway| {
            let address = gateway.address.trim_start_matches("http://");
            format!("        server {address} max_fails=1 fail_timeout=30s;\n")
        })
        .collect();
    let root = folder.path().display();
    // As in deploy/nginx/passerelle.conf: no buffering, another upstream
    // for a GET whose upstream failed.
    let configuration = format!(
        "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {root}/body;\n    proxy_temp_path {root}/proxy;\n\
         \x20   fastcgi_temp_path {root}/fastcgi;\n    uwsgi_temp_path {root}/uwsgi;\n    scgi_temp_path {root}/scgi;\n\
         \x20   upstream passerelle {{\n{servers}        keepalive 16;\n    }}\n\
         \x20   server {{\n        listen 127.0.0.1:{port};\n        location / {{\n\
         \x20           proxy_pass http://passerelle;\n            proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n            proxy_buffering off;\n\
         \x20           proxy_next_upstream error timeout http_502;\n        }}\n    }}\n}}\n"
    );
    let file = folder.path().join("nginx.conf");
    std::fs::write(&file, configuration).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(folder.path())
        .arg("-c")
        .arg(&file)
        .arg("-e")
        .arg(folder.path().join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let balancer = Balancer {
        child,
        address: format!("http://127.0.0.1:{port}"),
        _folder: folder,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let ready = client
            .get(format!("{}/health/ready", balancer.address))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return balancer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nginx did not answer");
}

/// A development token (`passerelle token`, dev mode) for `roles`.
fn dev_token(database_url: &str, redis_prefix: &str, roles: &str) -> String {
    let output = run(
        database_url,
        redis_prefix,
        &[
            "token",
            "--sub",
            "instances-test",
            "--roles",
            roles,
            "--ttl",
            "900",
        ],
    );
    output
        .lines()
        .map(str::trim)
        .rfind(|line| line.split('.').count() == 3)
        .unwrap_or_else(|| panic!("a token in {output}"))
        .to_owned()
}

/// Closed-data reads from `workers` tasks until stopped; the request ids
/// whose responses arrived complete with 200, and the instants they did.
async fn closed_load(
    address: String,
    token: String,
    workers: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, Instant)> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (address, token, received, stop) = (
            address.clone(),
            token.clone(),
            received.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut index = 0;
            while !*stop.borrow() {
                index += 1;
                let id = format!("balanced-{worker}-{index}");
                let response = client
                    .get(format!(
                        "{address}/api/v1/data/locations-velos?limit=5&offset={index}"
                    ))
                    .bearer_auth(&token)
                    .header("X-Request-Id", &id)
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                if response.status() == 200 && response.bytes().await.is_ok() {
                    received.lock().unwrap().push((id, Instant::now()));
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    received.lock().unwrap().clone()
}

/// Request ids in the audit log, through `passerelle audit export`.
fn audited_ids(database_url: &str, redis_prefix: &str) -> HashSet<String> {
    run(
        database_url,
        redis_prefix,
        &["audit", "export", "--format", "ndjson"],
    )
    .lines()
    .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("NDJSON event"))
    .filter_map(|event| event["request_id"].as_str().map(str::to_owned))
    .collect()
}

/// Two instances behind nginx: a policy reloaded through one is in force
/// on the other within a second; killing one under load leaves the other
/// serving through nginx, every closed-data response received has its
/// audit event, and one verification covers both instances' events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_nginx() {
    passerelle::telemetry::init();
    let Some(nginx) = nginx() else {
        return;
    };
    if !redis_available() {
        return;
    }
    let Some((url, _database)) = test_support::postgres_url().await else {
        return;
    };
    let prefix = format!("passerelle-test-{}:", uuid::Uuid::new_v4().simple());
    let policies = tempfile::tempdir().unwrap();
    for file in ["model.conf", "policy.csv"] {
        std::fs::copy(
            repository_path(&format!("policies/{file}")),
            policies.path().join(file),
        )
        .unwrap();
    }
    let first = start_with_policies(&url, &prefix, policies.path()).await;
    let second = start_with_policies(&url, &prefix, policies.path()).await;
    wait_for_listeners(&url, 2).await;
    let balancer = balance(&nginx, &[&first, &second]).await;
    let client = reqwest::Client::new();

    // The policy: staff read internal data, until a rule reloaded through
    // the first instance denies it; the second applies it within a second.
    let agent = dev_token(&url, &prefix, "agent");
    let admin = dev_token(&url, &prefix, "admin");
    let internal = "/api/v1/data/infractions-videoprotection?limit=1";
    let read = |address: String| {
        let (client, agent) = (client.clone(), agent.clone());
        async move {
            client
                .get(format!("{address}{internal}"))
                .bearer_auth(&agent)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(read(first.address.clone()).await, 200);
    assert_eq!(read(second.address.clone()).await, 200);
    let mut policy = std::fs::read_to_string(policies.path().join("policy.csv")).unwrap();
    policy.push_str("p, agent, infractions-videoprotection, read, deny,\n");
    std::fs::write(policies.path().join("policy.csv"), policy).unwrap();
    let reloaded = client
        .post(format!("{}/api/v1/policy/reload", first.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let reloaded_at = Instant::now();
    within_propagation(
        &[&second],
        reloaded_at,
        "policy reloaded",
        |address| async move { read(address).await == 403 },
    )
    .await;
    assert_eq!(read(balancer.address.clone()).await, 403);

    // Closed data under load through nginx; the first instance is killed.
    let reader = dev_token(&url, &prefix, "operateur-velo");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(closed_load(balancer.address.clone(), reader, 4, stopped));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(first);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    let received = load.await.unwrap();
    let after_kill = received.iter().filter(|(_, at)| *at > killed_at).count();
    assert!(
        received.len() > after_kill && after_kill > 0,
        "served before ({}) and after ({after_kill}) the kill",
        received.len() - after_kill
    );
    drop(balancer);
    drop(second);

    let audited = audited_ids(&url, &prefix);
    let missing: Vec<_> = received
        .iter()
        .filter(|(id, _)| !audited.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "closed-data responses without their audit event: {missing:?}"
    );
    let output = command(&url, &prefix, &["audit", "verify"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("verify report: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(output.status.success(), "chain broken: {report}");
    assert!(
        report["checked"].as_u64().unwrap() >= received.len() as u64,
        "{report}"
    );
}

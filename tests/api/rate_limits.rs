//! Rate limits and daily quotas as callers see them: 429 problem documents
//! with `Retry-After`, the `RateLimit-Policy` and `RateLimit` fields, the
//! audit event naming the limit. Every test runs on both stores, with the
//! limits counted in memory and in a real Redis (127.0.0.1:6379, one key
//! prefix per test; required when CI=true), and once more with a Redis that
//! does not answer: the gateway keeps serving and limiting.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use passerelle::auth::ClientRegistry;
use passerelle::cli::ClientsCommand;
use passerelle::config::Settings;
use passerelle::limits::LimitSet;

use crate::helpers::{StoreKind, TestApp, problem, spawn_app_with};

const REDIS: &str = "redis://127.0.0.1:6379";
/// Nothing listens there: every connection is refused.
const UNREACHABLE_REDIS: &str = "redis://127.0.0.1:1";
const OPEN_DATASET: &str = "consommations-energie-batiments";

/// Where the limits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Memory,
    Redis,
    /// `redis_url` set, Redis unreachable.
    RedisDown,
}

/// Whether Redis answers on loopback. In CI it must: `.ci/run` starts it.
fn redis_available() -> bool {
    let address: SocketAddr = "127.0.0.1:6379".parse().expect("address");
    let available = TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok();
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must run redis-server on 127.0.0.1:6379"
        );
        eprintln!("skipping: no Redis on 127.0.0.1:6379");
    }
    available
}

fn unique_prefix() -> String {
    format!("passerelle-test:{}:", uuid::Uuid::new_v4().simple())
}

/// A gateway counting its limits with `counter` (Redis keys under `prefix`).
async fn spawn(
    kind: StoreKind,
    counter: Counter,
    prefix: &str,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    if counter == Counter::Redis && !redis_available() {
        return None;
    }
    let prefix = prefix.to_owned();
    spawn_app_with(kind, move |settings| {
        settings.limits.redis_key_prefix = prefix;
        settings.limits.redis_url = match counter {
            Counter::Memory => None,
            Counter::Redis => Some(REDIS.to_owned()),
            Counter::RedisDown => Some(UNREACHABLE_REDIS.to_owned()),
        };
        adjust(settings);
    })
    .await
}

/// `burst` requests at once, then one an hour: no test runs long enough
/// for one to come back, so the counts do not depend on timing.
fn burst_of(burst: u64) -> LimitSet {
    LimitSet {
        requests: Some(1),
        per_seconds: Some(3600),
        burst: Some(burst),
        ..LimitSet::default()
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("ASCII header").to_owned())
}

fn retry_after(response: &reqwest::Response) -> u64 {
    header(response, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds")
}

/// A partner client of the demo policy with an API key.
async fn partner(app: &TestApp) -> (String, String) {
    let registry = ClientRegistry::new(app.state.store.clone());
    let (client_id, _) = registry
        .create("Troyes", &["partenaire".to_owned()], None, None)
        .await
        .expect("client");
    let (_, key) = registry
        .create_api_key(&client_id, None)
        .await
        .expect("API key");
    (client_id, key)
}

/// A partner client with its own `limits`, and its API key.
async fn partner_with(app: &TestApp, limits: LimitSet) -> String {
    let (client_id, key) = partner(app).await;
    ClientRegistry::new(app.state.store.clone())
        .set_limits(&client_id, limits)
        .await
        .unwrap();
    key
}

async fn get_with_key(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("X-API-Key", key)
        .send()
        .await
        .expect("request")
}

/// Anonymous callers are counted per address: a burst passes with the
/// fields counting down, the next request is a 429 problem with
/// `Retry-After`, audited as a deny naming the limit. A forged
/// `X-Forwarded-For` changes nothing; health, metrics and the API
/// description are never limited; staff are not limited by default.
async fn anonymous_callers_are_limited(kind: StoreKind, counter: Counter) {
    let Some(app) = spawn(kind, counter, &unique_prefix(), |settings| {
        settings.limits.anonymous = burst_of(3);
    })
    .await
    else {
        return;
    };
    for remaining in [2, 1, 0] {
        let response = app.get("/api/v1/datasets").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "ratelimit-policy").as_deref(),
            Some("\"anonymous\";q=3;w=10800")
        );
        let limit = header(&response, "ratelimit").expect("RateLimit");
        assert!(
            limit.starts_with(&format!("\"anonymous\";r={remaining};t=")),
            "{limit}"
        );
    }

    let refused = app.get("/api/v1/datasets").await;
    let wait = retry_after(&refused);
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        header(&refused, "ratelimit").as_deref(),
        Some(format!("\"anonymous\";r=0;t={wait}").as_str())
    );
    assert!(header(&refused, "ratelimit-policy").is_some());
    let event = app.audit_event_of(&refused).await;
    let body = problem(refused, 429).await;
    assert_eq!(body["type"], "/problems/rate-limited");
    assert!(
        body["detail"].as_str().unwrap().contains("burst 3"),
        "{body}"
    );
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["status"], 429);
    assert_eq!(event["ip"], "127.0.0.1");
    let rule = event["rule"].as_str().expect("rule");
    assert!(
        rule.starts_with("limits.anonymous: 1 requests per 3600 s"),
        "{rule}"
    );

    // The peer is not a trusted proxy: its X-Forwarded-For is not believed.
    let forged = app
        .client
        .get(app.url("/api/v1/datasets"))
        .header("X-Forwarded-For", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 429, "a forged X-Forwarded-For is ignored");
    // Any route of the API is limited, an unknown one included.
    assert_eq!(app.get("/api/v1/nowhere").await.status(), 429);

    for path in ["/health/live", "/health/ready", "/metrics", "/openapi.json"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path} is not limited");
        assert!(header(&response, "ratelimit").is_none(), "{path}");
    }
    let staff = app.token("agent-1", &["agent"], None).await;
    let response = app.get_as("/api/v1/datasets", &staff).await;
    assert_eq!(response.status(), 200, "staff have no limit by default");
    assert!(header(&response, "ratelimit").is_none());
    assert!(header(&response, "ratelimit-policy").is_none());

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("passerelle_rate_limit_refusals_total{policy=\"anonymous\"}"),
        "{metrics}"
    );
}

/// Behind a trusted reverse proxy, anonymous callers are counted per the
/// client address it forwards, not per the proxy.
async fn anonymous_callers_behind_a_proxy(kind: StoreKind, counter: Counter) {
    let Some(app) = spawn(kind, counter, &unique_prefix(), |settings| {
        settings.limits.anonymous = burst_of(2);
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let from = |client: &'static str| {
        app.client
            .get(app.url("/api/v1/datasets"))
            .header("X-Forwarded-For", client)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(from("203.0.113.7").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let refused = from("203.0.113.7").await.unwrap();
    let event = app.audit_event_of(&refused).await;
    assert_eq!(event["ip"], "203.0.113.7");
    assert_eq!(event["decision"], "deny");
    assert_eq!(
        from("198.51.100.20").await.unwrap().status(),
        200,
        "another client behind the proxy is not limited"
    );
}

/// A partner's own limits (`passerelle clients set-limit`) replace its
/// class's; each client is counted on its own, under the `client` policy.
async fn partner_limits_per_client(kind: StoreKind, counter: Counter) {
    let Some(app) = spawn(kind, counter, &unique_prefix(), |_| {}).await else {
        return;
    };
    let (limited, limited_key) = partner(&app).await;
    let (_, other_key) = partner(&app).await;
    passerelle::cli::clients(
        &app.state.settings,
        ClientsCommand::SetLimit {
            client_id: limited.clone(),
            requests: Some(1),
            per_seconds: Some(3600),
            burst: Some(2),
            daily_rows: None,
            daily_bytes: None,
            reset: false,
        },
    )
    .await
    .expect("set-limit");

    for remaining in [1, 0] {
        let response = get_with_key(&app, "/api/v1/datasets", &limited_key).await;
        assert_eq!(response.status(), 200);
        let policy = header(&response, "ratelimit-policy").expect("policy");
        assert!(policy.starts_with("\"client\";q=2;w=7200"), "{policy}");
        let limit = header(&response, "ratelimit").expect("RateLimit");
        assert!(
            limit.starts_with(&format!("\"client\";r={remaining};")),
            "{limit}"
        );
    }
    let refused = get_with_key(&app, "/api/v1/datasets", &limited_key).await;
    assert!(retry_after(&refused) >= 1);
    let event = app.audit_event_of(&refused).await;
    problem(refused, 429).await;
    assert_eq!(event["client_id"], limited.as_str());
    assert_eq!(event["decision"], "deny");
    assert!(
        event["rule"]
            .as_str()
            .unwrap()
            .starts_with("limits.client: 1 requests per 3600 s (burst 2)"),
        "{event}"
    );

    let other = get_with_key(&app, "/api/v1/datasets", &other_key).await;
    assert_eq!(other.status(), 200, "another client has its own allowance");
    let policy = header(&other, "ratelimit-policy").expect("policy");
    assert!(policy.starts_with("\"partners\";"), "{policy}");
}

/// A daily quota of rows counts the rows actually sent: the request that
/// crosses it is served, the next one is refused until midnight UTC.
async fn daily_quota_of_rows(kind: StoreKind, counter: Counter) {
    let Some(app) = spawn(kind, counter, &unique_prefix(), |_| {}).await else {
        return;
    };
    let key = partner_with(
        &app,
        LimitSet {
            daily_rows: Some(3),
            ..LimitSet::default()
        },
    )
    .await;
    let page = format!("/api/v1/data/{OPEN_DATASET}?limit=2");
    let first = get_with_key(&app, &page, &key).await;
    assert_eq!(first.status(), 200);
    let policy = header(&first, "ratelimit-policy").expect("policy");
    assert!(
        policy.contains("\"client-daily-rows\";q=3;w=86400"),
        "{policy}"
    );
    let limit = header(&first, "ratelimit").expect("RateLimit");
    assert!(limit.contains("\"client-daily-rows\";r=1;t="), "{limit}");
    let second = get_with_key(&app, &page, &key).await;
    assert_eq!(second.status(), 200, "under the quota when it began");
    let limit = header(&second, "ratelimit").expect("RateLimit");
    assert!(limit.contains("\"client-daily-rows\";r=0;t="), "{limit}");

    let refused = get_with_key(&app, &page, &key).await;
    let wait = retry_after(&refused);
    assert!((1..=86_400).contains(&wait), "until midnight UTC: {wait}");
    let event = app.audit_event_of(&refused).await;
    let body = problem(refused, 429).await;
    assert_eq!(body["type"], "/problems/quota-exceeded");
    assert_eq!(event["decision"], "deny");
    let rule = event["rule"].as_str().unwrap();
    assert!(
        rule.contains("daily quota of 3 rows used (4 sent today)"),
        "{rule}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("passerelle_rate_limit_refusals_total{policy=\"client-daily-rows\"}"),
        "{metrics}"
    );
}

/// A streamed export is charged the bytes it sent when it ends.
async fn daily_quota_of_bytes_counts_exports(kind: StoreKind, counter: Counter) {
    let Some(app) = spawn(kind, counter, &unique_prefix(), |_| {}).await else {
        return;
    };
    let key = partner_with(
        &app,
        LimitSet {
            daily_bytes: Some(500),
            ..LimitSet::default()
        },
    )
    .await;
    let export = get_with_key(
        &app,
        &format!("/api/v1/data/{OPEN_DATASET}?format=csv&limit=50"),
        &key,
    )
    .await;
    assert_eq!(export.status(), 200);
    let policy = header(&export, "ratelimit-policy").expect("policy");
    assert!(
        policy.contains("\"client-daily-bytes\";q=500;w=86400;qu=\"content-bytes\""),
        "{policy}"
    );
    let request_id = header(&export, "x-request-id").unwrap();
    let body = export.bytes().await.unwrap();
    assert!(body.len() > 500, "the export is larger than the quota");
    wait_for_completion(&app, &request_id).await;

    let refused = get_with_key(&app, "/api/v1/datasets", &key).await;
    let event = app.audit_event_of(&refused).await;
    let document = problem(refused, 429).await;
    assert_eq!(document["type"], "/problems/quota-exceeded");
    let rule = event["rule"].as_str().unwrap();
    assert!(
        rule.contains(&format!(
            "daily quota of 500 bytes used ({} sent today)",
            body.len()
        )),
        "{rule}"
    );
}

/// Waits for the completion event of a streamed export.
async fn wait_for_completion(app: &TestApp, request_id: &str) {
    for _ in 0..50 {
        let events = app
            .audit_events(&format!("dataset={OPEN_DATASET}&limit=1000"))
            .await;
        let access = events
            .iter()
            .find(|event| event["request_id"] == request_id && event["kind"] == "access");
        if let Some(access) = access
            && events
                .iter()
                .any(|event| event["kind"] == "completion" && event["refers_to"] == access["seq"])
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no completion event for {request_id}");
}

/// Two instances on one Redis share every caller's allowance.
async fn instances_share_limits_through_redis(kind: StoreKind) {
    let prefix = unique_prefix();
    let limit = |settings: &mut Settings| settings.limits.anonymous = burst_of(3);
    let Some(first) = spawn(kind, Counter::Redis, &prefix, limit).await else {
        return;
    };
    let Some(second) = spawn(kind, Counter::Redis, &prefix, limit).await else {
        return;
    };
    let mut statuses = Vec::new();
    for app in [&first, &second, &first, &second, &first] {
        statuses.push(app.get("/api/v1/datasets").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

/// With Redis unreachable the gateway keeps serving, and limits each
/// instance on its own in memory.
async fn redis_outage_falls_back_to_memory(kind: StoreKind) {
    let Some(app) = spawn(kind, Counter::RedisDown, &unique_prefix(), |settings| {
        settings.limits.anonymous = burst_of(2);
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/api/v1/datasets").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

macro_rules! with_each_counter {
    ($test:ident) => {
        mod $test {
            use super::{Counter, StoreKind};

            async fn in_memory(kind: StoreKind) {
                super::$test(kind, Counter::Memory).await;
            }
            async fn in_redis(kind: StoreKind) {
                super::$test(kind, Counter::Redis).await;
            }
            crate::test_both_stores!(in_memory);
            crate::test_both_stores!(in_redis);
        }
    };
}

with_each_counter!(anonymous_callers_are_limited);
with_each_counter!(anonymous_callers_behind_a_proxy);
with_each_counter!(partner_limits_per_client);
with_each_counter!(daily_quota_of_rows);
with_each_counter!(daily_quota_of_bytes_counts_exports);
crate::test_both_stores!(instances_share_limits_through_redis);
crate::test_both_stores!(redis_outage_falls_back_to_memory);

//! The HTTP edge seen by browsers and caches: CORS and its preflight,
//! compression (gzip, br, zstd; streamed and not; the size threshold) and
//! HTTP caching (Cache-Control, validators, 304 on every format).

use std::io::Read;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use crate::{on_both_stores, test_both_stores};

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";
const PIEZO: &str = "/api/v1/data/releves-piezometriques";
const INTERNAL: &str = "/api/v1/data/infractions-videoprotection";
const LISTED: &str = "https://app.example.org";
const ELSEWHERE: &str = "https://elsewhere.example";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Every value of a list header, lowercased, one per item.
fn items(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

async fn preflight(
    app: &TestApp,
    path: &str,
    origin: Option<&str>,
    headers: &str,
) -> reqwest::Response {
    let mut request = app.client.request(Method::OPTIONS, app.url(path));
    if let Some(origin) = origin {
        request = request
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", headers);
    }
    request.send().await.expect("preflight")
}

on_both_stores! {
    /// A preflight is 204 on every API route (unknown ones and POST-only
    /// ones included, never 405), allows the headers PostgREST clients send,
    /// and is never audited.
    async fn preflight_is_204_everywhere_and_never_audited(app: TestApp) {
        for path in [CONSO, INTERNAL, "/api/v1/datasets", "/api/v1/auth/token", "/api/v1/audit/events", "/api/v1/no-such-route", "/health/ready"] {
            let response = preflight(&app, path, Some(ELSEWHERE), "prefer, range, x-purpose, accept-profile").await;
            assert_eq!(response.status(), 204, "{path}");
            let headers = response.headers();
            assert_eq!(header(headers, "access-control-allow-origin"), Some(ELSEWHERE), "{path}");
            assert!(headers.get("access-control-allow-credentials").is_none(), "never credentials");
            let allowed = items(headers, "access-control-allow-headers");
            for name in ["authorization", "x-api-key", "x-purpose", "prefer", "range"] {
                assert!(allowed.contains(&name.to_owned()), "{path}: {name} in {allowed:?}");
            }
            let methods = items(headers, "access-control-allow-methods");
            assert!(methods.contains(&"get".to_owned()), "{methods:?}");
            assert_eq!(header(headers, "access-control-max-age"), Some("600"));
            assert!(response.bytes().await.unwrap().is_empty());
        }
        // An OPTIONS that is not a CORS preflight is not 405 either.
        assert_eq!(preflight(&app, CONSO, None, "").await.status(), 204);
        // A GET after them: its event is there, theirs are not.
        assert_eq!(app.get(CONSO).await.status(), 200);
        let events = app.audit_events("limit=1000").await;
        assert!(!events.is_empty());
        assert!(
            events.iter().all(|event| event["method"] != "OPTIONS"),
            "a preflight is never audited"
        );
    }
}

/// The allowed origins: `*` opens answers to requests without credentials
/// to any origin; credentialed requests only to listed origins.
async fn origins_and_credentials(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.server.cors.allowed_origins = vec!["*".to_owned(), LISTED.to_owned()];
    })
    .await
    else {
        return;
    };
    let token = app.token("agent-cors", &["agent"], None).await;
    // Preflights announcing a bearer token: listed origin only.
    let listed = preflight(&app, INTERNAL, Some(LISTED), "authorization").await;
    assert_eq!(listed.status(), 204);
    assert_eq!(
        header(listed.headers(), "access-control-allow-origin"),
        Some(LISTED)
    );
    let unlisted = preflight(&app, INTERNAL, Some(ELSEWHERE), "authorization").await;
    assert_eq!(unlisted.status(), 204);
    assert!(
        unlisted
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // Open data without credentials: any origin, headers exposed.
    let open = app
        .client
        .get(app.url(&format!("{CONSO}?limit=2")))
        .header("Origin", ELSEWHERE)
        .header("Prefer", "count=exact")
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 206, "a counted partial page");
    assert_eq!(
        header(open.headers(), "access-control-allow-origin"),
        Some(ELSEWHERE)
    );
    assert!(items(open.headers(), "vary").contains(&"origin".to_owned()));
    let exposed = items(open.headers(), "access-control-expose-headers");
    for name in [
        "content-range",
        "x-request-id",
        "x-suppressed-groups",
        "x-view",
        "etag",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
    ] {
        assert!(exposed.contains(&name.to_owned()), "{name} in {exposed:?}");
    }
    // Closed data with a token: the listed origin reads it, another does not.
    for (origin, allowed) in [(LISTED, true), (ELSEWHERE, false)] {
        let response = app
            .client
            .get(app.url(&format!("{INTERNAL}?limit=1")))
            .header("Origin", origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            allowed.then_some(origin),
            "{origin}"
        );
        assert!(
            response
                .headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    // A refusal without credentials is readable (the page shows the problem).
    let refused = app
        .client
        .get(app.url(INTERNAL))
        .header("Origin", ELSEWHERE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        header(refused.headers(), "access-control-allow-origin"),
        Some(ELSEWHERE)
    );
}
test_both_stores!(origins_and_credentials);

/// With no allowed origin, CORS is off: no Access-Control-Allow-Origin
/// anywhere, and a preflight is still 204 and unaudited.
#[tokio::test]
async fn cors_off() {
    let app = spawn_app_with(StoreKind::Sqlite, |settings| {
        settings.server.cors.allowed_origins = Vec::new();
    })
    .await
    .unwrap();
    let response = preflight(&app, CONSO, Some(ELSEWHERE), "prefer").await;
    assert_eq!(response.status(), 204);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = app
        .client
        .get(app.url(CONSO))
        .header("Origin", ELSEWHERE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli_decompressor::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        "zstd" => out = zstd::stream::decode_all(bytes).expect("zstd"),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

async fn fetch(app: &TestApp, path: &str, encoding: Option<&str>) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    if let Some(encoding) = encoding {
        request = request.header("Accept-Encoding", encoding);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

/// The completion event of an export, once written.
async fn completion_of(app: &TestApp, request_id: &str) -> Value {
    for _ in 0..50 {
        let events = app.audit_events("limit=1000").await;
        if let Some(event) = events
            .into_iter()
            .find(|event| event["request_id"] == request_id && event["kind"] == "completion")
        {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no completion event for {request_id}");
}

on_both_stores! {
    /// gzip, br and zstd on a JSON page and on each streamed format: the
    /// decoded answer is the uncompressed one, Content-Range survives, and
    /// the audit records the bytes that went on the wire.
    async fn each_encoding_streamed_and_not(app: TestApp) {
        let cases = [
            (format!("{CONSO}?limit=200"), false),
            (format!("{CONSO}?format=csv"), true),
            (format!("{CONSO}?format=ndjson"), true),
            (format!("{PIEZO}?format=geojson"), true),
        ];
        for (path, streamed) in &cases {
            let (status, plain_headers, plain) = fetch(&app, path, None).await;
            assert_eq!(status, 200, "{path}");
            assert!(plain_headers.get("content-encoding").is_none(), "no Accept-Encoding: identity");
            assert!(plain.len() > 1024, "{path}: {} bytes, over the threshold", plain.len());
            for encoding in ["gzip", "br", "zstd"] {
                let (status, headers, wire) = fetch(&app, path, Some(&format!("{encoding}, identity;q=0.5"))).await;
                assert_eq!(status, 200);
                assert_eq!(header(&headers, "content-encoding"), Some(encoding), "{path}");
                assert!(items(&headers, "vary").contains(&"accept-encoding".to_owned()));
                assert!(wire.len() < plain.len(), "{path} {encoding}: {} < {}", wire.len(), plain.len());
                assert_eq!(decode(encoding, &wire), plain, "{path} {encoding}");
                if !streamed {
                    assert_eq!(header(&headers, "content-range"), header(&plain_headers, "content-range"));
                    assert_eq!(header(&headers, "content-length"), Some(wire.len().to_string().as_str()));
                }
                let request_id = header(&headers, "x-request-id").unwrap().to_owned();
                let recorded = if *streamed {
                    completion_of(&app, &request_id).await
                } else {
                    app.audit_events("limit=1000").await.into_iter().find(|event| event["request_id"] == request_id.as_str()).expect("event")
                };
                assert_eq!(recorded["bytes"].as_i64(), Some(wire.len() as i64), "{path} {encoding}: bytes on the wire");
            }
        }
    }
}

/// Answers of a known size under `min_bytes` go out uncompressed; exports,
/// whose size is unknown when they start, are compressed whatever it says;
/// `enabled = false` compresses nothing.
#[tokio::test]
async fn threshold_and_switch() {
    let app = spawn_app_with(StoreKind::Sqlite, |_| {}).await.unwrap();
    let (_, headers, small) = fetch(&app, &format!("{CONSO}?limit=1"), Some("gzip")).await;
    assert!(small.len() < 1024, "{}", small.len());
    assert!(
        headers.get("content-encoding").is_none(),
        "under 1 KiB: not compressed"
    );
    let (_, headers, _) = fetch(&app, &format!("{CONSO}?limit=200"), Some("gzip")).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));

    let high = spawn_app_with(StoreKind::Sqlite, |settings| {
        settings.server.compression.min_bytes = 10 * 1024 * 1024;
    })
    .await
    .unwrap();
    let (_, headers, _) = fetch(&high, &format!("{CONSO}?limit=200"), Some("zstd")).await;
    assert!(
        headers.get("content-encoding").is_none(),
        "under the threshold set"
    );
    let (_, headers, _) = fetch(&high, &format!("{CONSO}?format=csv"), Some("zstd")).await;
    assert_eq!(
        header(&headers, "content-encoding"),
        Some("zstd"),
        "streamed: size unknown"
    );

    let off = spawn_app_with(StoreKind::Sqlite, |settings| {
        settings.server.compression.enabled = false;
    })
    .await
    .unwrap();
    for path in [format!("{CONSO}?limit=200"), format!("{CONSO}?format=csv")] {
        let (status, headers, _) = fetch(&off, &path, Some("gzip, br, zstd")).await;
        assert_eq!(status, 200);
        assert!(headers.get("content-encoding").is_none(), "{path}");
    }
}

on_both_stores! {
    /// Open data read anonymously: public with max-age, a weak ETag (the
    /// same whatever the coding), Last-Modified and Vary; 304 on
    /// If-None-Match (with any coding) and on If-Modified-Since, for JSON,
    /// CSV, NDJSON and GeoJSON alike.
    async fn caching_headers_and_304_on_every_format(app: TestApp) {
        for path in [
            format!("{CONSO}?limit=5"),
            format!("{CONSO}?limit=5&format=csv"),
            format!("{CONSO}?limit=5&format=ndjson"),
            format!("{PIEZO}?limit=5&format=geojson"),
        ] {
            let (status, headers, body) = fetch(&app, &path, None).await;
            assert_eq!(status, 200, "{path}");
            assert!(!body.is_empty());
            assert_eq!(header(&headers, "cache-control"), Some("public, max-age=60"), "{path}");
            let vary = items(&headers, "vary");
            for name in ["authorization", "x-api-key", "accept", "accept-encoding"] {
                assert!(vary.contains(&name.to_owned()), "{path}: {name} in {vary:?}");
            }
            let etag = header(&headers, "etag").expect("ETag").to_owned();
            assert!(etag.starts_with("W/\""), "weak: {etag}");
            let modified = header(&headers, "last-modified").expect("Last-Modified").to_owned();
            assert!(modified.ends_with(" GMT"), "{modified}");

            let (_, compressed, _) = fetch(&app, &path, Some("gzip")).await;
            assert_eq!(header(&compressed, "etag"), Some(etag.as_str()), "{path}: same weak ETag under gzip");

            for (name, value, encoding) in [
                ("If-None-Match", etag.as_str(), None),
                ("If-None-Match", etag.as_str(), Some("zstd")),
                ("If-None-Match", etag.trim_start_matches("W/"), None),
                ("If-Modified-Since", modified.as_str(), None),
            ] {
                let mut request = app.client.get(app.url(&path)).header(name, value);
                if let Some(encoding) = encoding {
                    request = request.header("Accept-Encoding", encoding);
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 304, "{path} {name}: {value}");
                assert_eq!(header(response.headers(), "etag"), Some(etag.as_str()));
                assert_eq!(header(response.headers(), "cache-control"), Some("public, max-age=60"));
                assert!(response.bytes().await.unwrap().is_empty());
            }
            let changed = app.client.get(app.url(&path)).header("If-None-Match", "W/\"other\"").send().await.unwrap();
            assert_eq!(changed.status(), 200, "{path}: another ETag is not a match");
        }
    }
}

on_both_stores! {
    /// Whatever needed credentials, and every other API answer, is
    /// `private, no-store`.
    async fn credentials_make_answers_private(app: TestApp) {
        let token = app.token("agent-cache", &["agent"], None).await;
        for path in [format!("{INTERNAL}?limit=1"), format!("{INTERNAL}?limit=1&format=csv"), format!("{CONSO}?limit=1")] {
            let response = app.get_as(&path, &token).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(header(response.headers(), "cache-control"), Some("private, no-store"), "{path}");
            assert!(header(response.headers(), "etag").is_some_and(|etag| etag.starts_with("W/")));
        }
        for path in ["/api/v1/datasets", INTERNAL, "/api/v1/no-such-route"] {
            let response = app.get(path).await;
            assert_eq!(header(response.headers(), "cache-control"), Some("private, no-store"), "{path}");
        }
    }
}

//! Hostile bytes and oversized requests at the HTTP edge: each one is a
//! problem document with a request id and leaves an audit event recording
//! what was sent (escaped), while legitimate traffic running alongside never
//! sees a 5xx because of them.

use std::collections::HashMap;

use reqwest::header::HeaderValue;
use serde_json::Value;

use crate::helpers::{TestApp, problem};
use crate::on_both_stores;

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";

/// Every audit event, by request id (paged through as an auditor would).
async fn events_by_request_id(app: &TestApp) -> HashMap<String, Value> {
    let mut events = HashMap::new();
    let mut cursor: Option<String> = None;
    let auditor = app.token("test-auditor", &["auditor"], None).await;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/audit/events?limit=1000&cursor={cursor}"),
            None => "/api/v1/audit/events?limit=1000".to_owned(),
        };
        let response = app.get_as(&path, &auditor).await;
        assert_eq!(response.status(), 200, "audit events readable");
        let page: Value = response.json().await.expect("event page");
        for event in page["events"].as_array().expect("events") {
            let request_id = event["request_id"].as_str().expect("request id").to_owned();
            events.entry(request_id).or_insert_with(|| event.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    events
}

/// The request id a response carries.
fn request_id_of(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .expect("request id")
        .to_owned()
}

/// A hostile request: its path, an optional raw `User-Agent`, the status
/// class expected, and what its audit event must record.
struct Hostile {
    path: String,
    user_agent: Option<&'static [u8]>,
    status: u16,
    audited: &'static [(&'static str, &'static str)],
}

fn hostile_requests() -> Vec<Hostile> {
    let hostile = |path: &str, status, audited| Hostile {
        path: path.to_owned(),
        user_agent: None,
        status,
        audited,
    };
    let agent = |bytes: &'static [u8], audited| Hostile {
        path: format!("{CONSO}?limit=1"),
        user_agent: Some(bytes),
        status: 200,
        audited,
    };
    vec![
        hostile(
            "/api/v1/data/%00",
            400,
            &[("dataset", "\\u{0}"), ("path", "/api/v1/data/%00")],
        ),
        hostile("/api/v1/data/a%00b", 400, &[("dataset", "a\\u{0}b")]),
        hostile(
            "/api/v1/data/%FF",
            400,
            &[("dataset", "\\x{ff}"), ("path", "/api/v1/data/%FF")],
        ),
        hostile("/api/v1/datasets/%C3%28", 400, &[("dataset", "\\x{c3}(")]),
        hostile(
            "/api/v1/data/abc%E2%80%AEtxt.exe",
            404,
            &[("dataset", "abc\\u{202e}txt.exe")],
        ),
        hostile(
            "/api/v1/data/zero%E2%80%8Bwidth",
            404,
            &[("dataset", "zero\\u{200b}width")],
        ),
        hostile(
            &format!("{CONSO}?select=%00"),
            400,
            &[("query", "select=%00")],
        ),
        agent(
            "navigateur/1.0 (été; Zoë)".as_bytes(),
            &[("user_agent", "navigateur/1.0 (été; Zoë)")],
        ),
        agent(
            b"probe/\xff\xfe (latin-1 \xe9t\xe9)",
            &[(
                "user_agent",
                "probe/\\x{ff}\\x{fe} (latin-1 \\x{e9}t\\x{e9})",
            )],
        ),
        agent(
            "spoof/\u{202e}gpj.exe".as_bytes(),
            &[("user_agent", "spoof/\\u{202e}gpj.exe")],
        ),
    ]
}

on_both_stores! {
    /// Legitimate reads while hostile requests are sent: zero 5xx for the
    /// legitimate ones; each hostile one gets its answer (a problem document
    /// with a request id when refused) and an audit event with the values
    /// escaped; the chain still verifies.
    async fn hostile_bytes(app: TestApp) {
        const WORKERS: usize = 4;
        const READS: usize = 60;
        const ROUNDS: usize = 6;
        let readers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let client = app.client.clone();
                let url = app.url(&format!("{CONSO}?limit=1"));
                tokio::spawn(async move {
                    let mut statuses = Vec::with_capacity(READS);
                    for _ in 0..READS {
                        let response = client.get(&url).send().await.expect("legitimate read");
                        statuses.push(response.status().as_u16());
                    }
                    statuses
                })
            })
            .collect();
        let mut sent: Vec<(String, &'static [(&'static str, &'static str)])> = Vec::new();
        let cases = hostile_requests();
        for round in 0..ROUNDS {
            for (index, case) in cases.iter().enumerate() {
                let mut request = app.client.get(app.url(&case.path));
                if let Some(bytes) = case.user_agent {
                    request = request.header(
                        "user-agent",
                        HeaderValue::from_bytes(bytes).expect("obs-text is a valid header value"),
                    );
                }
                let response = request.send().await.expect("hostile request");
                let request_id = request_id_of(&response);
                let label = format!("round {round}, case {index} ({})", case.path);
                if case.status == 200 {
                    assert_eq!(response.status(), 200, "{label}");
                } else {
                    let body = problem(response, case.status).await;
                    assert_eq!(body["request_id"], request_id.as_str(), "{label}");
                    let texts = body
                        .as_object()
                        .expect("an object")
                        .values()
                        .filter_map(Value::as_str);
                    for text in texts {
                        assert!(
                            !text.chars().any(|character| character.is_control()
                                || matches!(character, '\u{202e}' | '\u{200b}')),
                            "{label}: raw invisible character in {text:?}"
                        );
                    }
                }
                sent.push((request_id, case.audited));
            }
        }
        let mut legitimate: HashMap<u16, usize> = HashMap::new();
        for reader in readers {
            for status in reader.await.expect("reader") {
                *legitimate.entry(status).or_default() += 1;
            }
        }
        let failures: usize = legitimate
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, count)| count)
            .sum();
        assert_eq!(failures, 0, "legitimate reads by status: {legitimate:?}");
        assert_eq!(
            legitimate.get(&200),
            Some(&(WORKERS * READS)),
            "{legitimate:?}"
        );

        let events = events_by_request_id(&app).await;
        for (request_id, audited) in sent {
            let event = events
                .get(&request_id)
                .unwrap_or_else(|| panic!("no audit event for {request_id}"));
            for (field, value) in audited {
                assert_eq!(event[*field], *value, "{field} of {event}");
            }
        }
        let verification = app.state.audit.verify(None, None).await.expect("verify");
        assert!(verification.ok, "{verification:?}");
    }
}

/// Sends `request` as raw bytes and returns the status line, the headers
/// (lower-case names) and the body (the connection is closed by the request).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (u16, HashMap<String, String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// Checks a problem document and its audit event: `request_id` equal to
/// `X-Request-Id`, a `deny` event with the status and the rule fragment.
async fn assert_refused(
    app: &TestApp,
    response: reqwest::Response,
    status: u16,
    kind: &str,
    rule: Option<&str>,
) -> Value {
    let request_id = request_id_of(&response);
    let body = problem(response, status).await;
    assert_eq!(body["type"], kind, "{body}");
    let events = events_by_request_id(app).await;
    let event = events
        .get(&request_id)
        .unwrap_or_else(|| panic!("no audit event for the {status} ({request_id})"))
        .clone();
    assert_eq!(event["status"], status, "{event}");
    assert_eq!(event["decision"], "deny", "{event}");
    if let Some(rule) = rule {
        assert!(
            event["rule"]
                .as_str()
                .is_some_and(|text| text.contains(rule)),
            "{event}"
        );
    }
    event
}

on_both_stores! {
    /// Rejections at the edge (413, 414, 431, unknown route, wrong method,
    /// a chunked body past the limit) are problem documents whose
    /// `request_id` is the `X-Request-Id`, each with an audit event.
    async fn edge_rejections(app: TestApp) {
        let limits = app.state.settings.server.clone();
        assert_eq!((limits.max_uri_bytes, limits.max_header_bytes), (8192, 32768));

        let body = vec![b'a'; limits.max_body_bytes + 6 * 1024];
        let response = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let event = assert_refused(&app, response, 413, "/problems/body-too-large", Some("max_body_bytes")).await;
        assert_eq!((event["method"].as_str(), event["path"].as_str()), (Some("POST"), Some("/api/v1/auth/token")));

        let long = format!("{CONSO}?limit=1&x={}", "a".repeat(20 * 1024));
        let event = assert_refused(&app, app.get(&long).await, 414, "/problems/uri-too-long", Some("max_uri_bytes")).await;
        let query = event["query"].as_str().expect("query recorded");
        assert!(query.starts_with("limit=1&x=aaa") && query.len() <= 8192, "{} bytes", query.len());

        let response = app
            .client
            .get(app.url(CONSO))
            .header("x-padding", "b".repeat(40 * 1024))
            .send()
            .await
            .unwrap();
        assert_refused(&app, response, 431, "/problems/headers-too-large", Some("max_header_bytes")).await;

        assert_refused(&app, app.get("/api/v1/nowhere").await, 404, "/problems/not-found", None).await;
        let response = app.client.post(app.url("/api/v1/data/x")).send().await.unwrap();
        let event = assert_refused(&app, response, 405, "/problems/method-not-allowed", None).await;
        assert_eq!(event["method"], "POST");

        // A chunked body announces no length: it is cut while being read,
        // past the edge; the framework's plain-text 413 becomes a problem.
        let chunk = "c".repeat(limits.max_body_bytes + 1024);
        let request = format!(
            "POST /api/v1/policy/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        );
        let (status, headers, body) = raw_exchange(&app, request.as_bytes()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(headers.get("content-type").map(String::as_str), Some("application/problem+json"));
        let document: Value = serde_json::from_str(&body).expect("problem JSON");
        assert_eq!(document["request_id"], headers["x-request-id"].as_str(), "{document}");
        let events = events_by_request_id(&app).await;
        assert_eq!(events[&headers["x-request-id"]]["status"], 413);

        // Routes outside the API carry a request id too.
        let response = app.get("/health/live").await;
        assert!(response.headers().contains_key("x-request-id"));
        let verification = app.state.audit.verify(None, None).await.expect("verify");
        assert!(verification.ok, "{verification:?}");
    }
}

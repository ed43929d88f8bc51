//! The audit trail tells what the caller got: a few hundred varied requests
//! (every status the API gives, every way to be refused), each response
//! reconciled through its `X-Request-Id` with the event an auditor reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const OPEN: &str = "consommations-energie-batiments";
const PARTNERS: &str = "locations-velos";
const PERSONAL: &str = "menages-precarite-energetique";

/// One request and what its event must say besides what the response says.
struct Case {
    label: &'static str,
    method: reqwest::Method,
    path: String,
    token: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    subject: Option<&'static str>,
    dataset: Option<String>,
    /// `None`: not checked (a refusal may name the view it would have used).
    view: Option<Option<&'static str>>,
    /// `None`: not checked.
    purpose: Option<Option<&'static str>>,
}

impl Case {
    fn get(label: &'static str, path: String, dataset: Option<&str>) -> Case {
        Case {
            label,
            method: reqwest::Method::GET,
            path,
            token: None,
            headers: Vec::new(),
            body: None,
            subject: None,
            dataset: dataset.map(str::to_owned),
            view: None,
            purpose: None,
        }
    }

    fn by(mut self, token: &str, subject: &'static str) -> Case {
        self.token = Some(token.to_owned());
        self.subject = Some(subject);
        self
    }

    fn bearer(mut self, token: &str) -> Case {
        self.token = Some(token.to_owned());
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn view(mut self, view: Option<&'static str>) -> Case {
        self.view = Some(view);
        self
    }

    fn purpose(mut self, purpose: Option<&'static str>) -> Case {
        self.purpose = Some(purpose);
        self
    }
}

/// What came back.
struct Answer {
    request_id: String,
    status: u16,
    /// Rows of a JSON array body.
    rows: Option<usize>,
}

async fn send(app: &TestApp, case: &Case) -> Answer {
    let mut request = app.client.request(case.method.clone(), app.url(&case.path));
    if let Some(token) = &case.token {
        request = request.bearer_auth(token);
    }
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("request id")
        .to_owned();
    let json = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let body = response.bytes().await.expect("body");
    let rows = (json && (status == 200 || status == 206))
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .and_then(|value| value.as_array().map(Vec::len));
    Answer {
        request_id,
        status,
        rows,
    }
}

/// Every access event, paging with `next_cursor`.
async fn all_access_events(app: &TestApp) -> HashMap<String, Vec<Value>> {
    let auditor = app.token("trail-auditor", &["auditor"], None).await;
    let mut events: HashMap<String, Vec<Value>> = HashMap::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(cursor) => format!("/api/v1/audit/events?limit=1000&cursor={cursor}"),
            None => "/api/v1/audit/events?limit=1000".to_owned(),
        };
        let response = app.get_as(&path, &auditor).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("event page");
        for event in page["events"].as_array().expect("events") {
            if event["kind"] == "access" {
                let id = event["request_id"].as_str().unwrap_or_default().to_owned();
                events.entry(id).or_default().push(event.clone());
            }
        }
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return events,
        }
    }
}

/// A token whose signature is not the gateway's.
fn forged(token: &str) -> String {
    let (head, signature) = token.rsplit_once('.').expect("a JWT");
    let mut bytes = signature.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(bytes).expect("base64url"))
}

fn cases(app: &TestApp, round: usize, tokens: &Tokens, etag: &str) -> Vec<Case> {
    let limit = round + 1;
    let data = |id: &str| format!("/api/v1/data/{id}");
    let mut list = vec![
        Case::get(
            "open page",
            format!("{}?limit={limit}", data(OPEN)),
            Some(OPEN),
        )
        .view(None),
        Case::get(
            "open page, agent",
            format!("{}?limit={limit}&select=id,commune", data(OPEN)),
            Some(OPEN),
        )
        .by(&tokens.agent, "agent-1")
        .view(None),
        Case::get(
            "partial page",
            format!("{}?select=id&limit=3&offset={round}", data(OPEN)),
            Some(OPEN),
        )
        .header("Prefer", "count=exact"),
        Case::get(
            "not modified",
            format!("{}?limit=3", data(OPEN)),
            Some(OPEN),
        )
        .header("If-None-Match", etag),
        Case::get(
            "malformed query",
            format!("{}?limit=abc{round}", data(OPEN)),
            Some(OPEN),
        ),
        Case::get(
            "unknown column",
            format!("{}?select=nope{round}", data(OPEN)),
            Some(OPEN),
        ),
        Case::get(
            "unknown format",
            format!("{}?format=xml&limit={limit}", data(OPEN)),
            Some(OPEN),
        ),
        Case::get(
            "not acceptable",
            format!("{}?limit={limit}", data(OPEN)),
            Some(OPEN),
        )
        .header("Accept", "image/png"),
        Case::get(
            "offset past the end",
            format!("{}?select=id&offset={}", data(OPEN), 100_000 + round),
            Some(OPEN),
        )
        .header("Prefer", "count=exact"),
        Case::get(
            "csv export",
            format!("{}?format=csv&limit={limit}", data(OPEN)),
            Some(OPEN),
        ),
        Case::get(
            "catalogue entry",
            format!("/api/v1/datasets/{OPEN}"),
            Some(OPEN),
        ),
        Case::get("catalogue list", "/api/v1/datasets".to_owned(), None),
        Case::get(
            "unknown dataset",
            data(&format!("nope-{round}")),
            Some(&format!("nope-{round}")),
        ),
        Case::get(
            "unknown catalogue entry",
            format!("/api/v1/datasets/nope-{round}"),
            Some(&format!("nope-{round}")),
        ),
        Case::get("encoded id", data("%C3%A9t%C3%A9"), Some("été")),
        Case::get("sub-path", format!("{}/rows", data(OPEN)), Some(OPEN)),
        Case::get(
            "no token on closed data",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        ),
        Case::get("hidden from anonymous", data(PERSONAL), Some(PERSONAL)),
        Case::get(
            "forged token",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        )
        .bearer(&forged(&tokens.partner)),
        Case::get(
            "forged token, catalogue",
            format!("/api/v1/datasets/{PARTNERS}"),
            Some(PARTNERS),
        )
        .bearer(&forged(&tokens.agent)),
        Case::get("forged token, id not UTF-8", data("%FF"), Some("\\x{ff}"))
            .bearer(&forged(&tokens.agent)),
        Case::get(
            "expired token",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        )
        .bearer(&tokens.expired),
        Case::get(
            "role without the right",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        )
        .by(&tokens.agent, "agent-1"),
        Case::get(
            "partner through its view",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        )
        .by(&tokens.partner, "ville-troyes")
        .view(Some("par-commune")),
        Case::get(
            "partner without its claim",
            format!("{}?limit={limit}", data(PARTNERS)),
            Some(PARTNERS),
        )
        .by(&tokens.partner_without_org, "partenaire-sans-org"),
        Case::get(
            "aggregates",
            format!("{}?select=commune,count()", data(PERSONAL)),
            Some(PERSONAL),
        )
        .by(&tokens.ademe, "ademe")
        .header("X-Purpose", "observatoire")
        .view(Some("agregats-ademe"))
        .purpose(Some("observatoire")),
        Case::get(
            "aggregate-only raw read",
            format!("{}?limit={limit}", data(PERSONAL)),
            Some(PERSONAL),
        )
        .by(&tokens.ademe, "ademe")
        .header("X-Purpose", "observatoire")
        .purpose(Some("observatoire")),
        Case::get(
            "missing purpose",
            format!("{}?select=count()", data(PERSONAL)),
            Some(PERSONAL),
        )
        .by(&tokens.ademe, "ademe")
        .purpose(None),
        Case::get(
            "personal data with purpose",
            format!("{}?limit={limit}", data(PERSONAL)),
            Some(PERSONAL),
        )
        .by(&tokens.social, "social")
        .header("X-Purpose", "accompagnement social")
        .view(Some("accompagnement-social"))
        .purpose(Some("accompagnement social")),
        Case::get(
            "uri too long",
            format!("{}?x={}", data(OPEN), "a".repeat(9 * 1024)),
            Some(OPEN),
        ),
    ];
    let mut post = Case::get("method not allowed", data(OPEN), Some(OPEN));
    post.method = reqwest::Method::POST;
    list.push(post);
    let mut forged_post = Case::get(
        "method not allowed, forged token",
        data(PARTNERS),
        Some(PARTNERS),
    )
    .bearer(&forged(&tokens.partner));
    forged_post.method = reqwest::Method::POST;
    list.push(forged_post);
    let mut large = Case::get("body too large", data(OPEN), Some(OPEN));
    large.method = reqwest::Method::POST;
    large.body = Some(vec![b'a'; app.state.settings.server.max_body_bytes + 1024]);
    list.push(large);
    list
}

struct Tokens {
    agent: String,
    partner: String,
    partner_without_org: String,
    ademe: String,
    social: String,
    expired: String,
}

async fn reconciles_every_response_with_its_event(kind: StoreKind) {
    // No leeway, so that a token minted for one second is expired two seconds later.
    let Some(app) = spawn_app_with(kind, |settings| settings.auth.leeway_seconds = 0).await else {
        return;
    };
    let keys = passerelle::auth::KeyRing::load(&app.state.store, &app.state.settings.auth)
        .await
        .expect("key ring");
    let expired = keys
        .mint(
            "expired-partner",
            Some("Troyes"),
            &["partenaire".to_owned()],
            1,
        )
        .await
        .expect("token");
    let tokens = Tokens {
        agent: app.token("agent-1", &["agent"], None).await,
        partner: app
            .token("ville-troyes", &["partenaire"], Some("Troyes"))
            .await,
        partner_without_org: app
            .token("partenaire-sans-org", &["partenaire"], None)
            .await,
        ademe: app.token("ademe", &["ademe"], Some("ADEME")).await,
        social: app.token("social", &["service-social"], None).await,
        expired,
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let etag = app
        .get(&format!("/api/v1/data/{OPEN}?limit=3"))
        .await
        .headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();

    let mut sent: Vec<(Case, Answer)> = Vec::new();
    for round in 0..8 {
        for case in cases(&app, round, &tokens, &etag) {
            let answer = send(&app, &case).await;
            sent.push((case, answer));
        }
    }
    let statuses: BTreeSet<u16> = sent.iter().map(|(_, answer)| answer.status).collect();
    for expected in [200, 206, 304, 400, 401, 403, 404, 405, 406, 413, 414, 416] {
        assert!(
            statuses.contains(&expected),
            "no {expected} among {statuses:?}"
        );
    }

    let events = all_access_events(&app).await;
    let mut disagreements: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut disagreeing_events = 0;
    for (case, answer) in &sent {
        let mut wrong = |check: &'static str, detail: String| {
            disagreements
                .entry(check)
                .or_default()
                .push(format!("{} ({}): {detail}", case.label, answer.status));
        };
        let Some(found) = events.get(&answer.request_id) else {
            wrong("one event", "no event".to_owned());
            disagreeing_events += 1;
            continue;
        };
        if found.len() != 1 {
            wrong("one event", format!("{} events", found.len()));
        }
        let event = &found[0];
        let before = disagreements.values().map(Vec::len).sum::<usize>();
        let mut wrong = |check: &'static str, detail: String| {
            disagreements
                .entry(check)
                .or_default()
                .push(format!("{} ({}): {detail}", case.label, answer.status));
        };
        if event["status"] != answer.status {
            wrong("status", format!("event says {}", event["status"]));
        }
        if event["dataset"].as_str() != case.dataset.as_deref() {
            wrong(
                "dataset",
                format!(
                    "event says {}, path names {:?}",
                    event["dataset"], case.dataset
                ),
            );
        }
        if event["subject"].as_str() != case.subject {
            wrong("subject", format!("event says {}", event["subject"]));
        }
        let deny = answer.status >= 400;
        let decision = event["decision"].as_str().unwrap_or_default();
        if decision != if deny { "deny" } else { "allow" } {
            wrong(
                "decision",
                format!("event says {decision} (rule {})", event["rule"]),
            );
        }
        if deny && event["rule"].as_str().is_none_or(str::is_empty) {
            wrong("rule on deny", "no rule".to_owned());
        }
        if let Some(view) = case.view
            && event["view"].as_str() != view
        {
            wrong(
                "view",
                format!("event says {}, expected {view:?}", event["view"]),
            );
        }
        if let Some(purpose) = case.purpose
            && event["purpose"].as_str() != purpose
        {
            wrong(
                "purpose",
                format!("event says {}, expected {purpose:?}", event["purpose"]),
            );
        }
        if let Some(rows) = answer.rows
            && event["rows"].as_u64() != Some(rows as u64)
        {
            wrong(
                "rows",
                format!("event says {}, body has {rows}", event["rows"]),
            );
        }
        if disagreements.values().map(Vec::len).sum::<usize>() > before {
            disagreeing_events += 1;
        }
    }
    let summary: Vec<String> = disagreements
        .iter()
        .map(|(check, cases)| {
            let labels: BTreeSet<&str> = cases.iter().map(String::as_str).collect();
            format!(
                "{check}: {} ({:?})",
                cases.len(),
                labels.iter().take(8).collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(
        disagreements.is_empty(),
        "{disagreeing_events} of {} events disagreed with their response:\n{}",
        sent.len(),
        summary.join("\n")
    );
}

crate::test_both_stores!(reconciles_every_response_with_its_event);

/// The refusing layer's own reason is recorded, not the rule that let the
/// caller that far.
async fn refusals_name_their_reason(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |_| {}).await else {
        return;
    };
    let ademe = app.token("ademe", &["ademe"], Some("ADEME")).await;
    let response = app
        .client
        .get(app.url(&format!("/api/v1/data/{PERSONAL}?limit=5")))
        .bearer_auth(&ademe)
        .header("X-Purpose", "observatoire")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(
        event["rule"], "aggregate-only view `agregats-ademe`: raw rows refused",
        "{event}"
    );

    let partner = app
        .token("partenaire-sans-org", &["partenaire"], None)
        .await;
    let response = app
        .get_as(&format!("/api/v1/data/{PARTNERS}"), &partner)
        .await;
    assert_eq!(response.status(), 403);
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(event["rule"], "row filter needs claim `org`", "{event}");

    let response = app
        .client
        .get(app.url(&format!("/api/v1/data/{PERSONAL}?select=count()")))
        .bearer_auth(&ademe)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(
        event["rule"], "personal data: X-Purpose required",
        "{event}"
    );

    // A layer that notes no reason is named by the problem the caller got.
    let response = app
        .client
        .get(app.url(&format!("/api/v1/data/{OPEN}")))
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(
        event["rule"], "refused after access was granted: not-acceptable",
        "{event}"
    );
    let response = app
        .client
        .post(app.url(&format!("/api/v1/data/{OPEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["rule"], "refused: method-not-allowed", "{event}");
    assert_eq!(event["dataset"], OPEN, "{event}");
}

crate::test_both_stores!(refusals_name_their_reason);

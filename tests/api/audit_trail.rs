//! The audit log as auditors see it: every access and every refusal recorded
//! with who, what, why and how much, secrets left out, tampering detected,
//! closed data refused when the log cannot be written.

use serde_json::Value;

use crate::helpers::{StoreKind, problem, spawn_app_with};
use crate::on_both_stores;

on_both_stores! {
    /// A successful anonymous read and a refusal each leave one event with the facts.
    async fn records_reads_and_refusals(app: TestApp) {
        let response = app
            .client
            .get(app.url("/api/v1/data/consommations-energie-batiments?commune=eq.Troyes&limit=3"))
            .header("User-Agent", "audit-test/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let event = app.audit_event_of(&response).await;
        assert!(event["subject"].is_null(), "anonymous: {event}");
        assert_eq!(event["auth_method"], "anonymous");
        assert_eq!(event["dataset"], "consommations-energie-batiments");
        assert_eq!(event["action"], "read");
        assert_eq!(event["decision"], "allow");
        assert_eq!(event["status"], 200);
        assert_eq!(event["rows"], 3);
        assert_eq!(event["method"], "GET");
        assert_eq!(event["query"], "commune=eq.Troyes&limit=3");
        assert_eq!(event["user_agent"], "audit-test/1.0");
        assert_eq!(event["ip"], "127.0.0.1");
        assert!(event["rule"].as_str().is_some_and(|rule| !rule.is_empty()), "{event}");

        let refused = app.get("/api/v1/data/infractions-videoprotection?limit=1").await;
        assert_eq!(refused.status(), 401);
        let event = app.audit_event_of(&refused).await;
        assert_eq!(event["decision"], "deny");
        assert_eq!(event["status"], 401);
        assert_eq!(event["dataset"], "infractions-videoprotection");

        let agent = app.token("agent-dupont", &["agent"], Some("Ville de Troyes")).await;
        let allowed = app.get_as("/api/v1/data/infractions-videoprotection?limit=2", &agent).await;
        assert_eq!(allowed.status(), 200);
        let event = app.audit_event_of(&allowed).await;
        assert_eq!(event["subject"], "agent-dupont");
        assert_eq!(event["org"], "Ville de Troyes");
        assert!(event["roles"].as_array().unwrap().iter().any(|role| role == "agent"), "{event}");
        assert_eq!(event["auth_method"], "jwt");
        assert!(event["token_id"].as_str().is_some_and(|id| !id.is_empty()), "the token's jti: {event}");
        assert_eq!(event["rows"], 2);
    }
}

on_both_stores! {
    /// Bad queries, unknown datasets and bad tokens are recorded too.
    async fn records_every_kind_of_refusal(app: TestApp) {
        let bad_query = app.get("/api/v1/data/consommations-energie-batiments?nope=eq.1").await;
        assert_eq!(bad_query.status(), 400);
        let event = app.audit_event_of(&bad_query).await;
        assert_eq!(event["status"], 400);

        let unknown = app.get("/api/v1/data/n-existe-pas").await;
        assert_eq!(unknown.status(), 404);
        assert_eq!(app.audit_event_of(&unknown).await["status"], 404);

        let forged = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let bad_token = app.get_as("/api/v1/data/consommations-energie-batiments?limit=1", forged).await;
        assert_eq!(bad_token.status(), 401);
        let event = app.audit_event_of(&bad_token).await;
        assert_eq!(event["decision"], "deny");
        assert_eq!(event["status"], 401);
        let text = event.to_string();
        assert!(!text.contains(forged), "the token never enters the log: {text}");
    }
}

on_both_stores! {
    /// The purpose declared for personal data, the rule and the view are recorded.
    async fn records_purpose_rule_and_view(app: TestApp) {
        let token = app.token("ademe", &["ademe"], Some("ADEME")).await;
        let response = app
            .client
            .get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,count()"))
            .bearer_auth(&token)
            .header("X-Purpose", "observatoire de la precarite 2026")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let event = app.audit_event_of(&response).await;
        assert_eq!(event["purpose"], "observatoire de la precarite 2026");
        assert_eq!(event["view"], "agregats-ademe");
        assert_eq!(event["decision"], "allow");
    }
}

on_both_stores! {
    /// Secrets in a query string are redacted before they are stored.
    async fn never_stores_secrets(app: TestApp) {
        let response = app
            .get("/api/v1/data/consommations-energie-batiments?limit=1&access_token=s3cr3t-value")
            .await;
        let event = app.audit_event_of(&response).await;
        assert!(!event.to_string().contains("s3cr3t-value"), "{event}");
    }
}

on_both_stores! {
    /// Only auditors read the log; their reads are recorded as well.
    async fn audit_endpoints_need_audit_read(app: TestApp) {
        problem(app.get("/api/v1/audit/events").await, 401).await;
        let agent = app.token("agent", &["agent"], None).await;
        problem(app.get_as("/api/v1/audit/events", &agent).await, 403).await;
        problem(app.get_as("/api/v1/audit/verify", &agent).await, 403).await;
        problem(app.get_as("/api/v1/audit/stats", &agent).await, 403).await;
        let auditor = app.token("auditrice", &["auditor"], None).await;
        let first = app.get_as("/api/v1/audit/events?limit=5", &auditor).await;
        assert_eq!(first.status(), 200);
        let event = app.audit_event_of(&first).await;
        assert_eq!(event["subject"], "auditrice");
        assert_eq!(event["path"], "/api/v1/audit/events");
        problem(app.get_as("/api/v1/audit/events?status=abc", &auditor).await, 400).await;
    }
}

on_both_stores! {
    /// Filters, cursor pages, CSV and statistics.
    async fn review_filters_pages_and_stats(app: TestApp) {
        for _ in 0..5 {
            assert_eq!(app.get("/api/v1/data/frequentation-musees?limit=1").await.status(), 200);
        }
        let auditor = app.token("auditrice", &["auditor"], None).await;
        let page: Value = app
            .get_as("/api/v1/audit/events?dataset=frequentation-musees&limit=2", &auditor)
            .await
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|event| event["dataset"] == "frequentation-musees"));
        let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
        let next: Value = app
            .get_as(&format!("/api/v1/audit/events?dataset=frequentation-musees&limit=2&cursor={cursor}"), &auditor)
            .await
            .json()
            .await
            .unwrap();
        let next_events = next["events"].as_array().unwrap();
        assert_eq!(next_events.len(), 2);
        assert!(next_events.iter().all(|event| !events.contains(event)), "pages do not overlap");

        let csv = app
            .get_as("/api/v1/audit/events?dataset=frequentation-musees&format=csv", &auditor)
            .await;
        assert_eq!(csv.status(), 200);
        assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = csv.text().await.unwrap();
        assert_eq!(text.lines().skip(1).filter(|line| line.contains("frequentation-musees")).count(), 5);

        let stats: Value = app.get_as("/api/v1/audit/stats", &auditor).await.json().await.unwrap();
        let text = stats.to_string();
        assert!(text.contains("frequentation-musees"), "{text}");
    }
}

on_both_stores! {
    /// A streamed export is completed with its rows and bytes once it ends.
    async fn completes_streamed_exports(app: TestApp) {
        let response = app.get("/api/v1/data/consommations-energie-batiments?format=csv").await;
        assert_eq!(response.status(), 200);
        let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = response.bytes().await.unwrap();
        let rows = body.iter().filter(|byte| **byte == b'\n').count() as i64 - 1;
        // The completion is written right after the last byte: give it a moment.
        let mut completion = None;
        for _ in 0..50 {
            let events = app.audit_events("limit=1000").await;
            completion = events
                .into_iter()
                .find(|event| event["request_id"] == request_id.as_str() && event["bytes"].as_i64().is_some());
            if completion.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let completion = completion.expect("a completion event for the export");
        assert_eq!(completion["bytes"].as_i64().unwrap(), body.len() as i64);
        assert_eq!(completion["rows"].as_i64().unwrap(), rows);
    }
}

on_both_stores! {
    /// The chain verifies after traffic; altering a stored event is detected and located.
    async fn verify_detects_tampering(app: TestApp) {
        for _ in 0..3 {
            app.get("/api/v1/data/frequentation-musees?limit=1").await;
        }
        let auditor = app.token("auditrice", &["auditor"], None).await;
        let report: Value = app.get_as("/api/v1/audit/verify", &auditor).await.json().await.unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert!(report["checked"].as_i64().unwrap() >= 3, "{report}");
        assert!(report["head_hash"].as_str().is_some_and(|hash| hash.len() == 64), "{report}");
        let victim = app.audit_events("dataset=frequentation-musees&limit=1").await[0]["seq"].as_i64().unwrap();
        crate::helpers::execute(&app, &format!("UPDATE audit_events SET status = 500 WHERE seq = {victim}")).await;
        let report: Value = app.get_as("/api/v1/audit/verify", &auditor).await.json().await.unwrap();
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["first_broken"]["seq"].as_i64(), Some(victim), "{report}");
        assert_eq!(report["first_broken"]["reason"], "altered", "{report}");
    }
}

/// With the audit table gone, closed data is refused (503) and readiness says so;
/// open data is refused too unless the operator allowed it.
async fn fails_closed(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |_| {}).await else {
        return;
    };
    let agent = app.token("agent", &["agent"], None).await;
    assert_eq!(
        app.get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
            .await
            .status(),
        200
    );
    crate::helpers::execute(&app, "DROP TABLE audit_events").await;
    let refused = app
        .get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
        .await;
    let body = problem(refused, 503).await;
    assert!(
        !body.to_string().contains("motif"),
        "no data in the refusal"
    );
    problem(
        app.get("/api/v1/data/consommations-energie-batiments?limit=1")
            .await,
        503,
    )
    .await;
    assert_eq!(app.get("/health/ready").await.status(), 503);

    let Some(lenient) = spawn_app_with(kind, |settings| {
        settings.audit.serve_open_data_without_audit = true
    })
    .await
    else {
        return;
    };
    crate::helpers::execute(&lenient, "DROP TABLE audit_events").await;
    assert_eq!(
        lenient
            .get("/api/v1/data/consommations-energie-batiments?limit=1")
            .await
            .status(),
        200
    );
    let agent = lenient.token("agent", &["agent"], None).await;
    problem(
        lenient
            .get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
            .await,
        503,
    )
    .await;
}

crate::test_both_stores!(fails_closed);

//! Policies in the store (`policies_source = "store"`): read, replaced under
//! If-Match after validation, versioned, restored, audited with the diff,
//! in force at once here and on another instance; refused with files.

use std::time::{Duration, Instant};

use passerelle::config::PoliciesSource;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp, problem, repository_path, spawn_app, spawn_app_with};
use crate::test_both_stores;

const DENY_AGENT: &str = "p, agent, qualite-air-stations, read, deny,";

async fn store_app(kind: StoreKind) -> Option<TestApp> {
    spawn_app_with(kind, |settings| {
        settings.policies_source = PoliciesSource::Store;
    })
    .await
}

async fn put(
    app: &TestApp,
    token: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .put(app.url("/api/v1/policy"))
        .bearer_auth(token)
        .json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

async fn restore(
    app: &TestApp,
    token: &str,
    number: &str,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/policy/versions/{number}/restore")))
        .bearer_auth(token);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

async fn policy_in_the_store(kind: StoreKind) {
    let Some(app) = store_app(kind).await else {
        return;
    };
    let files_model = std::fs::read_to_string(repository_path("policies/model.conf")).unwrap();
    let files_rules = std::fs::read_to_string(repository_path("policies/policy.csv")).unwrap();
    let admin = app.token("admin-alice", &["admin"], None).await;
    let agent = app.token("agent", &["agent"], None).await;

    // Administrators only.
    problem(app.get("/api/v1/policy").await, 401).await;
    problem(app.get_as("/api/v1/policy", &agent).await, 403).await;
    problem(
        put(
            &app,
            &agent,
            Some("\"policy-1\""),
            &json!({"model": files_model, "rules": files_rules}),
        )
        .await,
        403,
    )
    .await;

    // The empty store was seeded from the files: version 1.
    let response = app.get_as("/api/v1/policy", &admin).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"policy-1\"");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["source"], "store");
    assert_eq!(document["version"], 1);
    assert_eq!(document["model"], files_model.as_str());
    assert_eq!(document["rules"], files_rules.as_str());
    assert_eq!(document["created_by"], "passerelle");
    assert!(
        document["created_at"].as_str().unwrap().ends_with('Z'),
        "{document}"
    );

    let tightened = format!("{files_rules}\n{DENY_AGENT}\n");
    let replacement =
        json!({"model": files_model, "rules": tightened, "reason": "air quality held back"});
    // If-Match is required, and must name the current version.
    let refused = problem(put(&app, &admin, None, &replacement).await, 428).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("If-Match"),
        "{refused}"
    );
    let response = put(&app, &admin, Some("\"policy-7\""), &replacement).await;
    assert_eq!(response.headers()["etag"], "\"policy-1\"");
    problem(response, 412).await;
    problem(put(&app, &admin, Some("*"), &replacement).await, 412).await;

    // Validated as files are: an invalid model or rule is refused with the reason.
    let broken_model =
        json!({"model": "[request_definition]\nr = sub, obj, act\n", "rules": files_rules});
    let response = put(&app, &admin, Some("\"policy-1\""), &broken_model).await;
    let refusal_event = app.audit_event_of(&response).await;
    let refused = problem(response, 422).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("store/model.conf"),
        "{refused}"
    );
    assert_eq!(refusal_event["action"], "admin");
    assert_eq!(refusal_event["status"], 422);
    assert_eq!(refusal_event["decision"], "deny");
    assert_eq!(
        refusal_event["rule"],
        "refused after access was granted: invalid-policy"
    );
    let broken_rule = json!({"model": files_model, "rules": "p, agent, level:open, fly, allow,\n"});
    let refused = problem(
        put(&app, &admin, Some("\"policy-1\""), &broken_rule).await,
        422,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("store/policy.csv:1"),
        "{refused}"
    );
    problem(
        put(
            &app,
            &admin,
            Some("\"policy-1\""),
            &json!({"rules": files_rules}),
        )
        .await,
        400,
    )
    .await;

    // Before: the agent reads the open dataset.
    assert_eq!(
        app.get_as("/api/v1/data/qualite-air-stations?limit=1", &agent)
            .await
            .status(),
        200
    );
    let response = put(&app, &admin, Some("\"policy-1\""), &replacement).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"policy-2\"");
    let event = app.audit_event_of(&response).await;
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["version"], 2);
    assert_eq!(document["rules"], tightened.as_str());
    assert_eq!(document["created_by"], "admin-alice");
    assert_eq!(document["reason"], "air quality held back");
    // In force at once.
    problem(
        app.get_as("/api/v1/data/qualite-air-stations?limit=1", &agent)
            .await,
        403,
    )
    .await;
    assert_eq!(app.state.policy.store_version(), Some(2));
    // Audited: who, what, and the rule added.
    assert_eq!(event["action"], "admin");
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["subject"], "admin-alice");
    assert_eq!(event["method"], "PUT");
    assert_eq!(event["status"], 200);
    assert_eq!(
        event["rule"],
        format!("policy replaced: version 2; model unchanged; + {DENY_AGENT}")
    );

    // Versions, newest first.
    let response = app.get_as("/api/v1/policy/versions", &admin).await;
    assert_eq!(response.status(), 200);
    let versions: Value = response.json().await.unwrap();
    assert_eq!(versions["current"], 2);
    let listed = versions["versions"].as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(listed[0]["created_by"], "admin-alice");
    assert_eq!(listed[0]["reason"], "air quality held back");
    assert_eq!(listed[1]["reason"], "seeded from the policy files");

    // Restore version 1: a new version 3 with its text, the access back.
    problem(restore(&app, &admin, "99", None).await, 404).await;
    problem(restore(&app, &admin, "two", None).await, 404).await;
    problem(restore(&app, &admin, "1", Some("\"policy-1\"")).await, 412).await;
    let response = restore(&app, &admin, "1", Some("\"policy-2\"")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"policy-3\"");
    let event = app.audit_event_of(&response).await;
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["version"], 3);
    assert_eq!(document["rules"], files_rules.as_str());
    assert_eq!(document["reason"], "restore of version 1");
    assert_eq!(
        app.get_as("/api/v1/data/qualite-air-stations?limit=1", &agent)
            .await
            .status(),
        200
    );
    assert_eq!(event["action"], "admin");
    assert_eq!(
        event["rule"],
        format!("policy restored from version 1: version 3; model unchanged; - {DENY_AGENT}")
    );
    // The stale ETag of version 2 is refused now.
    problem(
        put(&app, &admin, Some("\"policy-2\""), &replacement).await,
        412,
    )
    .await;

    // A second instance on the same store applies a change within a second
    // (PostgreSQL: the notification; SQLite: its polling, asked here directly).
    let other = passerelle::startup::build_state((*app.state.settings).clone())
        .await
        .expect("second instance");
    assert_eq!(other.policy.store_version(), Some(3));
    if kind == StoreKind::Postgres {
        passerelle::startup::spawn_change_listener(&other);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let response = put(&app, &admin, Some("\"policy-3\""), &replacement).await;
    assert_eq!(response.status(), 200);
    let changed = Instant::now();
    if kind == StoreKind::Sqlite {
        other.reload_policy().await.unwrap();
    }
    while other.policy.store_version() != Some(4) {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the other instance still has {:?}",
            other.policy.store_version()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, rules) = other.policy.texts().await;
    assert_eq!(rules, tightened);
}

test_both_stores!(policy_in_the_store);

async fn files_source_refuses_changes(kind: StoreKind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let admin = app.token("admin", &["admin"], None).await;
    let response = app.get_as("/api/v1/policy", &admin).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("etag").is_none());
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["source"], "files");
    assert_eq!(document["version"], Value::Null);
    let files_rules = std::fs::read_to_string(repository_path("policies/policy.csv")).unwrap();
    assert_eq!(document["rules"], files_rules.as_str());
    let body = json!({"model": document["model"], "rules": "p, agent, *, read, allow,\n"});
    let refused = problem(put(&app, &admin, Some("\"policy-1\""), &body).await, 409).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("files"),
        "{refused}"
    );
    problem(restore(&app, &admin, "1", None).await, 409).await;
    problem(app.get_as("/api/v1/policy/versions", &admin).await, 409).await;
    assert_eq!(app.state.policy.store_version(), None);
}

test_both_stores!(files_source_refuses_changes);

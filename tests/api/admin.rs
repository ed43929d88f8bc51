//! Policy administration over HTTP: the decision check, and reloads that keep
//! the policy in force when the new files do not load.

use serde_json::{Value, json};

use crate::helpers::{StoreKind, problem, spawn_app_with};
use crate::on_both_stores;

on_both_stores! {
    /// Administrators test decisions; nobody else may.
    async fn policy_check(app: TestApp) {
        let request = json!({"roles": ["partenaire"], "action": "read", "dataset": "locations-velos"});
        problem(app.client.post(app.url("/api/v1/policy/check")).json(&request).send().await.unwrap(), 401).await;
        let agent = app.token("agent", &["agent"], None).await;
        problem(app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&agent).json(&request).send().await.unwrap(), 403).await;
        let admin = app.token("admin", &["admin"], None).await;
        let response = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&request).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let decision: Value = response.json().await.unwrap();
        assert_eq!(decision["allowed"], true);
        assert_eq!(decision["view"], "par-commune");
        assert!(decision["rule"].as_str().unwrap().contains("partenaire"), "{decision}");
        let undecided = json!({"roles": ["admin"], "action": "read", "dataset": "projets-amenagement"});
        let decision: Value = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&undecided)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(decision["allowed"], false);
        let bad = json!({"roles": [], "action": "fly", "dataset": "locations-velos"});
        problem(app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&bad).send().await.unwrap(), 400).await;
    }
}

fn copy_policies(target: &std::path::Path) {
    let source = crate::helpers::repository_path("policies");
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
}

/// A broken policy file is refused and the previous policy stays; a valid change applies.
async fn reload_keeps_policy_on_error(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    copy_policies(folder.path());
    let path = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.policies_dir = path.clone()).await
    else {
        return;
    };
    let admin = app.token("admin", &["admin"], None).await;
    let agent = app.token("agent", &["agent"], None).await;
    assert_eq!(
        app.get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
            .await
            .status(),
        200
    );

    let policy_file = folder.path().join("policy.csv");
    let original = std::fs::read_to_string(&policy_file).unwrap();
    std::fs::write(
        &policy_file,
        format!("{original}\np, agent, level:internal, fly, allow, \n"),
    )
    .unwrap();
    let refused = app.post_as("/api/v1/policy/reload", &admin).await;
    let body = problem(refused, 422).await;
    assert!(body["detail"].as_str().unwrap().contains("fly"), "{body}");
    assert_eq!(
        app.get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
            .await
            .status(),
        200,
        "old policy in force"
    );

    std::fs::write(
        &policy_file,
        format!("{original}\np, agent, infractions-videoprotection, read, deny, \n"),
    )
    .unwrap();
    let reloaded = app.post_as("/api/v1/policy/reload", &admin).await;
    assert_eq!(reloaded.status(), 200);
    problem(
        app.get_as("/api/v1/data/infractions-videoprotection?limit=1", &agent)
            .await,
        403,
    )
    .await;
}

crate::test_both_stores!(reload_keeps_policy_on_error);

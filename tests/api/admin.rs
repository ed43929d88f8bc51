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
        // Without the `org` claim its view filters on, a partner is refused: the check says so.
        let response = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&request).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let decision: Value = response.json().await.unwrap();
        assert_eq!(decision["allowed"], false, "{decision}");
        assert_eq!(decision["rule"], "row filter needs claim `org`");
        assert!(decision["reason"].as_str().unwrap().contains("`org` claim"), "{decision}");
        assert_eq!(decision["grant"], Value::Null);
        // With it, the effective grant: the view, its columns, the filter with the claim substituted.
        let with_claims = json!({"roles": ["partenaire"], "claims": {"org": "Troyes"}, "action": "read", "dataset": "locations-velos"});
        let decision: Value = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&with_claims)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(decision["allowed"], true, "{decision}");
        assert_eq!(decision["view"], "par-commune");
        assert!(decision["rule"].as_str().unwrap().contains("partenaire"), "{decision}");
        assert_eq!(decision["reason"], Value::Null);
        assert_eq!(decision["grant"]["row_filter"], "commune=eq.Troyes");
        assert_eq!(decision["grant"]["aggregate_only"], false);
        assert_eq!(decision["grant"]["min_group_size"], Value::Null);
        assert!(decision["grant"]["columns"].as_array().unwrap().iter().any(|column| column == "commune"), "{decision}");
        // What that partner then reads is exactly what the check announced.
        let partner = app.token("ville-troyes", &["partenaire"], Some("Troyes")).await;
        let response = app.get_as("/api/v1/data/locations-velos?limit=3", &partner).await;
        assert_eq!(response.headers()["x-view"], "par-commune");
        let rows: Vec<Value> = response.json().await.unwrap();
        let mut announced: Vec<String> = decision["grant"]["columns"].as_array().unwrap().iter().map(|column| column.as_str().unwrap().to_owned()).collect();
        announced.sort();
        for row in &rows {
            assert_eq!(row["commune"], "Troyes");
            let mut keys: Vec<String> = row.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            assert_eq!(keys, announced);
        }
        // An aggregate-only grant: its view's columns and the minimum group size; personal data needs a purpose.
        let ademe = json!({"roles": ["ademe"], "claims": {"org": "ADEME"}, "action": "read", "dataset": "menages-precarite-energetique"});
        let decision: Value = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&ademe)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(decision["allowed"], true, "{decision}");
        assert_eq!(decision["view"], "agregats-ademe");
        assert_eq!(decision["grant"]["aggregate_only"], true);
        assert_eq!(decision["grant"]["min_group_size"], 11);
        assert_eq!(decision["grant"]["purpose_required"], true);
        assert_eq!(decision["grant"]["columns"], json!(["commune", "taux_effort", "chauffage"]), "schema order");
        // Global actions need no dataset; metadata answers visibility.
        let audit = json!({"roles": ["auditor"], "action": "audit:read"});
        let decision: Value = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&audit)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(decision["allowed"], true, "{decision}");
        let nobody = json!({"roles": [], "action": "audit:read"});
        let decision: Value = app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&nobody)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(decision["allowed"], false, "{decision}");
        let no_dataset = json!({"roles": ["agent"], "action": "read"});
        problem(app.client.post(app.url("/api/v1/policy/check")).bearer_auth(&admin).json(&no_dataset).send().await.unwrap(), 400).await;
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

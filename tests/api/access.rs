//! The access matrix (`tests/fixtures/access_matrix.csv`) against the real
//! router, and the views: a partner's row filter, aggregate suppression.

use serde_json::Value;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use crate::on_both_stores;

async fn caller_token(app: &TestApp, caller: &str) -> Option<String> {
    match caller {
        "-" => None,
        "invalid" => Some("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned()),
        _ => {
            let (roles, org) = match caller.split_once('@') {
                Some((roles, org)) => (roles, Some(org)),
                None => (caller, None),
            };
            let roles: Vec<&str> = roles.split(',').collect();
            Some(app.token(&format!("test-{}", roles[0]), &roles, org).await)
        }
    }
}

on_both_stores! {
    /// Every line of the access matrix gives the expected status, problem and keys.
    async fn access_matrix(app: TestApp) {
        let fixture = std::fs::read_to_string(crate::helpers::repository_path("tests/fixtures/access_matrix.csv")).unwrap();
        let mut checked = 0;
        for line in fixture.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
            let fields: Vec<&str> = line.split(';').collect();
            let [caller, dataset, query, accept, status, keys] = fields[..] else {
                panic!("malformed fixture line: {line}");
            };
            let (query, send_purpose) = match query.strip_suffix("!nopurpose") {
                Some(query) => (query, false),
                None => (query, true),
            };
            let mut request = app.client.get(app.url(&format!("/api/v1/data/{dataset}?{query}")));
            if let Some(token) = caller_token(&app, caller).await {
                request = request.bearer_auth(token);
            }
            if !accept.is_empty() {
                request = request.header("Accept", accept);
            }
            if send_purpose {
                // Allowed by every grant, the social service's purpose list included.
                request = request.header("X-Purpose", "accompagnement social : test");
            }
            let response = request.send().await.unwrap();
            let (code, kind) = match status.split_once(':') {
                Some((code, kind)) => (code.parse::<u16>().unwrap(), Some(kind)),
                None => (status.parse::<u16>().unwrap(), None),
            };
            assert_eq!(response.status().as_u16(), code, "{line}");
            if code == 401 {
                assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{line}");
            }
            let body = response.text().await.unwrap();
            if let Some(kind) = kind {
                let problem: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(problem["type"], format!("/problems/{kind}"), "{line}: {problem}");
                assert!(!body.contains("\"id\":") || kind == "unknown-column", "{line}: no data in a refusal");
            }
            if keys != "-" {
                let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&body).unwrap();
                let first = rows.first().unwrap_or_else(|| panic!("{line}: no row"));
                let mut actual: Vec<&str> = first.keys().map(String::as_str).collect();
                let mut expected: Vec<&str> = keys.split('|').collect();
                actual.sort();
                expected.sort();
                assert_eq!(actual, expected, "{line}");
            }
            checked += 1;
        }
        assert!(checked >= 30, "the matrix ran {checked} cases");
    }
}

on_both_stores! {
    /// A partner commune sees only its rows, in every format and in counts.
    async fn partner_row_filter(app: TestApp) {
        let token = app.token("ville-sainte-savine", &["partenaire"], Some("Sainte-Savine")).await;
        let rows: Vec<Value> = app.get_as("/api/v1/data/locations-velos?select=commune", &token).await.json().await.unwrap();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|row| row["commune"] == "Sainte-Savine"));
        let groups: Vec<Value> = app.get_as("/api/v1/data/locations-velos?select=commune,count()", &token).await.json().await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["count"].as_u64().unwrap() as usize, rows.len());
        let csv = app.get_as("/api/v1/data/locations-velos?select=commune&format=csv", &token).await.text().await.unwrap();
        assert!(csv.lines().skip(1).all(|line| line == "Sainte-Savine"));
        // The caller's own filter cannot widen the view's.
        let widened: Vec<Value> = app.get_as("/api/v1/data/locations-velos?select=commune&or=(commune.eq.Troyes,commune.eq.Sainte-Savine)", &token).await.json().await.unwrap();
        assert!(widened.iter().all(|row| row["commune"] == "Sainte-Savine"));
    }
}

on_both_stores! {
    /// Aggregate-only views leave out small groups and say how many.
    async fn aggregate_suppression(app: TestApp) {
        let token = app.token("ademe", &["ademe"], Some("ADEME")).await;
        let response = app.client.get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()"))
            .bearer_auth(&token).header("X-Purpose", "observatoire").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let suppressed: u64 = response.headers()["x-suppressed-groups"].to_str().unwrap().parse().unwrap();
        assert!(suppressed > 0, "demo data has small districts");
        let groups: Vec<Value> = response.json().await.unwrap();
        assert!(groups.iter().all(|group| group["count"].as_u64().unwrap() >= 11), "{groups:?}");
        // Paging applies to the groups that are shown; the suppressed count does not move.
        let paged = app.client.get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()&order=commune,chauffage&limit=2&offset=1"))
            .bearer_auth(&token).header("X-Purpose", "observatoire").send().await.unwrap();
        assert_eq!(paged.headers()["x-suppressed-groups"].to_str().unwrap(), suppressed.to_string());
        assert_eq!(paged.headers()["content-range"], "1-2/*");
        let ordered: Vec<Value> = app.client.get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()&order=commune,chauffage"))
            .bearer_auth(&token).header("X-Purpose", "observatoire").send().await.unwrap().json().await.unwrap();
        let paged: Vec<Value> = paged.json().await.unwrap();
        assert_eq!(paged, ordered[1..3].to_vec());
        let full = app.token("social", &["service-social"], None).await;
        let all: Vec<Value> = app.client.get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()"))
            .bearer_auth(&full).header("X-Purpose", "suivi de la précarité énergétique").send().await.unwrap().json().await.unwrap();
        assert_eq!(all.len() as u64, groups.len() as u64 + suppressed);
    }
}

on_both_stores! {
    /// Small groups are left out the same way whatever the format: JSON,
    /// CSV and NDJSON give the same groups and the same suppressed count, and
    /// an exact count counts the groups shown.
    async fn suppression_is_the_same_for_every_format(app: TestApp) {
        let token = app.token("ademe", &["ademe"], Some("ADEME")).await;
        let path = "/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()&order=commune,chauffage";
        let get = |format: &'static str| {
            let url = app.url(&format!("{path}{format}"));
            let token = token.clone();
            let client = app.client.clone();
            async move {
                client.get(url).bearer_auth(&token).header("X-Purpose", "observatoire")
                    .header("Prefer", "count=exact").send().await.unwrap()
            }
        };
        let json = get("").await;
        assert_eq!(json.status(), 200);
        let suppressed = json.headers()["x-suppressed-groups"].to_str().unwrap().to_owned();
        let groups: Vec<Value> = json.json().await.unwrap();
        assert!(suppressed.parse::<u64>().unwrap() > 0);
        let csv = get("&format=csv").await;
        assert_eq!(csv.status(), 200);
        assert_eq!(csv.headers()["x-suppressed-groups"].to_str().unwrap(), suppressed);
        let csv = csv.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(lines.len(), groups.len(), "{csv}");
        for (line, group) in lines.iter().zip(&groups) {
            assert_eq!(*line, format!("{},{},{}", group["commune"].as_str().unwrap(), group["chauffage"].as_str().unwrap(), group["count"]));
        }
        let ndjson = get("&format=ndjson").await;
        assert_eq!(ndjson.headers()["x-suppressed-groups"].to_str().unwrap(), suppressed);
        let ndjson: Vec<Value> = ndjson.text().await.unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(ndjson, groups);
        // Limit and offset apply to the groups shown, in exports too.
        let paged = get("&format=csv&limit=2&offset=1").await.text().await.unwrap();
        assert_eq!(paged.lines().skip(1).collect::<Vec<_>>(), lines[1..3].to_vec());
        // An exact count counts the groups shown, never the suppressed ones.
        let counted = get("&limit=1").await;
        let range = counted.headers()["content-range"].to_str().unwrap().to_owned();
        assert_eq!(range, format!("0-0/{}", groups.len()));
    }
}

/// The minimum group size of a view that sets none is the configured one.
async fn minimum_group_size_from_configuration(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |settings| settings.policy.min_group_size = 1).await
    else {
        return;
    };
    let token = app.token("ademe", &["ademe"], Some("ADEME")).await;
    let response = app
        .client
        .get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,chauffage,count()"))
        .bearer_auth(&token)
        .header("X-Purpose", "observatoire")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-suppressed-groups"], "0");
    let check = serde_json::json!({"roles": ["ademe"], "action": "read", "dataset": "menages-precarite-energetique"});
    let admin = app.token("admin", &["admin"], None).await;
    let decision: Value = app
        .client
        .post(app.url("/api/v1/policy/check"))
        .bearer_auth(&admin)
        .json(&check)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decision["grant"]["min_group_size"], 1, "{decision}");
}

crate::test_both_stores!(minimum_group_size_from_configuration);

//! The stewards' forms on both stores: a steward whose roles hold `manage`
//! and `publish` (`steward-tcm`) edits a dataset's description through
//! `/datasets/{id}/edit` (the same audited `manage` event as the API, with
//! the changed field and the reason), is refused without the CSRF token
//! (403) and gets a conflict that keeps the typed text for a stale form;
//! uploads a CSV through `/datasets/{id}/upload`: a dry run shows the report
//! (rows, bad rows, line, column, value, reason), "Publier" publishes the
//! file checked as a new version. A member of staff without those rights
//! sees no link and no form, and is refused (403) when posting.

use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp};
use crate::oidc_provider::spawn_app_with_sign_in;
use crate::sign_in::sign_in;
use crate::test_both_stores;

const DATASET: &str = "comptages-velo-formulaires";
const STEWARD: &str = "redactrice.bernard";

async fn get(app: &TestApp, path: &str, session: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .send()
        .await
        .unwrap()
}

async fn post_form(
    app: &TestApp,
    path: &str,
    session: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// A multipart form, written by hand: text fields, then the file.
async fn post_file(
    app: &TestApp,
    path: &str,
    session: &str,
    fields: &[(&str, &str)],
    file_name: &str,
    content: &str,
) -> reqwest::Response {
    let boundary = "----passerelle-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n--{boundary}--\r\n"
    ));
    app.client
        .post(app.url(path))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

fn refs<'a>(fields: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    fields
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

/// The value of the hidden field `name` of a page, unescaped as a browser sends it.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a hidden `{name}` field"))
        + marker.len();
    let value = &html[start..start + html[start..].find('"').unwrap()];
    value.replace("&#34;", "\"").replace("&#38;", "&")
}

async fn definition(app: &TestApp, token: &str) -> Value {
    app.get_as(&format!("/api/v1/datasets/{DATASET}/definition"), token)
        .await
        .json()
        .await
        .unwrap()
}

test_both_stores!(steward_forms);

async fn steward_forms(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    // A dataset of the metropole's services, created through the API.
    let token = app.token(STEWARD, &["steward-tcm"], None).await;
    let created = app
        .client
        .post(app.url("/api/v1/datasets"))
        .bearer_auth(&token)
        .json(&json!({
            "id": DATASET,
            "title": "Comptages vélo",
            "description": "Passages par compteur.",
            "publisher": "Troyes Champagne Métropole",
            "licence": "etalab-2.0",
            "access": "undecided",
            "schema": {"fields": [
                {"name": "compteur", "type": "string"},
                {"name": "passages", "type": "integer"},
            ]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let steward = sign_in(&app, STEWARD).await;
    let agent = sign_in(&app, "agent.dupont").await;
    let edit_path = format!("/datasets/{DATASET}/edit");
    let upload_path = format!("/datasets/{DATASET}/upload");

    // Links for the steward only: the inventory and the dataset's page.
    let inventory = get(&app, "/inventory", &steward)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        inventory.contains(&format!("href=\"{edit_path}\"")),
        "an edit link"
    );
    assert!(
        inventory.contains(&format!("href=\"{upload_path}\"")),
        "an upload link"
    );
    assert!(inventory.contains("<table id=\"managed-table\">"));
    let page = get(&app, &format!("/datasets/{DATASET}"), &steward).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("href=\"{edit_path}\"")));
    assert!(page.contains(&format!("href=\"{upload_path}\"")));
    let seen_by_agent = get(&app, &format!("/datasets/{DATASET}"), &agent).await;
    assert_eq!(seen_by_agent.status(), 200, "agents see undecided entries");
    let seen_by_agent = seen_by_agent.text().await.unwrap();
    assert!(
        !seen_by_agent.contains(&edit_path),
        "no link without manage"
    );
    assert!(
        !seen_by_agent.contains(&upload_path),
        "no link without publish"
    );

    // The form, for the steward: values, CSRF token and ETag; no classification field.
    let form = get(&app, &edit_path, &steward).await;
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    assert!(form.contains("<html lang=\"fr\">"));
    assert!(form.contains("<label for=\"field-description\">Description</label>"));
    assert!(form.contains(">Passages par compteur.</textarea>"));
    assert!(
        !form.contains("id=\"field-access\""),
        "classifying needs classify"
    );
    let csrf = hidden(&form, "csrf");
    let first_etag = hidden(&form, "etag");
    let api_etag = app
        .get_as(&format!("/api/v1/datasets/{DATASET}/definition"), &token)
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(first_etag, api_etag, "the hidden ETag is the API's");

    let edited = |etag: String, csrf: String, description: &'static str| {
        vec![
            ("csrf", csrf),
            ("etag", etag),
            ("title", "Comptages vélo".to_owned()),
            ("description", description.to_owned()),
            ("theme", String::new()),
            ("keywords", String::new()),
            ("licence", "etalab-2.0".to_owned()),
            ("update_frequency", String::new()),
            ("organisation", String::new()),
            ("direction", String::new()),
            ("reason", "relecture des fiches".to_owned()),
        ]
    };

    // Without the CSRF token: 403, nothing changed.
    let fields = edited(first_etag.clone(), String::new(), "Sans jeton.");
    let refused = post_form(&app, &edit_path, &steward, &refs(&fields)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        definition(&app, &token).await["description"],
        "Passages par compteur."
    );

    // A member of staff without manage: no form, 403 on POST (with their own token).
    let agent_form = get(&app, &edit_path, &agent).await;
    assert_eq!(agent_form.status(), 403);
    let agent_form = agent_form.text().await.unwrap();
    assert!(!agent_form.contains("name=\"etag\""), "no form");
    let agent_csrf = hidden(&get(&app, "/", &agent).await.text().await.unwrap(), "csrf");
    let fields = edited(first_etag.clone(), agent_csrf.clone(), "Par un agent.");
    let refused = post_form(&app, &edit_path, &agent, &refs(&fields)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(get(&app, &upload_path, &agent).await.status(), 403);

    // The steward saves a new description: the same manage event as the API.
    let fields = edited(
        first_etag.clone(),
        csrf.clone(),
        "Passages par compteur,\r\nheure par heure.",
    );
    let saved = post_form(&app, &edit_path, &steward, &refs(&fields)).await;
    assert_eq!(saved.status(), 200);
    let saved = saved.text().await.unwrap();
    assert!(saved.contains("Modifications enregistrées."), "{saved}");
    let second_etag = hidden(&saved, "etag");
    assert_ne!(second_etag, first_etag);
    let stored = definition(&app, &token).await;
    assert_eq!(
        stored["description"],
        "Passages par compteur,\nheure par heure."
    );
    let events = app
        .audit_events(&format!("action=manage&dataset={DATASET}&limit=100"))
        .await;
    let event = events
        .iter()
        .find(|event| {
            event["path"] == edit_path.as_str()
                && event["method"] == "POST"
                && event["status"] == 200
        })
        .expect("the page's manage event");
    assert_eq!(event["subject"], STEWARD);
    assert_eq!(event["decision"], "allow");
    let changes: Value = serde_json::from_str(event["changes"].as_str().unwrap()).unwrap();
    assert_eq!(changes["reason"], "relecture des fiches");
    assert_eq!(
        changes["fields"],
        json!([{
            "field": "description",
            "old": "Passages par compteur.",
            "new": "Passages par compteur,\nheure par heure.",
        }])
    );
    assert!(
        events
            .iter()
            .any(|event| event["path"] == edit_path.as_str()
                && event["status"] == 403
                && event["decision"] == "deny"
                && event["subject"] == STEWARD)
    );
    assert!(
        events
            .iter()
            .any(|event| event["path"] == edit_path.as_str()
                && event["status"] == 403
                && event["decision"] == "deny"
                && event["subject"] == "agent.dupont")
    );

    // A stale form (the first ETag): a conflict that keeps what was typed.
    let fields = edited(
        first_etag.clone(),
        csrf.clone(),
        "Texte d'un onglet resté ouvert.",
    );
    let stale = post_form(&app, &edit_path, &steward, &refs(&fields)).await;
    assert_eq!(stale.status(), 409);
    let stale = stale.text().await.unwrap();
    assert!(
        stale.contains("modifiée par quelqu&#39;un d&#39;autre")
            || stale.contains("modifiée par quelqu'un d'autre"),
        "{stale}"
    );
    assert!(
        stale.contains(">Texte d&#39;un onglet resté ouvert.</textarea>"),
        "kept: {stale}"
    );
    assert!(stale.contains("Valeur enregistrée entre-temps"));
    assert_eq!(
        hidden(&stale, "etag"),
        second_etag,
        "the form now carries the current ETag"
    );
    assert_eq!(
        definition(&app, &token).await["description"],
        "Passages par compteur,\nheure par heure.",
        "nothing saved"
    );

    // A new version: the dry run reports each bad row, publishes nothing.
    let upload = get(&app, &upload_path, &steward).await;
    assert_eq!(upload.status(), 200);
    let upload = upload.text().await.unwrap();
    assert!(upload.contains("enctype=\"multipart/form-data\""));
    let upload_etag = hidden(&upload, "etag");
    let check_path = format!("{upload_path}/check");
    let bad = post_file(
        &app,
        &check_path,
        &steward,
        &[("csrf", &csrf), ("etag", &upload_etag), ("reason", "")],
        "comptages.csv",
        "compteur,passages\nPont-Hubert,12\nVouldy,douze\n",
    )
    .await;
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("<dd id=\"report-rows\">1</dd>"), "{bad}");
    assert!(bad.contains("<dd id=\"report-bad-rows\">1</dd>"));
    let errors = &bad[bad
        .find("<table id=\"report-errors\">")
        .expect("the errors")..];
    assert!(
        errors.contains("<td class=\"number\">3</td><td>passages</td><td><code>douze</code></td>"),
        "{errors}"
    );
    assert!(!bad.contains("name=\"token\""), "nothing to publish");

    // Without the CSRF token the file is not even read.
    let refused = post_file(
        &app,
        &check_path,
        &steward,
        &[("etag", &upload_etag)],
        "comptages.csv",
        "compteur,passages\nPont-Hubert,12\n",
    )
    .await;
    assert_eq!(refused.status(), 403);

    let good = post_file(
        &app,
        &check_path,
        &steward,
        &[
            ("csrf", &csrf),
            ("etag", &upload_etag),
            ("reason", "livraison de novembre"),
        ],
        "comptages.csv",
        "compteur,passages\nPont-Hubert,12\nVouldy,40\nChapelle-Saint-Luc,7\n",
    )
    .await;
    assert_eq!(good.status(), 200);
    let good = good.text().await.unwrap();
    assert!(good.contains("<dd id=\"report-rows\">3</dd>"), "{good}");
    assert!(good.contains("<dd id=\"report-bad-rows\">0</dd>"));
    let upload_token = hidden(&good, "token");
    let publish_path = format!("{upload_path}/publish");
    let versions_before: Value = app
        .get_as(&format!("/api/v1/datasets/{DATASET}/versions"), &token)
        .await
        .json()
        .await
        .unwrap();

    // Another session cannot publish that file, nor a form without the token.
    let refused = post_form(
        &app,
        &publish_path,
        &steward,
        &[
            ("token", upload_token.as_str()),
            ("etag", upload_etag.as_str()),
        ],
    )
    .await;
    assert_eq!(refused.status(), 403);
    let other = sign_in(&app, STEWARD).await;
    let other_csrf = hidden(&get(&app, "/", &other).await.text().await.unwrap(), "csrf");
    let foreign = post_form(
        &app,
        &publish_path,
        &other,
        &[
            ("csrf", other_csrf.as_str()),
            ("token", upload_token.as_str()),
            ("etag", upload_etag.as_str()),
        ],
    )
    .await;
    assert_eq!(foreign.status(), 410, "another session's dry run");

    // "Publier": the file checked becomes the new version.
    let published = post_form(
        &app,
        &publish_path,
        &steward,
        &[
            ("csrf", csrf.as_str()),
            ("token", upload_token.as_str()),
            ("etag", upload_etag.as_str()),
        ],
    )
    .await;
    assert_eq!(published.status(), 200);
    let published = published.text().await.unwrap();
    assert!(
        published.contains("Nouvelle version publiée"),
        "{published}"
    );
    let versions: Value = app
        .get_as(&format!("/api/v1/datasets/{DATASET}/versions"), &token)
        .await
        .json()
        .await
        .unwrap();
    let count = |versions: &Value| {
        versions["versions"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default()
    };
    assert_eq!(count(&versions), count(&versions_before) + 1, "{versions}");
    let meta: Value = app
        .get_as(&format!("/api/v1/datasets/{DATASET}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["record_count"], 3, "{meta}");
    let events = app
        .audit_events(&format!("action=publish&dataset={DATASET}&limit=100"))
        .await;
    let published_event = events
        .iter()
        .find(|event| event["path"] == publish_path.as_str() && event["status"] == 200)
        .expect("the publish event");
    let changes: Value =
        serde_json::from_str(published_event["changes"].as_str().unwrap()).unwrap();
    assert_eq!(changes["dry_run"], false);
    assert_eq!(changes["rows"], 3);
    assert_eq!(changes["reason"], "livraison de novembre");
    assert!(changes["version"].as_i64().is_some(), "{changes}");
    assert!(events.iter().any(|event| {
        event["path"] == check_path.as_str()
            && event["status"] == 200
            && event["changes"]
                .as_str()
                .unwrap()
                .contains("\"dry_run\":true")
    }));

    // The token served once.
    let again = post_form(
        &app,
        &publish_path,
        &steward,
        &[
            ("csrf", csrf.as_str()),
            ("token", upload_token.as_str()),
            ("etag", upload_etag.as_str()),
        ],
    )
    .await;
    assert_eq!(again.status(), 410);
}

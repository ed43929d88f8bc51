//! The publishing API: definitions with `If-Match`, uploads, versions and
//! restores, retirement, the rights of stewards, the data office and a
//! partner's delivery client, and the audit events they leave. On both stores.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, problem};
use crate::on_both_stores;

pub(crate) const STEWARD: &[&str] = &["steward-tcm"];
pub(crate) const DATA_OFFICE: &[&str] = &["data-office", "steward-tcm", "agent"];

pub(crate) fn definition(id: &str, access: &str) -> Value {
    json!({
        "id": id,
        "title": "Comptages vélo",
        "publisher": "Troyes Champagne Métropole",
        "licence": "etalab-2.0",
        "access": access,
        "schema": {"fields": [
            {"name": "compteur", "type": "string"},
            {"name": "passages", "type": "integer"},
        ]},
    })
}

pub(crate) async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> reqwest::Response {
    build(app.client.request(method, app.url(path)).bearer_auth(token))
        .send()
        .await
        .expect("request")
}

pub(crate) async fn create(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        "/api/v1/datasets",
        token,
        |request| request.json(body),
    )
    .await
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    id: &str,
    query: &str,
    csv: &str,
) -> reqwest::Response {
    let csv = csv.to_owned();
    send(
        app,
        reqwest::Method::PUT,
        &format!("/api/v1/datasets/{id}/data{query}"),
        token,
        |request| request.header("content-type", "text/csv").body(csv),
    )
    .await
}

pub(crate) fn etag_of(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

on_both_stores! {
    /// A steward creates an undecided dataset of its service, edits it with
    /// `If-Match` (428 without, 412 with a stale ETag), cannot classify it;
    /// the data office can, and the auditor finds the change of access level
    /// with its old and new values; retiring answers 410 for the data.
    async fn definitions_with_if_match_and_classification(app: TestApp) {
        let steward = app.token("sophie", STEWARD, None).await;
        let office = app.token("odile", DATA_OFFICE, None).await;

        // Creating an open dataset classifies it: the steward may not.
        let refused = create(&app, &steward, &definition("comptages", "open")).await;
        problem(refused, 403).await;
        let created = create(&app, &steward, &definition("comptages", "undecided")).await;
        assert_eq!(created.status(), 201);
        assert_eq!(created.headers()["location"], "/api/v1/datasets/comptages");
        let first_tag = etag_of(&created);
        let event = app.audit_event_of(&created).await;
        assert_eq!(event["action"], "manage");
        assert_eq!(event["decision"], "allow");
        assert!(event["changes"].as_str().unwrap().contains("\"created\":true"), "{event}");
        problem(create(&app, &steward, &definition("comptages", "undecided")).await, 409).await;

        let shown = send(&app, reqwest::Method::GET, "/api/v1/datasets/comptages/definition", &steward, |r| r).await;
        assert_eq!(shown.status(), 200);
        assert_eq!(etag_of(&shown), first_tag);
        let body: Value = shown.json().await.unwrap();
        assert_eq!(body["schema"]["fields"][1]["name"], "passages");
        // Anonymous callers and other roles cannot read definitions.
        let anonymous = app.client.get(app.url("/api/v1/datasets/comptages/definition")).send().await.unwrap();
        problem(anonymous, 401).await;

        let patch = |tag: Option<String>, body: Value, token: String| {
            let app = &app;
            async move {
                send(app, reqwest::Method::PATCH, "/api/v1/datasets/comptages", &token, |request| {
                    let request = request
                        .header("content-type", "application/merge-patch+json")
                        .header("x-change-reason", "relecture")
                        .body(body.to_string());
                    match tag {
                        Some(tag) => request.header("if-match", tag),
                        None => request,
                    }
                })
                .await
            }
        };
        problem(patch(None, json!({"title": "Comptages"}), steward.clone()).await, 428).await;
        let edited = patch(Some(first_tag.clone()), json!({"title": "Comptages"}), steward.clone()).await;
        assert_eq!(edited.status(), 200);
        let second_tag = etag_of(&edited);
        assert_ne!(second_tag, first_tag);
        // A second steward who read the first version loses nothing: 412.
        let stale = patch(Some(first_tag), json!({"description": "x"}), steward.clone()).await;
        let stale = problem(stale, 412).await;
        assert!(stale["detail"].as_str().unwrap().contains("changed"));
        // Managing does not imply classifying.
        let classify = patch(Some(second_tag.clone()), json!({"access": "internal"}), steward.clone()).await;
        problem(classify, 403).await;
        let classified = patch(Some(second_tag), json!({"access": "internal"}), office.clone()).await;
        assert_eq!(classified.status(), 200);
        let event = app.audit_event_of(&classified).await;
        assert_eq!(event["action"], "classify");
        let changes: Value = serde_json::from_str(event["changes"].as_str().unwrap()).unwrap();
        assert_eq!(changes["reason"], "relecture");
        assert_eq!(changes["fields"][0], json!({"field": "access", "old": "undecided", "new": "internal"}));
        // "Every change of access level": the action filter.
        let changes = app.audit_events("action=classify&decision=allow&dataset=comptages").await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0]["request_id"], event["request_id"]);

        // Retired: the data answers 410, the definition too; an administrator restores it.
        let retired = send(&app, reqwest::Method::DELETE, "/api/v1/datasets/comptages", &office, |r| r).await;
        assert_eq!(retired.status(), 204);
        let agent = app.token("alice", &["agent"], None).await;
        problem(app.get_as("/api/v1/data/comptages", &agent).await, 410).await;
        let stored = app.state.store.stored_dataset("comptages").await.unwrap().unwrap();
        assert_eq!(stored.retired_by.as_deref(), Some("odile"));
        problem(send(&app, reqwest::Method::POST, "/api/v1/datasets/comptages/restore", &office, |r| r).await, 403).await;
        let admin = app.token("root", &["admin"], None).await;
        let restored = send(&app, reqwest::Method::POST, "/api/v1/datasets/comptages/restore", &admin, |r| r).await;
        assert_eq!(restored.status(), 204);
        assert_eq!(app.get_as("/api/v1/data/comptages", &agent).await.status(), 200);
    }
}

on_both_stores! {
    /// The register's decisions through the API: a definition that contradicts
    /// them is a 422 on `register`; changing a confidentiality decision is a
    /// `classify` action (a steward may not), audited with old and new values
    /// and the reason given.
    async fn register_decisions_are_classifications(app: TestApp) {
        let steward = app.token("sophie", STEWARD, None).await;
        let office = app.token("odile", DATA_OFFICE, None).await;
        let mut contradictory = definition("registre", "open");
        contradictory["confidentiality"] = json!({"decision": "yes", "grounds": ["business_secret"]});
        let body = problem(create(&app, &office, &contradictory).await, 422).await;
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|error| error["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["register"], "{body}");
        assert!(app.state.store.stored_dataset("registre").await.unwrap().is_none());

        let mut decided = definition("registre", "internal");
        decided["confidentiality"] = json!({"decision": "no"});
        let created = create(&app, &office, &decided).await;
        assert_eq!(created.status(), 201);
        let tag = etag_of(&created);
        let patch = |token: String, tag: String| {
            let app = &app;
            async move {
                send(app, reqwest::Method::PATCH, "/api/v1/datasets/registre", &token, |request| {
                    request
                        .header("content-type", "application/merge-patch+json")
                        .header("if-match", tag)
                        .header("x-change-reason", "avis du DPO du 12 mars")
                        .body(json!({"confidentiality": {"decision": "yes", "grounds": ["business_secret"]}}).to_string())
                })
                .await
            }
        };
        problem(patch(steward, tag.clone()).await, 403).await;
        let classified = patch(office, tag).await;
        assert_eq!(classified.status(), 200);
        let event = app.audit_event_of(&classified).await;
        assert_eq!(event["action"], "classify");
        let changes: Value = serde_json::from_str(event["changes"].as_str().unwrap()).unwrap();
        assert_eq!(changes["reason"], "avis du DPO du 12 mars");
        assert_eq!(changes["fields"][0]["field"], "confidentiality", "{changes}");
        assert_eq!(changes["fields"][0]["old"]["decision"], "no", "{changes}");
        assert_eq!(changes["fields"][0]["new"]["decision"], "yes", "{changes}");
        assert_eq!(changes["fields"][0]["new"]["grounds"], json!(["business_secret"]), "{changes}");
    }
}

on_both_stores! {
    /// A malformed definition is a 422 naming each invalid field; nothing is created.
    async fn invalid_definitions_name_each_field(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        let mut bad = definition("Pas Un Slug", "secret");
        bad["licence"] = "CC BY".into();
        let body = problem(create(&app, &office, &bad).await, 422).await;
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|error| error["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["id", "access", "licence"], "{body}");
        let mut view = definition("vues", "internal");
        view["views"] = json!([{"name": "v", "columns": ["absente"]}, {"name": "w", "row_filter": "passages=gt.abc"}]);
        let body = problem(create(&app, &office, &view).await, 422).await;
        assert!(body["detail"].as_str().unwrap().contains("absente"), "{body}");
        let malformed = send(&app, reqwest::Method::POST, "/api/v1/datasets", &office, |request| {
            request.header("content-type", "application/json").body("{\"id\": ")
        })
        .await;
        problem(malformed, 422).await;
        let yaml = "id: en-yaml\ntitle: Y\npublisher: Troyes Champagne Métropole\nlicence: odbl-1.0\naccess: internal\nschema: {fields: [{name: a, type: string}]}\n";
        let created = send(&app, reqwest::Method::POST, "/api/v1/datasets", &office, |request| {
            request.header("content-type", "application/yaml").body(yaml)
        })
        .await;
        assert_eq!(created.status(), 201);
        assert!(app.state.store.stored_dataset("vues").await.unwrap().is_none());
    }
}

on_both_stores! {
    /// Uploads: a bad file is refused with its report and nothing changes; a
    /// dry run publishes nothing; versions list who, rows, bytes and SHA-256;
    /// a restore serves the earlier rows again; `?version=n` needs `history`.
    async fn uploads_versions_and_restores(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        let agent = app.token("alice", &["agent"], None).await;
        assert_eq!(create(&app, &office, &definition("comptages", "internal")).await.status(), 201);

        let first = upload(&app, &office, "comptages", "?file_name=jour1.csv", "compteur,passages\nPont,10\nGare,20\n").await;
        assert_eq!(first.status(), 200);
        let answer: Value = first.json().await.unwrap();
        assert_eq!(answer["rows"], 2);
        let first_version = answer["version"].as_i64().unwrap();
        assert_eq!(answer["sha256"].as_str().unwrap().len(), 64);

        // Bad rows: 422 with the count and the errors; the old version stays.
        let bad = upload(&app, &office, "comptages", "", "compteur,passages\nPont,beaucoup\nGare,3\nQuai,x\n").await;
        let report = problem(bad, 422).await;
        assert_eq!(report["report"]["bad_rows"], 2, "{report}");
        assert_eq!(report["report"]["errors"][0]["line"], 2);
        assert_eq!(report["report"]["errors"][0]["column"], "passages");
        // A file cut in the middle of a quoted cell.
        let cut = upload(&app, &office, "comptages", "", "compteur,passages\n\"Pont,1").await;
        problem(cut, 422).await;
        // A declared encoding that the bytes do not have.
        let latin1 = send(&app, reqwest::Method::PUT, "/api/v1/datasets/comptages/data?encoding=utf-8", &office, |request| {
            request.header("content-type", "text/csv").body(b"compteur,passages\nCath\xe9drale,1\n".to_vec())
        })
        .await;
        problem(latin1, 422).await;
        let rows: Vec<Value> = app.get_as("/api/v1/data/comptages", &agent).await.json().await.unwrap();
        assert_eq!(rows.len(), 2);

        let dry = upload(&app, &office, "comptages", "?dry_run=true", "compteur,passages\nA,1\n").await;
        assert_eq!(dry.status(), 200);
        let dry: Value = dry.json().await.unwrap();
        assert_eq!((dry["dry_run"].clone(), dry["version"].clone()), (json!(true), Value::Null));
        assert_eq!(app.get_as("/api/v1/data/comptages", &agent).await.json::<Vec<Value>>().await.unwrap().len(), 2);

        let second = upload(&app, &office, "comptages", "", "compteur,passages\nA,1\nB,2\nC,3\n").await;
        assert_eq!(second.status(), 200);
        let event = app.audit_event_of(&second).await;
        assert_eq!(event["action"], "publish");
        let changes: Value = serde_json::from_str(event["changes"].as_str().unwrap()).unwrap();
        assert_eq!(changes["rows"], 3);
        assert_eq!(changes["sha256"].as_str().unwrap().len(), 64);

        let versions = send(&app, reqwest::Method::GET, "/api/v1/datasets/comptages/versions", &office, |r| r).await;
        assert_eq!(versions.status(), 200);
        let versions: Value = versions.json().await.unwrap();
        let list = versions["versions"].as_array().unwrap();
        let current: Vec<&Value> = list.iter().filter(|row| row["status"] == "current").collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["rows"], 3);
        assert_eq!(current[0]["created_by"], "odile");
        assert!(list.iter().any(|row| row["status"] == "failed" && row["number"].is_null()));
        let earlier = list.iter().find(|row| row["number"] == first_version).unwrap();
        assert_eq!((earlier["status"].clone(), earlier["file_name"].clone(), earlier["kept"].clone()), (json!("previous"), json!("jour1.csv"), json!(true)));

        // The earlier version, for callers with `history` only.
        let path = format!("/api/v1/data/comptages?version={first_version}");
        problem(app.get_as(&path, &agent).await, 403).await;
        let old: Vec<Value> = app.get_as(&path, &office).await.json().await.unwrap();
        assert_eq!(old.len(), 2);

        let restore = send(&app, reqwest::Method::POST, &format!("/api/v1/datasets/comptages/versions/{first_version}/restore"), &office, |r| r).await;
        assert_eq!(restore.status(), 200);
        let restored: Value = restore.json().await.unwrap();
        assert!(restored["version"].as_i64().unwrap() > first_version);
        let rows: Vec<Value> = app.get_as("/api/v1/data/comptages", &agent).await.json().await.unwrap();
        assert_eq!(rows.len(), 2);
        problem(send(&app, reqwest::Method::POST, "/api/v1/datasets/comptages/versions/99/restore", &office, |r| r).await, 404).await;
    }
}

on_both_stores! {
    /// The bike-share operator's delivery client, with the client-credentials
    /// flow, uploads `locations-velos` and can do nothing else.
    async fn partner_client_publishes_its_dataset_only(app: TestApp) {
        let registry = passerelle::auth::ClientRegistry::new(app.state.store.clone());
        let (client_id, secret) = registry
            .create("Opérateur vélo", &["livraison-velos".to_owned()], None, None)
            .await
            .unwrap();
        let token: Value = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().expect("a token").to_owned();
        let csv = "station,commune,date,heure,duree_min,abonne\nGare,Troyes,2024-06-01,8,12,true\n";
        let published = upload(&app, &token, "locations-velos", "", csv).await;
        assert_eq!(published.status(), 200);
        let event = app.audit_event_of(&published).await;
        assert_eq!(event["client_id"], client_id.as_str());
        assert_eq!(event["rule"], "p, livraison-velos, locations-velos, publish, allow");
        assert_eq!(app.state.catalog.current().get("locations-velos").unwrap().record_count, 1);
        // Nothing else: not another dataset, not the data, not the definition.
        problem(upload(&app, &token, "qualite-air-stations", "", csv).await, 403).await;
        problem(app.get_as("/api/v1/data/locations-velos", &token).await, 403).await;
        problem(send(&app, reqwest::Method::GET, "/api/v1/datasets/locations-velos/definition", &token, |r| r).await, 403).await;
        // A sync keeps the uploaded rows (the file is older).
        let report = passerelle::catalog::sync::sync_folder(&app.state.store, &app.state.settings.catalog_dir).await.unwrap();
        assert!(report.imported.iter().all(|(id, _)| id != "locations-velos"), "{report:?}");
    }
}

on_both_stores! {
    /// A second upload while one streams gets 409; a client that breaks off
    /// mid-upload publishes nothing and frees the dataset.
    async fn concurrent_and_interrupted_uploads(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        assert_eq!(create(&app, &office, &definition("comptages", "internal")).await.status(), 201);
        let address = app.address.trim_start_matches("http://").to_owned();
        // An upload that sends its first chunk and then nothing.
        let start_upload = || {
            let address = address.clone();
            let office = office.clone();
            async move {
                let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
                let head = format!(
                    "PUT /api/v1/datasets/comptages/data HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {office}\r\n\
                     Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                let chunk = "compteur,passages\nPont,1\n";
                stream.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await.unwrap();
                stream.flush().await.unwrap();
                stream
            }
        };
        let mut stream = start_upload().await;
        let mut conflict = None;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            // The stalled upload was answered (it lost the race to an
            // earlier attempt of the loop): start another one.
            let mut probe = [0u8; 1];
            if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_millis(1), stream.peek(&mut probe)).await {
                stream = start_upload().await;
                continue;
            }
            let second = upload(&app, &office, "comptages", "", "compteur,passages\nGare,2\n").await;
            if second.status() == 409 {
                conflict = Some(second);
                break;
            }
        }
        let conflict = conflict.expect("the second upload is refused while the first runs");
        problem(conflict, 409).await;
        // The client goes away mid-body: nothing of it is published.
        let before = app.state.store.stored_dataset("comptages").await.unwrap().unwrap();
        let versions_before = app.state.store.dataset_versions("comptages").await.unwrap();
        drop(stream);
        let mut freed = false;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let dry = upload(&app, &office, "comptages", "?dry_run=true", "compteur,passages\nGare,2\n").await;
            if dry.status() == 200 {
                freed = true;
                break;
            }
        }
        assert!(freed, "the dataset is free again");
        let after = app.state.store.stored_dataset("comptages").await.unwrap().unwrap();
        assert_eq!((after.version, after.table_name), (before.version, before.table_name));
        let versions = app.state.store.dataset_versions("comptages").await.unwrap();
        assert_eq!(versions, versions_before);
    }
}

/// Beyond `[publishing] max_upload_bytes`: 413, nothing published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_limit_are_refused() {
    let app = crate::helpers::spawn_app_with(crate::helpers::StoreKind::Sqlite, |settings| {
        settings.publishing.max_upload_bytes = 64;
    })
    .await
    .unwrap();
    let office = app.token("odile", DATA_OFFICE, None).await;
    assert_eq!(
        create(&app, &office, &definition("comptages", "internal"))
            .await
            .status(),
        201
    );
    let large = format!("compteur,passages\n{}", "Pont,1\n".repeat(100));
    let refused = upload(&app, &office, "comptages", "", &large).await;
    assert_eq!(refused.status(), 413);
    assert!(
        app.state
            .store
            .dataset_versions("comptages")
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_stores! {
    /// `catalog sync` never touches an API dataset, and removes a file
    /// dataset whose file is gone only with `--prune`.
    async fn sync_leaves_api_datasets_alone(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        assert_eq!(create(&app, &office, &definition("comptages", "internal")).await.status(), 201);
        let folder = tempfile::tempdir().unwrap();
        let options = passerelle::catalog::sync::SyncOptions { prune: false };
        passerelle::catalog::sync::sync_folder_with(&app.state.store, folder.path(), options).await.unwrap();
        assert!(app.state.store.stored_dataset("locations-velos").await.unwrap().is_some());
        let options = passerelle::catalog::sync::SyncOptions { prune: true };
        let report = passerelle::catalog::sync::sync_folder_with(&app.state.store, folder.path(), options).await.unwrap();
        assert!(report.removed.contains(&"locations-velos".to_owned()));
        assert!(!report.removed.contains(&"comptages".to_owned()));
        assert!(app.state.store.stored_dataset("comptages").await.unwrap().is_some());
    }
}

on_both_stores! {
    /// An export of the current version that is still streaming when an
    /// upload lands finishes on the old rows, complete; new reads get the new ones.
    async fn exports_finish_on_the_version_they_started(app: TestApp) {
        use tokio::io::AsyncReadExt;
        const ROWS: usize = 200_000;
        let office = app.token("odile", DATA_OFFICE, None).await;
        assert_eq!(create(&app, &office, &definition("comptages", "open")).await.status(), 201);
        let mut old = String::from("compteur,passages\n");
        for index in 0..ROWS {
            old.push_str(&format!("ancien-{index},1\n"));
        }
        assert_eq!(upload(&app, &office, "comptages", "", &old).await.status(), 200);

        // A client that reads the export slowly (a small receive window).
        let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        stream
            .write_all(b"GET /api/v1/data/comptages?format=csv HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = vec![0; 16 * 1024];
        while received.len() < 64 * 1024 {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "export ended early");
            received.extend_from_slice(&buffer[..read]);
        }

        let new = "compteur,passages\nnouveau,2\n";
        assert_eq!(upload(&app, &office, "comptages", "", new).await.status(), 200);
        let rows: Vec<Value> = app.get("/api/v1/data/comptages").await.json().await.unwrap();
        assert_eq!(rows, vec![json!({"compteur": "nouveau", "passages": 2})]);

        tokio::time::timeout(std::time::Duration::from_secs(60), stream.read_to_end(&mut received))
            .await
            .expect("the export finishes")
            .unwrap();
        let body = String::from_utf8_lossy(&received);
        let ancien = body.matches("ancien-").count();
        assert_eq!(ancien, ROWS, "every row of the old version");
        assert!(!body.contains("nouveau"), "only the old version");
    }
}

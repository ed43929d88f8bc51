//! The publishing API beyond the happy path of `publishing`: compatible
//! schema changes of a dataset that has rows, two creations of the same id
//! at once, and what a retired dataset's metadata answers. On both stores.

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::on_both_stores;
use crate::publishing::{DATA_OFFICE, create, definition, etag_of, send, upload};

/// Sends a JSON Merge Patch of `id`'s definition with the current `ETag`.
async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/datasets/{id}/definition");
    let shown = send(app, reqwest::Method::GET, &path, token, |request| request).await;
    assert_eq!(shown.status(), 200);
    let tag = etag_of(&shown);
    send(
        app,
        reqwest::Method::PATCH,
        &format!("/api/v1/datasets/{id}"),
        token,
        |request| {
            request
                .header("content-type", "application/merge-patch+json")
                .header("if-match", tag)
                .body(body.to_string())
        },
    )
    .await
}

async fn rows(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let response = app.get_as(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

fn fields(extra: Value) -> Value {
    let mut fields = vec![
        json!({"name": "compteur", "type": "string"}),
        json!({"name": "passages", "type": "integer"}),
    ];
    if let Value::Array(more) = extra {
        fields.extend(more);
    }
    json!({"schema": {"fields": fields}})
}

on_both_stores! {
    /// A dataset with rows takes a new nullable column (its rows read null
    /// in it, and filter on it) and a wider type (values intact), on the
    /// current version and on the kept earlier one (a restore serves it under
    /// the new schema); a narrower type or a new required column is a 422
    /// naming the field, and changes nothing.
    async fn compatible_schema_changes_apply_to_stored_rows(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        assert_eq!(create(&app, &office, &definition("evolutif", "internal")).await.status(), 201);
        let first = upload(&app, &office, "evolutif", "", "compteur,passages\nPont,10\n").await;
        assert_eq!(first.status(), 200);
        let first_version = first.json::<Value>().await.unwrap()["version"].as_i64().unwrap();
        let second = upload(&app, &office, "evolutif", "", "compteur,passages\nPont,1\nGare,2\n").await;
        assert_eq!(second.status(), 200);

        // A new nullable column.
        let added = patch(&app, &office, "evolutif", fields(json!([{"name": "sens", "type": "string"}]))).await;
        assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
        let read = rows(&app, &office, "/api/v1/data/evolutif?order=compteur").await;
        assert_eq!(read, vec![
            json!({"compteur": "Gare", "passages": 2, "sens": null}),
            json!({"compteur": "Pont", "passages": 1, "sens": null}),
        ]);
        assert_eq!(rows(&app, &office, "/api/v1/data/evolutif?sens=is.null").await.len(), 2);
        assert_eq!(rows(&app, &office, "/api/v1/data/evolutif?sens=eq.nord").await.len(), 0);
        let metadata: Value = app.get_as("/api/v1/datasets/evolutif", &office).await.json().await.unwrap();
        assert_eq!(metadata["record_count"], 2, "{metadata}");

        // integer -> number: the values are intact, and compare as numbers.
        let number = json!({"schema": {"fields": [
            {"name": "compteur", "type": "string"},
            {"name": "passages", "type": "number"},
            {"name": "sens", "type": "string"},
        ]}});
        let widened = patch(&app, &office, "evolutif", number).await;
        assert_eq!(widened.status(), 200, "{}", widened.text().await.unwrap());
        let read = rows(&app, &office, "/api/v1/data/evolutif?order=passages.desc").await;
        let passages: Vec<f64> = read.iter().map(|row| row["passages"].as_f64().unwrap()).collect();
        assert_eq!(passages, vec![2.0, 1.0]);
        assert_eq!(rows(&app, &office, "/api/v1/data/evolutif?passages=gt.1.5").await.len(), 1);

        // Narrowing back, a type that is not wider, a new required column,
        // a removed column: 422 naming the field; nothing changed.
        let cases = [
            (json!([{"name": "compteur", "type": "string"}, {"name": "passages", "type": "integer"}, {"name": "sens", "type": "string"}]), "schema.fields.passages.type"),
            (json!([{"name": "compteur", "type": "boolean"}, {"name": "passages", "type": "number"}, {"name": "sens", "type": "string"}]), "schema.fields.compteur.type"),
            (json!([{"name": "compteur", "type": "string"}, {"name": "passages", "type": "number"}, {"name": "sens", "type": "string"}, {"name": "meteo", "type": "string", "constraints": {"required": true}}]), "schema.fields.meteo"),
            (json!([{"name": "compteur", "type": "string"}, {"name": "passages", "type": "number"}]), "schema.fields.sens"),
        ];
        for (fields, field) in cases {
            let refused = patch(&app, &office, "evolutif", json!({"schema": {"fields": fields}})).await;
            let body = problem(refused, 422).await;
            let named: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|error| error["field"].as_str().unwrap()).collect();
            assert_eq!(named, vec![field], "{body}");
        }
        let read = rows(&app, &office, "/api/v1/data/evolutif?order=compteur").await;
        assert_eq!(read[0], json!({"compteur": "Gare", "passages": 2.0, "sens": null}));

        // The kept earlier version follows the schema: restored, it reads
        // under the new columns and types.
        let old = rows(&app, &office, &format!("/api/v1/data/evolutif?version={first_version}")).await;
        assert_eq!(old, vec![json!({"compteur": "Pont", "passages": 10.0, "sens": null})]);
        let restore = send(&app, reqwest::Method::POST, &format!("/api/v1/datasets/evolutif/versions/{first_version}/restore"), &office, |r| r).await;
        assert_eq!(restore.status(), 200);
        let read = rows(&app, &office, "/api/v1/data/evolutif").await;
        assert_eq!(read, vec![json!({"compteur": "Pont", "passages": 10.0, "sens": null})]);

        // A new upload needs the new column, and fills it.
        let third = upload(&app, &office, "evolutif", "", "compteur,passages,sens\nQuai,2.5,nord\n").await;
        assert_eq!(third.status(), 200);
        assert_eq!(rows(&app, &office, "/api/v1/data/evolutif?sens=eq.nord").await.len(), 1);
    }
}

on_both_stores! {
    /// Two creations of the same id fired at once: exactly one 201, the
    /// other a 409 problem (never a 500, never two datasets).
    async fn concurrent_creations_of_one_id(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        for round in 0..3 {
            let id = format!("double-{round}");
            let body = definition(&id, "internal");
            let (first, second) = tokio::join!(create(&app, &office, &body), create(&app, &office, &body));
            let mut statuses = vec![first.status().as_u16(), second.status().as_u16()];
            statuses.sort();
            assert_eq!(statuses, vec![201, 409], "round {round}");
            let refused = if first.status() == 409 { first } else { second };
            let refused = problem(refused, 409).await;
            assert!(refused["detail"].as_str().unwrap().contains(&id), "{refused}");
            let stored = app.state.store.stored_dataset(&id).await.unwrap().unwrap();
            assert_eq!(stored.version, 1, "one empty first version");
        }
    }
}

fn file_definition(extra_fields: &str) -> String {
    format!(
        "id: compteurs-fichier\ntitle: T\ndescription: D\ntheme: t\npublisher: p\nlicence: etalab-2.0\naccess: open\n\
         source:\n  file: compteurs.csv\nschema:\n  fields:\n    - {{name: compteur, type: string}}\n{extra_fields}"
    )
}

/// `catalog sync` of a file dataset whose definition changes but whose file
/// does not: a new nullable column and a wider type apply to the stored rows
/// (no new version); a new required column is not in the file, and the sync
/// reports it while the rows stay served.
async fn sync_applies_compatible_schema_changes(kind: crate::helpers::StoreKind) {
    use passerelle::catalog::sync::sync_folder;
    let folder = tempfile::tempdir().unwrap();
    let yaml = folder.path().join("compteurs-fichier.yaml");
    std::fs::write(
        folder.path().join("compteurs.csv"),
        "compteur,passages\nPont,3\nGare,7\n",
    )
    .unwrap();
    std::fs::write(
        &yaml,
        file_definition("    - {name: passages, type: integer}\n"),
    )
    .unwrap();
    let catalog = folder.path().to_path_buf();
    let Some(app) =
        crate::helpers::spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone())
            .await
    else {
        return;
    };
    let store = &app.state.store;
    let version = store
        .stored_dataset("compteurs-fichier")
        .await
        .unwrap()
        .unwrap()
        .version;

    std::fs::write(
        &yaml,
        file_definition("    - {name: passages, type: number}\n    - {name: sens, type: string}\n"),
    )
    .unwrap();
    let report = sync_folder(store, folder.path()).await.unwrap();
    assert_eq!(
        report.updated,
        vec!["compteurs-fichier".to_owned()],
        "{report:?}"
    );
    let stored = store
        .stored_dataset("compteurs-fichier")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, version, "no new version");
    app.state.catalog.refresh(store).await.unwrap();
    let read: Vec<Value> = app
        .get("/api/v1/data/compteurs-fichier?order=passages.desc&sens=is.null")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        read,
        vec![
            json!({"compteur": "Gare", "passages": 7.0, "sens": null}),
            json!({"compteur": "Pont", "passages": 3.0, "sens": null}),
        ]
    );

    std::fs::write(
        &yaml,
        file_definition("    - {name: passages, type: number}\n    - {name: sens, type: string}\n    - {name: meteo, type: string, constraints: {required: true}}\n"),
    )
    .unwrap();
    let report = sync_folder(store, folder.path()).await.unwrap();
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].1.contains("meteo"), "{report:?}");
    app.state.catalog.refresh(store).await.unwrap();
    assert_eq!(
        app.get("/api/v1/data/compteurs-fichier")
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .len(),
        2
    );
}

crate::test_both_stores!(sync_applies_compatible_schema_changes);

/// A FeatureCollection of `count` points, feature `bad` (1-based) with a
/// `passages` that is not an integer.
fn feature_collection(count: usize, bad: Option<usize>) -> String {
    let features: Vec<String> = (1..=count)
        .map(|number| {
            let passages = if Some(number) == bad {
                "\"beaucoup\"".to_owned()
            } else {
                number.to_string()
            };
            format!(
                r#"{{"type": "Feature", "properties": {{"compteur": "C{number}", "passages": {passages}}}, "geometry": {{"type": "Point", "coordinates": [4.07, 48.29]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type": "FeatureCollection", "name": "compteurs", "features": [{}]}}"#,
        features.join(",\n")
    )
}

async fn upload_geojson(app: &TestApp, token: &str, body: String) -> reqwest::Response {
    send(
        app,
        reqwest::Method::PUT,
        "/api/v1/datasets/points/data",
        token,
        |request| {
            request
                .header("content-type", "application/geo+json")
                .body(body)
        },
    )
    .await
}

on_both_stores! {
    /// GeoJSON uploads are read feature by feature from the spooled file: a
    /// bad feature in the middle is reported by its number (as the line) and
    /// nothing is published; 12,000 features publish every one of them.
    async fn geojson_uploads_stream_features(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        let mut points = definition("points", "internal");
        points["schema"]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "geometry", "type": "geopoint"}));
        assert_eq!(create(&app, &office, &points).await.status(), 201);

        let bad = upload_geojson(&app, &office, feature_collection(5, Some(3))).await;
        let report = problem(bad, 422).await;
        assert_eq!(report["report"]["bad_rows"], 1, "{report}");
        assert_eq!(report["report"]["valid_rows"], 4, "{report}");
        assert_eq!(report["report"]["errors"][0]["line"], 3, "{report}");
        assert_eq!(report["report"]["errors"][0]["column"], "passages", "{report}");
        assert_eq!(app.state.store.stored_dataset("points").await.unwrap().unwrap().record_count, 0);

        // A broken document is refused as a whole.
        let mut cut = feature_collection(5, None);
        cut.truncate(cut.len() / 2);
        let report = problem(upload_geojson(&app, &office, cut).await, 422).await;
        assert!(report["report"]["file_error"].is_string() || report["report"]["bad_rows"].as_u64() > Some(0), "{report}");

        let many = upload_geojson(&app, &office, feature_collection(12_000, None)).await;
        assert_eq!(many.status(), 200, "{}", many.text().await.unwrap());
        assert_eq!(app.state.store.stored_dataset("points").await.unwrap().unwrap().record_count, 12_000);
        let last: Vec<Value> = app.get_as("/api/v1/data/points?compteur=eq.C12000", &office).await.json().await.unwrap();
        assert_eq!(last, vec![json!({"compteur": "C12000", "passages": 12000, "geometry": "48.29,4.07"})]);
    }
}

on_both_stores! {
    /// A retired dataset's metadata: a tombstone (who and when) in its
    /// definition for those who may manage it; a 410 that says it was
    /// retired for the others, at `/datasets/{id}` and `/definition` alike.
    async fn retired_metadata_is_a_tombstone(app: TestApp) {
        let office = app.token("odile", DATA_OFFICE, None).await;
        let agent = app.token("alice", &["agent"], None).await;
        assert_eq!(create(&app, &office, &definition("archive", "internal")).await.status(), 201);
        assert_eq!(app.get_as("/api/v1/datasets/archive", &agent).await.status(), 200);
        let retired = send(&app, reqwest::Method::DELETE, "/api/v1/datasets/archive", &office, |r| r).await;
        assert_eq!(retired.status(), 204);

        for path in ["/api/v1/datasets/archive", "/api/v1/datasets/archive/definition"] {
            let gone = problem(app.get_as(path, &agent).await, 410).await;
            assert!(gone["detail"].as_str().unwrap().contains("retired"), "{path}: {gone}");
        }
        let gone = problem(app.get_as("/api/v1/datasets/archive", &office).await, 410).await;
        assert!(gone["detail"].as_str().unwrap().contains("retired"), "{gone}");
        let shown = app.get_as("/api/v1/datasets/archive/definition", &office).await;
        assert_eq!(shown.status(), 200);
        let event = app.audit_event_of(&shown).await;
        assert_eq!((event["action"].clone(), event["decision"].clone()), (json!("manage"), json!("allow")));
        let tombstone: Value = shown.json().await.unwrap();
        assert_eq!(tombstone["id"], "archive");
        assert_eq!(tombstone["retired_by"], "odile");
        assert!(tombstone["retired_at"].as_str().is_some_and(|at| at.len() >= 20), "{tombstone}");
        // Unknown ids stay 404.
        problem(app.get_as("/api/v1/datasets/jamais-vu", &office).await, 404).await;
        problem(app.get_as("/api/v1/datasets/jamais-vu/definition", &office).await, 404).await;
    }
}

//! Catalogue sync and imports through the real store: a malformed definition
//! is reported with its path and reason while the rest load; an import with
//! bad rows changes nothing (the previous version stays served); a good one
//! replaces the rows, and no cached page of the old version is served.

use std::path::Path;

use serde_json::Value;

use passerelle::catalog::sync::{import_file, read_definition, sync_folder};

use crate::helpers::{StoreKind, repository_path, spawn_app_with};

const AIR: &str = "qualite-air-stations";

fn copy_dataset(target: &Path, id: &str) {
    for name in [format!("{id}.yaml"), format!("{id}.csv")] {
        std::fs::copy(
            repository_path(&format!("catalog/{name}")),
            target.join(&name),
        )
        .unwrap();
    }
}

async fn import(app: &crate::helpers::TestApp, folder: &Path, csv: &str) -> Result<i64, String> {
    let definition = read_definition(&folder.join(format!("{AIR}.yaml"))).unwrap();
    let definition_json = serde_json::to_string(&definition).unwrap();
    let path = folder.join("new.csv");
    std::fs::write(&path, csv).unwrap();
    let hash = format!("{:x}", csv.len());
    import_file(
        &app.state.store,
        &definition,
        &path,
        csv.as_bytes().to_vec(),
        &definition_json,
        "definition",
        &hash,
    )
    .await
}

async fn rows(app: &crate::helpers::TestApp) -> Vec<Value> {
    app.state.catalog.refresh(&app.state.store).await.unwrap();
    let response = app
        .get(&format!(
            "/api/v1/data/{AIR}?select=station,concentration_ugm3&order=station,date,polluant"
        ))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn sync_and_imports(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    copy_dataset(folder.path(), AIR);
    std::fs::write(
        folder.path().join("casse.yaml"),
        "id: casse\ntitle: [pas fermé\n",
    )
    .unwrap();
    std::fs::write(
        folder.path().join("sans-fichier.yaml"),
        "id: sans-fichier\ntitle: T\ndescription: D\ntheme: t\npublisher: p\nlicence: etalab-2.0\naccess: open\nsource:\n  file: absent.csv\n",
    )
    .unwrap();
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone()).await
    else {
        return;
    };

    // The gateway started: the good dataset is served, the others are reported.
    let report = sync_folder(&app.state.store, folder.path()).await.unwrap();
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|(path, reason)| format!("{path}: {reason}"))
        .collect();
    assert!(
        failures
            .iter()
            .any(|line| line.contains("casse.yaml") && line.contains("YAML")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|line| line.contains("sans-fichier") && line.contains("absent.csv")),
        "{failures:?}"
    );
    assert!(report.unchanged.iter().any(|id| id == AIR), "{report:?}");
    let before = rows(&app).await;
    assert!(!before.is_empty());

    // Bad rows: refused with line, column and reason; nothing changes.
    let header = "station,commune,position,date,polluant,concentration_ugm3\n";
    let bad = format!(
        "{header}Troyes Centre,Troyes,\"48.3,4.07\",2024-07-01,no2,12.5\nTroyes Centre,Troyes,\"48.3,4.07\",2024-07-01,pm10,beaucoup\n"
    );
    let error = import(&app, folder.path(), &bad).await.unwrap_err();
    assert!(
        error.contains("line 3")
            && error.contains("concentration_ugm3")
            && error.contains("beaucoup"),
        "{error}"
    );
    assert_eq!(
        rows(&app).await,
        before,
        "the previous version is still served"
    );

    // A broken CSV (unclosed quote) is refused as a whole.
    let broken = format!("{header}Troyes Centre,Troyes,\"48.3,4.07,2024-07-01,no2,12.5\n");
    assert!(import(&app, folder.path(), &broken).await.is_err());
    assert_eq!(rows(&app).await, before);

    // A good file replaces the rows at once.
    let good = format!("{header}Nouvelle station,Troyes,\"48.3,4.07\",2024-07-01,o3,42.5\n");
    import(&app, folder.path(), &good).await.unwrap();
    let after = rows(&app).await;
    assert_eq!(
        after,
        vec![serde_json::json!({"station": "Nouvelle station", "concentration_ugm3": 42.5})]
    );
}

crate::test_both_stores!(sync_and_imports);

/// A GeoJSON source whose feature has a geometry of no GeoJSON type
/// (`{"type": "Banana"}`) is refused with the feature and the reason, and
/// nothing of it is served; a valid polygon in the same schema loads.
async fn refuses_unknown_geometry_types(kind: StoreKind) {
    let folder = tempfile::tempdir().unwrap();
    let definition = "id: zones\ntitle: Zones\ndescription: D\ntheme: t\npublisher: p\nlicence: etalab-2.0\n\
                      access: open\nsource:\n  file: zones.geojson\nschema:\n  fields:\n    - {name: nom, type: string}\n    \
                      - {name: geometry, type: geojson}\ngeometry:\n  column: geometry\n";
    std::fs::write(folder.path().join("zones.yaml"), definition).unwrap();
    let feature = |name: &str, geometry: &str| {
        format!(
            r#"{{"type": "Feature", "properties": {{"nom": "{name}"}}, "geometry": {geometry}}}"#
        )
    };
    let polygon = r#"{"type": "Polygon", "coordinates": [[[4.0, 48.2], [4.1, 48.2], [4.1, 48.3], [4.0, 48.2]]]}"#;
    let collection = |features: &[String]| {
        format!(
            r#"{{"type": "FeatureCollection", "features": [{}]}}"#,
            features.join(",")
        )
    };
    std::fs::write(
        folder.path().join("zones.geojson"),
        collection(&[
            feature("centre", polygon),
            feature(
                "banane",
                r#"{"type": "Banana", "coordinates": [4.0, 48.2]}"#,
            ),
        ]),
    )
    .unwrap();
    let catalog = folder.path().to_path_buf();
    let Some(app) = spawn_app_with(kind, |settings| settings.catalog_dir = catalog.clone()).await
    else {
        return;
    };
    let report = sync_folder(&app.state.store, folder.path()).await.unwrap();
    let failure = report
        .failures
        .iter()
        .find(|(path, _)| path.contains("zones"))
        .map(|(_, reason)| reason.clone())
        .unwrap_or_else(|| panic!("the Banana geometry was accepted: {report:?}"));
    assert!(
        failure.contains("feature 2") && failure.contains("Banana"),
        "{failure}"
    );
    assert_eq!(app.get("/api/v1/data/zones").await.status(), 404);

    std::fs::write(
        folder.path().join("zones.geojson"),
        collection(&[feature("centre", polygon)]),
    )
    .unwrap();
    let report = sync_folder(&app.state.store, folder.path()).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    app.state.catalog.refresh(&app.state.store).await.unwrap();
    let levels = passerelle::startup::dataset_levels(&app.state.catalog);
    app.state.policy.set_datasets(&levels).await.unwrap();
    let served: Value = app
        .get("/api/v1/data/zones?format=geojson")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        served["features"][0]["geometry"]["type"], "Polygon",
        "{served}"
    );
}

crate::test_both_stores!(refuses_unknown_geometry_types);

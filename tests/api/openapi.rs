//! The API description: served, committed, and identical.

/// The committed `openapi/openapi.json` is what the code generates
/// (regenerate with `cargo run -- openapi > openapi/openapi.json`).
#[test]
fn committed_description_is_current() {
    let generated = passerelle::http::openapi::document_json();
    let committed =
        std::fs::read_to_string(crate::helpers::repository_path("openapi/openapi.json"))
            .unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    let document: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/datasets",
        "/api/v1/data/{id}",
        "/api/v1/auth/token",
        "/api/v1/audit/events",
        "/api/v1/audit/verify",
        "/api/v1/policy/check",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is not described"
        );
    }
}

/// `/openapi.json` and the embedded `/docs` page are served without internet.
#[tokio::test]
async fn served_description_and_docs() {
    let app = crate::helpers::spawn_app(crate::helpers::StoreKind::Sqlite)
        .await
        .unwrap();
    let served: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let generated: serde_json::Value =
        serde_json::from_str(&passerelle::http::openapi::document_json()).unwrap();
    assert_eq!(served, generated);
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger"), "embedded Swagger UI");
    assert!(!page.contains("cdn."), "no CDN");
}

/// The served description is valid OpenAPI 3.1 for a real validator
/// (`openapi-spec-validator` from PyPI, installed by `.ci/run`; skipped
/// elsewhere when it is missing).
#[tokio::test]
async fn served_description_is_valid_openapi() {
    if !crate::helpers::python_module_available("openapi_spec_validator", "openapi-spec-validator")
    {
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::StoreKind::Sqlite)
        .await
        .unwrap();
    let served = app.get("/openapi.json").await.bytes().await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("openapi.json");
    std::fs::write(&path, &served).unwrap();
    let output = tokio::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&path)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the served description is not valid OpenAPI 3.1:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

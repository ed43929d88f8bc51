//! Compatibility with a PostgREST client nobody here wrote: the Python
//! `postgrest` package drives the gateway (select, eq, in, or, order, range,
//! count, errors). In CI the package is installed by `.ci/run` and the test
//! must run; elsewhere it is skipped when the package is missing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_postgrest_client() {
    if !crate::helpers::python_module_available("postgrest", "postgrest") {
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::StoreKind::Sqlite)
        .await
        .unwrap();
    let script = crate::helpers::repository_path("tests/clients/postgrest_py.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&app.address)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "postgrest-py failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! A real browser on another origin: headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by playwright-core, no browser download)
//! loads a page served on another port that runs the published
//! `@supabase/postgrest-js` against the gateway. `.ci/run` installs both;
//! in CI (`CI=true`) the test runs, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::Value;

use crate::helpers::{StoreKind, repository_path, spawn_app_with};
use crate::test_both_stores;

/// Whether Node, Chromium and the npm packages are there; in CI they must be.
fn browser_available(folder: &Path) -> bool {
    let chromium = Path::new("/usr/bin/chromium").exists();
    let packages = folder.join("node_modules/playwright-core").exists()
        && folder.join("node_modules/@supabase/postgrest-js").exists();
    let node = Command::new("node").arg("--version").output().is_ok();
    let available = chromium && packages && node;
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install chromium, node and tests/browser's npm packages (.ci/run)"
        );
        eprintln!("skipping: apt-get install chromium; npm ci --prefix tests/browser");
    }
    available
}

/// Serves the test page and postgrest-js on `port` (0: any free port), another origin.
async fn serve_page(page: String, module: PathBuf, port: u16) -> u16 {
    let script = std::fs::read(module).expect("postgrest-js module");
    let app =
        axum::Router::new()
            .route("/", get(move || async move { Html(page) }))
            .route(
                "/postgrest.mjs",
                get(move || async move {
                    ([("content-type", "text/javascript")], script).into_response()
                }),
            );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("page server") });
    port
}

/// One query outcome as the page recorded it.
fn outcome<'a>(results: &'a Value, page: &str, name: &str) -> &'a Value {
    let value = &results[page]["results"][name];
    assert!(!value.is_null(), "{page}: no `{name}` in {results}");
    value
}

/// postgrest-js in a browser on another origin: an open query with an exact
/// count (read from Content-Range), one with a bearer token, one refused
/// with 401 whose problem the page reads; from an origin that is not
/// listed, the open query still works and the token query is blocked.
async fn postgrest_js_in_chromium(kind: StoreKind) {
    let folder = repository_path("tests/browser");
    if !browser_available(&folder) {
        return;
    }
    // The page's origin must be known before the gateway starts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let page_port = listener.local_addr().expect("address").port();
    drop(listener);
    let listed = format!("http://127.0.0.1:{page_port}");
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.server.cors.allowed_origins = vec!["*".to_owned(), listed.clone()];
    })
    .await
    else {
        return;
    };
    let token = app.token("agent-browser", &["agent"], None).await;
    let page = std::fs::read_to_string(folder.join("page.html"))
        .expect("page")
        .replace("GATEWAY", &app.address)
        .replace("TOKEN", &token);
    let module = folder.join("node_modules/@supabase/postgrest-js/dist/index.mjs");
    // Served on the port reserved above (bound again: a race that is harmless here).
    let port = serve_page(page.clone(), module.clone(), page_port).await;
    // The same page on `localhost`: another origin, not listed.
    let unlisted_port = serve_page(page, module, 0).await;
    let listed_page = format!("http://127.0.0.1:{port}/");
    let unlisted_page = format!("http://localhost:{unlisted_port}/");

    let output = tokio::task::spawn_blocking({
        let folder = folder.clone();
        let pages = [listed_page.clone(), unlisted_page.clone()];
        move || {
            Command::new("node")
                .arg(folder.join("run.mjs"))
                .args(pages)
                .current_dir(&folder)
                .output()
                .expect("node runs")
        }
    })
    .await
    .expect("browser task");
    assert!(
        output.status.success(),
        "browser run failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let results: Value = serde_json::from_slice(&output.stdout).expect("results JSON");

    // The exact count the gateway gives a client on the same host.
    let expected: Value = app
        .client
        .get(app.url("/api/v1/datasets/consommations-energie-batiments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = expected["record_count"].as_i64().expect("record count");

    for page in [&listed_page, &unlisted_page] {
        assert!(results[page]["results"]["exception"].is_null(), "{results}");
        let open = outcome(&results, page, "open_counted");
        assert_eq!(
            open["status"], 206,
            "{page}: a counted partial page: {open}"
        );
        assert_eq!(open["rows"], 3);
        assert_eq!(
            open["count"], total,
            "{page}: count read from Content-Range"
        );

        let refused = outcome(&results, page, "refused");
        assert_eq!(refused["status"], 401, "{page}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{page}: the page reads the problem: {refused}"
        );
    }
    let with_token = outcome(&results, &listed_page, "with_token");
    assert_eq!(with_token["status"], 200, "{with_token}");
    assert_eq!(with_token["rows"], 2);
    assert!(with_token["error"].is_null());
    // From an origin not listed, a credentialed request never gets through CORS.
    let blocked = outcome(&results, &unlisted_page, "with_token");
    // postgrest-js reports the blocked fetch as status 0 with the browser's TypeError.
    assert_eq!(blocked["status"], 0, "{blocked}");
    assert!(blocked["rows"].is_null(), "{blocked}");
    assert!(
        blocked["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("fetch")),
        "{blocked}"
    );

    // The problem the page read is the gateway's, and no preflight was audited.
    let direct: Value = app
        .get("/api/v1/data/infractions-videoprotection?select=motif&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        outcome(&results, &listed_page, "refused")["error"]["message"],
        direct["message"]
    );
    let events = app.audit_events("limit=1000").await;
    assert!(events.iter().all(|event| event["method"] != "OPTIONS"));
    assert!(
        events
            .iter()
            .any(|event| event["subject"] == "agent-browser" && event["status"] == 200),
        "the token query was audited under its subject"
    );
}
test_both_stores!(postgrest_js_in_chromium);

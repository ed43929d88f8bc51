//! The pages in a real browser: headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by playwright-core from
//! `tests/browser/pages.mjs`) against the real router: axe-core finds no
//! serious or critical accessibility violation on any page, and a visitor
//! can search, open a dataset, sort and filter its preview and download
//! its CSV; a member of staff signs in through the test identity provider,
//! reads an internal dataset and signs out; an auditor signs in and sees
//! today's accesses, those just made included, and verifies the chain; a
//! steward signs in and sees the inventory (axe-checked too); a steward who
//! manages the metropole's datasets edits a description, uploads a CSV, sees
//! the dry run's report and publishes it (each form axe-checked).
//! Screenshots land in `tests/browser/screenshots/` (ignored by git). `.ci/run` installs Chromium, Node and the npm packages; in CI
//! (`CI=true`) the test runs, never skips.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{StoreKind, repository_path};
use crate::oidc_provider::spawn_app_with_sign_in;
use crate::test_both_stores;

/// Whether Node, Chromium and the npm packages are there; in CI they must be.
fn browser_available(folder: &Path) -> bool {
    let chromium = Path::new("/usr/bin/chromium").exists();
    let packages = folder.join("node_modules/playwright-core").exists()
        && folder.join("node_modules/axe-core").exists();
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

test_both_stores!(pages_in_chromium);

async fn pages_in_chromium(kind: StoreKind) {
    let folder = repository_path("tests/browser");
    if !browser_available(&folder) {
        return;
    }
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    // A dataset of the metropole's services for the stewards' forms.
    let publisher = app
        .token("redactrice.bernard", &["steward-tcm"], None)
        .await;
    let created = app
        .client
        .post(app.url("/api/v1/datasets"))
        .bearer_auth(&publisher)
        .json(&serde_json::json!({
            "id": "comptages-velo-navigateur",
            "title": "Comptages vélo (navigateur)",
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
    let store = match kind {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    let screenshots = folder.join("screenshots").join(store);
    let output = tokio::task::spawn_blocking({
        let folder = folder.clone();
        let address = app.address.clone();
        move || {
            Command::new("node")
                .arg(folder.join("pages.mjs"))
                .arg(address)
                .arg(screenshots)
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

    let audited = results["axe"].as_object().expect("axe results");
    assert_eq!(audited.len(), 12, "{results}");
    for (name, result) in audited {
        let expected = if name == "not-found" { 404 } else { 200 };
        assert_eq!(result["status"], expected, "{name}");
        assert!(result["passes"].as_u64().unwrap() > 10, "{name}: axe ran");
        let grave: Vec<&Value> = result["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|violation| {
                matches!(violation["impact"].as_str(), Some("serious" | "critical"))
            })
            .collect();
        assert!(
            grave.is_empty(),
            "{name}: serious or critical violations {grave:?}"
        );
    }
    // The refusal pages' own statuses (not found, the dashboard before
    // signing in) are the only errors a console may show.
    let errors: Vec<&Value> = results["console_errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|error| {
            let url = error["url"].as_str().unwrap();
            let status_page = url.ends_with("/datasets/nope")
                || url.ends_with("/audit")
                || url.ends_with("/inventory");
            !(status_page && error["text"].as_str().unwrap().contains("status of 40"))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "no script, CSP or loading error: {errors:?}"
    );

    let steward = app.token("steward", &["steward"], None).await;
    let inventory: Value = app
        .get_as("/api/v1/inventory", &steward)
        .await
        .json()
        .await
        .unwrap();
    let total = inventory["total"].as_i64().unwrap();
    let checks = &results["checks"];
    assert_eq!(
        checks["first_tab"], "skip-link",
        "the first Tab reaches the skip link"
    );
    assert!(
        checks["search_url"]
            .as_str()
            .unwrap()
            .ends_with("/datasets?q=air")
    );
    assert!(
        checks["search_results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|href| href == "/datasets/qualite-air-stations"),
        "{checks}"
    );
    // Sorted ascending: French numbers read back in order.
    let sorted: Vec<f64> = checks["sorted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cell| {
            cell.as_str()
                .unwrap()
                .replace(['\u{202F}', ' '], "")
                .replace(',', ".")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        !sorted.is_empty() && sorted.windows(2).all(|pair| pair[0] <= pair[1]),
        "{sorted:?}"
    );
    assert!(
        checks["filtered_url"]
            .as_str()
            .unwrap()
            .contains("order=concentration_ugm3.asc&polluant=eq.no2")
    );
    let filtered = checks["filtered"].as_array().unwrap();
    assert!(
        !filtered.is_empty() && filtered.iter().all(|cell| cell == "no2"),
        "{filtered:?}"
    );

    let csv = &checks["csv"];
    assert_eq!(csv["status"], 200);
    assert_eq!(
        csv["first_bytes"],
        serde_json::json!([0xEF, 0xBB, 0xBF]),
        "a BOM for spreadsheets"
    );
    assert_eq!(
        csv["header"],
        "station;commune;position;date;polluant;concentration_ugm3"
    );
    let expected_lines = app
        .get("/api/v1/data/qualite-air-stations?polluant=eq.no2&format=csv")
        .await
        .text()
        .await
        .unwrap()
        .trim()
        .lines()
        .count();
    assert_eq!(
        csv["lines"], expected_lines,
        "the download follows the preview's filter"
    );

    let closed = checks["closed_text"].as_str().unwrap();
    assert!(!closed.contains("Démo-001"), "no personal value");
    assert_eq!(checks["closed_tables"], 1, "the schema only, no preview");

    // Staff: signed in from the internal dataset's page, back on it with its rows.
    assert_eq!(checks["internal_anonymous_tables"], 0, "{checks}");
    assert!(
        checks["internal_url"]
            .as_str()
            .unwrap()
            .ends_with("/datasets/infractions-videoprotection"),
        "{checks}"
    );
    assert!(
        checks["internal_header"]
            .as_str()
            .unwrap()
            .contains("agent.dupont")
    );
    assert!(checks["internal_rows"].as_u64().unwrap() > 0, "{checks}");
    assert!(
        !checks["signed_out_header"]
            .as_str()
            .unwrap()
            .contains("agent.dupont")
    );
    assert_eq!(checks["internal_after_sign_out"], 0, "signed out: no rows");

    // Auditor: refused before signing in, then today's accesses, the staff's read included.
    assert_eq!(checks["audit_anonymous_status"], 401);
    assert_eq!(checks["inventory_anonymous_status"], 401);
    assert!(
        checks["inventory_url"]
            .as_str()
            .unwrap()
            .ends_with("/inventory"),
        "back to the inventory after signing in"
    );
    assert_eq!(
        checks["inventory_total"],
        passerelle::web::display::integer(total, passerelle::web::locale::Lang::Fr)
    );
    assert_eq!(checks["inventory_charts"], 7, "one chart per table");
    assert!(
        checks["inventory_access"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row[0] == "Ouvert" && row[2].as_str().unwrap().ends_with("\u{a0}%")),
        "access levels in words, French percentages: {}",
        checks["inventory_access"]
    );
    // The inventory's reader manages nothing: no form link.
    assert_eq!(checks["inventory_forms_for_reader"], 0, "{checks}");
    // The steward who manages the metropole's datasets: saved, checked, published.
    assert_eq!(
        checks["steward_saved"], "Modifications enregistrées.",
        "{checks}"
    );
    assert_eq!(checks["steward_report"]["rows"], "2", "{checks}");
    assert_eq!(checks["steward_report"]["bad_rows"], "0", "{checks}");
    assert!(
        checks["steward_published"]
            .as_str()
            .unwrap()
            .starts_with("Nouvelle version publiée"),
        "{checks}"
    );
    let definition: Value = app
        .get_as(
            "/api/v1/datasets/comptages-velo-navigateur/definition",
            &publisher,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        definition["description"],
        "Passages par compteur, relevés chaque heure."
    );
    let published: Value = app
        .get_as("/api/v1/datasets/comptages-velo-navigateur", &publisher)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(published["record_count"], 2, "{published}");
    assert!(
        checks["audit_url"].as_str().unwrap().ends_with("/audit"),
        "{checks}"
    );
    let today = checks["audit_today"].as_array().unwrap();
    assert_eq!(today.len(), 1, "{checks}");
    let allowed: u64 = today[0][0]
        .as_str()
        .unwrap()
        .replace('\u{202F}', "")
        .parse()
        .unwrap();
    let refused: u64 = today[0][1]
        .as_str()
        .unwrap()
        .replace('\u{202F}', "")
        .parse()
        .unwrap();
    assert!(allowed > 10 && refused >= 1, "{today:?}");
    let events = checks["audit_events"].as_array().unwrap();
    assert!(
        events.iter().any(|event| event["subject"] == "agent.dupont"
            && event["dataset"] == "infractions-videoprotection"
            && event["action"] == "read"
            && event["decision"] == "allow"),
        "{events:?}"
    );
    assert!(
        checks["audit_verification"]
            .as_str()
            .unwrap()
            .starts_with("Chaîne intacte"),
        "{checks}"
    );
}

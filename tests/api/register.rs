//! The data register: consistency rules, purpose limitation, the processing
//! record, the inventory and its CSV register, `register import`.

use reqwest::header::HeaderValue;
use serde_json::Value;

use crate::helpers::{StoreKind, TestApp, problem, spawn_app_with};
use crate::{on_both_stores, test_both_stores};

const MENAGES: &str = "/api/v1/data/menages-precarite-energetique?select=commune&limit=1";

/// The table `name` of an inventory as (value, count, percent) triples.
fn table(inventory: &Value, name: &str) -> Vec<(String, u64, f64)> {
    inventory["by"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no table {name}: {inventory}"))
        .iter()
        .map(|line| {
            (
                line["value"]
                    .as_str()
                    .unwrap_or("(not recorded)")
                    .to_owned(),
                line["count"].as_u64().unwrap(),
                line["percent"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn count_of(inventory: &Value, name: &str, value: &str) -> u64 {
    table(inventory, name)
        .into_iter()
        .find(|(label, _, _)| label == value)
        .map_or(0, |(_, count, _)| count)
}

on_both_stores! {
    /// A definition file that contradicts its register decisions is refused
    /// by the sync, the report naming every broken rule; the others load.
    async fn contradictions_are_refused_at_sync(app: TestApp) {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("d.csv"), "commune,n\nTroyes,1\n").unwrap();
        std::fs::write(
            folder.path().join("bad.yaml"),
            "id: bad\ntitle: Bad\npublisher: P\nlicence: convention\naccess: open\nsource: {file: d.csv}\n\
             sharing: {decision: to_define}\nconfidentiality: {decision: yes, grounds: [other]}\n",
        )
        .unwrap();
        std::fs::write(
            folder.path().join("good.yaml"),
            "id: good\ntitle: Good\npublisher: P\nlicence: etalab-2.0\naccess: open\nsource: {file: d.csv}\n\
             sharing: {decision: yes}\nconfidentiality: {decision: no}\n",
        )
        .unwrap();
        let report = passerelle::catalog::sync::sync_folder(&app.state.store, folder.path()).await.unwrap();
        assert_eq!(report.imported.len(), 1, "{report:?}");
        assert_eq!(report.failures.len(), 1, "{report:?}");
        let reason = &report.failures[0].1;
        for rule in ["to-define-means-undecided", "open-needs-sharing", "open-needs-not-confidential", "open-needs-open-licence"] {
            assert!(reason.contains(rule), "{rule} missing from {reason}");
        }
    }
}

on_both_stores! {
    /// The social service's grant serves its purposes only: another purpose
    /// is refused with 403 naming the allowed ones (case and accents folded
    /// when matching), and the audit keeps the purpose of every read.
    async fn purposes_are_limited(app: TestApp) {
        let token = app.token("assistante", &["service-social"], None).await;
        let read = |purpose: &'static str| {
            app.client.get(app.url(MENAGES)).bearer_auth(&token)
                .header("X-Purpose", HeaderValue::from_bytes(purpose.as_bytes()).unwrap()).send()
        };
        let refused = read("prospection commerciale").await.unwrap();
        let event = app.audit_event_of(&refused).await;
        let body = problem(refused, 403).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("`accompagnement social`") && detail.contains("`suivi de la précarité énergétique`"), "{detail}");
        assert_eq!(event["decision"], "deny");
        assert_eq!(event["purpose"], "prospection commerciale");
        assert!(event["rule"].as_str().unwrap().starts_with("purpose not allowed"), "{event}");
        for admitted in ["Accompagnement Social", "SUIVI DE LA PRECARITE ENERGETIQUE : dossier 12"] {
            let response = read(admitted).await.unwrap();
            assert_eq!(response.status(), 200, "{admitted}");
            let event = app.audit_event_of(&response).await;
            assert_eq!((event["decision"].as_str(), event["purpose"].as_str()), (Some("allow"), Some(admitted)));
            assert_eq!(event["view"], "accompagnement-social");
        }
        // Other grants keep their own terms: ADEME's aggregates take any declared purpose.
        let ademe = app.token("ademe", &["ademe"], Some("ADEME")).await;
        let response = app.client.get(app.url("/api/v1/data/menages-precarite-energetique?select=commune,count()"))
            .bearer_auth(&ademe).header("X-Purpose", "observatoire").send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

on_both_stores! {
    /// The processing record is shown to callers who may read the data,
    /// with the purposes their access serves; others see the decisions only.
    async fn processing_record_for_readers(app: TestApp) {
        let social = app.token("assistante", &["service-social"], None).await;
        let entry: Value = app.get_as("/api/v1/datasets/menages-precarite-energetique", &social).await.json().await.unwrap();
        assert_eq!(entry["processing"]["legal_basis"], "e");
        assert_eq!(entry["processing"]["dpo_contact"], "dpo@troyes-cm.fr");
        assert_eq!(entry["allowed_purposes"], serde_json::json!(["accompagnement social", "suivi de la précarité énergétique"]));
        assert_eq!(entry["confidentiality"]["grounds"], serde_json::json!(["personal_data"]));
        assert_eq!(entry["organisation"], "Troyes Champagne Métropole");
        assert_eq!(entry["source_kind"], "mixed");
        for token in [None, Some(app.token("agent", &["agent"], None).await)] {
            let response = match &token {
                Some(token) => app.get_as("/api/v1/datasets/menages-precarite-energetique", token).await,
                None => app.get("/api/v1/datasets/menages-precarite-energetique").await,
            };
            let entry: Value = response.json().await.unwrap();
            assert_eq!(entry["can_read"], false);
            assert!(entry.get("processing").is_none(), "{entry}");
            assert_eq!(entry["sharing"]["decision"], "yes");
        }
    }
}

on_both_stores! {
    /// The inventory is for stewards, the DPO and administrators; it counts
    /// the demo catalogue by every dimension, cross-tabulates on request and
    /// lists undecided datasets; each read is audited as `inventory:read`.
    async fn inventory_of_the_demo(app: TestApp) {
        problem(app.get("/api/v1/inventory").await, 401).await;
        let agent = app.token("agent", &["agent"], None).await;
        let refused = app.get_as("/api/v1/inventory", &agent).await;
        let event = app.audit_event_of(&refused).await;
        assert_eq!((event["action"].as_str(), event["decision"].as_str()), (Some("inventory:read"), Some("deny")));
        problem(refused, 403).await;
        let dpo = app.token("dpo", &["dpo"], None).await;
        let response = app.get_as("/api/v1/inventory?by=theme,access", &dpo).await;
        assert_eq!(response.status(), 200);
        let event = app.audit_event_of(&response).await;
        assert_eq!((event["action"].as_str(), event["decision"].as_str()), (Some("inventory:read"), Some("allow")));
        let inventory: Value = response.json().await.unwrap();
        assert_eq!(inventory["total"], 10, "restricted entries are counted too");
        assert_eq!(count_of(&inventory, "access", "open"), 4);
        assert_eq!(count_of(&inventory, "access", "confidential"), 2);
        assert_eq!(count_of(&inventory, "sharing", "to_define"), 1);
        assert_eq!(table(&inventory, "access")[0], ("open".to_owned(), 4, 40.0));
        let cells = inventory["cross"]["cells"].as_array().unwrap();
        assert_eq!(inventory["cross"]["dimensions"], serde_json::json!(["theme", "access"]));
        assert_eq!(cells.iter().map(|cell| cell["count"].as_u64().unwrap()).sum::<u64>(), 10);
        assert!(cells.iter().any(|cell| cell["values"] == serde_json::json!(["Mobilités", "partners"]) && cell["count"] == 1));
        let undecided: Vec<&str> = inventory["undecided"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
        assert_eq!(undecided, ["projets-amenagement"]);
        let due: Vec<&str> = inventory["due_reviews"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
        assert!(due.contains(&"projets-amenagement"), "next review 2026-01-15 is past: {due:?}");
        for bad in ["by=colour", "by=theme,theme", "format=xml", "lang=de", "sort=x"] {
            let body = problem(app.get_as(&format!("/api/v1/inventory?{bad}"), &dpo).await, 400).await;
            assert_eq!(body["type"], "/problems/invalid-query", "{bad}");
        }
    }
}

/// The register of `app` as CSV, French headers or not.
async fn register_csv(app: &TestApp, token: &str, french: bool) -> String {
    let path = if french {
        "/api/v1/inventory?format=csv&lang=fr"
    } else {
        "/api/v1/inventory?format=csv"
    };
    let response = app.get_as(path, token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "BOM for spreadsheets");
    String::from_utf8(bytes[3..].to_vec()).unwrap()
}

on_both_stores! {
    /// The register round trip: export (French headers), edit a line in the
    /// spreadsheet, import: the dataset is updated, nothing is duplicated,
    /// and a line breaking a rule is reported with its number and reason.
    async fn register_round_trip(app: TestApp) {
        let dpo = app.token("dpo", &["dpo"], None).await;
        let english = register_csv(&app, &dpo, false).await;
        assert!(english.starts_with("id;title;description;organisation;direction;theme;source_kind"), "{english}");
        let exported = register_csv(&app, &dpo, true).await;
        let mut lines: Vec<String> = exported.lines().map(str::to_owned).collect();
        assert!(lines[0].starts_with("Identifiant;Titre;Description;Collectivité;Direction;Thématique"), "{}", lines[0]);
        assert_eq!(lines.len(), 11, "a header and one line per dataset");
        let position = lines.iter().position(|line| line.starts_with("effectifs-services;")).unwrap();
        assert!(lines[position].contains(";Non;"), "French values: {}", lines[position]);
        lines[position] = lines[position].replace("2026-04-01", "2027-09-30");
        let projets = lines.iter().position(|line| line.starts_with("projets-amenagement;")).unwrap();
        lines[projets] = lines[projets].replace(";undecided;", ";open;");
        let edited = lines.join("\r\n");
        let report = passerelle::catalog::register_import::import_register(&app.state.store, edited.as_bytes()).await.unwrap();
        assert_eq!(report.updated, ["effectifs-services"], "{report:?}");
        assert_eq!(report.unchanged.len(), 8, "{report:?}");
        assert_eq!(report.created.len(), 0);
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        let (line, reason) = &report.rejected[0];
        assert_eq!(*line, projets as u64 + 1);
        assert!(reason.contains("to-define-means-undecided"), "{reason}");
        app.state.refresh_catalog().await.unwrap();
        let inventory: Value = app.get_as("/api/v1/inventory", &dpo).await.json().await.unwrap();
        assert_eq!(inventory["total"], 10);
        let entry: Value = app.get_as("/api/v1/datasets/effectifs-services", &dpo).await.json().await.unwrap();
        assert_eq!(entry["review"]["next_review"], "2027-09-30");
        assert!(entry["record_count"].as_u64().unwrap() > 0, "the rows stay");
    }
}

/// The demo register (653 lines) reproduces the audit's tables exactly,
/// with the document's rounded percentages; its entries are metadata-only.
async fn demo_register_gives_the_audit_tables(kind: StoreKind) {
    let empty = tempfile::tempdir().unwrap();
    let folder = empty.path().to_owned();
    let Some(app) = spawn_app_with(kind, move |settings| settings.catalog_dir = folder).await
    else {
        return;
    };
    let bytes =
        std::fs::read(crate::helpers::repository_path("catalog/register-demo.csv")).unwrap();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the demo spreadsheet is Windows-1252"
    );
    let report = passerelle::catalog::register_import::import_register(&app.state.store, &bytes)
        .await
        .unwrap();
    assert_eq!(
        (report.created.len(), report.rejected.len()),
        (653, 0),
        "{:?}",
        report.rejected
    );
    // Re-importing updates, never duplicates.
    let again = passerelle::catalog::register_import::import_register(&app.state.store, &bytes)
        .await
        .unwrap();
    assert_eq!((again.created.len(), again.unchanged.len()), (0, 653));
    app.state.refresh_catalog().await.unwrap();
    let dpo = app.token("dpo", &["dpo"], None).await;
    let inventory: Value = app
        .get_as("/api/v1/inventory", &dpo)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inventory["total"], 653);
    // The seed document's tables (../shared/seed: "Audit interne").
    let expected: &[(&str, &[(&str, u64)])] = &[
        (
            "organisation",
            &[
                ("C.M.A.S.", 14),
                ("Troyes Champagne Métropole", 341),
                ("Ville de Troyes", 207),
                ("Ville de Troyes / Troyes Champagne Métropole", 91),
            ],
        ),
        (
            "theme",
            &[
                ("Administration", 109),
                ("Assainissement - Eau - Trame Hydraulique", 46),
                ("Culture", 22),
                ("Economie & Société", 34),
                ("Education – Enfance", 22),
                ("Energie & Climat / Dév. Durable", 205),
                ("Enseignement supérieur", 13),
                ("Espace Public", 14),
                ("Patrimoine", 19),
                ("Sécurité", 49),
                ("Sports", 16),
                ("Urbanisme-Habitat", 104),
            ],
        ),
        (
            "source_kind",
            &[("internal", 450), ("external", 189), ("mixed", 14)],
        ),
        ("sharing", &[("yes", 452), ("no", 160), ("to_define", 41)]),
        (
            "confidentiality",
            &[("no", 449), ("yes", 132), ("to_define", 72)],
        ),
        ("access", &[("undecided", 653)]),
    ];
    for (name, lines) in expected {
        let mut actual: Vec<(String, u64)> = table(&inventory, name)
            .into_iter()
            .map(|(value, count, _)| (value, count))
            .collect();
        actual.sort();
        let mut wanted: Vec<(String, u64)> = lines
            .iter()
            .map(|(value, count)| ((*value).to_owned(), *count))
            .collect();
        wanted.sort();
        assert_eq!(actual, wanted, "{name}");
    }
    let directions = table(&inventory, "direction");
    assert_eq!(directions.len(), 29);
    assert_eq!(directions[0].0, "Développement durable - Climat - Energie");
    assert_eq!(directions[0].1, 150);
    assert_eq!(
        count_of(&inventory, "direction", "Médiathèque Jacques-Chirac"),
        1
    );
    assert_eq!(count_of(&inventory, "direction", "Autres"), 76);
    // Percentages as the document rounds them: whole numbers for source and
    // confidentiality, one decimal for sharing.
    let percent = |name: &str, value: &str| {
        table(&inventory, name)
            .into_iter()
            .find(|(label, _, _)| label == value)
            .unwrap()
            .2
    };
    for (value, whole) in [("external", 29.0), ("internal", 69.0), ("mixed", 2.0)] {
        assert_eq!(percent("source_kind", value).round(), whole, "{value}");
    }
    for (value, tenth) in [("no", 24.5), ("yes", 69.2), ("to_define", 6.3)] {
        assert_eq!(percent("sharing", value), tenth, "{value}");
    }
    for (value, whole) in [("no", 69.0), ("yes", 20.0), ("to_define", 11.0)] {
        assert_eq!(percent("confidentiality", value).round(), whole, "{value}");
    }
    assert_eq!(inventory["without_data"].as_array().unwrap().len(), 653);
    assert_eq!(inventory["undecided"].as_array().unwrap().len(), 653);
    // A metadata-only entry is in the catalogue with no rows; its data
    // answers like any undecided dataset's: nothing is served.
    let agent = app.token("agent", &["agent"], None).await;
    let entry: Value = app
        .get_as("/api/v1/datasets/registre-0001", &agent)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (entry["record_count"].as_i64(), entry["access"].as_str()),
        (Some(0), Some("undecided"))
    );
    assert_eq!(entry["organisation"], "Troyes Champagne Métropole");
    problem(app.get_as("/api/v1/data/registre-0001", &agent).await, 403).await;
    // Once a line decides an access level, the data answers "not published yet".
    let decided = "Identifiant;Partage des données;Confidentialité des données;Niveau d'accès\nregistre-0001;Non;Non;internal\n";
    let report =
        passerelle::catalog::register_import::import_register(&app.state.store, decided.as_bytes())
            .await
            .unwrap();
    assert_eq!(report.updated, ["registre-0001"], "{report:?}");
    app.state.refresh_catalog().await.unwrap();
    let body = problem(app.get_as("/api/v1/data/registre-0001", &agent).await, 404).await;
    assert_eq!(body["type"], "/problems/no-data-yet");
    // A sync of the catalogue folder leaves imported entries alone.
    passerelle::catalog::sync::sync_folder(&app.state.store, empty.path())
        .await
        .unwrap();
    app.state.refresh_catalog().await.unwrap();
    assert_eq!(app.state.catalog.current().entries().len(), 653);
}

test_both_stores!(demo_register_gives_the_audit_tables);

on_both_stores! {
    /// For the DPO: the reads served of personal data over a period, by
    /// dataset, caller organisation and purpose; refused reads and other
    /// datasets are left out.
    async fn personal_data_read_statistics(app: TestApp) {
        let social = app.token("assistante", &["service-social"], Some("CCAS")).await;
        let ademe = app.token("ademe", &["ademe"], Some("ADEME")).await;
        let agent = app.token("agent", &["agent"], Some("DSI")).await;
        let read = |token: &String, path: &str, purpose: &'static str| {
            app.client.get(app.url(path)).bearer_auth(token.clone()).header("X-Purpose", purpose).send()
        };
        for _ in 0..2 {
            assert_eq!(read(&social, MENAGES, "accompagnement social").await.unwrap().status(), 200);
        }
        assert_eq!(read(&social, MENAGES, "prospection commerciale").await.unwrap().status(), 403);
        let aggregates = "/api/v1/data/menages-precarite-energetique?select=commune,count()";
        assert_eq!(read(&ademe, aggregates, "observatoire").await.unwrap().status(), 200);
        assert_eq!(read(&agent, "/api/v1/data/effectifs-services?limit=1", "pilotage").await.unwrap().status(), 200);
        let auditor = app.token("auditrice", &["auditor"], None).await;
        problem(app.get_as("/api/v1/audit/stats?personal_data=maybe", &auditor).await, 400).await;
        problem(app.get_as("/api/v1/audit/stats?personal_data=true", &agent).await, 403).await;
        let stats: Value = app.get_as("/api/v1/audit/stats?personal_data=true&from=2000-01-01", &auditor).await.json().await.unwrap();
        assert_eq!(stats["total"], 3, "{stats}");
        assert_eq!(stats["by_dataset"], serde_json::json!([{"key": "menages-precarite-energetique", "count": 3}]));
        assert_eq!(stats["by_purpose"], serde_json::json!([
            {"key": "accompagnement social", "count": 2},
            {"key": "observatoire", "count": 1},
        ]));
        assert_eq!(stats["by_org"], serde_json::json!([{"key": "CCAS", "count": 2}, {"key": "ADEME", "count": 1}]));
        // Without the filter every request counts, the refused one included.
        let all: Value = app.get_as("/api/v1/audit/stats", &auditor).await.json().await.unwrap();
        assert!(all["total"].as_i64().unwrap() > 3);
        let empty: Value = app.get_as("/api/v1/audit/stats?personal_data=true&to=2000-01-01", &auditor).await.json().await.unwrap();
        assert_eq!(empty["total"], 0);
    }
}

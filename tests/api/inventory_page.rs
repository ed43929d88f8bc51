//! The stewards' dashboard `/inventory` on both stores: who may see it
//! (401 anonymous, 403 without `inventory:read`), the figures it shows
//! equal to `GET /api/v1/inventory` (counts, French percentages), the
//! attention lists linking to each dataset's page, English by `?lang=en`,
//! the register CSV through the session, and the `inventory:read` events.

use reqwest::header;
use serde_json::Value;

use crate::helpers::{StoreKind, TestApp};
use crate::oidc_provider::spawn_app_with_sign_in;
use crate::sign_in::sign_in;
use crate::test_both_stores;

async fn page(app: &TestApp, path: &str, session: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .send()
        .await
        .unwrap()
}

/// The rows of the table `id` of a page: (label, count, percent) as shown.
fn rows(html: &str, id: &str) -> Vec<(String, String, String)> {
    let start = html
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("table {id}"));
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    table
        .split("<tr><th scope=\"row\">")
        .skip(1)
        .map(|row| {
            let label = row.split("</th>").next().unwrap().to_owned();
            let cells: Vec<String> = row
                .split("<td class=\"number\">")
                .skip(1)
                .map(|cell| cell.split('<').next().unwrap().to_owned())
                .collect();
            (label, cells[0].clone(), cells[1].clone())
        })
        .collect()
}

/// A text as the templates escape it.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn french(value: f64) -> String {
    passerelle::web::display::number(value, passerelle::web::locale::Lang::Fr)
}

test_both_stores!(inventory_page);

async fn inventory_page(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    // Who may see it: nobody anonymous, no agent; a steward.
    let anonymous = app.get("/inventory").await;
    assert_eq!(anonymous.status(), 401);
    assert!(!anonymous.text().await.unwrap().contains("access-table"));
    assert_eq!(app.get("/inventory/register.csv").await.status(), 401);
    let agent = sign_in(&app, "agent.dupont").await;
    let forbidden = page(&app, "/inventory", &agent).await;
    assert_eq!(forbidden.status(), 403);
    let forbidden = forbidden.text().await.unwrap();
    assert!(!forbidden.contains("access-table"));
    assert!(
        !forbidden.contains("href=\"/inventory\""),
        "no link for an agent"
    );
    assert_eq!(
        page(&app, "/inventory/register.csv", &agent).await.status(),
        403
    );

    let steward = sign_in(&app, "gestionnaire.leroy").await;
    let response = page(&app, "/inventory", &steward).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "private, no-cache");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("<h1>Inventaire des données</h1>"));
    assert!(html.contains("href=\"/inventory\""), "the header links it");

    // The same figures as the API.
    let token = app
        .token(
            "gestionnaire.leroy",
            &["steward"],
            Some("Troyes Champagne Métropole"),
        )
        .await;
    let api = app.get_as("/api/v1/inventory", &token).await;
    assert_eq!(api.status(), 200);
    let inventory: Value = api.json().await.unwrap();
    assert!(html.contains(&format!(
        "<strong id=\"inventory-total\">{}</strong>",
        inventory["total"]
    )));
    for dimension in [
        "organisation",
        "direction",
        "theme",
        "source_kind",
        "sharing",
        "confidentiality",
        "access",
    ] {
        let shown = rows(&html, &format!("{dimension}-table"));
        let expected = inventory["by"][dimension].as_array().unwrap();
        assert_eq!(shown.len(), expected.len(), "{dimension}");
        assert!(!shown.is_empty(), "{dimension}");
        for ((label, count, percent), line) in shown.iter().zip(expected) {
            assert_eq!(count, &line["count"].to_string(), "{dimension} {label}");
            assert_eq!(
                percent,
                &format!("{}\u{a0}%", french(line["percent"].as_f64().unwrap())),
                "{dimension} {label}"
            );
            if dimension == "theme" {
                assert_eq!(label, &escaped(line["value"].as_str().unwrap()));
            }
        }
        assert!(
            html.contains(&format!("aria-labelledby=\"{dimension}-title\"")),
            "the chart of {dimension}"
        );
    }
    let access = rows(&html, "access-table");
    assert!(
        access.iter().any(|(label, _, _)| label == "Ouvert"),
        "access levels in words: {access:?}"
    );
    // The attention lists link to each dataset's page.
    for (list, id) in [
        ("undecided", "undecided-table"),
        ("due_reviews", "due-reviews-table"),
        ("stale", "stale-table"),
    ] {
        let items = inventory[list].as_array().unwrap();
        for item in items {
            let link = format!("<a href=\"/datasets/{}\">", item["id"].as_str().unwrap());
            let start = html
                .find(&format!("<table id=\"{id}\">"))
                .unwrap_or_else(|| panic!("{id}"));
            assert!(html[start..].contains(&link), "{link} in {list}");
        }
    }
    assert!(!inventory["undecided"].as_array().unwrap().is_empty());
    let undecided = &html[html.find("<table id=\"undecided-table\">").unwrap()..];
    let undecided = &undecided[..undecided.find("</table>").unwrap()];
    assert!(
        undecided.contains("reste à définir") || undecided.contains("non décidé"),
        "reasons in French: {undecided}"
    );

    // English through the locale switch, English number format.
    let english = page(&app, "/inventory?lang=en", &steward)
        .await
        .text()
        .await
        .unwrap();
    assert!(english.contains("<h1>Data inventory</h1>"));
    let first = &inventory["by"]["access"][0];
    let shown = &rows(&english, "access-table")[0];
    assert_eq!(shown.2, format!("{}%", first["percent"].as_f64().unwrap()));

    // The register through the session: what the API gives with French headers.
    let csv = page(&app, "/inventory/register.csv", &steward).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.bytes().await.unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "a BOM for spreadsheets");
    let api_csv = app
        .get_as("/api/v1/inventory?format=csv&lang=fr", &token)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(csv, api_csv);

    // Audited as the API call: inventory:read, allowed or refused.
    let events = app.audit_events("action=inventory:read&limit=100").await;
    assert!(events.iter().any(|event| event["path"] == "/inventory"
        && event["subject"] == "gestionnaire.leroy"
        && event["decision"] == "allow"
        && event["status"] == 200));
    assert!(events.iter().any(|event| event["path"] == "/inventory"
        && event["subject"] == "agent.dupont"
        && event["decision"] == "deny"
        && event["status"] == 403));
    assert!(events.iter().any(|event| event["path"] == "/inventory"
        && event["subject"].is_null()
        && event["decision"] == "deny"
        && event["status"] == 401));
    assert!(events.iter().any(|event| event["path"] == "/inventory/register.csv"
        && event["decision"] == "allow"));
}

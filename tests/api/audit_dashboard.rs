//! The auditors' dashboard `/audit` on both stores: who may see it, the
//! figures it shows for accesses just made (per day, refusals, personal
//! data by purpose, exports, top subjects), the event table's filters,
//! paging and CSV download, and the verification form with its CSRF token.

use reqwest::header;

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

test_both_stores!(dashboard);

async fn dashboard(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    // Accesses to count: open reads, a refusal, a personal-data read with a
    // purpose, a finished export.
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/v1/data/qualite-air-stations?limit=2")
                .await
                .status(),
            200
        );
    }
    let refused = app
        .get("/api/v1/data/infractions-videoprotection?limit=1")
        .await;
    assert!(refused.status().is_client_error());
    let token = app
        .token("assistante.sociale", &["service-social"], Some("CCAS"))
        .await;
    let personal = app
        .client
        .get(app.url("/api/v1/data/menages-precarite-energetique?limit=3"))
        .bearer_auth(&token)
        .header("X-Purpose", "accompagnement social")
        .send()
        .await
        .unwrap();
    assert_eq!(personal.status(), 200);
    let export = app
        .get("/api/v1/data/qualite-air-stations?format=csv")
        .await;
    assert_eq!(export.status(), 200);
    let exported_rows = export.text().await.unwrap().trim().lines().count() - 1;

    // Who may see it: nobody anonymous, no agent; an auditor.
    assert_eq!(app.get("/audit").await.status(), 401);
    let agent = sign_in(&app, "agent.dupont").await;
    let forbidden = page(&app, "/audit", &agent).await;
    assert_eq!(forbidden.status(), 403);
    assert!(!forbidden.text().await.unwrap().contains("per-day-table"));
    let auditor = sign_in(&app, "auditrice.martin").await;
    // The export's rows and bytes arrive with its completion event.
    let mut html = String::new();
    for _ in 0..50 {
        html = page(&app, "/audit", &auditor).await.text().await.unwrap();
        if html.contains("<tr><td>qualite-air-stations</td><td class=\"number\">1</td>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let export_row = format!(
        "<tr><td>qualite-air-stations</td><td class=\"number\">1</td><td class=\"number\">{}</td>",
        passerelle::web::display::integer(exported_rows as i64, passerelle::web::locale::Lang::Fr)
    );
    assert!(html.contains(&export_row), "{export_row} in {html}");
    assert!(
        html.contains(
            "<tr><td>menages-precarite-energetique</td><td>accompagnement social</td>\
             <td class=\"number\">1</td><td class=\"number\">3</td></tr>"
        ),
        "personal data by purpose"
    );
    assert!(html.contains("<td>assistante.sociale</td>"), "top subjects");
    assert!(html.contains("<svg viewBox=\"0 0 720 220\""), "the chart");
    // Today's row: allowed and refused, as the API's statistics count them.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let start = html
        .find(&format!("<tr><th scope=\"row\">{today}</th>"))
        .expect("today's row");
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    let figures: Vec<i64> = row
        .split("<td class=\"number\">")
        .skip(1)
        .map(|cell| {
            cell.split('<')
                .next()
                .unwrap()
                .replace('\u{202F}', "")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(figures[0] >= 6 && figures[1] >= 2, "{figures:?}");
    // The dashboard's views are audit:read events of the auditor.
    let events = app.audit_events("subject=auditrice.martin&limit=100").await;
    assert!(events.iter().any(|event| event["path"] == "/audit"
        && event["action"] == "audit:read"
        && event["decision"] == "allow"));

    // The event table: filters, paging, CSV.
    let denied = page(&app, "/audit?decision=deny", &auditor)
        .await
        .text()
        .await
        .unwrap();
    let table = &denied[denied.find("id=\"events-table\"").unwrap()..];
    assert!(table.contains("<td>deny</td>") && !table.contains("<td>allow</td>"));
    let paged = page(&app, "/audit?limit=2", &auditor)
        .await
        .text()
        .await
        .unwrap();
    assert!(paged.contains("rel=\"next\""), "a cursor to older events");
    assert!(paged.contains("cursor="));
    let bad = page(&app, "/audit?decision=maybe", &auditor).await;
    assert_eq!(bad.status(), 400);
    let csv = page(
        &app,
        "/audit/events.csv?dataset=menages-precarite-energetique",
        &auditor,
    )
    .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("seq,kind,"));
    assert_eq!(csv.trim().lines().count(), 2, "{csv}");
    assert!(csv.contains("accompagnement social"));

    // Verify now: with the session's CSRF token only.
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[start..start + 64].to_owned();
    let verify = |csrf: String| {
        app.client
            .post(app.url("/audit/verify"))
            .header(header::COOKIE, format!("passerelle_session={auditor}"))
            .form(&[("csrf", csrf)])
            .send()
    };
    assert_eq!(verify("0".repeat(64)).await.unwrap().status(), 403);
    let verified = verify(csrf).await.unwrap();
    assert_eq!(verified.status(), 200);
    assert!(verified.text().await.unwrap().contains("Chaîne intacte"));
    let after = page(&app, "/audit", &auditor).await.text().await.unwrap();
    assert!(
        after.contains("chain verified: ok"),
        "the last verification is shown"
    );
}

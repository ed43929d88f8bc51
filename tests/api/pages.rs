//! The pages for people (`/`, `/datasets`, `/datasets/{id}`, `/assets/…`):
//! what a visitor's browser receives, and what the audit log records.

use serde_json::Value;

use crate::helpers::{TestApp, repository_path};
use crate::on_both_stores;
use passerelle::web::display::FRENCH_GROUP_SEPARATOR;

/// Fetches a page: its status, headers and HTML.
async fn page(
    app: &TestApp,
    path: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let response = app.get(path).await;
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("page body"))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// The text of HTML as the template escaped it (askama writes numeric
/// references), back to plain text.
fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

/// The body cells of the preview table, row by row.
fn preview_rows(html: &str) -> Vec<Vec<String>> {
    let Some(start) = html.find("<table id=\"preview-table\">") else {
        return Vec::new();
    };
    let table = &html[start..];
    let body = &table
        [table.find("<tbody>").expect("tbody")..table.find("</tbody>").expect("end of tbody")];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').expect("cell") + 1
                        ..cell.find("</td>").expect("end of cell")];
                    unescape(text)
                })
                .collect()
        })
        .collect()
}

/// A JSON value of the API as the page writes it in French.
fn french(value: &Value) -> String {
    use passerelle::web::display;
    use passerelle::web::locale::Lang;
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "oui".to_owned(),
        Value::Bool(false) => "non".to_owned(),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => display::integer(integer, Lang::Fr),
            None => display::number(number.as_f64().expect("number"), Lang::Fr),
        },
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

on_both_stores! {
    /// The home page and the catalogue: HTML in French, landmarks, the open
    /// count, themes, and only the entries an anonymous visitor may know of.
    async fn home_and_catalogue_in_french(app: TestApp) {
        let (status, headers, html) = page(&app, "/").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert!(html.contains("<html lang=\"fr\">"), "French by default");
        for landmark in ["<header", "<nav", "<main id=\"contenu\"", "<footer", "class=\"skip-link\" href=\"#contenu\""] {
            assert!(html.contains(landmark), "home lacks {landmark}");
        }
        assert_eq!(html.matches("<h1").count(), 1, "one h1");
        assert!(html.contains("<label for=\"q\">"), "search box labelled");
        let catalogue: Value = app.get("/api/v1/datasets?page_size=100").await.json().await.unwrap();
        let entries = catalogue["datasets"].as_array().unwrap();
        let open = entries.iter().filter(|entry| entry["access"] == "open").count();
        assert!(html.contains(&format!("<span class=\"figure\">{open}</span>")), "open count {open}");
        assert!(html.contains("href=\"/datasets?theme=Culture\""), "themes link to the catalogue");

        let (status, _, html) = page(&app, "/datasets").await;
        assert_eq!(status, 200);
        for entry in entries {
            let link = format!("href=\"/datasets/{}\"", entry["id"].as_str().unwrap());
            assert!(html.contains(&link), "catalogue lists {link}");
        }
        assert!(!html.contains("badges-stationnement-residents"), "restricted metadata stays hidden");
        assert!(html.contains("badge-open"), "access badges");

        let (_, _, html) = page(&app, "/datasets?access=open").await;
        assert!(html.contains("href=\"/datasets/qualite-air-stations\""));
        assert!(!html.contains("href=\"/datasets/locations-velos\""), "the facet narrows");
        let (_, _, html) = page(&app, "/datasets?q=musee").await;
        assert!(html.contains("href=\"/datasets/frequentation-musees\""));
        assert!(!html.contains("href=\"/datasets/qualite-air-stations\""), "the search narrows");

        let (status, headers, html) = page(&app, "/datasets?access=secret").await;
        assert_eq!(status, 400);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert!(html.contains("access `secret`"), "the page names the bad parameter");
        let (status, _, _) = page(&app, "/datasets?page=0").await;
        assert_eq!(status, 400);
    }
}

on_both_stores! {
    /// English by `?lang=en` (kept in links) or by `Accept-Language`.
    async fn english_on_request(app: TestApp) {
        let (_, _, html) = page(&app, "/datasets?lang=en").await;
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("Data catalogue"));
        let docs = app.get("/docs/").await;
        assert_eq!(docs.status(), 200, "the header's API documentation link works");
        assert!(html.contains("href=\"/datasets/qualite-air-stations?lang=en\""), "links keep the language");
        let response = app.client.get(app.url("/")).header("accept-language", "en-GB,en;q=0.9").send().await.unwrap();
        assert_eq!(response.headers()["vary"], "Accept-Language");
        assert!(response.text().await.unwrap().contains("<html lang=\"en\">"));
    }
}

on_both_stores! {
    /// The stylesheet and script are served from the binary under a content
    /// hash, cacheable for a year; any other name is a 404.
    async fn assets_are_immutable(app: TestApp) {
        let (_, _, html) = page(&app, "/").await;
        for (prefix, content_type) in [("/assets/style.", "text/css; charset=utf-8"), ("/assets/copy.", "text/javascript; charset=utf-8")] {
            let start = html.find(prefix).unwrap_or_else(|| panic!("page links {prefix}"));
            let path = &html[start..start + html[start..].find('"').unwrap()];
            let response = app.get(path).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
            assert_eq!(response.headers()["content-type"], content_type);
            assert!(!response.bytes().await.unwrap().is_empty());
        }
        assert_eq!(app.get("/assets/style.0000000000000000.css").await.status(), 404);
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing loaded from elsewhere");
    }
}

on_both_stores! {
    /// An open dataset's page: metadata, schema, the preview with the API's
    /// rows for the same query, numbers written the French way, downloads,
    /// API snippets; the audit event is the API read's, with its rows.
    async fn open_dataset_page_shows_the_api_rows(app: TestApp) {
        let query = "polluant=eq.no2&order=concentration_ugm3.desc";
        let response = app.get(&format!("/datasets/qualite-air-stations?{query}")).await;
        assert_eq!(response.status(), 200);
        let event = app.audit_event_of(&response).await;
        let html = response.text().await.unwrap();
        let shown = preview_rows(&html);
        let api: Vec<Value> = app
            .get(&format!("/api/v1/data/qualite-air-stations?{query}&limit=20"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown.len(), api.len());
        assert!(!shown.is_empty());
        let columns = ["station", "commune", "position", "date", "polluant", "concentration_ugm3"];
        for (cells, row) in shown.iter().zip(&api) {
            let expected: Vec<String> = columns.iter().map(|column| french(&row[column])).collect();
            assert_eq!(cells, &expected);
        }
        assert_eq!(event["action"], "read");
        assert_eq!(event["decision"], "allow");
        assert_eq!(event["dataset"], "qualite-air-stations");
        assert_eq!(event["rows"], shown.len() as i64);
        assert_eq!(event["path"], "/datasets/qualite-air-stations");
        assert!(html.contains("aria-sort=\"descending\""), "the sorted column says so");
        assert!(html.contains("/api/v1/data/qualite-air-stations?polluant=eq.no2&#38;order=concentration_ugm3.desc&#38;format=csv&#38;csv_sep=semicolon&#38;bom=true"));
        assert!(html.contains("format=geojson"), "a geographic dataset offers GeoJSON");
        assert!(html.contains("curl"));
        assert!(html.contains("PostgrestClient"));

        // French numbers: grouped thousands, decimal comma.
        let (_, _, html) = page(&app, "/datasets/consommations-energie-batiments?order=id.asc").await;
        assert!(html.contains(&format!("378{FRENCH_GROUP_SEPARATOR}255,6")), "conso_kwh in French");
        assert!(html.contains(&format!("<td class=\"number\">5{FRENCH_GROUP_SEPARATOR}920</td>")));

        // The next page of rows.
        let (_, _, html) = page(&app, "/datasets/consommations-energie-batiments?order=id.asc&offset=20").await;
        let rows = preview_rows(&html);
        assert_eq!(rows[0][0], "21");
        assert!(html.contains("rel=\"prev\""));
    }
}

on_both_stores! {
    /// The filter form redirects to the grammar; a bad query is a 400 page
    /// and a refusal in the audit log; an unknown dataset a 404 page.
    async fn preview_query_in_the_grammar(app: TestApp) {
        let response = app
            .get("/datasets/qualite-air-stations?order=date.asc&filter_column=polluant&filter_operator=eq&filter_value=pm10")
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/datasets/qualite-air-stations?order=date.asc&polluant=eq.pm10");
        let (_, _, html) = page(&app, "/datasets/qualite-air-stations?order=date.asc&polluant=eq.pm10").await;
        let rows = preview_rows(&html);
        assert!(!rows.is_empty() && rows.iter().all(|row| row[4] == "pm10"));
        assert!(html.contains("polluant=eq.pm10</code>"), "the active filter is listed");

        let response = app.get("/datasets/qualite-air-stations?order=nope.asc").await;
        assert_eq!(response.status(), 400);
        let event = app.audit_event_of(&response).await;
        assert_eq!(event["decision"], "deny");
        let html = response.text().await.unwrap();
        assert!(html.contains("nope"), "the page says what is wrong");
        assert!(preview_rows(&html).is_empty());

        let (status, headers, html) = page(&app, "/datasets/nope").await;
        assert_eq!(status, 404);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert!(html.contains("<html lang=\"fr\">"));
        let (hidden, _, _) = page(&app, "/datasets/badges-stationnement-residents").await;
        assert_eq!(hidden, 404, "restricted metadata: the same 404");
        let response = app.get("/datasets/qualite-air-stations?filter_column=secret&filter_operator=eq&filter_value=1").await;
        assert_eq!(response.status(), 400);
    }
}

/// The cells of a catalogue CSV that would betray its rows if shown:
/// at least 6 characters, absent from the dataset's own definition.
fn revealing_values(id: &str) -> Vec<String> {
    let definition = std::fs::read_to_string(repository_path(&format!("catalog/{id}.yaml")))
        .or_else(|_| std::fs::read_to_string(repository_path(&format!("catalog/{id}.toml"))))
        .expect("definition");
    let bytes = std::fs::read(repository_path(&format!("catalog/{id}.csv"))).expect("CSV");
    let text = String::from_utf8_lossy(&bytes);
    let header = text.lines().next().unwrap_or("");
    let delimiter = if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut values: Vec<String> = reader
        .records()
        .filter_map(Result::ok)
        .flat_map(|record| record.iter().map(str::to_owned).collect::<Vec<_>>())
        .filter(|value| {
            value.chars().count() >= 6
                && !value.contains('\u{FFFD}')
                && !definition.contains(value.as_str())
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

on_both_stores! {
    /// A closed dataset's page, for an anonymous visitor: it says what access
    /// requires, lists only public columns, and holds no row value, no
    /// download or API link, no preview; the audit event is a metadata view.
    async fn closed_dataset_pages_show_no_data(app: TestApp) {
        let catalogue: Value = app.get("/api/v1/datasets?page_size=100").await.json().await.unwrap();
        let closed: Vec<&Value> = catalogue["datasets"].as_array().unwrap().iter().filter(|entry| entry["can_read"] == false).collect();
        assert!(closed.len() >= 3, "the demo catalogue has closed datasets");
        for entry in closed {
            let id = entry["id"].as_str().unwrap();
            let response = app.get(&format!("/datasets/{id}")).await;
            assert_eq!(response.status(), 200, "{id}");
            let event = app.audit_event_of(&response).await;
            assert_eq!(event["action"], "metadata", "{id}");
            assert!(event["rows"].is_null(), "{id}");
            let html = response.text().await.unwrap();
            assert!(html.contains("class=\"notice\""), "{id}: the page says what access requires");
            assert!(!html.contains("preview-table"), "{id}: no preview");
            assert!(!html.contains(&format!("/api/v1/data/{id}")), "{id}: no download or API link");
            let visible: Vec<&str> = entry["schema"]["fields"].as_array().unwrap().iter().map(|field| field["name"].as_str().unwrap()).collect();
            let listed = html.matches("<th scope=\"row\"><code>").count();
            assert_eq!(listed, visible.len(), "{id}: only the public columns");
            let values = revealing_values(id);
            assert!(values.len() >= 10, "{id}: the check has row values to look for");
            for value in values {
                assert!(!html.contains(&value), "{id}: the page shows the row value {value:?}");
            }
        }
        // The personal columns of confidential data are not even named.
        let (_, _, html) = page(&app, "/datasets/menages-precarite-energetique").await;
        assert!(!html.contains("<code>nom</code>") && !html.contains("<code>adresse</code>"));
        assert!(!html.contains("Démo-001"));
    }
}

on_both_stores! {
    /// A geographic dataset's page draws its preview rows on an SVG map (one
    /// point per row with a geometry, labelled); the map follows the preview's
    /// filter, and a page without rows (closed dataset) has no map.
    async fn maps_of_geographic_datasets(app: TestApp) {
        let (status, _, html) = page(&app, "/datasets/qualite-air-stations").await;
        assert_eq!(status, 200);
        assert!(html.contains("<title id=\"map-title\">"), "a map");
        let points = html.matches("<circle class=\"map-point\"").count();
        let rows = html.matches("<tr>").count() - 1;
        assert!(points > 0 && points <= 20, "{points} points for {rows} table rows");
        let (status, _, filtered) = page(&app, "/datasets/qualite-air-stations?polluant=eq.nope").await;
        assert_eq!(status, 200);
        assert!(!filtered.contains("map-point"), "no row, no point");
        let (_, _, closed) = page(&app, "/datasets/menages-precarite-energetique").await;
        assert!(!closed.contains("<svg"), "no map without rows");
        let (_, _, plain) = page(&app, "/datasets/frequentation-musees").await;
        assert!(!plain.contains("map-title"), "no geometry, no map");
    }
}

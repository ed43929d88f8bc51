//! CSV, NDJSON and GeoJSON, by Accept or ?format=.

use serde_json::Value;

use crate::on_both_stores;

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";

on_both_stores! {
    /// CSV: header row, filename, separator and BOM options, header even when empty.
    async fn csv(app: TestApp) {
        let response = app.client.get(app.url(&format!("{CONSO}?select=id,commune&order=id&limit=2"))).header("Accept", "text/csv").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert!(response.headers()["content-disposition"].to_str().unwrap().contains("consommations-energie-batiments.csv"));
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id,commune");
        assert_eq!(lines.len(), 3);
        let text = app.get(&format!("{CONSO}?select=id,commune&limit=1&format=csv&csv_sep=semicolon&bom=true")).await.text().await.unwrap();
        assert!(text.starts_with("\u{feff}id;commune\r\n"), "{text:?}");
        let text = app.get(&format!("{CONSO}?select=id&commune=eq.Nowhere&format=csv")).await.text().await.unwrap();
        assert_eq!(text, "id\r\n");
    }
}

on_both_stores! {
    /// NDJSON: one object a line, same rows as JSON.
    async fn ndjson(app: TestApp) {
        let json: Vec<Value> = app.get(&format!("{CONSO}?select=id,commune&order=id&limit=4")).await.json().await.unwrap();
        let text = app.get(&format!("{CONSO}?select=id,commune&order=id&limit=4&format=ndjson")).await.text().await.unwrap();
        let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines, json);
    }
}

on_both_stores! {
    /// GeoJSON from lat/lon columns, a geopoint column and a GeoJSON source.
    async fn geojson(app: TestApp) {
        for dataset in ["consommations-energie-batiments", "qualite-air-stations", "releves-piezometriques"] {
            let response = app.client.get(app.url(&format!("/api/v1/data/{dataset}?limit=3"))).header("Accept", "application/geo+json").send().await.unwrap();
            assert_eq!(response.status(), 200, "{dataset}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "FeatureCollection");
            let features = body["features"].as_array().unwrap();
            assert_eq!(features.len(), 3, "{dataset}");
            let coordinates = features[0]["geometry"]["coordinates"].as_array().unwrap();
            let (lon, lat) = (coordinates[0].as_f64().unwrap(), coordinates[1].as_f64().unwrap());
            assert!((3.0..5.0).contains(&lon) && (47.0..49.5).contains(&lat), "{dataset}: Aube is at lon 4, lat 48");
        }
    }
}

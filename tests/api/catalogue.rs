//! `GET /api/v1/datasets` and `GET /api/v1/datasets/{id}`.

use serde_json::Value;

use crate::helpers::problem;
use crate::on_both_stores;

on_both_stores! {
    /// Anonymous callers see public entries only, each saying whether its rows are readable.
    async fn anonymous_listing(app: TestApp) {
        let response = app.get("/api/v1/datasets?page_size=100").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let datasets = body["datasets"].as_array().unwrap();
        let ids: Vec<&str> = datasets.iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"consommations-energie-batiments"));
        assert!(ids.contains(&"locations-velos"), "partners metadata is public");
        assert!(!ids.contains(&"badges-stationnement-residents"), "restricted metadata is hidden");
        assert_eq!(body["total"].as_u64().unwrap() as usize, datasets.len());
        for dataset in datasets {
            let expected = dataset["access"] == "open";
            assert_eq!(dataset["can_read"], expected, "{}", dataset["id"]);
            for member in ["title", "description", "theme", "keywords", "publisher", "licence", "metadata_visibility",
                           "update_frequency", "personal_data", "last_updated", "record_count", "schema", "view"] {
                assert!(dataset.get(member).is_some(), "{} lacks {member}", dataset["id"]);
            }
        }
    }
}

on_both_stores! {
    /// Filters and paging narrow the listing; the total counts every match.
    async fn listing_filters_and_pages(app: TestApp) {
        let body: Value = app.get("/api/v1/datasets?access=open&page_size=2&page=1").await.json().await.unwrap();
        assert_eq!(body["page_size"], 2);
        assert!(body["datasets"].as_array().unwrap().len() <= 2);
        assert!(body["total"].as_u64().unwrap() >= 3);
        assert!(body["datasets"].as_array().unwrap().iter().all(|d| d["access"] == "open"));
        let body: Value = app.get("/api/v1/datasets?q=musee").await.json().await.unwrap();
        assert!(body["datasets"].as_array().unwrap().iter().any(|d| d["id"] == "frequentation-musees"));
        problem(app.get("/api/v1/datasets?page=0").await, 400).await;
        problem(app.get("/api/v1/datasets?access=secret").await, 400).await;
    }
}

on_both_stores! {
    /// One entry: schema and counts; unknown and hidden datasets are the same 404.
    async fn show_entry(app: TestApp) {
        let body: Value = app.get("/api/v1/datasets/consommations-energie-batiments").await.json().await.unwrap();
        assert!(body["record_count"].as_i64().unwrap() > 0);
        let fields = body["schema"]["fields"].as_array().unwrap();
        assert!(fields.iter().any(|f| f["name"] == "commune"));
        let unknown = problem(app.get("/api/v1/datasets/nope").await, 404).await;
        let hidden = problem(app.get("/api/v1/datasets/badges-stationnement-residents").await, 404).await;
        assert_eq!(unknown["type"], hidden["type"]);
        assert_eq!(unknown["title"], hidden["title"]);
    }
}

on_both_stores! {
    /// Metadata of confidential data never lists its personal columns to outsiders.
    async fn schema_hides_personal_columns(app: TestApp) {
        let body: Value = app.get("/api/v1/datasets/menages-precarite-energetique").await.json().await.unwrap();
        assert_eq!(body["can_read"], false);
        let names: Vec<&str> = body["schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert!(!names.contains(&"nom_foyer"), "{names:?}");
        assert!(names.contains(&"commune"));
    }
}

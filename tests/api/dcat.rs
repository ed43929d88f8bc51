//! DCAT-AP for the national and regional portals: negotiation and paging
//! here; the three serialisations parsed by rdflib and checked with SPARQL
//! by `tests/clients/dcat_rdflib.py` (installed by `.ci/run`; skipped
//! elsewhere when rdflib is missing).

use serde_json::Value;

use crate::helpers::problem;
use crate::on_both_stores;

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";

on_both_stores! {
    /// JSON-LD by default, Turtle and RDF/XML by `Accept` or `?format=`;
    /// restricted metadata never listed; closed data has no download URL;
    /// bad parameters are 400, an unserved `Accept` 406.
    async fn dcat_catalogue(app: TestApp) {
        let response = app.get("/api/v1/catalog/dcat").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/ld+json; charset=utf-8");
        let event = app.audit_event_of(&response).await;
        assert_eq!(event["decision"], "allow");
        let nodes: Vec<Value> = response.json().await.unwrap();
        let datasets: Vec<&Value> = nodes.iter()
            .filter(|node| node["@type"].as_array().is_some_and(|types| types.iter().any(|t| t == &format!("{DCAT}Dataset"))))
            .collect();
        let ids: Vec<&str> = datasets.iter().map(|node| node[format!("{DCT}identifier")][0]["@value"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 9, "{ids:?}");
        assert!(!ids.contains(&"badges-stationnement-residents"), "restricted metadata is never listed");
        let text = serde_json::to_string(&nodes).unwrap();
        assert!(text.contains("/api/v1/data/frequentation-musees?format=csv"));
        for closed in ["menages-precarite-energetique", "locations-velos", "projets-amenagement"] {
            assert!(!text.contains(&format!("/api/v1/data/{closed}")), "{closed} has no download URL");
        }
        assert!(text.contains("access-right/RESTRICTED") && text.contains("access-right/PUBLIC"));
        for (accept, content_type, marker) in [
            ("text/turtle", "text/turtle; charset=utf-8", "a <http://www.w3.org/ns/dcat#Catalog>"),
            ("application/rdf+xml", "application/rdf+xml; charset=utf-8", "<rdf:RDF"),
        ] {
            let response = app.client.get(app.url("/api/v1/catalog/dcat")).header("Accept", accept).send().await.unwrap();
            assert_eq!(response.headers()["content-type"], content_type);
            assert!(response.text().await.unwrap().contains(marker), "{accept}");
        }
        let turtle = app.get("/api/v1/catalog/dcat?format=turtle&page_size=4&page=2").await.text().await.unwrap();
        assert!(turtle.contains("page=3&page_size=4&format=turtle"), "next page keeps the format: {turtle}");
        assert!(turtle.contains("hydra:totalItems") || turtle.contains("hydra/core#totalItems"), "{turtle}");
        for bad in ["format=pdf", "page=0", "page_size=5000", "colour=red"] {
            problem(app.get(&format!("/api/v1/catalog/dcat?{bad}")).await, 400).await;
        }
        let refused = app.client.get(app.url("/api/v1/catalog/dcat")).header("Accept", "text/csv").send().await.unwrap();
        problem(refused, 406).await;
        if crate::helpers::python_module_available("rdflib", "rdflib") {
            let script = crate::helpers::repository_path("tests/clients/dcat_rdflib.py");
            let output = tokio::process::Command::new("python3").arg(script).arg(&app.address).output().await.expect("python3 runs");
            assert!(
                output.status.success(),
                "rdflib harvest failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

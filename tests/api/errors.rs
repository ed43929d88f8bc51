//! Bad input: every mistake is a 400 problem document naming the offending
//! part, with PostgREST's members; nothing reaches SQL as text.

use crate::helpers::problem;
use crate::on_both_stores;

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";

on_both_stores! {
    /// Table of malformed queries: status, problem type, and the named culprit.
    async fn malformed_queries(app: TestApp) {
        let cases = [
            ("nope=eq.1", "/problems/unknown-column", "nope"),
            ("select=id,nope", "/problems/unknown-column", "nope"),
            ("order=nope.desc", "/problems/unknown-column", "nope"),
            ("or=(nope.eq.1,id.eq.2)", "/problems/unknown-column", "nope"),
            ("select=nope.sum()", "/problems/unknown-column", "nope"),
            ("id=zz.1", "/problems/invalid-query", "zz"),
            ("id=eq.abc", "/problems/invalid-value", "abc"),
            ("annee=gt.yesterday", "/problems/invalid-value", "yesterday"),
            ("or=(id.eq.1,id.eq.2", "/problems/invalid-query", "or"),
            ("limit=18446744073709551616", "/problems/invalid-query", "limit"),
            ("limit=-1", "/problems/invalid-query", "limit"),
            ("offset=-1", "/problems/invalid-query", "offset"),
            ("select=commune.sum()", "/problems/invalid-aggregate", "sum"),
            ("commune=eq.x'); DROP TABLE datasets; --", "", ""),
        ];
        for (query, kind, culprit) in cases {
            let response = app.get(&format!("{CONSO}?{query}")).await;
            if kind.is_empty() {
                // An injection attempt is just a value: no row matches, nothing breaks.
                assert_eq!(response.status(), 200, "{query}");
                continue;
            }
            let body = problem(response, 400).await;
            assert_eq!(body["type"], kind, "{query}: {body}");
            assert!(body["detail"].as_str().unwrap().contains(culprit), "{query}: {body}");
            assert!(body["code"].is_string(), "{query}: PostgREST code");
        }
        assert_eq!(app.get("/api/v1/datasets/consommations-energie-batiments").await.status(), 200);
    }
}

on_both_stores! {
    /// Nesting of or/and up to 16 levels is served; deeper is refused.
    async fn nesting_limit(app: TestApp) {
        let nest = |depth: usize| {
            let mut filter = "id.eq.1".to_owned();
            for _ in 1..depth {
                filter = format!("or(id.eq.2,{filter})");
            }
            format!("{CONSO}?or=({filter})")
        };
        assert_eq!(app.get(&nest(15)).await.status(), 200);
        let body = problem(app.get(&nest(30)).await, 400).await;
        assert_eq!(body["type"], "/problems/invalid-query");
        assert!(body["detail"].as_str().unwrap().contains("16"), "{body}");
    }
}

on_both_stores! {
    /// Unknown datasets, paths and methods are problem documents too.
    async fn unknown_resources(app: TestApp) {
        problem(app.get("/api/v1/data/nope").await, 404).await;
        problem(app.get("/api/v1/nothing-here").await, 404).await;
        let response = app.client.post(app.url(CONSO)).body("{}").send().await.unwrap();
        problem(response, 405).await;
        let response = app.client.get(app.url(CONSO)).header("Accept", "image/png").send().await.unwrap();
        problem(response, 406).await;
        problem(app.get("/api/v1/data/frequentation-musees?format=geojson").await, 406).await;
    }
}

on_both_stores! {
    /// An unknown `?format=` is a 400 naming it and the known ones (a
    /// mistake in the query); an `Accept` nothing matches stays 406.
    async fn unknown_format_parameter(app: TestApp) {
        let body = problem(app.get(&format!("{CONSO}?format=xml")).await, 400).await;
        assert_eq!(body["type"], "/problems/invalid-parameter");
        let detail = body["detail"].as_str().unwrap();
        for name in ["`xml`", "json", "csv", "ndjson", "geojson"] {
            assert!(detail.contains(name), "{detail}");
        }
        let response = app.client.get(app.url(CONSO)).header("Accept", "application/xml").send().await.unwrap();
        problem(response, 406).await;
        assert_eq!(app.get(&format!("{CONSO}?format=csv&limit=1")).await.status(), 200);
    }
}

on_both_stores! {
    /// The client's request id is echoed and used in problems; a bad one is replaced.
    async fn request_ids(app: TestApp) {
        let response = app.client.get(app.url(&format!("{CONSO}?nope=eq.1"))).header("X-Request-Id", "client-42").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "client-42");
        let body = problem(response, 400).await;
        assert_eq!(body["request_id"], "client-42");
        let response = app.client.get(app.url(CONSO)).header("X-Request-Id", "bad id <x>").send().await.unwrap();
        assert_ne!(response.headers()["x-request-id"], "bad id <x>");
    }
}

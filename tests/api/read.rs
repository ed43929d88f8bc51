//! The PostgREST read grammar on `GET /api/v1/data/{id}`.

use serde_json::Value;

use crate::on_both_stores;

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";

async fn rows(app: &crate::helpers::TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("{CONSO}?{query}")).await;
    assert!(
        response.status().is_success(),
        "{query}: {}",
        response.status()
    );
    response.json::<Vec<Value>>().await.unwrap()
}

on_both_stores! {
    /// select, eq, order and limit return exactly what was asked, with Content-Range.
    async fn select_filter_order_limit(app: TestApp) {
        let response = app.get(&format!("{CONSO}?select=id,commune,conso_kwh&commune=eq.Troyes&conso_kwh=not.is.null&order=conso_kwh.desc,id&limit=5")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-range"], "0-4/*");
        assert!(response.headers().get("x-request-id").is_some());
        let body: Vec<Value> = response.json().await.unwrap();
        assert_eq!(body.len(), 5);
        for row in &body {
            assert_eq!(row.as_object().unwrap().len(), 3);
            assert_eq!(row["commune"], "Troyes");
        }
        let consumption: Vec<f64> = body.iter().map(|r| r["conso_kwh"].as_f64().unwrap()).collect();
        assert!(consumption.windows(2).all(|w| w[0] >= w[1]), "{consumption:?}");
    }
}

on_both_stores! {
    /// Prefer: count=exact gives the total, 206 when partial, 416 past the end, */0 when empty.
    async fn counts_and_ranges(app: TestApp) {
        let all = rows(&app, "select=id").await;
        let total = all.len();
        let response = app.client.get(app.url(&format!("{CONSO}?select=id&limit=3&offset=2"))).header("Prefer", "count=exact").send().await.unwrap();
        assert_eq!(response.status(), 206);
        assert_eq!(response.headers()["content-range"], format!("2-4/{total}").as_str());
        assert_eq!(response.headers()["preference-applied"], "count=exact");
        let response = app.client.get(app.url(&format!("{CONSO}?select=id&offset={}", total + 5))).header("Prefer", "count=exact").send().await.unwrap();
        assert_eq!(response.status(), 416);
        assert_eq!(response.headers()["content-range"], format!("*/{total}").as_str());
        let response = app.client.get(app.url(&format!("{CONSO}?commune=eq.Nowhere"))).header("Prefer", "count=exact").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-range"], "*/0");
        let response = app.get(&format!("{CONSO}?commune=eq.Nowhere")).await;
        assert_eq!(response.headers()["content-range"], "*/*");
        assert_eq!(response.text().await.unwrap(), "[]");
        let response = app.client.get(app.url(&format!("{CONSO}?select=id&order=id"))).header("Range", "0-9").send().await.unwrap();
        assert_eq!(response.headers()["content-range"], "0-9/*");
        assert_eq!(response.json::<Vec<Value>>().await.unwrap().len(), 10);
        let response = app.client.get(app.url(&format!("{CONSO}?select=id&commune=eq.Troyes"))).header("Prefer", "count=planned").send().await.unwrap();
        assert!(response.status().is_success());
        assert_eq!(response.headers()["preference-applied"], "count=planned");
    }
}

on_both_stores! {
    /// HEAD answers the same headers as GET, without a body.
    async fn head_has_headers_only(app: TestApp) {
        let response = app.client.head(app.url(&format!("{CONSO}?limit=2"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-range"], "0-1/*");
        assert!(response.bytes().await.unwrap().is_empty());
    }
}

on_both_stores! {
    /// in, or/and nesting, not., like/ilike with *, is.null, and URLSearchParams encoding.
    async fn operators(app: TestApp) {
        let troyes_or_romilly = rows(&app, "commune=in.(Troyes,Romilly-sur-Seine)&select=commune").await;
        assert!(!troyes_or_romilly.is_empty());
        assert!(troyes_or_romilly.iter().all(|r| r["commune"] == "Troyes" || r["commune"] == "Romilly-sur-Seine"));
        let encoded = rows(&app, "commune=in.%28Troyes%2CRomilly-sur-Seine%29&select=commune").await;
        assert_eq!(encoded.len(), troyes_or_romilly.len());
        let either = rows(&app, "or=(commune.eq.Troyes,and(commune.eq.Sainte-Savine,conso_kwh.gt.0))&select=commune,conso_kwh").await;
        assert!(either.iter().all(|r| r["commune"] == "Troyes" || (r["commune"] == "Sainte-Savine" && r["conso_kwh"].as_f64().unwrap() > 0.0)));
        let not_troyes = rows(&app, "commune=not.eq.Troyes&select=commune").await;
        assert!(not_troyes.iter().all(|r| r["commune"] != "Troyes"));
        let all = rows(&app, "select=id").await;
        assert_eq!(not_troyes.len() + rows(&app, "commune=eq.Troyes&select=id").await.len(), all.len());
        let like = rows(&app, "commune=like.Sainte*&select=commune").await;
        assert!(!like.is_empty() && like.iter().all(|r| r["commune"].as_str().unwrap().starts_with("Sainte")));
        assert!(rows(&app, "commune=like.sainte*").await.is_empty(), "like is case-sensitive");
        assert_eq!(rows(&app, "commune=ilike.SAINTE*&select=commune").await.len(), like.len());
        let nulls = rows(&app, "conso_kwh=is.null&select=id").await;
        let not_nulls = rows(&app, "conso_kwh=not.is.null&select=id").await;
        assert_eq!(nulls.len() + not_nulls.len(), all.len());
        let spaced = rows(&app, "select=+id+,+commune+&limit=1").await;
        assert_eq!(spaced[0].as_object().unwrap().len(), 2);
        let quoted = rows(&app, "or=(commune.eq.\"Troyes\",commune.eq.\"a,b.(c):d\")&select=commune").await;
        assert!(quoted.iter().all(|r| r["commune"] == "Troyes"));
        let repeated = rows(&app, "id=gte.3&id=lte.5&select=id&order=id").await;
        assert_eq!(repeated.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 4, 5]);
    }
}

on_both_stores! {
    /// Aggregates group by the plain columns; keys are count/sum unless aliased.
    async fn aggregates(app: TestApp) {
        let groups = rows(&app, "select=commune,conso_kwh.sum(),count()&order=commune").await;
        assert!(groups.len() >= 2);
        let total: i64 = groups.iter().map(|g| g["count"].as_i64().unwrap()).sum();
        assert_eq!(total as usize, rows(&app, "select=id").await.len());
        assert!(groups.iter().all(|g| g.get("sum").is_some()));
        let aliased = rows(&app, "select=total:conso_kwh.sum(),n:count(),biggest:conso_kwh.max(),average:conso_kwh.avg()").await;
        assert_eq!(aliased.len(), 1);
        assert_eq!(aliased[0]["n"].as_i64().unwrap(), total);
        assert!(aliased[0]["average"].is_f64());
        let communes: Vec<&str> = groups.iter().map(|g| g["commune"].as_str().unwrap()).collect();
        let mut sorted = communes.clone();
        sorted.sort();
        assert_eq!(communes, sorted, "code-point order");
    }
}

on_both_stores! {
    /// Text sorts by code point on both stores; nulls go last ascending, first descending.
    async fn collation_and_nulls(app: TestApp) {
        let ascending = rows(&app, "select=batiment&order=batiment").await;
        let names: Vec<String> = ascending.iter().filter_map(|r| r["batiment"].as_str().map(str::to_owned)).collect();
        let mut by_code_point = names.clone();
        by_code_point.sort();
        assert_eq!(names, by_code_point);
        let descending = rows(&app, "select=conso_kwh&order=conso_kwh.desc").await;
        let nulls = descending.iter().filter(|r| r["conso_kwh"].is_null()).count();
        assert!(descending.iter().take(nulls).all(|r| r["conso_kwh"].is_null()));
        let last = rows(&app, "select=conso_kwh&order=conso_kwh.desc.nullslast").await;
        assert!(last.iter().rev().take(nulls).all(|r| r["conso_kwh"].is_null()));
    }
}

on_both_stores! {
    /// JSON pages carry a strong ETag; If-None-Match with it answers 304 without a body.
    async fn etag_and_not_modified(app: TestApp) {
        let response = app.get(&format!("{CONSO}?limit=3")).await;
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let again = app.client.get(app.url(&format!("{CONSO}?limit=3"))).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        assert!(again.bytes().await.unwrap().is_empty());
    }
}

/// The server's page cap applies to JSON and Content-Range tells the truth.
#[tokio::test]
async fn page_cap() {
    let app = crate::helpers::spawn_app_with(crate::helpers::StoreKind::Sqlite, |settings| {
        settings.server.max_page_size = 4
    })
    .await
    .unwrap();
    let response = app
        .client
        .get(app.url(&format!("{CONSO}?select=id")))
        .header("Prefer", "count=exact")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    let range = response.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(range.starts_with("0-3/"), "{range}");
    assert_eq!(response.json::<Vec<Value>>().await.unwrap().len(), 4);
    let csv = app
        .get(&format!("{CONSO}?select=id&format=csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.lines().count() > 5, "exports are not capped");
}

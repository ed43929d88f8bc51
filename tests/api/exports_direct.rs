//! Exports the store produces itself (SQLite rows stepped and encoded next
//! to the store; PostgreSQL `COPY`) give the bytes the gateway's row-by-row
//! encoders give, in every export format, and a value full of quotes,
//! backslashes, `$$`, `;`, line breaks and characters beyond ASCII comes
//! back intact in NDJSON and GeoJSON, on both stores.

use std::sync::Arc;

use futures::TryStreamExt;
use passerelle::format::{
    CsvEncoder, CsvOptions, GeoJsonEncoder, Geometry, NdjsonEncoder, RowEncoder,
};
use passerelle::store::Store;
use passerelle::store::datasets::DatasetRead;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use crate::test_both_stores;

const DATASET: &str = "valeurs-situees";

/// Quotes, backslashes, dollar quoting, separators, control characters,
/// line breaks and characters beyond ASCII.
const TRICKY: &str =
    "Il a dit \"non\"; c'est \\ fini $$ DROP TABLE x; $$ --\nsuite\r\t\\N \\\\. ½ 日本 🚀 'q' $1";

/// The dataset, with `extra` plain rows after the eight tricky ones.
fn catalog(extra: usize) -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("catalogue folder");
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let rows = [
        format!("1,{},1.5,true,48.3,4.07", quoted(TRICKY)),
        "2,simple,1e20,false,-0.5,1e-7".to_owned(),
        "3,,0.0000001,,,".to_owned(),
        "4,\"a,b\",-1.5e-7,true,45,5".to_owned(),
        "5,\\.,123456789012345678,false,0.1,0.2".to_owned(),
        "6,\"\"\"\",0.1,true,90,-180".to_owned(),
        "7,fin,2.5,,1,".to_owned(),
        "8,dernière,,true,12.345678901234567,100".to_owned(),
    ];
    let extra = (9..9 + extra).map(|id| {
        format!(
            "{id},ligne {id} {},{id}.25,true,{},{}",
            "x".repeat(id % 200),
            id % 90,
            id % 180
        )
    });
    let rows: Vec<String> = rows.into_iter().chain(extra).collect();
    std::fs::write(
        folder.path().join(format!("{DATASET}.csv")),
        format!("id,label,kwh,ok,lat,lon\n{}\n", rows.join("\n")),
    )
    .unwrap();
    std::fs::write(
        folder.path().join(format!("{DATASET}.yaml")),
        format!(
            "id: {DATASET}\ntitle: Valeurs situées\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
             source:\n  file: {DATASET}.csv\n  delimiter: \",\"\n\
             schema:\n  primaryKey: id\n  fields:\n    - {{name: id, type: integer, filterable: true}}\n    - {{name: label, type: string, filterable: true}}\n    - {{name: kwh, type: number, filterable: true}}\n    - {{name: ok, type: boolean, filterable: true}}\n    - {{name: lat, type: number}}\n    - {{name: lon, type: number}}\n\
             geometry:\n  lat: lat\n  lon: lon\n"
        ),
    )
    .unwrap();
    folder
}

async fn app(kind: StoreKind, folder: &tempfile::TempDir) -> Option<TestApp> {
    let path = folder.path().to_owned();
    spawn_app_with(kind, |settings| settings.catalog_dir = path).await
}

async fn export(app: &TestApp, format: &str, query: &str) -> Vec<u8> {
    let response = app
        .get(&format!("/api/v1/data/{DATASET}?format={format}&{query}"))
        .await;
    assert_eq!(response.status(), 200, "{format} {query}");
    response.bytes().await.expect("body").to_vec()
}

/// The tricky value comes back intact in NDJSON and GeoJSON, alone when
/// filtered on, and every row is there.
async fn tricky_values_survive_json_exports(kind: StoreKind) {
    let folder = catalog(0);
    let Some(app) = app(kind, &folder).await else {
        return;
    };
    let tricky = utf8_percent_encode(TRICKY, NON_ALPHANUMERIC).to_string();

    let lines = String::from_utf8(export(&app, "ndjson", "order=id").await).unwrap();
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    assert_eq!(rows.len(), 8, "{lines}");
    assert_eq!(rows[0]["label"], TRICKY);
    assert_eq!(rows[5]["label"], "\"");
    assert_eq!(rows[4]["label"], "\\.");
    assert_eq!(rows[2]["label"], serde_json::Value::Null);
    assert_eq!(rows[1]["kwh"], 1e20);

    let filtered = String::from_utf8(
        export(
            &app,
            "ndjson",
            &format!("label=eq.{tricky}&select=id,label"),
        )
        .await,
    )
    .unwrap();
    let only: Vec<serde_json::Value> = filtered
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    assert_eq!(only, [serde_json::json!({"id": 1, "label": TRICKY})]);

    let collection: serde_json::Value =
        serde_json::from_slice(&export(&app, "geojson", "order=id").await).expect("GeoJSON");
    let features = collection["features"].as_array().expect("features");
    assert_eq!(features.len(), 8);
    assert_eq!(features[0]["properties"]["label"], TRICKY);
    assert_eq!(
        features[0]["geometry"],
        serde_json::json!({"type": "Point", "coordinates": [4.07, 48.3]})
    );
    assert_eq!(features[2]["geometry"], serde_json::Value::Null);

    let filtered: serde_json::Value =
        serde_json::from_slice(&export(&app, "geojson", &format!("label=eq.{tricky}")).await)
            .expect("GeoJSON");
    let features = filtered["features"].as_array().expect("features");
    assert_eq!(features.len(), 1);
    assert_eq!(features[0]["properties"]["label"], TRICKY);
}

test_both_stores!(tricky_values_survive_json_exports);

/// The same queries give the same bytes on both stores, in every export format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_export_the_same_bytes() {
    let folder = catalog(0);
    let sqlite = app(StoreKind::Sqlite, &folder).await.expect("SQLite app");
    let Some(postgres) = app(StoreKind::Postgres, &folder).await else {
        return;
    };
    let tricky = utf8_percent_encode(TRICKY, NON_ALPHANUMERIC).to_string();
    let queries = [
        "order=id".to_owned(),
        format!("label=eq.{tricky}"),
        "or=(kwh.gt.1e10,ok.is.null,id.eq.1)&order=id".to_owned(),
        "select=label,kwh,lat,lon&order=kwh.desc.nullslast&limit=4&offset=1".to_owned(),
        "select=kwh,label,ok&label=like.*a*&order=id".to_owned(),
        "id=in.(1,3,5,7)&ok=not.is.true&order=id.desc".to_owned(),
        "label=eq.nothing-matches".to_owned(),
    ];
    for format in ["csv", "ndjson", "geojson"] {
        for query in &queries {
            let expected = export(&sqlite, format, query).await;
            let got = export(&postgres, format, query).await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "{format} {query}"
            );
        }
    }
}

/// The whole table as the row-by-row path encodes it, and as the store's
/// own path does, for one encoder.
async fn both_paths(
    store: &Store,
    read: &Arc<DatasetRead>,
    encoder: impl Fn() -> Box<dyn RowEncoder>,
) -> (Vec<u8>, Vec<u8>) {
    let mut by_rows = Vec::new();
    let mut rows_encoder = encoder();
    rows_encoder.begin(&mut by_rows);
    let rows: Vec<Vec<passerelle::domain::Value>> = store
        .stream_rows(read.clone(), None)
        .try_collect()
        .await
        .expect("rows");
    for row in &rows {
        rows_encoder.row(&mut by_rows, row);
    }
    rows_encoder.end(&mut by_rows);
    let direct = store
        .direct_export(read.clone(), None)
        .expect("SQLite steps the export itself");
    let chunks: Vec<_> = direct
        .stream(encoder())
        .try_collect()
        .await
        .expect("direct export");
    let counted: u64 = chunks.iter().map(|chunk| chunk.rows).sum();
    assert_eq!(counted, rows.len() as u64);
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    let bytes = chunks
        .iter()
        .flat_map(|chunk| chunk.bytes.to_vec())
        .collect();
    (by_rows, bytes)
}

/// On SQLite the rows stepped next to the store are encoded exactly as the
/// row-by-row path encodes them; PostgreSQL has no such path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_direct_exports_match_the_row_path() {
    // Enough rows for several chunks.
    let folder = catalog(3000);
    let sqlite = app(StoreKind::Sqlite, &folder).await.expect("SQLite app");
    let entry = sqlite
        .state
        .catalog
        .current()
        .get(DATASET)
        .cloned()
        .expect("entry");
    let read = Arc::new(DatasetRead {
        table: entry.table_name.clone(),
        schema: entry.schema.clone(),
        plan: Default::default(),
        visible: vec![true; entry.schema.fields.len()],
        row_filter: None,
        min_group_size: None,
        lease: None,
    });
    let keys: Vec<String> = read
        .output_columns()
        .iter()
        .map(|column| column.key.clone())
        .collect();
    let raw = vec![false; keys.len()];
    let options = CsvOptions {
        separator: b';',
        bom: true,
    };
    let encoders: [Box<dyn Fn() -> Box<dyn RowEncoder>>; 3] = [
        Box::new(|| Box::new(CsvEncoder::new(&keys, options))),
        Box::new(|| Box::new(NdjsonEncoder::new(&keys, &raw))),
        Box::new(|| {
            Box::new(GeoJsonEncoder::new(
                &keys,
                Some(Geometry::LatLon { lat: 4, lon: 5 }),
            ))
        }),
    ];
    for encoder in &encoders {
        let (by_rows, direct) = both_paths(&sqlite.state.store, &read, encoder).await;
        assert_eq!(
            String::from_utf8_lossy(&direct),
            String::from_utf8_lossy(&by_rows)
        );
        assert!(String::from_utf8_lossy(&direct).contains("dernière"));
    }
    let Some(postgres) = app(StoreKind::Postgres, &folder).await else {
        return;
    };
    assert!(postgres.state.store.direct_export(read, None).is_none());
}

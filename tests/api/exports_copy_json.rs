//! NDJSON and GeoJSON exports from PostgreSQL (values copied out in binary,
//! `COPY … TO STDOUT WITH (FORMAT binary)`, then encoded) are the bytes the
//! gateway's own encoders write on SQLite: strings full of quotes, backslashes, `$$`, `;`, control
//! characters and characters beyond ASCII, floats at every edge of both
//! notations, and each kind of geometry (lat/lon columns, a geopoint text, a
//! GeoJSON column).

use std::sync::Arc;

use passerelle::format::{GeoJsonEncoder, Geometry, NdjsonEncoder, RowEncoder};
use passerelle::store::copy::CopyFormat;
use passerelle::store::copy_binary::encode_binary;
use passerelle::store::datasets::DatasetRead;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const VALUES: &str = "valeurs-json";
const POINTS: &str = "points-json";
const SHAPES: &str = "formes-json";
const ZERO: &str = "zero-json";

/// Quotes, backslashes, dollar quoting, separators, control characters
/// (those JSON writes short, others, DEL), line breaks and beyond ASCII.
const TRICKY: &str = "Il a dit \"non\"; c'est \\ fini $$ DROP TABLE x; $$ --\nsuite\r\t\u{1}\u{8}\u{c}\u{1f}\u{7f} / \\N ½ 日本 🚀 'q' $1 \\u0041";

/// Floats on both sides of each notation's bounds (PostgreSQL's fixed
/// notation is [1e-4, 1e15), `serde_json`'s [1e-5, 1e16)) and at the ends
/// of doubles.
const FLOATS: [&str; 25] = [
    "0.0001",
    "0.00009999999999999999",
    "999999999999999.9",
    "1e15",
    "1e20",
    "1e21",
    "1e22",
    "1.5e-7",
    "0.00001",
    "5e-324",
    "1.7976931348623157e308",
    "0",
    "-0.5",
    "100",
    "123456789012345678",
    "0.000015",
    "-0.00001234",
    "1234567890123456.7",
    "9999999999999998",
    "1e16",
    "-1e15",
    "1.2345678901234568e17",
    "2.5e-5",
    "0.1",
    "-123456.789",
];

fn catalog() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("catalogue folder");
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut rows = vec![
        format!("1,{},1.5,true,48.3,4.07", quoted(TRICKY)),
        "2,,,,,".to_owned(),
        "3,\"a,b\",2.5,false,,5".to_owned(),
        "4,\\.,-1.5e-7,true,-0.00001,1e-7".to_owned(),
    ];
    for (index, float) in FLOATS.iter().enumerate() {
        let id = index + 10;
        // Each float as a value, a latitude and (negated) a longitude;
        // SQLite keeps no minus zero (see `minus_zero_stays`).
        let negated = match float.strip_prefix('-') {
            Some(positive) => positive.to_owned(),
            None if *float == "0" => "0".to_owned(),
            None => format!("-{float}"),
        };
        rows.push(format!(
            "{id},flottant {float},{float},true,{float},{negated}"
        ));
    }
    let write = |name: &str, header: &str, rows: &[String], fields: &str, extra: &str| {
        std::fs::write(
            folder.path().join(format!("{name}.csv")),
            format!("{header}\n{}\n", rows.join("\n")),
        )
        .unwrap();
        std::fs::write(
            folder.path().join(format!("{name}.yaml")),
            format!(
                "id: {name}\ntitle: {name}\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
                 source:\n  file: {name}.csv\n  delimiter: \",\"\n\
                 schema:\n  primaryKey: id\n  fields:\n{fields}{extra}"
            ),
        )
        .unwrap();
    };
    write(
        VALUES,
        "id,label,kwh,ok,lat,lon",
        &rows,
        "    - {name: id, type: integer, filterable: true}\n    - {name: label, type: string, filterable: true}\n    - {name: kwh, type: number, filterable: true}\n    - {name: ok, type: boolean, filterable: true}\n    - {name: lat, type: number}\n    - {name: lon, type: number}\n",
        "geometry:\n  lat: lat\n  lon: lon\n",
    );
    write(
        POINTS,
        "id,nom,position",
        &[
            format!("1,{},\"48.3,4.07\"", quoted(TRICKY)),
            "2,zéro,\"-0,0\"".to_owned(),
            "3,petit,\"0.00001,-0.000001\"".to_owned(),
            "4,vide,".to_owned(),
            "5,bornes,\"-90,180\"".to_owned(),
            "6,entier,\"45, 5\"".to_owned(),
        ],
        "    - {name: id, type: integer, filterable: true}\n    - {name: nom, type: string}\n    - {name: position, type: geopoint}\n",
        "",
    );
    write(
        SHAPES,
        "id,nom,forme",
        &[
            format!(
                "1,{},\"{{\"\"type\"\":\"\"Point\"\",\"\"coordinates\"\":[1.5,2]}}\"",
                quoted(TRICKY)
            ),
            "2,vide,".to_owned(),
            "3,ligne,\"{\"\"type\"\": \"\"LineString\"\", \"\"coordinates\"\": [[1e-7, 2], [3, 1e20]]}\"".to_owned(),
        ],
        "    - {name: id, type: integer, filterable: true}\n    - {name: nom, type: string}\n    - {name: forme, type: geojson}\n",
        "",
    );
    write(
        ZERO,
        "id,x,lat,lon",
        &["1,-0,-0,-0".to_owned(), "2,0,0,-0.0".to_owned()],
        "    - {name: id, type: integer}\n    - {name: x, type: number}\n    - {name: lat, type: number}\n    - {name: lon, type: number}\n",
        "",
    );
    folder
}

async fn export(app: &TestApp, dataset: &str, format: &str, query: &str) -> Vec<u8> {
    let response = app
        .get(&format!("/api/v1/data/{dataset}?format={format}&{query}"))
        .await;
    assert_eq!(response.status(), 200, "{dataset} {format} {query}");
    response.bytes().await.expect("body").to_vec()
}

/// The read of a whole dataset, as the HTTP layer would make it.
fn whole(app: &TestApp, dataset: &str) -> Arc<DatasetRead> {
    let entry = app
        .state
        .catalog
        .current()
        .get(dataset)
        .cloned()
        .expect("entry");
    Arc::new(DatasetRead {
        table: entry.table_name.clone(),
        schema: entry.schema.clone(),
        plan: Default::default(),
        visible: vec![true; entry.schema.fields.len()],
        row_filter: None,
        min_group_size: None,
        lease: None,
    })
}

/// The rows of `read` copied out of the store in binary and encoded by `encoder`.
async fn copied(app: &TestApp, read: Arc<DatasetRead>, encoder: Box<dyn RowEncoder>) -> String {
    let chunks = app
        .state
        .store
        .copy_export(read.clone(), None, &CopyFormat::Binary)
        .expect("PostgreSQL copies the values out itself");
    let bytes: Vec<u8> = futures::TryStreamExt::try_concat(futures::TryStreamExt::map_ok(
        encode_binary(chunks, read.cell_kinds(), encoder),
        |chunk| chunk.bytes.to_vec(),
    ))
    .await
    .expect("COPY");
    String::from_utf8(bytes).unwrap()
}

fn keys(read: &DatasetRead) -> Vec<String> {
    read.schema
        .fields
        .iter()
        .map(|field| field.name.clone())
        .collect()
}

/// The same queries on both stores give the same NDJSON and GeoJSON bytes;
/// on PostgreSQL the values come out of the store's binary `COPY`, on
/// SQLite they are stepped next to the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_copy_exports_match_the_encoders() {
    let folder = catalog();
    let adjust = |settings: &mut passerelle::config::Settings| {
        settings.catalog_dir = folder.path().to_owned();
    };
    let sqlite = spawn_app_with(StoreKind::Sqlite, adjust)
        .await
        .expect("SQLite app");
    let Some(postgres) = spawn_app_with(StoreKind::Postgres, adjust).await else {
        return;
    };
    // Filters take no control characters but tabs and line breaks.
    let tricky = utf8_percent_encode(
        "Il a dit \"non\"; c'est \\ fini $$ DROP TABLE x; $$ --\nsuite\r\t*",
        NON_ALPHANUMERIC,
    )
    .to_string();
    let queries = [
        (VALUES, "order=id".to_owned()),
        (VALUES, format!("label=like.{tricky}")),
        (
            VALUES,
            "or=(kwh.gt.1e10,ok.is.null,id.eq.1)&order=id".to_owned(),
        ),
        (
            VALUES,
            "select=label,kwh,lat,lon&order=kwh.desc.nullslast,id&limit=6&offset=1".to_owned(),
        ),
        // No longitude selected: features without geometry.
        (
            VALUES,
            "select=kwh,label,lat&label=like.*a*&order=id".to_owned(),
        ),
        (VALUES, "select=id&order=id.desc".to_owned()),
        (
            VALUES,
            "id=in.(1,3,5,7)&ok=not.is.true&order=id.desc".to_owned(),
        ),
        (VALUES, "label=eq.nothing-matches".to_owned()),
        (POINTS, "order=id".to_owned()),
        (POINTS, "select=nom&order=id".to_owned()),
        (SHAPES, "order=id".to_owned()),
        (SHAPES, "select=forme,id&order=id".to_owned()),
        (SHAPES, "select=nom&id=eq.1".to_owned()),
    ];
    for format in ["ndjson", "geojson"] {
        for (dataset, query) in &queries {
            let expected = export(&sqlite, dataset, format, query).await;
            let got = export(&postgres, dataset, format, query).await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "{dataset} {format} {query}"
            );
        }
    }

    // The values come back as they went in, floats as serde_json writes them.
    let lines = String::from_utf8(export(&postgres, VALUES, "ndjson", "order=id").await).unwrap();
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    assert_eq!(rows.len(), 4 + FLOATS.len(), "{lines}");
    assert_eq!(rows[0]["label"], TRICKY);
    assert!(
        lines.contains("\\r\\t\\u0001\\b\\f\\u001f\u{7f} / \\\\N"),
        "{lines}"
    );
    for expected in [
        "\"kwh\":0.0001,",
        "\"kwh\":0.00009999999999999999,",
        "\"kwh\":999999999999999.9,",
        "\"kwh\":1000000000000000.0,",
        "\"kwh\":1e+20,",
        "\"kwh\":1e+21,",
        "\"kwh\":1e+22,",
        "\"kwh\":1.5e-7,",
        "\"kwh\":0.00001,",
        "\"kwh\":5e-324,",
        "\"kwh\":1.7976931348623157e+308,",
        "\"kwh\":0.0,",
        "\"kwh\":-0.5,",
        "\"kwh\":100.0,",
        "\"kwh\":1.2345678901234568e+17,",
        "\"kwh\":0.000015,",
        "\"kwh\":1234567890123456.",
        "\"kwh\":9999999999999998.0,",
        "\"kwh\":1e+16,",
        "\"lon\":-1000000000000000.0}",
    ] {
        assert!(lines.contains(expected), "{expected} in {lines}");
    }

    // The PostgreSQL exports are the store's COPY, the SQLite ones are not.
    let read = whole(&postgres, VALUES);
    let names = keys(&read);
    let raw = vec![false; names.len()];
    let lines = copied(
        &postgres,
        read.clone(),
        Box::new(NdjsonEncoder::new(&names, &raw)),
    )
    .await;
    assert_eq!(lines.lines().count(), 4 + FLOATS.len());
    assert!(lines.starts_with("{\"id\":1,\"label\":\"Il a dit \\\"non\\\"; c'est \\\\ fini $$ DROP TABLE x; $$ --\\nsuite"), "{lines}");
    let geometry = Some(Geometry::LatLon { lat: 4, lon: 5 });
    let features = copied(
        &postgres,
        read.clone(),
        Box::new(GeoJsonEncoder::new(&names, geometry)),
    )
    .await;
    assert!(
        features.starts_with("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[4.07,48.3]},\"properties\":{\"id\":1,"),
        "{features}"
    );
    assert_eq!(
        features,
        String::from_utf8(export(&postgres, VALUES, "geojson", "").await).unwrap()
    );
    let sqlite_read = whole(&sqlite, VALUES);
    assert!(
        sqlite
            .state
            .store
            .copy_export(sqlite_read, None, &CopyFormat::Binary)
            .is_none()
    );
    // A geometry column is embedded as is and left out of the properties.
    let shapes_read = whole(&postgres, SHAPES);
    let shape_keys = keys(&shapes_read);
    let shapes = copied(
        &postgres,
        shapes_read,
        Box::new(GeoJsonEncoder::new(&shape_keys, Some(Geometry::GeoJson(2)))),
    )
    .await;
    assert!(
        shapes.contains(
            "{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"id\":2,\"nom\":\"vide\"}}"
        ),
        "{shapes}"
    );
    // The connection went back to the pool in a clean state.
    assert_eq!(
        export(&postgres, VALUES, "ndjson", "order=id").await,
        export(&sqlite, VALUES, "ndjson", "order=id").await
    );
}

/// The rows of `read` through the row-by-row path, encoded by `encoder`.
async fn row_path(
    app: &TestApp,
    read: Arc<DatasetRead>,
    mut encoder: Box<dyn RowEncoder>,
) -> String {
    let rows: Vec<Vec<passerelle::domain::Value>> =
        futures::TryStreamExt::try_collect(app.state.store.stream_rows(read, None))
            .await
            .expect("rows");
    let mut out = Vec::new();
    for row in &rows {
        encoder.row(&mut out, row);
    }
    String::from_utf8(out).unwrap()
}

/// SQLite keeps no minus zero; PostgreSQL does, and its binary `COPY`
/// keeps it for the encoder (`-0.0`), in values and points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_zero_stays() {
    let folder = catalog();
    let Some(postgres) = spawn_app_with(StoreKind::Postgres, |settings| {
        settings.catalog_dir = folder.path().to_owned();
    })
    .await
    else {
        return;
    };
    let read = whole(&postgres, ZERO);
    let keys: Vec<String> = ["id", "x", "lat", "lon"].map(str::to_owned).to_vec();
    let raw = vec![false; 4];
    let lines = copied(
        &postgres,
        read.clone(),
        Box::new(NdjsonEncoder::new(&keys, &raw)),
    )
    .await;
    assert_eq!(
        lines,
        row_path(
            &postgres,
            read.clone(),
            Box::new(NdjsonEncoder::new(&keys, &raw))
        )
        .await
    );
    assert!(
        lines.contains("{\"id\":1,\"x\":-0.0,\"lat\":-0.0,\"lon\":-0.0}\n"),
        "{lines}"
    );
    let geometry = Some(Geometry::LatLon { lat: 2, lon: 3 });
    let features = copied(
        &postgres,
        read.clone(),
        Box::new(GeoJsonEncoder::new(&keys, geometry)),
    )
    .await;
    let mut encoder = GeoJsonEncoder::new(&keys, geometry);
    let mut expected = Vec::new();
    let rows: Vec<Vec<passerelle::domain::Value>> =
        futures::TryStreamExt::try_collect(postgres.state.store.stream_rows(read, None))
            .await
            .expect("rows");
    encoder.begin(&mut expected);
    for row in &rows {
        encoder.row(&mut expected, row);
    }
    encoder.end(&mut expected);
    assert_eq!(features, String::from_utf8(expected).unwrap());
    assert!(features.contains("[-0.0,-0.0]"), "{features}");
}

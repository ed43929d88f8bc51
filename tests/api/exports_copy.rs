//! CSV exports written by PostgreSQL (`COPY … TO STDOUT`) are the same bytes
//! as the gateway's own encoder writes (SQLite, and every non-CSV format):
//! values full of quotes, backslashes, `$$`, `;` and line breaks come back
//! intact, filter values reach the query through settings, never spliced.

use std::sync::Arc;

use passerelle::store::copy::CopyFormat;
use passerelle::store::datasets::DatasetRead;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const DATASET: &str = "valeurs-piegees";

/// The value that must survive: quotes, backslashes, dollar quoting,
/// separators, a line break and characters beyond ASCII.
const TRICKY: &str =
    "Il a dit \"non\"; c'est \\ fini $$ DROP TABLE x; $$ --\nsuite \\N ½ 日本 🚀 'q' $1";

fn catalog() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("catalogue folder");
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let rows = [
        format!("1,{},1.5,true", quoted(TRICKY)),
        "2,simple,1e20,false".to_owned(),
        "3,,0.0000001,".to_owned(),
        "4,\"a,b\",-1.5e-7,true".to_owned(),
        "5,\\.,123456789012345678,false".to_owned(),
        "6,\"\"\"\",0.1,true".to_owned(),
        "7,fin,2.5,".to_owned(),
        "8,dernière,,true".to_owned(),
        // Both sides of PostgreSQL's fixed-notation range [1e-4, 1e15).
        "9,bornes,0.0001,true".to_owned(),
        "10,bornes,0.00009999999999999999,true".to_owned(),
        "11,bornes,999999999999999.9,true".to_owned(),
        "12,bornes,1e15,true".to_owned(),
        "13,bornes,-0.0001,false".to_owned(),
        "14,bornes,-0.000099,false".to_owned(),
        "15,bornes,-1e15,false".to_owned(),
        "16,bornes,-999999999999999,false".to_owned(),
        "17,extrêmes,1.7976931348623157e308,".to_owned(),
        "18,extrêmes,5e-324,".to_owned(),
        "19,extrêmes,0,".to_owned(),
        "20,extrêmes,-123456.789,".to_owned(),
    ];
    std::fs::write(
        folder.path().join(format!("{DATASET}.csv")),
        format!("id,label,kwh,ok\n{}\n", rows.join("\n")),
    )
    .unwrap();
    std::fs::write(
        folder.path().join(format!("{DATASET}.yaml")),
        format!(
            "id: {DATASET}\ntitle: Valeurs piégées\npublisher: Tests\nlicence: etalab-2.0\naccess: open\n\
             source:\n  file: {DATASET}.csv\n  delimiter: \",\"\n\
             schema:\n  primaryKey: id\n  fields:\n    - {{name: id, type: integer, filterable: true}}\n    - {{name: label, type: string, filterable: true}}\n    - {{name: kwh, type: number, filterable: true}}\n    - {{name: ok, type: boolean, filterable: true}}\n"
        ),
    )
    .unwrap();
    folder
}

async fn export(app: &TestApp, query: &str) -> Vec<u8> {
    let response = app
        .get(&format!("/api/v1/data/{DATASET}?format=csv&{query}"))
        .await;
    assert_eq!(response.status(), 200, "{query}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8",
        "{query}"
    );
    response.bytes().await.expect("body").to_vec()
}

/// The same queries on both stores give the same bytes; on PostgreSQL the
/// store writes them (`copy_export`), on SQLite the gateway does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_exports_match_the_encoder() {
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
    let tricky = utf8_percent_encode(TRICKY, NON_ALPHANUMERIC).to_string();
    let queries = [
        "order=id".to_owned(),
        "order=id&csv_sep=%3B&bom=true".to_owned(),
        format!("label=eq.{tricky}"),
        "or=(kwh.gt.1e10,ok.is.null,id.eq.1)&order=id".to_owned(),
        "select=label,kwh&order=kwh.desc.nullslast&limit=4&offset=1".to_owned(),
        "select=kwh,label,ok&label=like.*a*&order=id".to_owned(),
        "id=in.(1,3,5,7)&ok=not.is.true&order=id.desc".to_owned(),
        "label=eq.nothing-matches".to_owned(),
    ];
    for query in &queries {
        let expected = export(&sqlite, query).await;
        let got = export(&postgres, query).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{query}"
        );
    }
    // The tricky value comes back intact, alone when filtered on.
    let filtered = export(&postgres, &format!("label=eq.{tricky}")).await;
    let mut reader = csv::Reader::from_reader(filtered.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(|record| record.unwrap()).collect();
    assert_eq!(records.len(), 1, "{}", String::from_utf8_lossy(&filtered));
    assert_eq!(&records[0][1], TRICKY);
    let all = String::from_utf8(export(&postgres, "order=id").await).unwrap();
    assert!(
        all.starts_with("id,label,kwh,ok\r\n1,\"Il a dit \"\"non\"\"; c'est \\ fini $$ DROP TABLE x; $$ --\nsuite"),
        "{all}"
    );
    assert!(
        all.contains("\r\n2,simple,100000000000000000000,false\r\n3,,0.0000001,\r\n"),
        "{all}"
    );
    assert!(all.contains("\r\n4,\"a,b\",-0.00000015,true\r\n"), "{all}");
    assert!(
        all.contains("\r\n9,bornes,0.0001,true\r\n10,bornes,0.00009999999999999999,true\r\n"),
        "{all}"
    );
    assert!(
        all.contains("\r\n12,bornes,1000000000000000,true\r\n"),
        "{all}"
    );

    // The PostgreSQL export is the store's COPY, the SQLite one is not.
    let entry = postgres
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
    let csv = CopyFormat::Csv { separator: b',' };
    let chunks = postgres
        .state
        .store
        .copy_export(read.clone(), None, &csv)
        .expect("PostgreSQL writes CSV itself");
    let copied: Vec<u8> =
        futures::TryStreamExt::try_concat(futures::TryStreamExt::map_ok(chunks, |chunk| {
            chunk.to_vec()
        }))
        .await
        .expect("COPY");
    let copied = String::from_utf8(copied).unwrap();
    assert!(copied.contains(&TRICKY.replace('"', "\"\"")), "{copied}");
    assert!(sqlite.state.store.copy_export(read, None, &csv).is_none());
    // Its connection went back to the pool in a clean state.
    assert_eq!(
        export(&postgres, "order=id").await,
        export(&sqlite, "order=id").await
    );
}

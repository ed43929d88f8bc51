//! The page cache's memory follows `page_cache_bytes`: what a cached page
//! keeps alive is measured with a counting allocator (this test binary's
//! global allocator) and compared with the weight the cache gives it.
//!
//! One test per binary on purpose: the allocator counts every thread.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use passerelle::domain::{Field, FieldType, Schema};
use passerelle::http::data::cache::{CachedPage, PageCache};
use passerelle::query::ReadPlan;
use passerelle::store::datasets::DatasetRead;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, live_bytes};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A point read's page, built the way the read handler builds one: the
/// encoder's 16 KiB buffer holding a 200-byte body, and the page's headers.
fn point_read_page(id: u64) -> CachedPage {
    let mut body = Vec::with_capacity(16 * 1024);
    body.extend_from_slice(format!("[{{\"id\":{id},\"commune\":\"Troyes\"").as_bytes());
    body.resize(200, b' ');
    body.extend_from_slice(b"}]");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_RANGE, HeaderValue::from_static("0-0/*"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{id:032x}\"")).expect("etag"),
    );
    CachedPage::new(StatusCode::OK, body, headers, 1)
}

fn read_with_offset(offset: u64) -> DatasetRead {
    DatasetRead {
        table: "ds_bench_v1".to_owned(),
        schema: Arc::new(Schema {
            fields: vec![Field::new("id", FieldType::Integer)],
            primary_key: None,
        }),
        plan: ReadPlan {
            offset,
            limit: Some(1),
            ..ReadPlan::default()
        },
        visible: vec![true],
        row_filter: None,
        min_group_size: None,
        lease: None,
    }
}

/// A page weighs at least what it keeps alive, and a full cache stays
/// within its capacity: distinct point reads (each a 200-byte body from a
/// 16 KiB buffer) used to keep 28 times the budget alive.
#[test]
fn cached_pages_weigh_what_they_hold() {
    // One page: what stays allocated once the encoder's buffer is handed over.
    let before = live_bytes();
    let page = Arc::new(point_read_page(1));
    let held = live_bytes() - before;
    assert!(
        page.weight() as isize >= held,
        "a page holds {held} bytes but weighs {}",
        page.weight()
    );
    drop(page);

    // A whole cache under sustained distinct reads.
    let capacity: u64 = 4 * 1024 * 1024;
    let cache = PageCache::new(capacity);
    let reads: Vec<_> = (0..40_000)
        .map(|offset| PageCache::key(&read_with_offset(offset), None, 10_000))
        .collect();
    let before = live_bytes();
    for (id, key) in reads.iter().enumerate() {
        cache.insert(*key, point_read_page(id as u64));
        if id % 1_000 == 0 {
            cache.run_pending_tasks();
        }
    }
    cache.run_pending_tasks();
    let grown = live_bytes() - before;
    eprintln!(
        "one page: {held} bytes held; cache of {capacity} bytes: {grown} bytes alive, {} weighed, {} entries",
        cache.weighted_size(),
        cache.entry_count()
    );
    assert!(
        cache.weighted_size() <= capacity,
        "the cache weighs {} bytes, over its {capacity}",
        cache.weighted_size()
    );
    // The cache's own tables (frequency sketch, hash table) come on top of
    // the weighed entries; they are a small fraction, not a multiple.
    let bound = capacity as isize + capacity as isize / 2;
    assert!(
        grown <= bound,
        "40,000 distinct pages in a {capacity}-byte cache keep {grown} bytes alive (bound {bound})"
    );
}

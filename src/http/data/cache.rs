//! A cache of JSON pages. A dataset's rows only change on import, and an
//! import creates a new table (`ds_<slug>_v<N>`), so a page keyed by the table,
//! the parsed plan, the caller's view (visible columns, row filter, group
//! threshold) and the count preference is exactly correct until evicted:
//! no invalidation is needed. The caller's identity is not in the key, only
//! what it may see, so two partners of one commune share entries.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use crate::store::datasets::DatasetRead;

/// One cached answer: everything but the per-request headers.
#[derive(Debug)]
pub struct CachedPage {
    pub status: StatusCode,
    pub body: Bytes,
    pub headers: HeaderMap,
    pub rows: u64,
}

/// Shared by every request; bounded by the bytes it holds.
#[derive(Clone)]
pub struct PageCache {
    pages: moka::sync::Cache<u64, Arc<CachedPage>>,
}

/// Pages larger than this are not kept (they would evict many small ones).
const MAX_CACHED_PAGE: usize = 1024 * 1024;

impl PageCache {
    /// A cache holding at most `capacity_bytes` of page bodies (0 disables it).
    pub fn new(capacity_bytes: u64) -> PageCache {
        PageCache {
            pages: moka::sync::Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_, page: &Arc<CachedPage>| {
                    u32::try_from(page.body.len() + 256).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The key of a read: table (hence version), plan, view and count preference.
    pub fn key(read: &DatasetRead, count: Option<&str>, page_cap: u64) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        read.table.hash(&mut hasher);
        // The plan and the filters have no Hash (they hold floats); their
        // Debug text is deterministic and complete.
        format!("{:?}|{:?}", read.plan, read.row_filter).hash(&mut hasher);
        read.visible.hash(&mut hasher);
        read.min_group_size.hash(&mut hasher);
        count.hash(&mut hasher);
        page_cap.hash(&mut hasher);
        hasher.finish()
    }

    pub fn get(&self, key: u64) -> Option<Arc<CachedPage>> {
        self.pages.get(&key)
    }

    pub fn insert(&self, key: u64, page: CachedPage) {
        if page.body.len() <= MAX_CACHED_PAGE {
            self.pages.insert(key, Arc::new(page));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldType, Schema};
    use crate::query::plan::ReadPlan;

    fn read(table: &str, limit: Option<u64>) -> DatasetRead {
        DatasetRead {
            table: table.to_owned(),
            schema: Arc::new(Schema {
                fields: vec![Field::new("a", FieldType::Integer)],
                primary_key: None,
            }),
            plan: ReadPlan {
                limit,
                ..ReadPlan::default()
            },
            visible: vec![true],
            row_filter: None,
            min_group_size: None,
            lease: None,
        }
    }

    /// A new version, another plan, another view or count preference is another key.
    #[test]
    fn keys_differ_by_what_changes_the_answer() {
        let base = PageCache::key(&read("ds_a_v1", Some(5)), None, 100);
        assert_eq!(base, PageCache::key(&read("ds_a_v1", Some(5)), None, 100));
        assert_ne!(base, PageCache::key(&read("ds_a_v2", Some(5)), None, 100));
        assert_ne!(base, PageCache::key(&read("ds_a_v1", Some(6)), None, 100));
        assert_ne!(
            base,
            PageCache::key(&read("ds_a_v1", Some(5)), Some("count=exact"), 100)
        );
        let mut hidden = read("ds_a_v1", Some(5));
        hidden.visible = vec![false];
        assert_ne!(base, PageCache::key(&hidden, None, 100));
    }

    /// Oversized pages are not kept.
    #[test]
    fn skips_large_pages() {
        let cache = PageCache::new(10 * 1024 * 1024);
        let page = |size: usize| CachedPage {
            status: StatusCode::OK,
            body: Bytes::from(vec![b' '; size]),
            headers: HeaderMap::new(),
            rows: 1,
        };
        cache.insert(1, page(10));
        cache.insert(2, page(MAX_CACHED_PAGE + 1));
        assert!(cache.get(1).is_some());
        assert!(cache.get(2).is_none());
    }
}

//! A cache of JSON pages. A dataset's rows only change on import, and an
//! import creates a new table (`ds_<slug>_v<N>`), so a page keyed by the table,
//! the parsed plan, the caller's view (visible columns, row filter, group
//! threshold) and the count preference is exactly correct until evicted:
//! no invalidation is needed. The caller's identity is not in the key, only
//! what it may see, so two partners of one commune share entries.
//!
//! Invariants:
//! - the key is a SHA-256 digest of every part of the read that changes the
//!   answer, each part followed by its length (read from the end, the parts
//!   split one way only): two reads share an entry only if they are the
//!   same read (a 64-bit hash could collide and serve one caller's page to
//!   another);
//! - a page weighs at least the memory it keeps alive (body, headers and the
//!   cache's own bookkeeping), so `page_cache_bytes` bounds the memory.

use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::CompressionLevel;
use crate::http::compression::Encoding;
use crate::store::datasets::DatasetRead;

/// One cached answer: everything but the per-request headers.
#[derive(Debug)]
pub struct CachedPage {
    pub status: StatusCode,
    pub body: Bytes,
    pub headers: HeaderMap,
    pub rows: u64,
    /// The body compressed (gzip, br, zstd: `Encoding::slot`), each made
    /// by the first request that asks for it. A copy is kept only when it
    /// is at most a third of the body, so the three fit in the body's size,
    /// which the page's weight reserves for them.
    compressed: [OnceLock<Option<Bytes>>; 3],
}

/// Memory a cache entry keeps besides the body and the header bytes: the
/// `Arc`, the key, the header map's tables, and the cache's node and
/// frequency bookkeeping. Measured: about 1,050 bytes with a counting
/// allocator (`tests/page_cache_memory.rs`), about 1,700 bytes of RSS per
/// page in the gateway under distinct point reads; weighed with a margin.
const ENTRY_OVERHEAD: usize = 1536;

/// Memory one header keeps besides its name and value bytes (the map's bucket).
const HEADER_OVERHEAD: usize = 64;

impl CachedPage {
    /// A page holding exactly its body's bytes: an encoder's buffer usually
    /// has room to spare (16 KiB for a 200-byte point read), and `Bytes`
    /// would keep all of it alive. The body is copied into an allocation of
    /// its own size and the buffer freed whole: shrinking the buffer in place
    /// leaves a hole the next buffer does not fit in, and the heap grows by
    /// one buffer per cached page (measured: RSS +150 MB for 38,000 pages).
    pub fn new(status: StatusCode, body: Vec<u8>, headers: HeaderMap, rows: u64) -> CachedPage {
        CachedPage {
            status,
            body: Bytes::copy_from_slice(&body),
            headers,
            rows,
            compressed: Default::default(),
        }
    }

    /// The body in `encoding`: the kept copy, or one made now (and kept
    /// when small enough); `None` when the encoder failed.
    pub fn encoded(&self, encoding: Encoding, level: CompressionLevel) -> Option<Bytes> {
        let Some(slot) = encoding.slot() else {
            return Some(self.body.clone());
        };
        let make = || match encoding.encode(level, &self.body) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(error) => {
                tracing::error!(%error, encoding = encoding.as_str(), "cannot compress a page");
                None
            }
        };
        if let Some(kept) = self.compressed[slot].get() {
            return kept.clone().or_else(make);
        }
        let copy = make()?;
        let keep = copy.len() <= self.body.len() / 3;
        let kept = self.compressed[slot].get_or_init(|| keep.then(|| copy.clone()));
        Some(kept.clone().unwrap_or(copy))
    }

    /// The bytes this page keeps alive in the cache, as the cache weighs it.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + HEADER_OVERHEAD)
            .sum();
        // The body, and as much again for its compressed copies.
        2 * self.body.len() + headers + ENTRY_OVERHEAD
    }
}

/// The digest of a read: see the module's invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey([u8; 32]);

impl PageKey {
    /// The digest itself.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A page key being made: each part is digested, then its length.
#[derive(Default)]
struct KeyDigest {
    digest: Sha256,
    /// Bytes of the part being written.
    written: u64,
}

impl KeyDigest {
    fn part(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
        self.digest.update((bytes.len() as u64).to_le_bytes());
    }

    /// A part that is the `Debug` text of `value`.
    fn debug(&mut self, value: &impl fmt::Debug) {
        self.written = 0;
        // Writing into a digest cannot fail.
        let _ = write!(self, "{value:?}");
        self.digest.update(self.written.to_le_bytes());
    }
}

impl fmt::Write for KeyDigest {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.digest.update(text.as_bytes());
        self.written += text.len() as u64;
        Ok(())
    }
}

/// Shared by every request; bounded by the bytes it holds.
#[derive(Clone)]
pub struct PageCache {
    pages: moka::sync::Cache<PageKey, Arc<CachedPage>>,
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
                    u32::try_from(page.weight()).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The key of a read: table (hence version), plan, view and count preference.
    pub fn key(read: &DatasetRead, count: Option<&str>, page_cap: u64) -> PageKey {
        let mut key = KeyDigest::default();
        key.part(read.table.as_bytes());
        // The plan and the filters have no Hash (they hold floats); their
        // Debug text is deterministic and complete. It is streamed into the
        // digest: a cached read builds no text.
        key.debug(&read.plan);
        key.debug(&read.row_filter);
        let visible: Vec<u8> = read.visible.iter().map(|&shown| u8::from(shown)).collect();
        key.part(&visible);
        key.debug(&read.min_group_size);
        key.part(count.unwrap_or("").as_bytes());
        key.part(&page_cap.to_le_bytes());
        PageKey(key.digest.finalize().into())
    }

    pub fn get(&self, key: PageKey) -> Option<Arc<CachedPage>> {
        self.pages.get(&key)
    }

    pub fn insert(&self, key: PageKey, page: CachedPage) {
        if page.body.len() <= MAX_CACHED_PAGE {
            self.pages.insert(key, Arc::new(page));
        }
    }

    /// Applies pending evictions now (the cache otherwise does it along
    /// with later reads and writes).
    pub fn run_pending_tasks(&self) {
        self.pages.run_pending_tasks();
    }

    /// Pages held now (after [`PageCache::run_pending_tasks`]).
    pub fn entry_count(&self) -> u64 {
        self.pages.entry_count()
    }

    /// Bytes the cache weighs now (after [`PageCache::run_pending_tasks`]).
    pub fn weighted_size(&self) -> u64 {
        self.pages.weighted_size()
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

    /// A part streamed from its `Debug` text digests as that text would,
    /// and where the parts split changes the key.
    #[test]
    fn streamed_parts_are_parts_of_their_text() {
        let plan = read("ds_a_v1", Some(5)).plan;
        let mut streamed = KeyDigest::default();
        streamed.debug(&plan);
        let mut whole = KeyDigest::default();
        whole.part(format!("{plan:?}").as_bytes());
        assert_eq!(streamed.digest.finalize(), whole.digest.finalize());
        let split = |parts: &[&str]| {
            let mut key = KeyDigest::default();
            for part in parts {
                key.part(part.as_bytes());
            }
            key.digest.finalize()
        };
        assert_ne!(split(&["ab", "c"]), split(&["a", "bc"]));
        assert_ne!(split(&["ab", ""]), split(&["", "ab"]));
    }

    /// Oversized pages are not kept.
    #[test]
    fn skips_large_pages() {
        let cache = PageCache::new(10 * 1024 * 1024);
        let page =
            |size: usize| CachedPage::new(StatusCode::OK, vec![b' '; size], HeaderMap::new(), 1);
        let (small, large) = (
            PageCache::key(&read("ds_a_v1", Some(1)), None, 100),
            PageCache::key(&read("ds_a_v1", Some(2)), None, 100),
        );
        cache.insert(small, page(10));
        cache.insert(large, page(MAX_CACHED_PAGE + 1));
        assert!(cache.get(small).is_some());
        assert!(cache.get(large).is_none());
    }

    /// A page keeps only its body's bytes, whatever room the encoder's buffer had.
    #[test]
    fn pages_hold_only_their_bytes() {
        let mut body = Vec::with_capacity(16 * 1024);
        body.extend_from_slice(b"[{\"id\":1}]");
        let page = CachedPage::new(StatusCode::OK, body, HeaderMap::new(), 1);
        assert_eq!(page.body.len(), 10);
        assert!(page.weight() >= page.body.len() + ENTRY_OVERHEAD);
    }
}

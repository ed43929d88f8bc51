//! HTTP caching of data answers: validators (`ETag`, `Last-Modified`), the
//! conditional request (`If-None-Match`, else `If-Modified-Since`, answered
//! 304), and who may keep an answer (`Cache-Control`, `Vary`).
//!
//! - Open data read without credentials: `public, max-age=…`
//!   (`server.caching.max_age_seconds`); anything read with credentials:
//!   `private, no-store`, and so is every other API answer unless its
//!   handler says otherwise (the audit middleware sets the default).
//! - ETags are weak (`W/"…"`). RFC 9110 §8.8.3: a strong validator changes
//!   whenever the representation's bytes change, and a content coding makes
//!   another representation, so a strong ETag would have to differ between
//!   the gzip, br, zstd and identity answers, and `If-None-Match` then
//!   compared per coding. A weak ETag says "the same content", whichever
//!   coding carries it, which is what a JSON page or an export is: one
//!   version of a dataset (a version's table never changes), one query, one
//!   view. `If-None-Match` uses the weak comparison (§13.1.2), so a client
//!   that got the gzip answer revalidates with any coding. Exports' ETags
//!   are computed from the read itself (version, query, view, format), so a
//!   304 costs no query; JSON pages' from their body.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};

/// Request headers a data answer depends on: a shared cache keys on them.
const VARY: &str = "Accept, Accept-Encoding, Authorization, X-API-Key, Prefer, Range";

/// A weak ETag from a digest.
pub fn weak_etag(digest: &[u8]) -> String {
    format!("W/\"{}\"", hex::encode(&digest[..digest.len().min(16)]))
}

/// The moment a dataset's current version was recorded, from the catalogue.
pub fn last_modified(last_updated: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(last_updated)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate).
/// Written by `httpdate` (hyper's own): chrono's `format` parses its pattern
/// again on each call, 1.5 % of a cached read's CPU (perf).
/// `httpdate` takes no time before 1970 (a catalogue may say anything).
pub fn http_date(time: DateTime<Utc>) -> String {
    if time.timestamp() >= 0 {
        httpdate::fmt_http_date(time.into())
    } else {
        time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }
}

/// Whether the client's copy is current: `If-None-Match` (weak comparison,
/// `*` matches) when sent, else `If-Modified-Since` (RFC 9110 §13.2.2).
pub fn not_modified(request: &HeaderMap, etag: &str, last_modified: Option<DateTime<Utc>>) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let matches: Vec<&str> = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if !matches.is_empty() {
        return matches
            .iter()
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag));
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| DateTime::parse_from_rfc2822(value).ok());
    match (since, last_modified) {
        // HTTP dates have whole seconds.
        (Some(since), Some(modified)) => modified.timestamp() <= since.timestamp(),
        _ => false,
    }
}

/// `Cache-Control`, `Vary` and the validators of a data answer.
pub fn headers(
    public: bool,
    max_age_seconds: u64,
    etag: &str,
    last_modified: Option<DateTime<Utc>>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let control = if public {
        format!("public, max-age={max_age_seconds}")
    } else {
        PRIVATE.to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = last_modified.and_then(|time| HeaderValue::from_str(&http_date(time)).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers
}

/// What no cache may keep: answers that needed credentials, and by default
/// every API answer that is not open data.
pub const PRIVATE: &str = "private, no-store";

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// If-None-Match compares weakly; it wins over If-Modified-Since.
    #[test]
    fn conditional_requests() {
        let etag = weak_etag(&[0xab; 32]);
        assert!(etag.starts_with("W/\"abab"));
        let strong = etag.trim_start_matches("W/").to_owned();
        let modified = last_modified("2026-11-28T10:00:00Z");
        assert!(not_modified(
            &request(&[("if-none-match", &etag)]),
            &etag,
            modified
        ));
        assert!(not_modified(
            &request(&[("if-none-match", &strong)]),
            &etag,
            modified
        ));
        assert!(not_modified(
            &request(&[("if-none-match", "\"x\", *")]),
            &etag,
            None
        ));
        assert!(!not_modified(
            &request(&[("if-none-match", "W/\"x\"")]),
            &etag,
            modified
        ));
        assert!(!not_modified(&request(&[]), &etag, modified));
        let date = http_date(modified.unwrap());
        assert_eq!(date, "Sat, 28 Nov 2026 10:00:00 GMT");
        let early = last_modified("1969-07-20T20:17:40Z").unwrap();
        assert_eq!(http_date(early), "Sun, 20 Jul 1969 20:17:40 GMT");
        assert!(not_modified(
            &request(&[("if-modified-since", &date)]),
            &etag,
            modified
        ));
        assert!(!not_modified(
            &request(&[("if-modified-since", "Fri, 27 Nov 2026 10:00:00 GMT")]),
            &etag,
            modified
        ));
        assert!(!not_modified(
            &request(&[("if-none-match", "\"other\""), ("if-modified-since", &date)]),
            &etag,
            modified
        ));
    }

    /// Public for open data, private and unstored otherwise; always Vary.
    #[test]
    fn cache_control() {
        let public = headers(true, 60, "W/\"a\"", None);
        assert_eq!(public[header::CACHE_CONTROL], "public, max-age=60");
        assert!(
            public[header::VARY]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );
        let private = headers(false, 60, "W/\"a\"", last_modified("2026-11-28T10:00:00Z"));
        assert_eq!(private[header::CACHE_CONTROL], "private, no-store");
        assert!(private.contains_key(header::LAST_MODIFIED));
    }
}

//! PostgREST's paging conversation: `Range`, `Prefer: count=…`,
//! `Content-Range`, 206 and 416.

use axum::http::{HeaderMap, StatusCode};

/// What `Prefer: count=` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPreference {
    Exact,
    Planned,
    Estimated,
}

impl CountPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            CountPreference::Exact => "count=exact",
            CountPreference::Planned => "count=planned",
            CountPreference::Estimated => "count=estimated",
        }
    }

    /// Reads every `Prefer` header (preferences may be comma separated).
    pub fn from_headers(headers: &HeaderMap) -> Option<CountPreference> {
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .find_map(|preference| match preference.trim() {
                "count=exact" => Some(CountPreference::Exact),
                "count=planned" => Some(CountPreference::Planned),
                "count=estimated" => Some(CountPreference::Estimated),
                _ => None,
            })
    }
}

/// `Range: 0-99` (items) as an offset and an optional limit; `None` when the
/// header is absent or not an items range (ignored, as PostgREST does).
pub fn requested_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get("range")?.to_str().ok()?.trim();
    let value = value.strip_prefix("items=").unwrap_or(value);
    let (start, end) = value.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = end.trim();
    if end.is_empty() {
        return Some((start, None));
    }
    let end: u64 = end.parse().ok()?;
    if end < start {
        return None;
    }
    Some((start, Some(end - start + 1)))
}

/// The status and `Content-Range` of an answer that returned `returned` rows
/// from `offset`, out of `total` when counted.
pub fn content_range(offset: u64, returned: u64, total: Option<u64>) -> (StatusCode, String) {
    let total_text = total.map_or_else(|| "*".to_owned(), |total| total.to_string());
    if returned == 0 {
        if let Some(total) = total
            && offset > 0
            && offset >= total
        {
            return (StatusCode::RANGE_NOT_SATISFIABLE, format!("*/{total}"));
        }
        return (StatusCode::OK, format!("*/{total_text}"));
    }
    let last = offset + returned - 1;
    let status = match total {
        Some(total) if offset > 0 || returned < total => StatusCode::PARTIAL_CONTENT,
        _ => StatusCode::OK,
    };
    (status, format!("{offset}-{last}/{total_text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content-Range and status follow PostgREST in every case the contract lists.
    #[test]
    fn computes_content_range() {
        let cases = [
            (0, 25, None, StatusCode::OK, "0-24/*"),
            (0, 0, None, StatusCode::OK, "*/*"),
            (0, 0, Some(0), StatusCode::OK, "*/0"),
            (0, 10, Some(10), StatusCode::OK, "0-9/10"),
            (
                0,
                100,
                Some(12345),
                StatusCode::PARTIAL_CONTENT,
                "0-99/12345",
            ),
            (10, 5, Some(15), StatusCode::PARTIAL_CONTENT, "10-14/15"),
            (20, 0, Some(15), StatusCode::RANGE_NOT_SATISFIABLE, "*/15"),
            (20, 0, None, StatusCode::OK, "*/*"),
        ];
        for (offset, returned, total, status, range) in cases {
            assert_eq!(
                content_range(offset, returned, total),
                (status, range.to_owned())
            );
        }
    }

    /// Range headers are read as items ranges; nonsense is ignored.
    #[test]
    fn reads_range_headers() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("0-99", Some((0, Some(100)))),
            ("items=5-5", Some((5, Some(1)))),
            ("10-", Some((10, None))),
            ("9-2", None),
            ("bytes", None),
        ] {
            headers.insert("range", value.parse().unwrap());
            assert_eq!(requested_range(&headers), expected, "{value}");
        }
    }

    /// Prefer may carry several preferences.
    #[test]
    fn reads_count_preference() {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", "return=minimal, count=exact".parse().unwrap());
        assert_eq!(
            CountPreference::from_headers(&headers),
            Some(CountPreference::Exact)
        );
    }
}

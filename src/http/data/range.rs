//! PostgREST's paging conversation: `Range`, `Prefer: count=…`,
//! `Content-Range`, 206 and 416.

use axum::http::{HeaderMap, StatusCode};

use crate::http::problem::Problem;

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

/// A `Range` whose end comes before its start: no rows can satisfy it, so it
/// is a 416 (PostgREST's answer), not ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversedRange(pub String);

impl From<ReversedRange> for Problem {
    fn from(ReversedRange(range): ReversedRange) -> Problem {
        let mut problem = Problem::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            "Range not satisfiable",
            format!(
                "Range `{range}`: the lower boundary must be lower than or equal to the upper boundary"
            ),
        )
        .with_code("PGRST103");
        problem.details = Some(
            "The lower boundary must be lower than or equal to the upper boundary in the Range header."
                .to_owned(),
        );
        problem
    }
}

/// `Range: 0-99` (items) as an offset and an optional limit. `Ok(None)` when
/// the header is absent or not an items range (ignored, as PostgREST does);
/// an error when the end is before the start. Bounds beyond 64 bits are read
/// as the largest offset: past every row, never an error of their own.
pub fn requested_range(headers: &HeaderMap) -> Result<Option<(u64, Option<u64>)>, ReversedRange> {
    let Some(value) = headers.get("range").and_then(|value| value.to_str().ok()) else {
        return Ok(None);
    };
    let value = value.trim();
    let value = value.strip_prefix("items=").unwrap_or(value);
    let Some((start, end)) = value.split_once('-') else {
        return Ok(None);
    };
    let Some(start) = bound(start) else {
        return Ok(None);
    };
    if end.is_empty() {
        return Ok(Some((start, None)));
    }
    let Some(end) = bound(end) else {
        return Ok(None);
    };
    if end < start {
        return Err(ReversedRange(value.to_owned()));
    }
    Ok(Some((start, Some((end - start).saturating_add(1)))))
}

/// Digits only, saturating at `u64::MAX`.
fn bound(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
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

    /// Range headers are read as items ranges; nonsense is ignored; an end
    /// before the start is refused, as PostgREST does.
    #[test]
    fn reads_range_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_range(&headers), Ok(None));
        let huge = "99999999999999999999999";
        for (value, expected) in [
            ("0-99", Ok(Some((0, Some(100))))),
            ("items=5-5", Ok(Some((5, Some(1))))),
            ("10-", Ok(Some((10, None)))),
            ("999999999999-", Ok(Some((999_999_999_999, None)))),
            (&format!("{huge}-"), Ok(Some((u64::MAX, None)))),
            (&format!("0-{huge}"), Ok(Some((0, Some(u64::MAX))))),
            ("9-2", Err(ReversedRange("9-2".to_owned()))),
            (
                "999999999999-0",
                Err(ReversedRange("999999999999-0".to_owned())),
            ),
            ("-5", Ok(None)),
            ("+1-2", Ok(None)),
            ("1-x", Ok(None)),
            ("bytes", Ok(None)),
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

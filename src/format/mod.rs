//! Output formats: how result rows become bytes. Every encoder writes into a
//! buffer row by row, so exports stream with constant memory whatever their
//! size; the HTTP layer flushes the buffer in chunks.

mod csv;
mod geojson;
mod json;
pub mod rdf;

pub use self::csv::{CsvEncoder, CsvOptions};
pub use self::geojson::{GeoJsonEncoder, Geometry};
pub use self::json::{JsonEncoder, NdjsonEncoder};

use crate::domain::Value;

/// A representation a client may ask for with `Accept` or `?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Csv,
    Ndjson,
    GeoJson,
}

impl OutputFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Json => "application/json; charset=utf-8",
            OutputFormat::Csv => "text/csv; charset=utf-8",
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::GeoJson => "application/geo+json",
        }
    }

    /// Whether this format is a paged JSON answer (capped) or an export (streamed, uncapped).
    pub fn is_export(self) -> bool {
        !matches!(self, OutputFormat::Json)
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Csv => "csv",
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::GeoJson => "geojson",
        }
    }

    /// The format of an answer of this `Content-Type`, if it is one of ours.
    pub fn from_content_type(content_type: &str) -> Option<OutputFormat> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [
            OutputFormat::Json,
            OutputFormat::Csv,
            OutputFormat::Ndjson,
            OutputFormat::GeoJson,
        ]
        .into_iter()
        .find(|format| format.content_type().split(';').next() == Some(essence))
    }

    /// The names `?format=` takes, in the order problems list them.
    pub const NAMES: [&'static str; 4] = ["json", "csv", "ndjson", "geojson"];

    /// The format a `?format=` value names, if any.
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name {
            "json" => Some(OutputFormat::Json),
            "csv" => Some(OutputFormat::Csv),
            "ndjson" => Some(OutputFormat::Ndjson),
            "geojson" => Some(OutputFormat::GeoJson),
            _ => None,
        }
    }

    /// `?format=` wins over `Accept`; `*/*` and no header mean JSON. `None`
    /// when nothing acceptable is offered (406).
    pub fn negotiate(format_param: Option<&str>, accept: Option<&str>) -> Option<OutputFormat> {
        if let Some(name) = format_param {
            return OutputFormat::from_name(name);
        }
        let Some(accept) = accept else {
            return Some(OutputFormat::Json);
        };
        // Take the client's first acceptable type, in the order it listed them
        // (weights are rarely used by data clients; q=0 excludes).
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let excluded = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            if excluded {
                continue;
            }
            let format = match media.as_str() {
                "application/json" | "application/*" | "*/*" => Some(OutputFormat::Json),
                "text/csv" | "text/*" => Some(OutputFormat::Csv),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                    Some(OutputFormat::Ndjson)
                }
                "application/geo+json" => Some(OutputFormat::GeoJson),
                _ => None,
            };
            if format.is_some() {
                return format;
            }
        }
        if accept.trim().is_empty() {
            return Some(OutputFormat::Json);
        }
        None
    }
}

/// Writes rows of one format into a byte buffer.
pub trait RowEncoder: Send {
    fn begin(&mut self, out: &mut Vec<u8>);
    fn row(&mut self, out: &mut Vec<u8>, cells: &[Value]);
    fn end(&mut self, out: &mut Vec<u8>);
}

/// Writes a value as JSON.
pub(crate) fn write_json_value(out: &mut Vec<u8>, value: &Value, raw_json: bool) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(flag) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
        Value::Int(number) => out.extend_from_slice(itoa_i64(*number).as_bytes()),
        Value::Float(number) => {
            let _ = serde_json::to_writer(&mut *out, number);
        }
        Value::Text(text) if raw_json => out.extend_from_slice(text.as_bytes()),
        Value::Text(text) => {
            let _ = serde_json::to_writer(&mut *out, text);
        }
    }
}

fn itoa_i64(number: i64) -> String {
    number.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content negotiation follows the contract: `?format=` first, `*/*` is JSON.
    #[test]
    fn negotiates_formats() {
        let cases = [
            (None, None, Some(OutputFormat::Json)),
            (None, Some("*/*"), Some(OutputFormat::Json)),
            (None, Some("text/csv"), Some(OutputFormat::Csv)),
            (
                None,
                Some("application/geo+json"),
                Some(OutputFormat::GeoJson),
            ),
            (
                None,
                Some("application/x-ndjson"),
                Some(OutputFormat::Ndjson),
            ),
            (None, Some("image/png"), None),
            (
                None,
                Some("text/csv;q=0, application/json"),
                Some(OutputFormat::Json),
            ),
            (
                Some("csv"),
                Some("application/json"),
                Some(OutputFormat::Csv),
            ),
            (Some("xml"), None, None),
        ];
        for (parameter, accept, expected) in cases {
            assert_eq!(
                OutputFormat::negotiate(parameter, accept),
                expected,
                "{parameter:?} {accept:?}"
            );
        }
    }
}

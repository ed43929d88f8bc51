//! A typed cell value, the unit that flows from ingestion to the store and
//! from the store to the output formats, and the one parser that turns text
//! into a value of a column's type (used by ingestion and by query filters,
//! so `2024-01-05` in a CSV and in `?date=eq.2024-01-05` mean the same thing).

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use super::FieldType;

/// One cell. Dates, datetimes, geopoints and geometries travel as normalised
/// text (see [`FieldType`]), so both stores compare and sort them the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Why a text is not a value of a column's type. The message is shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Parses `text` as a value of `field_type`, normalising dates, datetimes
    /// and points. The empty string is not null here: callers decide what an
    /// empty cell means.
    pub fn parse(field_type: FieldType, text: &str) -> Result<Value, ValueError> {
        match field_type {
            // Neither store keeps a NUL in text (PostgreSQL refuses it).
            FieldType::String if text.contains('\0') => Err(ValueError(
                "a text value cannot hold the NUL character (U+0000)".into(),
            )),
            FieldType::String => Ok(Value::Text(text.to_owned())),
            FieldType::Integer => parse_integer(text),
            FieldType::Number => parse_number(text),
            FieldType::Boolean => parse_boolean(text),
            FieldType::Date => parse_date(text),
            FieldType::Datetime => parse_datetime(text),
            FieldType::Geopoint => parse_geopoint(text),
            FieldType::Geojson => parse_geojson(text),
        }
    }
}

fn parse_integer(text: &str) -> Result<Value, ValueError> {
    text.trim()
        .parse::<i64>()
        .map(Value::Int)
        .map_err(|_| ValueError(format!("`{text}` is not an integer")))
}

fn parse_number(text: &str) -> Result<Value, ValueError> {
    let trimmed = text.trim();
    // Rust accepts "inf" and "NaN"; neither is a number in a dataset.
    let finite = trimmed
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite());
    match finite {
        Some(number) if !trimmed.is_empty() => Ok(Value::Float(number)),
        _ => Err(ValueError(format!("`{text}` is not a number"))),
    }
}

fn parse_boolean(text: &str) -> Result<Value, ValueError> {
    match text.trim() {
        "true" | "True" | "TRUE" | "1" => Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" | "0" => Ok(Value::Bool(false)),
        _ => Err(ValueError(format!(
            "`{text}` is not a boolean (true or false)"
        ))),
    }
}

fn parse_date(text: &str) -> Result<Value, ValueError> {
    let trimmed = text.trim();
    let not_a_date = || ValueError(format!("`{text}` is not a date (YYYY-MM-DD)"));
    // The normalised form itself (every date an import writes, usually):
    // checked without chrono's format machinery, which took a sixth of an
    // import's processor time.
    if let Some(date) = canonical_date(trimmed) {
        return date
            .map(|_| Value::Text(trimmed.to_owned()))
            .ok_or_else(not_a_date);
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .map(|date| Value::Text(date.format("%Y-%m-%d").to_string()))
        .map_err(|_| not_a_date())
}

/// `Some(date)` for text of the form `DDDD-DD-DD` (`Some(None)` when no
/// such day exists); `None` for any other form, left to chrono.
fn canonical_date(text: &str) -> Option<Option<NaiveDate>> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit());
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
    };
    let year = i32::try_from(number(0..4)).ok()?;
    Some(NaiveDate::from_ymd_opt(year, number(5..7), number(8..10)))
}

fn parse_datetime(text: &str) -> Result<Value, ValueError> {
    let trimmed = text.trim();
    let utc = DateTime::parse_from_rfc3339(trimmed)
        .map(|datetime| datetime.with_timezone(&Utc))
        .or_else(|_| {
            // Without an offset, the time is taken as UTC.
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f"))
                .map(|naive| naive.and_utc())
        })
        .map_err(|_| {
            ValueError(format!(
                "`{text}` is not a datetime (RFC 3339, e.g. 2024-01-31T08:00:00Z)"
            ))
        })?;
    Ok(Value::Text(
        utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

fn parse_geopoint(text: &str) -> Result<Value, ValueError> {
    let invalid = || ValueError(format!("`{text}` is not a point (\"lat,lon\")"));
    let (lat, lon) = text.split_once(',').ok_or_else(invalid)?;
    let lat: f64 = lat.trim().parse().map_err(|_| invalid())?;
    let lon: f64 = lon.trim().parse().map_err(|_| invalid())?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(ValueError(format!(
            "`{text}` is outside latitude -90..90 or longitude -180..180"
        )));
    }
    Ok(Value::Text(format!("{lat},{lon}")))
}

fn parse_geojson(text: &str) -> Result<Value, ValueError> {
    let shown: String = text.chars().take(60).collect();
    let geometry: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| ValueError(format!("`{shown}` is not a GeoJSON geometry: {error}")))?;
    // The geojson crate knows the seven geometry types (RFC 7946 §3.1) and
    // the shape of their coordinates: `{"type": "Banana"}` is refused.
    serde_json::from_value::<geojson::Geometry>(geometry.clone())
        .map_err(|error| ValueError(format!("`{shown}` is not a GeoJSON geometry: {error}")))?;
    Ok(Value::Text(geometry.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NUL in text is refused on both stores alike (PostgreSQL cannot keep it).
    #[test]
    fn refuses_nul_in_text() {
        let error = Value::parse(FieldType::String, "a\0b").unwrap_err();
        assert!(error.0.contains("NUL"), "{}", error.0);
        assert_eq!(
            Value::parse(FieldType::String, "a b").unwrap(),
            Value::Text("a b".into())
        );
    }

    /// Dates in the normalised form take a shortcut; it answers as chrono does.
    #[test]
    fn canonical_dates_answer_as_chrono() {
        for text in [
            "2024-01-05",
            "2024-02-29",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "0000-01-01",
            "9999-12-31",
            " 2024-01-05 ",
            "2024-1-5",
            "2024/01/05",
            "2024-01-5x",
            "20240105",
            "+2024-01-05",
        ] {
            let chrono = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map(|date| Value::Text(date.format("%Y-%m-%d").to_string()))
                .ok();
            assert_eq!(parse_date(text).ok(), chrono, "{text:?}");
        }
        assert_eq!(canonical_date("2023-02-29"), Some(None));
        assert_eq!(canonical_date("2024-1-5"), None);
    }

    /// Every type accepts its canonical form and normalises it.
    #[test]
    fn parses_and_normalises_each_type() {
        let cases = [
            (FieldType::Integer, "42", Value::Int(42)),
            (FieldType::Integer, "-7", Value::Int(-7)),
            (FieldType::Number, "3.5", Value::Float(3.5)),
            (FieldType::Boolean, "TRUE", Value::Bool(true)),
            (FieldType::Boolean, "0", Value::Bool(false)),
            (
                FieldType::Date,
                "2024-02-29",
                Value::Text("2024-02-29".into()),
            ),
            (
                FieldType::Datetime,
                "2024-01-31T09:00:00+01:00",
                Value::Text("2024-01-31T08:00:00Z".into()),
            ),
            (
                FieldType::Datetime,
                "2024-01-31 08:00:00",
                Value::Text("2024-01-31T08:00:00Z".into()),
            ),
            (
                FieldType::Geopoint,
                "48.3, 4.08",
                Value::Text("48.3,4.08".into()),
            ),
            (
                FieldType::String,
                " spaced ",
                Value::Text(" spaced ".into()),
            ),
        ];
        for (field_type, text, expected) in cases {
            assert_eq!(Value::parse(field_type, text), Ok(expected), "{text}");
        }
    }

    /// The seven GeoJSON geometry types are accepted as they are.
    #[test]
    fn accepts_every_geojson_geometry() {
        for text in [
            r#"{"type":"Point","coordinates":[4.07,48.3]}"#,
            r#"{"type":"MultiPoint","coordinates":[[4.07,48.3],[4.1,48.2]]}"#,
            r#"{"type":"LineString","coordinates":[[4.07,48.3],[4.1,48.2]]}"#,
            r#"{"type":"MultiLineString","coordinates":[[[4.07,48.3],[4.1,48.2]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#,
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]}"#,
            r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]}]}"#,
        ] {
            assert!(Value::parse(FieldType::Geojson, text).is_ok(), "{text}");
        }
    }

    /// Wrong values are refused with a message naming the value.
    #[test]
    fn refuses_values_of_the_wrong_type() {
        let cases = [
            (FieldType::Integer, "4.2"),
            (FieldType::Integer, "99999999999999999999"),
            (FieldType::Number, "NaN"),
            (FieldType::Number, "inf"),
            (FieldType::Number, ""),
            (FieldType::Boolean, "yes"),
            (FieldType::Date, "2023-02-29"),
            (FieldType::Date, "31/01/2024"),
            (FieldType::Datetime, "tomorrow"),
            (FieldType::Geopoint, "91,0"),
            (FieldType::Geojson, "{}"),
            (
                FieldType::Geojson,
                r#"{"type":"Banana","coordinates":[1,2]}"#,
            ),
            (
                FieldType::Geojson,
                r#"{"type":"Point","coordinates":"here"}"#,
            ),
            (
                FieldType::Geojson,
                r#"{"type":"Polygon","coordinates":[1,2]}"#,
            ),
        ];
        for (field_type, text) in cases {
            let error = Value::parse(field_type, text).unwrap_err();
            assert!(error.0.contains(text), "{error}");
        }
    }
}

//! The SQL that makes PostgreSQL write NDJSON lines and GeoJSON features
//! itself (see [`super::copy`]): one text column per row, the JSON text
//! built by concatenation, byte for byte what
//! [`crate::format::NdjsonEncoder`] and [`crate::format::GeoJsonEncoder`]
//! write for the same row.
//!
//! That column is copied with `FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02'`:
//! JSON text never holds a raw `\x01`, `\x02`, CR or LF (strings escape
//! control characters, geometry columns hold `serde_json` output), and a
//! line is never empty nor `\.`, so PostgreSQL never quotes it and each row
//! arrives as its JSON text and `\n`.
//!
//! Keys are constants: `serde_json` escapes them, then they are written as
//! SQL literals with their single quotes doubled (`standard_conforming_strings`
//! is on in the export's transaction), never spliced unescaped.
//! Values: integers as PostgreSQL writes them; booleans `true`/`false`;
//! strings through `to_json(text)`, which escapes as `serde_json` does
//! (`"`, `\`, `\b \f \n \r \t`, other control characters as lowercase
//! `\u00XX`; `/`, DEL and non-ASCII as they are); floats rewritten to `serde_json`'s
//! layout ([`float_json`]); null as `null`.

use super::sql::CellKind;
use crate::format::Geometry;

/// `WITH (…)` options under which a one-column `COPY` writes each text as is.
pub const LINE_OPTIONS: &str = "FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02'";

/// One piece of a line: constant JSON text or a SQL expression giving text.
enum Piece {
    Text(String),
    Sql(String),
}

/// The pieces joined with `||`, adjacent constants merged into one literal.
fn concatenation(pieces: Vec<Piece>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut constant = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => constant.push_str(&text),
            Piece::Sql(expression) => {
                if !constant.is_empty() {
                    parts.push(literal(&std::mem::take(&mut constant)));
                }
                parts.push(expression);
            }
        }
    }
    if !constant.is_empty() || parts.is_empty() {
        parts.push(literal(&constant));
    }
    parts.join(" || ")
}

/// A SQL string literal holding `text` (with `standard_conforming_strings` on).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A key as `serde_json` writes it, followed by `:`.
fn key_text(key: &str) -> String {
    let mut text = serde_json::to_string(key).unwrap_or_default();
    text.push(':');
    text
}

/// `{"key":value,…}` of the output columns `c1…cN`, as
/// [`crate::format::NdjsonEncoder`] writes a row (`raw_json[i]`: column i
/// holds JSON text, embedded as is).
pub fn ndjson_line(keys: &[String], kinds: &[CellKind], raw_json: &[bool]) -> String {
    let mut pieces = vec![Piece::Text("{".to_owned())];
    for (index, (key, kind)) in keys.iter().zip(kinds).enumerate() {
        let separator = if index > 0 { "," } else { "" };
        pieces.push(Piece::Text(format!("{separator}{}", key_text(key))));
        let raw = raw_json.get(index).copied().unwrap_or(false);
        pieces.push(Piece::Sql(json_value(*kind, raw, &column(index))));
    }
    pieces.push(Piece::Text("}".to_owned()));
    concatenation(pieces)
}

/// One `{"type":"Feature",…}` of the output columns `c1…cN`, as
/// [`crate::format::GeoJsonEncoder`] writes a row (the collection around
/// the features and the commas between them are the gateway's).
pub fn feature_line(keys: &[String], kinds: &[CellKind], geometry: Option<Geometry>) -> String {
    let mut pieces = vec![Piece::Text(
        "{\"type\":\"Feature\",\"geometry\":".to_owned(),
    )];
    pieces.push(geometry_piece(kinds, geometry));
    pieces.push(Piece::Text(",\"properties\":{".to_owned()));
    let hidden = match geometry {
        Some(Geometry::GeoJson(position)) => Some(position),
        _ => None,
    };
    let mut first = true;
    for (index, (key, kind)) in keys.iter().zip(kinds).enumerate() {
        if hidden == Some(index) {
            continue;
        }
        let separator = if first { "" } else { "," };
        first = false;
        pieces.push(Piece::Text(format!("{separator}{}", key_text(key))));
        pieces.push(Piece::Sql(json_value(*kind, false, &column(index))));
    }
    pieces.push(Piece::Text("}}".to_owned()));
    concatenation(pieces)
}

/// The name of output column `index` (0-based) in the `COPY`'s subquery.
fn column(index: usize) -> String {
    format!("c{}", index + 1)
}

/// A feature's geometry, as the encoder finds it: numbers in lat/lon
/// columns (a text or boolean column gives none), a `"lat,lon"` text, a
/// GeoJSON text embedded as is, else `null`.
fn geometry_piece(kinds: &[CellKind], geometry: Option<Geometry>) -> Piece {
    let numeric =
        |position: usize| matches!(kinds.get(position), Some(CellKind::Int | CellKind::Float));
    match geometry {
        Some(Geometry::LatLon { lat, lon }) if numeric(lat) && numeric(lon) => {
            let (lat, lon) = (column(lat), column(lon));
            Piece::Sql(format!(
                "CASE WHEN {lat} IS NULL OR {lon} IS NULL THEN 'null' ELSE {} END",
                point(&format!("{lat}::float8"), &format!("{lon}::float8"))
            ))
        }
        Some(Geometry::Point(position)) if kinds.get(position) == Some(&CellKind::Text) => {
            let text = column(position);
            // Rust's `f64` parsing of the two halves, in its decimal form
            // without exponent (points are stored as Rust writes floats); any
            // other text is no point, as when Rust cannot parse it.
            let number = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)";
            Piece::Sql(format!(
                "CASE WHEN {text} ~ '^{number},{number}$' THEN {} ELSE 'null' END",
                point(
                    &format!("split_part({text}, ',', 1)::float8"),
                    &format!("split_part({text}, ',', 2)::float8")
                )
            ))
        }
        Some(Geometry::GeoJson(position)) if kinds.get(position) == Some(&CellKind::Text) => {
            Piece::Sql(format!("COALESCE({}, 'null')", column(position)))
        }
        _ => Piece::Text("null".to_owned()),
    }
}

/// `{"type":"Point","coordinates":[lon,lat]}` of two float expressions.
fn point(lat: &str, lon: &str) -> String {
    format!(
        "'{{\"type\":\"Point\",\"coordinates\":[' || {} || ',' || {} || ']}}'",
        float_json(lon),
        float_json(lat)
    )
}

/// A cell as JSON text, `null` for a null.
fn json_value(kind: CellKind, raw_json: bool, column: &str) -> String {
    match kind {
        CellKind::Int => format!("COALESCE({column}::text, 'null')"),
        CellKind::Bool => {
            format!("CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' ELSE 'null' END")
        }
        CellKind::Text if raw_json => format!("COALESCE({column}, 'null')"),
        CellKind::Text => format!("COALESCE(to_json({column})::text, 'null')"),
        CellKind::Float => format!("COALESCE({}, 'null')", float_json(column)),
    }
}

/// A double as `serde_json` writes it (its `zmij` formatter); null for a null.
///
/// Both write the same shortest digits (`extra_float_digits = 1`), laid out
/// differently. `serde_json` writes fixed notation for values in [1e-5,
/// 1e16) with `.0` after an integer (`100.0`, `0.00001`,
/// `1000000000000000.0`), else `d.ddde±<exp>` or `de±<exp>` without leading
/// zeros in the exponent (`1e+20`, `1.5e-7`, `5e-324`), `-0.0` for minus
/// zero and `null` for what is not finite. PostgreSQL writes fixed notation
/// in [1e-4, 1e15) without the `.0`, else at least two exponent digits
/// (`1e+20`, `1.5e-07`).
///
/// The common case is tested first by range, on the double (far cheaper per
/// row than taking the text apart): there an integer gets `.0`, anything
/// else is written as it is. Only the others are rewritten from the text.
pub fn float_json(value: &str) -> String {
    let text = format!("{value}::text");
    let sign = format!("CASE WHEN {value} < 0 THEN '-' ELSE '' END");
    let mantissa = format!("split_part(ltrim({text}, '-'), 'e', 1)");
    let exponent = format!("split_part({text}, 'e', 2)::int");
    let digits = format!("replace({mantissa}, '.', '')");
    format!(
        "CASE WHEN ({value} >= 1e-4::float8 AND {value} < 1e15::float8) \
         OR ({value} <= -1e-4::float8 AND {value} > -1e15::float8) \
         THEN CASE WHEN {value} = trunc({value}) THEN {text} || '.0' ELSE {text} END \
         WHEN {value} = 0 THEN {text} || '.0' \
         WHEN {value} = 'NaN'::float8 OR {value} = 'Infinity'::float8 OR {value} = '-Infinity'::float8 THEN 'null' \
         WHEN {exponent} = -5 THEN {sign} || '0.0000' || {digits} \
         WHEN {exponent} = 15 AND length({digits}) <= 16 THEN {sign} || {digits} || repeat('0', 16 - length({digits})) || '.0' \
         WHEN {exponent} = 15 THEN {sign} || left({digits}, 16) || '.' || substr({digits}, 17) \
         ELSE replace({text}, 'e-0', 'e-') END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are escaped as JSON, then as SQL literals; constants are merged.
    #[test]
    fn lines_quote_their_keys() {
        let keys = vec!["id".to_owned(), "l'a \"b\"\n".to_owned()];
        let line = ndjson_line(&keys, &[CellKind::Int, CellKind::Text], &[false, false]);
        assert!(
            line.starts_with("'{\"id\":' || COALESCE(c1::text, 'null') || ',\"l''a \\\"b\\\"\\n\":' || COALESCE(to_json(c2)::text, 'null') || '}'"),
            "{line}"
        );
        let raw = ndjson_line(&keys[..1], &[CellKind::Text], &[true]);
        assert_eq!(raw, "'{\"id\":' || COALESCE(c1, 'null') || '}'");
    }

    /// The geometry column of a GeoJSON feature is not among its properties;
    /// without one the geometry is `null`.
    #[test]
    fn features_place_their_geometry() {
        let keys = vec!["g".to_owned(), "n".to_owned()];
        let kinds = [CellKind::Text, CellKind::Int];
        let line = feature_line(&keys, &kinds, Some(Geometry::GeoJson(0)));
        assert_eq!(
            line,
            "'{\"type\":\"Feature\",\"geometry\":' || COALESCE(c1, 'null') || ',\"properties\":{\"n\":' || COALESCE(c2::text, 'null') || '}}'"
        );
        let line = feature_line(&keys, &kinds, None);
        assert!(
            line.starts_with(
                "'{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"g\":' || "
            ),
            "{line}"
        );
        let line = feature_line(
            &["lat".to_owned(), "lon".to_owned()],
            &[CellKind::Float, CellKind::Int],
            Some(Geometry::LatLon { lat: 0, lon: 1 }),
        );
        assert!(
            line.contains("CASE WHEN c1 IS NULL OR c2 IS NULL THEN 'null'"),
            "{line}"
        );
        assert!(line.contains("c2::float8::text"), "{line}");
        // A text "latitude" gives no point, as in the encoder.
        let line = feature_line(
            &["lat".to_owned(), "lon".to_owned()],
            &[CellKind::Text, CellKind::Float],
            Some(Geometry::LatLon { lat: 0, lon: 1 }),
        );
        assert!(line.contains("\"geometry\":null,"), "{line}");
    }

    /// Floats in PostgreSQL's fixed range are tested for first, on the
    /// double; the text is taken apart only after, and non-finite values
    /// and nulls are `null`.
    #[test]
    fn floats_take_the_cheap_test_first() {
        let sql = float_json("c3");
        assert!(
            sql.starts_with(
                "CASE WHEN (c3 >= 1e-4::float8 AND c3 < 1e15::float8) OR (c3 <= -1e-4::float8 AND c3 > -1e15::float8) \
                 THEN CASE WHEN c3 = trunc(c3) THEN c3::text || '.0' ELSE c3::text END "
            ),
            "{sql}"
        );
        let split = sql.find("split_part").expect("a rewrite");
        assert!(sql.find("'Infinity'::float8").unwrap() < split, "{sql}");
        assert!(
            sql.ends_with("ELSE replace(c3::text, 'e-0', 'e-') END"),
            "{sql}"
        );
        assert_eq!(
            json_value(CellKind::Float, false, "c3"),
            format!("COALESCE({sql}, 'null')")
        );
    }

    /// A read of no column is still one (empty) object a line.
    #[test]
    fn empty_objects() {
        assert_eq!(ndjson_line(&[], &[], &[]), "'{}'");
    }
}

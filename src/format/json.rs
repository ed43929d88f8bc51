//! JSON (an array of objects, PostgREST's shape) and NDJSON (one object a line).

use super::{RowEncoder, write_json_value};
use crate::domain::Value;

/// Keys are escaped once, when the encoder is built.
fn escaped_keys(keys: &[String], raw_json: &[bool]) -> Vec<(Vec<u8>, bool)> {
    keys.iter()
        .zip(raw_json)
        .map(|(key, raw)| (serde_json::to_vec(key).unwrap_or_default(), *raw))
        .collect()
}

fn write_object(out: &mut Vec<u8>, keys: &[(Vec<u8>, bool)], cells: &[Value]) {
    out.push(b'{');
    for (position, ((key, raw), value)) in keys.iter().zip(cells).enumerate() {
        if position > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        out.push(b':');
        write_json_value(out, value, *raw);
    }
    out.push(b'}');
}

/// `[{…},{…}]`.
pub struct JsonEncoder {
    keys: Vec<(Vec<u8>, bool)>,
    first: bool,
}

impl JsonEncoder {
    /// `raw_json[i]`: column i holds JSON text (a GeoJSON geometry) to embed as is.
    pub fn new(keys: &[String], raw_json: &[bool]) -> Self {
        JsonEncoder {
            keys: escaped_keys(keys, raw_json),
            first: true,
        }
    }
}

impl RowEncoder for JsonEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        out.push(b'[');
    }

    fn row(&mut self, out: &mut Vec<u8>, cells: &[Value]) {
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        write_object(out, &self.keys, cells);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        out.push(b']');
    }
}

/// One JSON object per line.
pub struct NdjsonEncoder {
    keys: Vec<(Vec<u8>, bool)>,
}

impl NdjsonEncoder {
    pub fn new(keys: &[String], raw_json: &[bool]) -> Self {
        NdjsonEncoder {
            keys: escaped_keys(keys, raw_json),
        }
    }
}

impl RowEncoder for NdjsonEncoder {
    fn begin(&mut self, _out: &mut Vec<u8>) {}

    fn row(&mut self, out: &mut Vec<u8>, cells: &[Value]) {
        write_object(out, &self.keys, cells);
        out.push(b'\n');
    }

    fn end(&mut self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows become objects with escaped keys and typed values.
    #[test]
    fn encodes_arrays_and_lines() {
        let keys = vec![
            "id".to_owned(),
            "nom \"x\"".to_owned(),
            "geometry".to_owned(),
        ];
        let raw = [false, false, true];
        let rows = [
            vec![
                Value::Int(1),
                Value::Text("é\n".into()),
                Value::Text("{\"type\":\"Point\"}".into()),
            ],
            vec![Value::Float(2.5), Value::Null, Value::Null],
        ];
        let mut out = Vec::new();
        let mut encoder = JsonEncoder::new(&keys, &raw);
        encoder.begin(&mut out);
        for row in &rows {
            encoder.row(&mut out, row);
        }
        encoder.end(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"id":1,"nom \"x\"":"é\n","geometry":{"type":"Point"}},{"id":2.5,"nom \"x\"":null,"geometry":null}]"#
        );
        let mut out = Vec::new();
        let mut encoder = NdjsonEncoder::new(&keys[..1], &raw[..1]);
        encoder.row(&mut out, &[Value::Bool(true)]);
        assert_eq!(out, b"{\"id\":true}\n");
    }

    /// An empty answer is an empty array.
    #[test]
    fn encodes_empty_array() {
        let mut out = Vec::new();
        let mut encoder = JsonEncoder::new(&[], &[]);
        encoder.begin(&mut out);
        encoder.end(&mut out);
        assert_eq!(out, b"[]");
    }
}

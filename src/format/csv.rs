//! CSV for spreadsheet users: UTF-8, a header row even when no row matches,
//! an empty cell for null, `,` by default or `;`, optional BOM.

use super::RowEncoder;
use crate::domain::Value;

/// Options from `?csv_sep=` and `?bom=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    pub separator: u8,
    pub bom: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            separator: b',',
            bom: false,
        }
    }
}

pub struct CsvEncoder {
    keys: Vec<String>,
    options: CsvOptions,
}

impl CsvEncoder {
    pub fn new(keys: &[String], options: CsvOptions) -> Self {
        CsvEncoder {
            keys: keys.to_vec(),
            options,
        }
    }

    /// RFC 4180: a field is quoted when it holds the separator, a quote or a line break.
    fn write_field(&self, out: &mut Vec<u8>, field: &[u8]) {
        let needs_quotes = field
            .iter()
            .any(|&byte| byte == self.options.separator || matches!(byte, b'"' | b'\r' | b'\n'));
        if !needs_quotes {
            out.extend_from_slice(field);
            return;
        }
        out.push(b'"');
        for &byte in field {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    }
}

impl RowEncoder for CsvEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        if self.options.bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        for (position, key) in self.keys.iter().enumerate() {
            if position > 0 {
                out.push(self.options.separator);
            }
            self.write_field(out, key.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    fn row(&mut self, out: &mut Vec<u8>, cells: &[Value]) {
        for (position, value) in cells.iter().enumerate() {
            if position > 0 {
                out.push(self.options.separator);
            }
            match value {
                Value::Null => {}
                Value::Bool(flag) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
                Value::Int(integer) => out.extend_from_slice(integer.to_string().as_bytes()),
                Value::Float(float) => out.extend_from_slice(float.to_string().as_bytes()),
                Value::Text(text) => self.write_field(out, text.as_bytes()),
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    fn end(&mut self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quoting, nulls, separators and the BOM behave as spreadsheets expect.
    #[test]
    fn encodes_csv() {
        let keys = vec!["commune".to_owned(), "conso".to_owned()];
        let mut out = Vec::new();
        let mut encoder = CsvEncoder::new(
            &keys,
            CsvOptions {
                separator: b';',
                bom: true,
            },
        );
        encoder.begin(&mut out);
        encoder.row(
            &mut out,
            &[Value::Text("Troyes; \"centre\"".into()), Value::Float(1.5)],
        );
        encoder.row(&mut out, &[Value::Null, Value::Int(2)]);
        encoder.end(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{feff}commune;conso\r\n\"Troyes; \"\"centre\"\"\";1.5\r\n;2\r\n"
        );
    }

    /// The header row is written even when no row matches.
    #[test]
    fn header_without_rows() {
        let mut out = Vec::new();
        let mut encoder = CsvEncoder::new(&["a".to_owned()], CsvOptions::default());
        encoder.begin(&mut out);
        encoder.end(&mut out);
        assert_eq!(out, b"a\r\n");
    }
}

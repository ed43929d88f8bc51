//! GeoJSON FeatureCollections for datasets with a geometry: latitude and
//! longitude columns, a `geopoint` column, or a GeoJSON geometry column.

use super::{RowEncoder, write_json_value};
use crate::domain::Value;

/// Where a row's geometry is, as positions in the output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    LatLon {
        lat: usize,
        lon: usize,
    },
    /// `"lat,lon"` text.
    Point(usize),
    /// GeoJSON geometry text.
    GeoJson(usize),
}

pub struct GeoJsonEncoder {
    keys: Vec<Vec<u8>>,
    geometry: Option<Geometry>,
    first: bool,
}

impl GeoJsonEncoder {
    /// `geometry: None` when the selected columns carry no geometry: features get `null`.
    pub fn new(keys: &[String], geometry: Option<Geometry>) -> Self {
        GeoJsonEncoder {
            keys: keys
                .iter()
                .map(|key| serde_json::to_vec(key).unwrap_or_default())
                .collect(),
            geometry,
            first: true,
        }
    }

    fn write_geometry(&self, out: &mut Vec<u8>, cells: &[Value]) {
        let number = |value: Option<&Value>| match value {
            Some(Value::Float(number)) => Some(*number),
            Some(Value::Int(number)) => Some(*number as f64),
            _ => None,
        };
        match self.geometry {
            Some(Geometry::LatLon { lat, lon }) => {
                match (number(cells.get(lat)), number(cells.get(lon))) {
                    (Some(lat), Some(lon)) => write_point(out, lat, lon),
                    _ => out.extend_from_slice(b"null"),
                }
            }
            Some(Geometry::Point(position)) => {
                let point = match cells.get(position) {
                    Some(Value::Text(text)) => text
                        .split_once(',')
                        .and_then(|(lat, lon)| Some((lat.parse().ok()?, lon.parse().ok()?))),
                    _ => None,
                };
                match point {
                    Some((lat, lon)) => write_point(out, lat, lon),
                    None => out.extend_from_slice(b"null"),
                }
            }
            Some(Geometry::GeoJson(position)) => match cells.get(position) {
                Some(value @ Value::Text(_)) => write_json_value(out, value, true),
                _ => out.extend_from_slice(b"null"),
            },
            None => out.extend_from_slice(b"null"),
        }
    }
}

fn write_point(out: &mut Vec<u8>, lat: f64, lon: f64) {
    out.extend_from_slice(b"{\"type\":\"Point\",\"coordinates\":[");
    let _ = serde_json::to_writer(&mut *out, &lon);
    out.push(b',');
    let _ = serde_json::to_writer(&mut *out, &lat);
    out.extend_from_slice(b"]}");
}

impl RowEncoder for GeoJsonEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"FeatureCollection\",\"features\":[");
    }

    fn row(&mut self, out: &mut Vec<u8>, cells: &[Value]) {
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        out.extend_from_slice(b"{\"type\":\"Feature\",\"geometry\":");
        self.write_geometry(out, cells);
        out.extend_from_slice(b",\"properties\":{");
        let hidden = match self.geometry {
            Some(Geometry::GeoJson(position)) => vec![position],
            _ => Vec::new(),
        };
        let mut first = true;
        for (position, (key, value)) in self.keys.iter().zip(cells).enumerate() {
            if hidden.contains(&position) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            out.push(b':');
            write_json_value(out, value, false);
        }
        out.extend_from_slice(b"}}");
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lat/lon columns become GeoJSON points (longitude first).
    #[test]
    fn encodes_points() {
        let keys = vec!["nom".to_owned(), "lat".to_owned(), "lon".to_owned()];
        let mut out = Vec::new();
        let mut encoder = GeoJsonEncoder::new(&keys, Some(Geometry::LatLon { lat: 1, lon: 2 }));
        encoder.begin(&mut out);
        encoder.row(
            &mut out,
            &[
                Value::Text("Mairie".into()),
                Value::Float(48.3),
                Value::Float(4.07),
            ],
        );
        encoder.row(
            &mut out,
            &[Value::Text("?".into()), Value::Null, Value::Float(4.0)],
        );
        encoder.end(&mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed["features"][0]["geometry"]["coordinates"],
            serde_json::json!([4.07, 48.3])
        );
        assert_eq!(parsed["features"][0]["properties"]["nom"], "Mairie");
        assert!(parsed["features"][1]["geometry"].is_null());
    }

    /// Geopoint text and GeoJSON geometry columns are both understood.
    #[test]
    fn encodes_geopoints_and_geometries() {
        let mut out = Vec::new();
        let mut encoder = GeoJsonEncoder::new(&["p".to_owned()], Some(Geometry::Point(0)));
        encoder.row(&mut out, &[Value::Text("48.3,4.07".into())]);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("\"coordinates\":[4.07,48.3]")
        );
        let mut out = Vec::new();
        let mut encoder = GeoJsonEncoder::new(
            &["g".to_owned(), "n".to_owned()],
            Some(Geometry::GeoJson(0)),
        );
        encoder.row(
            &mut out,
            &[
                Value::Text("{\"type\":\"Point\",\"coordinates\":[1,2]}".into()),
                Value::Int(3),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,2]},\"properties\":{\"n\":3}}"
        );
    }
}

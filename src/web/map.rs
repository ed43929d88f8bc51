//! The map of a geographic dataset's page: the geometries of the preview's
//! rows (the rows the page already read, with the caller's columns and row
//! filter: the map never shows a feature the table does not), drawn as SVG
//! on the server. No tiles, no script, no request to another site: an
//! equirectangular projection fitted to the features' extent, longitudes
//! shrunk by the cosine of the mean latitude so shapes keep their aspect.

use serde_json::Value as Json;

use crate::catalog::entry::GeometryColumns;
use crate::domain::Value;
use crate::store::sql::OutputColumn;

/// The map's size in SVG units.
pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 400.0;
const PADDING: f64 = 20.0;

/// A geometry in longitude/latitude.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Point(f64, f64),
    /// Lines and polygon rings: (longitude, latitude) vertices.
    Path {
        rings: Vec<Vec<(f64, f64)>>,
        closed: bool,
    },
}

/// One drawn feature: a point (`cx`, `cy`) or a path (`d`), and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub point: Option<(String, String)>,
    pub path: Option<String>,
    pub closed: bool,
    pub label: String,
}

/// The preview rows' geometries as marks; `None` when no row has one (or
/// the geometry's columns are not among the shown columns).
pub fn draw(
    geometry: GeometryColumns,
    schema_names: &[String],
    columns: &[OutputColumn],
    rows: &[Vec<Value>],
    label_column: Option<usize>,
) -> Option<Vec<Mark>> {
    let position = |schema_index: usize| {
        let name = schema_names.get(schema_index)?;
        columns
            .iter()
            .position(|column| column.source == Some(schema_index) || &column.key == name)
    };
    let number = |value: Option<&Value>| match value {
        Some(Value::Float(number)) if number.is_finite() => Some(*number),
        Some(Value::Int(number)) => Some(*number as f64),
        _ => None,
    };
    let shapes: Vec<(usize, Shape)> = match geometry {
        GeometryColumns::LatLon { lat, lon } => {
            let (lat, lon) = (position(lat)?, position(lon)?);
            rows.iter()
                .enumerate()
                .filter_map(|(index, row)| {
                    let (lat, lon) = (number(row.get(lat))?, number(row.get(lon))?);
                    valid(lon, lat).then_some((index, Shape::Point(lon, lat)))
                })
                .collect()
        }
        GeometryColumns::Point(column) => {
            let column = position(column)?;
            rows.iter()
                .enumerate()
                .filter_map(|(index, row)| match row.get(column) {
                    Some(Value::Text(text)) => {
                        let (lat, lon) = text.split_once(',')?;
                        let (lat, lon) = (lat.trim().parse().ok()?, lon.trim().parse().ok()?);
                        valid(lon, lat).then_some((index, Shape::Point(lon, lat)))
                    }
                    _ => None,
                })
                .collect()
        }
        GeometryColumns::GeoJson(column) => {
            let column = position(column)?;
            rows.iter()
                .enumerate()
                .filter_map(|(index, row)| match row.get(column) {
                    Some(Value::Text(text)) => {
                        let json: Json = serde_json::from_str(text).ok()?;
                        Some((index, shape_of(&json)?))
                    }
                    _ => None,
                })
                .collect()
        }
    };
    if shapes.is_empty() {
        return None;
    }
    let vertices = shapes.iter().flat_map(|(_, shape)| match shape {
        Shape::Point(lon, lat) => vec![(*lon, *lat)],
        Shape::Path { rings, .. } => rings.iter().flatten().copied().collect(),
    });
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (lon, lat) in vertices {
        west = west.min(lon);
        east = east.max(lon);
        south = south.min(lat);
        north = north.max(lat);
    }
    let shrink = ((south + north) / 2.0).to_radians().cos().max(0.01);
    // A single place (or a line of them) still gets a sensible extent.
    let span_x = ((east - west) * shrink).max(1e-4);
    let span_y = (north - south).max(1e-4);
    let scale = ((WIDTH - 2.0 * PADDING) / span_x).min((HEIGHT - 2.0 * PADDING) / span_y);
    // Centred on the extent's middle: a single place is drawn in the middle.
    let (middle_lon, middle_lat) = ((west + east) / 2.0, (south + north) / 2.0);
    let project = |lon: f64, lat: f64| {
        (
            WIDTH / 2.0 + (lon - middle_lon) * shrink * scale,
            HEIGHT / 2.0 - (lat - middle_lat) * scale,
        )
    };
    let unit = |value: f64| format!("{value:.1}");
    let marks = shapes
        .into_iter()
        .map(|(index, shape)| {
            let label = label_column
                .and_then(|column| rows[index].get(column))
                .and_then(|value| match value {
                    Value::Text(text) => Some(text.clone()),
                    Value::Int(number) => Some(number.to_string()),
                    Value::Float(number) => Some(number.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| format!("#{}", index + 1));
            match shape {
                Shape::Point(lon, lat) => {
                    let (x, y) = project(lon, lat);
                    Mark {
                        point: Some((unit(x), unit(y))),
                        path: None,
                        closed: false,
                        label,
                    }
                }
                Shape::Path { rings, closed } => {
                    let mut d = String::new();
                    for ring in &rings {
                        for (vertex, (lon, lat)) in ring.iter().enumerate() {
                            let (x, y) = project(*lon, *lat);
                            let command = if vertex == 0 { 'M' } else { 'L' };
                            d.push_str(&format!("{command}{} {} ", unit(x), unit(y)));
                        }
                        if closed {
                            d.push_str("Z ");
                        }
                    }
                    Mark {
                        point: None,
                        path: Some(d.trim_end().to_owned()),
                        closed,
                        label,
                    }
                }
            }
        })
        .collect();
    Some(marks)
}

fn valid(lon: f64, lat: f64) -> bool {
    lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat)
}

/// A GeoJSON geometry as a shape (multi-geometries as one path).
fn shape_of(geometry: &Json) -> Option<Shape> {
    let position = |value: &Json| {
        let pair = value.as_array()?;
        let (lon, lat) = (pair.first()?.as_f64()?, pair.get(1)?.as_f64()?);
        valid(lon, lat).then_some((lon, lat))
    };
    let line = |value: &Json| -> Option<Vec<(f64, f64)>> {
        value.as_array()?.iter().map(position).collect()
    };
    let rings = |value: &Json| -> Option<Vec<Vec<(f64, f64)>>> {
        value.as_array()?.iter().map(line).collect()
    };
    let coordinates = geometry.get("coordinates")?;
    match geometry.get("type")?.as_str()? {
        "Point" => position(coordinates).map(|(lon, lat)| Shape::Point(lon, lat)),
        "LineString" => Some(Shape::Path {
            rings: vec![line(coordinates)?],
            closed: false,
        }),
        "MultiLineString" => Some(Shape::Path {
            rings: rings(coordinates)?,
            closed: false,
        }),
        "Polygon" => Some(Shape::Path {
            rings: rings(coordinates)?,
            closed: true,
        }),
        "MultiPolygon" => {
            let polygons = coordinates.as_array()?;
            let mut all = Vec::new();
            for polygon in polygons {
                all.extend(rings(polygon)?);
            }
            Some(Shape::Path {
                rings: all,
                closed: true,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::CellKind;

    fn column(key: &str, source: usize) -> OutputColumn {
        OutputColumn {
            key: key.to_owned(),
            kind: CellKind::Text,
            source: Some(source),
        }
    }

    /// Points are fitted inside the frame, north up; labels come from a column.
    #[test]
    fn draws_points_north_up() {
        let names = vec!["nom".to_owned(), "position".to_owned()];
        let columns = vec![column("nom", 0), column("position", 1)];
        let rows = vec![
            vec![Value::Text("Nord".into()), Value::Text("48.4,4.0".into())],
            vec![Value::Text("Sud".into()), Value::Text("48.2,4.1".into())],
            vec![Value::Text("Sans".into()), Value::Null],
        ];
        let marks = draw(GeometryColumns::Point(1), &names, &columns, &rows, Some(0)).unwrap();
        assert_eq!(marks.len(), 2, "a row without a geometry is not drawn");
        let y = |mark: &Mark| mark.point.as_ref().unwrap().1.parse::<f64>().unwrap();
        assert_eq!(marks[0].label, "Nord");
        assert!(y(&marks[0]) < y(&marks[1]), "north is up");
        for mark in &marks {
            let (x, y) = mark.point.clone().unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((PADDING - 0.1..=WIDTH - PADDING + 0.1).contains(&x));
            assert!((PADDING - 0.1..=HEIGHT - PADDING + 0.1).contains(&y));
        }
        // One place only: in the middle.
        let single = draw(
            GeometryColumns::Point(1),
            &names,
            &columns,
            &rows[..1],
            Some(0),
        )
        .unwrap();
        assert_eq!(
            single[0].point,
            Some(("320.0".to_owned(), "200.0".to_owned()))
        );
        // The geometry column not shown: no map.
        let shown = vec![column("nom", 0)];
        assert!(draw(GeometryColumns::Point(1), &names, &shown, &rows, Some(0)).is_none());
    }

    /// GeoJSON polygons become closed paths; garbage is skipped.
    #[test]
    fn draws_geojson_shapes() {
        let names = vec!["geometry".to_owned()];
        let columns = vec![column("geometry", 0)];
        let polygon =
            r#"{"type":"Polygon","coordinates":[[[4.0,48.0],[4.1,48.0],[4.1,48.1],[4.0,48.0]]]}"#;
        let rows = vec![
            vec![Value::Text(polygon.into())],
            vec![Value::Text("not json".into())],
            vec![Value::Text(
                r#"{"type":"Point","coordinates":[400,1]}"#.into(),
            )],
        ];
        let marks = draw(GeometryColumns::GeoJson(0), &names, &columns, &rows, None).unwrap();
        assert_eq!(marks.len(), 1);
        let path = marks[0].path.as_deref().unwrap();
        assert!(path.starts_with('M') && path.ends_with('Z'), "{path}");
        assert!(marks[0].closed);
        assert_eq!(marks[0].label, "#1");
    }
}

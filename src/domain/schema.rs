//! A dataset's columns, in the vocabulary of the Frictionless Table Schema.
//!
//! Only the subset the gateway acts on is modelled; unknown Table Schema keys
//! are accepted and ignored so stewards can keep richer descriptors.

use serde::{Deserialize, Serialize};

/// The type of a column, as Table Schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Integer,
    Number,
    String,
    Boolean,
    /// ISO 8601 calendar date, stored as `YYYY-MM-DD` text.
    Date,
    /// ISO 8601 date and time, stored as RFC 3339 text in UTC (`…Z`).
    Datetime,
    /// A point, stored as `"lat,lon"` text (Table Schema's default geopoint format).
    Geopoint,
    /// A GeoJSON geometry object, stored as JSON text.
    Geojson,
}

impl FieldType {
    /// Whether values of this type are compared as numbers.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::Number)
    }

    /// Whether every value of this type is also a value of `wider`, so
    /// stored rows can change column type without losing anything: an
    /// integer is a number; integers, numbers, dates, date-times and points
    /// are strings (their stored text, or their decimal writing). A boolean
    /// is not widened to a string (stored as 0/1 on SQLite, it would read
    /// back as `0`, not `false`).
    pub fn widens_to(self, wider: FieldType) -> bool {
        use FieldType::*;
        matches!(
            (self, wider),
            (Integer, Number) | (Integer | Number | Date | Datetime | Geopoint, String)
        )
    }
}

/// The Table Schema constraints the gateway acts on (others are accepted
/// and ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Constraints {
    /// Every row must have a value in this column (no null, no empty cell).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

impl Constraints {
    fn is_empty(&self) -> bool {
        !self.required
    }
}

/// Whether a column holds data about people (GDPR). Personal columns never
/// appear in a view unless a rule names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Personal,
}

/// One column of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Decimal separator used in the source file for `number` columns (`","` in French CSVs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    /// Create an index on this column so filters on it stay fast.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub filterable: bool,
    #[serde(default, skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
}

impl Field {
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Field {
            name: name.into(),
            field_type,
            title: None,
            description: None,
            decimal_char: None,
            sensitivity: None,
            filterable: false,
            constraints: Constraints::default(),
        }
    }

    /// Whether every row must have a value here (`constraints.required`).
    pub fn is_required(&self) -> bool {
        self.constraints.required
    }

    pub fn is_personal(&self) -> bool {
        self.sensitivity == Some(Sensitivity::Personal)
    }
}

/// The ordered columns of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// One change of a schema that rows already stored can follow in place.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// A new nullable column: stored rows read null in it.
    AddColumn(Field),
    /// A column whose type widens (see [`FieldType::widens_to`]).
    WidenColumn { field: Field, from: FieldType },
}

/// Why a schema change cannot apply to stored rows: the field to blame (a
/// path such as `schema.fields.passages.type`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompatibleChange {
    pub field: String,
    pub reason: String,
}

impl IncompatibleChange {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> IncompatibleChange {
        IncompatibleChange {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The in-place changes that take rows stored under `stored` to `declared`:
/// new nullable columns (anywhere) and widened types. Everything else
/// (a column removed or renamed, existing columns reordered, a narrower or
/// unrelated type, a new required column, another primary key, another
/// index or decimal separator on a kept column) is an [`IncompatibleChange`]
/// each, so every offending field is named. An empty list: same storage.
pub fn compatible_changes(
    stored: &Schema,
    declared: &Schema,
) -> Result<Vec<SchemaChange>, Vec<IncompatibleChange>> {
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    if stored.primary_key != declared.primary_key {
        refused.push(IncompatibleChange::new(
            "schema.primaryKey",
            "the primary key of stored rows cannot change",
        ));
    }
    let mut last_position = None;
    for old in &stored.fields {
        let path = format!("schema.fields.{}", old.name);
        let Some(position) = declared.position(&old.name) else {
            refused.push(IncompatibleChange::new(
                path,
                "a column of the stored rows cannot be removed or renamed",
            ));
            continue;
        };
        if last_position.is_some_and(|last| position < last) {
            refused.push(IncompatibleChange::new(
                path.clone(),
                "the stored columns cannot be reordered",
            ));
        }
        last_position = Some(position);
        let new = &declared.fields[position];
        if new.filterable != old.filterable {
            refused.push(IncompatibleChange::new(
                format!("{path}.filterable"),
                "the index of a column of stored rows cannot change",
            ));
        }
        if new.is_required() && !old.is_required() {
            refused.push(IncompatibleChange::new(
                format!("{path}.constraints.required"),
                "stored rows may have no value in this column: it cannot become required",
            ));
        }
        if new.field_type == old.field_type {
            if new.decimal_char != old.decimal_char && old.field_type == FieldType::Number {
                refused.push(IncompatibleChange::new(
                    format!("{path}.decimalChar"),
                    "stored numbers were read with the previous decimal separator",
                ));
            }
        } else if old.field_type.widens_to(new.field_type) {
            changes.push(SchemaChange::WidenColumn {
                field: new.clone(),
                from: old.field_type,
            });
        } else {
            refused.push(IncompatibleChange::new(
                format!("{path}.type"),
                format!(
                    "`{}` to `{}` is not a widening: stored values may not fit (integer to number, or integer, number, date, datetime, geopoint to string are)",
                    type_name(old.field_type),
                    type_name(new.field_type)
                ),
            ));
        }
    }
    for new in &declared.fields {
        if stored.field(&new.name).is_some() {
            continue;
        }
        if new.is_required() {
            refused.push(IncompatibleChange::new(
                format!("schema.fields.{}", new.name),
                "a new column of stored rows must be nullable (no `constraints.required`): the stored rows have no value for it",
            ));
        } else {
            changes.push(SchemaChange::AddColumn(new.clone()));
        }
    }
    if refused.is_empty() {
        Ok(changes)
    } else {
        Err(refused)
    }
}

/// The Table Schema name of a type (`integer`, `geopoint`…).
pub fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Integer => "integer",
        FieldType::Number => "number",
        FieldType::String => "string",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Geopoint => "geopoint",
        FieldType::Geojson => "geojson",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, FieldType)]) -> Schema {
        Schema {
            fields: fields
                .iter()
                .map(|(name, field_type)| Field::new(*name, *field_type))
                .collect(),
            primary_key: None,
        }
    }

    /// New nullable columns and widened types apply in place; the rest is
    /// refused naming each field.
    #[test]
    fn sorts_compatible_from_incompatible_changes() {
        let stored = schema(&[("a", FieldType::Integer), ("b", FieldType::Number)]);
        assert_eq!(compatible_changes(&stored, &stored), Ok(vec![]));
        let declared = schema(&[
            ("new", FieldType::Date),
            ("a", FieldType::Number),
            ("b", FieldType::String),
        ]);
        let changes = compatible_changes(&stored, &declared).unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(
            matches!(&changes[0], SchemaChange::WidenColumn { field, from: FieldType::Integer } if field.name == "a")
        );
        assert!(matches!(&changes[2], SchemaChange::AddColumn(field) if field.name == "new"));

        let mut required = schema(&[
            ("a", FieldType::Integer),
            ("b", FieldType::Number),
            ("c", FieldType::String),
        ]);
        required.fields[2].constraints.required = true;
        let refused = compatible_changes(&stored, &required).unwrap_err();
        assert_eq!(refused[0].field, "schema.fields.c");

        let narrowed = schema(&[("a", FieldType::Boolean), ("c", FieldType::String)]);
        let refused = compatible_changes(&stored, &narrowed).unwrap_err();
        let fields: Vec<&str> = refused.iter().map(|change| change.field.as_str()).collect();
        assert_eq!(fields, vec!["schema.fields.a.type", "schema.fields.b"]);
        let reordered = schema(&[("b", FieldType::Number), ("a", FieldType::Integer)]);
        assert!(compatible_changes(&stored, &reordered).is_err());
    }

    /// Widening is one way, and never from or to a boolean.
    #[test]
    fn widens_one_way() {
        assert!(FieldType::Integer.widens_to(FieldType::Number));
        assert!(FieldType::Number.widens_to(FieldType::String));
        assert!(!FieldType::Number.widens_to(FieldType::Integer));
        assert!(!FieldType::String.widens_to(FieldType::Integer));
        assert!(!FieldType::Boolean.widens_to(FieldType::String));
        assert!(!FieldType::Integer.widens_to(FieldType::Boolean));
        assert!(!FieldType::Integer.widens_to(FieldType::Integer));
    }

    /// `constraints.required` is read from Table Schema and written back only when set.
    #[test]
    fn reads_required_constraints() {
        let field: Field = serde_json::from_str(
            r#"{"name": "a", "type": "string", "constraints": {"required": true, "maxLength": 3}}"#,
        )
        .unwrap();
        assert!(field.is_required());
        let plain = serde_json::to_string(&Field::new("a", FieldType::String)).unwrap();
        assert!(!plain.contains("constraints"), "{plain}");
    }
}

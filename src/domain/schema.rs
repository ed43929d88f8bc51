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
        }
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

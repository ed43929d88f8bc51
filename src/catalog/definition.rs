//! The catalogue file format: one YAML or TOML file per dataset in `catalog/`.
//!
//! A definition is what a data steward writes. It is checked once, here, and
//! turned into a [`DatasetDefinition`] whose fields are valid by construction
//! (a slug id, a known access level, view columns that exist).

use serde::{Deserialize, Serialize};

use crate::domain::Schema;

/// Who may read a dataset's rows (the policy decides the details per level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Open,
    Partners,
    Internal,
    Confidential,
    /// Treated as closed: nothing is served until a steward decides.
    Undecided,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Open => "open",
            AccessLevel::Partners => "partners",
            AccessLevel::Internal => "internal",
            AccessLevel::Confidential => "confidential",
            AccessLevel::Undecided => "undecided",
        }
    }
}

/// Whether the catalogue entry itself is visible to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetadataVisibility {
    #[default]
    Public,
    Restricted,
}

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDefinition {
    /// A CSV or GeoJSON file, relative to the catalogue folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An existing SQL table in the store, served as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// `csv` or `geojson`; inferred from the file extension when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// CSV separator (`,` or `;`); detected from the header line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `utf-8` or `windows-1252`; detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// A per-role view: the in-between of open and closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewDefinition {
    /// Name the policy refers to.
    pub name: String,
    /// Columns the view shows; absent means every non-personal column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// A row filter in the read grammar (`commune=eq.${claims.org}`; several joined with `&`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    /// Only aggregates may be selected.
    #[serde(default)]
    pub aggregate_only: bool,
    /// Groups built from fewer rows are suppressed (statistical secrecy).
    #[serde(default = "default_min_group_size")]
    pub min_group_size: u32,
}

fn default_min_group_size() -> u32 {
    11
}

/// One dataset as declared in `catalog/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetDefinition {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub theme: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub publisher: String,
    pub licence: String,
    pub access: AccessLevel,
    #[serde(default)]
    pub metadata_visibility: MetadataVisibility,
    /// DCAT frequency (`daily`, `weekly`, `monthly`, `quarterly`, `annual`, `irregular`, …).
    #[serde(default)]
    pub update_frequency: Option<String>,
    #[serde(default)]
    pub personal_data: bool,
    pub source: SourceDefinition,
    /// Table Schema; inferred from the data when absent.
    #[serde(default)]
    pub schema: Option<Schema>,
    /// Names of the latitude and longitude columns, when they are not called `lat`/`lon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<GeometryDefinition>,
    #[serde(default)]
    pub views: Vec<ViewDefinition>,
}

/// How a dataset's rows are placed on a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometryDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<String>,
    /// A `geopoint` or `geojson` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

//! The catalogue file format: one YAML or TOML file per dataset in `catalog/`.
//!
//! A definition is what a data steward writes. It is checked once, here, and
//! turned into a [`DatasetDefinition`] whose fields are valid by construction
//! (a slug id, a known access level, view columns that exist).

use serde::{Deserialize, Serialize};

use super::register::{Confidentiality, ProcessingRecord, Review, Sharing, SourceKind};
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

/// Where the rows come from (a file or a table; neither for an entry of the
/// register whose data is not published yet), and who provides them.
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
    /// Register: `internal`, `external` or `mixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SourceKind>,
    /// Register: the service or company that provides the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl SourceDefinition {
    /// An entry of the register with no data yet.
    pub fn is_metadata_only(&self) -> bool {
        self.file.is_none() && self.table.is_none()
    }
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
    /// Groups built from fewer rows are suppressed (statistical secrecy);
    /// absent: the gateway's `[policy] min_group_size` (11 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_group_size: Option<u32>,
    /// Purposes this view serves: a declared `X-Purpose` must be one of
    /// them (case and accents folded). Empty: any declared purpose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
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
    /// Register: the collectivité that owns the dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Register: the service (direction) in charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Register: shared or not, with whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// Register: confidential or not, on which grounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidentiality: Option<Confidentiality>,
    /// Register: what producing the data costs (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    /// Register: who decided, when, next review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// GDPR processing record, required with `personal_data: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<ProcessingRecord>,
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

/// Query-string keys of the read grammar: a column may not be named like one.
const RESERVED_COLUMN_NAMES: &[&str] = &[
    "select", "order", "limit", "offset", "or", "and", "not", "format", "csv_sep", "bom",
];

impl DatasetDefinition {
    /// Checks what serde cannot: the id is a slug, the source is one thing,
    /// views are well formed, and a declared schema is usable.
    pub fn check(&self) -> Result<(), String> {
        let slug = !self.id.is_empty()
            && self.id.len() <= 63
            && self.id.starts_with(|character: char| {
                character.is_ascii_lowercase() || character.is_ascii_digit()
            })
            && self.id.chars().all(|character| {
                character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
            });
        if !slug {
            return Err(format!(
                "id `{}` must be a slug: lowercase letters, digits and dashes, at most 63",
                self.id
            ));
        }
        if self.title.trim().is_empty() {
            return Err("title must not be empty".into());
        }
        if self.licence.trim().is_empty() {
            return Err("licence must not be empty".into());
        }
        if self.source.file.is_some() && self.source.table.is_some() {
            return Err("source needs one of `file` or `table`, not both".into());
        }
        for (position, view) in self.views.iter().enumerate() {
            if view.name.trim().is_empty() {
                return Err("a view needs a name".into());
            }
            if self.views[..position]
                .iter()
                .any(|other| other.name == view.name)
            {
                return Err(format!("view `{}` is declared twice", view.name));
            }
            if view.min_group_size == Some(0) {
                return Err(format!(
                    "view `{}`: min_group_size must be at least 1",
                    view.name
                ));
            }
        }
        if let Some(schema) = &self.schema {
            self.check_schema(schema)?;
        } else {
            register_consistency(self, None)?;
        }
        Ok(())
    }

    /// Checks a schema (declared or inferred) against the definition.
    pub fn check_schema(&self, schema: &Schema) -> Result<(), String> {
        if schema.fields.is_empty() {
            return Err("the schema has no column".into());
        }
        for (position, field) in schema.fields.iter().enumerate() {
            let name = &field.name;
            if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
                return Err(format!(
                    "column name `{name}` must be 1 to 63 printable characters"
                ));
            }
            if RESERVED_COLUMN_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "column name `{name}` is a keyword of the query grammar"
                ));
            }
            if name.contains(['.', ',', '(', ')', ':', '"', '&', '=']) {
                return Err(format!(
                    "column name `{name}` contains a character of the query grammar"
                ));
            }
            if schema.fields[..position]
                .iter()
                .any(|other| &other.name == name)
            {
                return Err(format!("column `{name}` is declared twice"));
            }
        }
        if let Some(key) = &schema.primary_key
            && schema.field(key).is_none()
        {
            return Err(format!("primaryKey `{key}` is not a column"));
        }
        for view in &self.views {
            for column in view.columns.iter().flatten() {
                if schema.field(column).is_none() {
                    return Err(format!(
                        "view `{}` lists `{column}`, which is not a column",
                        view.name
                    ));
                }
            }
        }
        if let Some(geometry) = &self.geometry {
            for column in [&geometry.lat, &geometry.lon, &geometry.column]
                .into_iter()
                .flatten()
            {
                if schema.field(column).is_none() {
                    return Err(format!("geometry names `{column}`, which is not a column"));
                }
            }
        }
        register_consistency(self, Some(schema))
    }
}

/// The register's consistency rules as one error listing every violation.
fn register_consistency(
    definition: &DatasetDefinition,
    schema: Option<&Schema>,
) -> Result<(), String> {
    let violations = super::register::violations(definition, schema);
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Err(format!("register: {}", list.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldType};

    fn definition() -> DatasetDefinition {
        serde_yaml_ng::from_str(
            "id: demo-1\ntitle: Demo\npublisher: Ville\nlicence: etalab-2.0\naccess: open\nsource: {file: d.csv}\n",
        )
        .expect("valid YAML")
    }

    /// A minimal definition is valid; ids must be slugs.
    #[test]
    fn checks_ids() {
        assert_eq!(definition().check(), Ok(()));
        for id in ["Demo", "-x", "a b", "", "é"] {
            let mut bad = definition();
            bad.id = id.into();
            assert!(bad.check().is_err(), "{id}");
        }
    }

    /// Unknown keys are refused, so a typo never silently changes access.
    #[test]
    fn refuses_unknown_keys() {
        let text = "id: x\ntitle: X\npublisher: P\nlicence: l\naccess: open\nacces: open\nsource: {file: d.csv}\n";
        assert!(serde_yaml_ng::from_str::<DatasetDefinition>(text).is_err());
    }

    /// Column names that would collide with the grammar, and views naming
    /// missing columns, are refused.
    #[test]
    fn checks_schemas() {
        let definition = definition();
        let schema = |name: &str| Schema {
            fields: vec![Field::new(name, FieldType::String)],
            primary_key: None,
        };
        assert_eq!(definition.check_schema(&schema("commune")), Ok(()));
        for name in ["select", "a.b", "a,b", "", "x(y)"] {
            assert!(definition.check_schema(&schema(name)).is_err(), "{name}");
        }
        let mut with_view = definition.clone();
        with_view.views.push(ViewDefinition {
            name: "v".into(),
            columns: Some(vec!["absent".into()]),
            row_filter: None,
            aggregate_only: false,
            min_group_size: None,
            purposes: Vec::new(),
        });
        assert!(with_view.check_schema(&schema("commune")).is_err());
    }
}

//! Definitions and files received through the publishing API: parsed and
//! checked field by field (every invalid field named, not only the first),
//! compared with the stored definition (which fields changed, and whether
//! the change classifies the dataset), and uploaded files validated row by
//! row before anything is published.

use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use sha2::{Digest, Sha256};

use super::definition::DatasetDefinition;
use super::ingest::{RowLocation, Source, SourceFormat};
use super::sync::{format_of, same_storage, source_options};
use crate::domain::{IncompatibleChange, Schema, compatible_changes};
use crate::policy::check_row_filter;
use crate::store::alter::SchemaUpdate;
use crate::store::datasets::{ImportOutcome, NewVersion, ORIGIN_API, StoredDataset};
use crate::store::{Store, StoreError};

/// Definition fields whose change decides who may read the data, or records
/// the register's decision behind it (sharing, confidentiality and its
/// grounds, the personal-data processing record): changing them needs the
/// `classify` action, not only `manage`.
pub const CLASSIFICATION_FIELDS: [&str; 7] = [
    "access",
    "metadata_visibility",
    "personal_data",
    "views",
    "sharing",
    "confidentiality",
    "processing",
];

/// At most this many row errors are listed in an upload report.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// One invalid field of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a path (`access`, `views[0].row_filter`, `id`).
    pub field: String,
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// One changed field: its old and new values (JSON), for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    #[schema(value_type = Object)]
    pub old: Json,
    #[schema(value_type = Object)]
    pub new: Json,
}

/// A definition body: JSON, or YAML (`application/yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionFormat {
    Json,
    Yaml,
}

/// Parses a definition body into JSON, without checking it.
pub fn parse_body(body: &[u8], format: DefinitionFormat) -> Result<Json, FieldError> {
    let parsed = match format {
        DefinitionFormat::Json => {
            serde_json::from_slice::<Json>(body).map_err(|error| error.to_string())
        }
        DefinitionFormat::Yaml => std::str::from_utf8(body)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                serde_yaml_ng::from_str::<Json>(text).map_err(|error| error.to_string())
            }),
    };
    match parsed {
        Ok(value @ Json::Object(_)) => Ok(value),
        Ok(_) => Err(FieldError::new("", "the definition must be an object")),
        Err(reason) => Err(FieldError::new("", format!("malformed body: {reason}"))),
    }
}

/// Checks a definition given as JSON, naming every invalid field; the
/// definition when it is valid. An API definition declares its schema (there
/// are no rows to infer it from) and no `source.table` nor `source.file`
/// outside the catalogue folder.
pub fn check_definition(value: &Json) -> Result<DatasetDefinition, Vec<FieldError>> {
    let mut errors = Vec::new();
    let object = value.as_object().cloned().unwrap_or_default();
    let text = |name: &str| object.get(name).and_then(Json::as_str);
    match text("id") {
        Some(id) if is_slug(id) => {}
        Some(id) => errors.push(FieldError::new(
            "id",
            format!("`{id}` is not a slug: lowercase letters, digits and dashes, at most 63"),
        )),
        None => errors.push(FieldError::new("id", "required, a string")),
    }
    for (name, known) in [
        (
            "access",
            &["open", "partners", "internal", "confidential", "undecided"][..],
        ),
        ("metadata_visibility", &["public", "restricted"][..]),
    ] {
        match object.get(name) {
            None if name == "metadata_visibility" => {}
            Some(Json::String(level)) if known.contains(&level.as_str()) => {}
            Some(other) => errors.push(FieldError::new(
                name,
                format!(
                    "unknown value {other}: expected one of {}",
                    known.join(", ")
                ),
            )),
            None => errors.push(FieldError::new(name, "required")),
        }
    }
    match text("licence") {
        Some(licence) if is_licence(licence) => {}
        Some(licence) => errors.push(FieldError::new(
            "licence",
            format!(
                "unknown licence form `{licence}`: `etalab-2.0`, `odbl-1.0`, or the slug of a named restricted licence (`convention-partenaires-tcm`)"
            ),
        )),
        None => errors.push(FieldError::new("licence", "required, a string")),
    }
    if object
        .get("source")
        .is_some_and(|source| source.get("table").is_some())
    {
        errors.push(FieldError::new(
            "source.table",
            "a published dataset's rows are uploaded (PUT /datasets/{id}/data), not read from a table",
        ));
    }
    if object.get("schema").is_none_or(Json::is_null) {
        errors.push(FieldError::new(
            "schema",
            "required: declare the Table Schema of the rows you will upload",
        ));
    }
    let mut with_source = value.clone();
    if let Some(map) = with_source.as_object_mut() {
        map.entry("source")
            .or_insert_with(|| Json::Object(Default::default()));
    }
    let definition: Option<DatasetDefinition> =
        match serde_json::from_value::<DatasetDefinition>(with_source) {
            Ok(definition) => Some(definition),
            Err(error) => {
                if errors.is_empty() {
                    errors.push(FieldError::new(
                        field_of_serde_error(&error.to_string()),
                        error.to_string(),
                    ));
                }
                None
            }
        };
    let Some(definition) = definition else {
        return Err(errors);
    };
    // `check` wants exactly one source; an API dataset has none of its own.
    let mut checked = definition.clone();
    if checked.source.file.is_none() && checked.source.table.is_none() {
        checked.source.file = Some("upload".into());
    }
    if let Err(reason) = checked.check() {
        let field = if reason.starts_with("view") {
            "views"
        } else if reason.starts_with("title") {
            "title"
        } else if reason.starts_with("id") {
            "id"
        } else if reason.starts_with("licence") {
            "licence"
        } else if reason.starts_with("source") {
            "source"
        } else if reason.starts_with("register") {
            "register"
        } else {
            "schema"
        };
        if !errors.iter().any(|error| error.field == field) {
            errors.push(FieldError::new(field, reason));
        }
    }
    if let Err(reason) = source_options(&definition) {
        errors.push(FieldError::new("source", reason));
    }
    if let Some(schema) = &definition.schema {
        for (position, view) in definition.views.iter().enumerate() {
            if let Some(filter) = &view.row_filter
                && let Err(reason) = check_row_filter(filter, schema)
            {
                errors.push(FieldError::new(
                    format!("views[{position}].row_filter"),
                    reason,
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(definition)
    } else {
        Err(errors)
    }
}

fn field_of_serde_error(message: &str) -> String {
    // serde: "unknown field `acces`, expected one of …" / "missing field `title`".
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .unwrap_or("")
        .to_owned()
}

fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|character: char| {
            character.is_ascii_lowercase() || character.is_ascii_digit()
        })
        && id.chars().all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
        })
}

/// `etalab-2.0`, `odbl-1.0`, or the slug of a named restricted licence
/// (`convention-partenaires-tcm`).
fn is_licence(licence: &str) -> bool {
    matches!(licence, "etalab-2.0" | "odbl-1.0")
        || (is_slug(licence) && !licence.ends_with('-') && !licence.contains("--"))
}

/// The top-level fields that differ between two definitions, with their
/// old and new values (views and their row filters included).
pub fn changed_fields(old: &DatasetDefinition, new: &DatasetDefinition) -> Vec<FieldChange> {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let before = old.get(name).cloned().unwrap_or(Json::Null);
            let after = new.get(name).cloned().unwrap_or(Json::Null);
            (before != after).then(|| FieldChange {
                field: name.clone(),
                old: before,
                new: after,
            })
        })
        .collect()
}

/// Every field of a new definition, as changes from nothing.
pub fn created_fields(new: &DatasetDefinition) -> Vec<FieldChange> {
    let value = serde_json::to_value(new).unwrap_or_default();
    value
        .as_object()
        .map(|members| {
            members
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(field, value)| FieldChange {
                    field: field.clone(),
                    old: Json::Null,
                    new: value.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// True when one of `changes` classifies the dataset (needs `classify`).
pub fn classifies(changes: &[FieldChange]) -> bool {
    changes
        .iter()
        .any(|change| CLASSIFICATION_FIELDS.contains(&change.field.as_str()))
}

/// The JSON text and SHA-256 of a definition, as stored (its `ETag`).
pub fn definition_text(definition: &DatasetDefinition) -> (String, String) {
    let text = serde_json::to_string(definition).unwrap_or_default();
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    (text, hash)
}

/// Creates a checked definition as a new API dataset with an empty first
/// version; its definition hash, or `None` when the id is taken (two
/// creations of one id at once: exactly one gets it).
pub async fn create_dataset(
    store: &Store,
    definition: &DatasetDefinition,
) -> Result<Option<String>, StoreError> {
    let schema = definition.schema.clone().unwrap_or_default();
    let (text, hash) = definition_text(definition);
    let new = NewVersion {
        id: &definition.id,
        schema: &schema,
        definition: &text,
        definition_hash: &hash,
        source_hash: "",
        origin: ORIGIN_API,
    };
    Ok(store.create_empty_dataset(new).await?.then_some(hash))
}

/// Replaces the definition of `stored` with a checked one (same id); its
/// new hash. An empty dataset gets a fresh empty table of the new shape;
/// a dataset with rows takes only a compatible schema change (see
/// [`change_stored_schema`]), every other change is refused naming its field.
pub async fn replace_definition(
    store: &Store,
    stored: &StoredDataset,
    definition: &DatasetDefinition,
) -> Result<Result<String, Vec<FieldError>>, StoreError> {
    let Ok(stored_schema) = serde_json::from_str::<Schema>(&stored.schema) else {
        return Ok(Err(vec![FieldError::new(
            "schema",
            "the stored schema is unreadable",
        )]));
    };
    let declared = definition
        .schema
        .clone()
        .unwrap_or_else(|| stored_schema.clone());
    let (text, hash) = definition_text(definition);
    if stored.record_count == 0 && same_storage(&stored_schema, &declared) {
        let schema_json = serde_json::to_string(&declared).unwrap_or_default();
        store
            .update_definition(&stored.id, &text, &hash, &schema_json)
            .await?;
        return Ok(Ok(hash));
    }
    if stored.record_count == 0 {
        write_empty_version(
            store,
            definition,
            &declared,
            &text,
            &hash,
            &stored.source_hash,
            &stored.origin,
        )
        .await?;
        return Ok(Ok(hash));
    }
    let changed = change_stored_schema(store, &stored.id, &stored_schema, &declared, &text, &hash)
        .await?
        .map_err(|refused| {
            refused
                .into_iter()
                .map(|change| {
                    FieldError::new(
                        change.field,
                        format!("{}; {INCOMPATIBLE_HINT}", change.reason),
                    )
                })
                .collect::<Vec<_>>()
        });
    Ok(changed.map(|()| hash))
}

/// What to do instead of an incompatible schema change.
pub const INCOMPATIBLE_HINT: &str = "only new nullable columns and wider types apply to stored rows: upload a new version of the rows with the new schema instead (or retire the dataset and create it again)";

/// Records `declared` as the schema of the rows stored under `stored`
/// (with the definition `text` and its `hash`) when they can follow it in
/// place: the same storage, new nullable columns, wider types (the tables
/// of the current and kept versions are rewritten, see
/// [`crate::store::alter`]). Otherwise the incompatible changes, each
/// naming its field, and nothing is written.
pub async fn change_stored_schema(
    store: &Store,
    id: &str,
    stored: &Schema,
    declared: &Schema,
    text: &str,
    hash: &str,
) -> Result<Result<(), Vec<IncompatibleChange>>, StoreError> {
    let changes = match compatible_changes(stored, declared) {
        Ok(changes) => changes,
        Err(refused) => return Ok(Err(refused)),
    };
    let schema_json = serde_json::to_string(declared).unwrap_or_default();
    if changes.is_empty() {
        store
            .update_definition(id, text, hash, &schema_json)
            .await?;
    } else {
        store
            .apply_schema_changes(SchemaUpdate {
                id,
                schema: declared,
                changes: &changes,
                definition: text,
                definition_hash: hash,
                schema_json: &schema_json,
            })
            .await?;
    }
    Ok(Ok(()))
}

async fn write_empty_version(
    store: &Store,
    definition: &DatasetDefinition,
    schema: &Schema,
    text: &str,
    hash: &str,
    source_hash: &str,
    origin: &str,
) -> Result<(), StoreError> {
    let new = NewVersion {
        id: &definition.id,
        schema,
        definition: text,
        definition_hash: hash,
        source_hash,
        origin,
    };
    let empty = std::iter::empty::<Result<Vec<crate::domain::Value>, String>>();
    match store.import_rows(new, empty, 1).await? {
        ImportOutcome::Imported { .. } | ImportOutcome::Rejected(_) => Ok(()),
    }
}

/// One row error of an upload report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// Physical line of the file (CSV), or the feature number (GeoJSON).
    pub line: u64,
    pub column: Option<String>,
    /// The cell as read, when one column is to blame.
    pub value: Option<String>,
    pub reason: String,
}

/// What validating an uploaded file found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UploadReport {
    /// Rows that fit the schema.
    pub valid_rows: u64,
    /// Rows that do not.
    pub bad_rows: u64,
    /// The first 100 errors.
    pub errors: Vec<RowError>,
    /// Why the file as a whole cannot be read (encoding, header, columns).
    pub file_error: Option<String>,
}

impl UploadReport {
    /// A file whose `rows` all fit the schema.
    pub fn clean(rows: u64) -> UploadReport {
        UploadReport {
            valid_rows: rows,
            bad_rows: 0,
            errors: Vec::new(),
            file_error: None,
        }
    }

    /// A file that cannot be read as a whole, and why.
    pub fn unreadable(reason: String) -> UploadReport {
        UploadReport {
            valid_rows: 0,
            bad_rows: 0,
            errors: Vec::new(),
            file_error: Some(reason),
        }
    }

    pub fn is_clean(&self) -> bool {
        self.bad_rows == 0 && self.file_error.is_none()
    }
}

/// How to read an uploaded file: the definition's source options, or those
/// the request gives.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// `csv` or `geojson`.
    pub format: Option<String>,
    pub delimiter: Option<String>,
    pub encoding: Option<String>,
}

/// Opens an uploaded file with the definition's source options, overridden
/// by the request's.
pub fn open_upload(
    definition: &DatasetDefinition,
    path: &Path,
    options: &UploadOptions,
) -> Result<Source, String> {
    let mut merged = definition.clone();
    if options.delimiter.is_some() {
        merged.source.delimiter = options.delimiter.clone();
    }
    if options.encoding.is_some() {
        merged.source.encoding = options.encoding.clone();
    }
    let source_options = source_options(&merged)?;
    let format = options
        .format
        .clone()
        .or_else(|| merged.source.format.clone());
    let format: SourceFormat = format_of(format.as_deref())?;
    Source::open(path, format, &source_options).map_err(|error| error.to_string())
}

/// Validates every row of `source` against `schema`: the number of bad rows
/// and the first [`MAX_REPORTED_ERRORS`] errors. Nothing is written.
pub fn validate(source: &Source, schema: &Schema) -> UploadReport {
    let rows = match source.rows(schema) {
        Ok(rows) => rows,
        Err(error) => return UploadReport::unreadable(error.to_string()),
    };
    let mut report = UploadReport::clean(0);
    for row in rows {
        match row {
            Ok(_) => report.valid_rows += 1,
            Err(problem) => {
                report.bad_rows += 1;
                if report.errors.len() < MAX_REPORTED_ERRORS {
                    let unit = match problem.location {
                        RowLocation::Line => problem.line,
                        RowLocation::Feature => problem.line,
                    };
                    report.errors.push(RowError {
                        line: unit,
                        value: value_of(&problem.reason),
                        column: problem.column,
                        reason: problem.reason,
                    });
                }
            }
        }
    }
    report
}

/// The cell a reason quotes (`` `abc` is not an integer``), if any.
fn value_of(reason: &str) -> Option<String> {
    let start = reason.find('`')?;
    let rest = &reason[start + 1..];
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Json {
        serde_json::json!({
            "id": "velos",
            "title": "Vélos",
            "publisher": "Mobilités",
            "licence": "etalab-2.0",
            "access": "open",
            "schema": {"fields": [{"name": "commune", "type": "string"}, {"name": "n", "type": "integer"}]},
            "views": [{"name": "par-commune", "row_filter": "commune=eq.${claims.org}"}],
        })
    }

    /// A valid definition passes; YAML and JSON read alike.
    #[test]
    fn accepts_valid_definitions() {
        let definition = check_definition(&valid()).unwrap();
        assert_eq!(definition.id, "velos");
        let yaml = "id: velos\ntitle: V\npublisher: M\nlicence: odbl-1.0\naccess: undecided\nschema: {fields: [{name: a, type: string}]}\n";
        let parsed = parse_body(yaml.as_bytes(), DefinitionFormat::Yaml).unwrap();
        assert!(check_definition(&parsed).is_ok());
        assert!(parse_body(b"[1]", DefinitionFormat::Json).is_err());
        assert!(parse_body(b"{", DefinitionFormat::Json).is_err());
    }

    /// Every invalid field is named, not only the first.
    #[test]
    fn names_each_invalid_field() {
        let mut bad = valid();
        bad["id"] = "Not A Slug".into();
        bad["access"] = "secret".into();
        bad["licence"] = "CC BY 4.0".into();
        bad["views"] = serde_json::json!([
            {"name": "a", "columns": ["absent"]},
        ]);
        let errors = check_definition(&bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, vec!["id", "access", "licence"], "{errors:?}");
        // With the others fixed, the view's column and row filter are named.
        let mut views = valid();
        views["views"] = serde_json::json!([
            {"name": "a", "row_filter": "commune=nope.x"},
        ]);
        let errors = check_definition(&views).unwrap_err();
        assert_eq!(errors[0].field, "views[0].row_filter", "{errors:?}");
        let mut columns = valid();
        columns["views"] = serde_json::json!([{"name": "a", "columns": ["absent"]}]);
        assert_eq!(check_definition(&columns).unwrap_err()[0].field, "views");
        let mut no_schema = valid();
        no_schema.as_object_mut().unwrap().remove("schema");
        assert_eq!(check_definition(&no_schema).unwrap_err()[0].field, "schema");
    }

    /// Changed fields carry old and new values; access and views classify.
    #[test]
    fn lists_changes() {
        let old = check_definition(&valid()).unwrap();
        let mut new = old.clone();
        new.title = "Bikes".into();
        let changes = changed_fields(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "title");
        assert_eq!(changes[0].old, "Vélos");
        assert!(!classifies(&changes));
        new.views[0].row_filter = Some("commune=eq.Troyes".into());
        new.access = crate::catalog::definition::AccessLevel::Internal;
        let changes = changed_fields(&old, &new);
        assert!(classifies(&changes));
        assert!(changes.iter().any(|change| change.field == "views"));
    }
}

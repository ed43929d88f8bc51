//! Syncing the catalogue folder into the store: every definition is read and
//! checked; a dataset whose definition or source changed is re-imported as a
//! new version (all or nothing); a malformed file is reported with its path
//! and reason while the rest still load.
//!
//! The store is the source of truth: sync manages only the datasets whose
//! origin is `file`. A dataset created through the publishing API (origin
//! `api`) is never touched, even by a file declaring the same id (reported as
//! a failure). A file dataset whose file is gone is removed only when asked
//! (`--prune`), and only when every file was read.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::definition::DatasetDefinition;
use super::ingest::{RowProblem, Source, SourceEncoding, SourceOptions};
use crate::domain::Schema;
use crate::store::datasets::{ImportOutcome, NewVersion, StoredDataset};
use crate::store::{Store, StoreError};

/// Largest number of invalid rows listed when an import is refused.
const MAX_PROBLEMS: usize = 50;

/// What a sync did, dataset by dataset.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub imported: Vec<(String, i64)>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Files or datasets that could not be synced: path or id, and why.
    pub failures: Vec<(String, String)>,
}

impl SyncReport {
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a sync could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read the catalogue folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A definition file parsed and checked.
struct LoadedDefinition {
    path: PathBuf,
    definition: DatasetDefinition,
}

/// How a sync runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Remove the file datasets whose file is gone.
    pub prune: bool,
}

/// Syncs every definition of `folder` into `store`; removes nothing.
pub async fn sync_folder(store: &Store, folder: &Path) -> Result<SyncReport, SyncError> {
    sync_folder_with(store, folder, SyncOptions::default()).await
}

/// Syncs every definition of `folder` into `store`, as `options` say.
pub async fn sync_folder_with(
    store: &Store,
    folder: &Path,
    options: SyncOptions,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut loaded = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|source| SyncError::Folder {
            path: folder.to_owned(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|extension| extension.to_str()),
                Some("yaml" | "yml" | "toml")
            )
        })
        .collect();
    files.sort();
    for path in files {
        match read_definition(&path) {
            Ok(definition) => {
                if loaded
                    .iter()
                    .any(|other: &LoadedDefinition| other.definition.id == definition.id)
                {
                    report.failures.push((
                        path.display().to_string(),
                        format!("dataset id `{}` is declared twice", definition.id),
                    ));
                } else {
                    loaded.push(LoadedDefinition { path, definition });
                }
            }
            Err(reason) => report.failures.push((path.display().to_string(), reason)),
        }
    }
    let stored = store.stored_datasets().await?;
    for item in &loaded {
        let id = item.definition.id.clone();
        let previous = stored.iter().find(|row| row.id == id);
        if previous.is_some_and(StoredDataset::from_api) {
            report.failures.push((
                item.path.display().to_string(),
                format!(
                    "dataset `{id}` was created through the publishing API: the store holds its definition, this file is ignored"
                ),
            ));
            continue;
        }
        match sync_one(store, folder, item, previous).await {
            Ok(SyncAction::Imported(version)) => report.imported.push((id, version)),
            Ok(SyncAction::Updated) => report.updated.push(id),
            Ok(SyncAction::Unchanged) => report.unchanged.push(id),
            Err(reason) => report
                .failures
                .push((item.path.display().to_string(), reason)),
        }
    }
    // File datasets whose file is gone are removed when asked, and only when
    // every file was read: a malformed file must not make its dataset
    // disappear. API datasets are never removed by a sync, nor entries of
    // the register imported from a spreadsheet (they have no file).
    if options.prune && report.failures.is_empty() {
        for row in stored.iter().filter(|row| !row.from_api()) {
            if row.source_hash != crate::store::datasets::REGISTER_IMPORT
                && !loaded.iter().any(|item| item.definition.id == row.id)
            {
                store.delete_dataset(&row.id, &row.table_name).await?;
                report.removed.push(row.id.clone());
            }
        }
    }
    Ok(report)
}

/// Reads and checks one definition file (YAML or TOML).
pub fn read_definition(path: &Path) -> Result<DatasetDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read: {error}"))?;
    let definition: DatasetDefinition = match path
        .extension()
        .and_then(|extension| extension.to_str())
    {
        Some("toml") => toml::from_str(&text).map_err(|error| format!("invalid TOML: {error}"))?,
        _ => serde_yaml_ng::from_str(&text).map_err(|error| format!("invalid YAML: {error}"))?,
    };
    definition.check()?;
    Ok(definition)
}

enum SyncAction {
    Imported(i64),
    Updated,
    Unchanged,
}

async fn sync_one(
    store: &Store,
    folder: &Path,
    item: &LoadedDefinition,
    previous: Option<&StoredDataset>,
) -> Result<SyncAction, String> {
    let definition = &item.definition;
    let definition_json = serde_json::to_string(definition).map_err(|error| error.to_string())?;
    let definition_hash = hex::encode(Sha256::digest(definition_json.as_bytes()));
    let source = &definition.source;
    if let Some(table) = &source.table {
        return Err(format!(
            "source.table `{table}`: serving existing SQL tables is not supported yet; export it to CSV"
        ));
    }
    if source.is_metadata_only() {
        // A register entry: the definition only, until data is published.
        if previous.is_some_and(|previous| {
            previous.definition_hash == definition_hash && previous.version == 0
        }) {
            return Ok(SyncAction::Unchanged);
        }
        store
            .upsert_metadata_only(&definition.id, &definition_json, &definition_hash, "")
            .await
            .map_err(|error| error.to_string())?;
        return Ok(SyncAction::Updated);
    }
    let file = source.file.as_deref().ok_or("source.file is required")?;
    let source_path = folder.join(file);
    // Hashed in chunks: an unchanged file of any size is skipped without
    // holding it in memory (the gateway's start-up stays small).
    let source_hash = file_hash(&source_path)
        .map_err(|error| format!("cannot read {}: {error}", source_path.display()))?;
    if let Some(previous) = previous {
        // Rows published through the API (a provider's upload, a restore)
        // are newer than the file: sync keeps them, and moves only metadata.
        let uploaded = store
            .dataset_versions(&previous.id)
            .await
            .map_err(|error| error.to_string())?
            .iter()
            .any(|version| {
                version.status == crate::store::publishing::STATUS_CURRENT
                    && version.table_name.as_deref() == Some(previous.table_name.as_str())
            });
        let source_hash = if uploaded {
            previous.source_hash.clone()
        } else {
            source_hash.clone()
        };
        if previous.source_hash == source_hash && previous.definition_hash == definition_hash {
            return Ok(SyncAction::Unchanged);
        }
        if previous.source_hash == source_hash {
            // Same rows: a declared schema they can follow in place (the
            // same storage, new nullable columns, wider types) only moves
            // metadata and, when needed, rewrites the stored tables.
            let stored_schema: Option<Schema> = serde_json::from_str(&previous.schema).ok();
            if let (Some(stored), Some(declared)) = (&stored_schema, &definition.schema) {
                let followed = if previous.record_count == 0 && !same_storage(stored, declared) {
                    Err(Vec::new())
                } else {
                    super::publish::change_stored_schema(
                        store,
                        &definition.id,
                        stored,
                        declared,
                        &definition_json,
                        &definition_hash,
                    )
                    .await
                    .map_err(|error| error.to_string())?
                };
                match followed {
                    Ok(()) => return Ok(SyncAction::Updated),
                    Err(refused) if uploaded && !refused.is_empty() => {
                        let fields: Vec<String> = refused
                            .iter()
                            .map(|change| format!("{}: {}", change.field, change.reason))
                            .collect();
                        return Err(format!(
                            "the current rows were published through the API, and {}; {}",
                            fields.join("; "),
                            super::publish::INCOMPATIBLE_HINT
                        ));
                    }
                    Err(_) if uploaded => {
                        return Err("the current rows were published through the API: a schema change needs a new upload of the rows".into());
                    }
                    // The file's rows are read again under the new schema.
                    Err(_) => {}
                }
            } else if uploaded {
                return Err("the current rows were published through the API: a schema change needs a new upload of the rows".into());
            }
        }
    }
    let bytes = std::fs::read(&source_path)
        .map_err(|error| format!("cannot read {}: {error}", source_path.display()))?;
    let version = import_file(
        store,
        definition,
        &source_path,
        bytes,
        &definition_json,
        &definition_hash,
        &source_hash,
    )
    .await?;
    Ok(SyncAction::Imported(version))
}

/// SHA-256 of a file, read 64 KiB at a time.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Same column names, types and order: the stored rows still fit.
pub fn same_storage(stored: &Schema, declared: &Schema) -> bool {
    stored.fields.len() == declared.fields.len()
        && stored.primary_key == declared.primary_key
        && stored.fields.iter().zip(&declared.fields).all(|(a, b)| {
            a.name == b.name
                && a.field_type == b.field_type
                && a.decimal_char == b.decimal_char
                && a.filterable == b.filterable
        })
}

/// Options of a definition's source.
pub fn source_options(definition: &DatasetDefinition) -> Result<SourceOptions, String> {
    let source = &definition.source;
    let delimiter = match source.delimiter.as_deref() {
        None => None,
        Some(",") => Some(b','),
        Some(";") => Some(b';'),
        Some("\t") | Some("tab") => Some(b'\t'),
        Some(other) => return Err(format!("source.delimiter `{other}` is not `,`, `;` or tab")),
    };
    let encoding = match source
        .encoding
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("utf-8" | "utf8") => Some(SourceEncoding::Utf8),
        Some("windows-1252" | "cp1252" | "latin-1" | "latin1" | "iso-8859-1") => {
            Some(SourceEncoding::Windows1252)
        }
        Some(other) => {
            return Err(format!(
                "source.encoding `{other}` is not utf-8 or windows-1252"
            ));
        }
    };
    Ok(SourceOptions {
        delimiter,
        encoding,
    })
}

/// Imports `bytes` (the file at `path`) as the new version of `definition`.
#[allow(clippy::too_many_arguments)]
pub async fn import_file(
    store: &Store,
    definition: &DatasetDefinition,
    path: &Path,
    bytes: Vec<u8>,
    definition_json: &str,
    definition_hash: &str,
    source_hash: &str,
) -> Result<i64, String> {
    let options = source_options(definition)?;
    let format = definition.source.format.clone().or_else(|| {
        path.extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase)
    });
    let source = Source::from_bytes(bytes, format_of(format.as_deref())?, &options)
        .map_err(|error| error.to_string())?;
    let schema = match &definition.schema {
        Some(schema) => schema.clone(),
        None => source.infer_schema().map_err(|error| error.to_string())?,
    };
    definition.check_schema(&schema)?;
    let rows = source.rows(&schema).map_err(|error| error.to_string())?;
    let new = NewVersion {
        id: &definition.id,
        schema: &schema,
        definition: definition_json,
        definition_hash,
        source_hash,
        origin: crate::store::datasets::ORIGIN_FILE,
    };
    match store
        .import_rows(new, rows, MAX_PROBLEMS)
        .await
        .map_err(|error| error.to_string())?
    {
        ImportOutcome::Imported { version, .. } => Ok(version),
        ImportOutcome::Rejected(problems) => Err(describe_problems(&problems)),
    }
}

pub fn format_of(name: Option<&str>) -> Result<super::ingest::SourceFormat, String> {
    match name {
        Some("csv") | Some("txt") | None => Ok(super::ingest::SourceFormat::Csv),
        Some("geojson") | Some("json") => Ok(super::ingest::SourceFormat::GeoJson),
        Some(other) => Err(format!("source format `{other}` is not csv or geojson")),
    }
}

fn describe_problems(problems: &[RowProblem]) -> String {
    let mut text = format!("{} invalid row(s), nothing imported:", problems.len());
    for problem in problems {
        text.push_str(&format!("\n  {problem}"));
    }
    text
}

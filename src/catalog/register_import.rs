//! `passerelle register import FILE.csv`: bootstraps the register from an
//! inventory spreadsheet. A line naming a dataset that exists updates its
//! register fields (re-importing never duplicates); another line creates a
//! metadata-only entry (no data yet, `undecided` unless the line decides).
//! Every bad line is reported with its number and reason; the good ones load.

use sha2::{Digest, Sha256};

use super::definition::DatasetDefinition;
use super::register_csv::{self, new_entry};
use crate::store::Store;
use crate::store::datasets::REGISTER_IMPORT;

/// What an import did.
#[derive(Debug, Default)]
pub struct RegisterImportReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Line number and reason of each line left out.
    pub rejected: Vec<(u64, String)>,
}

/// Imports a register file into `store`. `Err` when the file as a whole
/// cannot be read (no header, unknown column, store failure).
pub async fn import_register(store: &Store, bytes: &[u8]) -> Result<RegisterImportReport, String> {
    let parsed = register_csv::parse(bytes)?;
    let mut report = RegisterImportReport {
        rejected: parsed.problems,
        ..RegisterImportReport::default()
    };
    let stored = store
        .stored_datasets()
        .await
        .map_err(|error| error.to_string())?;
    let mut seen: Vec<(String, u64)> = Vec::new();
    for line in &parsed.lines {
        let id = match line.id() {
            Ok(id) => id,
            Err(reason) => {
                report.rejected.push((line.line, reason));
                continue;
            }
        };
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == id) {
            report.rejected.push((
                line.line,
                format!("dataset `{id}` already given on line {first}"),
            ));
            continue;
        }
        seen.push((id.clone(), line.line));
        let previous = stored.iter().find(|row| row.id == id);
        let base = match previous {
            Some(row) => match serde_json::from_str::<DatasetDefinition>(&row.definition) {
                Ok(definition) => definition,
                Err(error) => {
                    report.rejected.push((
                        line.line,
                        format!("stored definition of `{id}` unreadable: {error}"),
                    ));
                    continue;
                }
            },
            None => new_entry(&id),
        };
        let definition = match line.apply(base) {
            Ok(definition) => definition,
            Err(reason) => {
                report.rejected.push((line.line, format!("{id}: {reason}")));
                continue;
            }
        };
        if definition.publisher.trim().is_empty() && definition.organisation.is_none() {
            report.rejected.push((
                line.line,
                format!("{id}: needs a publisher or an organisation"),
            ));
            continue;
        }
        let mut definition = definition;
        if definition.publisher.trim().is_empty() {
            definition.publisher = definition.organisation.clone().unwrap_or_default();
        }
        let json = serde_json::to_string(&definition).map_err(|error| error.to_string())?;
        let hash = hex::encode(Sha256::digest(json.as_bytes()));
        match previous {
            Some(row) if row.definition_hash == hash => report.unchanged.push(id),
            Some(row) if row.version > 0 => {
                store
                    .update_definition(&id, &json, &hash, &row.schema)
                    .await
                    .map_err(|error| error.to_string())?;
                report.updated.push(id);
            }
            Some(row) => {
                store
                    .upsert_metadata_only(&id, &json, &hash, &row.source_hash)
                    .await
                    .map_err(|error| error.to_string())?;
                report.updated.push(id);
            }
            None => {
                store
                    .upsert_metadata_only(&id, &json, &hash, REGISTER_IMPORT)
                    .await
                    .map_err(|error| error.to_string())?;
                report.created.push(id);
            }
        }
    }
    report.rejected.sort();
    Ok(report)
}

//! The in-memory catalogue every request consults: the store's catalogue
//! table, parsed once per change and swapped atomically, so readers never
//! lock and never see half a catalogue.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::definition::{DatasetDefinition, ViewDefinition};
use crate::domain::{FieldType, Schema};
use crate::store::datasets::StoredDataset;
use crate::store::replica::WalPosition;
use crate::store::retired::{TableLease, TablesInUse};
use crate::store::{Store, StoreError};

/// Where a dataset's geometry is, as schema column indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryColumns {
    LatLon { lat: usize, lon: usize },
    Point(usize),
    GeoJson(usize),
}

/// One served dataset: its definition and the current version of its rows.
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub definition: DatasetDefinition,
    pub schema: Arc<Schema>,
    pub table_name: String,
    pub version: i64,
    pub record_count: i64,
    pub last_updated: String,
    pub geometry: Option<GeometryColumns>,
    /// SHA-256 of the stored definition: a metadata change (an access
    /// level, a view) changes the catalogue's fingerprint.
    pub definition_hash: String,
    /// The primary's WAL position when this catalogue first read this
    /// version (its table): a read replica serves the entry only once it
    /// has replayed that far (see [`crate::store::replica`]).
    pub written_at: WalPosition,
}

impl DatasetEntry {
    /// Builds an entry from a row of the catalogue table.
    pub fn from_stored(stored: &StoredDataset) -> Result<DatasetEntry, String> {
        let definition: DatasetDefinition =
            serde_json::from_str(&stored.definition).map_err(|error| {
                format!(
                    "dataset {}: stored definition unreadable: {error}",
                    stored.id
                )
            })?;
        let schema: Schema = serde_json::from_str(&stored.schema)
            .map_err(|error| format!("dataset {}: stored schema unreadable: {error}", stored.id))?;
        let geometry = geometry_columns(&definition, &schema);
        Ok(DatasetEntry {
            definition,
            schema: Arc::new(schema),
            table_name: stored.table_name.clone(),
            version: stored.version,
            record_count: stored.record_count,
            last_updated: stored.last_updated.clone(),
            geometry,
            definition_hash: stored.definition_hash.clone(),
            written_at: WalPosition::START,
        })
    }

    pub fn id(&self) -> &str {
        &self.definition.id
    }

    pub fn view(&self, name: &str) -> Option<&ViewDefinition> {
        self.definition.views.iter().find(|view| view.name == name)
    }
}

/// Finds the geometry: declared columns, else `lat`/`lon`-named numbers, else
/// the first geopoint or GeoJSON column.
pub fn geometry_columns(
    definition: &DatasetDefinition,
    schema: &Schema,
) -> Option<GeometryColumns> {
    let numeric = |name: &str| {
        schema
            .position(name)
            .filter(|&index| schema.fields[index].field_type.is_numeric())
    };
    if let Some(declared) = &definition.geometry {
        if let Some(column) = &declared.column {
            let index = schema.position(column)?;
            return match schema.fields[index].field_type {
                FieldType::Geopoint => Some(GeometryColumns::Point(index)),
                FieldType::Geojson => Some(GeometryColumns::GeoJson(index)),
                _ => None,
            };
        }
        if let (Some(lat), Some(lon)) = (&declared.lat, &declared.lon) {
            return Some(GeometryColumns::LatLon {
                lat: numeric(lat)?,
                lon: numeric(lon)?,
            });
        }
    }
    let find = |names: &[&str]| names.iter().find_map(|name| numeric(name));
    if let (Some(lat), Some(lon)) = (
        find(&["lat", "latitude"]),
        find(&["lon", "lng", "longitude"]),
    ) {
        return Some(GeometryColumns::LatLon { lat, lon });
    }
    schema
        .fields
        .iter()
        .enumerate()
        .find_map(|(index, field)| match field.field_type {
            FieldType::Geopoint => Some(GeometryColumns::Point(index)),
            FieldType::Geojson => Some(GeometryColumns::GeoJson(index)),
            _ => None,
        })
}

/// A consistent snapshot of every dataset.
#[derive(Debug, Default)]
pub struct Catalog {
    by_id: HashMap<String, Arc<DatasetEntry>>,
    ordered: Vec<Arc<DatasetEntry>>,
    /// Made at the first search of this snapshot.
    search: std::sync::OnceLock<super::search::SearchIndex>,
}

impl Catalog {
    pub fn new(entries: Vec<DatasetEntry>) -> Catalog {
        let mut ordered: Vec<Arc<DatasetEntry>> = entries.into_iter().map(Arc::new).collect();
        ordered.sort_by(|a, b| a.id().cmp(b.id()));
        let by_id = ordered
            .iter()
            .map(|entry| (entry.id().to_owned(), entry.clone()))
            .collect();
        Catalog {
            by_id,
            ordered,
            search: Default::default(),
        }
    }

    /// The search text and title order of this snapshot (made once).
    pub fn search_index(&self) -> &super::search::SearchIndex {
        self.search.get_or_init(|| {
            super::search::SearchIndex::new(self.ordered.iter().map(|entry| &entry.definition))
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<DatasetEntry>> {
        self.by_id.get(id)
    }

    /// Entries ordered by id.
    pub fn entries(&self) -> &[Arc<DatasetEntry>] {
        &self.ordered
    }

    /// A fingerprint of every dataset version, definition and access level
    /// (changes when any import lands, and when a definition changes without
    /// new rows: a register decision, an edit through the publishing API).
    pub fn fingerprint(&self) -> Vec<(String, i64, String, &'static str)> {
        self.ordered
            .iter()
            .map(|entry| {
                (
                    entry.id().to_owned(),
                    entry.version,
                    entry.definition_hash.clone(),
                    entry.definition.access.as_str(),
                )
            })
            .collect()
    }
}

/// The shared, swappable catalogue, and the tables its readers are using
/// (an entry can be swapped out while a read of its table still runs).
#[derive(Debug, Clone, Default)]
pub struct CatalogHandle {
    current: Arc<ArcSwap<Catalog>>,
    in_use: TablesInUse,
}

impl CatalogHandle {
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Marks `table` in use by a read until the lease is dropped: the
    /// cleanup of retired tables leaves it alone meanwhile.
    pub fn lease(&self, table: &str) -> TableLease {
        self.in_use.lease(table)
    }

    /// Tables that running reads use.
    pub fn tables_in_use(&self) -> &TablesInUse {
        &self.in_use
    }

    /// Re-reads the catalogue table; entries that cannot be read are logged
    /// and left out, retired datasets (tombstones) too.
    ///
    /// On PostgreSQL each entry notes the WAL position read after the
    /// catalogue (every commit the catalogue saw is at or before it); an
    /// entry whose table is unchanged keeps the position it had, so a
    /// change to one dataset sends no other dataset's reads to the primary.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let stored = store.stored_datasets().await?;
        let written_at = store.wal_position().await?.unwrap_or_default();
        let before = self.current();
        let entries = stored
            .iter()
            .filter(|row| !row.is_retired())
            .filter_map(|row| match DatasetEntry::from_stored(row) {
                Ok(mut entry) => {
                    entry.written_at = match before.get(entry.id()) {
                        Some(known) if known.table_name == entry.table_name => known.written_at,
                        _ => written_at,
                    };
                    Some(entry)
                }
                Err(reason) => {
                    tracing::error!(%reason, "dataset left out of the catalogue");
                    None
                }
            })
            .collect();
        self.current.store(Arc::new(Catalog::new(entries)));
        Ok(())
    }
}

//! Dataset metadata: the catalogue files, their ingestion into the store, and
//! the in-memory catalogue every request consults.

pub mod dcat;
pub mod definition;
pub mod entry;
pub mod ingest;
pub mod inventory;
pub mod publish;
pub mod register;
pub mod register_csv;
pub mod register_import;
pub mod search;
pub mod sync;

pub use entry::{Catalog, CatalogHandle, DatasetEntry, GeometryColumns};

//! Dataset metadata: the catalogue files, their ingestion into the store, and
//! the in-memory catalogue every request consults.

pub mod definition;
pub mod entry;
pub mod ingest;
pub mod publish;
pub mod sync;

pub use entry::{Catalog, CatalogHandle, DatasetEntry, GeometryColumns};

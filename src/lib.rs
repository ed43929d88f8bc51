//! Passerelle: one REST gateway in front of every dataset of a public body.
//!
//! A request flows `http` → `auth` (who is asking) → `policy` (may they, and
//! through which view) → `query` (the query string parsed into a typed plan)
//! → `store` (SQL for SQLite or PostgreSQL) → `format` (JSON, CSV, NDJSON,
//! GeoJSON) → response, with `audit` recording it. `catalog` holds dataset
//! metadata and ingestion.

pub mod audit;
pub mod catalog;
pub mod domain;
pub mod query;
pub mod store;

//! Passerelle: one REST gateway in front of every dataset of a public body.
//!
//! A request flows `http` → `auth` (who is asking) → `policy` (may they, and
//! through which view) → `query` (the query string parsed into a typed plan)
//! → `store` (SQL for SQLite or PostgreSQL) → `format` (JSON, CSV, NDJSON,
//! GeoJSON) → response, with `audit` recording it. `catalog` holds dataset
//! metadata and ingestion.

// `Problem` (an RFC 9457 document with headers) is the error type of every
// handler: built once per refused request, returned by value through a few
// frames. Boxing it would cost an allocation and buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod domain;
pub mod format;
pub mod http;
pub mod limits;
pub mod policy;
pub mod query;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;

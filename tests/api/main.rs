//! HTTP tests: the real router on a random port against a real store. Every
//! test runs on SQLite and on PostgreSQL (`on_both_stores!`).

mod helpers;
mod oidc_provider;

mod access;
mod admin;
mod audit_dashboard;
mod audit_durability;
mod audit_trail;
mod audit_truth;
mod browser;
mod catalogue;
mod dcat;
mod edge_http;
mod errors;
mod exports_copy;
mod exports_copy_json;
mod exports_direct;
mod formats;
mod identity;
mod ingestion;
mod inventory_page;
mod openapi;
mod operations;
mod pages;
mod pages_browser;
mod policy_store;
mod postgrest_client;
mod publishing;
mod publishing_changes;
mod rate_limits;
mod read;
mod register;
mod resilience_edge;
mod resilience_exports;
mod resilience_imports;
mod resilience_input;
mod resilience_outage;
mod revocation;
mod sign_in;
mod steward_forms;

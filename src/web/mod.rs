//! Pages for people: the home page, the catalogue and each dataset's page,
//! rendered on the server from compiled templates (`src/web/templates/`), in
//! French unless the visitor asks for English, with a stylesheet and a
//! little script built into the binary (`/assets/…`).
//!
//! Pages go through the same request middleware as the API (`request::track`:
//! the caller's identity and one audit event per page) and reuse its
//! decisions: the catalogue summary for what a caller may know, the read
//! authorisation and parser for the rows a page shows. Nothing here decides
//! access on its own.

pub mod assets;
pub mod catalogue;
pub mod dataset;
pub mod display;
pub mod home;
pub mod locale;
pub mod page;
pub mod preview;
pub mod snippets;

use axum::Router;
use axum::routing::get;

use crate::http::state::AppState;

/// The pages. `http::router` wraps them in `request::track`, as the API:
/// each request identified and audited.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/datasets", get(catalogue::catalogue))
        .route("/datasets/{id}", get(dataset::dataset))
}

/// The stylesheet and script: outside the audit log (they hold no data).
pub fn asset_routes() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(assets::serve))
}

//! Pages for people: the home page, the catalogue and each dataset's page
//! (with a map for geographic datasets), the staff sign-in (`signin`,
//! `session`: OpenID Connect, server-side sessions) and the auditors'
//! dashboard (`audit`), the stewards' inventory (`inventory`) and their
//! forms (`steward`: a dataset's metadata, a new version with its dry run),
//! rendered on the server from compiled templates
//! (`src/web/templates/`), in French unless the visitor asks for English,
//! with a stylesheet and a little script built into the binary (`/assets/…`).
//!
//! Pages go through the same request middleware as the API
//! (`request::track_pages`: the caller's identity, from the session of a
//! staff sign-in, and one audit event per page) and reuse its
//! decisions: the catalogue summary for what a caller may know, the read
//! authorisation and parser for the rows a page shows. Nothing here decides
//! access on its own.

pub mod assets;
pub mod audit;
pub mod catalogue;
pub mod chart;
pub mod dataset;
pub mod display;
pub mod home;
pub mod inventory;
pub mod locale;
pub mod map;
pub mod page;
pub mod preview;
pub mod session;
pub mod settings;
pub mod signin;
pub mod snippets;
pub mod steward;

use axum::Router;
use axum::routing::{get, post};

use crate::http::state::AppState;

/// The pages. `http::router` wraps them in `request::track_pages`: each
/// request identified by its session (never a bearer token) and audited.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/datasets", get(catalogue::catalogue))
        .route("/datasets/{id}", get(dataset::dataset))
        .route("/audit", get(audit::dashboard))
        .route("/audit/verify", post(audit::verify))
        .route("/audit/events.csv", get(audit::events_csv))
        .route("/inventory", get(inventory::dashboard))
        .route("/inventory/register.csv", get(inventory::register_csv))
        .route("/login", get(signin::login))
        .route("/login/callback", get(signin::callback))
        .route("/logout", post(signin::logout))
        .route(
            "/datasets/{id}/edit",
            get(steward::edit::form).post(steward::edit::save),
        )
        .route("/datasets/{id}/upload", get(steward::upload::form))
        .route(
            "/datasets/{id}/upload/publish",
            post(steward::upload::publish),
        )
}

/// The stewards' dry run of a new version (a file in a multipart form):
/// `http::router` mounts it with the publishing API's body limit and no
/// request timeout, like the API's upload.
pub fn upload_routes() -> Router<AppState> {
    Router::new().route("/datasets/{id}/upload/check", post(steward::upload::check))
}

/// True for a request to the stewards' dry run (`POST /datasets/{id}/upload/check`).
pub fn is_upload<B>(request: &axum::http::Request<B>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::POST
        && path
            .strip_prefix("/datasets/")
            .and_then(|rest| rest.strip_suffix("/upload/check"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The stylesheet and script: outside the audit log (they hold no data).
pub fn asset_routes() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(assets::serve))
}

//! The HTTP edge: routes, the per-request middleware, problem documents.

pub mod audit;
pub mod caching;
pub mod client_text;
pub mod compression;
pub mod context;
pub mod cors;
pub mod data;
pub mod dataset_id;
pub mod datasets;
pub mod dcat;
pub mod edge;
pub mod guard;
pub mod health;
pub mod inventory;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod policy;
pub mod problem;
pub mod publishing;
pub mod request;
pub mod state;
pub mod streamed;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::problem::Problem;
use self::state::AppState;

/// The whole application.
pub fn router(state: AppState) -> Router {
    metrics::install();
    let settings = state.settings.clone();
    let (api, _) = api_routes().split_for_parts();
    let (operations, _) = operation_routes().split_for_parts();
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Compressed inside the audit middleware: it counts the bytes on the wire.
        .layer(middleware::map_response(
            compression::set_content_range_aside,
        ))
        .layer(compression::layer(&settings.server.compression))
        .layer(middleware::map_response(compression::restore_content_range))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request::track,
        ));
    // Pages: identified and audited like the API, compressed inside the
    // audit middleware for the same reason.
    // Pages know their callers by the session cookie of a sign-in, the API
    // by bearer credentials only.
    // One upload slot per dataset and the stewards' checked files, shared
    // by the API's upload and the pages' dry run and publish.
    let locks = publishing::upload::UploadLocks::default();
    let steward_uploads = crate::web::steward::Uploads {
        locks: locks.clone(),
        pending: Default::default(),
    };
    let pages = crate::web::routes()
        .layer(axum::Extension(steward_uploads.clone()))
        .layer(compression::layer(&settings.server.compression))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request::track_pages,
        ));
    // Uploads: a body limit of their own and no request timeout (a large
    // file takes its time), identified and audited like the rest of the API.
    let (uploads, _) = publishing::upload_routes().split_for_parts();
    let uploads = uploads
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(locks))
        .layer(RequestBodyLimitLayer::new(
            usize::try_from(settings.publishing.max_upload_bytes).unwrap_or(usize::MAX),
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request::track,
        ));
    let page_uploads = crate::web::upload_routes()
        .layer(axum::Extension(steward_uploads))
        .layer(RequestBodyLimitLayer::new(
            usize::try_from(settings.publishing.max_upload_bytes).unwrap_or(usize::MAX),
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request::track_pages,
        ));
    let service = operations
        .merge(openapi::routes())
        .merge(crate::web::asset_routes())
        .layer(compression::layer(&settings.server.compression));
    let general = Router::new()
        .merge(api)
        .merge(pages)
        .merge(service)
        .layer(RequestBodyLimitLayer::new(settings.server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(settings.server.request_timeout_seconds),
        ));
    Router::new()
        .merge(uploads)
        .merge(page_uploads)
        .merge(general)
        .layer(middleware::from_fn_with_state(state.clone(), edge::guard))
        // Outermost: preflights are answered before anything is audited, and
        // every answer (the edge's own refusals included) carries the CORS headers.
        .layer(cors::layer(&settings.server.cors))
        .layer(middleware::from_fn(cors::preflight_no_content))
        .with_state(state)
}

/// The API: every route registered with its documentation, each request
/// authenticated and audited.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(datasets::list::list_datasets))
        .routes(routes!(datasets::show::show_dataset))
        .routes(routes!(data::read::read_dataset))
        .merge(crate::auth::routes())
        .merge(audit::routes())
        .merge(policy::routes())
        .merge(publishing::routes())
        .merge(inventory::routes())
        .merge(dcat::routes())
}

/// Health and metrics: outside authentication and the audit log.
pub fn operation_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::render))
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such resource",
    )
    .with_code("PGRST125")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this method is not allowed on this resource",
    )
}

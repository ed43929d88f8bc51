//! The API description (OpenAPI 3.1, generated from the handlers) at
//! `/openapi.json`, and a Swagger UI at `/docs` embedded in the binary, so
//! it works on an intranet without internet access.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::limits::RateLimitResponses;
use super::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Passerelle",
        description = "One REST gateway in front of every dataset of a public body: open data anonymously, \
                       closed data to authenticated and authorised callers, every access in a tamper-evident audit log. \
                       Rows are read with the PostgREST grammar; errors are RFC 9457 problem documents.",
        license(name = "EUPL-1.2")
    ),
    paths(
        super::datasets::list::list_datasets,
        super::datasets::show::show_dataset,
        super::data::read::read_dataset,
        super::health::live,
        super::health::ready,
        super::metrics::render,
        super::policy::check,
        super::policy::reload,
        super::audit::events,
        super::audit::stats,
        super::audit::verify,
        super::auth_doc::token,
        super::auth_doc::jwks,
        super::auth_doc::authorization_server_metadata,
    ),
    modifiers(&BearerAuth, &RateLimitResponses),
    tags(
        (name = "catalogue", description = "What datasets exist and what the caller may do with them"),
        (name = "data", description = "Rows, in the PostgREST read grammar"),
        (name = "auth", description = "OAuth2 client credentials and the gateway's keys"),
        (name = "audit", description = "The access log, for auditors"),
        (name = "policy", description = "Authorisation checks, for administrators"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the protected operations name: a JWT (the
/// gateway's, or a trusted identity provider's) or a partner API key.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or pk_ API key")
                    .build(),
            ),
        );
    }
}

/// The full description, handlers of every module included.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The description as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_default() + "\n"
}

pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}

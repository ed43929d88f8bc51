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
    components(schemas(super::problem::ProblemDocument)),
    modifiers(&BearerAuth),
    tags(
        (name = "catalogue", description = "What datasets exist and what the caller may do with them"),
        (name = "data", description = "Rows, in the PostgREST read grammar"),
        (name = "auth", description = "OAuth2 client credentials and the gateway's keys"),
        (name = "audit", description = "The access log, for auditors"),
        (name = "policy", description = "Authorisation checks, for administrators"),
        (name = "publishing", description = "Stewards and providers: definitions, uploads, versions"),
        (name = "register", description = "The data register: inventory and DCAT-AP catalogue"),
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

/// Problem documents shared by the operations: each error answer a handler
/// declares (status and what it means there) is an RFC 9457 problem
/// document, and every API operation can also answer the errors any request
/// may meet (credentials refused, a store or audit log unavailable, an
/// internal error). Declared once here instead of on every handler.
struct ProblemResponses;

/// Errors every `/api/v1` operation may answer, whatever it does.
const COMMON_PROBLEMS: [(&str, &str); 3] = [
    (
        "401",
        "Credentials given but refused (expired, forged, unknown key): the problem says which check failed",
    ),
    (
        "500",
        "Internal error: the problem names the request id to quote",
    ),
    (
        "503",
        "The store or the audit log cannot serve now, or the gateway is shutting down: retry after `Retry-After` seconds",
    ),
];

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDocument")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The OAuth2 endpoints answer in OAuth2's own error format.
            let oauth = path.starts_with("/.well-known/") || path == "/api/v1/auth/token";
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if path.starts_with("/api/v1/") && !oauth {
                    for (status, description) in COMMON_PROBLEMS {
                        responses.entry(status.to_owned()).or_insert_with(|| {
                            RefOr::T(ResponseBuilder::new().description(description).build())
                        });
                    }
                }
                for (status, response) in responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if let (true, false, RefOr::T(response)) = (error, oauth, response)
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), problem().into());
                    }
                }
            }
        }
    }
}

/// The full description: every documented route (see [`super::api_routes`]),
/// with the shared problem responses and the 429 of the rate limits.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::Modify;
    let mut document =
        utoipa_axum::router::OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
            .merge(super::api_routes())
            .merge(super::publishing::upload_routes())
            .merge(super::operation_routes())
            .into_openapi();
    ProblemResponses.modify(&mut document);
    RateLimitResponses.modify(&mut document);
    document
}

/// The description as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_default() + "\n"
}

pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}

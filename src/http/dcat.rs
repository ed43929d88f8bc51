//! `GET /api/v1/catalog/dcat`: the catalogue in DCAT-AP 2.1 for the national
//! and regional portals, in JSON-LD, Turtle or RDF/XML (`Accept` or
//! `?format=`), paged with Hydra.
//!
//! What a harvester sees is what an anonymous caller may see: a dataset is
//! listed when the policy lets anyone know it exists (restricted metadata
//! never appears), and gets download URLs only when the policy lets anyone
//! export its rows.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::catalog::dcat::{self, Listed, Page};
use crate::catalog::definition::MetadataVisibility;
use crate::domain::client_text;
use crate::http::context::RequestContext;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::{Action, Refusal};

/// The route with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(catalog_dcat))
}

/// Datasets per page unless `page_size` says otherwise; and at most.
const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 1000;

/// An RDF serialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RdfFormat {
    JsonLd,
    Turtle,
    RdfXml,
}

impl RdfFormat {
    fn from_name(name: &str) -> Option<RdfFormat> {
        match name {
            "jsonld" | "json-ld" => Some(RdfFormat::JsonLd),
            "turtle" | "ttl" => Some(RdfFormat::Turtle),
            "rdfxml" | "rdf" | "xml" => Some(RdfFormat::RdfXml),
            _ => None,
        }
    }

    /// From `Accept`: the first media type named that we serve; JSON-LD
    /// when absent or `*/*`.
    fn negotiate(accept: Option<&str>) -> Option<RdfFormat> {
        let Some(accept) = accept else {
            return Some(RdfFormat::JsonLd);
        };
        for part in accept.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "application/ld+json" | "application/json" | "*/*" | "application/*" => {
                    return Some(RdfFormat::JsonLd);
                }
                "text/turtle" | "application/x-turtle" | "text/*" => {
                    return Some(RdfFormat::Turtle);
                }
                "application/rdf+xml" | "application/xml" | "text/xml" => {
                    return Some(RdfFormat::RdfXml);
                }
                _ => {}
            }
        }
        None
    }

    fn content_type(self) -> &'static str {
        match self {
            RdfFormat::JsonLd => "application/ld+json; charset=utf-8",
            RdfFormat::Turtle => "text/turtle; charset=utf-8",
            RdfFormat::RdfXml => "application/rdf+xml; charset=utf-8",
        }
    }
}

/// Parameters, for the API description.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DcatParameters {
    /// `jsonld`, `turtle` or `rdfxml`; else from `Accept` (JSON-LD by default).
    format: Option<String>,
    /// 1-based page number.
    page: Option<u64>,
    /// Datasets per page (default 100, at most 1000).
    page_size: Option<u64>,
}

/// The catalogue in DCAT-AP 2.1 (what data.gouv.fr and regional portals
/// harvest): every dataset whose metadata is public, open data with its
/// download URLs, closed data described with a link to the API
/// documentation. Hydra `PartialCollectionView` paging (`next`, `totalItems`).
#[utoipa::path(
    get,
    path = "/api/v1/catalog/dcat",
    tag = "register",
    params(DcatParameters),
    responses(
        (status = 200, description = "A catalogue page in JSON-LD (shown), Turtle (`text/turtle`) or RDF/XML (`application/rdf+xml`)", body = Object, content_type = "application/ld+json"),
        (status = 400, description = "Unknown format, page or parameter"),
        (status = 406, description = "No served RDF serialisation matches `Accept`"),
    )
)]
pub async fn catalog_dcat(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> AppResult<Response> {
    context.note(|record| {
        record.action = Some(crate::audit::Action::Metadata);
        record.decision = Some(true);
        record.rule = Some("public catalogue (DCAT-AP)".to_owned());
    });
    let pairs = client_text::query_pairs(raw_query.as_deref())?;
    let mut format_name = None;
    let mut number = 1;
    let mut size = DEFAULT_PAGE_SIZE;
    for (name, value) in &pairs {
        match name.as_str() {
            "format" => format_name = Some(value.clone()),
            "page" => number = positive(name, value, u64::MAX)?,
            "page_size" => size = positive(name, value, MAX_PAGE_SIZE)?,
            other => {
                return Err(invalid(format!(
                    "unknown parameter `{other}`: use `format`, `page` and `page_size`"
                )));
            }
        }
    }
    let format = match &format_name {
        Some(name) => RdfFormat::from_name(name).ok_or_else(|| {
            invalid(format!("format `{name}` is not `jsonld`, `turtle` or `rdfxml`"))
        })?,
        None => RdfFormat::negotiate(headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "not-acceptable",
                    "Not acceptable",
                    "the DCAT catalogue is served as application/ld+json, text/turtle or application/rdf+xml",
                )
            })?,
    };
    let anonymous = Caller::anonymous();
    let catalog = state.catalog.current();
    let listed: Vec<Listed<'_>> = catalog
        .entries()
        .iter()
        .filter(|entry| entry.definition.metadata_visibility == MetadataVisibility::Public)
        .filter(|entry| {
            !matches!(
                state.policy.grant(&anonymous, entry, Action::Metadata),
                Err(Refusal::Hidden { .. })
            )
        })
        .map(|entry| Listed {
            entry,
            downloadable: entry.version > 0
                && state
                    .policy
                    .grant(&anonymous, entry, Action::Export)
                    .is_ok_and(|grant| {
                        grant.aggregate_only.is_none()
                            && grant.row_filter.is_none()
                            && !grant.purpose_required
                    }),
        })
        .collect();
    let page = Page {
        base: public_base(&state, &headers),
        number,
        size,
        total: listed.len() as u64,
        format: format_name,
    };
    let start = usize::try_from((number - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let on_page: Vec<Listed<'_>> = listed
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .collect();
    let publisher = catalogue_publisher(&catalog);
    let graph = dcat::catalog_page(&on_page, &page, &publisher);
    let body = match format {
        RdfFormat::JsonLd => graph.to_json_ld().to_string(),
        RdfFormat::Turtle => graph.to_turtle(),
        RdfFormat::RdfXml => graph.to_rdf_xml(),
    };
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

/// The catalogue's publisher: the organisation that owns most datasets of
/// the catalogue (the register's `organisation`, else the publisher), so
/// that every page names the same one.
fn catalogue_publisher(catalog: &crate::catalog::Catalog) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for entry in catalog.entries() {
        let owner = entry
            .definition
            .organisation
            .as_deref()
            .unwrap_or(entry.definition.publisher.as_str());
        *counts.entry(owner).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map_or_else(|| "Passerelle".to_owned(), |(owner, _)| owner.to_owned())
}

/// The configured public URL, else the request's host (checked characters).
fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.auth.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn positive(name: &str, value: &str, maximum: u64) -> Result<u64, Problem> {
    value
        .parse::<u64>()
        .ok()
        .filter(|number| (1..=maximum).contains(number))
        .ok_or_else(|| {
            invalid(format!(
                "`{name}` must be a whole number from 1 to {maximum}, not `{value}`"
            ))
        })
}

fn invalid(detail: String) -> Problem {
    Problem::bad_request("invalid-query", "Malformed query", detail)
}

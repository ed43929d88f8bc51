//! `GET /api/v1/inventory` (`inventory:read`): the data register's tables,
//! or with `?format=csv` the register itself for a spreadsheet.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::DatasetEntry;
use crate::catalog::inventory::{self, Dimension, Inventory};
use crate::catalog::register_csv;
use crate::domain::client_text;
use crate::http::context::RequestContext;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;

/// The route with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_inventory))
}

/// Parameters of the inventory, for the API description.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InventoryParameters {
    /// A cross-tabulation over comma-separated dimensions: `organisation`,
    /// `direction`, `theme`, `source_kind` (or `source`), `sharing`,
    /// `confidentiality`, `access` (e.g. `theme,access`).
    by: Option<String>,
    /// `json` (default) or `csv`: the register, one line per dataset.
    format: Option<String>,
    /// `fr` for French CSV headers and values (`Oui`, `Non`, `À définir`).
    lang: Option<String>,
}

/// The data register's inventory: counts and percentages by organisation,
/// direction, theme, source kind, sharing, confidentiality and access level;
/// the datasets due for review, stale or undecided. `?format=csv` gives the
/// register (`;`, UTF-8 with BOM; French headers with `?lang=fr`).
#[utoipa::path(
    get,
    path = "/api/v1/inventory",
    tag = "register",
    params(InventoryParameters),
    responses(
        (status = 200, description = "The inventory (JSON), or the register (CSV)", body = Inventory),
        (status = 400, description = "Unknown dimension, format or parameter"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "No inventory:read permission"),
    ),
    security(("bearer" = []))
)]
pub async fn show_inventory(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
) -> AppResult<Response> {
    require(&state, &context, Action::InventoryRead)?;
    let pairs = client_text::query_pairs(raw_query.as_deref())?;
    let mut by = None;
    let mut csv = false;
    let mut french = false;
    for (name, value) in &pairs {
        match name.as_str() {
            "by" => by = Some(dimensions(value)?),
            "format" => {
                csv = match value.as_str() {
                    "csv" => true,
                    "json" => false,
                    other => {
                        return Err(invalid(format!("format `{other}` is not `json` or `csv`")));
                    }
                }
            }
            "lang" => {
                french = match value.as_str() {
                    "fr" => true,
                    "en" => false,
                    other => return Err(invalid(format!("lang `{other}` is not `fr` or `en`"))),
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown parameter `{other}`: use `by`, `format` and `lang`"
                )));
            }
        }
    }
    let catalog = state.catalog.current();
    let entries: Vec<&DatasetEntry> = catalog
        .entries()
        .iter()
        .map(|entry| entry.as_ref())
        .collect();
    if csv {
        let body = register_csv::export(&entries, french);
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"registre.csv\""),
        );
        return Ok(response);
    }
    let inventory = inventory::compute(&entries, by.as_deref(), chrono::Utc::now());
    Ok(Json(inventory).into_response())
}

fn dimensions(text: &str) -> Result<Vec<Dimension>, Problem> {
    let mut dimensions = Vec::new();
    for name in text.split(',').map(str::trim) {
        let dimension = Dimension::parse(name).ok_or_else(|| {
            invalid(format!(
                "`{name}` is not a dimension: use {}",
                Dimension::ALL.map(Dimension::as_str).join(", ")
            ))
        })?;
        if dimensions.contains(&dimension) {
            return Err(invalid(format!("dimension `{name}` is given twice")));
        }
        dimensions.push(dimension);
    }
    Ok(dimensions)
}

fn invalid(detail: String) -> Problem {
    Problem::bad_request("invalid-query", "Malformed query", detail)
}

//! `GET /api/v1/datasets`: the catalogue, only what the caller may see.

use axum::extract::{Query, RawQuery, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{DatasetSummary, summarize};
use crate::catalog::definition::{AccessLevel, DatasetDefinition};
use crate::domain::client_text::query_pairs;
use crate::http::context::RequestContext;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParameters {
    /// Words to find in the title, description, keywords or id.
    pub q: Option<String>,
    pub theme: Option<String>,
    pub access: Option<AccessLevel>,
    pub publisher: Option<String>,
    /// From 1.
    pub page: Option<u32>,
    /// From 1 to 100 (default 20).
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetList {
    pub datasets: Vec<DatasetSummary>,
    pub total: usize,
    pub page: u32,
    pub page_size: u32,
}

/// The catalogue: the datasets this caller may know about, each saying
/// whether the caller can read its data.
#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "catalogue",
    params(ListParameters),
    responses(
        (status = 200, description = "Catalogue page", body = DatasetList),
        (status = 400, description = "Invalid parameter"),
    )
)]
pub async fn list_datasets(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    query: Result<Query<ListParameters>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<DatasetList>> {
    note_listing(&context);
    // `Query` decodes leniently (invalid bytes become U+FFFD): check strictly first.
    query_pairs(raw_query.as_deref())?;
    let Query(parameters) = query.map_err(|rejection| {
        Problem::bad_request(
            "invalid-parameter",
            "Invalid parameter",
            rejection.body_text(),
        )
    })?;
    let page = parameters.page.unwrap_or(1);
    let page_size = parameters.page_size.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&page_size) {
        return Err(Problem::bad_request(
            "invalid-parameter",
            "Invalid parameter",
            "page starts at 1 and page_size is between 1 and 100",
        ));
    }
    let words = search_words(parameters.q.as_deref().unwrap_or(""));
    let catalog = state.catalog.current();
    let matching: Vec<DatasetSummary> = catalog
        .entries()
        .iter()
        .filter(|entry| {
            let definition = &entry.definition;
            parameters
                .theme
                .as_ref()
                .is_none_or(|theme| &definition.theme == theme)
                && parameters
                    .access
                    .is_none_or(|access| definition.access == access)
                && parameters
                    .publisher
                    .as_ref()
                    .is_none_or(|publisher| &definition.publisher == publisher)
                && matches_words(definition, &words)
        })
        .filter_map(|entry| summarize(&state.policy, &context.caller, entry))
        .collect();
    let total = matching.len();
    let start = ((page - 1) as usize).saturating_mul(page_size as usize);
    let datasets = matching
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    Ok(Json(DatasetList {
        datasets,
        total,
        page,
        page_size,
    }))
}

/// The words of a catalogue search, lowercased.
pub fn search_words(query: &str) -> Vec<String> {
    query.split_whitespace().map(str::to_lowercase).collect()
}

/// True when every word (lowercased) is in the id, title, description or a
/// keyword of `definition`.
pub fn matches_words(definition: &DatasetDefinition, words: &[String]) -> bool {
    words.iter().all(|word| {
        definition.id.contains(word.as_str())
            || definition.title.to_lowercase().contains(word.as_str())
            || definition
                .description
                .to_lowercase()
                .contains(word.as_str())
            || definition
                .keywords
                .iter()
                .any(|keyword| keyword.to_lowercase().contains(word.as_str()))
    })
}

/// The audit facts of a catalogue listing (the API's or a page's): metadata, allowed.
pub fn note_listing(context: &RequestContext) {
    context.note(|record| {
        record.action = Some(crate::audit::Action::Metadata);
        record.decision = Some(true);
        record.rule = Some("catalogue listing".to_owned());
    });
}

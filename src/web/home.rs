//! `GET /`: a search box, the themes with their number of datasets, the
//! datasets updated last, and how many datasets are open. From the
//! in-memory catalogue and the policy only, like the catalogue page.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::catalogue::DatasetCard;
use super::display;
use super::locale::Texts;
use super::page::{Layout, Site, pairs_of, respond};
use crate::catalog::definition::AccessLevel;
use crate::http::context::RequestContext;
use crate::http::datasets::{DatasetSummary, summarize};
use crate::http::state::AppState;

/// Datasets listed as updated last.
const LATEST: usize = 5;

struct Theme {
    name: String,
    count: usize,
    href: String,
}

#[derive(Template)]
#[template(path = "home.html", config = "src/web/askama.toml")]
struct HomePage {
    layout: Layout,
    t: &'static Texts,
    query: String,
    open_count: String,
    themes: Vec<Theme>,
    latest: Vec<DatasetCard>,
}

/// `GET /`.
pub async fn home(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    crate::http::datasets::list::note_listing(&context);
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    let site = Site::of(&pairs, &headers);
    let catalog = state.catalog.current();
    let mut visible: Vec<DatasetSummary> = catalog
        .entries()
        .iter()
        .filter_map(|entry| summarize(&state.policy, &context.caller, entry))
        .collect();
    let open = visible
        .iter()
        .filter(|summary| summary.access == AccessLevel::Open)
        .count();
    let mut themes: BTreeMap<&str, usize> = BTreeMap::new();
    for summary in &visible {
        if !summary.theme.is_empty() {
            *themes.entry(summary.theme.as_str()).or_default() += 1;
        }
    }
    let themes = themes
        .into_iter()
        .map(|(name, count)| Theme {
            name: name.to_owned(),
            count,
            href: site.href("/datasets", [("theme", name)]),
        })
        .collect();
    // RFC 3339 timestamps in UTC sort as text.
    visible.sort_by(|a, b| b.last_updated.cmp(&a.last_updated));
    let latest = visible
        .iter()
        .take(LATEST)
        .map(|summary| DatasetCard::of(summary, site))
        .collect();
    let texts = site.texts();
    let page = HomePage {
        layout: Layout::new(site, texts.home_title.to_owned(), "/", &pairs),
        t: texts,
        query: String::new(),
        open_count: display::integer(open as i64, site.lang),
        themes,
        latest,
    };
    respond(StatusCode::OK, &page)
}

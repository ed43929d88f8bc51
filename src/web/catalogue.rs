//! `GET /datasets`: the catalogue the visitor may see, searched by words,
//! narrowed by facets (theme, access level, licence, publisher), 20 to a
//! page. Everything comes from the in-memory catalogue and the policy's
//! decision for each entry ([`may_know`], the condition under which the API
//! describes an entry): no store query, whatever the number of datasets.
//! The lowercased search text and the title order are prepared once per
//! catalogue snapshot (`catalog::search`), and only the page shown is
//! turned into cards: a request scans prepared strings and cached decisions.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::display;
use super::locale::{Lang, Texts};
use super::page::{Layout, Site, error_page, pairs_of, respond};
use crate::catalog::DatasetEntry;
use crate::catalog::definition::AccessLevel;
use crate::http::context::RequestContext;
use crate::http::datasets::list::search_words;
use crate::http::datasets::{DatasetSummary, may_know};
use crate::http::state::AppState;

/// Entries on a page.
const PAGE_SIZE: usize = 20;

/// One entry of a list of datasets (the catalogue, the home page).
pub struct DatasetCard {
    pub title: String,
    pub href: String,
    pub publisher: String,
    pub licence: String,
    /// The access level's name, for the badge's class.
    pub access: &'static str,
    pub access_label: &'static str,
    pub updated: String,
    pub updated_iso: String,
}

impl DatasetCard {
    /// The card of an entry the caller may know of (its fields are those of
    /// its summary: none depends on what the caller may read).
    pub fn of_entry(entry: &DatasetEntry, site: Site) -> DatasetCard {
        let definition = &entry.definition;
        DatasetCard {
            title: definition.title.clone(),
            href: site.href(&format!("/datasets/{}", entry.id()), []),
            publisher: definition.publisher.clone(),
            licence: definition.licence.clone(),
            access: definition.access.as_str(),
            access_label: site.lang.access_label(definition.access),
            updated: display::timestamp_date(&entry.last_updated, site.lang),
            updated_iso: entry.last_updated.clone(),
        }
    }

    pub fn of(summary: &DatasetSummary, site: Site) -> DatasetCard {
        DatasetCard {
            title: summary.title.clone(),
            href: site.href(&format!("/datasets/{}", summary.id), []),
            publisher: summary.publisher.clone(),
            licence: summary.licence.clone(),
            access: summary.access.as_str(),
            access_label: site.lang.access_label(summary.access),
            updated: display::timestamp_date(&summary.last_updated, site.lang),
            updated_iso: summary.last_updated.clone(),
        }
    }
}

/// The facets, in the order the page shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Facet {
    Theme,
    Access,
    Licence,
    Publisher,
}

impl Facet {
    const ALL: [Facet; 4] = [
        Facet::Theme,
        Facet::Access,
        Facet::Licence,
        Facet::Publisher,
    ];

    fn key(self) -> &'static str {
        match self {
            Facet::Theme => "theme",
            Facet::Access => "access",
            Facet::Licence => "licence",
            Facet::Publisher => "publisher",
        }
    }

    fn title(self, texts: &Texts) -> &'static str {
        match self {
            Facet::Theme => texts.facet_theme,
            Facet::Access => texts.facet_access,
            Facet::Licence => texts.facet_licence,
            Facet::Publisher => texts.facet_publisher,
        }
    }

    fn value_of(self, entry: &DatasetEntry) -> &str {
        let definition = &entry.definition;
        match self {
            Facet::Theme => &definition.theme,
            Facet::Access => definition.access.as_str(),
            Facet::Licence => &definition.licence,
            Facet::Publisher => &definition.publisher,
        }
    }

    fn label(self, value: &str, lang: Lang) -> String {
        match (self, access_level(value)) {
            (Facet::Access, Some(level)) => lang.access_label(level).to_owned(),
            _ => value.to_owned(),
        }
    }
}

fn access_level(name: &str) -> Option<AccessLevel> {
    [
        AccessLevel::Open,
        AccessLevel::Partners,
        AccessLevel::Internal,
        AccessLevel::Confidential,
        AccessLevel::Undecided,
    ]
    .into_iter()
    .find(|level| level.as_str() == name)
}

/// What the visitor asked for.
struct Search {
    query: String,
    /// The chosen value of each facet, by [`Facet::ALL`] position.
    chosen: [Option<String>; 4],
    page: usize,
}

impl Search {
    /// Reads the parameters; the message of the first bad one otherwise.
    fn parse(pairs: &[(String, String)]) -> Result<Search, String> {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let chosen = Facet::ALL.map(|facet| value(facet.key()));
        if let Some(access) = &chosen[1]
            && access_level(access).is_none()
        {
            return Err(format!(
                "access `{access}` is not one of open, partners, internal, confidential, undecided"
            ));
        }
        let page = match value("page") {
            None => 1,
            Some(page) => page
                .parse::<usize>()
                .ok()
                .filter(|page| (1..=100_000).contains(page))
                .ok_or_else(|| format!("page `{page}` is not a number from 1"))?,
        };
        Ok(Search {
            query: value("q").unwrap_or_default(),
            chosen,
            page,
        })
    }

    /// True when `entry` has the chosen value of every facet but `except`.
    fn admits(&self, entry: &DatasetEntry, except: Option<Facet>) -> bool {
        Facet::ALL.iter().zip(&self.chosen).all(|(facet, chosen)| {
            Some(*facet) == except
                || chosen
                    .as_deref()
                    .is_none_or(|chosen| facet.value_of(entry) == chosen)
        })
    }

    /// The parameters of this search with `facet` set to `value` (or
    /// removed), back on the first page.
    fn with(&self, facet: Option<Facet>, value: Option<&str>) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if !self.query.is_empty() {
            params.push(("q", self.query.clone()));
        }
        for (each, chosen) in Facet::ALL.iter().zip(&self.chosen) {
            let chosen = if Some(*each) == facet {
                value.map(str::to_owned)
            } else {
                chosen.clone()
            };
            if let Some(chosen) = chosen {
                params.push((each.key(), chosen));
            }
        }
        params
    }
}

fn href(site: Site, params: &[(&'static str, String)]) -> String {
    site.href(
        "/datasets",
        params.iter().map(|(key, value)| (*key, value.as_str())),
    )
}

struct FacetView {
    key: &'static str,
    title: &'static str,
    values: Vec<FacetValue>,
}

struct FacetValue {
    label: String,
    count: usize,
    href: String,
    active: bool,
}

struct PageLink {
    href: String,
}

#[derive(Template)]
#[template(path = "catalogue.html", config = "src/web/askama.toml")]
struct CataloguePage {
    layout: Layout,
    t: &'static Texts,
    query: String,
    total: String,
    facets: Vec<FacetView>,
    cards: Vec<DatasetCard>,
    page: String,
    pages: String,
    previous: Option<PageLink>,
    next: Option<PageLink>,
}

/// `GET /datasets`.
pub async fn catalogue(
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
    let texts = site.texts();
    let search = match Search::parse(&pairs) {
        Ok(search) => search,
        Err(message) => {
            return error_page(
                site,
                StatusCode::BAD_REQUEST,
                texts.error_bad_request,
                &message,
                "/datasets",
                &pairs,
            );
        }
    };
    let words = search_words(&search.query);
    let catalog = state.catalog.current();
    let index = catalog.search_index();
    let entries = catalog.entries();
    // In title order: the entries the words match (prepared text), then
    // those the caller may know of (the policy's cached decision).
    let found: Vec<&DatasetEntry> = index
        .by_title()
        .iter()
        .filter(|position| index.matches(**position, &words))
        .map(|position| entries[*position].as_ref())
        .filter(|entry| may_know(&state.policy, &context.caller, entry))
        .collect();
    let facets = Facet::ALL
        .iter()
        .zip(&search.chosen)
        .map(|(facet, chosen)| facet_view(*facet, chosen.as_deref(), &search, &found, site))
        .collect();
    let results: Vec<&DatasetEntry> = found
        .iter()
        .copied()
        .filter(|entry| search.admits(entry, None))
        .collect();
    let pages = results.len().div_ceil(PAGE_SIZE).max(1);
    let page = search.page.min(pages);
    // Only the page shown is described.
    let cards = results
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|entry| DatasetCard::of_entry(entry, site))
        .collect();
    let page_link = |number: usize| {
        let mut params = search.with(None, None);
        params.push(("page", number.to_string()));
        PageLink {
            href: href(site, &params),
        }
    };
    let view = CataloguePage {
        layout: Layout::new(site, texts.catalogue_title.to_owned(), "/datasets", &pairs),
        t: texts,
        query: search.query.clone(),
        total: site.lang.dataset_count(results.len()),
        facets,
        cards,
        page: display::integer(page as i64, site.lang),
        pages: display::integer(pages as i64, site.lang),
        previous: (page > 1).then(|| page_link(page - 1)),
        next: (page < pages).then(|| page_link(page + 1)),
    };
    respond(StatusCode::OK, &view)
}

/// The values of `facet` among the datasets the other facets admit, with
/// their counts; choosing one narrows, choosing it again removes it.
fn facet_view(
    facet: Facet,
    chosen: Option<&str>,
    search: &Search,
    found: &[&DatasetEntry],
    site: Site,
) -> FacetView {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in found
        .iter()
        .filter(|entry| search.admits(entry, Some(facet)))
    {
        let value = facet.value_of(entry);
        if !value.is_empty() {
            *counts.entry(value).or_default() += 1;
        }
    }
    if let Some(chosen) = chosen {
        counts.entry(chosen).or_default();
    }
    FacetView {
        key: facet.key(),
        title: facet.title(site.texts()),
        values: counts
            .into_iter()
            .map(|(value, count)| {
                let active = chosen == Some(value);
                let target = (!active).then_some(value);
                FacetValue {
                    label: facet.label(value, site.lang),
                    count,
                    href: href(site, &search.with(Some(facet), target)),
                    active,
                }
            })
            .collect(),
    }
}

//! `GET /datasets/{id}`: one dataset for the visitor. Metadata and schema
//! come from the catalogue summary ([`summarize`]: the caller's visible
//! columns only); the preview, downloads and API section only when that
//! decision lets the caller read rows, and the rows through [`preview::read`]
//! (the API's decision, parser and query). A closed dataset's page says what
//! access requires and shows no row, no hidden column.
//!
//! The preview's filter form posts plain fields (`filter_column`,
//! `filter_operator`, `filter_value`), answered by a redirect to the same
//! page with the filter in the read grammar, so every preview URL is the
//! API's query and works without JavaScript.

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::display;
use super::locale::Texts;
use super::page::{Layout, Site, error_page, not_found, pairs_of, respond};
use super::preview::{self, NoRows, PREVIEW_ROWS, Rows, grammar, is_filter};
use super::snippets::{Snippets, snippets};
use crate::catalog::DatasetEntry;
use crate::catalog::definition::AccessLevel;
use crate::format::OutputFormat;
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::datasets::{DatasetSummary, summarize};
use crate::http::problem::ProblemKind;
use crate::http::state::AppState;

/// Operators the filter form offers (all of the grammar's stay usable in the URL).
const OPERATORS: [&str; 7] = ["eq", "neq", "gt", "gte", "lt", "lte", "ilike"];

/// Longest text shown in a preview cell (a GeoJSON geometry can be long).
const MAX_CELL_CHARS: usize = 200;

struct Fact {
    label: &'static str,
    value: String,
    href: Option<&'static str>,
    datetime: Option<String>,
}

struct SchemaRow {
    name: String,
    title: String,
    field_type: String,
    filterable: bool,
}

struct HeaderCell {
    label: String,
    href: String,
    sort_label: &'static str,
    aria_sort: Option<&'static str>,
    numeric: bool,
}

struct Cell {
    text: String,
    numeric: bool,
}

struct Table {
    caption: String,
    headers: Vec<HeaderCell>,
    rows: Vec<Vec<Cell>>,
    previous: Option<String>,
    next: Option<String>,
}

struct ActiveFilter {
    text: String,
    remove_href: String,
}

struct Choice {
    value: String,
    label: String,
}

struct Link {
    label: &'static str,
    href: String,
}

#[derive(Template)]
#[template(path = "dataset.html", config = "src/web/askama.toml")]
struct DatasetPage {
    layout: Layout,
    t: &'static Texts,
    id: String,
    description: String,
    access: &'static str,
    access_label: &'static str,
    late: bool,
    facts: Vec<Fact>,
    requirement: Option<String>,
    schema: Vec<SchemaRow>,
    can_read: bool,
    notice: Option<String>,
    notice_is_error: bool,
    table: Option<Table>,
    filter_columns: Vec<Choice>,
    operators: Vec<Choice>,
    hidden: Vec<(String, String)>,
    active_filters: Vec<ActiveFilter>,
    downloads: Vec<Link>,
    code: Option<Snippets>,
    /// The preview rows' geometries, for a geographic dataset.
    map: Option<Vec<super::map::Mark>>,
    /// The stewards' forms, for a caller whose roles hold `manage` or `publish`.
    steward: super::steward::StewardLinks,
    s: &'static super::steward::StewardTexts,
}

/// `GET /datasets/{id}`.
pub async fn dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/datasets/{id}");
    context.note(|record| {
        record.dataset = Some(id.clone());
        record.action = Some(crate::audit::Action::Metadata);
    });
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    let site = Site::of(&pairs, &headers);
    let catalog = state.catalog.current();
    let found = catalog.get(&id).and_then(|entry| {
        summarize(&state.policy, &context.caller, entry).map(|summary| (entry, summary))
    });
    context.note(|record| {
        record.decision = Some(found.is_some());
        record.rule = Some(
            if found.is_some() {
                "metadata visible"
            } else {
                "not visible"
            }
            .to_owned(),
        );
    });
    let Some((entry, summary)) = found else {
        return not_found(site, &path);
    };
    if pairs.iter().any(|(key, _)| key == "filter_column") {
        return add_filter(site, &path, &pairs, &summary);
    }
    let grammar = grammar(&pairs);
    let mut status = StatusCode::OK;
    let mut page = describe(site, &path, &pairs, &summary);
    page.steward = super::steward::links(&state, &context.caller, entry, site);
    let mut kind = None;
    if summary.can_read {
        match preview::read(&state, &context, entry, &grammar, &headers).await {
            Ok(rows) => {
                page.table = Some(table(site, &path, &grammar, &rows));
                page.map = entry
                    .geometry
                    .and_then(|geometry| map_of(entry, geometry, &rows));
            }
            Err(NoRows::AggregatesOnly) => {
                page.notice = Some(site.texts().preview_aggregates.to_owned());
            }
            Err(NoRows::Problem(problem)) => {
                page.notice_is_error = true;
                page.notice = Some(if problem.slug == "purpose-required" {
                    site.texts().preview_purpose.to_owned()
                } else if problem.status.is_server_error() {
                    site.texts().error_unavailable_detail.to_owned()
                } else {
                    problem.detail.clone()
                });
                // A policy refusal of the preview still shows the metadata;
                // a bad query or a store failure answers with its status.
                if problem.status == StatusCode::BAD_REQUEST || problem.status.is_server_error() {
                    status = problem.status;
                    kind = Some(ProblemKind(problem.slug));
                }
            }
        }
        let base = base_url(&headers);
        page.downloads = downloads(site, entry, &grammar);
        page.code = Some(snippets(
            &base,
            entry.id(),
            &grammar,
            PREVIEW_ROWS,
            summary.access != AccessLevel::Open,
        ));
        page.active_filters = active_filters(site, &path, &grammar);
        page.hidden = grammar
            .iter()
            .filter(|(key, _)| key != "offset")
            .cloned()
            .chain(
                site.lang_field()
                    .map(|lang| ("lang".to_owned(), lang.to_owned())),
            )
            .collect();
    }
    let mut response = respond(status, &page);
    if let Some(kind) = kind {
        // The audit event names the problem, as for the API.
        response.extensions_mut().insert(kind);
    }
    response
}

/// The page's metadata part, what anyone who may know the dataset sees.
fn describe(
    site: Site,
    path: &str,
    pairs: &[(String, String)],
    summary: &DatasetSummary,
) -> DatasetPage {
    let lang = site.lang;
    let texts = site.texts();
    let mut facts = vec![
        fact(texts.publisher, summary.publisher.clone()),
        fact(texts.theme, summary.theme.clone()),
        Fact {
            href: licence_url(&summary.licence),
            ..fact(texts.licence, summary.licence.clone())
        },
    ];
    if let Some(frequency) = &summary.update_frequency {
        facts.push(fact(texts.frequency, lang.frequency_label(frequency)));
    }
    facts.push(Fact {
        datetime: Some(summary.last_updated.clone()),
        ..fact(
            texts.last_update,
            display::timestamp_date(&summary.last_updated, lang),
        )
    });
    facts.push(fact(
        texts.records,
        display::integer(summary.record_count, lang),
    ));
    if !summary.keywords.is_empty() {
        facts.push(fact(texts.keywords, summary.keywords.join(", ")));
    }
    let filterable: Vec<&crate::domain::Field> = summary
        .schema
        .fields
        .iter()
        .filter(|field| field.filterable)
        .collect();
    let offered = if filterable.is_empty() {
        summary.schema.fields.iter().collect()
    } else {
        filterable
    };
    DatasetPage {
        layout: Layout::new(site, summary.title.clone(), path, pairs),
        t: texts,
        id: summary.id.clone(),
        description: summary.description.clone(),
        access: summary.access.as_str(),
        access_label: lang.access_label(summary.access),
        late: is_late(summary, Utc::now()),
        facts,
        requirement: (!summary.can_read)
            .then(|| lang.access_requirement(summary.access, &summary.publisher)),
        schema: summary
            .schema
            .fields
            .iter()
            .map(|field| SchemaRow {
                name: field.name.clone(),
                title: field.title.clone().unwrap_or_default(),
                field_type: serde_json::to_value(field.field_type)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                filterable: field.filterable,
            })
            .collect(),
        can_read: summary.can_read,
        notice: None,
        notice_is_error: false,
        table: None,
        filter_columns: offered
            .into_iter()
            .map(|field| Choice {
                value: field.name.clone(),
                label: field.title.clone().unwrap_or_else(|| field.name.clone()),
            })
            .collect(),
        operators: OPERATORS
            .iter()
            .map(|operator| Choice {
                value: (*operator).to_owned(),
                label: operator_label(operator, texts).to_owned(),
            })
            .collect(),
        hidden: Vec::new(),
        active_filters: Vec::new(),
        downloads: Vec::new(),
        code: None,
        map: None,
        steward: super::steward::StewardLinks::default(),
        s: super::steward::texts_of(lang),
    }
}

/// The map of the preview's rows, labelled by their first text column.
fn map_of(
    entry: &DatasetEntry,
    geometry: crate::catalog::GeometryColumns,
    rows: &Rows,
) -> Option<Vec<super::map::Mark>> {
    let fields = &entry.schema.fields;
    let names: Vec<String> = fields.iter().map(|field| field.name.clone()).collect();
    let label = rows.columns.iter().position(|column| {
        column
            .source
            .and_then(|source| fields.get(source))
            .is_some_and(|field| field.field_type == crate::domain::FieldType::String)
    });
    super::map::draw(geometry, &names, &rows.columns, &rows.rows, label)
}

fn fact(label: &'static str, value: String) -> Fact {
    Fact {
        label,
        value,
        href: None,
        datetime: None,
    }
}

fn operator_label(operator: &str, texts: &Texts) -> &'static str {
    match operator {
        "eq" => texts.operator_eq,
        "neq" => texts.operator_neq,
        "gt" => texts.operator_gt,
        "gte" => texts.operator_gte,
        "lt" => texts.operator_lt,
        "lte" => texts.operator_lte,
        _ => texts.operator_ilike,
    }
}

/// Where a known licence is published.
fn licence_url(licence: &str) -> Option<&'static str> {
    match licence {
        "etalab-2.0" | "lov2" => Some("https://www.etalab.gouv.fr/licence-ouverte-open-licence/"),
        "odbl-1.0" => Some("https://opendatacommons.org/licenses/odbl/1-0/"),
        "cc-by-4.0" => Some("https://creativecommons.org/licenses/by/4.0/deed.fr"),
        _ => None,
    }
}

/// True when the last version is older than the promised frequency (a day of grace).
fn is_late(summary: &DatasetSummary, now: DateTime<Utc>) -> bool {
    let Some(days) = summary
        .update_frequency
        .as_deref()
        .and_then(crate::catalog::inventory::freshness_days)
    else {
        return false;
    };
    DateTime::parse_from_rfc3339(&summary.last_updated)
        .is_ok_and(|updated| now.signed_duration_since(updated).num_days() > days)
}

/// The preview table: sortable headers, localised cells, previous and next pages.
fn table(site: Site, path: &str, grammar: &[(String, String)], rows: &Rows) -> Table {
    let texts = site.texts();
    let order = grammar
        .iter()
        .find(|(key, _)| key == "order")
        .map(|(_, value)| value.as_str());
    let without = |skip: &[&str]| -> Vec<(&str, &str)> {
        grammar
            .iter()
            .filter(|(key, _)| !skip.contains(&key.as_str()))
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    };
    let headers = rows
        .columns
        .iter()
        .map(|column| {
            let ascending = format!("{}.asc", column.key);
            let descending = format!("{}.desc", column.key);
            let (aria_sort, target, sort_label) = if order == Some(ascending.as_str()) {
                (Some("ascending"), descending, texts.sort_descending)
            } else if order == Some(descending.as_str()) {
                (Some("descending"), ascending, texts.sort_ascending)
            } else {
                (None, ascending, texts.sort_ascending)
            };
            let mut params = without(&["order", "offset"]);
            params.push(("order", &target));
            HeaderCell {
                label: column.key.clone(),
                href: site.href(path, params),
                sort_label,
                aria_sort,
                numeric: preview::is_numeric(column.kind),
            }
        })
        .collect();
    let cells = rows
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&rows.columns)
                .map(|(value, column)| {
                    let mut text = display::cell(value, site.lang);
                    if text.chars().count() > MAX_CELL_CHARS {
                        text = text.chars().take(MAX_CELL_CHARS).collect::<String>() + "…";
                    }
                    Cell {
                        text,
                        numeric: preview::is_numeric(column.kind),
                    }
                })
                .collect()
        })
        .collect();
    let page_at = |offset: u64| {
        let mut params = without(&["offset"]);
        let offset = offset.to_string();
        if offset != "0" {
            params.push(("offset", &offset));
        }
        site.href(path, params)
    };
    let shown = rows.rows.len() as u64;
    let caption = if shown == 0 {
        texts.preview_empty.to_owned()
    } else {
        format!(
            "{} {} – {}",
            texts.preview_caption,
            display::integer(rows.offset as i64 + 1, site.lang),
            display::integer((rows.offset + shown) as i64, site.lang)
        )
    };
    Table {
        caption,
        headers,
        rows: cells,
        previous: (rows.offset > 0).then(|| page_at(rows.offset.saturating_sub(PREVIEW_ROWS))),
        next: rows.more.then(|| page_at(rows.offset + PREVIEW_ROWS)),
    }
}

/// The filters of the current query, each with a link that removes it.
fn active_filters(site: Site, path: &str, grammar: &[(String, String)]) -> Vec<ActiveFilter> {
    grammar
        .iter()
        .enumerate()
        .filter(|(_, (key, _))| is_filter(key))
        .map(|(index, (key, value))| {
            let rest = grammar
                .iter()
                .enumerate()
                .filter(|(other, (key, _))| *other != index && key != "offset")
                .map(|(_, (key, value))| (key.as_str(), value.as_str()));
            ActiveFilter {
                text: format!("{key}={value}"),
                remove_href: site.href(path, rest),
            }
        })
        .collect()
}

/// Download links: CSV for French spreadsheets, JSON, GeoJSON when the
/// dataset has a geometry; each with the preview's filters and order.
fn downloads(site: Site, entry: &DatasetEntry, grammar: &[(String, String)]) -> Vec<Link> {
    let texts = site.texts();
    let link = |format: OutputFormat, extra: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in grammar.iter().filter(|(key, _)| key != "offset") {
            query.append_pair(key, value);
        }
        query.append_pair("format", format.extension());
        for (key, value) in extra {
            query.append_pair(key, value);
        }
        format!("/api/v1/data/{}?{}", entry.id(), query.finish())
    };
    let mut links = vec![
        Link {
            label: texts.download_csv,
            href: link(
                OutputFormat::Csv,
                &[("csv_sep", "semicolon"), ("bom", "true")],
            ),
        },
        Link {
            label: texts.download_json,
            href: link(OutputFormat::Json, &[]),
        },
    ];
    if entry.geometry.is_some() {
        links.push(Link {
            label: texts.download_geojson,
            href: link(OutputFormat::GeoJson, &[]),
        });
    }
    links
}

/// The redirect that turns the filter form's fields into the grammar:
/// `?filter_column=commune&filter_operator=eq&filter_value=Troyes` becomes
/// `?commune=eq.Troyes` (back to the first page of rows).
fn add_filter(
    site: Site,
    path: &str,
    pairs: &[(String, String)],
    summary: &DatasetSummary,
) -> Response {
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .unwrap_or("")
    };
    let column = value("filter_column");
    let operator = value("filter_operator");
    let operand = value("filter_value");
    let texts = site.texts();
    if !summary
        .schema
        .fields
        .iter()
        .any(|field| field.name == column)
    {
        return error_page(
            site,
            StatusCode::BAD_REQUEST,
            texts.error_bad_request,
            &format!("`{column}` is not a column of this dataset"),
            path,
            &[],
        );
    }
    if !OPERATORS.contains(&operator) {
        return error_page(
            site,
            StatusCode::BAD_REQUEST,
            texts.error_bad_request,
            &format!("`{operator}` is not one of {}", OPERATORS.join(", ")),
            path,
            &[],
        );
    }
    // Conditions add up (`annee=gte.2020&annee=lte.2022`); each active
    // filter has its own removal link.
    let mut params: Vec<(String, String)> = grammar(pairs)
        .into_iter()
        .filter(|(key, _)| key != "offset")
        .collect();
    if !operand.is_empty() {
        params.push((column.to_owned(), format!("{operator}.{operand}")));
    }
    let target = site.href(
        path,
        params
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `scheme://host` as the visitor reached the gateway, for the snippets.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            host.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        })
        .unwrap_or("localhost:8080");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(frequency: Option<&str>, updated: &str) -> DatasetSummary {
        DatasetSummary {
            id: "d".into(),
            title: "D".into(),
            description: String::new(),
            theme: String::new(),
            keywords: vec![],
            publisher: "P".into(),
            licence: "etalab-2.0".into(),
            access: AccessLevel::Open,
            metadata_visibility: Default::default(),
            update_frequency: frequency.map(str::to_owned),
            personal_data: false,
            last_updated: updated.into(),
            record_count: 0,
            schema: Default::default(),
            can_read: true,
            view: None,
            links: crate::http::datasets::DatasetLinks {
                self_link: String::new(),
                data: String::new(),
                csv: String::new(),
            },
            register: Default::default(),
        }
    }

    /// Late only past the promised frequency and its day of grace; no promise, never late.
    #[test]
    fn tells_late_datasets() {
        let now = DateTime::parse_from_rfc3339("2026-12-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!is_late(
            &summary(Some("daily"), "2026-12-09T08:00:00Z"),
            now
        ));
        assert!(is_late(
            &summary(Some("daily"), "2026-12-07T08:00:00Z"),
            now
        ));
        assert!(!is_late(
            &summary(Some("weekly"), "2026-12-04T08:00:00Z"),
            now
        ));
        assert!(is_late(
            &summary(Some("monthly"), "2026-10-01T08:00:00Z"),
            now
        ));
        assert!(!is_late(&summary(None, "2000-01-01T00:00:00Z"), now));
        assert!(!is_late(
            &summary(Some("irregular"), "2000-01-01T00:00:00Z"),
            now
        ));
    }

    /// Only a sane Host header reaches the snippets.
    #[test]
    fn builds_the_base_url() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "data.example.fr:8443".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(base_url(&headers), "https://data.example.fr:8443");
        headers.insert(header::HOST, "evil\"host".parse().unwrap());
        assert_eq!(base_url(&headers), "https://localhost:8080");
    }
}

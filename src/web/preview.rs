//! The rows a dataset page shows: the page's query parameters in the API's
//! read grammar (`commune=eq.Troyes&order=annee.desc&offset=20`), decided by
//! the same [`authorize`] as `GET /api/v1/data/{id}`, parsed by the same
//! parser, read by the same store query: the page shows exactly the rows the
//! API returns for that query with `limit=20`, and records the same audit
//! event (action `read`, decision, rule, view, purpose, rows).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::HeaderMap;
use futures::StreamExt;

use crate::catalog::DatasetEntry;
use crate::domain::Value;
use crate::http::context::RequestContext;
use crate::http::data::access::{authorize, deny};
use crate::http::problem::Problem;
use crate::http::state::AppState;
use crate::policy::Action;
use crate::query::parse_read_query;
use crate::store::datasets::DatasetRead;
use crate::store::sql::{CellKind, OutputColumn};

/// Rows on a page of the preview.
pub const PREVIEW_ROWS: u64 = 20;

/// Parameters that are not part of the read grammar a preview passes on
/// (the page's own, and those the page sets itself).
const PAGE_KEYS: &[&str] = &[
    "lang",
    "limit",
    "format",
    "csv_sep",
    "bom",
    "page",
    "page_size",
];

/// Keys of the grammar that are not a column filter.
const RESERVED: &[&str] = &["select", "order", "offset", "limit"];

/// The grammar parameters of a page's query: what the preview reads, and
/// what the downloads and the API snippets carry.
pub fn grammar(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(key, _)| !PAGE_KEYS.contains(&key.as_str()) && !key.starts_with("filter_"))
        .cloned()
        .collect()
}

/// The filters among grammar parameters (`or`/`and` included).
pub fn is_filter(key: &str) -> bool {
    !RESERVED.contains(&key) && !PAGE_KEYS.contains(&key)
}

/// A page of rows as read.
pub struct Rows {
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Vec<Value>>,
    pub offset: u64,
    /// True when rows follow this page.
    pub more: bool,
}

/// Why no rows are shown.
pub enum NoRows {
    /// Only aggregates may be read: the page points to the API.
    AggregatesOnly,
    /// Refused, or the query is wrong, or the store failed: the problem
    /// the API would have answered (its status becomes the page's).
    Problem(Problem),
}

/// Reads the preview of `entry` for the request's caller.
pub async fn read(
    state: &AppState,
    context: &RequestContext,
    entry: &DatasetEntry,
    grammar: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Rows, NoRows> {
    let grant =
        authorize(&state.policy, context, entry, Action::Read, headers).map_err(NoRows::Problem)?;
    if grant.aggregate_only.is_some() {
        return Err(NoRows::AggregatesOnly);
    }
    let mut params = grammar.to_vec();
    // One more row than shown tells whether a next page exists.
    params.push(("limit".to_owned(), (PREVIEW_ROWS + 1).to_string()));
    let plan = parse_read_query(
        &params,
        &entry.schema,
        &grant.visible,
        &state.settings.query,
    )
    .map_err(|error| NoRows::Problem(error.into()))?;
    grant
        .admit_plan(entry, &plan)
        .map_err(|refusal| NoRows::Problem(deny(context, refusal)))?;
    let offset = plan.offset;
    let limit = plan.limit;
    let read = Arc::new(DatasetRead {
        table: entry.table_name.clone(),
        schema: entry.schema.clone(),
        plan,
        visible: grant.visible.clone(),
        row_filter: grant.row_filter.clone(),
        min_group_size: None,
        lease: Some(state.catalog.lease(&entry.table_name)),
    });
    let columns = read.output_columns();
    let counter = context.row_counter();
    let written_at = entry.written_at;
    let mut stream = state
        .reads
        .for_pages(written_at)
        .await
        .stream_rows(read, limit);
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(row.map_err(|error| NoRows::Problem(error.into()))?);
    }
    let more = rows.len() as u64 > PREVIEW_ROWS;
    rows.truncate(PREVIEW_ROWS as usize);
    counter.store(rows.len() as u64, Ordering::Relaxed);
    Ok(Rows {
        columns,
        rows,
        offset,
        more,
    })
}

/// True when cells of this kind are numbers (right-aligned).
pub fn is_numeric(kind: CellKind) -> bool {
    matches!(kind, CellKind::Int | CellKind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// The page's own parameters never reach the grammar; filters and ordering do.
    #[test]
    fn keeps_only_the_grammar() {
        let query = pairs(&[
            ("lang", "en"),
            ("commune", "eq.Troyes"),
            ("limit", "5000"),
            ("order", "annee.desc"),
            ("filter_column", "x"),
            ("offset", "20"),
        ]);
        assert_eq!(
            grammar(&query),
            pairs(&[
                ("commune", "eq.Troyes"),
                ("order", "annee.desc"),
                ("offset", "20")
            ])
        );
        assert!(is_filter("commune"));
        assert!(is_filter("or"));
        assert!(!is_filter("order"));
        assert!(!is_filter("lang"));
    }
}

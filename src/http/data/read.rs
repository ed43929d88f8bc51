//! The read handler: parse, authorise, run, format, page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tracing::Instrument;

use super::access::{authorize, deny};
use super::cache::{CachedPage, PageCache};
use super::exports::{ExportSlot, Source};
use super::range::{CountPreference, content_range, requested_range};
use crate::catalog::definition::AccessLevel;
use crate::catalog::{DatasetEntry, GeometryColumns};
use crate::domain::client_text::query_pairs;
use crate::format::{
    CsvEncoder, CsvOptions, GeoJsonEncoder, Geometry, JsonEncoder, NdjsonEncoder, OutputFormat,
    RowEncoder,
};
use crate::http::caching;
use crate::http::compression::Encoding;
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::http::streamed::EarlyEnd;
use crate::policy::Action;
use crate::query::parse_read_query;
use crate::store::StoreError;
use crate::store::copy::{CopyFormat, CopyStream};
use crate::store::copy_binary::encode_binary;
use crate::store::datasets::{DatasetRead, RowStream};
use crate::store::direct::DirectExport;
use crate::store::replica::ReadRoute;
use crate::store::sql::{CellKind, OutputColumn};

/// Query parameters of the read grammar, for the API description (the
/// handler parses the raw query string itself: keys repeat and order matters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReadParameters {
    /// Columns and aggregates: `a,b,alias:c,c.sum(),count()`.
    select: Option<String>,
    /// `col.asc,col2.desc.nullslast`.
    order: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// Logical combinations: `(a.eq.1,b.gt.2)`.
    or: Option<String>,
    and: Option<String>,
    /// `json`, `csv`, `ndjson` or `geojson` (overrides `Accept`).
    format: Option<String>,
    /// `semicolon` for spreadsheet users.
    csv_sep: Option<String>,
    /// `true` to start CSV with a byte-order mark.
    bom: Option<bool>,
    /// An earlier version's kept rows (needs the `history` permission).
    version: Option<u64>,
}

/// Rows of a dataset, filtered, ordered and paged with the PostgREST grammar
/// (`col=op.value`, `or=()`, `select`, `order`, `limit`, `offset`, `Range`,
/// `Prefer: count=exact`), as JSON, CSV, NDJSON or GeoJSON.
#[utoipa::path(
    get,
    path = "/api/v1/data/{id}",
    tag = "data",
    params(("id" = String, Path, description = "Dataset id"), ReadParameters),
    responses(
        (status = 200, description = "Rows (JSON array, CSV, NDJSON or GeoJSON)"),
        (status = 206, description = "A counted partial page"),
        (status = 400, description = "Malformed query, unknown column or `format`, missing X-Purpose"),
        (status = 401, description = "Credentials missing or invalid"),
        (status = 403, description = "Not allowed"),
        (status = 404, description = "No such dataset"),
        (status = 406, description = "Format not available"),
        (status = 416, description = "Offset past the end of a counted answer, or a `Range` that ends before it starts"),
        (status = 429, description = "Too many exports open for this caller (see Retry-After)"),
        (status = 503, description = "Every export connection busy, or the audit log unavailable (see Retry-After)"),
    )
)]
pub async fn read_dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> AppResult<Response> {
    // Decoded strictly once. A failure is reported after the access checks,
    // so it reveals nothing they would not; until then no parameter is read.
    let decoded = query_pairs(raw_query.as_deref());
    let pairs: &[(String, String)] = decoded.as_deref().unwrap_or_default();
    let catalog = state.catalog.current();
    let Some(entry) = catalog.get(&id) else {
        let retired = crate::http::publishing::retired_dataset(&state, &context, &id).await;
        context.note(|record| {
            record.dataset = Some(id.clone());
            record.action = Some(crate::audit::Action::Read);
            record.decision = Some(false);
            record.rule = Some(
                if retired.is_some() {
                    "retired dataset"
                } else {
                    "unknown dataset"
                }
                .to_owned(),
            );
        });
        return Err(retired.unwrap_or_else(|| Problem::dataset_not_found(&id)));
    };
    let parameter = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = OutputFormat::negotiate(parameter("format"), accept);
    let action = match format {
        Some(format) if format.is_export() => Action::Export,
        _ => Action::Read,
    };
    let grant = authorize(&state.policy, &context, entry, action, &headers)?;
    if let Err(error) = &decoded {
        return Err(error.clone().into());
    }
    // `?version=n` (digits: a filter is always `op.value`) reads an earlier
    // version's kept rows, for callers who also hold `history`.
    let version = pairs
        .iter()
        .find(|(key, value)| {
            key == "version" && !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit())
        })
        .map(|(_, value)| value.clone());
    let without_version: Vec<(String, String)>;
    let (pairs, versioned) = match version {
        None => (pairs, None),
        Some(number) => {
            without_version = pairs
                .iter()
                .filter(|(key, value)| !(key == "version" && value == &number))
                .cloned()
                .collect();
            let earlier = earlier_version(&state, &context, entry, &number).await?;
            (without_version.as_slice(), Some(earlier))
        }
    };
    let entry: &DatasetEntry = versioned.as_ref().unwrap_or(&**entry);
    // An unknown `?format=` is a mistake in the query (400 naming it); 406
    // stays for an `Accept` header that nothing matches.
    if let Some(name) = parameter("format")
        && OutputFormat::from_name(name).is_none()
    {
        return Err(Problem::bad_request(
            "invalid-parameter",
            "Invalid parameter",
            format!(
                "format `{name}` is not one of {}",
                OutputFormat::NAMES.join(", ")
            ),
        )
        .with_code("PGRST100"));
    }
    let format = format.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            "this dataset is served as application/json, text/csv, application/x-ndjson or application/geo+json",
        )
        .with_code("PGRST107")
    })?;
    let mut plan = parse_read_query(pairs, &entry.schema, &grant.visible, &state.settings.query)?;
    grant
        .admit_plan(entry, &plan)
        .map_err(|refusal| deny(&context, refusal))?;
    match requested_range(&headers) {
        Ok(Some((offset, limit))) => {
            plan.offset = offset;
            plan.limit = match (plan.limit, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(None) => {}
        // `limit=0` asks for no rows whatever the range, as in PostgREST.
        Err(_) if plan.limit == Some(0) => {}
        Err(reversed) => return Err(reversed.into()),
    }
    let csv_options = csv_options(parameter("csv_sep"), parameter("bom"))?;
    let read = Arc::new(DatasetRead {
        table: entry.table_name.clone(),
        schema: entry.schema.clone(),
        plan,
        visible: grant.visible.clone(),
        row_filter: grant.row_filter.clone(),
        min_group_size: grant.aggregate_only,
        lease: Some(state.catalog.lease(&entry.table_name)),
    });
    let columns = read.output_columns();
    let geometry = geometry_in_output(entry, &columns);
    if format == OutputFormat::GeoJson && entry.geometry.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            format!(
                "dataset `{}` has no geometry: ask for JSON or CSV",
                entry.id()
            ),
        ));
    }
    let count_preference = CountPreference::from_headers(&headers);
    let counter = context.row_counter();
    // Cacheable by anyone only when nothing about the caller shaped it.
    let public = entry.definition.access == AccessLevel::Open && context.caller.is_anonymous();
    let max_age = state.settings.server.caching.max_age_seconds;
    let modified = caching::last_modified(&entry.last_updated);
    if format.is_export() {
        let etag = export_etag(&read, format, csv_options);
        let freshness = caching::headers(public, max_age, &etag, modified);
        if caching::not_modified(&headers, &etag, modified) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().extend(freshness);
            return Ok(response);
        }
        let slot = state.exports.admit(&context).await?;
        let store = state.reads.for_exports(entry.written_at).await;
        let limit = read.plan.limit;
        let (rows, suppressed) = match read.min_group_size {
            Some(minimum) => {
                let groups = store
                    .read_groups(read.clone(), minimum, limit)
                    .await
                    .map_err(store_failure(&state))?;
                let rows: RowStream =
                    futures::stream::iter(groups.rows.into_iter().map(Ok)).boxed();
                (rows, Some(groups.left_out))
            }
            None => (store.stream_rows(read.clone(), limit), None),
        };
        // On PostgreSQL a plain CSV export is written by the store itself,
        // NDJSON and GeoJSON are copied out in binary and encoded here; on
        // SQLite plain exports are stepped and encoded next to it.
        let copy_format = match format {
            OutputFormat::Csv => Some(CopyFormat::Csv {
                separator: csv_options.separator,
            }),
            OutputFormat::Ndjson | OutputFormat::GeoJson => Some(CopyFormat::Binary),
            OutputFormat::Json => None,
        };
        let copied = match (copy_format, read.min_group_size) {
            (Some(CopyFormat::Binary), None) => store
                .copy_export(read.clone(), limit, &CopyFormat::Binary)
                .map(Produced::Binary),
            (Some(copy_format), None) => store
                .copy_export(read.clone(), limit, &copy_format)
                .map(Produced::Copied),
            _ => None,
        }
        .or_else(|| {
            store
                .direct_export(read.clone(), limit)
                .map(Produced::Direct)
        });
        let mut response = export(
            &state,
            slot,
            &context,
            entry,
            &read,
            (rows, copied),
            columns,
            geometry,
            format,
            csv_options,
            counter,
        );
        response
            .headers_mut()
            .extend(answer_headers(None, suppressed, grant.view.as_deref()));
        response.headers_mut().extend(freshness);
        return Ok(response);
    }
    let cap = state.settings.server.max_page_size;
    let key = PageCache::key(&read, count_preference.map(CountPreference::as_str), cap);
    let freshness = |page: &CachedPage| {
        let etag = page
            .headers
            .get(header::ETAG)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        caching::headers(public, max_age, etag, modified)
    };
    let cached = state.pages.get(key);
    crate::telemetry::metrics::page_cache_lookup(cached.is_some());
    if let Some(page) = cached {
        counter.store(page.rows, Ordering::Relaxed);
        return Ok(page_response(
            &state,
            &page,
            &headers,
            freshness(&page),
            modified,
        ));
    }
    let store = state.reads.for_pages(entry.written_at).await;
    let (mut page, suppressed) =
        json_page(&state, &store, entry, read, columns, count_preference).await?;
    page.headers.extend(answer_headers(
        count_preference,
        suppressed,
        grant.view.as_deref(),
    ));
    counter.store(page.rows, Ordering::Relaxed);
    let response = page_response(&state, &page, &headers, freshness(&page), modified);
    state.pages.insert(key, page);
    Ok(response)
}

/// Headers that describe the answer: the count preference applied, groups
/// suppressed, the view applied.
fn answer_headers(
    count: Option<CountPreference>,
    suppressed: Option<u64>,
    view: Option<&str>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(preference) = count {
        headers.insert(
            "preference-applied",
            HeaderValue::from_static(preference.as_str()),
        );
    }
    if let Some(suppressed) = suppressed {
        headers.insert("x-suppressed-groups", HeaderValue::from(suppressed));
    }
    if let Some(value) = view.and_then(|view| HeaderValue::from_str(view).ok()) {
        headers.insert("x-view", value);
    }
    headers
}

/// The counted total, as the preference asks: exact, or the planner's
/// estimate (PostgreSQL), or the catalogue's record count when unfiltered.
async fn count(
    state: &AppState,
    store: &ReadRoute,
    read: &DatasetRead,
    preference: CountPreference,
    entry: &DatasetEntry,
) -> AppResult<u64> {
    let unfiltered =
        read.row_filter.is_none() && read.plan.filter.is_none() && !read.plan.is_aggregate();
    if preference == CountPreference::Exact {
        return store.count_rows(read).await.map_err(store_failure(state));
    }
    if unfiltered {
        return Ok(u64::try_from(entry.record_count).unwrap_or(0));
    }
    let estimate = store
        .estimate_rows(read)
        .await
        .map_err(store_failure(state))?;
    match (preference, estimate) {
        // "estimated": exact while small, the planner's figure beyond.
        (CountPreference::Estimated, Some(rows)) if rows <= state.settings.server.max_page_size => {
            store.count_rows(read).await.map_err(store_failure(state))
        }
        (_, Some(rows)) => Ok(rows),
        (_, None) => store.count_rows(read).await.map_err(store_failure(state)),
    }
}

/// A store failure as the client sees it. A missing table means this
/// catalogue is older than the cleanup of a replaced version (not expected:
/// the grace outlasts several refreshes): the catalogue is re-read at once
/// and the client asked to retry, never a 500.
fn store_failure(state: &AppState) -> impl Fn(StoreError) -> Problem + '_ {
    move |error| {
        if !error.is_missing_table() {
            // By type: a store that cannot serve now is a 503, else a 500.
            return Problem::from(error);
        }
        tracing::warn!(%error, "read of a dropped table: catalogue refreshed");
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = state.refresh_catalog().await {
                tracing::warn!(%error, "catalogue refresh failed");
            }
        });
        let mut problem =
            Problem::unavailable("this dataset was just replaced by a new version: retry");
        problem
            .headers
            .retain(|(name, _)| name != header::RETRY_AFTER);
        problem.with_header(header::RETRY_AFTER, "1")
    }
}

fn csv_options(separator: Option<&str>, bom: Option<&str>) -> AppResult<CsvOptions> {
    let separator = match separator {
        None | Some("comma") | Some(",") => b',',
        Some("semicolon") | Some(";") => b';',
        Some("tab") => b'\t',
        Some(other) => {
            return Err(Problem::bad_request(
                "invalid-parameter",
                "Invalid parameter",
                format!("csv_sep `{other}` is not one of comma, semicolon, tab"),
            ));
        }
    };
    let bom = match bom {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::bad_request(
                "invalid-parameter",
                "Invalid parameter",
                format!("bom `{other}` is not true or false"),
            ));
        }
    };
    Ok(CsvOptions { separator, bom })
}

/// Positions of the geometry among the output columns, when they are all selected.
fn geometry_in_output(entry: &DatasetEntry, columns: &[OutputColumn]) -> Option<Geometry> {
    let position = |schema_index: usize| {
        columns
            .iter()
            .position(|column| column.source == Some(schema_index))
    };
    match entry.geometry? {
        GeometryColumns::LatLon { lat, lon } => Some(Geometry::LatLon {
            lat: position(lat)?,
            lon: position(lon)?,
        }),
        GeometryColumns::Point(index) => Some(Geometry::Point(position(index)?)),
        GeometryColumns::GeoJson(index) => Some(Geometry::GeoJson(position(index)?)),
    }
}

fn raw_json_columns(entry_schema: &crate::domain::Schema, columns: &[OutputColumn]) -> Vec<bool> {
    columns
        .iter()
        .map(|column| {
            column.kind == CellKind::Text
                && column.source.is_some_and(|index| {
                    entry_schema.fields[index].field_type == crate::domain::FieldType::Geojson
                })
        })
        .collect()
}

/// A JSON page, capped at `max_page_size`, with its `Content-Range` and a
/// weak `ETag` (a hash of the body), and for an aggregate-only read the
/// number of groups left out (counted in the same pass that reads them, which
/// also gives the exact count of an aggregate-only answer).
async fn json_page(
    state: &AppState,
    store: &ReadRoute,
    entry: &DatasetEntry,
    read: Arc<DatasetRead>,
    columns: Vec<OutputColumn>,
    count_preference: Option<CountPreference>,
) -> AppResult<(CachedPage, Option<u64>)> {
    let request_id = crate::http::context::current_request()
        .map(|request| request.request_id)
        .unwrap_or_default();
    let sql = tracing::debug_span!("sql", request_id = %request_id, table = %read.table);
    let cap = state.settings.server.max_page_size;
    let limit = read.plan.limit.map_or(cap, |limit| limit.min(cap));
    let keys: Vec<String> = columns.iter().map(|column| column.key.clone()).collect();
    let raw = raw_json_columns(&read.schema, &columns);
    let mut encoder = JsonEncoder::new(&keys, &raw);
    let mut body = Vec::with_capacity(16 * 1024);
    encoder.begin(&mut body);
    let mut returned = 0;
    let (total, suppressed) = match read.min_group_size {
        Some(minimum) => {
            let groups = store
                .read_groups(read.clone(), minimum, Some(limit))
                .instrument(sql.clone())
                .await
                .map_err(store_failure(state))?;
            for row in &groups.rows {
                encoder.row(&mut body, row);
                returned += 1;
            }
            (count_preference.map(|_| groups.kept), Some(groups.left_out))
        }
        None => {
            let total = match count_preference {
                Some(preference) => Some(count(state, store, &read, preference, entry).await?),
                None => None,
            };
            let mut rows = store.stream_rows(read.clone(), Some(limit));
            while let Some(row) = rows.next().instrument(sql.clone()).await {
                let row = row.map_err(store_failure(state))?;
                encoder.row(&mut body, &row);
                returned += 1;
            }
            (total, None)
        }
    };
    let encode =
        tracing::debug_span!("encode", request_id = %request_id, format = "json").entered();
    encoder.end(&mut body);
    let offset = read.plan.offset;
    let (status, range) = content_range(offset, returned, total);
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(Problem::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            "Range not satisfiable",
            format!(
                "offset {offset} is past the end of the {} matching rows",
                total.unwrap_or(0)
            ),
        )
        .with_code("PGRST103")
        .with_header(header::CONTENT_RANGE, &range));
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OutputFormat::Json.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&range) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    // Weak: the same page goes out in several content codings (see `caching`).
    let etag = caching::weak_etag(&sha2_256(&body));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let page = CachedPage::new(status, body, headers, returned);
    drop(encode);
    Ok((page, suppressed))
}

/// The response for a page: 304 when the client's copy is current
/// (`If-None-Match`, else `If-Modified-Since`), with the page's validators
/// and caching headers either way.
fn page_response(
    state: &AppState,
    page: &CachedPage,
    request: &HeaderMap,
    freshness: HeaderMap,
    modified: Option<chrono::DateTime<chrono::Utc>>,
) -> Response {
    let etag = page
        .headers
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let not_modified = caching::not_modified(request, etag, modified);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // Compressed here, once per page and encoding, not per request by
        // the compression layer (which leaves an encoded answer alone).
        let settings = &state.settings.server.compression;
        let encoding = if settings.enabled && page.body.len() as u64 >= settings.min_bytes {
            Encoding::negotiate(request)
        } else {
            Encoding::Identity
        };
        match page.encoded(encoding, settings.level) {
            Some(body) if encoding != Encoding::Identity => {
                let mut response = (page.status, body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(encoding.as_str()),
                );
                response
            }
            _ => (page.status, page.body.clone()).into_response(),
        }
    };
    for (name, value) in &page.headers {
        if not_modified && name == header::CONTENT_TYPE {
            continue;
        }
        response.headers_mut().insert(name, value.clone());
    }
    response.headers_mut().extend(freshness);
    response
}

/// The ETag of an export, from what makes its content: the dataset's
/// version (its table), the query, the view, the format and its options.
/// Known before any row is read, so a 304 costs no query.
fn export_etag(read: &DatasetRead, format: OutputFormat, options: CsvOptions) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(PageCache::key(read, None, 0).as_bytes());
    digest.update(format.extension().as_bytes());
    digest.update([options.separator, u8::from(options.bom)]);
    caching::weak_etag(&digest.finalize())
}

fn sha2_256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// An export the store produces itself, rather than rows the gateway encodes.
enum Produced {
    /// CSV records written by PostgreSQL (`COPY`).
    Copied(CopyStream),
    /// Values copied out of PostgreSQL in binary, for the export's encoder.
    Binary(CopyStream),
    /// Rows stepped and encoded next to SQLite.
    Direct(DirectExport),
}

/// A streamed export: rows are encoded as they arrive, flushed in chunks, so
/// memory stays flat whatever the size. Not capped. Read through the export
/// pool by a task of its own (see [`super::exports`]).
#[allow(clippy::too_many_arguments)]
fn export(
    state: &AppState,
    slot: ExportSlot,
    context: &RequestContext,
    entry: &DatasetEntry,
    read: &DatasetRead,
    (rows, copied): (RowStream, Option<Produced>),
    columns: Vec<OutputColumn>,
    geometry: Option<Geometry>,
    format: OutputFormat,
    csv_options: CsvOptions,
    counter: Arc<AtomicU64>,
) -> Response {
    let keys: Vec<String> = columns.iter().map(|column| column.key.clone()).collect();
    let raw = raw_json_columns(&read.schema, &columns);
    let encoder = || -> Box<dyn RowEncoder> {
        match format {
            OutputFormat::Csv => Box::new(CsvEncoder::new(&keys, csv_options)),
            OutputFormat::Ndjson => Box::new(NdjsonEncoder::new(&keys, &raw)),
            OutputFormat::GeoJson => Box::new(GeoJsonEncoder::new(&keys, geometry)),
            OutputFormat::Json => Box::new(JsonEncoder::new(&keys, &raw)),
        }
    };
    let source = match copied {
        Some(Produced::Copied(chunks)) => {
            let mut head = Vec::new();
            encoder().begin(&mut head);
            Source::Copied { head, chunks }
        }
        Some(Produced::Binary(copied)) => Source::Encoded {
            chunks: encode_binary(copied, read.cell_kinds(), encoder()),
        },
        Some(Produced::Direct(direct)) => Source::Encoded {
            chunks: direct.stream(encoder()),
        },
        None => Source::Rows {
            rows,
            encoder: encoder(),
        },
    };
    let early_end = Arc::new(EarlyEnd::default());
    context.note(|record| {
        record.streamed = true;
        record.early_end = Some(early_end.clone());
    });
    let body = state.exports.body(
        slot,
        source,
        counter,
        (&state.lifecycle, early_end),
        context.request_id.clone(),
    );
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        entry.id(),
        format.extension()
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The catalogue entry of `entry` as it was at version `number`: its kept
/// table and row count. Needs `history` (noted in the audit event); 404 when
/// that version's rows are no longer kept.
async fn earlier_version(
    state: &AppState,
    context: &RequestContext,
    entry: &DatasetEntry,
    number: &str,
) -> AppResult<DatasetEntry> {
    let decision = state.policy.decide(
        &context.caller.roles,
        &crate::policy::dataset_ref(entry),
        Action::History,
    );
    context.note(|record| {
        record.action = Some(crate::audit::Action::History);
        record.decision = Some(decision.allowed);
        record.rule = Some(decision.rule.clone());
    });
    if !decision.allowed {
        return Err(Problem::forbidden(format!(
            "reading earlier versions of dataset `{}` needs the `history` permission",
            entry.id()
        )));
    }
    let not_kept = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "version-not-kept",
            "Version not kept",
            format!("dataset `{}` has no kept version {number}", entry.id()),
        )
    };
    let number: i64 = number.parse().map_err(|_| not_kept())?;
    let versions = state.store.dataset_versions(entry.id()).await?;
    let kept = versions
        .into_iter()
        .find(|row| row.number == Some(number) && row.table_name.is_some())
        .ok_or_else(not_kept)?;
    Ok(DatasetEntry {
        table_name: kept.table_name.unwrap_or_default(),
        version: number,
        record_count: kept.rows,
        last_updated: kept.created_at,
        ..entry.clone()
    })
}

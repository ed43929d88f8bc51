//! Reading the log back: filtered, paginated listings (newest first), the
//! stream behind CSV exports, and counts for the auditors' dashboard.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;

use super::columns::{COLUMNS, column_list};
use super::event::{Action, Decision, StoredEvent};
use super::store::{EventRow, with_pool};
use crate::store::Store;

/// Largest page of a listing.
pub const MAX_LIMIT: u32 = 1000;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;

/// A query parameter of the audit endpoints that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter `{parameter}`: {message}")]
pub struct AuditQueryError {
    pub parameter: String,
    pub message: String,
}

/// Filters of a listing. Pages run from the newest event to the oldest:
/// `cursor` is the `seq` below which the page starts (the previous page's
/// `next_cursor`). Every filter is an exact match; `from` is inclusive and
/// `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub subject: Option<String>,
    pub org: Option<String>,
    pub dataset: Option<String>,
    pub decision: Option<Decision>,
    /// The event's action (`classify`: every change of access level, views…).
    pub action: Option<super::event::Action>,
    pub status: Option<u16>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<i64>,
    /// 1 to 1000 (default 100; 0 means the default).
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            subject: None,
            org: None,
            dataset: None,
            decision: None,
            action: None,
            status: None,
            from: None,
            to: None,
            cursor: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl EventQuery {
    /// Parses `subject, org, dataset, decision, action, status, from, to,
    /// cursor, limit` (times in RFC 3339 or `YYYY-MM-DD`); other parameters, such as
    /// `format`, are left to the caller.
    pub fn from_params(params: &[(String, String)]) -> Result<EventQuery, AuditQueryError> {
        let mut query = EventQuery::default();
        for (name, value) in params {
            let text = || Some(value.clone());
            match name.as_str() {
                "subject" => query.subject = text(),
                "org" => query.org = text(),
                "dataset" => query.dataset = text(),
                "decision" => {
                    let decision = Decision::parse(value)
                        .ok_or_else(|| invalid(name, "expected `allow` or `deny`"))?;
                    query.decision = Some(decision);
                }
                "action" => {
                    let action = super::event::Action::parse(value).ok_or_else(|| {
                        let known: Vec<&str> = super::event::Action::ALL
                            .iter()
                            .map(|action| action.as_str())
                            .collect();
                        invalid(name, &format!("expected one of {}", known.join(", ")))
                    })?;
                    query.action = Some(action);
                }
                "status" => {
                    let status = value
                        .parse::<u16>()
                        .ok()
                        .filter(|status| (100..=599).contains(status))
                        .ok_or_else(|| {
                            invalid(name, "expected an HTTP status between 100 and 599")
                        })?;
                    query.status = Some(status);
                }
                "from" => query.from = Some(parse_time(name, value)?),
                "to" => query.to = Some(parse_time(name, value)?),
                "cursor" => {
                    let cursor = value
                        .parse::<i64>()
                        .ok()
                        .filter(|cursor| *cursor > 0)
                        .ok_or_else(|| {
                            invalid(name, "expected the `next_cursor` of a previous page")
                        })?;
                    query.cursor = Some(cursor);
                }
                "limit" => {
                    query.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            invalid(name, &format!("expected an integer from 1 to {MAX_LIMIT}"))
                        })?;
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

/// The period of a statistics request (`from` inclusive, `to` exclusive).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `personal_data=true`: count only the reads served (allowed `read`,
    /// `export` and `aggregate`) of the datasets in `datasets`.
    pub personal_data: bool,
    /// The datasets holding personal data (filled from the catalogue by the
    /// caller when `personal_data` is set).
    pub datasets: Vec<String>,
}

impl StatsQuery {
    /// Parses `from` and `to`; other parameters are ignored.
    pub fn from_params(params: &[(String, String)]) -> Result<StatsQuery, AuditQueryError> {
        let mut query = StatsQuery::default();
        for (name, value) in params {
            match name.as_str() {
                "from" => query.from = Some(parse_time(name, value)?),
                "to" => query.to = Some(parse_time(name, value)?),
                "personal_data" => {
                    query.personal_data = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid(name, "expected `true` or `false`")),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

fn invalid(parameter: &str, message: &str) -> AuditQueryError {
    AuditQueryError {
        parameter: parameter.to_owned(),
        message: message.to_owned(),
    }
}

fn parse_time(parameter: &str, value: &str) -> Result<DateTime<Utc>, AuditQueryError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| invalid(parameter, "expected an RFC 3339 time or a YYYY-MM-DD date"))
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A count under a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Count {
    /// Null for events without this attribute (no dataset, anonymous caller).
    pub key: Option<String>,
    pub count: i64,
}

/// Requests per subject and organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubjectCount {
    pub subject: Option<String>,
    pub org: Option<String>,
    pub count: i64,
}

/// Request counts over a period (completion events are not counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub from: Option<String>,
    pub to: Option<String>,
    pub total: i64,
    pub by_dataset: Vec<Count>,
    pub by_subject: Vec<SubjectCount>,
    pub by_decision: Vec<Count>,
    /// Keys are UTC days, `YYYY-MM-DD`.
    pub by_day: Vec<Count>,
    /// The callers' organisations.
    pub by_org: Vec<Count>,
    /// The purposes declared (`X-Purpose`).
    pub by_purpose: Vec<Count>,
}

/// With `personal_data`: only the reads served of the listed datasets.
macro_rules! push_personal {
    ($builder:expr, $query:expr) => {{
        let query: &StatsQuery = $query;
        if query.personal_data {
            if query.datasets.is_empty() {
                $builder.push(" AND 1 = 0");
            } else {
                $builder.push(" AND dataset IN (");
                let mut separated = $builder.separated(", ");
                for dataset in &query.datasets {
                    separated.push_bind(dataset.clone());
                }
                $builder.push(")");
                $builder
                    .push(" AND decision = 'allow' AND action IN ('read', 'export', 'aggregate')");
            }
        }
    }};
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Adds the query's filters (and the cursor) as `WHERE` conditions.
macro_rules! push_filters {
    ($builder:expr, $query:expr) => {{
        let query = $query;
        $builder.push(" WHERE 1 = 1");
        if let Some(subject) = &query.subject {
            $builder.push(" AND subject = ").push_bind(subject.clone());
        }
        if let Some(org) = &query.org {
            $builder.push(" AND org = ").push_bind(org.clone());
        }
        if let Some(dataset) = &query.dataset {
            $builder.push(" AND dataset = ").push_bind(dataset.clone());
        }
        if let Some(decision) = query.decision {
            $builder
                .push(" AND decision = ")
                .push_bind(decision.as_str());
        }
        if let Some(action) = query.action {
            $builder.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(status) = query.status {
            $builder.push(" AND status = ").push_bind(i64::from(status));
        }
        if let Some(from) = query.from {
            $builder
                .push(" AND time_us >= ")
                .push_bind(from.timestamp_micros());
        }
        if let Some(to) = query.to {
            $builder
                .push(" AND time_us < ")
                .push_bind(to.timestamp_micros());
        }
        if let Some(cursor) = query.cursor {
            $builder.push(" AND seq < ").push_bind(cursor);
        }
    }};
}

/// One page, newest first, of at most `limit` (capped at 1000) events.
pub async fn list(store: &Store, query: &EventQuery) -> Result<EventPage, sqlx::Error> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        limit => limit.min(MAX_LIMIT),
    };
    let mut rows: Vec<EventRow> = with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new(format!("SELECT {} FROM audit_events", column_list()));
        push_filters!(builder, query);
        builder.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit) + 1);
        builder.build_query_as::<EventRow>().fetch_all(pool).await?
    });
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|row| row.stored.seq.to_string())
    } else {
        None
    };
    Ok(EventPage {
        events: rows
            .into_iter()
            .map(EventRow::into_stored)
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// Counts of requests in the period.
pub async fn stats(store: &Store, query: &StatsQuery) -> Result<Stats, sqlx::Error> {
    let filter = EventQuery {
        from: query.from,
        to: query.to,
        ..EventQuery::default()
    };
    let grouped = |column: &'static str| {
        let filter = filter.clone();
        async move {
            with_pool!(store, pool => {
                let mut builder = QueryBuilder::<Db>::new(format!("SELECT {column}, COUNT(*) FROM audit_events"));
                push_filters!(builder, &filter);
                push_personal!(builder, query);
                builder.push(format!(" AND kind = 'access' GROUP BY {column} ORDER BY COUNT(*) DESC, {column}"));
                builder.build_query_as::<(Option<String>, i64)>().fetch_all(pool).await
            })
        }
    };
    let to_counts = |rows: Vec<(Option<String>, i64)>| -> Vec<Count> {
        rows.into_iter()
            .map(|(key, count)| Count { key, count })
            .collect()
    };
    let by_dataset = to_counts(grouped("dataset").await?);
    let by_decision = to_counts(grouped("decision").await?);
    let by_org = to_counts(grouped("org").await?);
    let by_purpose = to_counts(grouped("purpose").await?);
    let by_subject: Vec<(Option<String>, Option<String>, i64)> = with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new("SELECT subject, org, COUNT(*) FROM audit_events");
        push_filters!(builder, &filter);
        push_personal!(builder, query);
        builder.push(" AND kind = 'access' GROUP BY subject, org ORDER BY COUNT(*) DESC, subject, org");
        builder.build_query_as().fetch_all(pool).await?
    });
    let by_day: Vec<(i64, i64)> = with_pool!(store, pool => {
        // Integer division on both engines; events are after 1970, so it floors.
        let mut builder = QueryBuilder::<Db>::new(format!(
            "SELECT time_us / {MICROS_PER_DAY} AS day, COUNT(*) FROM audit_events"
        ));
        push_filters!(builder, &filter);
        push_personal!(builder, query);
        builder.push(format!(" AND kind = 'access' GROUP BY time_us / {MICROS_PER_DAY} ORDER BY day"));
        builder.build_query_as().fetch_all(pool).await?
    });
    let total = by_decision.iter().map(|count| count.count).sum();
    Ok(Stats {
        from: query.from.map(|time| time.to_rfc3339()),
        to: query.to.map(|time| time.to_rfc3339()),
        total,
        by_dataset,
        by_subject: by_subject
            .into_iter()
            .map(|(subject, org, count)| SubjectCount {
                subject,
                org,
                count,
            })
            .collect(),
        by_decision,
        by_day: by_day
            .into_iter()
            .map(|(day, count)| Count {
                key: DateTime::from_timestamp_micros(day * MICROS_PER_DAY)
                    .map(|time| time.format("%Y-%m-%d").to_string()),
                count,
            })
            .collect(),
        by_org,
        by_purpose,
    })
}

/// Requests of one UTC day, allowed and refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub allow: i64,
    pub deny: i64,
}

/// Allowed reads of a dataset holding personal data, for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonalReads {
    pub dataset: String,
    /// Null when the caller gave none.
    pub purpose: Option<String>,
    pub requests: i64,
    pub rows: i64,
}

/// Finished exports of a dataset: how many, rows and bytes sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportTotals {
    pub dataset: Option<String>,
    pub exports: i64,
    pub rows: i64,
    pub bytes: i64,
}

/// The auditors' dashboard over a period: access events only (completions
/// count for the exports' rows and bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dashboard {
    pub by_day: Vec<DayCount>,
    /// Refusals by rule (the reason), most frequent first.
    pub refusals: Vec<Count>,
    pub top_datasets: Vec<Count>,
    pub top_orgs: Vec<Count>,
    pub top_subjects: Vec<Count>,
    pub personal_reads: Vec<PersonalReads>,
    pub exports: Vec<ExportTotals>,
}

/// Entries of each top list.
pub const TOP: i64 = 10;

/// The dashboard's counts over `query`'s period; `personal` names the
/// datasets holding personal data (from the catalogue). Every value is bound.
pub async fn dashboard(
    store: &Store,
    query: &StatsQuery,
    personal: &[String],
) -> Result<Dashboard, sqlx::Error> {
    let filter = EventQuery {
        from: query.from,
        to: query.to,
        ..EventQuery::default()
    };
    let days: Vec<(i64, String, i64)> = with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new(format!(
            "SELECT time_us / {MICROS_PER_DAY} AS day, decision, COUNT(*) FROM audit_events"
        ));
        push_filters!(builder, &filter);
        builder.push(format!(
            " AND kind = 'access' GROUP BY time_us / {MICROS_PER_DAY}, decision ORDER BY day, decision"
        ));
        builder.build_query_as().fetch_all(pool).await?
    });
    let mut by_day: Vec<DayCount> = Vec::new();
    for (day, decision, count) in days {
        let day = DateTime::from_timestamp_micros(day * MICROS_PER_DAY)
            .map(|time| time.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        if by_day.last().is_none_or(|last| last.day != day) {
            by_day.push(DayCount {
                day,
                allow: 0,
                deny: 0,
            });
        }
        if let Some(last) = by_day.last_mut() {
            if decision == Decision::Allow.as_str() {
                last.allow += count;
            } else {
                last.deny += count;
            }
        }
    }
    let top = |column: &'static str, refusals: bool| {
        let filter = filter.clone();
        async move {
            let rows: Vec<(Option<String>, i64)> = with_pool!(store, pool => {
                let mut builder = QueryBuilder::<Db>::new(format!("SELECT {column}, COUNT(*) FROM audit_events"));
                push_filters!(builder, &filter);
                builder.push(" AND kind = 'access'");
                if refusals {
                    builder.push(" AND decision = ").push_bind(Decision::Deny.as_str());
                }
                builder.push(format!(" GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT "));
                builder.push_bind(TOP);
                builder.build_query_as().fetch_all(pool).await?
            });
            Ok::<_, sqlx::Error>(
                rows.into_iter()
                    .map(|(key, count)| Count { key, count })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let refusals = top("rule", true).await?;
    let top_datasets = top("dataset", false).await?;
    let top_orgs = top("org", false).await?;
    let top_subjects = top("subject", false).await?;
    let personal_reads = if personal.is_empty() {
        Vec::new()
    } else {
        let rows: Vec<(String, Option<String>, i64, i64)> = with_pool!(store, pool => {
            let mut builder = QueryBuilder::<Db>::new(
                "SELECT dataset, purpose, COUNT(*), CAST(COALESCE(SUM(rows_sent), 0) AS BIGINT) FROM audit_events",
            );
            push_filters!(builder, &filter);
            builder.push(" AND kind = 'access' AND decision = ").push_bind(Decision::Allow.as_str());
            builder.push(" AND action IN (");
            let mut actions = builder.separated(", ");
            for action in [Action::Read, Action::Export, Action::Aggregate] {
                actions.push_bind(action.as_str());
            }
            builder.push(") AND dataset IN (");
            let mut datasets = builder.separated(", ");
            for dataset in personal {
                datasets.push_bind(dataset.clone());
            }
            builder.push(") GROUP BY dataset, purpose ORDER BY COUNT(*) DESC, dataset, purpose");
            builder.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(dataset, purpose, requests, rows)| PersonalReads {
                dataset,
                purpose,
                requests,
                rows,
            })
            .collect()
    };
    let exports: Vec<(Option<String>, i64, i64, i64)> = with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new(
            "SELECT dataset, \
             CAST(SUM(CASE WHEN kind = 'access' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN kind = 'completion' THEN rows_sent ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN kind = 'completion' THEN bytes_sent ELSE 0 END), 0) AS BIGINT) \
             FROM audit_events",
        );
        push_filters!(builder, &filter);
        builder.push(" AND action = ").push_bind(Action::Export.as_str());
        builder.push(" AND decision = ").push_bind(Decision::Allow.as_str());
        builder.push(" GROUP BY dataset ORDER BY 2 DESC, dataset");
        builder.build_query_as().fetch_all(pool).await?
    });
    Ok(Dashboard {
        by_day,
        refusals,
        top_datasets,
        top_orgs,
        top_subjects,
        personal_reads,
        exports: exports
            .into_iter()
            .map(|(dataset, exports, rows, bytes)| ExportTotals {
                dataset,
                exports,
                rows,
                bytes,
            })
            .collect(),
    })
}

/// The rule every chain verification from the dashboard records, before its result.
pub const VERIFIED_RULE: &str = "chain verified: ";

/// The newest verification recorded by the dashboard: its time and rule.
pub async fn last_verification(
    store: &Store,
) -> Result<Option<(DateTime<Utc>, String)>, sqlx::Error> {
    let row: Option<(i64, String)> = with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new("SELECT time_us, rule FROM audit_events WHERE kind = 'access' AND action = ");
        builder.push_bind(Action::AuditRead.as_str());
        builder.push(" AND rule LIKE ").push_bind(format!("{VERIFIED_RULE}%"));
        builder.push(" ORDER BY seq DESC LIMIT 1");
        builder.build_query_as().fetch_optional(pool).await?
    });
    Ok(row.and_then(|(time_us, rule)| {
        DateTime::<Utc>::from_timestamp_micros(time_us).map(|time| (time, rule))
    }))
}

/// The CSV header matching `event_csv_line`: one column a field.
pub fn events_csv_header() -> String {
    csv_line(COLUMNS.iter().map(|column| column.header))
}

/// One event as a CSV line (with its line break); roles joined by `;`,
/// empty cells for nulls.
pub fn event_csv_line(event: &StoredEvent) -> String {
    let cells: Vec<_> = COLUMNS
        .iter()
        .map(|column| (column.get)(event).csv())
        .collect();
    csv_line(cells.iter().map(|cell| cell.as_ref()))
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(cells);
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Every listing parameter is parsed; unknown ones are left alone.
    #[test]
    fn parses_listing_parameters() {
        let query = EventQuery::from_params(&params(&[
            ("subject", "alice"),
            ("org", "ademe"),
            ("dataset", "energy"),
            ("decision", "deny"),
            ("action", "classify"),
            ("status", "403"),
            ("from", "2026-11-01"),
            ("to", "2026-11-29T10:00:00+01:00"),
            ("cursor", "42"),
            ("limit", "1000"),
            ("format", "csv"),
        ]))
        .unwrap();
        assert_eq!(query.subject.as_deref(), Some("alice"));
        assert_eq!(query.decision, Some(Decision::Deny));
        assert_eq!(query.action, Some(super::super::event::Action::Classify));
        assert_eq!(query.status, Some(403));
        assert_eq!(
            query.from.unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(query.to.unwrap().to_rfc3339(), "2026-11-29T09:00:00+00:00");
        assert_eq!((query.cursor, query.limit), (Some(42), 1000));
        assert_eq!(EventQuery::from_params(&[]).unwrap().limit, DEFAULT_LIMIT);
    }

    /// Bad values name the offending parameter.
    #[test]
    fn rejects_bad_parameters() {
        for (name, value) in [
            ("decision", "maybe"),
            ("action", "write"),
            ("status", "99"),
            ("status", "abc"),
            ("from", "yesterday"),
            ("to", "2026-13-01"),
            ("cursor", "-1"),
            ("limit", "0"),
            ("limit", "1001"),
        ] {
            let error = EventQuery::from_params(&params(&[(name, value)])).unwrap_err();
            assert_eq!(error.parameter, name, "{name}={value}");
        }
        assert_eq!(
            StatsQuery::from_params(&params(&[("from", "x")]))
                .unwrap_err()
                .parameter,
            "from"
        );
    }

    /// CSV lines quote what needs quoting and match the header's width.
    #[test]
    fn writes_csv_lines() {
        let header = events_csv_header();
        assert!(
            header.starts_with("seq,kind,refers_to,time,") && header.ends_with("prev_hash,hash\n")
        );
        let mut event = super::super::event::tests::sample("r1").sealed("gw", None);
        event.org = None;
        event.roles = vec!["a".to_owned(), "b".to_owned()];
        event.user_agent = Some("agent, \"quoted\"".to_owned());
        let stored =
            super::super::event::tests::chained(&event, 1, super::super::event::GENESIS_HASH);
        let line = event_csv_line(&stored);
        let text = format!("{header}{line}");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let fields: Vec<String> = reader
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(fields.len(), 31);
        assert_eq!(fields[3], "2026-11-29T10:00:00.123456Z");
        assert_eq!(fields[7], "a;b");
        assert_eq!(fields[12], "agent, \"quoted\"");
        assert_eq!(fields[6], "");
    }
}

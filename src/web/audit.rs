//! `/audit`: the auditors' dashboard (`audit:read`, signed in). Over a
//! period (the last 30 days by default): requests per day, allowed and
//! refused, as bars drawn on the server with the same figures in a table;
//! refusals by reason; the top datasets, organisations and subjects; reads
//! of personal data by dataset and purpose; exports with rows and bytes;
//! the chain's status with a form that verifies it now; and the events with
//! the filters of `/api/v1/audit/events`, cursor paging and a CSV download
//! (`/audit/events.csv`, through the session like the page).
//!
//! Every request here is an `audit:read` event, decided by the policy as
//! for the API (`http::guard::require`).

use askama::Template;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::{Duration, NaiveDate, Utc};
use futures::StreamExt;
use serde::Deserialize;

use super::display;
use super::locale::{Lang, Texts};
use super::page::{Layout, Site, error_page, pairs_of, refuse_unless, respond};
use super::session::{self, SESSION_COOKIE};
use crate::audit::{
    AuditError, Count, Dashboard, DayCount, EventQuery, StatsQuery, StoredEvent, VERIFIED_RULE,
    event_csv_line, events_csv_header,
};
use crate::http::context::RequestContext;
use crate::http::state::AppState;
use crate::policy::Action;

/// Days shown when the period is not given.
const DEFAULT_DAYS: i64 = 30;
/// Events per page of the table.
const PAGE_EVENTS: u32 = 50;
/// The filters of the event table (those of `/api/v1/audit/events`).
const EVENT_FILTERS: [&str; 7] = [
    "subject", "org", "dataset", "decision", "status", "from", "to",
];

/// The dashboard's own texts.
pub struct AuditTexts {
    pub title: &'static str,
    pub period: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub show: &'static str,
    pub per_day: &'static str,
    pub per_day_chart: &'static str,
    pub day: &'static str,
    pub allowed: &'static str,
    pub refused: &'static str,
    pub refusals: &'static str,
    pub reason: &'static str,
    pub count: &'static str,
    pub top_datasets: &'static str,
    pub top_orgs: &'static str,
    pub top_subjects: &'static str,
    pub dataset: &'static str,
    pub org: &'static str,
    pub subject: &'static str,
    pub none: &'static str,
    pub personal: &'static str,
    pub purpose: &'static str,
    pub requests: &'static str,
    pub rows: &'static str,
    pub exports: &'static str,
    pub bytes: &'static str,
    pub chain: &'static str,
    pub head: &'static str,
    pub checkpoint: &'static str,
    pub last_verification: &'static str,
    pub never: &'static str,
    pub verify_now: &'static str,
    pub verified_ok: &'static str,
    pub verified_broken: &'static str,
    pub events: &'static str,
    pub filter: &'static str,
    pub decision: &'static str,
    pub any: &'static str,
    pub status: &'static str,
    pub time: &'static str,
    pub action: &'static str,
    pub rule: &'static str,
    pub next_page: &'static str,
    pub csv: &'static str,
    pub empty: &'static str,
    pub sign_in_needed: &'static str,
    pub not_allowed: &'static str,
}

pub static FRENCH: AuditTexts = AuditTexts {
    title: "Journal des accès",
    period: "Période",
    from: "Du (inclus)",
    to: "Au (exclu)",
    show: "Afficher",
    per_day: "Accès par jour",
    per_day_chart: "Accès autorisés et refusés par jour",
    day: "Jour",
    allowed: "Autorisés",
    refused: "Refusés",
    refusals: "Refus par motif",
    reason: "Motif",
    count: "Nombre",
    top_datasets: "Jeux de données les plus consultés",
    top_orgs: "Organisations les plus actives",
    top_subjects: "Personnes et clients les plus actifs",
    dataset: "Jeu de données",
    org: "Organisation",
    subject: "Identité",
    none: "(aucun)",
    personal: "Lectures de données personnelles",
    purpose: "Finalité",
    requests: "Requêtes",
    rows: "Lignes",
    exports: "Exports",
    bytes: "Octets",
    chain: "Intégrité du journal",
    head: "Dernier événement",
    checkpoint: "Dernier point de contrôle signé",
    last_verification: "Dernière vérification",
    never: "jamais",
    verify_now: "Vérifier maintenant",
    verified_ok: "Chaîne intacte",
    verified_broken: "Chaîne rompue à l'événement",
    events: "Événements",
    filter: "Filtrer",
    decision: "Décision",
    any: "toutes",
    status: "Statut HTTP",
    time: "Heure (UTC)",
    action: "Action",
    rule: "Règle ou motif",
    next_page: "Événements plus anciens",
    csv: "Télécharger ces événements (CSV)",
    empty: "Aucun événement.",
    sign_in_needed: "Connectez-vous avec un compte d'auditeur pour voir le journal des accès.",
    not_allowed: "Votre rôle ne permet pas de lire le journal des accès.",
};

pub static ENGLISH: AuditTexts = AuditTexts {
    title: "Access log",
    period: "Period",
    from: "From (inclusive)",
    to: "To (exclusive)",
    show: "Show",
    per_day: "Accesses per day",
    per_day_chart: "Allowed and refused accesses per day",
    day: "Day",
    allowed: "Allowed",
    refused: "Refused",
    refusals: "Refusals by reason",
    reason: "Reason",
    count: "Count",
    top_datasets: "Most read datasets",
    top_orgs: "Most active organisations",
    top_subjects: "Most active people and clients",
    dataset: "Dataset",
    org: "Organisation",
    subject: "Identity",
    none: "(none)",
    personal: "Reads of personal data",
    purpose: "Purpose",
    requests: "Requests",
    rows: "Rows",
    exports: "Exports",
    bytes: "Bytes",
    chain: "Log integrity",
    head: "Last event",
    checkpoint: "Last signed checkpoint",
    last_verification: "Last verification",
    never: "never",
    verify_now: "Verify now",
    verified_ok: "Chain intact",
    verified_broken: "Chain broken at event",
    events: "Events",
    filter: "Filter",
    decision: "Decision",
    any: "any",
    status: "HTTP status",
    time: "Time (UTC)",
    action: "Action",
    rule: "Rule or reason",
    next_page: "Older events",
    csv: "Download these events (CSV)",
    empty: "No event.",
    sign_in_needed: "Sign in with an auditor's account to see the access log.",
    not_allowed: "Your role does not allow reading the access log.",
};

fn texts_of(lang: Lang) -> &'static AuditTexts {
    match lang {
        Lang::Fr => &FRENCH,
        Lang::En => &ENGLISH,
    }
}

pub use super::chart::Bar;

/// Stacked bars (allowed below, refused above), scaled to the busiest day.
pub fn bars(days: &[crate::audit::DayCount], lang: Lang) -> Vec<Bar> {
    let texts = texts_of(lang);
    super::chart::bars(days.iter().map(|day| {
        let label = format!(
            "{}{}{} {}, {} {}",
            day.day,
            lang.texts().colon,
            display::integer(day.allow, lang),
            texts.allowed.to_lowercase(),
            display::integer(day.deny, lang),
            texts.refused.to_lowercase()
        );
        (day.allow, day.deny, label)
    }))
}

/// A row of a two-column table (label, figure).
pub struct Line {
    pub label: String,
    pub figure: String,
}

/// A counted list: refusals by reason, top datasets, organisations, subjects.
pub struct Panel {
    pub id: &'static str,
    pub heading: &'static str,
    pub label: &'static str,
    pub rows: Vec<Line>,
}

pub struct DayLine {
    pub day: String,
    pub allow: String,
    pub deny: String,
}

pub struct PersonalLine {
    pub dataset: String,
    pub purpose: String,
    pub requests: String,
    pub rows: String,
}

pub struct ExportLine {
    pub dataset: String,
    pub exports: String,
    pub rows: String,
    pub bytes: String,
}

pub struct EventLine {
    pub time: String,
    pub subject: String,
    pub org: String,
    pub action: String,
    pub dataset: String,
    pub decision: String,
    pub status: u16,
    pub rule: String,
}

pub struct Chain {
    pub head: String,
    pub checkpoint: String,
    pub last_verification: String,
}

#[derive(Template)]
#[template(path = "audit.html", config = "src/web/askama.toml")]
struct AuditPage {
    layout: Layout,
    t: &'static Texts,
    a: &'static AuditTexts,
    from: String,
    to: String,
    filters: Vec<(&'static str, String)>,
    decision: String,
    bars: Vec<Bar>,
    days: Vec<DayLine>,
    panels: Vec<Panel>,
    personal: Vec<PersonalLine>,
    exports: Vec<ExportLine>,
    chain: Chain,
    verification: Option<String>,
    csrf: String,
    events: Vec<EventLine>,
    next_page: Option<String>,
    csv: String,
}

impl AuditPage {
    /// The value of an event filter, for its field.
    fn filter(&self, name: &str) -> &str {
        self.filters
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    }
}

/// Refuses unless the caller may read the log; the refusal as a page.
fn authorize(
    state: &AppState,
    context: &RequestContext,
    site: Site,
    path: &str,
) -> Option<Response> {
    let texts = texts_of(site.lang);
    let messages = (texts.sign_in_needed, texts.not_allowed);
    refuse_unless(state, context, Action::AuditRead, site, path, messages)
}

fn bad_request(site: Site, message: &str) -> Response {
    error_page(
        site,
        StatusCode::BAD_REQUEST,
        site.texts().error_bad_request,
        message,
        "/audit",
        &[],
    )
}

fn unavailable(site: Site, error: &AuditError) -> Response {
    tracing::error!(%error, "the audit dashboard cannot read the log");
    let texts = site.texts();
    error_page(
        site,
        StatusCode::SERVICE_UNAVAILABLE,
        texts.error_unavailable,
        texts.error_unavailable_detail,
        "/audit",
        &[],
    )
}

fn lines(counts: &[Count], lang: Lang, none: &str) -> Vec<Line> {
    counts
        .iter()
        .map(|count| Line {
            label: count.key.clone().unwrap_or_else(|| none.to_owned()),
            figure: display::integer(count.count, lang),
        })
        .collect()
}

/// `GET /audit`.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    render(&state, &context, &pairs, &headers, None).await
}

async fn render(
    state: &AppState,
    context: &RequestContext,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    verification: Option<String>,
) -> Response {
    let site = Site::of(pairs, headers);
    if let Some(refusal) = authorize(state, context, site, "/audit") {
        return refusal;
    }
    let lang = site.lang;
    let a = texts_of(lang);
    let mut period = match StatsQuery::from_params(pairs) {
        Ok(period) => period,
        Err(error) => return bad_request(site, &error.to_string()),
    };
    if period.from.is_none() {
        let today = Utc::now().date_naive();
        period.from = (today - Duration::days(DEFAULT_DAYS - 1))
            .and_hms_opt(0, 0, 0)
            .map(|time| time.and_utc());
    }
    let mut events_query = match EventQuery::from_params(pairs) {
        Ok(query) => query,
        Err(error) => return bad_request(site, &error.to_string()),
    };
    if !pairs.iter().any(|(key, _)| key == "limit") {
        events_query.limit = PAGE_EVENTS;
    }
    let personal: Vec<String> = state
        .catalog
        .current()
        .entries()
        .iter()
        .filter(|entry| entry.definition.personal_data)
        .map(|entry| entry.id().to_owned())
        .collect();
    let reader = state.audit.reader();
    let dashboard: Dashboard = match reader.dashboard(&period, &personal).await {
        Ok(dashboard) => dashboard,
        Err(error) => return unavailable(site, &error),
    };
    let last_day = period
        .to
        .map(|to| (to - Duration::microseconds(1)).date_naive())
        .unwrap_or_else(|| Utc::now().date_naive());
    let by_day = every_day(
        &dashboard.by_day,
        period.from.map(|from| from.date_naive()),
        last_day,
    );
    let chain = match reader.chain_status().await {
        Ok(chain) => chain,
        Err(error) => return unavailable(site, &error),
    };
    let last_verification = match reader.last_verification().await {
        Ok(last) => last,
        Err(error) => return unavailable(site, &error),
    };
    let page = match reader.list(&events_query).await {
        Ok(page) => page,
        Err(error) => return unavailable(site, &error),
    };
    let filters: Vec<(&'static str, String)> = EVENT_FILTERS
        .iter()
        .filter_map(|name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| (*name, value.clone()))
        })
        .collect();
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut all = filters.clone();
        for (key, value) in extra {
            all.push((key, (*value).to_owned()));
        }
        all
    };
    let next_page = page.next_cursor.as_deref().map(|cursor| {
        let params = with(&[("cursor", cursor)]);
        site.href(
            "/audit",
            params.iter().map(|(key, value)| (*key, value.as_str())),
        )
    });
    let csv = {
        let params = with(&[]);
        site.href(
            "/audit/events.csv",
            params.iter().map(|(key, value)| (*key, value.as_str())),
        )
    };
    let none = a.none;
    let time = |time: Option<chrono::DateTime<Utc>>| {
        time.map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
    };
    let texts = site.texts();
    let page = AuditPage {
        layout: Layout::new(site, a.title.to_owned(), "/audit", pairs),
        t: texts,
        a,
        from: period
            .from
            .map(|from| from.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        to: period
            .to
            .map(|to| to.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        decision: filters
            .iter()
            .find(|(key, _)| *key == "decision")
            .map(|(_, value)| value.clone())
            .unwrap_or_default(),
        filters: filters.clone(),
        bars: bars(&by_day, lang),
        days: by_day
            .iter()
            .map(|day| DayLine {
                day: day.day.clone(),
                allow: display::integer(day.allow, lang),
                deny: display::integer(day.deny, lang),
            })
            .collect(),
        panels: vec![
            Panel {
                id: "refusals",
                heading: a.refusals,
                label: a.reason,
                rows: lines(&dashboard.refusals, lang, none),
            },
            Panel {
                id: "top-datasets",
                heading: a.top_datasets,
                label: a.dataset,
                rows: lines(&dashboard.top_datasets, lang, none),
            },
            Panel {
                id: "top-orgs",
                heading: a.top_orgs,
                label: a.org,
                rows: lines(&dashboard.top_orgs, lang, none),
            },
            Panel {
                id: "top-subjects",
                heading: a.top_subjects,
                label: a.subject,
                rows: lines(&dashboard.top_subjects, lang, none),
            },
        ],
        personal: dashboard
            .personal_reads
            .iter()
            .map(|line| PersonalLine {
                dataset: line.dataset.clone(),
                purpose: line.purpose.clone().unwrap_or_else(|| none.to_owned()),
                requests: display::integer(line.requests, lang),
                rows: display::integer(line.rows, lang),
            })
            .collect(),
        exports: dashboard
            .exports
            .iter()
            .map(|line| ExportLine {
                dataset: line.dataset.clone().unwrap_or_else(|| none.to_owned()),
                exports: display::integer(line.exports, lang),
                rows: display::integer(line.rows, lang),
                bytes: display::integer(line.bytes, lang),
            })
            .collect(),
        chain: Chain {
            head: match (chain.head_seq, &chain.head_hash) {
                (Some(seq), Some(hash)) => format!("n° {seq} · {}", &hash[..hash.len().min(16)]),
                _ => a.never.to_owned(),
            },
            checkpoint: match (chain.checkpoint_seq, time(chain.checkpoint_time)) {
                (Some(seq), Some(at)) => format!("n° {seq} · {at}"),
                _ => a.never.to_owned(),
            },
            last_verification: match last_verification {
                Some((at, rule)) => format!("{} · {rule}", time(Some(at)).unwrap_or_default()),
                None => a.never.to_owned(),
            },
        },
        verification,
        csrf: session::current()
            .account
            .map(|account| account.csrf)
            .unwrap_or_default(),
        events: page
            .events
            .iter()
            .map(|event| event_line(event, none))
            .collect(),
        next_page,
        csv,
    };
    respond(StatusCode::OK, &page)
}

/// Longest period drawn day by day (older days with events are still listed).
const MAX_DAYS: i64 = 400;

/// Every day from `first` to `last` (at most `MAX_DAYS`), those without
/// events at zero, so that the chart's time axis is regular.
fn every_day(counted: &[DayCount], first: Option<NaiveDate>, last: NaiveDate) -> Vec<DayCount> {
    let Some(first) = first.or_else(|| {
        counted
            .first()
            .and_then(|day| NaiveDate::parse_from_str(&day.day, "%Y-%m-%d").ok())
    }) else {
        return counted.to_vec();
    };
    let first = first.max(last - Duration::days(MAX_DAYS - 1));
    let mut days: Vec<DayCount> = counted
        .iter()
        .filter(|day| {
            NaiveDate::parse_from_str(&day.day, "%Y-%m-%d").is_ok_and(|date| date < first)
        })
        .cloned()
        .collect();
    let mut date = first;
    while date <= last {
        let key = date.format("%Y-%m-%d").to_string();
        days.push(
            counted
                .iter()
                .find(|day| day.day == key)
                .cloned()
                .unwrap_or(DayCount {
                    day: key,
                    allow: 0,
                    deny: 0,
                }),
        );
        date += Duration::days(1);
    }
    days
}

fn event_line(stored: &StoredEvent, none: &str) -> EventLine {
    let event = &stored.event;
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| none.to_owned());
    EventLine {
        time: event.time.format("%Y-%m-%d %H:%M:%S").to_string(),
        subject: text(&event.subject),
        org: text(&event.org),
        action: event.action.as_str().to_owned(),
        dataset: text(&event.dataset),
        decision: event.decision.as_str().to_owned(),
        status: event.status,
        rule: text(&event.rule),
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /audit/verify`: verifies the whole chain now (the session's CSRF
/// token required), then shows the dashboard with the result.
pub async fn verify(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Response {
    let site = Site::of(&[], &headers);
    if let Some(refusal) = authorize(&state, &context, site, "/audit") {
        return refusal;
    }
    let valid = session::cookie(&headers, SESSION_COOKIE)
        .is_some_and(|id| session::csrf_matches(id, &form.csrf));
    if !valid {
        context.note(|record| {
            record.decision = Some(false);
            record.rule = Some("verification refused: bad_csrf".to_owned());
        });
        let texts = site.texts();
        return error_page(
            site,
            StatusCode::FORBIDDEN,
            texts.error_forbidden,
            texts.error_csrf,
            "/audit",
            &[],
        );
    }
    let a = texts_of(site.lang);
    let report = match state.audit.verify(None, None).await {
        Ok(report) => report,
        Err(error) => return unavailable(site, &error),
    };
    let (rule, shown) = match &report.first_broken {
        None => (
            format!("{VERIFIED_RULE}ok, {} events", report.checked),
            format!(
                "{} ({} {})",
                a.verified_ok,
                display::integer(report.checked as i64, site.lang),
                a.events.to_lowercase()
            ),
        ),
        Some(broken) => (
            format!("{VERIFIED_RULE}broken at {}", broken.seq),
            format!("{} {} ({})", a.verified_broken, broken.seq, broken.detail),
        ),
    };
    let response = render(&state, &context, &[], &headers, Some(shown)).await;
    // After the page's own authorisation note: the event records the result.
    context.note(|record| record.rule = Some(rule));
    response
}

/// `GET /audit/events.csv`: the filtered events as CSV, for the session.
pub async fn events_csv(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    let site = Site::of(&pairs, &headers);
    if let Some(refusal) = authorize(&state, &context, site, "/audit/events.csv") {
        return refusal;
    }
    let query = match EventQuery::from_params(&pairs) {
        Ok(query) => query,
        Err(error) => return bad_request(site, &error.to_string()),
    };
    let header_line = events_csv_header();
    let events = state.audit.stream(query);
    let body = futures::stream::once(async move { Ok::<_, AuditError>(header_line.into_bytes()) })
        .chain(events.map(|event| event.map(|event| event_csv_line(&event).into_bytes())));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit-events.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days without events are drawn at zero, so the axis is regular.
    #[test]
    fn fills_the_days_of_the_period() {
        let day = |day: &str, allow| DayCount {
            day: day.to_owned(),
            allow,
            deny: 0,
        };
        let date = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        let filled = every_day(
            &[day("2026-11-28", 1), day("2026-12-01", 4)],
            Some(date("2026-11-29")),
            date("2026-12-02"),
        );
        let listed: Vec<(&str, i64)> = filled.iter().map(|d| (d.day.as_str(), d.allow)).collect();
        assert_eq!(
            listed,
            vec![
                ("2026-11-28", 1),
                ("2026-11-29", 0),
                ("2026-11-30", 0),
                ("2026-12-01", 4),
                ("2026-12-02", 0)
            ]
        );
        assert_eq!(every_day(&[], None, date("2026-12-02")), vec![]);
    }

    /// Bars are stacked and scaled to the busiest day; labels carry the figures.
    #[test]
    fn draws_stacked_bars() {
        let days = vec![
            DayCount {
                day: "2026-12-01".to_owned(),
                allow: 3,
                deny: 1,
            },
            DayCount {
                day: "2026-12-02".to_owned(),
                allow: 1200,
                deny: 0,
            },
        ];
        let bars = bars(&days, Lang::Fr);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[1].low_height, "200.00");
        assert_eq!(bars[1].low_y, "0.00");
        assert_eq!(bars[0].low_height, "0.50");
        assert_eq!(bars[0].high_y, "199.33");
        assert_eq!(bars[0].x, "36.00");
        assert_eq!(bars[0].width, "288.00");
        assert_eq!(
            bars[1].label,
            "2026-12-02\u{a0}: 1\u{202f}200 autorisés, 0 refusés"
        );
        assert!(super::bars(&[], Lang::En).is_empty());
    }
}

//! `/inventory`: the stewards' dashboard (`inventory:read`, signed in). The
//! data register's tables as `GET /api/v1/inventory` computes them
//! (`catalog::inventory`): counts and percentages by organisation,
//! direction, theme, source, sharing, confidentiality and access level,
//! each as bars drawn on the server (`chart`) with the same figures in a
//! table; the datasets due for review, stale and undecided, each linking to
//! its page; and the register itself as CSV (`/inventory/register.csv`,
//! through the session like the page, French headers on the French page).
//!
//! Every request here is an `inventory:read` event, decided by the policy
//! as for the API (`http::guard::require`). For a steward whose roles hold
//! `manage` or `publish` on a dataset, its rows link to the forms that edit
//! its metadata and upload a new version (`steward`), and a table lists
//! every dataset they may manage or publish.

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::chart::{self, Bar};
use super::display;
use super::locale::{Lang, Texts};
use super::page::{Layout, Site, pairs_of, refuse_unless, respond};
use super::steward::{self, StewardLinks};
use crate::catalog::DatasetEntry;
use crate::catalog::definition::AccessLevel;
use crate::catalog::inventory::{self, Count, Dimension, Inventory, Listed};
use crate::catalog::register::Decision;
use crate::catalog::register_csv;
use crate::http::context::RequestContext;
use crate::http::state::AppState;
use crate::policy::Action;

/// The dashboard's own texts.
pub struct InventoryTexts {
    pub title: &'static str,
    pub total: &'static str,
    pub chart: &'static str,
    pub value: &'static str,
    pub count: &'static str,
    pub percent: &'static str,
    pub not_recorded: &'static str,
    pub due_reviews: &'static str,
    pub stale: &'static str,
    pub undecided: &'static str,
    pub dataset: &'static str,
    pub reason: &'static str,
    pub none: &'static str,
    pub next_review: &'static str,
    pub promised: &'static str,
    pub last_version: &'static str,
    pub no_version: &'static str,
    pub to_define: &'static str,
    pub access_undecided: &'static str,
    pub register_csv: &'static str,
    pub register_hint: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub internal: &'static str,
    pub external: &'static str,
    pub mixed: &'static str,
    pub sign_in_needed: &'static str,
    pub not_allowed: &'static str,
    /// Headings of the tables, in the order of `Dimension::ALL`.
    pub dimensions: [&'static str; 7],
}

pub static FRENCH: InventoryTexts = InventoryTexts {
    title: "Inventaire des données",
    total: "Jeux de données au registre",
    chart: "Répartition des jeux de données",
    value: "Valeur",
    count: "Nombre",
    percent: "Part",
    not_recorded: "(non renseigné)",
    due_reviews: "Révisions à faire",
    stale: "Jeux de données en retard",
    undecided: "Décisions à prendre",
    dataset: "Jeu de données",
    reason: "Motif",
    none: "Aucun jeu de données.",
    next_review: "révision prévue le",
    promised: "mise à jour promise",
    last_version: "dernière version le",
    no_version: "aucune version",
    to_define: "une décision du registre reste à définir",
    access_undecided: "niveau d'accès non décidé",
    register_csv: "Télécharger le registre (CSV pour tableur)",
    register_hint: "Une ligne par jeu de données avec tous les champs du registre, séparateur « ; ».",
    yes: "Oui",
    no: "Non",
    internal: "Interne",
    external: "Externe",
    mixed: "Interne et externe",
    sign_in_needed: "Connectez-vous avec un compte de gestionnaire de données pour voir l'inventaire.",
    not_allowed: "Votre rôle ne permet pas de lire l'inventaire.",
    dimensions: [
        "Par collectivité",
        "Par direction",
        "Par thème",
        "Par source",
        "Par partage",
        "Par confidentialité",
        "Par niveau d'accès",
    ],
};

pub static ENGLISH: InventoryTexts = InventoryTexts {
    title: "Data inventory",
    total: "Datasets in the register",
    chart: "Datasets",
    value: "Value",
    count: "Count",
    percent: "Share",
    not_recorded: "(not recorded)",
    due_reviews: "Reviews due",
    stale: "Late datasets",
    undecided: "Decisions to take",
    dataset: "Dataset",
    reason: "Reason",
    none: "No dataset.",
    next_review: "review planned on",
    promised: "update promised",
    last_version: "last version on",
    no_version: "no version",
    to_define: "a register decision is still to define",
    access_undecided: "access level undecided",
    register_csv: "Download the register (CSV for spreadsheets)",
    register_hint: "One line per dataset with every register field, separated by “;”.",
    yes: "Yes",
    no: "No",
    internal: "Internal",
    external: "External",
    mixed: "Internal and external",
    sign_in_needed: "Sign in with a data steward's account to see the inventory.",
    not_allowed: "Your role does not allow reading the inventory.",
    dimensions: [
        "By organisation",
        "By direction",
        "By theme",
        "By source",
        "By sharing",
        "By confidentiality",
        "By access level",
    ],
};

fn texts_of(lang: Lang) -> &'static InventoryTexts {
    match lang {
        Lang::Fr => &FRENCH,
        Lang::En => &ENGLISH,
    }
}

/// A line of a table: the value in words, its count and its share.
pub struct Line {
    pub label: String,
    pub count: String,
    pub percent: String,
}

/// One dimension: its chart and its table.
pub struct Table {
    pub id: &'static str,
    pub heading: &'static str,
    pub chart_title: String,
    pub bars: Vec<Bar>,
    pub lines: Vec<Line>,
}

/// A dataset of an attention list, linking to its page (and to its forms,
/// for a steward whose roles hold `manage` or `publish` on it).
pub struct Item {
    pub href: String,
    pub title: String,
    pub id: String,
    pub reason: String,
    pub links: StewardLinks,
}

/// A dataset the reader may manage or publish, with its forms.
pub struct Managed {
    pub href: String,
    pub title: String,
    pub id: String,
    pub links: StewardLinks,
}

/// An attention list.
pub struct List {
    pub id: &'static str,
    pub heading: &'static str,
    pub items: Vec<Item>,
}

#[derive(Template)]
#[template(path = "inventory.html", config = "src/web/askama.toml")]
struct InventoryPage {
    layout: Layout,
    t: &'static Texts,
    i: &'static InventoryTexts,
    total: String,
    tables: Vec<Table>,
    lists: Vec<List>,
    register: String,
    s: &'static super::steward::StewardTexts,
    managed: Vec<Managed>,
}

/// Refuses unless the caller may read the inventory; the refusal as a page.
fn authorize(
    state: &AppState,
    context: &RequestContext,
    site: Site,
    path: &str,
) -> Option<Response> {
    let texts = texts_of(site.lang);
    let messages = (texts.sign_in_needed, texts.not_allowed);
    refuse_unless(state, context, Action::InventoryRead, site, path, messages)
}

/// A dimension's value in the reader's words.
fn value_label(dimension: Dimension, value: Option<&str>, lang: Lang) -> String {
    let i = texts_of(lang);
    let Some(value) = value else {
        return i.not_recorded.to_owned();
    };
    let label = match (dimension, value) {
        (Dimension::Sharing | Dimension::Confidentiality, "yes") => i.yes,
        (Dimension::Sharing | Dimension::Confidentiality, "no") => i.no,
        (Dimension::Sharing | Dimension::Confidentiality, "to_define") => {
            lang.access_label(AccessLevel::Undecided)
        }
        (Dimension::SourceKind, "internal") => i.internal,
        (Dimension::SourceKind, "external") => i.external,
        (Dimension::SourceKind, "mixed") => i.mixed,
        (Dimension::Access, "open") => lang.access_label(AccessLevel::Open),
        (Dimension::Access, "partners") => lang.access_label(AccessLevel::Partners),
        (Dimension::Access, "internal") => lang.access_label(AccessLevel::Internal),
        (Dimension::Access, "confidential") => lang.access_label(AccessLevel::Confidential),
        (Dimension::Access, "undecided") => lang.access_label(AccessLevel::Undecided),
        _ => value,
    };
    label.to_owned()
}

/// A percentage the reader's way: `24,5 %` (no-break space) or `24.5%`.
fn percent_text(percent: f64, lang: Lang) -> String {
    let number = display::number(percent, lang);
    match lang {
        Lang::Fr => format!("{number}\u{a0}%"),
        Lang::En => format!("{number}%"),
    }
}

fn table(dimension: Dimension, index: usize, counts: &[Count], lang: Lang) -> Table {
    let i = texts_of(lang);
    let colon = lang.texts().colon;
    let lines: Vec<Line> = counts
        .iter()
        .map(|count| Line {
            label: value_label(dimension, count.value.as_deref(), lang),
            count: display::integer(count.count as i64, lang),
            percent: percent_text(count.percent, lang),
        })
        .collect();
    let bars = chart::bars(counts.iter().zip(&lines).map(|(count, line)| {
        (
            count.count as i64,
            0,
            format!("{}{colon}{} ({})", line.label, line.count, line.percent),
        )
    }));
    Table {
        id: dimension.as_str(),
        heading: i.dimensions[index],
        chart_title: format!("{} · {}", i.chart, i.dimensions[index].to_lowercase()),
        bars,
        lines,
    }
}

/// Why a dataset is listed, in the reader's words (from its register entry).
fn reason(kind: &str, entry: Option<&DatasetEntry>, listed: &Listed, lang: Lang) -> String {
    let i = texts_of(lang);
    let Some(entry) = entry else {
        return listed.reason.clone();
    };
    let definition = &entry.definition;
    match kind {
        "due-reviews" => match definition.review.as_ref().and_then(|r| r.next_review) {
            Some(next) => format!("{} {}", i.next_review, display::date(next, lang)),
            None => listed.reason.clone(),
        },
        "stale" => {
            let frequency = definition
                .update_frequency
                .as_deref()
                .map(|frequency| lang.frequency_label(frequency))
                .unwrap_or_default();
            let last = if entry.last_updated.is_empty() {
                i.no_version.to_owned()
            } else {
                format!(
                    "{} {}",
                    i.last_version,
                    display::timestamp_date(&entry.last_updated, lang)
                )
            };
            format!("{} {frequency}, {last}", i.promised)
        }
        _ => {
            let to_define = [
                definition.sharing.as_ref().map(|sharing| sharing.decision),
                definition
                    .confidentiality
                    .as_ref()
                    .map(|confidentiality| confidentiality.decision),
            ]
            .contains(&Some(Decision::ToDefine));
            if to_define {
                i.to_define.to_owned()
            } else {
                i.access_undecided.to_owned()
            }
        }
    }
}

/// `GET /inventory`.
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
    let site = Site::of(&pairs, &headers);
    if let Some(refusal) = authorize(&state, &context, site, "/inventory") {
        return refusal;
    }
    let catalog = state.catalog.current();
    let entries: Vec<&DatasetEntry> = catalog
        .entries()
        .iter()
        .map(|entry| entry.as_ref())
        .collect();
    let links = |entry: &DatasetEntry| steward::links(&state, &context.caller, entry, site);
    render(site, &pairs, &entries, Utc::now(), links)
}

fn render(
    site: Site,
    pairs: &[(String, String)],
    entries: &[&DatasetEntry],
    now: DateTime<Utc>,
    links: impl Fn(&DatasetEntry) -> StewardLinks,
) -> Response {
    let lang = site.lang;
    let i = texts_of(lang);
    let inventory: Inventory = inventory::compute(entries, None, now);
    let tables = Dimension::ALL
        .iter()
        .enumerate()
        .map(|(index, dimension)| {
            let counts = inventory
                .by
                .get(dimension.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            table(*dimension, index, counts, lang)
        })
        .collect();
    let entry_of = |id: &str| entries.iter().copied().find(|entry| entry.id() == id);
    let list = |id: &'static str, heading: &'static str, listed: &[Listed]| List {
        id,
        heading,
        items: listed
            .iter()
            .map(|item| Item {
                href: site.href(&format!("/datasets/{}", item.id), []),
                title: item.title.clone(),
                id: item.id.clone(),
                reason: reason(id, entry_of(&item.id), item, lang),
                links: entry_of(&item.id).map(&links).unwrap_or_default(),
            })
            .collect(),
    };
    let mut managed: Vec<Managed> = entries
        .iter()
        .filter_map(|entry| {
            let links = links(entry);
            (!links.is_empty()).then(|| Managed {
                href: site.href(&format!("/datasets/{}", entry.id()), []),
                title: entry.definition.title.clone(),
                id: entry.id().to_owned(),
                links,
            })
        })
        .collect();
    managed.sort_by(|a, b| a.title.cmp(&b.title));
    let lists = vec![
        list("due-reviews", i.due_reviews, &inventory.due_reviews),
        list("stale", i.stale, &inventory.stale),
        list("undecided", i.undecided, &inventory.undecided),
    ];
    let page = InventoryPage {
        layout: Layout::new(site, i.title.to_owned(), "/inventory", pairs),
        t: site.texts(),
        i,
        total: display::integer(inventory.total as i64, lang),
        tables,
        lists,
        register: site.href("/inventory/register.csv", []),
        s: steward::texts_of(lang),
        managed,
    };
    respond(StatusCode::OK, &page)
}

/// `GET /inventory/register.csv`: the register, one line per dataset
/// (`;`, UTF-8 with BOM), French headers and values on a French page.
pub async fn register_csv(
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
    if let Some(refusal) = authorize(&state, &context, site, "/inventory/register.csv") {
        return refusal;
    }
    let catalog = state.catalog.current();
    let entries: Vec<&DatasetEntry> = catalog
        .entries()
        .iter()
        .map(|entry| entry.as_ref())
        .collect();
    let body = register_csv::export(&entries, site.lang == Lang::Fr);
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
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentages in French (`24,5 %`, no-break space) and in English.
    #[test]
    fn writes_percentages_the_readers_way() {
        assert_eq!(percent_text(24.5, Lang::Fr), "24,5\u{a0}%");
        assert_eq!(percent_text(100.0, Lang::Fr), "100\u{a0}%");
        assert_eq!(percent_text(24.5, Lang::En), "24.5%");
    }

    /// Register values in words; free text (themes, organisations) as recorded.
    #[test]
    fn names_values_in_words() {
        assert_eq!(
            value_label(Dimension::Sharing, Some("yes"), Lang::Fr),
            "Oui"
        );
        assert_eq!(
            value_label(Dimension::SourceKind, Some("external"), Lang::En),
            "External"
        );
        assert_eq!(
            value_label(Dimension::Access, Some("open"), Lang::Fr),
            Lang::Fr.access_label(AccessLevel::Open)
        );
        assert_eq!(
            value_label(Dimension::Theme, Some("Culture"), Lang::En),
            "Culture"
        );
        assert_eq!(
            value_label(Dimension::Direction, None, Lang::Fr),
            "(non renseigné)"
        );
    }

    /// One bar per value, the tallest at full height, labels with the figures.
    #[test]
    fn draws_one_bar_per_value() {
        let counts = [
            Count {
                value: Some("no".to_owned()),
                count: 452,
                percent: 69.2,
            },
            Count {
                value: None,
                count: 41,
                percent: 6.3,
            },
        ];
        let drawn = table(Dimension::Sharing, 4, &counts, Lang::Fr);
        assert_eq!(drawn.id, "sharing");
        assert_eq!(drawn.heading, "Par partage");
        assert_eq!(drawn.bars.len(), 2);
        assert_eq!(drawn.bars[0].low_height, "200.00");
        assert_eq!(drawn.bars[0].label, "Non\u{a0}: 452 (69,2\u{a0}%)");
        assert_eq!(drawn.lines[1].label, "(non renseigné)");
        assert_eq!(drawn.lines[1].percent, "6,3\u{a0}%");
    }
}

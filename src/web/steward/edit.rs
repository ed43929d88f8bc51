//! `GET`/`POST /datasets/{id}/edit`: a dataset's metadata as a form, for a
//! steward whose roles hold `manage` on it. The fields `manage` may change
//! are editable; the classification (access level, visibility, personal
//! data) only for a caller who also holds `classify`, shown read-only to the
//! others (and never sent, so never changed by them).
//!
//! Saving is a JSON Merge Patch of the definition through the publishing
//! API's `change_definition`, with the hidden ETag as `If-Match`: a form
//! older than the definition is a conflict (409) that keeps what was typed
//! and shows the values saved meanwhile; invalid fields (422) are listed at
//! the top, each linked to its field, and marked on the field itself.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{StewardTexts, csrf_ok, form_text, problem_page, refuse_csrf, texts_of};
use crate::catalog::definition::{AccessLevel, DatasetDefinition, MetadataVisibility};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::Problem;
use crate::http::publishing::definition::{change_definition, merge_patch};
use crate::http::publishing::{
    Target, authorize, dataset_of, etag, reason_text, stored_definition, stored_or_problem,
};
use crate::http::state::AppState;
use crate::policy::Action;
use crate::store::datasets::StoredDataset;
use crate::web::locale::{Lang, Texts};
use crate::web::page::{Layout, Site, pairs_of, respond};
use crate::web::session;

/// The fields `manage` may change, in the form's order.
const MANAGED: [&str; 8] = [
    "title",
    "description",
    "theme",
    "keywords",
    "licence",
    "update_frequency",
    "organisation",
    "direction",
];
/// The classification fields (`classify`).
const CLASSIFYING: [&str; 3] = ["access", "metadata_visibility", "personal_data"];
/// DCAT frequencies offered (another one recorded stays offered).
const FREQUENCIES: [&str; 7] = [
    "continuous",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "annual",
    "irregular",
];
const LEVELS: [AccessLevel; 5] = [
    AccessLevel::Open,
    AccessLevel::Partners,
    AccessLevel::Internal,
    AccessLevel::Confidential,
    AccessLevel::Undecided,
];

/// The form as posted (every field a string; a checkbox is absent when unticked).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EditForm {
    pub csrf: String,
    pub etag: String,
    pub reason: String,
    pub title: String,
    pub description: String,
    pub theme: String,
    pub keywords: String,
    pub licence: String,
    pub update_frequency: String,
    pub organisation: String,
    pub direction: String,
    pub access: String,
    pub metadata_visibility: String,
    pub personal_data: String,
}

impl EditForm {
    /// The form filled with a definition's values.
    pub fn of(definition: &DatasetDefinition) -> EditForm {
        EditForm {
            title: definition.title.clone(),
            description: definition.description.clone(),
            theme: definition.theme.clone(),
            keywords: definition.keywords.join(", "),
            licence: definition.licence.clone(),
            update_frequency: definition.update_frequency.clone().unwrap_or_default(),
            organisation: definition.organisation.clone().unwrap_or_default(),
            direction: definition.direction.clone().unwrap_or_default(),
            access: definition.access.as_str().to_owned(),
            metadata_visibility: match definition.metadata_visibility {
                MetadataVisibility::Public => "public",
                MetadataVisibility::Restricted => "restricted",
            }
            .to_owned(),
            personal_data: if definition.personal_data { "true" } else { "" }.to_owned(),
            ..EditForm::default()
        }
    }

    fn value(&self, name: &str) -> &str {
        match name {
            "title" => &self.title,
            "description" => &self.description,
            "theme" => &self.theme,
            "keywords" => &self.keywords,
            "licence" => &self.licence,
            "update_frequency" => &self.update_frequency,
            "organisation" => &self.organisation,
            "direction" => &self.direction,
            "access" => &self.access,
            "metadata_visibility" => &self.metadata_visibility,
            "personal_data" => &self.personal_data,
            _ => "",
        }
    }

    /// The merge patch the form makes: the managed fields, and the
    /// classification only when the caller may classify. An emptied
    /// optional field is removed.
    pub fn patch(&self, classify: bool) -> Value {
        let optional = |text: &str| {
            let text = form_text(text);
            if text.is_empty() {
                Value::Null
            } else {
                Value::String(text)
            }
        };
        let keywords: Vec<String> = self
            .keywords
            .split(',')
            .map(form_text)
            .filter(|keyword| !keyword.is_empty())
            .collect();
        let mut patch = json!({
            "title": form_text(&self.title),
            "description": form_text(&self.description),
            "theme": form_text(&self.theme),
            "keywords": keywords,
            "licence": form_text(&self.licence),
            "update_frequency": optional(&self.update_frequency),
            "organisation": optional(&self.organisation),
            "direction": optional(&self.direction),
        });
        if classify {
            patch["access"] = Value::String(form_text(&self.access));
            patch["metadata_visibility"] = Value::String(form_text(&self.metadata_visibility));
            patch["personal_data"] = Value::Bool(self.personal_data == "true");
        }
        patch
    }
}

/// An option of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One field of the form, as the template draws it.
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: Option<&'static str>,
    /// `text`, `textarea`, `select` or `checkbox`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<Choice>,
    pub required: bool,
    pub error: Option<String>,
    /// After a conflict: the value saved meanwhile, when it differs.
    pub current: Option<String>,
    /// The ids of the hint, error and current value (`aria-describedby`).
    pub described_by: String,
}

/// An error of the summary, linking to its field.
pub struct SummaryError {
    pub href: Option<String>,
    pub text: String,
}

#[derive(Template)]
#[template(path = "steward_edit.html", config = "src/web/askama.toml")]
struct EditPage {
    layout: Layout,
    t: &'static Texts,
    s: &'static StewardTexts,
    action: String,
    dataset_href: String,
    dataset_title: String,
    csrf: String,
    etag: String,
    reason: String,
    fields: Vec<FormField>,
    classification: Vec<FormField>,
    /// The classification, read-only, for a caller who may not classify.
    fixed: Vec<(&'static str, String)>,
    notice: Option<&'static str>,
    notice_is_error: bool,
    errors: Vec<SummaryError>,
}

/// What a render shows besides the values.
#[derive(Default)]
struct Outcome {
    notice: Option<&'static str>,
    notice_is_error: bool,
    /// Invalid fields: name → reason.
    errors: Vec<(String, String)>,
    /// After a conflict: the values saved meanwhile.
    current: Option<EditForm>,
}

fn label_of(name: &str, s: &StewardTexts) -> &'static str {
    match name {
        "title" => s.title,
        "description" => s.description,
        "theme" => s.theme,
        "keywords" => s.keywords,
        "licence" => s.licence,
        "update_frequency" => s.frequency,
        "organisation" => s.organisation,
        "direction" => s.direction,
        "access" => s.access,
        "metadata_visibility" => s.visibility,
        "personal_data" => s.personal_data,
        _ => "",
    }
}

/// A value in words, for read-only and "saved meanwhile" displays.
fn value_label(name: &str, value: &str, lang: Lang) -> String {
    let s = texts_of(lang);
    match name {
        "access" => LEVELS
            .iter()
            .find(|level| level.as_str() == value)
            .map_or(value, |level| lang.access_label(*level))
            .to_owned(),
        "metadata_visibility" if value == "restricted" => s.visibility_restricted.to_owned(),
        "metadata_visibility" => s.visibility_public.to_owned(),
        "personal_data" if value == "true" => lang.texts().yes.to_owned(),
        "personal_data" => lang.texts().no.to_owned(),
        "update_frequency" if !value.is_empty() => lang.frequency_label(value),
        _ if value.is_empty() => s.empty_value.to_owned(),
        _ => value.to_owned(),
    }
}

fn options(name: &str, value: &str, lang: Lang) -> Vec<Choice> {
    let s = texts_of(lang);
    let mut choices: Vec<(String, String)> = match name {
        "update_frequency" => std::iter::once((String::new(), s.frequency_none.to_owned()))
            .chain(
                FREQUENCIES
                    .iter()
                    .map(|frequency| (frequency.to_string(), lang.frequency_label(frequency))),
            )
            .collect(),
        "access" => LEVELS
            .iter()
            .map(|level| {
                (
                    level.as_str().to_owned(),
                    lang.access_label(*level).to_owned(),
                )
            })
            .collect(),
        "metadata_visibility" => vec![
            ("public".to_owned(), s.visibility_public.to_owned()),
            ("restricted".to_owned(), s.visibility_restricted.to_owned()),
        ],
        _ => Vec::new(),
    };
    if !value.is_empty() && !choices.iter().any(|(choice, _)| choice == value) {
        choices.push((value.to_owned(), value.to_owned()));
    }
    choices
        .into_iter()
        .map(|(choice, label)| Choice {
            selected: choice == value,
            value: choice,
            label,
        })
        .collect()
}

fn field(name: &'static str, values: &EditForm, outcome: &Outcome, lang: Lang) -> FormField {
    let s = texts_of(lang);
    let kind = match name {
        "description" => "textarea",
        "update_frequency" | "access" | "metadata_visibility" => "select",
        "personal_data" => "checkbox",
        _ => "text",
    };
    let hint = match name {
        "keywords" => Some(s.keywords_hint),
        "licence" => Some(s.licence_hint),
        _ => None,
    };
    let value = values.value(name).to_owned();
    let error = outcome
        .errors
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, reason)| reason.clone());
    let current = outcome.current.as_ref().and_then(|current| {
        let saved = current.value(name);
        (form_text(saved) != form_text(&value)).then(|| value_label(name, saved, lang))
    });
    let described_by = [
        hint.map(|_| format!("field-{name}-hint")),
        error.as_ref().map(|_| format!("field-{name}-error")),
        current.as_ref().map(|_| format!("field-{name}-current")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    FormField {
        name,
        label: label_of(name, s),
        hint,
        kind,
        options: options(name, &value, lang),
        value,
        required: matches!(name, "title" | "licence"),
        error,
        current,
        described_by,
    }
}

/// Where an invalid field of the service is shown: one of the form's
/// fields, or only in the summary (`register`, `schema`, …).
fn form_field_of(field: &str) -> Option<&'static str> {
    let top = field.split(['.', '[']).next().unwrap_or(field);
    MANAGED
        .iter()
        .chain(CLASSIFYING.iter())
        .find(|name| **name == top)
        .copied()
}

struct Render<'a> {
    site: Site,
    pairs: &'a [(String, String)],
    id: &'a str,
    csrf: String,
    etag: String,
    classify: bool,
}

fn render(render: Render<'_>, values: &EditForm, outcome: Outcome, status: StatusCode) -> Response {
    let Render {
        site,
        pairs,
        id,
        csrf,
        etag,
        classify,
    } = render;
    let lang = site.lang;
    let s = texts_of(lang);
    let path = format!("/datasets/{id}/edit");
    let fields = MANAGED
        .iter()
        .map(|name| field(name, values, &outcome, lang))
        .collect();
    let (classification, fixed) = if classify {
        let fields = CLASSIFYING
            .iter()
            .map(|name| field(name, values, &outcome, lang))
            .collect();
        (fields, Vec::new())
    } else {
        let fixed = CLASSIFYING
            .iter()
            .map(|name| {
                (
                    label_of(name, s),
                    value_label(name, values.value(name), lang),
                )
            })
            .collect();
        (Vec::new(), fixed)
    };
    let errors = outcome
        .errors
        .iter()
        .map(|(field, reason)| {
            let shown = form_field_of(field);
            let label = shown.map_or(field.as_str(), |name| label_of(name, s));
            SummaryError {
                href: shown
                    .filter(|name| classify || !CLASSIFYING.contains(name))
                    .map(|name| format!("#field-{name}")),
                text: if label.is_empty() {
                    reason.clone()
                } else {
                    format!("{label}{}{reason}", lang.texts().colon)
                },
            }
        })
        .collect();
    let page = EditPage {
        layout: Layout::new(site, format!("{} · {id}", s.edit_title), &path, pairs),
        t: lang.texts(),
        s,
        action: site.href(&path, []),
        dataset_href: site.href(&format!("/datasets/{id}"), []),
        dataset_title: values.title.clone(),
        csrf,
        etag,
        reason: values.reason.clone(),
        fields,
        classification,
        fixed,
        notice: outcome.notice,
        notice_is_error: outcome.notice_is_error,
        errors,
    };
    respond(status, &page)
}

/// What a steward's page starts from: the query's pairs, the site
/// (language), the page's path, and the stored dataset with its definition.
pub struct Opened {
    pub pairs: Vec<(String, String)>,
    pub site: Site,
    pub path: String,
    pub stored: StoredDataset,
    pub definition: DatasetDefinition,
}

/// Opens `/datasets/{id}/{page}` for a caller who may do `action` on the
/// dataset; the error page (bad query, refusal, unknown dataset) otherwise.
pub async fn open(
    state: &AppState,
    context: &RequestContext,
    id: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    (action, page): (Action, &str),
) -> Result<Opened, Response> {
    let pairs = pairs_of(raw_query, headers)?;
    let site = Site::of(&pairs, headers);
    let path = format!("/datasets/{id}/{page}");
    let (stored, definition) = authorized(state, context, id, action, site, &path).await?;
    Ok(Opened {
        pairs,
        site,
        path,
        stored,
        definition,
    })
}

/// The stored dataset and its definition when the caller may do `action`
/// on it (noted for the audit event); the refusal as a page otherwise.
async fn authorized(
    state: &AppState,
    context: &RequestContext,
    id: &str,
    action: Action,
    site: Site,
    path: &str,
) -> Result<(StoredDataset, DatasetDefinition), Response> {
    context.note(|record| {
        record.dataset = Some(id.to_owned());
        record.action = Some(action.into());
    });
    let found = async {
        let stored = stored_or_problem(state, id).await?;
        let definition = stored_definition(&stored)?;
        let target = Target::Dataset {
            dataset: dataset_of(&stored, &definition),
        };
        authorize(state, context, &target, action)?;
        Ok::<_, Problem>((stored, definition))
    }
    .await;
    found.map_err(|problem| {
        if problem.status == StatusCode::NOT_FOUND || problem.status == StatusCode::GONE {
            context.note(|record| {
                record.decision = Some(false);
                record.rule.get_or_insert_with(|| "not visible".to_owned());
            });
        }
        problem_page(site, &problem, path)
    })
}

fn may_classify(
    state: &AppState,
    context: &RequestContext,
    stored: &StoredDataset,
    definition: &DatasetDefinition,
) -> bool {
    state
        .policy
        .decide(
            &context.caller.roles,
            &dataset_of(stored, definition),
            Action::Classify,
        )
        .allowed
}

fn csrf_of_session() -> String {
    session::current()
        .account
        .map(|account| account.csrf)
        .unwrap_or_default()
}

/// `GET /datasets/{id}/edit`.
pub async fn form(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let opened = open(
        &state,
        &context,
        &id,
        raw_query.as_deref(),
        &headers,
        (Action::Manage, "edit"),
    )
    .await;
    let Opened {
        pairs,
        site,
        path: _,
        stored,
        definition,
    } = match opened {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let classify = may_classify(&state, &context, &stored, &definition);
    let render_with = Render {
        site,
        pairs: &pairs,
        id: &id,
        csrf: csrf_of_session(),
        etag: etag(&stored),
        classify,
    };
    render(
        render_with,
        &EditForm::of(&definition),
        Outcome::default(),
        StatusCode::OK,
    )
}

/// `POST /datasets/{id}/edit`.
pub async fn save(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    Form(form): Form<EditForm>,
) -> Response {
    let opened = open(
        &state,
        &context,
        &id,
        raw_query.as_deref(),
        &headers,
        (Action::Manage, "edit"),
    )
    .await;
    let Opened {
        pairs,
        site,
        path,
        stored,
        definition,
    } = match opened {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    if !csrf_ok(&headers, &form.csrf) {
        return refuse_csrf(&context, site, &path);
    }
    let classify = may_classify(&state, &context, &stored, &definition);
    let patch = form.patch(classify);
    let changed = change_definition(
        &state,
        &context,
        &id,
        Some(&form.etag),
        reason_text(&form.reason),
        move |current| {
            let mut target = serde_json::to_value(current).map_err(Problem::internal)?;
            merge_patch(&mut target, &patch);
            Ok(target)
        },
    )
    .await;
    let render_with = |etag: String| Render {
        site,
        pairs: &pairs,
        id: &id,
        csrf: form.csrf.clone(),
        etag,
        classify,
    };
    let s = texts_of(site.lang);
    match changed {
        Ok(changed) => {
            let outcome = Outcome {
                notice: Some(s.saved),
                ..Outcome::default()
            };
            render(
                render_with(changed.etag),
                &EditForm::of(&changed.definition),
                outcome,
                StatusCode::OK,
            )
        }
        Err(problem) if problem.status == StatusCode::PRECONDITION_FAILED => {
            // Someone saved meanwhile: keep what was typed, show what they saved.
            let current = match stored_or_problem(&state, &id).await {
                Ok(stored) => stored,
                Err(problem) => return problem_page(site, &problem, &path),
            };
            let saved = match stored_definition(&current) {
                Ok(saved) => saved,
                Err(problem) => return problem_page(site, &problem, &path),
            };
            let outcome = Outcome {
                notice: Some(s.conflict),
                notice_is_error: true,
                errors: Vec::new(),
                current: Some(EditForm::of(&saved)),
            };
            render(
                render_with(etag(&current)),
                &form,
                outcome,
                StatusCode::CONFLICT,
            )
        }
        Err(problem) if problem.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = invalid_fields(&problem);
            let outcome = Outcome {
                errors,
                ..Outcome::default()
            };
            render(
                render_with(form.etag.clone()),
                &form,
                outcome,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(problem) => problem_page(site, &problem, &path),
    }
}

/// The invalid fields a 422 of the service names (field, reason).
fn invalid_fields(problem: &Problem) -> Vec<(String, String)> {
    let listed: Vec<(String, String)> = problem
        .extensions
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    let text = |key: &str| {
                        error
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (text("field"), text("reason"))
                })
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        vec![(String::new(), problem.detail.clone())]
    } else {
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> DatasetDefinition {
        serde_json::from_value(json!({
            "id": "velos",
            "title": "Vélos",
            "description": "Ligne 1\nLigne 2",
            "publisher": "Troyes Champagne Métropole",
            "licence": "etalab-2.0",
            "access": "open",
            "keywords": ["vélo", "mobilité"],
            "update_frequency": "daily",
            "source": {},
        }))
        .unwrap()
    }

    /// An unchanged form patches nothing: every value comes back as stored
    /// (`\r\n` from a text area included); emptied optional fields are removed.
    #[test]
    fn an_unchanged_form_changes_nothing() {
        let stored = definition();
        let mut form = EditForm::of(&stored);
        form.description = "Ligne 1\r\nLigne 2".to_owned();
        let mut value = serde_json::to_value(&stored).unwrap();
        merge_patch(&mut value, &form.patch(true));
        let after: DatasetDefinition = serde_json::from_value(value).unwrap();
        assert_eq!(after, stored);

        form.update_frequency = String::new();
        form.keywords = " vélo , , bus ".to_owned();
        let patch = form.patch(false);
        assert_eq!(patch["update_frequency"], Value::Null);
        assert_eq!(patch["keywords"], json!(["vélo", "bus"]));
        assert!(
            patch.get("access").is_none(),
            "no classification without classify"
        );
    }

    /// Errors of the service land on their field, or in the summary only.
    #[test]
    fn places_errors_on_their_fields() {
        assert_eq!(form_field_of("title"), Some("title"));
        assert_eq!(form_field_of("access"), Some("access"));
        assert_eq!(form_field_of("views[0].row_filter"), None);
        assert_eq!(form_field_of("register"), None);
        let outcome = Outcome {
            errors: vec![("title".to_owned(), "title must not be empty".to_owned())],
            ..Outcome::default()
        };
        let drawn = field("title", &EditForm::default(), &outcome, Lang::Fr);
        assert_eq!(drawn.error.as_deref(), Some("title must not be empty"));
        assert_eq!(drawn.described_by, "field-title-error");
        assert!(drawn.required);
        let keywords = field("keywords", &EditForm::default(), &outcome, Lang::Fr);
        assert_eq!(keywords.described_by, "field-keywords-hint");
    }
}

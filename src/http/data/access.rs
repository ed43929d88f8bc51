//! The one place every data access passes: who may know the dataset exists
//! (404), who may read it (401/403), whether a purpose is declared, and which
//! view applies (visible columns, row filter, aggregate-only).
//!
//! Invariant: anything not explicitly granted is refused, and a refusal never
//! reveals more than the earlier checks allow.

use axum::http::{HeaderMap, StatusCode};

use crate::auth::Caller;
use crate::catalog::DatasetEntry;
use crate::catalog::definition::{AccessLevel, ViewDefinition};
use crate::domain::Schema;
use crate::domain::client_text::{TextDefect, header_text};
use crate::domain::text;
use crate::http::client_text::invalid_header;
use crate::http::context::RequestContext;
use crate::http::problem::Problem;
use crate::policy::{Action, DatasetRef, Decision, PolicyEngine};
use crate::query::parse_filters;
use crate::query::plan::Filter;

/// What the caller may do with a dataset's rows.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Columns the caller may see, by schema index.
    pub visible: Vec<bool>,
    /// The view's row filter, claims substituted.
    pub row_filter: Option<Filter>,
    /// `Some(minimum group size)` when only aggregates may be read.
    pub aggregate_only: Option<u32>,
    pub view: Option<String>,
    pub rule: String,
}

/// The dataset as the policy sees it.
pub fn dataset_ref(entry: &DatasetEntry) -> DatasetRef<'_> {
    DatasetRef {
        id: entry.id(),
        access: entry.definition.access,
        metadata_visibility: entry.definition.metadata_visibility,
    }
}

/// Decides a data access and resolves its view. `action` is `Read` for JSON
/// pages and `Export` for file formats; an aggregate grant is the fallback.
pub fn authorize(
    policy: &PolicyEngine,
    context: &RequestContext,
    entry: &DatasetEntry,
    action: Action,
    headers: &HeaderMap,
) -> Result<Grant, Problem> {
    let caller = &context.caller;
    let dataset = dataset_ref(entry);
    let declared = purpose(headers);
    context.note(|record| {
        record.dataset = Some(entry.id().to_owned());
        record.action = Some(action.into());
        record.closed_data = entry.definition.access != AccessLevel::Open;
        record.purpose = match &declared {
            Ok(purpose) => purpose.clone(),
            Err(_) => headers
                .get(PURPOSE)
                .map(|value| text::from_bytes(value.as_bytes(), 500)),
        };
    });
    if !policy.may_see(&caller.roles, &dataset) {
        let decision = policy.decide(&caller.roles, &dataset, action);
        note_decision(context, &decision, false);
        return Err(Problem::dataset_not_found(entry.id()));
    }
    if let Some(allowed) = &caller.allowed_datasets {
        // A partner client registered for some datasets only.
        if !allowed.iter().any(|id| id == entry.id()) {
            context.note(|record| {
                record.decision = Some(false);
                record.rule = Some("client not registered for this dataset".to_owned());
            });
            return Err(Problem::forbidden(format!(
                "your client is not registered for dataset `{}`",
                entry.id()
            )));
        }
    }
    let mut decision = policy.decide(&caller.roles, &dataset, action);
    let mut aggregate_grant = false;
    if !decision.allowed {
        let aggregate = policy.decide(&caller.roles, &dataset, Action::Aggregate);
        if aggregate.allowed {
            decision = aggregate;
            aggregate_grant = true;
        }
    }
    note_decision(context, &decision, decision.allowed);
    if !decision.allowed {
        return Err(if caller.is_anonymous() {
            Problem::authentication_required(format!(
                "dataset `{}` is not open data: authenticate with a bearer token or an API key",
                entry.id()
            ))
        } else {
            Problem::forbidden(format!(
                "your roles do not allow reading dataset `{}`",
                entry.id()
            ))
        });
    }
    let declared = declared.map_err(|defect| {
        refuse(context, "X-Purpose header unreadable".to_owned());
        invalid_header("X-Purpose", &defect)
    })?;
    if entry.definition.personal_data && declared.is_none() {
        refuse(context, "personal data: X-Purpose required".to_owned());
        return Err(Problem::bad_request(
            "purpose-required",
            "Purpose required",
            format!(
                "dataset `{}` holds personal data: declare why you read it in the X-Purpose header \
                 (it is written to the audit log)",
                entry.id()
            ),
        )
        .with_hint("X-Purpose: instruction du dossier 2024-118"));
    }
    let view = match &decision.view {
        Some(name) => match entry.view(name) {
            Some(view) => Some(view),
            None => {
                // A rule naming a view the catalogue lacks: refuse rather than show everything.
                tracing::error!(dataset = entry.id(), view = %name, "policy names a view the dataset does not define");
                refuse(
                    context,
                    format!("view `{name}` is not defined in the catalogue"),
                );
                return Err(Problem::forbidden(format!(
                    "the view granted on dataset `{}` is not available",
                    entry.id()
                )));
            }
        },
        None => None,
    };
    let visible = visible_columns(&entry.schema, view);
    let row_filter = match view.and_then(|view| view.row_filter.as_deref()) {
        Some(template) => Some(row_filter(template, context, &entry.schema)?),
        None => None,
    };
    let aggregate_only = match view {
        Some(view) if view.aggregate_only => Some(view.min_group_size),
        _ if aggregate_grant => Some(view.map_or(11, |view| view.min_group_size)),
        _ => None,
    };
    Ok(Grant {
        visible,
        row_filter,
        aggregate_only,
        view: decision.view.clone(),
        rule: decision.rule.clone(),
    })
}

/// Records a refusal decided after the policy allowed access, with the
/// reason of the check that refused.
pub fn refuse(context: &RequestContext, rule: String) {
    context.note(|record| {
        record.decision = Some(false);
        record.rule = Some(rule);
    });
}

fn note_decision(context: &RequestContext, decision: &Decision, allowed: bool) {
    context.note(|record| {
        record.decision = Some(allowed);
        record.rule = Some(decision.rule.clone());
        record.view = decision.view.clone();
    });
}

/// The header that declares why personal data is read.
const PURPOSE: &str = "x-purpose";

/// The declared purpose, as the caller wrote it: UTF-8 text (accents
/// included) or the RFC 8187 form `UTF-8''…`; blank counts as missing. Bytes
/// that are not UTF-8 or hold a control character are an error, never
/// mistaken for a missing purpose.
pub fn purpose(headers: &HeaderMap) -> Result<Option<String>, TextDefect> {
    let Some(value) = headers.get(PURPOSE) else {
        return Ok(None);
    };
    let text = header_text(value.as_bytes())?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.chars().take(500).collect()))
}

/// Without a view every column; with one, its listed columns, or every
/// column but the personal ones.
pub fn visible_columns(schema: &Schema, view: Option<&ViewDefinition>) -> Vec<bool> {
    match view {
        None => vec![true; schema.fields.len()],
        Some(view) => schema
            .fields
            .iter()
            .map(|field| match &view.columns {
                Some(columns) => columns.iter().any(|column| column == &field.name),
                None => !field.is_personal(),
            })
            .collect(),
    }
}

/// Substitutes `${claims.X}` from the caller and parses the filter. A missing
/// claim, or one that could change the filter's meaning or that a store could
/// not hold (a NUL byte, any control character), refuses (403): never a
/// fallback to no filter.
fn row_filter(
    template: &str,
    context: &RequestContext,
    schema: &Schema,
) -> Result<Filter, Problem> {
    let caller: &Caller = &context.caller;
    let mut text = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${claims.") {
        text.push_str(&rest[..start]);
        let after = &rest[start + "${claims.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| misconfigured_view(context, template))?;
        let name = &after[..end];
        let value = caller.claim(name).ok_or_else(|| {
            refuse(context, format!("row filter needs claim `{name}`"));
            Problem::forbidden(format!(
                "this dataset is filtered by your `{name}` claim, which your token does not carry"
            ))
        })?;
        let safe = !value.is_empty()
            && value
                .chars()
                .all(|character| character.is_alphanumeric() || " -_.'".contains(character));
        if !safe {
            refuse(context, format!("row filter cannot use claim `{name}`"));
            return Err(Problem::forbidden(format!(
                "your `{name}` claim cannot be used to filter this dataset"
            )));
        }
        text.push_str(&value);
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    let everything = vec![true; schema.fields.len()];
    match parse_filters(&pairs, schema, &everything) {
        Ok(Some(filter)) => Ok(filter),
        Ok(None) | Err(_) => Err(misconfigured_view(context, template)),
    }
}

fn misconfigured_view(context: &RequestContext, template: &str) -> Problem {
    tracing::error!(%template, "a view's row filter does not parse");
    refuse(context, "the view's row filter is misconfigured".to_owned());
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Forbidden",
        "the view granted on this dataset is misconfigured; access is refused",
    )
}

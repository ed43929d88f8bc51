//! Data access over HTTP: the policy decides ([`PolicyEngine::grant`]); this
//! module records the audit facts of the request (dataset, action, purpose,
//! decision, rule, view) and turns a [`Refusal`] into a problem document.

use axum::http::{HeaderMap, StatusCode};

use crate::catalog::DatasetEntry;
use crate::domain::client_text::{TextDefect, header_text};
use crate::domain::text;
use crate::http::client_text::invalid_header;
use crate::http::context::RequestContext;
use crate::http::problem::Problem;
use crate::policy::{Action, Grant, PolicyEngine, Refusal, is_closed};

/// Decides a data access and resolves its view. `action` is `Read` for JSON
/// pages and `Export` for file formats; an aggregate grant is the fallback.
pub fn authorize(
    policy: &PolicyEngine,
    context: &RequestContext,
    entry: &DatasetEntry,
    action: Action,
    headers: &HeaderMap,
) -> Result<Grant, Problem> {
    let _span = tracing::debug_span!(
        "policy",
        request_id = %context.request_id,
        action = action.as_str()
    )
    .entered();
    let declared = purpose(headers);
    context.note(|record| {
        record.dataset = Some(entry.id().to_owned());
        record.action = Some(action.into());
        record.closed_data = is_closed(entry);
        record.access = Some(entry.definition.access);
        record.purpose = match &declared {
            Ok(purpose) => purpose.clone(),
            Err(_) => headers
                .get(PURPOSE)
                .map(|value| text::from_bytes(value.as_bytes(), 500)),
        };
    });
    let grant = policy
        .grant(&context.caller, entry, action)
        .map_err(|refusal| deny(context, refusal))?;
    context.note(|record| {
        record.decision = Some(true);
        record.rule = Some(grant.rule.clone());
        record.view = grant.view.clone();
    });
    let declared = declared.map_err(|defect| {
        refuse(context, "X-Purpose header unreadable".to_owned());
        invalid_header("X-Purpose", &defect)
    })?;
    grant
        .admit_purpose(entry, declared.as_deref())
        .map_err(|refusal| deny(context, refusal))?;
    if entry.version == 0 {
        // A register entry whose data is not published yet: allowed, but
        // there is nothing to read (no table to query).
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-data-yet",
            "No data yet",
            format!(
                "dataset `{}` is in the register but no data has been published yet",
                entry.id()
            ),
        ));
    }
    Ok(grant)
}

/// Records `refusal` as the request's decision and answers it.
pub fn deny(context: &RequestContext, refusal: Refusal) -> Problem {
    context.note(|record| {
        record.decision = Some(false);
        record.rule = Some(refusal.rule());
        if let Some(view) = refusal.view() {
            record.view = Some(view.to_owned());
        }
    });
    refusal_problem(&refusal)
}

/// The problem document of a refusal.
pub fn refusal_problem(refusal: &Refusal) -> Problem {
    match refusal {
        Refusal::Hidden { dataset, .. } => Problem::dataset_not_found(dataset),
        Refusal::NotGranted {
            anonymous: true, ..
        } => Problem::authentication_required(refusal.detail()),
        Refusal::PurposeRequired { .. } => {
            Problem::bad_request("purpose-required", "Purpose required", refusal.detail())
                .with_hint("X-Purpose: instruction du dossier 2024-118")
        }
        Refusal::RowFilterMisconfigured { .. } => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            refusal.detail(),
        ),
        _ => Problem::forbidden(refusal.detail()),
    }
}

/// Records a refusal decided outside the policy (an unreadable header, …),
/// with the reason of the check that refused.
pub fn refuse(context: &RequestContext, rule: String) {
    context.note(|record| {
        record.decision = Some(false);
        record.rule = Some(rule);
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

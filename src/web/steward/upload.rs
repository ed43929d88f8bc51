//! A new version of a dataset's rows, for a steward whose roles hold
//! `publish` on it, in two steps:
//!
//! 1. `GET /datasets/{id}/upload` shows the form; `POST
//!    /datasets/{id}/upload/check` (multipart, on the upload router: the
//!    publishing body limit, no request timeout) streams the file to a
//!    temporary file and runs the publishing API's dry run on it
//!    (`check_and_publish` with `dry_run`). The report is shown: valid and
//!    refused rows, the first errors with line, column, value and reason. A
//!    clean file is kept (`pending`) under a random token bound to the session.
//! 2. `POST /datasets/{id}/upload/publish` ("Publier") sends that token and
//!    the ETag the dry run was made against; the very file checked is
//!    published through the same service. When the definition changed since
//!    the dry run, nothing is published: the kept file is checked again
//!    against the current definition and the new report shown (409).
//!
//! The form's CSRF token is checked before the file is read.

use askama::Template;
use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use super::Uploads;
use super::edit::{Opened, open};
use super::pending::PendingUpload;
use super::{StewardTexts, csrf_ok, problem_page, refuse_csrf, texts_of};
use crate::catalog::definition::DatasetDefinition;
use crate::catalog::publish::{UploadOptions, UploadReport};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::Problem;
use crate::http::publishing::upload::{
    Upload, UploadAnswer, check_and_publish, receive, upload_running,
};
use crate::http::publishing::{check_etag, etag, reason_text};
use crate::http::state::AppState;
use crate::policy::Action;
use crate::store::datasets::StoredDataset;
use crate::web::display;
use crate::web::locale::Texts;
use crate::web::page::{Layout, Site, respond};
use crate::web::session;

/// One row error of the report, as shown.
pub struct ErrorLine {
    pub line: String,
    pub column: String,
    pub value: String,
    pub reason: String,
}

/// The dry run's report, as shown.
pub struct ReportView {
    pub file_name: String,
    pub rows: String,
    pub bad_rows: String,
    pub bytes: String,
    pub file_error: Option<String>,
    pub errors: Vec<ErrorLine>,
    pub clean: bool,
}

#[derive(Template)]
#[template(path = "steward_upload.html", config = "src/web/askama.toml")]
struct UploadPage {
    layout: Layout,
    t: &'static Texts,
    s: &'static StewardTexts,
    dataset_href: String,
    dataset_title: String,
    check_action: String,
    publish_action: String,
    csrf: String,
    etag: String,
    delimiter: String,
    encoding: String,
    reason: String,
    file_error: bool,
    notice: Option<String>,
    notice_is_error: bool,
    report: Option<ReportView>,
    /// The token of the checked file: the "Publier" form is shown.
    token: Option<String>,
}

/// What a render of the page holds besides the dataset.
#[derive(Default)]
struct Shown {
    fields: UploadFields,
    file_error: bool,
    notice: Option<String>,
    notice_is_error: bool,
    report: Option<ReportView>,
    token: Option<String>,
}

/// The text fields of the upload form.
#[derive(Debug, Clone, Default)]
struct UploadFields {
    csrf: String,
    etag: String,
    delimiter: String,
    encoding: String,
    reason: String,
}

fn render(
    site: Site,
    pairs: &[(String, String)],
    stored: &StoredDataset,
    definition: &DatasetDefinition,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let s = texts_of(site.lang);
    let id = &stored.id;
    let path = format!("/datasets/{id}/upload");
    let csrf = session::current()
        .account
        .map(|account| account.csrf)
        .unwrap_or(shown.fields.csrf);
    let page = UploadPage {
        layout: Layout::new(site, format!("{} · {id}", s.upload_title), &path, pairs),
        t: site.texts(),
        s,
        dataset_href: site.href(&format!("/datasets/{id}"), []),
        dataset_title: definition.title.clone(),
        check_action: site.href(&format!("{path}/check"), []),
        publish_action: site.href(&format!("{path}/publish"), []),
        csrf,
        etag: etag(stored),
        delimiter: shown.fields.delimiter,
        encoding: shown.fields.encoding,
        reason: shown.fields.reason,
        file_error: shown.file_error,
        notice: shown.notice,
        notice_is_error: shown.notice_is_error,
        report: shown.report,
        token: shown.token,
    };
    respond(status, &page)
}

fn report_view(
    report: &UploadReport,
    answer: &UploadAnswer,
    file_name: Option<&str>,
    site: Site,
) -> ReportView {
    let lang = site.lang;
    let count = |value: u64| display::integer(i64::try_from(value).unwrap_or(i64::MAX), lang);
    ReportView {
        file_name: file_name.unwrap_or_default().to_owned(),
        rows: count(report.valid_rows),
        bad_rows: count(report.bad_rows),
        bytes: count(answer.bytes),
        file_error: report.file_error.clone(),
        errors: report
            .errors
            .iter()
            .map(|error| ErrorLine {
                line: count(error.line),
                column: error.column.clone().unwrap_or_default(),
                value: error.value.clone().unwrap_or_default(),
                reason: error.reason.clone(),
            })
            .collect(),
        clean: report.is_clean(),
    }
}

/// `GET /datasets/{id}/upload`.
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
        (Action::Publish, "upload"),
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
    render(
        site,
        &pairs,
        &stored,
        &definition,
        Shown::default(),
        StatusCode::OK,
    )
}

/// The format a file's name says (else the definition's).
fn format_of_name(name: Option<&str>) -> Option<String> {
    let extension = name?.rsplit_once('.')?.1.to_ascii_lowercase();
    match extension.as_str() {
        "csv" | "txt" => Some("csv".to_owned()),
        "geojson" | "json" => Some("geojson".to_owned()),
        _ => None,
    }
}

fn chosen(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn multipart_problem(error: &MultipartError) -> Problem {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            "Upload too large",
            "the file is larger than the gateway accepts (`[publishing] max_upload_bytes`)",
        )
    } else {
        Problem::bad_request(
            "upload-interrupted",
            "Upload interrupted",
            format!("the form could not be read to its end ({error}); nothing was published"),
        )
    }
}

/// `POST /datasets/{id}/upload/check`: the dry run.
pub async fn check(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Extension(Uploads { locks, pending }): Extension<Uploads>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let opened = open(
        &state,
        &context,
        &id,
        raw_query.as_deref(),
        &headers,
        (Action::Publish, "upload"),
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
    let Some(_slot) = locks.acquire(&id) else {
        return problem_page(site, &upload_running(&id), &path);
    };
    let mut fields = UploadFields::default();
    let mut file = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return problem_page(site, &multipart_problem(&error), &path),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            // Nothing of the file is read for a form from elsewhere.
            if !csrf_ok(&headers, &fields.csrf) {
                return refuse_csrf(&context, site, &path);
            }
            let file_name = field.file_name().and_then(chosen);
            match receive(field, multipart_problem).await {
                Ok(received) => file = Some((received, file_name)),
                Err(problem) => return problem_page(site, &problem, &path),
            }
            continue;
        }
        let text = match field.text().await {
            Ok(text) => text,
            Err(error) => return problem_page(site, &multipart_problem(&error), &path),
        };
        match name.as_str() {
            "csrf" => fields.csrf = text,
            "etag" => fields.etag = text,
            "delimiter" => fields.delimiter = text,
            "encoding" => fields.encoding = text,
            "reason" => fields.reason = text,
            _ => {}
        }
    }
    if !csrf_ok(&headers, &fields.csrf) {
        return refuse_csrf(&context, site, &path);
    }
    let Some((received, file_name)) =
        file.filter(|(received, name)| received.bytes > 0 || name.is_some())
    else {
        let shown = Shown {
            fields,
            file_error: true,
            ..Shown::default()
        };
        return render(
            site,
            &pairs,
            &stored,
            &definition,
            shown,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let options = UploadOptions {
        format: format_of_name(file_name.as_deref()),
        delimiter: chosen(&fields.delimiter),
        encoding: chosen(&fields.encoding),
    };
    let reason = reason_text(&fields.reason);
    let upload = Upload {
        path: received.file.path(),
        bytes: received.bytes,
        sha256: &received.sha256,
        file_name: file_name.as_deref(),
        options: options.clone(),
        dry_run: true,
    };
    let answer = match check_and_publish(
        &state,
        &context,
        &stored,
        &definition,
        upload,
        reason.clone(),
    )
    .await
    {
        Ok(answer) => answer,
        Err(problem) => return problem_page(site, &problem, &path),
    };
    let s = texts_of(site.lang);
    let report = report_view(&answer.report, &answer, file_name.as_deref(), site);
    if !answer.report.is_clean() {
        let shown = Shown {
            fields,
            notice: Some(s.not_clean.to_owned()),
            notice_is_error: true,
            report: Some(report),
            ..Shown::default()
        };
        return render(
            site,
            &pairs,
            &stored,
            &definition,
            shown,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let session = context.caller.token_id.clone().unwrap_or_default();
    let token = pending.keep(PendingUpload::new(
        session,
        id.clone(),
        received,
        file_name,
        options,
        reason,
    ));
    let shown = Shown {
        fields,
        notice: Some(s.clean.to_owned()),
        report: Some(report),
        token: Some(token),
        ..Shown::default()
    };
    render(site, &pairs, &stored, &definition, shown, StatusCode::OK)
}

/// The "Publier" form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishForm {
    pub csrf: String,
    pub token: String,
    pub etag: String,
}

/// `POST /datasets/{id}/upload/publish`: publishes the file a dry run checked.
pub async fn publish(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Extension(Uploads { locks, pending }): Extension<Uploads>,
    DatasetId(id): DatasetId,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    Form(form): Form<PublishForm>,
) -> Response {
    let opened = open(
        &state,
        &context,
        &id,
        raw_query.as_deref(),
        &headers,
        (Action::Publish, "upload"),
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
    let s = texts_of(site.lang);
    let session = context.caller.token_id.clone().unwrap_or_default();
    let Some(kept) = pending.take(&form.token, &session, &id) else {
        context
            .note(|record| record.rule = Some("dry run expired or not this session's".to_owned()));
        let shown = Shown {
            notice: Some(s.expired.to_owned()),
            notice_is_error: true,
            ..Shown::default()
        };
        return render(site, &pairs, &stored, &definition, shown, StatusCode::GONE);
    };
    let Some(_slot) = locks.acquire(&id) else {
        pending.put(form.token.clone(), kept);
        return problem_page(site, &upload_running(&id), &path);
    };
    let fields = UploadFields {
        csrf: form.csrf.clone(),
        reason: kept.reason.clone().unwrap_or_default(),
        ..UploadFields::default()
    };
    // The definition changed since the dry run: check the kept file again.
    let stale = check_etag(Some(&form.etag), &stored).is_err();
    let upload = Upload {
        path: kept.file.path(),
        bytes: kept.bytes,
        sha256: &kept.sha256,
        file_name: kept.file_name.as_deref(),
        options: kept.options.clone(),
        dry_run: stale,
    };
    let answer = match check_and_publish(
        &state,
        &context,
        &stored,
        &definition,
        upload,
        kept.reason.clone(),
    )
    .await
    {
        Ok(answer) => answer,
        Err(problem) => {
            pending.put(form.token.clone(), kept);
            return problem_page(site, &problem, &path);
        }
    };
    let report = report_view(&answer.report, &answer, kept.file_name.as_deref(), site);
    if stale {
        let clean = answer.report.is_clean();
        let token = clean.then(|| {
            pending.put(form.token.clone(), kept);
            form.token.clone()
        });
        let shown = Shown {
            fields,
            notice: Some(format!(
                "{} {}",
                s.upload_conflict,
                if clean { s.clean } else { s.not_clean }
            )),
            notice_is_error: true,
            report: Some(report),
            token,
            ..Shown::default()
        };
        return render(
            site,
            &pairs,
            &stored,
            &definition,
            shown,
            StatusCode::CONFLICT,
        );
    }
    match answer.version {
        Some(version) => {
            let shown = Shown {
                fields: UploadFields::default(),
                notice: Some(format!(
                    "{}{}{} {version} ({} {})",
                    s.published,
                    site.texts().colon,
                    "version",
                    report.rows,
                    s.rows.to_lowercase()
                )),
                report: Some(report),
                ..Shown::default()
            };
            // The definition is unchanged; the page shows the new state.
            let stored = crate::http::publishing::stored_or_problem(&state, &id)
                .await
                .unwrap_or(stored);
            render(site, &pairs, &stored, &definition, shown, StatusCode::OK)
        }
        None => {
            let shown = Shown {
                fields,
                notice: Some(s.not_clean.to_owned()),
                notice_is_error: true,
                report: Some(report),
                ..Shown::default()
            };
            render(
                site,
                &pairs,
                &stored,
                &definition,
                shown,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file's extension says its format; anything else is the definition's call.
    #[test]
    fn reads_the_format_from_the_name() {
        assert_eq!(
            format_of_name(Some("comptages.CSV")).as_deref(),
            Some("csv")
        );
        assert_eq!(
            format_of_name(Some("points.geojson")).as_deref(),
            Some("geojson")
        );
        assert_eq!(format_of_name(Some("export")), None);
        assert_eq!(format_of_name(None), None);
    }
}

//! The stewards' forms: a dataset's metadata (`edit`: `/datasets/{id}/edit`,
//! `manage`, and `classify` for the classification fields) and a new
//! version of its rows (`upload`: a dry run on `/datasets/{id}/upload/check`
//! whose report is shown, then `/datasets/{id}/upload/publish` publishes the
//! very file checked, kept on the server under a random token bound to the
//! session (`pending`), never named by the browser).
//!
//! Nothing here decides or writes on its own: every decision, check and
//! write is the publishing API's (`http::publishing`: `authorize`,
//! `change_definition` with its `If-Match` check, `check_and_publish`), so a
//! form leaves the same audit event as the API call (action, decision,
//! changed fields with their old and new values, the reason given). Forms
//! carry the session's CSRF token (as `/audit/verify`); the definition's
//! ETag travels in a hidden field, and a form older than the definition is
//! answered with a conflict that keeps what was typed.

pub mod edit;
pub mod pending;
pub mod upload;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::locale::Lang;
use super::page::{Site, error_page, not_found};
use super::session::{self, SESSION_COOKIE};
use crate::auth::Caller;
use crate::catalog::DatasetEntry;
use crate::http::context::RequestContext;
use crate::http::problem::Problem;
use crate::http::state::AppState;
use crate::policy::{Action, DatasetRef};

/// What the upload pages share with the API and between their requests:
/// one upload slot per dataset, and the files waiting for "Publier".
#[derive(Clone)]
pub struct Uploads {
    pub locks: crate::http::publishing::upload::UploadLocks,
    pub pending: pending::PendingUploads,
}

/// The forms' own texts.
pub struct StewardTexts {
    pub manage: &'static str,
    pub edit: &'static str,
    pub edit_title: &'static str,
    pub upload: &'static str,
    pub upload_title: &'static str,
    pub your_datasets: &'static str,
    pub your_datasets_none: &'static str,
    pub actions: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub theme: &'static str,
    pub keywords: &'static str,
    pub keywords_hint: &'static str,
    pub licence: &'static str,
    pub licence_hint: &'static str,
    pub frequency: &'static str,
    pub frequency_none: &'static str,
    pub organisation: &'static str,
    pub direction: &'static str,
    pub classification: &'static str,
    pub classification_hint: &'static str,
    pub access: &'static str,
    pub visibility: &'static str,
    pub visibility_public: &'static str,
    pub visibility_restricted: &'static str,
    pub personal_data: &'static str,
    pub reason: &'static str,
    pub reason_hint: &'static str,
    pub required: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub errors_title: &'static str,
    pub field_refused: &'static str,
    pub conflict: &'static str,
    pub current_value: &'static str,
    pub empty_value: &'static str,
    pub file: &'static str,
    pub file_hint: &'static str,
    pub file_missing: &'static str,
    pub delimiter: &'static str,
    pub encoding: &'static str,
    pub automatic: &'static str,
    pub tab: &'static str,
    pub check: &'static str,
    pub report: &'static str,
    pub report_file: &'static str,
    pub rows: &'static str,
    pub bad_rows: &'static str,
    pub size: &'static str,
    pub first_errors: &'static str,
    pub line: &'static str,
    pub column: &'static str,
    pub value: &'static str,
    pub problem: &'static str,
    pub file_unreadable: &'static str,
    pub clean: &'static str,
    pub not_clean: &'static str,
    pub publish: &'static str,
    pub publish_hint: &'static str,
    pub published: &'static str,
    pub upload_conflict: &'static str,
    pub expired: &'static str,
    pub running: &'static str,
    pub back_to_dataset: &'static str,
    pub sign_in_needed: &'static str,
    pub not_allowed: &'static str,
    pub retired: &'static str,
}

pub static FRENCH: StewardTexts = StewardTexts {
    manage: "Gestion du jeu de données",
    edit: "Modifier la fiche",
    edit_title: "Modifier la fiche",
    upload: "Déposer une nouvelle version",
    upload_title: "Nouvelle version",
    your_datasets: "Jeux de données que vous gérez",
    your_datasets_none: "Votre rôle ne vous permet de gérer aucun jeu de données.",
    actions: "Actions",
    title: "Titre",
    description: "Description",
    theme: "Thème",
    keywords: "Mots-clés",
    keywords_hint: "Séparés par des virgules.",
    licence: "Licence",
    licence_hint: "etalab-2.0, odbl-1.0, ou l'identifiant d'une licence restreinte (convention-partenaires-tcm).",
    frequency: "Fréquence de mise à jour",
    frequency_none: "(non renseignée)",
    organisation: "Collectivité",
    direction: "Direction",
    classification: "Classement",
    classification_hint: "Le niveau d'accès, la visibilité et les données personnelles sont décidés par le service des données.",
    access: "Niveau d'accès",
    visibility: "Visibilité de la fiche",
    visibility_public: "Publique",
    visibility_restricted: "Restreinte",
    personal_data: "Contient des données personnelles",
    reason: "Motif du changement",
    reason_hint: "Enregistré au journal des accès avec le changement.",
    required: "obligatoire",
    save: "Enregistrer",
    saved: "Modifications enregistrées.",
    errors_title: "Le formulaire contient des erreurs",
    field_refused: "Valeur refusée",
    conflict: "La fiche a été modifiée par quelqu'un d'autre depuis que vous l'avez ouverte. Rien n'a été enregistré : vos saisies sont conservées ci-dessous, avec les valeurs enregistrées entre-temps. Vérifiez-les puis enregistrez à nouveau.",
    current_value: "Valeur enregistrée entre-temps",
    empty_value: "(vide)",
    file: "Fichier CSV",
    file_hint: "La première ligne donne les noms des colonnes. Le fichier est d'abord vérifié (essai) : rien n'est publié avant votre confirmation.",
    file_missing: "Choisissez un fichier.",
    delimiter: "Séparateur",
    encoding: "Encodage",
    automatic: "détecté automatiquement",
    tab: "tabulation",
    check: "Vérifier le fichier (essai)",
    report: "Rapport de l'essai",
    report_file: "Fichier",
    rows: "Lignes valides",
    bad_rows: "Lignes refusées",
    size: "Taille (octets)",
    first_errors: "Premières erreurs",
    line: "Ligne",
    column: "Colonne",
    value: "Valeur",
    problem: "Motif",
    file_unreadable: "Le fichier ne peut pas être lu",
    clean: "Toutes les lignes sont conformes au schéma : le fichier peut être publié.",
    not_clean: "Le fichier ne peut pas être publié : corrigez-le et déposez-le à nouveau.",
    publish: "Publier",
    publish_hint: "Publie le fichier vérifié ci-dessus comme nouvelle version ; la version précédente reste restaurable.",
    published: "Nouvelle version publiée",
    upload_conflict: "La fiche du jeu de données a changé depuis l'essai. Rien n'a été publié : le fichier a été vérifié à nouveau avec la fiche actuelle, voici le nouveau rapport.",
    expired: "Cet essai a expiré ou n'est pas le vôtre : déposez le fichier à nouveau.",
    running: "Un autre dépôt de ce jeu de données est en cours : réessayez dans un moment.",
    back_to_dataset: "Retour à la fiche du jeu de données",
    sign_in_needed: "Connectez-vous avec un compte de gestionnaire de données pour gérer ce jeu de données.",
    not_allowed: "Votre rôle ne permet pas de gérer ce jeu de données.",
    retired: "Ce jeu de données a été retiré.",
};

pub static ENGLISH: StewardTexts = StewardTexts {
    manage: "Managing the dataset",
    edit: "Edit the metadata",
    edit_title: "Edit the metadata",
    upload: "Upload a new version",
    upload_title: "New version",
    your_datasets: "Datasets you manage",
    your_datasets_none: "Your role lets you manage no dataset.",
    actions: "Actions",
    title: "Title",
    description: "Description",
    theme: "Theme",
    keywords: "Keywords",
    keywords_hint: "Separated by commas.",
    licence: "Licence",
    licence_hint: "etalab-2.0, odbl-1.0, or the id of a restricted licence (convention-partenaires-tcm).",
    frequency: "Update frequency",
    frequency_none: "(not recorded)",
    organisation: "Organisation",
    direction: "Direction",
    classification: "Classification",
    classification_hint: "The access level, visibility and personal data are decided by the data office.",
    access: "Access level",
    visibility: "Visibility of the entry",
    visibility_public: "Public",
    visibility_restricted: "Restricted",
    personal_data: "Holds personal data",
    reason: "Reason for the change",
    reason_hint: "Recorded in the access log with the change.",
    required: "required",
    save: "Save",
    saved: "Changes saved.",
    errors_title: "The form has errors",
    field_refused: "Value refused",
    conflict: "Someone else changed this entry since you opened it. Nothing was saved: what you typed is kept below, with the values saved meanwhile. Check them and save again.",
    current_value: "Value saved meanwhile",
    empty_value: "(empty)",
    file: "CSV file",
    file_hint: "The first line names the columns. The file is checked first (a dry run): nothing is published before you confirm.",
    file_missing: "Choose a file.",
    delimiter: "Separator",
    encoding: "Encoding",
    automatic: "detected automatically",
    tab: "tab",
    check: "Check the file (dry run)",
    report: "Dry run report",
    report_file: "File",
    rows: "Valid rows",
    bad_rows: "Refused rows",
    size: "Size (bytes)",
    first_errors: "First errors",
    line: "Line",
    column: "Column",
    value: "Value",
    problem: "Reason",
    file_unreadable: "The file cannot be read",
    clean: "Every row fits the schema: the file can be published.",
    not_clean: "The file cannot be published: correct it and upload it again.",
    publish: "Publish",
    publish_hint: "Publishes the file checked above as a new version; the previous version can still be restored.",
    published: "New version published",
    upload_conflict: "The dataset's entry changed since the dry run. Nothing was published: the file was checked again against the current entry, here is the new report.",
    expired: "This dry run has expired or is not yours: upload the file again.",
    running: "Another upload of this dataset is running: try again in a moment.",
    back_to_dataset: "Back to the dataset's page",
    sign_in_needed: "Sign in with a data steward's account to manage this dataset.",
    not_allowed: "Your role does not allow managing this dataset.",
    retired: "This dataset was retired.",
};

pub fn texts_of(lang: Lang) -> &'static StewardTexts {
    match lang {
        Lang::Fr => &FRENCH,
        Lang::En => &ENGLISH,
    }
}

/// The stewards' links of a dataset: to its forms, each only for a caller
/// whose roles hold the action (the policy decides; nothing is audited for
/// showing a link, the form's own request is).
#[derive(Debug, Clone, Default)]
pub struct StewardLinks {
    pub edit: Option<String>,
    pub upload: Option<String>,
}

impl StewardLinks {
    pub fn is_empty(&self) -> bool {
        self.edit.is_none() && self.upload.is_none()
    }
}

/// The links `caller` gets for `entry` (none for an anonymous visitor).
pub fn links(state: &AppState, caller: &Caller, entry: &DatasetEntry, site: Site) -> StewardLinks {
    if caller.is_anonymous() {
        return StewardLinks::default();
    }
    let definition = &entry.definition;
    let dataset = DatasetRef {
        id: entry.id(),
        access: definition.access,
        metadata_visibility: definition.metadata_visibility,
    };
    let may = |action| state.policy.decide(&caller.roles, &dataset, action).allowed;
    let base = format!("/datasets/{}", entry.id());
    StewardLinks {
        edit: may(Action::Manage).then(|| site.href(&format!("{base}/edit"), [])),
        upload: may(Action::Publish).then(|| site.href(&format!("{base}/upload"), [])),
    }
}

/// Whether `sent` is the CSRF token of the request's session.
pub fn csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    session::cookie(headers, SESSION_COOKIE).is_some_and(|id| session::csrf_matches(id, sent))
}

/// 403 for a form without the session's CSRF token, noted in the audit event.
pub fn refuse_csrf(context: &RequestContext, site: Site, path: &str) -> Response {
    context.note(|record| {
        record.decision = Some(false);
        record.rule = Some("form refused: bad_csrf".to_owned());
    });
    let texts = site.texts();
    error_page(
        site,
        StatusCode::FORBIDDEN,
        texts.error_forbidden,
        texts.error_csrf,
        path,
        &[],
    )
}

/// A refusal or failure of the publishing service, as a page with the
/// same status (the audit event was noted by the service).
pub fn problem_page(site: Site, problem: &Problem, path: &str) -> Response {
    let texts = site.texts();
    let steward = texts_of(site.lang);
    let (title, message) = match problem.status {
        StatusCode::NOT_FOUND => return not_found(site, path),
        StatusCode::UNAUTHORIZED => (texts.error_forbidden, steward.sign_in_needed),
        StatusCode::FORBIDDEN => (texts.error_forbidden, steward.not_allowed),
        StatusCode::GONE => (texts.error_not_found, steward.retired),
        StatusCode::CONFLICT => (texts.error_forbidden, steward.running),
        status if status.is_server_error() => {
            (texts.error_unavailable, texts.error_unavailable_detail)
        }
        _ => (texts.error_bad_request, problem.detail.as_str()),
    };
    let mut response = error_page(site, problem.status, title, message, path, &[]);
    response
        .extensions_mut()
        .insert(crate::http::problem::ProblemKind(problem.slug));
    response
}

/// Form text as stored: trimmed, line ends as `\n` (browsers send `\r\n`).
pub fn form_text(text: &str) -> String {
    text.trim().replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text areas come back with `\r\n` line ends: stored as typed, with `\n`.
    #[test]
    fn normalises_form_text() {
        assert_eq!(form_text("  Ligne 1\r\nLigne 2 \r\n"), "Ligne 1\nLigne 2");
        assert_eq!(form_text(""), "");
    }
}

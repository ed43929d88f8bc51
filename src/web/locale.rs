//! The page's language: French unless the visitor asks for English, by
//! `?lang=en` (kept in every link of the page) or by `Accept-Language`; and
//! every fixed text of the pages in both languages, checked at compile time
//! (a text missing in one language does not build).

use axum::http::{HeaderMap, header};

use crate::catalog::definition::AccessLevel;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language, for the switch in the header.
    pub fn other(self) -> Lang {
        match self {
            Lang::Fr => Lang::En,
            Lang::En => Lang::Fr,
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Fr => &FRENCH,
            Lang::En => &ENGLISH,
        }
    }

    /// The language `Accept-Language` prefers among ours (highest weight,
    /// first listed on a tie); French when it names neither.
    pub fn negotiate(headers: &HeaderMap) -> Lang {
        let Some(value) = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
        else {
            return Lang::Fr;
        };
        let mut best: Option<(Lang, f32)> = None;
        for item in value.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|part| part.trim().strip_prefix("q="))
                .find_map(|weight| weight.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::from_code(primary) else {
                continue;
            };
            if weight > 0.0 && best.is_none_or(|(_, best_weight)| weight > best_weight) {
                best = Some((lang, weight));
            }
        }
        best.map_or(Lang::Fr, |(lang, _)| lang)
    }

    /// The label of an access level.
    pub fn access_label(self, access: AccessLevel) -> &'static str {
        let texts = self.texts();
        match access {
            AccessLevel::Open => texts.access_open,
            AccessLevel::Partners => texts.access_partners,
            AccessLevel::Internal => texts.access_internal,
            AccessLevel::Confidential => texts.access_confidential,
            AccessLevel::Undecided => texts.access_undecided,
        }
    }

    /// What reading a dataset of this level requires, and whom to ask.
    pub fn access_requirement(self, access: AccessLevel, publisher: &str) -> String {
        match (self, access) {
            (_, AccessLevel::Open) => String::new(),
            (Lang::Fr, AccessLevel::Partners) => format!(
                "Réservé aux partenaires sous convention : un compte client partenaire est nécessaire. Demandez une convention à {publisher}."
            ),
            (Lang::En, AccessLevel::Partners) => format!(
                "Reserved to partners under agreement: a partner client account is required. Ask {publisher} for an agreement."
            ),
            (Lang::Fr, AccessLevel::Internal) => format!(
                "Réservé aux agents de {publisher} : connectez-vous avec votre compte professionnel."
            ),
            (Lang::En, AccessLevel::Internal) => {
                format!("Reserved to staff of {publisher}: sign in with your work account.")
            }
            (Lang::Fr, AccessLevel::Confidential) => format!(
                "Données confidentielles : seules les personnes habilitées y accèdent, en déclarant la finalité de chaque lecture. Adressez votre demande d'habilitation à {publisher}."
            ),
            (Lang::En, AccessLevel::Confidential) => format!(
                "Confidential data: only authorised people may read it, declaring the purpose of each read. Ask {publisher} for an authorisation."
            ),
            (Lang::Fr, AccessLevel::Undecided) => format!(
                "Le niveau d'accès n'est pas encore décidé : rien n'est diffusé tant que {publisher} ne l'a pas fixé."
            ),
            (Lang::En, AccessLevel::Undecided) => format!(
                "The access level is not decided yet: nothing is served until {publisher} sets it."
            ),
        }
    }

    /// A DCAT update frequency in words (unknown ones as written).
    pub fn frequency_label(self, frequency: &str) -> String {
        let label = match (self, frequency) {
            (Lang::Fr, "continuous") => "en continu",
            (Lang::Fr, "daily") => "quotidienne",
            (Lang::Fr, "weekly") => "hebdomadaire",
            (Lang::Fr, "monthly") => "mensuelle",
            (Lang::Fr, "quarterly") => "trimestrielle",
            (Lang::Fr, "annual") => "annuelle",
            (Lang::Fr, "irregular") => "irrégulière",
            (Lang::En, "continuous") => "continuous",
            (Lang::En, "daily") => "daily",
            (Lang::En, "weekly") => "weekly",
            (Lang::En, "monthly") => "monthly",
            (Lang::En, "quarterly") => "quarterly",
            (Lang::En, "annual") => "annual",
            (Lang::En, "irregular") => "irregular",
            _ => frequency,
        };
        label.to_owned()
    }

    /// "1 dataset" / "12 datasets".
    pub fn dataset_count(self, count: usize) -> String {
        let number = super::display::integer(count as i64, self);
        match (self, count) {
            (Lang::Fr, 0 | 1) => format!("{number} jeu de données"),
            (Lang::Fr, _) => format!("{number} jeux de données"),
            (Lang::En, 1) => format!("{number} dataset"),
            (Lang::En, _) => format!("{number} datasets"),
        }
    }
}

/// Every fixed text of the pages.
#[derive(Debug)]
pub struct Texts {
    /// `" : "` in French, `": "` in English.
    pub colon: &'static str,
    pub skip_link: &'static str,
    pub site_tagline: &'static str,
    pub nav_label: &'static str,
    pub nav_catalogue: &'static str,
    pub nav_api: &'static str,
    pub switch_label: &'static str,
    pub footer: &'static str,
    pub home_title: &'static str,
    pub search_label: &'static str,
    pub search_button: &'static str,
    pub search_hint: &'static str,
    pub open_datasets: &'static str,
    pub themes: &'static str,
    pub latest: &'static str,
    pub catalogue_title: &'static str,
    pub filters: &'static str,
    pub results: &'static str,
    pub facet_theme: &'static str,
    pub facet_access: &'static str,
    pub facet_licence: &'static str,
    pub facet_publisher: &'static str,
    pub remove_filter: &'static str,
    pub no_result: &'static str,
    pub pagination: &'static str,
    pub previous: &'static str,
    pub next: &'static str,
    pub page: &'static str,
    pub of: &'static str,
    pub updated: &'static str,
    pub breadcrumb: &'static str,
    pub publisher: &'static str,
    pub theme: &'static str,
    pub licence: &'static str,
    pub frequency: &'static str,
    pub last_update: &'static str,
    pub records: &'static str,
    pub keywords: &'static str,
    pub late: &'static str,
    pub late_detail: &'static str,
    pub access: &'static str,
    pub access_open: &'static str,
    pub access_partners: &'static str,
    pub access_internal: &'static str,
    pub access_confidential: &'static str,
    pub access_undecided: &'static str,
    pub schema: &'static str,
    pub schema_caption: &'static str,
    pub column: &'static str,
    pub label: &'static str,
    pub column_type: &'static str,
    pub filterable: &'static str,
    pub preview: &'static str,
    pub preview_caption: &'static str,
    pub preview_empty: &'static str,
    pub preview_aggregates: &'static str,
    pub preview_purpose: &'static str,
    pub sort_ascending: &'static str,
    pub sort_descending: &'static str,
    pub filter_legend: &'static str,
    pub filter_column: &'static str,
    pub filter_operator: &'static str,
    pub filter_value: &'static str,
    pub filter_button: &'static str,
    pub active_filters: &'static str,
    pub operator_eq: &'static str,
    pub operator_neq: &'static str,
    pub operator_gt: &'static str,
    pub operator_gte: &'static str,
    pub operator_lt: &'static str,
    pub operator_lte: &'static str,
    pub operator_ilike: &'static str,
    pub downloads: &'static str,
    pub download_csv: &'static str,
    pub download_json: &'static str,
    pub download_geojson: &'static str,
    pub downloads_filtered: &'static str,
    pub api_title: &'static str,
    pub api_intro: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub error_not_found: &'static str,
    pub error_not_found_detail: &'static str,
    pub error_bad_request: &'static str,
    pub error_unavailable: &'static str,
    pub error_unavailable_detail: &'static str,
    pub back_to_catalogue: &'static str,
    pub nav_sign_in: &'static str,
    pub nav_audit: &'static str,
    pub nav_inventory: &'static str,
    pub map_title: &'static str,
    pub map_caption: &'static str,
    pub nav_sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub sign_in_failed: &'static str,
    pub sign_in_failed_detail: &'static str,
    pub error_forbidden: &'static str,
    pub error_csrf: &'static str,
}

pub static FRENCH: Texts = Texts {
    colon: "\u{a0}: ",
    skip_link: "Aller au contenu",
    site_tagline: "Données publiques et partagées",
    nav_label: "Menu principal",
    nav_catalogue: "Catalogue",
    nav_api: "Documentation de l'API",
    switch_label: "English",
    footer: "Passerelle : chaque lecture de données fermées est tracée.",
    home_title: "Trouver et réutiliser des données publiques",
    search_label: "Rechercher un jeu de données",
    search_button: "Rechercher",
    search_hint: "Par exemple : air, vélos, musées",
    open_datasets: "jeux de données ouverts, librement réutilisables",
    themes: "Thèmes",
    latest: "Mis à jour récemment",
    catalogue_title: "Catalogue des données",
    filters: "Filtres",
    results: "Résultats",
    facet_theme: "Thème",
    facet_access: "Niveau d'accès",
    facet_licence: "Licence",
    facet_publisher: "Producteur",
    remove_filter: "Retirer le filtre",
    no_result: "Aucun jeu de données ne correspond à cette recherche.",
    pagination: "Pagination",
    previous: "Page précédente",
    next: "Page suivante",
    page: "Page",
    of: "sur",
    updated: "Mis à jour le",
    breadcrumb: "Fil d'Ariane",
    publisher: "Producteur",
    theme: "Thème",
    licence: "Licence",
    frequency: "Fréquence de mise à jour",
    last_update: "Dernière mise à jour",
    records: "Nombre de lignes",
    keywords: "Mots-clés",
    late: "En retard",
    late_detail: "la dernière version est plus ancienne que la fréquence annoncée",
    access: "Accès",
    access_open: "Ouvert",
    access_partners: "Partenaires",
    access_internal: "Interne",
    access_confidential: "Confidentiel",
    access_undecided: "Non décidé",
    schema: "Schéma",
    schema_caption: "Colonnes que vous pouvez consulter",
    column: "Colonne",
    label: "Libellé",
    column_type: "Type",
    filterable: "Filtrable",
    preview: "Aperçu des données",
    preview_caption: "Lignes",
    preview_empty: "Aucune ligne ne correspond.",
    preview_aggregates: "Votre accès porte sur des agrégats seulement : interrogez l'API avec un `select` d'agrégats (par exemple `count()`).",
    preview_purpose: "Données personnelles : chaque lecture doit déclarer sa finalité (en-tête X-Purpose de l'API). L'aperçu n'est donc pas affiché.",
    sort_ascending: "trier par ordre croissant",
    sort_descending: "trier par ordre décroissant",
    filter_legend: "Ajouter un filtre",
    filter_column: "Colonne",
    filter_operator: "Condition",
    filter_value: "Valeur",
    filter_button: "Filtrer",
    active_filters: "Filtres actifs",
    operator_eq: "égal à",
    operator_neq: "différent de",
    operator_gt: "supérieur à",
    operator_gte: "supérieur ou égal à",
    operator_lt: "inférieur à",
    operator_lte: "inférieur ou égal à",
    operator_ilike: "contient (motif avec *)",
    downloads: "Téléchargements",
    download_csv: "CSV pour tableur (séparateur point-virgule)",
    download_json: "JSON",
    download_geojson: "GeoJSON",
    downloads_filtered: "Les fichiers suivent les filtres et le tri de l'aperçu.",
    api_title: "API",
    api_intro: "Les mêmes données par l'API, avec la syntaxe de PostgREST :",
    copy: "Copier",
    copied: "Copié",
    yes: "oui",
    no: "non",
    error_not_found: "Page introuvable",
    error_not_found_detail: "Ce jeu de données n'existe pas, ou vous ne pouvez pas le voir.",
    error_bad_request: "Requête invalide",
    error_unavailable: "Service momentanément indisponible",
    error_unavailable_detail: "Les données ne peuvent pas être lues pour l'instant : réessayez dans un moment.",
    back_to_catalogue: "Retour au catalogue",
    nav_sign_in: "Connexion agents",
    nav_audit: "Journal des accès",
    nav_inventory: "Inventaire",
    map_title: "Carte des lignes affichées",
    map_caption: "Position des lignes de l'aperçu ci-dessus (survolez un point pour son nom) ; les valeurs sont dans le tableau.",
    nav_sign_out: "Se déconnecter",
    signed_in_as: "Connecté en tant que",
    sign_in_failed: "Connexion impossible",
    sign_in_failed_detail: "La connexion n'a pas pu aboutir (expirée, déjà utilisée ou refusée). Recommencez depuis le lien de connexion.",
    error_forbidden: "Action refusée",
    error_csrf: "Ce formulaire a expiré ou ne vient pas de ce site : rechargez la page et recommencez.",
};

pub static ENGLISH: Texts = Texts {
    colon: ": ",
    skip_link: "Skip to content",
    site_tagline: "Open and shared data",
    nav_label: "Main menu",
    nav_catalogue: "Catalogue",
    nav_api: "API documentation",
    switch_label: "Français",
    footer: "Passerelle: every read of closed data is logged.",
    home_title: "Find and reuse public data",
    search_label: "Search for a dataset",
    search_button: "Search",
    search_hint: "For example: air, bikes, museums",
    open_datasets: "open datasets, free to reuse",
    themes: "Themes",
    latest: "Recently updated",
    catalogue_title: "Data catalogue",
    filters: "Filters",
    results: "Results",
    facet_theme: "Theme",
    facet_access: "Access level",
    facet_licence: "Licence",
    facet_publisher: "Publisher",
    remove_filter: "Remove filter",
    no_result: "No dataset matches this search.",
    pagination: "Pagination",
    previous: "Previous page",
    next: "Next page",
    page: "Page",
    of: "of",
    updated: "Updated on",
    breadcrumb: "Breadcrumb",
    publisher: "Publisher",
    theme: "Theme",
    licence: "Licence",
    frequency: "Update frequency",
    last_update: "Last update",
    records: "Number of rows",
    keywords: "Keywords",
    late: "Late",
    late_detail: "the last version is older than the announced frequency",
    access: "Access",
    access_open: "Open",
    access_partners: "Partners",
    access_internal: "Internal",
    access_confidential: "Confidential",
    access_undecided: "Undecided",
    schema: "Schema",
    schema_caption: "Columns you may see",
    column: "Column",
    label: "Label",
    column_type: "Type",
    filterable: "Filterable",
    preview: "Data preview",
    preview_caption: "Rows",
    preview_empty: "No row matches.",
    preview_aggregates: "Your access covers aggregates only: query the API with a `select` of aggregates (for example `count()`).",
    preview_purpose: "Personal data: each read must declare its purpose (the API's X-Purpose header), so no preview is shown.",
    sort_ascending: "sort ascending",
    sort_descending: "sort descending",
    filter_legend: "Add a filter",
    filter_column: "Column",
    filter_operator: "Condition",
    filter_value: "Value",
    filter_button: "Filter",
    active_filters: "Active filters",
    operator_eq: "equals",
    operator_neq: "differs from",
    operator_gt: "greater than",
    operator_gte: "greater than or equal to",
    operator_lt: "less than",
    operator_lte: "less than or equal to",
    operator_ilike: "matches (pattern with *)",
    downloads: "Downloads",
    download_csv: "CSV for spreadsheets (semicolon separator)",
    download_json: "JSON",
    download_geojson: "GeoJSON",
    downloads_filtered: "Files follow the preview's filters and order.",
    api_title: "API",
    api_intro: "The same data through the API, in PostgREST's syntax:",
    copy: "Copy",
    copied: "Copied",
    yes: "yes",
    no: "no",
    error_not_found: "Page not found",
    error_not_found_detail: "This dataset does not exist, or you may not see it.",
    error_bad_request: "Invalid request",
    error_unavailable: "Service temporarily unavailable",
    error_unavailable_detail: "The data cannot be read right now: try again in a moment.",
    back_to_catalogue: "Back to the catalogue",
    nav_sign_in: "Staff sign-in",
    nav_audit: "Access log",
    nav_inventory: "Inventory",
    map_title: "Map of the rows shown",
    map_caption: "Where the rows of the preview above are (hover a point for its name); the values are in the table.",
    nav_sign_out: "Sign out",
    signed_in_as: "Signed in as",
    sign_in_failed: "Sign-in failed",
    sign_in_failed_detail: "The sign-in could not be completed (expired, already used or refused). Start again from the sign-in link.",
    error_forbidden: "Action refused",
    error_csrf: "This form has expired or does not come from this site: reload the page and try again.",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, value.parse().unwrap());
        headers
    }

    /// French by default; English only when preferred over French.
    #[test]
    fn negotiates_the_language() {
        let cases = [
            ("", Lang::Fr),
            ("en", Lang::En),
            ("en-GB,en;q=0.9", Lang::En),
            ("fr-FR,fr;q=0.9,en;q=0.8", Lang::Fr),
            ("de,en;q=0.5", Lang::En),
            ("de", Lang::Fr),
            ("en;q=0.3,fr;q=0.7", Lang::Fr),
            ("en;q=0", Lang::Fr),
        ];
        for (value, expected) in cases {
            assert_eq!(Lang::negotiate(&accepting(value)), expected, "{value:?}");
        }
        assert_eq!(Lang::negotiate(&HeaderMap::new()), Lang::Fr);
    }

    /// Counts agree in number.
    #[test]
    fn counts_datasets() {
        assert_eq!(Lang::Fr.dataset_count(1), "1 jeu de données");
        assert_eq!(Lang::Fr.dataset_count(3), "3 jeux de données");
        assert_eq!(Lang::En.dataset_count(1), "1 dataset");
        assert_eq!(Lang::Fr.dataset_count(1234), "1\u{202F}234 jeux de données");
    }
}

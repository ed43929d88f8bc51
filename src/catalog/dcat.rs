//! The catalogue in DCAT-AP 2.1, as the national portal (data.gouv.fr) and
//! the regional ones harvest it: one `dcat:Catalog` page listing datasets,
//! paged with Hydra (`hydra:PartialCollectionView`, `next`, `totalItems`).
//!
//! Which datasets are listed, and whether a dataset's rows may be downloaded
//! without credentials, is decided by the caller of [`catalog_page`] through
//! the policy; this module only maps metadata to the DCAT-AP vocabulary:
//! EU data themes, EU frequencies, EU access rights (`PUBLIC` for open data,
//! `RESTRICTED` otherwise; `NON_PUBLIC` datasets are never listed).

use super::definition::AccessLevel;
use super::entry::DatasetEntry;
use super::register::fold_purpose;
use crate::format::rdf::{Graph, Term, expand};

const DATA_THEME: &str = "http://publications.europa.eu/resource/authority/data-theme/";
const FREQUENCY: &str = "http://publications.europa.eu/resource/authority/frequency/";
const ACCESS_RIGHT: &str = "http://publications.europa.eu/resource/authority/access-right/";
const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";
const MEDIA_TYPE: &str = "http://www.iana.org/assignments/media-types/";
const LANGUAGE_FRENCH: &str = "http://publications.europa.eu/resource/authority/language/FRA";

/// A dataset on the page, with what the policy says about its rows.
pub struct Listed<'a> {
    pub entry: &'a DatasetEntry,
    /// Anyone may download the rows (open data the policy serves anonymously).
    pub downloadable: bool,
}

/// Where the page is and what surrounds it.
pub struct Page {
    /// The gateway's public base URL, without a trailing `/`.
    pub base: String,
    /// 1-based.
    pub number: u64,
    pub size: u64,
    /// Every listed dataset, all pages.
    pub total: u64,
    /// `format=…` to keep in the page links, when the request gave one.
    pub format: Option<String>,
}

impl Page {
    fn url(&self, number: u64) -> String {
        let mut url = format!(
            "{}/api/v1/catalog/dcat?page={number}&page_size={}",
            self.base, self.size
        );
        if let Some(format) = &self.format {
            url.push_str("&format=");
            url.push_str(format);
        }
        url
    }

    fn last(&self) -> u64 {
        self.total.div_ceil(self.size).max(1)
    }
}

/// The EU data theme of a catalogue theme, when one fits.
pub fn data_theme(theme: &str) -> Option<&'static str> {
    let theme = fold_purpose(theme);
    let rules: &[(&[&str], &str)] = &[
        (
            &[
                "mobilit",
                "transport",
                "circulation",
                "stationnement",
                "velo",
            ],
            "TRAN",
        ),
        (&["energie", "climat"], "ENER"),
        (
            &[
                "eau",
                "assainissement",
                "environnement",
                "dechet",
                "qualite de l air",
            ],
            "ENVI",
        ),
        (
            &[
                "urbanisme",
                "habitat",
                "espace public",
                "amenagement",
                "patrimoine",
            ],
            "REGI",
        ),
        (&["securite", "justice"], "JUST"),
        (&["economi", "emploi", "commerce"], "ECON"),
        (
            &["education", "enfance", "enseignement", "culture", "sport"],
            "EDUC",
        ),
        (&["sante"], "HEAL"),
        (&["social", "societe", "population"], "SOCI"),
        (
            &[
                "administration",
                "ressources humaines",
                "gouvernance",
                "finance",
            ],
            "GOVE",
        ),
        (&["agricult", "aliment"], "AGRI"),
        (&["science", "technolog", "numerique", "recherche"], "TECH"),
    ];
    rules
        .iter()
        .find(|(words, _)| words.iter().any(|word| theme.contains(word)))
        .map(|(_, code)| *code)
}

/// The EU frequency of a DCAT frequency name.
pub fn frequency(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "continuous" => "CONT",
        "hourly" => "HOURLY",
        "daily" => "DAILY",
        "weekly" => "WEEKLY",
        "biweekly" | "fortnightly" => "BIWEEKLY",
        "monthly" => "MONTHLY",
        "bimonthly" => "BIMONTHLY",
        "quarterly" => "QUARTERLY",
        "semiannual" | "semi_annual" | "biannual" => "ANNUAL_2",
        "annual" | "yearly" => "ANNUAL",
        "biennial" => "BIENNIAL",
        "triennial" => "TRIENNIAL",
        "irregular" => "IRREG",
        _ => return None,
    })
}

/// The licence IRI of a licence name; a named restricted licence gets an IRI
/// in the gateway's own namespace.
pub fn licence_iri(base: &str, licence: &str) -> String {
    match licence {
        "etalab-2.0" => "https://www.etalab.gouv.fr/licence-ouverte-open-licence".to_owned(),
        "odbl-1.0" => "http://opendatacommons.org/licenses/odbl/1.0/".to_owned(),
        other => format!("{base}/api/v1/catalog/dcat#licence-{}", slug(other)),
    }
}

fn slug(text: &str) -> String {
    super::register_csv::slug(text)
}

/// The graph of one catalogue page. `listed` is this page's datasets.
/// `publisher` names the catalogue's publisher.
pub fn catalog_page(listed: &[Listed<'_>], page: &Page, publisher: &str) -> Graph {
    let title = format!("Catalogue de données de {publisher}");
    let mut graph = Graph::default();
    let base = &page.base;
    let catalog = Term::iri(format!("{base}/api/v1/catalog/dcat"));
    graph.add_type(&catalog, "dcat:Catalog");
    graph.add(&catalog, "dct:title", Term::french(title.as_str()));
    graph.add(
        &catalog,
        "dct:description",
        Term::french(format!(
            "{title} : jeux de données dont les métadonnées sont publiques, servis par la passerelle (données ouvertes téléchargeables, données fermées décrites)."
        )),
    );
    let publisher = agent(&mut graph, base, publisher);
    graph.add(&catalog, "dct:publisher", publisher);
    graph.add(&catalog, "foaf:homepage", Term::iri(format!("{base}/")));
    graph.add(&catalog, "dct:language", Term::iri(LANGUAGE_FRENCH));
    graph.add(
        &catalog,
        "dcat:themeTaxonomy",
        Term::iri(DATA_THEME.trim_end_matches('/')),
    );
    let view = Term::iri(page.url(page.number));
    graph.add(&catalog, "hydra:view", view.clone());
    graph.add_type(&view, "hydra:PartialCollectionView");
    graph.add(
        &view,
        "hydra:totalItems",
        Term::typed(page.total.to_string(), &expand("xsd:integer")),
    );
    graph.add(
        &view,
        "hydra:itemsPerPage",
        Term::typed(page.size.to_string(), &expand("xsd:integer")),
    );
    graph.add(&view, "hydra:first", Term::iri(page.url(1)));
    graph.add(&view, "hydra:last", Term::iri(page.url(page.last())));
    if page.number > 1 {
        graph.add(
            &view,
            "hydra:previous",
            Term::iri(page.url(page.number - 1)),
        );
    }
    if page.number < page.last() {
        graph.add(&view, "hydra:next", Term::iri(page.url(page.number + 1)));
    }
    for item in listed {
        let dataset = dataset(&mut graph, base, item);
        graph.add(&catalog, "dcat:dataset", dataset);
    }
    graph
}

/// A `foaf:Agent` named `name`.
fn agent(graph: &mut Graph, base: &str, name: &str) -> Term {
    let node = Term::iri(format!("{base}/api/v1/catalog/dcat#agent-{}", slug(name)));
    graph.add_type(&node, "foaf:Agent");
    graph.add(&node, "foaf:name", Term::text(name));
    node
}

fn dataset(graph: &mut Graph, base: &str, item: &Listed<'_>) -> Term {
    let entry = item.entry;
    let definition = &entry.definition;
    let id = entry.id();
    let node = Term::iri(format!("{base}/api/v1/datasets/{id}"));
    graph.add_type(&node, "dcat:Dataset");
    graph.add(&node, "dct:identifier", Term::text(id));
    graph.add(&node, "dct:title", Term::french(definition.title.trim()));
    let description = match definition.description.trim() {
        "" => definition.title.trim(),
        text => text,
    };
    graph.add(&node, "dct:description", Term::french(description));
    for keyword in &definition.keywords {
        graph.add(&node, "dcat:keyword", Term::french(keyword.trim()));
    }
    if let Some(code) = data_theme(&definition.theme) {
        graph.add(
            &node,
            "dcat:theme",
            Term::iri(format!("{DATA_THEME}{code}")),
        );
    }
    let publisher = agent(graph, base, &definition.publisher);
    graph.add(&node, "dct:publisher", publisher);
    if let Some(organisation) = definition
        .organisation
        .as_deref()
        .filter(|name| !name.trim().is_empty())
    {
        let owner = agent(graph, base, organisation);
        graph.add(&node, "dct:rightsHolder", owner);
    }
    let contact = Term::iri(format!("{base}/api/v1/datasets/{id}#contact"));
    graph.add_type(&contact, "vcard:Organization");
    graph.add(
        &contact,
        "vcard:fn",
        Term::text(definition.publisher.as_str()),
    );
    graph.add(
        &contact,
        "vcard:hasURL",
        Term::iri(format!("{base}/datasets/{id}")),
    );
    graph.add(&node, "dcat:contactPoint", contact);
    graph.add(
        &node,
        "dcat:landingPage",
        Term::iri(format!("{base}/datasets/{id}")),
    );
    let licence = Term::iri(licence_iri(base, &definition.licence));
    graph.add_type(&licence, "dct:LicenseDocument");
    graph.add(
        &licence,
        "rdfs:label",
        Term::text(definition.licence.as_str()),
    );
    let open = definition.access == AccessLevel::Open && item.downloadable;
    let rights = if open { "PUBLIC" } else { "RESTRICTED" };
    graph.add(
        &node,
        "dct:accessRights",
        Term::iri(format!("{ACCESS_RIGHT}{rights}")),
    );
    if let Some(code) = definition.update_frequency.as_deref().and_then(frequency) {
        graph.add(
            &node,
            "dct:accrualPeriodicity",
            Term::iri(format!("{FREQUENCY}{code}")),
        );
    }
    if let Some(decided) = definition
        .review
        .as_ref()
        .and_then(|review| review.decided_at)
    {
        graph.add(
            &node,
            "dct:issued",
            Term::typed(decided.to_string(), &expand("xsd:date")),
        );
    }
    if !entry.last_updated.is_empty() {
        graph.add(
            &node,
            "dct:modified",
            Term::typed(entry.last_updated.as_str(), &expand("xsd:dateTime")),
        );
    }
    if open {
        let mut formats = vec![
            ("csv", "CSV", "text/csv"),
            ("json", "JSON", "application/json"),
        ];
        if entry.geometry.is_some() {
            formats.push(("geojson", "GEOJSON", "application/geo+json"));
        }
        for (name, file_type, media_type) in formats {
            let distribution =
                Term::iri(format!("{base}/api/v1/datasets/{id}#distribution-{name}"));
            let url = Term::iri(format!("{base}/api/v1/data/{id}?format={name}"));
            graph.add_type(&distribution, "dcat:Distribution");
            graph.add(
                &distribution,
                "dct:title",
                Term::french(format!("{} ({})", definition.title.trim(), file_type)),
            );
            graph.add(&distribution, "dcat:accessURL", url.clone());
            graph.add(&distribution, "dcat:downloadURL", url);
            graph.add(
                &distribution,
                "dcat:mediaType",
                Term::iri(format!("{MEDIA_TYPE}{media_type}")),
            );
            graph.add(
                &distribution,
                "dct:format",
                Term::iri(format!("{FILE_TYPE}{file_type}")),
            );
            graph.add(&distribution, "dct:license", licence.clone());
            graph.add(&node, "dcat:distribution", distribution);
        }
    } else {
        // Closed data: how to ask for access, never a file to download.
        let distribution = Term::iri(format!("{base}/api/v1/datasets/{id}#distribution-api"));
        graph.add_type(&distribution, "dcat:Distribution");
        graph.add(
            &distribution,
            "dct:title",
            Term::french("API à accès restreint"),
        );
        graph.add(
            &distribution,
            "dct:description",
            Term::french("Données à accès restreint : lecture par l'API pour les appelants autorisés (voir la documentation de l'API)."),
        );
        graph.add(
            &distribution,
            "dcat:accessURL",
            Term::iri(format!("{base}/docs")),
        );
        graph.add(&distribution, "dct:license", licence.clone());
        graph.add(
            &distribution,
            "dct:accessRights",
            Term::iri(format!("{ACCESS_RIGHT}RESTRICTED")),
        );
        graph.add(&node, "dcat:distribution", distribution);
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo themes map to EU data themes; frequencies to EU frequencies.
    #[test]
    fn vocabularies() {
        assert_eq!(data_theme("Mobilités"), Some("TRAN"));
        assert_eq!(data_theme("Energie & Climat / Dév. Durable"), Some("ENER"));
        assert_eq!(
            data_theme("Assainissement - Eau - Trame Hydraulique"),
            Some("ENVI")
        );
        assert_eq!(data_theme("Urbanisme-Habitat"), Some("REGI"));
        assert_eq!(data_theme("Sécurité"), Some("JUST"));
        assert_eq!(data_theme("Administration"), Some("GOVE"));
        assert_eq!(data_theme("Culture"), Some("EDUC"));
        assert_eq!(data_theme(""), None);
        assert_eq!(frequency("annual"), Some("ANNUAL"));
        assert_eq!(frequency("irregular"), Some("IRREG"));
        assert_eq!(frequency("sometimes"), None);
        assert_eq!(
            licence_iri("http://h", "convention ADEME"),
            "http://h/api/v1/catalog/dcat#licence-convention-ademe"
        );
    }
}

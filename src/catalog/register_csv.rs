//! The register as a spreadsheet: one line per dataset with every register
//! field, `;`-separated, for the inventory's `?format=csv` and for
//! `passerelle register import`.
//!
//! One table of columns ([`COLUMNS`]) gives each field its English key and
//! its French header; the import accepts either, plus the headers of the
//! authority's original audit ("Collectivités", "Thématiques", "Source des
//! données", …), and the French values (`Oui`, `Non`, `À définir`, `Interne`,
//! `Externe`, `Interne/Externe`). A line is checked like a definition file
//! (the register's consistency rules included); a bad line is reported with
//! its number and reason and the others still load.

use chrono::NaiveDate;

use super::definition::{AccessLevel, DatasetDefinition, MetadataVisibility, SourceDefinition};
use super::entry::DatasetEntry;
use super::register::{
    Confidentiality, Decision, Ground, LegalBasis, ProcessingRecord, Sharing, SourceKind,
};

/// A column of the register: key, French header, other accepted headers.
pub struct Column {
    pub key: &'static str,
    pub french: &'static str,
    pub aliases: &'static [&'static str],
}

const fn column(
    key: &'static str,
    french: &'static str,
    aliases: &'static [&'static str],
) -> Column {
    Column {
        key,
        french,
        aliases,
    }
}

/// Every column, in export order.
pub const COLUMNS: &[Column] = &[
    column("id", "Identifiant", &["identifiant du jeu de données"]),
    column(
        "title",
        "Titre",
        &["jeu de données", "nom du tableau de suivi", "intitulé"],
    ),
    column("description", "Description", &[]),
    column(
        "organisation",
        "Collectivité",
        &["collectivités", "collectivite"],
    ),
    column("direction", "Direction", &["directions", "service", "pôle"]),
    column("theme", "Thématique", &["thématiques", "thème", "theme"]),
    column("source_kind", "Source des données", &["source"]),
    column(
        "source_provider",
        "Fournisseur",
        &["fournisseur des données", "provider"],
    ),
    column("sharing", "Partage des données", &["partage"]),
    column("shared_with", "Partagé avec", &["partenaires"]),
    column(
        "confidentiality",
        "Confidentialité des données",
        &["confidentialité"],
    ),
    column("grounds", "Motifs de confidentialité", &["motifs"]),
    column("confidentiality_note", "Note de confidentialité", &[]),
    column("access", "Niveau d'accès", &["accès"]),
    column("licence", "Licence", &[]),
    column("publisher", "Producteur", &["éditeur"]),
    column("cost", "Coût", &["cout"]),
    column(
        "update_frequency",
        "Fréquence de mise à jour",
        &["fréquence", "frequence de mise a jour"],
    ),
    column("personal_data", "Données personnelles", &["rgpd"]),
    column("decided_by", "Décidé par", &[]),
    column("decided_at", "Décidé le", &[]),
    column("next_review", "Prochaine revue", &[]),
    column("purposes", "Finalités", &[]),
    column("legal_basis", "Base légale (RGPD art. 6)", &["base légale"]),
    column("retention", "Durée de conservation", &[]),
    column("recipients", "Destinataires", &[]),
    column("dpo_contact", "Contact DPO", &[]),
    column("record_count", "Nombre de lignes", &[]),
    column("last_updated", "Dernière mise à jour", &[]),
];

/// Separator inside a cell holding a list (partners, grounds, purposes).
const LIST_SEPARATOR: &str = " | ";

fn list_cell(items: &[String]) -> String {
    items.join(LIST_SEPARATOR)
}

fn split_list(cell: &str) -> Vec<String> {
    cell.split(['|', ','])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn decision_text(decision: Decision, french: bool) -> &'static str {
    match (decision, french) {
        (Decision::Yes, true) => "Oui",
        (Decision::No, true) => "Non",
        (Decision::ToDefine, true) => "À définir",
        (decision, false) => decision.as_str(),
    }
}

fn source_text(kind: SourceKind, french: bool) -> &'static str {
    match (kind, french) {
        (SourceKind::Internal, true) => "Interne",
        (SourceKind::External, true) => "Externe",
        (SourceKind::Mixed, true) => "Interne/Externe",
        (kind, false) => kind.as_str(),
    }
}

/// The register line of `entry`, cells in [`COLUMNS`] order.
pub fn line(entry: &DatasetEntry, french: bool) -> Vec<String> {
    let definition = &entry.definition;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let date = |value: Option<NaiveDate>| value.map(|date| date.to_string()).unwrap_or_default();
    let review = definition.review.clone().unwrap_or_default();
    let processing = definition.processing.as_ref();
    let yes_no = |value: bool| match (value, french) {
        (true, true) => "Oui",
        (false, true) => "Non",
        (true, false) => "yes",
        (false, false) => "no",
    };
    COLUMNS
        .iter()
        .map(|column| match column.key {
            "id" => definition.id.clone(),
            "title" => definition.title.clone(),
            "description" => definition.description.trim().to_owned(),
            "organisation" => text(&definition.organisation),
            "direction" => text(&definition.direction),
            "theme" => definition.theme.clone(),
            "source_kind" => definition
                .source
                .kind
                .map(|kind| source_text(kind, french).to_owned())
                .unwrap_or_default(),
            "source_provider" => text(&definition.source.provider),
            "sharing" => definition
                .sharing
                .as_ref()
                .map(|sharing| decision_text(sharing.decision, french).to_owned())
                .unwrap_or_default(),
            "shared_with" => definition
                .sharing
                .as_ref()
                .map(|sharing| list_cell(&sharing.with))
                .unwrap_or_default(),
            "confidentiality" => definition
                .confidentiality
                .as_ref()
                .map(|confidentiality| decision_text(confidentiality.decision, french).to_owned())
                .unwrap_or_default(),
            "grounds" => definition
                .confidentiality
                .as_ref()
                .map(|confidentiality| {
                    let grounds: Vec<String> = confidentiality
                        .grounds
                        .iter()
                        .map(|ground| ground.as_str().to_owned())
                        .collect();
                    list_cell(&grounds)
                })
                .unwrap_or_default(),
            "confidentiality_note" => definition
                .confidentiality
                .as_ref()
                .and_then(|confidentiality| confidentiality.note.clone())
                .unwrap_or_default(),
            "access" => definition.access.as_str().to_owned(),
            "licence" => definition.licence.clone(),
            "publisher" => definition.publisher.clone(),
            "cost" => text(&definition.cost),
            "update_frequency" => text(&definition.update_frequency),
            "personal_data" => yes_no(definition.personal_data).to_owned(),
            "decided_by" => text(&review.decided_by),
            "decided_at" => date(review.decided_at),
            "next_review" => date(review.next_review),
            "purposes" => processing
                .map(|record| list_cell(&record.purposes))
                .unwrap_or_default(),
            "legal_basis" => processing
                .map(|record| {
                    serde_json::to_value(record.legal_basis)
                        .ok()
                        .and_then(|value| value.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
            "retention" => processing
                .map(|record| record.retention.clone())
                .unwrap_or_default(),
            "recipients" => processing
                .map(|record| list_cell(&record.recipients))
                .unwrap_or_default(),
            "dpo_contact" => processing
                .map(|record| record.dpo_contact.clone())
                .unwrap_or_default(),
            "record_count" => entry.record_count.to_string(),
            "last_updated" => entry.last_updated.clone(),
            _ => String::new(),
        })
        .collect()
}

/// The register as a CSV document: BOM, `;`, CRLF, headers in English keys
/// or in French.
pub fn export(entries: &[&DatasetEntry], french: bool) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let header: Vec<&str> = COLUMNS
        .iter()
        .map(|column| if french { column.french } else { column.key })
        .collect();
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(&header);
    for entry in entries {
        let _ = writer.write_record(line(entry, french));
    }
    writer.into_inner().unwrap_or_default()
}

/// Folds a header or a value: lowercase, accents removed, spacing collapsed.
fn fold(text: &str) -> String {
    super::register::fold_purpose(text)
}

/// The column a header names, if any.
pub fn column_of(header: &str) -> Option<&'static Column> {
    let folded = fold(header.trim_start_matches('\u{feff}'));
    COLUMNS.iter().find(|column| {
        fold(column.key) == folded
            || fold(column.french) == folded
            || column.aliases.iter().any(|alias| fold(alias) == folded)
    })
}

/// One line of an imported register: its register fields, by column key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterLine {
    /// Physical line number in the file (the header is line 1).
    pub line: u64,
    pub cells: Vec<(&'static str, String)>,
}

impl RegisterLine {
    fn cell(&self, key: &str) -> Option<&str> {
        self.cells
            .iter()
            .find(|(column, _)| *column == key)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The dataset id: the `id` column, else the title made a slug.
    pub fn id(&self) -> Result<String, String> {
        if let Some(id) = self.cell("id") {
            return Ok(id.to_owned());
        }
        let title = self.cell("title").ok_or("neither an id nor a title")?;
        let slug = slug(title);
        if slug.is_empty() {
            return Err(format!("title `{title}` gives no usable id"));
        }
        Ok(slug)
    }

    /// Applies the line to `definition` (an existing dataset's, or a new
    /// metadata-only entry's) and checks the result like a definition file.
    pub fn apply(&self, mut definition: DatasetDefinition) -> Result<DatasetDefinition, String> {
        let text = |key: &str| self.cell(key).map(str::to_owned);
        if let Some(title) = text("title") {
            definition.title = title;
        }
        // Exported trimmed: an unchanged description keeps its line ends.
        if let Some(description) = text("description")
            && definition.description.trim() != description
        {
            definition.description = description;
        }
        if let Some(theme) = text("theme") {
            definition.theme = theme;
        }
        if let Some(organisation) = text("organisation") {
            definition.organisation = Some(organisation);
        }
        if let Some(direction) = text("direction") {
            definition.direction = Some(direction);
        }
        if let Some(kind) = self.cell("source_kind") {
            definition.source.kind = Some(parse_source_kind(kind)?);
        }
        if let Some(provider) = text("source_provider") {
            definition.source.provider = Some(provider);
        }
        if let Some(decision) = self.cell("sharing") {
            let with = self.cell("shared_with").map(split_list).unwrap_or_default();
            definition.sharing = Some(Sharing {
                decision: parse_decision("sharing", decision)?,
                with,
            });
        }
        if let Some(decision) = self.cell("confidentiality") {
            let grounds = self
                .cell("grounds")
                .map(split_list)
                .unwrap_or_default()
                .iter()
                .map(|ground| {
                    Ground::parse(&fold(ground).replace(' ', "_"))
                        .ok_or_else(|| format!("ground `{ground}` is not in the vocabulary"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            definition.confidentiality = Some(Confidentiality {
                decision: parse_decision("confidentiality", decision)?,
                grounds,
                note: text("confidentiality_note"),
            });
        }
        if let Some(access) = self.cell("access") {
            definition.access = serde_json::from_value(serde_json::Value::String(
                access.to_ascii_lowercase(),
            ))
            .map_err(|_| {
                format!(
                    "access `{access}` is not open, partners, internal, confidential or undecided"
                )
            })?;
        }
        if let Some(licence) = text("licence") {
            definition.licence = licence;
        }
        if let Some(publisher) = text("publisher") {
            definition.publisher = publisher;
        }
        if let Some(cost) = text("cost") {
            definition.cost = Some(cost);
        }
        if let Some(frequency) = text("update_frequency") {
            definition.update_frequency = Some(frequency);
        }
        if let Some(personal) = self.cell("personal_data") {
            definition.personal_data = match fold(personal).as_str() {
                "oui" | "yes" | "true" | "1" => true,
                "non" | "no" | "false" | "0" => false,
                _ => return Err(format!("personal_data `{personal}` is not yes or no")),
            };
        }
        let date = |key: &str| -> Result<Option<NaiveDate>, String> {
            self.cell(key)
                .map(|value| {
                    NaiveDate::parse_from_str(value, "%Y-%m-%d")
                        .or_else(|_| NaiveDate::parse_from_str(value, "%d/%m/%Y"))
                        .map_err(|_| {
                            format!("{key} `{value}` is not a date (2026-01-31 or 31/01/2026)")
                        })
                })
                .transpose()
        };
        let (decided_by, decided_at, next_review) = (
            text("decided_by"),
            date("decided_at")?,
            date("next_review")?,
        );
        if decided_by.is_some() || decided_at.is_some() || next_review.is_some() {
            let mut review = definition.review.take().unwrap_or_default();
            review.decided_by = decided_by.or(review.decided_by);
            review.decided_at = decided_at.or(review.decided_at);
            review.next_review = next_review.or(review.next_review);
            definition.review = Some(review);
        }
        if let Some(purposes) = self.cell("purposes") {
            let legal_basis = self
                .cell("legal_basis")
                .ok_or("a processing record needs legal_basis (GDPR art. 6 letter a to f)")?;
            let legal_basis: LegalBasis = serde_json::from_value(serde_json::Value::String(
                legal_basis.trim_start_matches("6.1.").to_ascii_lowercase(),
            ))
            .map_err(|_| format!("legal_basis `{legal_basis}` is not a letter a to f"))?;
            definition.processing = Some(ProcessingRecord {
                purposes: split_list(purposes),
                legal_basis,
                retention: text("retention").unwrap_or_default(),
                recipients: self.cell("recipients").map(split_list).unwrap_or_default(),
                dpo_contact: text("dpo_contact").unwrap_or_default(),
            });
        }
        definition.check()?;
        Ok(definition)
    }
}

/// A new metadata-only entry for `id`: undecided until a line decides.
pub fn new_entry(id: &str) -> DatasetDefinition {
    DatasetDefinition {
        id: id.to_owned(),
        title: id.to_owned(),
        description: String::new(),
        theme: String::new(),
        keywords: Vec::new(),
        publisher: String::new(),
        licence: "a-definir".to_owned(),
        access: AccessLevel::Undecided,
        metadata_visibility: MetadataVisibility::Public,
        update_frequency: None,
        personal_data: false,
        source: SourceDefinition {
            file: None,
            table: None,
            format: None,
            delimiter: None,
            encoding: None,
            kind: None,
            provider: None,
        },
        schema: None,
        geometry: None,
        views: Vec::new(),
        organisation: None,
        direction: None,
        sharing: None,
        confidentiality: None,
        cost: None,
        review: None,
        processing: None,
    }
}

fn parse_decision(field: &str, text: &str) -> Result<Decision, String> {
    match fold(text).replace(['_', '-'], " ").as_str() {
        "oui" | "yes" => Ok(Decision::Yes),
        "non" | "no" => Ok(Decision::No),
        "a definir" | "to define" => Ok(Decision::ToDefine),
        _ => Err(format!("{field} `{text}` is not Oui, Non or À définir")),
    }
}

fn parse_source_kind(text: &str) -> Result<SourceKind, String> {
    let folded = fold(text);
    // The audit's labels carry examples: "Externe (Ex : Vélo …)".
    let label = folded
        .split(" (")
        .next()
        .unwrap_or_default()
        .replace(' ', "");
    match label.as_str() {
        "interne" | "internal" => Ok(SourceKind::Internal),
        "externe" | "external" => Ok(SourceKind::External),
        "interne/externe" | "mixte" | "mixed" => Ok(SourceKind::Mixed),
        _ => Err(format!(
            "source `{text}` is not Interne, Externe or Interne/Externe"
        )),
    }
}

/// A title made an id: lowercase ASCII letters and digits, dashes, at most 63.
pub fn slug(title: &str) -> String {
    let mut slug = String::new();
    for character in fold(title).chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_end_matches('-').to_owned();
    slug.truncate(63);
    slug.trim_end_matches('-').to_owned()
}

/// A register file read: its lines, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct ParsedRegister {
    pub lines: Vec<RegisterLine>,
    pub problems: Vec<(u64, String)>,
}

/// Reads a register CSV: `;` (or `,` when the header has no `;`), UTF-8
/// with or without BOM, else Windows-1252. Unknown headers are an error:
/// a misspelt column must not be dropped silently.
pub fn parse(bytes: &[u8]) -> Result<ParsedRegister, String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.trim_start_matches('\u{feff}').to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    };
    // The csv crate counts a CRLF's line feed at the start of the next
    // record: with plain line feeds, line numbers are the file's.
    let text = text.replace("\r\n", "\n");
    let first_line = text.lines().next().ok_or("the file is empty")?;
    let delimiter = if first_line.contains(';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| format!("line 1: {error}"))?
        .clone();
    let mut keys = Vec::new();
    for header in headers.iter() {
        if header.trim().is_empty() {
            keys.push(None);
            continue;
        }
        let column = column_of(header).ok_or_else(|| {
            format!(
                "line 1: unknown column `{header}` (see the header table in README, \"The data register\")"
            )
        })?;
        if keys.contains(&Some(column.key)) {
            return Err(format!("line 1: column `{header}` appears twice"));
        }
        keys.push(Some(column.key));
    }
    if !keys.contains(&Some("id")) && !keys.contains(&Some("title")) {
        return Err("line 1: the header needs an `id` or a `title` column".into());
    }
    let mut parsed = ParsedRegister::default();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, |position| position.line());
                if record.iter().all(|cell| cell.trim().is_empty()) {
                    continue;
                }
                if record.len() > keys.len() {
                    parsed.problems.push((
                        line,
                        format!("{} cells for {} columns", record.len(), keys.len()),
                    ));
                    continue;
                }
                let cells = keys
                    .iter()
                    .zip(record.iter())
                    .filter_map(|(key, cell)| key.map(|key| (key, cell.to_owned())))
                    .collect();
                parsed.lines.push(RegisterLine { line, cells });
            }
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                parsed.problems.push((line, error.to_string()));
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// French headers and values of the authority's spreadsheet map onto the
    /// register; Windows-1252 is decoded.
    #[test]
    fn reads_the_authoritys_spreadsheet() {
        let text = "Jeu de données;Collectivités;Directions;Thématiques;Source des données;Partage des données;Confidentialité des données\r\n\
                    Suivi des dérogations;Ville de Troyes;Enfance - Education - Jeunesse;Education – Enfance;Interne;Oui;Non\r\n\
                    Badges riverains;Ville de Troyes;ODP (Service);Espace Public;Externe;Non;À définir\r\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
        let parsed = parse(&bytes).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.lines.len(), 2);
        let first = &parsed.lines[0];
        assert_eq!(first.line, 2, "{parsed:?}");
        assert_eq!(first.id().unwrap(), "suivi-des-derogations");
        let definition = first.apply(new_entry("suivi-des-derogations")).unwrap();
        assert_eq!(definition.organisation.as_deref(), Some("Ville de Troyes"));
        assert_eq!(definition.source.kind, Some(SourceKind::Internal));
        assert_eq!(definition.sharing.unwrap().decision, Decision::Yes);
        assert_eq!(definition.access, AccessLevel::Undecided);
        let second = parsed.lines[1]
            .apply(new_entry("badges-riverains"))
            .unwrap();
        assert_eq!(second.confidentiality.unwrap().decision, Decision::ToDefine);
    }

    /// Bad values are refused with a reason; a line deciding `open` while
    /// confidentiality is still to define breaks a consistency rule.
    #[test]
    fn bad_lines_have_reasons() {
        let text = "id;title;sharing;confidentiality;access;licence;grounds\n\
                    a;A;peut-être;Non;;;\n\
                    b;B;Oui;À définir;open;etalab-2.0;\n\
                    c;C;Oui;Oui;confidential;interne;secret défense\n\
                    d;D;Oui;Non;open;etalab-2.0;\n";
        let parsed = parse(text.as_bytes()).unwrap();
        let outcomes: Vec<Result<DatasetDefinition, String>> = parsed
            .lines
            .iter()
            .map(|line| line.apply(new_entry(&line.id().unwrap())))
            .collect();
        assert!(outcomes[0].as_ref().unwrap_err().contains("peut-être"));
        assert!(
            outcomes[1]
                .as_ref()
                .unwrap_err()
                .contains("to-define-means-undecided")
        );
        assert!(outcomes[2].as_ref().unwrap_err().contains("secret défense"));
        assert_eq!(outcomes[3].as_ref().unwrap().access, AccessLevel::Open);
        assert!(
            parse(b"id;colonne inconnue\nx;y\n")
                .unwrap_err()
                .contains("colonne inconnue")
        );
    }

    /// Export then import gives back the same register fields.
    #[test]
    fn round_trip() {
        let definition: DatasetDefinition = serde_yaml_ng::from_str(
            "id: m\ntitle: Ménages\npublisher: TCM\nlicence: convention\naccess: confidential\npersonal_data: true\n\
             organisation: TCM\ndirection: Habitat\nsource: {kind: mixed, provider: DGFiP}\n\
             sharing: {decision: yes, with: [ADEME, Région]}\n\
             confidentiality: {decision: yes, grounds: [personal_data, business_secret], note: nominatif}\n\
             cost: 2 jours/an\nreview: {decided_by: DPO, decided_at: 2025-01-02, next_review: 2026-01-02}\n\
             processing: {purposes: [accompagnement social, suivi], legal_basis: e, retention: 5 ans, recipients: [CCAS], dpo_contact: dpo@tcm.fr}\n",
        )
        .unwrap();
        definition.check().unwrap();
        let entry = DatasetEntry {
            definition: definition.clone(),
            schema: std::sync::Arc::new(crate::domain::Schema {
                fields: vec![],
                primary_key: None,
            }),
            table_name: String::new(),
            version: 0,
            record_count: 0,
            last_updated: String::new(),
            geometry: None,
            definition_hash: String::new(),
            written_at: crate::store::replica::WalPosition::START,
        };
        for french in [false, true] {
            let bytes = export(&[&entry], french);
            assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
            let parsed = parse(&bytes).unwrap();
            assert!(parsed.problems.is_empty());
            let again = parsed.lines[0].apply(new_entry("m")).unwrap();
            let mut expected = definition.clone();
            expected.source = again.source.clone();
            assert_eq!(again, expected, "french: {french}");
            assert_eq!(again.source.kind, Some(SourceKind::Mixed));
        }
    }
}

//! The data register: the decisions behind a dataset's access level (sharing,
//! confidentiality and its grounds, review), who owns it, where it comes from,
//! and the GDPR processing record of personal data.
//!
//! The fields live in the definition (files and publishing API alike). Every
//! register field is optional: an absent block is "not recorded yet", listed
//! as such by the inventory. What is recorded must agree with the access
//! level: [`violations`] checks every consistency rule at once and names the
//! rule of each violation, so a file sync can report them all and the
//! publishing API can answer 422 with the same list.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::definition::{AccessLevel, DatasetDefinition};
use crate::domain::Schema;

/// Where a dataset's content comes from (the audit's "source des données").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Internal,
    External,
    Mixed,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Internal,
        SourceKind::External,
        SourceKind::Mixed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Internal => "internal",
            SourceKind::External => "external",
            SourceKind::Mixed => "mixed",
        }
    }
}

/// A register decision: yes, no, or still to be defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Yes,
    No,
    ToDefine,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Yes, Decision::No, Decision::ToDefine];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Yes => "yes",
            Decision::No => "no",
            Decision::ToDefine => "to_define",
        }
    }
}

/// Whether the dataset is shared, and with whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    pub decision: Decision,
    /// Partners it is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<String>,
}

/// Why data is closed: the fixed vocabulary of legal grounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ground {
    /// GDPR.
    PersonalData,
    /// Business secrecy (loi sur le secret des affaires, 2018).
    BusinessSecret,
    PublicSecurity,
    /// Code de la défense.
    NationalDefence,
    /// Code de l'environnement.
    EnvironmentProtection,
    ThirdPartyRights,
    /// A preparatory document (CADA).
    UnfinishedDocument,
    Other,
}

impl Ground {
    pub fn as_str(self) -> &'static str {
        match self {
            Ground::PersonalData => "personal_data",
            Ground::BusinessSecret => "business_secret",
            Ground::PublicSecurity => "public_security",
            Ground::NationalDefence => "national_defence",
            Ground::EnvironmentProtection => "environment_protection",
            Ground::ThirdPartyRights => "third_party_rights",
            Ground::UnfinishedDocument => "unfinished_document",
            Ground::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Ground> {
        [
            Ground::PersonalData,
            Ground::BusinessSecret,
            Ground::PublicSecurity,
            Ground::NationalDefence,
            Ground::EnvironmentProtection,
            Ground::ThirdPartyRights,
            Ground::UnfinishedDocument,
            Ground::Other,
        ]
        .into_iter()
        .find(|ground| ground.as_str() == text)
    }
}

/// Whether the dataset is confidential, on which grounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confidentiality {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grounds: Vec<Ground>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Who decided, when, and when the decision is to be reviewed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_review: Option<NaiveDate>,
}

/// The lawful basis of a processing (GDPR article 6(1), letters a to f).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LegalBasis {
    /// Consent.
    A,
    /// Contract.
    B,
    /// Legal obligation.
    C,
    /// Vital interests.
    D,
    /// Public interest or official authority.
    E,
    /// Legitimate interests.
    F,
}

/// The GDPR processing record of a dataset holding personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessingRecord {
    /// Purposes the data may be read for.
    pub purposes: Vec<String>,
    /// GDPR article 6(1) letter.
    pub legal_basis: LegalBasis,
    /// How long the data is kept (`5 ans après la clôture du dossier`).
    pub retention: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// How to reach the data protection officer.
    pub dpo_contact: String,
}

/// Licences under which data may be open.
pub const OPEN_LICENCES: &[&str] = &["etalab-2.0", "odbl-1.0"];

/// One broken consistency rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// A stable name of the rule (`open-needs-open-licence`).
    pub rule: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.message, self.rule)
    }
}

/// Every consistency rule the definition breaks, given its schema when known
/// (declared or inferred: the personal-column rule needs it).
pub fn violations(definition: &DatasetDefinition, schema: Option<&Schema>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut violation = |rule: &'static str, message: String| {
        found.push(Violation { rule, message });
    };
    let access = definition.access;
    let confidentiality = definition.confidentiality.as_ref();
    let sharing = definition.sharing.as_ref();
    let to_define = confidentiality.is_some_and(|c| c.decision == Decision::ToDefine)
        || sharing.is_some_and(|s| s.decision == Decision::ToDefine);
    if to_define && access != AccessLevel::Undecided {
        violation(
            "to-define-means-undecided",
            format!(
                "a decision still to define (confidentiality or sharing) requires access `undecided`, not `{}`",
                access.as_str()
            ),
        );
    }
    if access == AccessLevel::Open {
        if let Some(confidentiality) = confidentiality
            && confidentiality.decision != Decision::No
        {
            violation(
                "open-needs-not-confidential",
                format!(
                    "open data needs confidentiality `no`, not `{}`",
                    confidentiality.decision.as_str()
                ),
            );
        }
        if let Some(sharing) = sharing
            && sharing.decision != Decision::Yes
        {
            violation(
                "open-needs-sharing",
                format!(
                    "open data needs sharing `yes`, not `{}`",
                    sharing.decision.as_str()
                ),
            );
        }
        if !OPEN_LICENCES.contains(&definition.licence.as_str()) {
            violation(
                "open-needs-open-licence",
                format!(
                    "open data needs an open licence ({}), not `{}`",
                    OPEN_LICENCES.join(", "),
                    definition.licence
                ),
            );
        }
        if definition.personal_data {
            violation(
                "open-without-personal-data",
                "open data cannot hold personal data (`personal_data: true`)".into(),
            );
        }
        let personal: Vec<&str> = schema
            .map(|schema| {
                schema
                    .fields
                    .iter()
                    .filter(|field| field.is_personal())
                    .map(|field| field.name.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if !personal.is_empty() {
            violation(
                "open-without-personal-column",
                format!(
                    "open data cannot have a personal column: {}",
                    personal.join(", ")
                ),
            );
        }
    }
    let has_ground = confidentiality.is_some_and(|c| !c.grounds.is_empty());
    if access == AccessLevel::Confidential && !has_ground {
        violation(
            "confidential-needs-ground",
            "confidential data needs at least one ground in `confidentiality.grounds`".into(),
        );
    }
    if definition.personal_data {
        let personal_ground =
            confidentiality.is_some_and(|c| c.grounds.contains(&Ground::PersonalData));
        if !personal_ground {
            violation(
                "personal-data-needs-ground",
                "personal data needs the ground `personal_data` in `confidentiality.grounds`"
                    .into(),
            );
        }
        match &definition.processing {
            None => violation(
                "personal-data-needs-processing-record",
                "personal data needs a processing record (`processing`: purposes, legal_basis, retention, recipients, dpo_contact)".into(),
            ),
            Some(record) => {
                if record.purposes.iter().all(|purpose| purpose.trim().is_empty()) {
                    violation(
                        "processing-record-complete",
                        "the processing record needs at least one purpose".into(),
                    );
                }
                if record.retention.trim().is_empty() || record.dpo_contact.trim().is_empty() {
                    violation(
                        "processing-record-complete",
                        "the processing record needs a retention and a DPO contact".into(),
                    );
                }
            }
        }
    }
    for view in &definition.views {
        if view
            .purposes
            .iter()
            .any(|purpose| purpose.trim().is_empty())
        {
            violation(
                "view-purposes-named",
                format!("view `{}` lists an empty purpose", view.name),
            );
        }
    }
    found
}

/// Folds a purpose for comparison: lowercase, accents removed, spaces
/// collapsed (`Suivi de la  Précarité` matches `suivi de la precarite`).
pub fn fold_purpose(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for character in text.trim().chars().flat_map(char::to_lowercase) {
        let plain = match character {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            'œ' => {
                folded.push('o');
                'e'
            }
            'æ' => {
                folded.push('a');
                'e'
            }
            '’' | '\'' => ' ',
            other => other,
        };
        if plain.is_whitespace() {
            if !folded.ends_with(' ') && !folded.is_empty() {
                folded.push(' ');
            }
        } else {
            folded.push(plain);
        }
    }
    folded.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldType};

    fn definition(extra: &str) -> DatasetDefinition {
        serde_yaml_ng::from_str(&format!(
            "id: demo\ntitle: Demo\npublisher: Ville\nsource: {{file: d.csv}}\n{extra}"
        ))
        .expect("valid YAML")
    }

    fn rules(definition: &DatasetDefinition, schema: Option<&Schema>) -> Vec<&'static str> {
        violations(definition, schema)
            .into_iter()
            .map(|violation| violation.rule)
            .collect()
    }

    /// Consistent definitions pass; each contradiction names its rule, and
    /// every broken rule is reported at once.
    #[test]
    fn consistency_rules() {
        let cases: &[(&str, &[&str])] = &[
            (
                "licence: etalab-2.0\naccess: open\nsharing: {decision: yes}\nconfidentiality: {decision: no}\n",
                &[],
            ),
            // Nothing recorded yet: only the licence matters for open data.
            ("licence: etalab-2.0\naccess: open\n", &[]),
            (
                "licence: etalab-2.0\naccess: open\nsharing: {decision: to_define}\n",
                &["to-define-means-undecided", "open-needs-sharing"],
            ),
            (
                "licence: interne\naccess: undecided\nconfidentiality: {decision: to_define}\n",
                &[],
            ),
            (
                "licence: interne\naccess: internal\nconfidentiality: {decision: to_define}\n",
                &["to-define-means-undecided"],
            ),
            (
                "licence: convention\naccess: open\nsharing: {decision: no}\nconfidentiality: {decision: yes, grounds: [other]}\n",
                &[
                    "open-needs-not-confidential",
                    "open-needs-sharing",
                    "open-needs-open-licence",
                ],
            ),
            (
                "licence: interne\naccess: confidential\n",
                &["confidential-needs-ground"],
            ),
            (
                "licence: interne\naccess: confidential\nconfidentiality: {decision: yes, grounds: [business_secret]}\n",
                &[],
            ),
            // Confidential in the register, not yet classified: grounds come with the level.
            (
                "licence: interne\naccess: undecided\nconfidentiality: {decision: yes}\n",
                &[],
            ),
            (
                "licence: interne\naccess: confidential\npersonal_data: true\nconfidentiality: {decision: yes, grounds: [other]}\n",
                &[
                    "personal-data-needs-ground",
                    "personal-data-needs-processing-record",
                ],
            ),
            (
                "licence: interne\naccess: confidential\npersonal_data: true\nconfidentiality: {decision: yes, grounds: [personal_data]}\n\
                 processing: {purposes: [' '], legal_basis: e, retention: '', dpo_contact: dpo@ville.fr}\n",
                &["processing-record-complete", "processing-record-complete"],
            ),
            (
                "licence: interne\naccess: confidential\npersonal_data: true\nconfidentiality: {decision: yes, grounds: [personal_data]}\n\
                 processing: {purposes: [suivi], legal_basis: e, retention: 5 ans, dpo_contact: dpo@ville.fr}\n",
                &[],
            ),
            (
                "licence: odbl-1.0\naccess: open\npersonal_data: true\n",
                &[
                    "open-without-personal-data",
                    "personal-data-needs-ground",
                    "personal-data-needs-processing-record",
                ],
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(rules(&definition(extra), None), *expected, "{extra}");
        }
    }

    /// Open data with a personal column is refused once the schema is known.
    #[test]
    fn open_data_has_no_personal_column() {
        let open = definition("licence: etalab-2.0\naccess: open\n");
        let mut field = Field::new("nom", FieldType::String);
        field.sensitivity = Some(crate::domain::schema::Sensitivity::Personal);
        let schema = Schema {
            fields: vec![field, Field::new("commune", FieldType::String)],
            primary_key: None,
        };
        assert_eq!(
            rules(&open, Some(&schema)),
            ["open-without-personal-column"]
        );
        let message = &violations(&open, Some(&schema))[0].message;
        assert!(
            message.contains("nom") && !message.contains("commune"),
            "{message}"
        );
    }

    /// Unknown grounds and decisions are refused by the parser.
    #[test]
    fn vocabulary_is_fixed() {
        for extra in [
            "licence: l\naccess: internal\nconfidentiality: {decision: yes, grounds: [secret]}\n",
            "licence: l\naccess: internal\nsharing: {decision: maybe}\n",
            "licence: l\naccess: internal\nsource: {file: d.csv, kind: both}\n",
            "licence: l\naccess: internal\nprocessing: {purposes: [x], legal_basis: g, retention: r, dpo_contact: d}\n",
        ] {
            let text = format!("id: demo\ntitle: Demo\npublisher: Ville\n{extra}");
            let text = if extra.contains("source:") {
                text
            } else {
                format!("{text}source: {{file: d.csv}}\n")
            };
            assert!(
                serde_yaml_ng::from_str::<DatasetDefinition>(&text).is_err(),
                "{extra}"
            );
        }
        // `yes` and `no` are decisions, not YAML 1.1 booleans.
        let shared =
            definition("licence: l\naccess: internal\nsharing: {decision: yes, with: [ADEME]}\n");
        assert_eq!(shared.sharing.unwrap().decision, Decision::Yes);
    }

    /// Purposes match whatever the case, accents and spacing.
    #[test]
    fn purposes_fold() {
        assert_eq!(
            fold_purpose("  Suivi de la  Précarité Énergétique "),
            "suivi de la precarite energetique"
        );
        assert_eq!(
            fold_purpose("Prospection commerciale"),
            "prospection commerciale"
        );
        assert_ne!(fold_purpose("suivi"), fold_purpose("suivis"));
    }
}

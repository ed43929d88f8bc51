//! Authorisation: may these roles do this action on this dataset, which rule
//! decided, and through which catalogue view.
//!
//! The rules are a casbin model and policy in `policies/` (`model.conf`,
//! `policy.csv`, see `policies/README.md`). The catalogue's access level of
//! each dataset becomes a `g2, <dataset>, level:<level>` grouping, so one rule
//! covers a whole level, and its publisher a `g2, <dataset>,
//! publisher:<slug>` grouping, so one rule gives a service's stewards its own
//! datasets. Publishing actions (`publish`, `manage`, `classify`, `history`)
//! are separate: managing a dataset does not imply classifying it.
//!
//! Invariants:
//! - deny by default; a matching `deny` rule of any of the caller's roles
//!   overrides every `allow`;
//! - `undecided` datasets serve no data to anybody, whatever the rules say
//!   (checked before casbin); their catalogue entry follows its visibility
//!   like any other (public: everybody may know the dataset exists);
//! - metadata visibility is separate from data access: a public entry is seen
//!   by all unless a `metadata` deny rule matches; a restricted one only by
//!   roles that may read/export/aggregate it or hold a `metadata` allow rule;
//! - among matching allow rules, one without a view (full access) wins, then
//!   the first in file order;
//! - the hot path ([`PolicyEngine::decide`]) never takes a write lock on the
//!   enforcer: an immutable enforcer and its decision cache are swapped
//!   together with `arc-swap` on reload;
//! - a policy that fails validation is never swapped in: the previous one
//!   stays (never fail open).

mod cache;
mod engine;
mod grant;
mod rules;

use std::path::PathBuf;

use serde::Serialize;

use crate::catalog::definition::{AccessLevel, MetadataVisibility};

pub use engine::{MODEL_FILE, POLICY_FILE, PolicyEngine};
pub use grant::{
    Grant, GrantSummary, PolicySettings, Refusal, check_row_filter, dataset_ref, is_closed,
    public_columns, visible_columns,
};

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read rows as JSON pages.
    Read,
    /// Download rows as a file (CSV, NDJSON, GeoJSON).
    Export,
    /// Read aggregates only (`count()`, `sum()`, … with group suppression).
    Aggregate,
    /// Know the dataset exists and see its catalogue entry.
    Metadata,
    /// Query and verify the audit log (global, not per dataset).
    AuditRead,
    /// Administer the gateway, e.g. `/policy/check` (global).
    Admin,
    /// Read the data register's inventory, restricted entries included (global).
    InventoryRead,
    /// Upload new versions of a dataset's rows and restore earlier ones.
    Publish,
    /// Create a dataset, edit its metadata, retire it.
    Manage,
    /// Change what decides access: `access`, `metadata_visibility`,
    /// `personal_data`, views and their row filters.
    Classify,
    /// Read earlier versions of a dataset (`?version=n`).
    History,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::Export,
        Action::Aggregate,
        Action::Metadata,
        Action::AuditRead,
        Action::Admin,
        Action::InventoryRead,
        Action::Publish,
        Action::Manage,
        Action::Classify,
        Action::History,
    ];

    /// The name used in policy files and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Export => "export",
            Action::Aggregate => "aggregate",
            Action::Metadata => "metadata",
            Action::AuditRead => "audit:read",
            Action::Admin => "admin",
            Action::InventoryRead => "inventory:read",
            Action::Publish => "publish",
            Action::Manage => "manage",
            Action::Classify => "classify",
            Action::History => "history",
        }
    }

    /// The action named `text` (as in [`Action::as_str`]), if any.
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
    }

    /// True for actions that concern the gateway as a whole, not a dataset.
    pub fn is_global(self) -> bool {
        matches!(
            self,
            Action::AuditRead | Action::Admin | Action::InventoryRead
        )
    }

    /// True for actions that hand out rows or aggregates of rows.
    pub fn is_data(self) -> bool {
        matches!(self, Action::Read | Action::Export | Action::Aggregate)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The casbin group of the datasets of `publisher`: `publisher:<slug>`,
/// the slug in lowercase ASCII letters, digits and dashes (`Mobilités` →
/// `publisher:mobilites`), so one rule covers a service's datasets.
pub fn publisher_group(publisher: &str) -> String {
    let mut slug = String::new();
    for character in publisher.chars().flat_map(char::to_lowercase) {
        let folded = match character {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            'æ' => {
                slug.push('a');
                'e'
            }
            'œ' => {
                slug.push('o');
                'e'
            }
            other => other,
        };
        if folded.is_ascii_alphanumeric() {
            slug.push(folded);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    format!("publisher:{slug}")
}

/// The dataset a decision is about, as the catalogue describes it now.
#[derive(Debug, Clone, Copy)]
pub struct DatasetRef<'a> {
    pub id: &'a str,
    pub access: AccessLevel,
    pub metadata_visibility: MetadataVisibility,
}

/// The answer to "may these roles do this?", with its reason for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The policy line that decided (`p, agent, level:internal, read, allow`),
    /// or a built-in reason such as `default deny`.
    pub rule: String,
    /// The catalogue view the caller's access goes through; `None` is full access.
    pub view: Option<String>,
}

impl Decision {
    fn deny(rule: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            rule: rule.into(),
            view: None,
        }
    }
}

/// Built-in reasons found in [`Decision::rule`].
pub mod reasons {
    /// No rule grants the action.
    pub const DEFAULT_DENY: &str = "default deny";
    /// The dataset's access level is `undecided`.
    pub const UNDECIDED: &str = "undecided: nobody until a steward decides";
    /// A public catalogue entry, visible to everybody.
    pub const PUBLIC_METADATA: &str = "metadata public";
    /// The policy was built for another access level of this dataset (or none):
    /// refused until the catalogue change reaches the policy.
    pub const OUT_OF_SYNC: &str =
        "default deny: the policy does not know this dataset's current access level";
    /// Casbin failed (or panicked) while evaluating: refused.
    pub const EVALUATION_ERROR: &str = "policy evaluation error";
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of `policy.csv` (or `model.conf`) is wrong.
    #[error("{}:{line}: {reason}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    /// The model as a whole is unusable.
    #[error("{}: {reason}", file.display())]
    Model { file: PathBuf, reason: String },
    /// Casbin refused the policy while building the enforcer.
    #[error("casbin: {0}")]
    Casbin(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action survives a round trip through its policy name.
    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::AuditRead.as_str(), "audit:read");
        assert_eq!(Action::parse("write"), None);
        assert_eq!(Action::parse("publish"), Some(Action::Publish));
        assert_eq!(Action::parse("READ"), None);
    }

    /// Publishers become slugs: accents folded, spaces and punctuation one dash.
    #[test]
    fn publisher_groups() {
        assert_eq!(publisher_group("Mobilités"), "publisher:mobilites");
        assert_eq!(
            publisher_group("Direction de l'Énergie & Œuvres"),
            "publisher:direction-de-l-energie-oeuvres"
        );
        assert_eq!(publisher_group(" Vélo-Cité "), "publisher:velo-cite");
    }

    /// Global and data actions are told apart.
    #[test]
    fn action_kinds() {
        assert!(Action::Admin.is_global() && Action::AuditRead.is_global());
        assert!(!Action::Metadata.is_global() && !Action::Metadata.is_data());
        assert!(Action::Export.is_data());
    }
}

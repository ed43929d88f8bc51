//! The access decision: what one caller may get from one dataset.
//!
//! [`PolicyEngine::grant`] is the only place a dataset access is decided.
//! Reads, exports, the catalogue listing and entry, `/policy/check` and the
//! pages all call it and get either a [`Grant`] (the rule, the view, the
//! visible columns, the row filter with claims substituted, aggregate-only and
//! its minimum group size, whether a purpose must be declared) or a
//! [`Refusal`] (the reason, for the audit log and the problem document).
//!
//! Order of the checks, each one refusing without revealing more than the
//! earlier ones allow:
//! 1. may the caller know the dataset exists (else [`Refusal::Hidden`], a 404);
//! 2. a partner client registered for some datasets only;
//! 3. casbin: the action, or failing it an aggregate grant;
//! 4. the view the rule names exists;
//! 5. the row filter's claims are present and usable, and the filter parses.
//!
//! Two checks need the request itself and are methods of the grant:
//! [`Grant::admit_purpose`] (personal data needs a declared purpose; a view
//! listing purposes serves only those, case and accents folded) and
//! [`Grant::admit_plan`] (an aggregate-only grant refuses raw rows).

use serde::{Deserialize, Serialize};

use super::{Action, DatasetRef, PolicyEngine};
use crate::auth::Caller;
use crate::catalog::DatasetEntry;
use crate::catalog::definition::{AccessLevel, ViewDefinition};
use crate::catalog::register::fold_purpose;
use crate::domain::Schema;
use crate::query::parse_filters;
use crate::query::plan::{Filter, ReadPlan};

/// Settings of the decision that are not in the policy files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Aggregate groups built from fewer rows are left out (statistical
    /// secrecy), unless a view sets its own `min_group_size`.
    pub min_group_size: u32,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { min_group_size: 11 }
    }
}

/// What a caller may do with a dataset's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The policy line (or built-in rule) that allowed.
    pub rule: String,
    /// The catalogue view the access goes through; `None` is full access.
    pub view: Option<String>,
    /// Columns the caller may see, by schema index.
    pub visible: Vec<bool>,
    /// The view's row filter, claims substituted.
    pub row_filter: Option<Filter>,
    /// The row filter as written in the view, claims substituted (for
    /// `/policy/check` and the audit log).
    pub row_filter_text: Option<String>,
    /// `Some(minimum group size)` when only aggregates may be read.
    pub aggregate_only: Option<u32>,
    /// Personal data: a purpose must be declared (`X-Purpose`).
    pub purpose_required: bool,
    /// The purposes the grant serves (its view's); empty: any declared one.
    pub purposes: Vec<String>,
}

/// Why access is refused. [`Refusal::rule`] is what the audit log records.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The caller may not know the dataset exists: answered like an unknown
    /// dataset. `rule` is the decision of the action asked for.
    Hidden { dataset: String, rule: String },
    /// A partner client registered for other datasets.
    ClientNotRegistered { dataset: String },
    /// No rule grants the action (nor an aggregate grant).
    NotGranted {
        dataset: String,
        rule: String,
        anonymous: bool,
    },
    /// The rule names a view the catalogue does not define.
    ViewMissing { dataset: String, view: String },
    /// The view's row filter needs a claim the caller does not carry.
    ClaimMissing { claim: String },
    /// The claim holds characters that could change the filter's meaning.
    ClaimUnusable { claim: String },
    /// The view's row filter does not parse.
    RowFilterMisconfigured { dataset: String },
    /// Personal data read without a declared purpose.
    PurposeRequired { dataset: String },
    /// The declared purpose is not one the grant serves.
    PurposeNotAllowed {
        dataset: String,
        allowed: Vec<String>,
    },
    /// Raw rows asked for through an aggregate-only grant.
    AggregateOnly {
        dataset: String,
        view: Option<String>,
    },
}

impl Refusal {
    /// The rule or reason that refused, as the audit log records it.
    pub fn rule(&self) -> String {
        match self {
            Refusal::Hidden { rule, .. } | Refusal::NotGranted { rule, .. } => rule.clone(),
            Refusal::ClientNotRegistered { .. } => "client not registered for this dataset".into(),
            Refusal::ViewMissing { view, .. } => {
                format!("view `{view}` is not defined in the catalogue")
            }
            Refusal::ClaimMissing { claim } => format!("row filter needs claim `{claim}`"),
            Refusal::ClaimUnusable { claim } => format!("row filter cannot use claim `{claim}`"),
            Refusal::RowFilterMisconfigured { .. } => {
                "the view's row filter is misconfigured".into()
            }
            Refusal::PurposeRequired { .. } => "personal data: X-Purpose required".into(),
            Refusal::PurposeNotAllowed { allowed, .. } => {
                format!("purpose not allowed by the grant: {}", allowed.join(" | "))
            }
            Refusal::AggregateOnly {
                view: Some(view), ..
            } => {
                format!("aggregate-only view `{view}`: raw rows refused")
            }
            Refusal::AggregateOnly { view: None, .. } => {
                "aggregate-only grant: raw rows refused".into()
            }
        }
    }

    /// For a person: why, without revealing more than the caller may know.
    pub fn detail(&self) -> String {
        match self {
            Refusal::Hidden { dataset, .. } => format!("no dataset `{dataset}`"),
            Refusal::ClientNotRegistered { dataset } => {
                format!("your client is not registered for dataset `{dataset}`")
            }
            Refusal::NotGranted {
                dataset,
                anonymous: true,
                ..
            } => format!(
                "dataset `{dataset}` is not open data: authenticate with a bearer token or an API key"
            ),
            Refusal::NotGranted { dataset, .. } => {
                format!("your roles do not allow reading dataset `{dataset}`")
            }
            Refusal::ViewMissing { dataset, .. } => {
                format!("the view granted on dataset `{dataset}` is not available")
            }
            Refusal::ClaimMissing { claim } => format!(
                "this dataset is filtered by your `{claim}` claim, which your token does not carry"
            ),
            Refusal::ClaimUnusable { claim } => {
                format!("your `{claim}` claim cannot be used to filter this dataset")
            }
            Refusal::RowFilterMisconfigured { .. } => {
                "the view granted on this dataset is misconfigured; access is refused".into()
            }
            Refusal::PurposeRequired { dataset } => format!(
                "dataset `{dataset}` holds personal data: declare why you read it in the X-Purpose header \
                 (it is written to the audit log)"
            ),
            Refusal::PurposeNotAllowed { dataset, allowed } => format!(
                "your access to dataset `{dataset}` serves only these purposes: {}; declare one of them in X-Purpose \
                 (a case reference may follow it: `{} : dossier 12`)",
                allowed
                    .iter()
                    .map(|purpose| format!("`{purpose}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                allowed.first().map(String::as_str).unwrap_or_default()
            ),
            Refusal::AggregateOnly { dataset, .. } => format!(
                "only aggregates of dataset `{dataset}` are allowed: select aggregates such as `count()` or `column.sum()`, grouped by allowed columns"
            ),
        }
    }

    /// The view concerned, when the refusal comes from one.
    pub fn view(&self) -> Option<&str> {
        match self {
            Refusal::ViewMissing { view, .. } => Some(view),
            Refusal::AggregateOnly { view, .. } => view.as_deref(),
            _ => None,
        }
    }
}

/// The dataset as the policy sees it.
pub fn dataset_ref(entry: &DatasetEntry) -> DatasetRef<'_> {
    DatasetRef {
        id: entry.id(),
        access: entry.definition.access,
        metadata_visibility: entry.definition.metadata_visibility,
    }
}

impl PolicyEngine {
    /// Decides `action` (`read`, `export` or `aggregate`) on `entry` for
    /// `caller` and resolves the view. An action that is not granted falls
    /// back to an aggregate grant when there is one.
    pub fn grant(
        &self,
        caller: &Caller,
        entry: &DatasetEntry,
        action: Action,
    ) -> Result<Grant, Refusal> {
        let dataset = dataset_ref(entry);
        let id = || entry.id().to_owned();
        if !self.may_see(&caller.roles, &dataset) {
            let decision = self.decide(&caller.roles, &dataset, action);
            return Err(Refusal::Hidden {
                dataset: id(),
                rule: decision.rule,
            });
        }
        if let Some(allowed) = &caller.allowed_datasets
            && !allowed.iter().any(|allowed| allowed == entry.id())
        {
            return Err(Refusal::ClientNotRegistered { dataset: id() });
        }
        let mut decision = self.decide(&caller.roles, &dataset, action);
        let mut aggregate_grant = false;
        if !decision.allowed && matches!(action, Action::Read | Action::Export) {
            let aggregate = self.decide(&caller.roles, &dataset, Action::Aggregate);
            if aggregate.allowed {
                decision = aggregate;
                aggregate_grant = true;
            }
        }
        if !decision.allowed {
            return Err(Refusal::NotGranted {
                dataset: id(),
                rule: decision.rule,
                anonymous: caller.is_anonymous(),
            });
        }
        let view = match &decision.view {
            Some(name) => Some(entry.view(name).ok_or_else(|| {
                tracing::error!(dataset = entry.id(), view = %name, "policy names a view the dataset does not define");
                Refusal::ViewMissing {
                    dataset: id(),
                    view: name.clone(),
                }
            })?),
            None => None,
        };
        let (row_filter, row_filter_text) = match view.and_then(|view| view.row_filter.as_deref()) {
            Some(template) => {
                let text = substitute_claims(template, caller, entry)?;
                let filter = parse_row_filter(&text, &entry.schema).ok_or_else(|| {
                        tracing::error!(%template, dataset = entry.id(), "a view's row filter does not parse");
                        Refusal::RowFilterMisconfigured { dataset: id() }
                    })?;
                (Some(filter), Some(text))
            }
            None => (None, None),
        };
        let minimum = |view: Option<&ViewDefinition>| {
            view.and_then(|view| view.min_group_size)
                .unwrap_or(self.settings().min_group_size)
        };
        let aggregate_only = match view {
            Some(view) if view.aggregate_only => Some(minimum(Some(view))),
            _ if aggregate_grant || action == Action::Aggregate => Some(minimum(view)),
            _ => None,
        };
        Ok(Grant {
            rule: decision.rule,
            view: decision.view,
            visible: visible_columns(&entry.schema, view),
            row_filter,
            row_filter_text,
            aggregate_only,
            purpose_required: entry.definition.personal_data
                || view.is_some_and(|view| !view.purposes.is_empty()),
            purposes: view.map(|view| view.purposes.clone()).unwrap_or_default(),
        })
    }
}

impl Grant {
    /// Personal data is read only for a declared purpose, and a grant that
    /// lists purposes only for one of them. The declared purpose matches an
    /// allowed one when, case, accents and spacing folded, it is that
    /// purpose, possibly followed by a reference after a separator
    /// (`Accompagnement social : dossier 12`).
    pub fn admit_purpose(
        &self,
        entry: &DatasetEntry,
        purpose: Option<&str>,
    ) -> Result<(), Refusal> {
        let declared = purpose.filter(|purpose| !purpose.trim().is_empty());
        let Some(declared) = declared else {
            if self.purpose_required {
                return Err(Refusal::PurposeRequired {
                    dataset: entry.id().to_owned(),
                });
            }
            return Ok(());
        };
        if self.purposes.is_empty() {
            return Ok(());
        }
        let declared = fold_purpose(declared);
        let admitted = self.purposes.iter().any(|allowed| {
            let allowed = fold_purpose(allowed);
            match declared.strip_prefix(&allowed) {
                Some(rest) => {
                    rest.is_empty() || rest.starts_with([' ', ':', '-', ',', ';', '(', '/'])
                }
                None => false,
            }
        });
        if admitted {
            Ok(())
        } else {
            Err(Refusal::PurposeNotAllowed {
                dataset: entry.id().to_owned(),
                allowed: self.purposes.clone(),
            })
        }
    }

    /// An aggregate-only grant answers aggregates, never raw rows.
    pub fn admit_plan(&self, entry: &DatasetEntry, plan: &ReadPlan) -> Result<(), Refusal> {
        if self.aggregate_only.is_some() && !plan.is_aggregate() {
            return Err(Refusal::AggregateOnly {
                dataset: entry.id().to_owned(),
                view: self.view.clone(),
            });
        }
        Ok(())
    }

    /// The names of the visible columns, in schema order.
    pub fn column_names<'a>(&self, schema: &'a Schema) -> Vec<&'a str> {
        schema
            .fields
            .iter()
            .zip(&self.visible)
            .filter(|(_, visible)| **visible)
            .map(|(field, _)| field.name.as_str())
            .collect()
    }
}

/// True when the dataset's rows are not open data (the audit log's `closed_data`).
pub fn is_closed(entry: &DatasetEntry) -> bool {
    entry.definition.access != AccessLevel::Open
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

/// The columns a caller who may only know the dataset exists is told about:
/// every column but the personal ones.
pub fn public_columns(schema: &Schema) -> Vec<bool> {
    schema
        .fields
        .iter()
        .map(|field| !field.is_personal())
        .collect()
}

/// Substitutes `${claims.X}` from the caller. A missing claim, or one that
/// could change the filter's meaning or that a store could not hold (a NUL
/// byte, any control character), refuses: never a fallback to no filter.
fn substitute_claims(
    template: &str,
    caller: &Caller,
    entry: &DatasetEntry,
) -> Result<String, Refusal> {
    let mut text = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${claims.") {
        text.push_str(&rest[..start]);
        let after = &rest[start + "${claims.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| Refusal::RowFilterMisconfigured {
                dataset: entry.id().to_owned(),
            })?;
        let name = &after[..end];
        let value = caller.claim(name).ok_or_else(|| Refusal::ClaimMissing {
            claim: name.to_owned(),
        })?;
        let safe = !value.is_empty()
            && value
                .chars()
                .all(|character| character.is_alphanumeric() || " -_.'".contains(character));
        if !safe {
            return Err(Refusal::ClaimUnusable {
                claim: name.to_owned(),
            });
        }
        text.push_str(&value);
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    Ok(text)
}

/// The row filter in the read grammar, over every column of the schema.
/// Checks that a view's row filter parses against `schema`, every
/// `${claims.X}` standing for a plain value (a definition is checked before
/// it is accepted, not at the first read).
pub fn check_row_filter(template: &str, schema: &Schema) -> Result<(), String> {
    let mut text = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${claims.") {
        text.push_str(&rest[..start]);
        let after = &rest[start + "${claims.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| "a `${claims.` is never closed by `}`".to_owned())?;
        if after[..end].is_empty() {
            return Err("`${claims.}` names no claim".into());
        }
        text.push('x');
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    match parse_row_filter(&text, schema) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{template}` is not a filter of the read grammar on this schema (`column=op.value`, joined with `&`)"
        )),
    }
}

fn parse_row_filter(text: &str, schema: &Schema) -> Option<Filter> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    let everything = vec![true; schema.fields.len()];
    parse_filters(&pairs, schema, &everything).ok().flatten()
}

/// A grant as `/policy/check` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantSummary {
    /// The catalogue view the access goes through; `null` is full access.
    pub view: Option<String>,
    /// The columns the caller sees.
    pub columns: Vec<String>,
    /// The row filter with the claims substituted; `null` is every row.
    pub row_filter: Option<String>,
    /// Only aggregates may be read.
    pub aggregate_only: bool,
    /// Groups built from fewer rows are left out (aggregate-only grants).
    pub min_group_size: Option<u32>,
    /// Personal data: each read must declare its purpose (`X-Purpose`).
    pub purpose_required: bool,
    /// The purposes the grant serves; empty: any declared purpose.
    pub purposes: Vec<String>,
}

impl Grant {
    /// The grant as `/policy/check` shows it.
    pub fn summary(&self, schema: &Schema) -> GrantSummary {
        GrantSummary {
            view: self.view.clone(),
            columns: self
                .column_names(schema)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            row_filter: self.row_filter_text.clone(),
            aggregate_only: self.aggregate_only.is_some(),
            min_group_size: self.aggregate_only,
            purpose_required: self.purpose_required,
            purposes: self.purposes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::AuthMethod;
    use crate::policy::{MODEL_FILE, POLICY_FILE};

    const POLICY: &str = "\
p, partner, level:partners, read, allow, by-commune
p, stats, level:partners, aggregate, allow, counts
p, counter, level:partners, aggregate, allow,
p, broken, level:partners, read, allow, absent
";

    fn dataset(views: &str, personal: bool) -> DatasetEntry {
        let definition = format!(
            "id: trips\ntitle: Trips\npublisher: Mobility\nlicence: etalab-2.0\naccess: partners\n\
             personal_data: {personal}\nsource: {{file: trips.csv}}\nviews:\n{views}"
        );
        let schema = serde_json::json!({"fields": [
            {"name": "commune", "type": "string"},
            {"name": "minutes", "type": "integer"},
            {"name": "subscriber", "type": "string", "sensitivity": "personal"},
        ]});
        DatasetEntry {
            definition: serde_yaml_ng::from_str(&definition).unwrap(),
            schema: Arc::new(serde_json::from_value(schema).unwrap()),
            table_name: "ds_trips_1".into(),
            version: 1,
            record_count: 0,
            last_updated: String::new(),
            geometry: None,
            definition_hash: String::new(),
            written_at: crate::store::replica::WalPosition::START,
        }
    }

    const VIEWS: &str = concat!(
        "  - {name: by-commune, row_filter: 'commune=eq.${claims.org}'}\n",
        "  - {name: counts, columns: [commune, minutes], aggregate_only: true}\n",
    );

    async fn engine(settings: PolicySettings) -> (tempfile::TempDir, PolicyEngine) {
        let folder = tempfile::tempdir().unwrap();
        let model = include_str!("../../policies/model.conf");
        std::fs::write(folder.path().join(MODEL_FILE), model).unwrap();
        std::fs::write(folder.path().join(POLICY_FILE), POLICY).unwrap();
        let datasets = [("trips".to_owned(), AccessLevel::Partners)];
        let engine = PolicyEngine::load_with(folder.path(), &datasets, settings)
            .await
            .unwrap();
        (folder, engine)
    }

    fn caller(roles: &[&str], org: Option<&str>) -> Caller {
        let mut caller = Caller::anonymous();
        caller.auth_method = AuthMethod::GatewayToken;
        caller.subject = "someone".into();
        caller
            .roles
            .extend(roles.iter().map(|role| (*role).to_owned()));
        caller.org = org.map(str::to_owned);
        caller
    }

    /// A view's row filter gets the caller's claim; without it, refused.
    #[tokio::test]
    async fn row_filter_takes_the_claim_or_refuses() {
        let (_folder, engine) = engine(PolicySettings::default()).await;
        let entry = dataset(VIEWS, false);
        let grant = engine
            .grant(&caller(&["partner"], Some("Troyes")), &entry, Action::Read)
            .unwrap();
        assert_eq!(grant.view.as_deref(), Some("by-commune"));
        assert_eq!(grant.row_filter_text.as_deref(), Some("commune=eq.Troyes"));
        assert!(grant.row_filter.is_some());
        // No column list: every column but the personal ones.
        assert_eq!(grant.visible, [true, true, false]);
        assert_eq!(grant.aggregate_only, None);
        let refusal = engine
            .grant(&caller(&["partner"], None), &entry, Action::Read)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::ClaimMissing {
                claim: "org".into()
            }
        );
        assert_eq!(refusal.rule(), "row filter needs claim `org`");
        // A claim that would change the filter's meaning is refused, never spliced.
        let refusal = engine
            .grant(
                &caller(&["partner"], Some("a&commune=neq.x")),
                &entry,
                Action::Read,
            )
            .unwrap_err();
        assert!(
            matches!(refusal, Refusal::ClaimUnusable { .. }),
            "{refusal:?}"
        );
    }

    /// An aggregate grant is the fallback of a read; its minimum group size
    /// is the view's, else the configured default.
    #[tokio::test]
    async fn aggregate_fallback_and_minimum_group_size() {
        let (_folder, engine) = engine(PolicySettings { min_group_size: 5 }).await;
        let entry = dataset(VIEWS, false);
        let grant = engine
            .grant(&caller(&["stats"], None), &entry, Action::Read)
            .unwrap();
        assert_eq!(grant.view.as_deref(), Some("counts"));
        assert_eq!(grant.aggregate_only, Some(5));
        assert_eq!(grant.visible, [true, true, false]);
        let raw = ReadPlan::default();
        assert!(matches!(
            grant.admit_plan(&entry, &raw),
            Err(Refusal::AggregateOnly { .. })
        ));
        let with_minimum = dataset(
            "  - {name: counts, columns: [commune], aggregate_only: true, min_group_size: 20}\n",
            false,
        );
        let grant = engine
            .grant(&caller(&["stats"], None), &with_minimum, Action::Export)
            .unwrap();
        assert_eq!(grant.aggregate_only, Some(20));
        // An aggregate rule without a view: every column, the default minimum.
        let grant = engine
            .grant(&caller(&["counter"], None), &entry, Action::Read)
            .unwrap();
        assert_eq!(
            (grant.view.as_deref(), grant.aggregate_only),
            (None, Some(5))
        );
    }

    /// Refusals in order: not granted (401 for anonymous callers), a view the
    /// catalogue lacks, a purpose missing on personal data.
    #[tokio::test]
    async fn refusals() {
        let (_folder, engine) = engine(PolicySettings::default()).await;
        let entry = dataset(VIEWS, true);
        let anonymous = engine
            .grant(&Caller::anonymous(), &entry, Action::Read)
            .unwrap_err();
        assert!(
            matches!(
                anonymous,
                Refusal::NotGranted {
                    anonymous: true,
                    ..
                }
            ),
            "{anonymous:?}"
        );
        assert_eq!(anonymous.rule(), crate::policy::reasons::DEFAULT_DENY);
        let missing = engine
            .grant(&caller(&["broken"], None), &entry, Action::Read)
            .unwrap_err();
        assert_eq!(missing.view(), Some("absent"));
        let grant = engine
            .grant(&caller(&["partner"], Some("Troyes")), &entry, Action::Read)
            .unwrap();
        assert!(grant.purpose_required);
        assert!(matches!(
            grant.admit_purpose(&entry, None),
            Err(Refusal::PurposeRequired { .. })
        ));
        assert!(grant.admit_purpose(&entry, Some("  ")).is_err());
        assert!(grant.admit_purpose(&entry, Some("dossier 12")).is_ok());
        // A view listing purposes serves those only, case and accents folded.
        let with_purposes = dataset(
            "  - {name: by-commune, row_filter: 'commune=eq.${claims.org}', purposes: [Accompagnement social, Suivi de la précarité]}\n",
            false,
        );
        let grant = engine
            .grant(
                &caller(&["partner"], Some("Troyes")),
                &with_purposes,
                Action::Read,
            )
            .unwrap();
        assert!(grant.purpose_required, "a purpose list requires a purpose");
        for admitted in [
            "accompagnement social",
            "SUIVI DE LA PRECARITE",
            "suivi de la  précarité : dossier 12",
        ] {
            assert_eq!(
                grant.admit_purpose(&with_purposes, Some(admitted)),
                Ok(()),
                "{admitted}"
            );
        }
        for refused in [
            "prospection commerciale",
            "accompagnement socialement",
            "suivi",
        ] {
            let refusal = grant
                .admit_purpose(&with_purposes, Some(refused))
                .unwrap_err();
            assert!(
                matches!(refusal, Refusal::PurposeNotAllowed { .. }),
                "{refused}"
            );
            assert!(
                refusal.detail().contains("`Accompagnement social`"),
                "{}",
                refusal.detail()
            );
        }
        assert!(matches!(
            grant.admit_purpose(&with_purposes, None),
            Err(Refusal::PurposeRequired { .. })
        ));
        let mut restricted = caller(&["partner"], Some("Troyes"));
        restricted.allowed_datasets = Some(vec!["other".into()]);
        assert!(matches!(
            engine.grant(&restricted, &entry, Action::Read),
            Err(Refusal::ClientNotRegistered { .. })
        ));
    }
}

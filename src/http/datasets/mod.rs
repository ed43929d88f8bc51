//! The catalogue over HTTP: `GET /api/v1/datasets` and `GET /api/v1/datasets/{id}`.

pub mod list;
pub mod show;

use serde::Serialize;

use crate::auth::Caller;
use crate::catalog::DatasetEntry;
use crate::catalog::definition::{AccessLevel, MetadataVisibility};
use crate::catalog::register::{Confidentiality, ProcessingRecord, Review, Sharing, SourceKind};
use crate::domain::Schema;
use crate::policy::{Action, PolicyEngine, Refusal, public_columns};

/// A catalogue entry as callers see it (DESIGN.md "Catalogue entry").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetSummary {
    pub id: String,
    pub title: String,
    pub description: String,
    pub theme: String,
    pub keywords: Vec<String>,
    pub publisher: String,
    pub licence: String,
    pub access: AccessLevel,
    pub metadata_visibility: MetadataVisibility,
    pub update_frequency: Option<String>,
    pub personal_data: bool,
    pub last_updated: String,
    pub record_count: i64,
    /// Table Schema: only the columns this caller may see.
    pub schema: Schema,
    /// True when the caller may read rows or aggregates.
    pub can_read: bool,
    /// The view that applies to this caller, if any.
    pub view: Option<String>,
    /// Where the rows are.
    pub links: DatasetLinks,
    /// The data register's fields.
    #[serde(flatten)]
    pub register: RegisterSummary,
}

/// The register's decisions about a dataset; the GDPR processing record
/// only for callers who may read the data.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RegisterSummary {
    pub organisation: Option<String>,
    pub direction: Option<String>,
    /// `internal`, `external` or `mixed`.
    pub source_kind: Option<SourceKind>,
    pub source_provider: Option<String>,
    pub sharing: Option<Sharing>,
    pub confidentiality: Option<Confidentiality>,
    pub cost: Option<String>,
    pub review: Option<Review>,
    /// Personal data: the processing record (purposes, legal basis,
    /// retention, recipients, DPO contact), shown to callers who may read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing: Option<ProcessingRecord>,
    /// The purposes this caller's access serves (declare one in `X-Purpose`);
    /// absent when any declared purpose is accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_purposes: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetLinks {
    #[serde(rename = "self")]
    pub self_link: String,
    pub data: String,
    pub csv: String,
}

/// Whether `caller` may know that `entry` exists: [`summarize`] describes
/// it exactly then (the policy's `grant` hides it otherwise). The catalogue
/// page filters every entry with this and describes only the ones it shows.
pub fn may_know(policy: &PolicyEngine, caller: &Caller, entry: &DatasetEntry) -> bool {
    policy.may_see(&caller.roles, &crate::policy::dataset_ref(entry))
}

/// Describes `entry` for `caller`; `None` when the caller may not know it exists.
pub fn summarize(
    policy: &PolicyEngine,
    caller: &Caller,
    entry: &DatasetEntry,
) -> Option<DatasetSummary> {
    let grant = match policy.grant(caller, entry, Action::Read) {
        Ok(grant) => Some(grant),
        Err(Refusal::Hidden { .. }) => return None,
        Err(_) => None,
    };
    // Metadata only: describe the public columns, never the personal ones.
    let visible = match &grant {
        Some(grant) => grant.visible.clone(),
        None => public_columns(&entry.schema),
    };
    let schema = Schema {
        fields: entry
            .schema
            .fields
            .iter()
            .zip(&visible)
            .filter(|(_, visible)| **visible)
            .map(|(field, _)| field.clone())
            .collect(),
        primary_key: entry.schema.primary_key.clone(),
    };
    let definition = &entry.definition;
    let id = entry.id();
    Some(DatasetSummary {
        id: id.to_owned(),
        title: definition.title.clone(),
        description: definition.description.clone(),
        theme: definition.theme.clone(),
        keywords: definition.keywords.clone(),
        publisher: definition.publisher.clone(),
        licence: definition.licence.clone(),
        access: definition.access,
        metadata_visibility: definition.metadata_visibility,
        update_frequency: definition.update_frequency.clone(),
        personal_data: definition.personal_data,
        last_updated: entry.last_updated.clone(),
        record_count: entry.record_count,
        schema,
        can_read: grant.is_some(),
        register: RegisterSummary {
            organisation: definition.organisation.clone(),
            direction: definition.direction.clone(),
            source_kind: definition.source.kind,
            source_provider: definition.source.provider.clone(),
            sharing: definition.sharing.clone(),
            confidentiality: definition.confidentiality.clone(),
            cost: definition.cost.clone(),
            review: definition.review.clone(),
            processing: grant.as_ref().and_then(|_| definition.processing.clone()),
            allowed_purposes: grant
                .as_ref()
                .map(|grant| grant.purposes.clone())
                .unwrap_or_default(),
        },
        view: grant.and_then(|grant| grant.view),
        links: DatasetLinks {
            self_link: format!("/api/v1/datasets/{id}"),
            data: format!("/api/v1/data/{id}"),
            csv: format!("/api/v1/data/{id}?format=csv"),
        },
    })
}

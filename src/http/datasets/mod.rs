//! The catalogue over HTTP: `GET /api/v1/datasets` and `GET /api/v1/datasets/{id}`.

pub mod list;
pub mod show;

use serde::Serialize;

use crate::auth::Caller;
use crate::catalog::DatasetEntry;
use crate::catalog::definition::{AccessLevel, MetadataVisibility};
use crate::domain::Schema;
use crate::http::data::access::{dataset_ref, visible_columns};
use crate::policy::{Action, PolicyEngine};

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
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetLinks {
    #[serde(rename = "self")]
    pub self_link: String,
    pub data: String,
    pub csv: String,
}

/// Describes `entry` for `caller`; `None` when the caller may not know it exists.
pub fn summarize(
    policy: &PolicyEngine,
    caller: &Caller,
    entry: &DatasetEntry,
) -> Option<DatasetSummary> {
    let dataset = dataset_ref(entry);
    if !policy.may_see(&caller.roles, &dataset) {
        return None;
    }
    let read = policy.decide(&caller.roles, &dataset, Action::Read);
    let aggregate = policy.decide(&caller.roles, &dataset, Action::Aggregate);
    let decision = if read.allowed { read } else { aggregate };
    let view = decision.view.as_deref().and_then(|name| entry.view(name));
    let visible = if decision.allowed {
        visible_columns(&entry.schema, view)
    } else {
        // Metadata only: describe the public columns, never the personal ones.
        visible_columns(&entry.schema, Some(&NO_PERSONAL_COLUMNS))
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
        can_read: decision.allowed,
        view: if decision.allowed {
            decision.view
        } else {
            None
        },
        links: DatasetLinks {
            self_link: format!("/api/v1/datasets/{id}"),
            data: format!("/api/v1/data/{id}"),
            csv: format!("/api/v1/data/{id}?format=csv"),
        },
    })
}

static NO_PERSONAL_COLUMNS: std::sync::LazyLock<crate::catalog::definition::ViewDefinition> =
    std::sync::LazyLock::new(|| crate::catalog::definition::ViewDefinition {
        name: String::new(),
        columns: None,
        row_filter: None,
        aggregate_only: false,
        min_group_size: 11,
    });

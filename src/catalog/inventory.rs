//! The inventory: the register's tables computed from the catalogue, as the
//! authority's audit presented them (counts and percentages by organisation,
//! direction, theme, source, sharing, confidentiality, access level), with
//! cross-tabulations on request and the lists that need someone's attention
//! (reviews due, stale datasets, undecided ones).
//!
//! Every dataset is counted, restricted metadata included: the inventory is
//! for the people who keep the register (`inventory:read`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::definition::AccessLevel;
use super::entry::DatasetEntry;
use super::register::Decision;

/// A dimension of the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Organisation,
    Direction,
    Theme,
    SourceKind,
    Sharing,
    Confidentiality,
    Access,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Organisation,
        Dimension::Direction,
        Dimension::Theme,
        Dimension::SourceKind,
        Dimension::Sharing,
        Dimension::Confidentiality,
        Dimension::Access,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Organisation => "organisation",
            Dimension::Direction => "direction",
            Dimension::Theme => "theme",
            Dimension::SourceKind => "source_kind",
            Dimension::Sharing => "sharing",
            Dimension::Confidentiality => "confidentiality",
            Dimension::Access => "access",
        }
    }

    /// The dimension named `text` (`source` is accepted for `source_kind`).
    pub fn parse(text: &str) -> Option<Dimension> {
        if text == "source" {
            return Some(Dimension::SourceKind);
        }
        Dimension::ALL
            .into_iter()
            .find(|dimension| dimension.as_str() == text)
    }

    /// The entry's value; `None` when the register does not record it.
    pub fn value(self, entry: &DatasetEntry) -> Option<String> {
        let definition = &entry.definition;
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        match self {
            Dimension::Organisation => text(&definition.organisation),
            Dimension::Direction => text(&definition.direction),
            Dimension::Theme => text(&Some(definition.theme.clone())),
            Dimension::SourceKind => definition.source.kind.map(|kind| kind.as_str().to_owned()),
            Dimension::Sharing => definition
                .sharing
                .as_ref()
                .map(|sharing| sharing.decision.as_str().to_owned()),
            Dimension::Confidentiality => definition
                .confidentiality
                .as_ref()
                .map(|confidentiality| confidentiality.decision.as_str().to_owned()),
            Dimension::Access => Some(definition.access.as_str().to_owned()),
        }
    }
}

/// One line of a table: a value (`null`: not recorded), its count and its
/// share of every dataset in percent, rounded to one decimal.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Count {
    pub value: Option<String>,
    pub count: u64,
    pub percent: f64,
}

/// One cell of a cross-tabulation: a value per requested dimension.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cell {
    pub values: Vec<Option<String>>,
    pub count: u64,
    pub percent: f64,
}

/// A cross-tabulation over the dimensions asked for (`?by=theme,access`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CrossTable {
    pub dimensions: Vec<String>,
    /// Non-empty cells, ordered by their values.
    pub cells: Vec<Cell>,
}

/// A dataset in one of the attention lists.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Listed {
    pub id: String,
    pub title: String,
    /// Why it is listed (`next review 2025-01-01`).
    pub reason: String,
}

/// The inventory.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Inventory {
    /// Every dataset of the register.
    pub total: u64,
    /// One table per dimension, largest count first, keyed by dimension name.
    pub by: BTreeMap<String, Vec<Count>>,
    /// Present when `?by=` asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross: Option<CrossTable>,
    /// Datasets whose `review.next_review` is past.
    pub due_reviews: Vec<Listed>,
    /// Datasets with no new version within what `update_frequency` promises.
    pub stale: Vec<Listed>,
    /// Datasets whose access is `undecided` or with a decision still to define.
    pub undecided: Vec<Listed>,
    /// Register entries with no data published yet.
    pub without_data: Vec<Listed>,
}

/// Percent of `count` in `total`, rounded to one decimal.
pub fn percent(count: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (count as f64 * 1000.0 / total as f64).round() / 10.0
}

/// How long a version stays fresh under a DCAT frequency; `None`: no promise.
pub fn freshness_days(frequency: &str) -> Option<i64> {
    Some(match frequency.trim().to_ascii_lowercase().as_str() {
        "continuous" | "hourly" | "daily" => 1,
        "weekly" => 7,
        "biweekly" | "fortnightly" => 14,
        "monthly" => 31,
        "bimonthly" => 62,
        "quarterly" => 92,
        "semiannual" | "semi_annual" | "biannual" => 183,
        "annual" | "yearly" => 366,
        "biennial" => 731,
        "triennial" => 1096,
        _ => return None,
    })
}

/// Computes the inventory of `entries` at `now`, with an optional cross-tabulation.
pub fn compute(
    entries: &[&DatasetEntry],
    cross: Option<&[Dimension]>,
    now: DateTime<Utc>,
) -> Inventory {
    let total = entries.len() as u64;
    let mut by = BTreeMap::new();
    for dimension in Dimension::ALL {
        let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
        for entry in entries {
            *counts.entry(dimension.value(entry)).or_default() += 1;
        }
        let mut table: Vec<Count> = counts
            .into_iter()
            .map(|(value, count)| Count {
                value,
                count,
                percent: percent(count, total),
            })
            .collect();
        table.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        by.insert(dimension.as_str().to_owned(), table);
    }
    let cross = cross.map(|dimensions| {
        let mut cells: BTreeMap<Vec<Option<String>>, u64> = BTreeMap::new();
        for entry in entries {
            let key = dimensions
                .iter()
                .map(|dimension| dimension.value(entry))
                .collect();
            *cells.entry(key).or_default() += 1;
        }
        CrossTable {
            dimensions: dimensions
                .iter()
                .map(|dimension| dimension.as_str().to_owned())
                .collect(),
            cells: cells
                .into_iter()
                .map(|(values, count)| Cell {
                    values,
                    count,
                    percent: percent(count, total),
                })
                .collect(),
        }
    });
    let today = now.date_naive();
    let listed = |entry: &DatasetEntry, reason: String| Listed {
        id: entry.id().to_owned(),
        title: entry.definition.title.clone(),
        reason,
    };
    let mut due_reviews = Vec::new();
    let mut stale = Vec::new();
    let mut undecided = Vec::new();
    let mut without_data = Vec::new();
    for entry in entries {
        let definition = &entry.definition;
        if let Some(next) = definition
            .review
            .as_ref()
            .and_then(|review| review.next_review)
            && next < today
        {
            due_reviews.push(listed(entry, format!("next review {next}")));
        }
        if entry.version == 0 {
            without_data.push(listed(entry, "no data published yet".into()));
        } else if let Some(frequency) = definition.update_frequency.as_deref()
            && let Some(days) = freshness_days(frequency)
            && let Some(updated) = last_update(&entry.last_updated)
            && (now - updated).num_days() > days
        {
            stale.push(listed(
                entry,
                format!(
                    "{frequency} promised, last version {}",
                    updated.date_naive()
                ),
            ));
        }
        let to_define = [
            definition.sharing.as_ref().map(|sharing| sharing.decision),
            definition
                .confidentiality
                .as_ref()
                .map(|confidentiality| confidentiality.decision),
        ]
        .contains(&Some(Decision::ToDefine));
        if definition.access == AccessLevel::Undecided || to_define {
            let reason = if to_define {
                "a register decision is still to define"
            } else {
                "access level undecided"
            };
            undecided.push(listed(entry, reason.into()));
        }
    }
    Inventory {
        total,
        by,
        cross,
        due_reviews,
        stale,
        undecided,
        without_data,
    }
}

fn last_update(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|time| time.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Schema;

    fn entry(extra: &str, version: i64, last_updated: &str) -> DatasetEntry {
        let id = format!("d{}", extra.len());
        DatasetEntry {
            definition: serde_yaml_ng::from_str(&format!(
                "id: {id}\ntitle: T\npublisher: P\nlicence: l\nsource: {{}}\n{extra}"
            ))
            .unwrap(),
            schema: Arc::new(Schema {
                fields: vec![],
                primary_key: None,
            }),
            table_name: String::new(),
            version,
            record_count: 0,
            last_updated: last_updated.into(),
            geometry: None,
            definition_hash: String::new(),
            written_at: crate::store::replica::WalPosition::START,
        }
    }

    /// Counts, percentages rounded to one decimal, cross-tabulation and the
    /// three attention lists.
    #[test]
    fn tables_and_lists() {
        let now = "2026-06-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let entries = [
            entry(
                "access: open\ntheme: Culture\nupdate_frequency: monthly\nreview: {next_review: 2026-01-01}\n",
                1,
                "2026-03-01T00:00:00Z",
            ),
            entry(
                "access: internal\ntheme: Culture\nupdate_frequency: annual\nsharing: {decision: no}\n",
                2,
                "2026-03-01T00:00:00Z",
            ),
            entry(
                "access: undecided\ntheme: Sports\nconfidentiality: {decision: to_define}\n",
                0,
                "",
            ),
        ];
        let references: Vec<&DatasetEntry> = entries.iter().collect();
        let inventory = compute(
            &references,
            Some(&[Dimension::Theme, Dimension::Access]),
            now,
        );
        assert_eq!(inventory.total, 3);
        let theme = &inventory.by["theme"];
        assert_eq!(
            (theme[0].value.as_deref(), theme[0].count, theme[0].percent),
            (Some("Culture"), 2, 66.7)
        );
        assert_eq!(theme[1].percent, 33.3);
        let sharing = &inventory.by["sharing"];
        assert_eq!(
            (sharing[0].value.as_deref(), sharing[0].count),
            (None, 2),
            "not recorded counts as null"
        );
        let cross = inventory.cross.unwrap();
        assert_eq!(cross.dimensions, ["theme", "access"]);
        assert_eq!(cross.cells.len(), 3);
        assert_eq!(
            cross.cells[0].values,
            [Some("Culture".to_owned()), Some("internal".to_owned())]
        );
        assert_eq!(inventory.due_reviews.len(), 1);
        assert_eq!(inventory.due_reviews[0].reason, "next review 2026-01-01");
        assert_eq!(
            inventory.stale.len(),
            1,
            "monthly, last version three months ago"
        );
        assert!(inventory.stale[0].reason.contains("monthly"));
        assert_eq!(inventory.undecided.len(), 1);
        assert_eq!(inventory.without_data.len(), 1);
    }

    /// The seed's rounding: 160 of 653 is 24.5 %, 452 is 69.2 %.
    #[test]
    fn rounds_like_the_audit() {
        assert_eq!(percent(160, 653), 24.5);
        assert_eq!(percent(452, 653), 69.2);
        assert_eq!(percent(41, 653), 6.3);
        assert_eq!(percent(0, 0), 0.0);
    }
}

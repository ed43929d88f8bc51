//! Bounds on what one read query may ask, so that no query string can carry
//! a statement past a store's own limits (PostgreSQL: 1,664 result columns,
//! 65,535 bound values; SQLite: 2,000 columns, 32,766 bound values, an
//! expression tree 1,000 deep). Beyond a bound the query is a 400 that names
//! the setting and its value, never a 500 from the store.
//!
//! The settings are the `[query]` section of the configuration; their upper
//! bounds ([`QueryLimits::check`]) keep them below what either store accepts.

use serde::Deserialize;

use super::error::QueryError;
use super::plan::{Filter, Operator};

/// Bounds on what a query may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// Deepest allowed nesting of `and()`/`or()` groups; `or=(…)` is level 1.
    pub max_nesting: usize,
    /// Most items in `select` (after `*` is expanded).
    pub max_select_items: usize,
    /// Most conditions in all filters together, nested ones included.
    pub max_filters: usize,
    /// Most items in one `in.(…)` list.
    pub max_in_list: usize,
    /// Most terms in `order`.
    pub max_order_items: usize,
    /// Most values bound as SQL parameters for the query's filters (each
    /// compared value and each `in` item counts one).
    pub max_bound_values: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_nesting: 16,
            max_select_items: 256,
            max_filters: 100,
            max_in_list: 1_000,
            max_order_items: 32,
            max_bound_values: 10_000,
        }
    }
}

/// The highest value each setting may take, with the store limit it stays
/// under. A view's row filter and the paging values are bound too: the
/// margins below the stores' limits leave them room.
const CEILINGS: [(&str, usize, &str); 6] = [
    (
        "max_nesting",
        64,
        "SQLite parses an expression at most 1,000 levels deep",
    ),
    (
        "max_select_items",
        1_600,
        "PostgreSQL returns at most 1,664 columns",
    ),
    (
        "max_filters",
        500,
        "SQLite parses an expression at most 1,000 levels deep",
    ),
    ("max_in_list", 32_000, "SQLite binds at most 32,766 values"),
    (
        "max_order_items",
        1_600,
        "PostgreSQL sorts by at most 1,664 keys",
    ),
    (
        "max_bound_values",
        32_000,
        "SQLite binds at most 32,766 values",
    ),
];

impl QueryLimits {
    /// Refuses settings of 0 (no query could pass) or beyond what a store accepts.
    pub fn check(&self) -> Result<(), String> {
        let values = [
            self.max_nesting,
            self.max_select_items,
            self.max_filters,
            self.max_in_list,
            self.max_order_items,
            self.max_bound_values,
        ];
        for ((name, ceiling, reason), value) in CEILINGS.iter().zip(values) {
            if value == 0 || value > *ceiling {
                return Err(format!(
                    "query.{name} is {value}: it must be between 1 and {ceiling} ({reason})"
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn check_select(&self, items: usize) -> Result<(), QueryError> {
        exceeds(
            "select",
            items,
            self.max_select_items,
            "max_select_items",
            "items",
        )
    }

    pub(crate) fn check_order(&self, terms: usize) -> Result<(), QueryError> {
        exceeds(
            "order",
            terms,
            self.max_order_items,
            "max_order_items",
            "terms",
        )
    }
}

fn exceeds(
    parameter: &str,
    count: usize,
    max: usize,
    setting: &'static str,
    what: &'static str,
) -> Result<(), QueryError> {
    if count <= max {
        return Ok(());
    }
    Err(QueryError::LimitExceeded {
        parameter: super::error::excerpt(parameter),
        setting,
        max,
        what,
    })
}

/// The conditions and bound values of the filters parsed so far, charged one
/// filter parameter at a time so the error names the parameter that went over.
pub(crate) struct FilterBudget<'a> {
    limits: &'a QueryLimits,
    conditions: usize,
    bound_values: usize,
}

impl<'a> FilterBudget<'a> {
    pub(crate) fn new(limits: &'a QueryLimits) -> Self {
        FilterBudget {
            limits,
            conditions: 0,
            bound_values: 0,
        }
    }

    /// Adds `filter` (from parameter `parameter`) to the totals.
    pub(crate) fn charge(&mut self, parameter: &str, filter: &Filter) -> Result<(), QueryError> {
        self.walk(parameter, filter)?;
        let limits = self.limits;
        exceeds(
            parameter,
            self.conditions,
            limits.max_filters,
            "max_filters",
            "conditions",
        )?;
        exceeds(
            parameter,
            self.bound_values,
            limits.max_bound_values,
            "max_bound_values",
            "bound values",
        )
    }

    fn walk(&mut self, parameter: &str, filter: &Filter) -> Result<(), QueryError> {
        match filter {
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().try_for_each(|part| self.walk(parameter, part))
            }
            Filter::Not(inner) => self.walk(parameter, inner),
            Filter::Condition(condition) => {
                self.conditions += 1;
                self.bound_values += match &condition.operator {
                    Operator::In(values) => {
                        exceeds(
                            parameter,
                            values.len(),
                            self.limits.max_in_list,
                            "max_in_list",
                            "items in an in.() list",
                        )?;
                        values.len()
                    }
                    Operator::Is(_) => 0,
                    _ => 1,
                };
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldType, Schema};
    use crate::query::parse_read_query;

    fn schema() -> Schema {
        Schema {
            fields: vec![
                Field::new("id", FieldType::Integer),
                Field::new("commune", FieldType::String),
            ],
            primary_key: None,
        }
    }

    fn small() -> QueryLimits {
        QueryLimits {
            max_nesting: 4,
            max_select_items: 3,
            max_filters: 4,
            max_in_list: 5,
            max_order_items: 2,
            max_bound_values: 8,
        }
    }

    fn parse(key: &str, value: &str) -> Result<(), QueryError> {
        parse_pairs(&[(key, value.to_owned())])
    }

    fn parse_pairs(pairs: &[(&str, String)]) -> Result<(), QueryError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        parse_read_query(&pairs, &schema(), &[true, true], &small()).map(|_| ())
    }

    fn limit_of(result: Result<(), QueryError>) -> (String, &'static str, usize) {
        match result {
            Err(QueryError::LimitExceeded {
                parameter,
                setting,
                max,
                ..
            }) => (parameter, setting, max),
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    /// Each limit admits its own value and refuses one more, naming the
    /// parameter, the setting and its value.
    #[test]
    fn each_limit_admits_its_value_and_refuses_one_more() {
        assert!(parse("select", "a:id,b:id,c:id").is_ok());
        assert_eq!(
            limit_of(parse("select", "a:id,b:id,c:id,d:id")),
            ("select".into(), "max_select_items", 3)
        );
        // `*` counts the columns it stands for.
        assert!(parse("select", "*,a:id").is_ok());
        assert!(parse("select", "*,a:id,b:id").is_err());
        assert!(parse("order", "id,commune.desc").is_ok());
        assert_eq!(
            limit_of(parse("order", "id,commune,id")),
            ("order".into(), "max_order_items", 2)
        );
        assert!(parse("id", "in.(1,2,3,4,5)").is_ok());
        assert_eq!(
            limit_of(parse("id", "in.(1,2,3,4,5,6)")),
            ("id".into(), "max_in_list", 5)
        );
        assert_eq!(
            limit_of(parse("or", "(id.in.(1,2,3,4,5,6))")),
            ("or".into(), "max_in_list", 5)
        );
    }

    /// Conditions count across parameters, nested groups and `not`; the
    /// parameter that goes over is named.
    #[test]
    fn conditions_count_across_parameters_and_groups() {
        let four = [
            ("id", "eq.1".to_owned()),
            (
                "or",
                "(id.eq.2,and(commune.eq.a,not.and(id.is.null)))".to_owned(),
            ),
        ];
        assert!(parse_pairs(&four).is_ok());
        let mut five = four.to_vec();
        five.push(("commune", "neq.b".to_owned()));
        assert_eq!(
            limit_of(parse_pairs(&five)),
            ("commune".into(), "max_filters", 4)
        );
        assert_eq!(
            limit_of(parse("and", "(id.eq.1,id.eq.2,id.eq.3,id.eq.4,id.eq.5)")),
            ("and".into(), "max_filters", 4)
        );
    }

    /// Bound values add up over `in` lists and comparisons; `is` binds none.
    #[test]
    fn bound_values_add_up() {
        let eight = [
            ("id", "in.(1,2,3,4,5)".to_owned()),
            ("commune", "in.(a,b)".to_owned()),
            ("id", "gt.0".to_owned()),
            ("or", "(commune.is.null)".to_owned()),
        ];
        assert!(parse_pairs(&eight).is_ok());
        let mut nine = eight.to_vec();
        nine[3] = ("or", "(commune.eq.c)".to_owned());
        assert_eq!(
            limit_of(parse_pairs(&nine)),
            ("or".into(), "max_bound_values", 8)
        );
    }

    /// The error names the setting and its value, as users read it.
    #[test]
    fn error_names_the_setting() {
        let error = parse("select", "a:id,b:id,c:id,d:id").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `select`: more than 3 items (the limit set by `query.max_select_items`)"
        );
        assert_eq!(error.kind_slug(), "limit-exceeded");
        assert_eq!(error.postgrest_code(), "54000");
    }

    /// Defaults pass the check; zero and values past a store's limit do not.
    #[test]
    fn settings_stay_within_the_stores() {
        assert_eq!(QueryLimits::default().check(), Ok(()));
        let zero = QueryLimits {
            max_filters: 0,
            ..QueryLimits::default()
        };
        assert!(zero.check().unwrap_err().contains("query.max_filters"));
        let wide = QueryLimits {
            max_select_items: 2_000,
            ..QueryLimits::default()
        };
        assert!(wide.check().unwrap_err().contains("1,664"));
        let many = QueryLimits {
            max_bound_values: 40_000,
            ..QueryLimits::default()
        };
        assert!(many.check().unwrap_err().contains("32,766"));
    }
}

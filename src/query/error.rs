//! Why a read query string was refused. Each error names the query parameter
//! and the offending text, and maps to a problem-document slug, a title and
//! PostgREST's error code so PostgREST clients show it.
//!
//! A column the caller may not see is reported exactly like a column that
//! does not exist: [`QueryError::UnknownColumn`] only carries the requested
//! name and a suggestion drawn from visible columns.

use crate::domain::FieldType;

/// Longest piece of user text quoted in a message; longer texts are cut.
const EXCERPT_CHARS: usize = 60;

/// A read query that cannot become a [`crate::query::ReadPlan`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The text does not follow the grammar (bad syntax, unknown operator,
    /// repeated parameter, bad limit...).
    #[error("parameter `{parameter}`: {message}")]
    Malformed {
        parameter: String,
        message: String,
        hint: Option<String>,
    },
    /// Conditions nested deeper than the configured limit.
    #[error("parameter `{parameter}`: conditions are nested deeper than {max} levels")]
    TooDeep { parameter: String, max: usize },
    /// A column that does not exist or that the caller may not see.
    #[error("parameter `{parameter}`: column `{column}` does not exist")]
    UnknownColumn {
        parameter: String,
        column: String,
        /// The closest visible column, if one is close enough.
        suggestion: Option<String>,
    },
    /// A value that does not parse as the column's type.
    #[error(
        "parameter `{parameter}`: `{value}` is not a valid {} value for column `{column}`",
        type_name(*field_type)
    )]
    InvalidValue {
        parameter: String,
        column: String,
        field_type: FieldType,
        value: String,
    },
    /// An operator that does not apply to the column's type (`like` on a number,
    /// `is.true` on a text).
    #[error(
        "parameter `{parameter}`: operator `{operator}` does not apply to column `{column}` of type {}",
        type_name(*field_type)
    )]
    InvalidOperator {
        parameter: String,
        column: String,
        field_type: FieldType,
        operator: String,
    },
    /// An aggregate that cannot be computed as asked.
    #[error("parameter `{parameter}`: {message}")]
    InvalidAggregate { parameter: String, message: String },
    /// More of something (select items, conditions, `in` items…) than a
    /// setting of the `[query]` section allows.
    #[error("parameter `{parameter}`: more than {max} {what} (the limit set by `query.{setting}`)")]
    LimitExceeded {
        parameter: String,
        /// The setting's name in the `[query]` section.
        setting: &'static str,
        max: usize,
        /// What was counted, in the plural.
        what: &'static str,
    },
}

impl QueryError {
    /// The problem type slug (`/problems/{slug}`).
    pub fn kind_slug(&self) -> &'static str {
        match self {
            QueryError::Malformed { .. } | QueryError::TooDeep { .. } => "invalid-query",
            QueryError::UnknownColumn { .. } => "unknown-column",
            QueryError::InvalidValue { .. } => "invalid-value",
            QueryError::InvalidOperator { .. } => "invalid-operator",
            QueryError::InvalidAggregate { .. } => "invalid-aggregate",
            QueryError::LimitExceeded { .. } => "limit-exceeded",
        }
    }

    /// The problem title, the same for every error of a kind.
    pub fn title(&self) -> &'static str {
        match self {
            QueryError::Malformed { .. } | QueryError::TooDeep { .. } => "Malformed query",
            QueryError::UnknownColumn { .. } => "Unknown column",
            QueryError::InvalidValue { .. } => "Invalid value",
            QueryError::InvalidOperator { .. } => "Invalid operator",
            QueryError::InvalidAggregate { .. } => "Invalid aggregate",
            QueryError::LimitExceeded { .. } => "Limit exceeded",
        }
    }

    /// The code PostgREST (or PostgreSQL behind it) gives for this error.
    pub fn postgrest_code(&self) -> &'static str {
        match self {
            QueryError::Malformed { .. } | QueryError::TooDeep { .. } => "PGRST100",
            QueryError::UnknownColumn { .. } => "42703",
            QueryError::InvalidValue { .. } => "22P02",
            QueryError::InvalidOperator { .. } => "42883",
            QueryError::InvalidAggregate { .. } => "PGRST123",
            // PostgreSQL's class 54, program_limit_exceeded.
            QueryError::LimitExceeded { .. } => "54000",
        }
    }

    /// A suggestion for fixing the query, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            QueryError::Malformed { hint, .. } => hint.clone(),
            QueryError::TooDeep { .. } => {
                Some("flatten the and()/or() groups of the condition".to_owned())
            }
            QueryError::UnknownColumn { suggestion, .. } => suggestion
                .as_ref()
                .map(|column| format!("did you mean `{column}`?")),
            QueryError::InvalidValue { field_type, .. } => Some(format!(
                "a {} value looks like {}",
                type_name(*field_type),
                type_example(*field_type)
            )),
            QueryError::InvalidOperator { .. } => Some(
                "like and ilike apply to text, date and datetime columns; is.true, is.false and is.unknown to boolean columns"
                    .to_owned(),
            ),
            QueryError::InvalidAggregate { .. } => None,
            QueryError::LimitExceeded { .. } => {
                Some("ask for less in one request, or split it into several".to_owned())
            }
        }
    }

    pub(crate) fn malformed(parameter: &str, message: impl Into<String>) -> QueryError {
        QueryError::Malformed {
            parameter: excerpt(parameter),
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn malformed_with_hint(
        parameter: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> QueryError {
        QueryError::Malformed {
            parameter: excerpt(parameter),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub(crate) fn invalid_aggregate(parameter: &str, message: impl Into<String>) -> QueryError {
        QueryError::InvalidAggregate {
            parameter: excerpt(parameter),
            message: message.into(),
        }
    }
}

/// The Table Schema name of a type, as shown to users.
pub fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Integer => "integer",
        FieldType::Number => "number",
        FieldType::String => "string",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Geopoint => "geopoint",
        FieldType::Geojson => "geojson",
    }
}

fn type_example(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Integer => "42",
        FieldType::Number => "3.5",
        FieldType::String => "any text",
        FieldType::Boolean => "true or false",
        FieldType::Date => "2024-01-31 (YYYY-MM-DD)",
        FieldType::Datetime => "2024-01-31T08:00:00Z (RFC 3339)",
        FieldType::Geopoint => "48.3,4.08 (lat,lon)",
        FieldType::Geojson => "{\"type\":\"Point\",\"coordinates\":[4.08,48.3]}",
    }
}

/// `text` cut to a length fit for a message, on a character boundary.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long user text is cut on a character boundary, short text kept whole.
    #[test]
    fn excerpts_cut_long_text_safely() {
        assert_eq!(excerpt("commune"), "commune");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    /// Each kind maps to its slug, title and PostgREST code.
    #[test]
    fn kinds_map_to_slug_title_and_code() {
        let unknown = QueryError::UnknownColumn {
            parameter: "select".into(),
            column: "comune".into(),
            suggestion: Some("commune".into()),
        };
        assert_eq!(unknown.kind_slug(), "unknown-column");
        assert_eq!(unknown.title(), "Unknown column");
        assert_eq!(unknown.postgrest_code(), "42703");
        assert_eq!(unknown.hint().as_deref(), Some("did you mean `commune`?"));
        assert_eq!(
            unknown.to_string(),
            "parameter `select`: column `comune` does not exist"
        );
        let malformed = QueryError::malformed("or", "unbalanced parentheses");
        assert_eq!(malformed.kind_slug(), "invalid-query");
        assert_eq!(malformed.postgrest_code(), "PGRST100");
        assert_eq!(malformed.hint(), None);
        let value = QueryError::InvalidValue {
            parameter: "n".into(),
            column: "n".into(),
            field_type: FieldType::Integer,
            value: "abc".into(),
        };
        assert_eq!(value.postgrest_code(), "22P02");
        assert_eq!(
            value.to_string(),
            "parameter `n`: `abc` is not a valid integer value for column `n`"
        );
        let aggregate = QueryError::invalid_aggregate("select", "x");
        assert_eq!(aggregate.kind_slug(), "invalid-aggregate");
        assert_eq!(aggregate.postgrest_code(), "PGRST123");
    }
}

//! The typed read plan: what `GET /data/{id}` asks for once its query string
//! has been parsed and checked against the columns the caller may see.
//! Column references are indices into the dataset's schema; nothing here is a
//! raw user string that could reach SQL as text.

use crate::domain::Value;

/// Index of a column in the dataset's [`crate::domain::Schema`].
pub type ColumnIndex = usize;

/// A parsed, checked read request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadPlan {
    /// Output items, in order. Empty means every visible column.
    pub select: Vec<SelectItem>,
    /// Conditions ANDed together (repeated keys, `and=()`, `or=()`).
    pub filter: Option<Filter>,
    pub order: Vec<OrderTerm>,
    pub limit: Option<u64>,
    pub offset: u64,
}

impl ReadPlan {
    /// True when the plan selects at least one aggregate (then plain columns group).
    pub fn is_aggregate(&self) -> bool {
        self.select
            .iter()
            .any(|item| matches!(item, SelectItem::Aggregate { .. }))
    }
}

/// One item of `select=`.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `col` or `alias:col`.
    Column {
        column: ColumnIndex,
        alias: Option<String>,
    },
    /// `col.sum()`, `alias:col.avg()`, `count()`, `col.count()`.
    Aggregate {
        function: AggregateFunction,
        /// `None` only for `count()`.
        column: Option<ColumnIndex>,
        alias: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFunction {
    /// The default output key (PostgREST's): `count`, `sum`, `avg`, `min`, `max`.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
        }
    }
}

/// A boolean condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Condition(Condition),
}

/// `column op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: ColumnIndex,
    pub operator: Operator,
}

/// An operator with its already-typed operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Eq(Value),
    Neq(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    /// SQL LIKE pattern, case-sensitive, to be used with `ESCAPE '\'` (one
    /// backslash). Built by [`Operator::like_pattern`] as PostgREST does:
    /// `*` became `%`; `%` and `_` stay wildcards and `\` escapes, so
    /// clients written for PostgREST (`like.*Alba*`, `like.%Alba%`) match
    /// the same rows.
    Like(String),
    /// Case-insensitive LIKE (ASCII folding at least); same pattern convention
    /// as [`Operator::Like`].
    Ilike(String),
    /// `in.(a,b,c)`; an empty list matches nothing.
    In(Vec<Value>),
    Is(IsValue),
}

impl Operator {
    /// Turns a PostgREST pattern into a SQL LIKE pattern for `ESCAPE '\'`:
    /// `*` becomes `%`, everything else is kept (PostgREST's behaviour). A
    /// trailing lone `\`, which PostgreSQL refuses, is made to match itself.
    pub fn like_pattern(text: &str) -> String {
        let mut pattern: String = text
            .chars()
            .map(|character| if character == '*' { '%' } else { character })
            .collect();
        let trailing = pattern
            .chars()
            .rev()
            .take_while(|character| *character == '\\')
            .count();
        if trailing % 2 == 1 {
            pattern.push('\\');
        }
        pattern
    }
}

/// Operand of `is.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullsOrder {
    First,
    Last,
}

/// One term of `order=`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTerm {
    pub column: ColumnIndex,
    pub descending: bool,
    /// `None`: the PostgreSQL default (last when ascending, first when descending).
    pub nulls: Option<NullsOrder>,
}

impl OrderTerm {
    /// Where nulls go, with PostgreSQL's default made explicit.
    pub fn nulls_placement(&self) -> NullsOrder {
        self.nulls.unwrap_or(if self.descending {
            NullsOrder::First
        } else {
            NullsOrder::Last
        })
    }
}

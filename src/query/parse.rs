//! The PostgREST read grammar: decoded query parameters become a [`ReadPlan`].
//!
//! Every column name is resolved against the schema and the caller's
//! visibility mask here, once; a hidden column is refused exactly like a
//! missing one. Values are typed with [`Value::parse`] for their column, so
//! nothing downstream sees raw user text except `like` patterns, which are
//! bound as parameters. Nested `and()`/`or()` groups are parsed recursively
//! with an explicit depth bound, so no input can overflow the stack.

use std::collections::HashSet;

use super::error::{QueryError, excerpt};
use super::plan::{
    AggregateFunction, ColumnIndex, Condition, Filter, IsValue, NullsOrder, Operator, OrderTerm,
    ReadPlan, SelectItem,
};
use crate::domain::{Field, FieldType, Schema, Value};

/// Bounds on what a query may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Deepest allowed nesting of `and()`/`or()` groups; `or=(…)` is level 1.
    pub max_nesting: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_nesting: 16 }
    }
}

/// Keys the HTTP layer reads itself (output format, paging, CSV options).
const IGNORED_KEYS: &[&str] = &["format", "page", "page_size", "csv_sep", "bom"];

/// Keys that may appear once and are not filters.
const SINGLE_KEYS: &[&str] = &["select", "order", "limit", "offset"];

const OPERATOR_HINT: &str = "operators are eq, neq, gt, gte, lt, lte, like, ilike, in and is, \
     optionally prefixed by not. (e.g. `commune=not.eq.Troyes`)";

/// Parses a whole read query: `select`, `order`, `limit`, `offset`, logic
/// groups and column filters. `params` are decoded pairs in request order;
/// `visible[i]` says whether schema column `i` may be seen (missing = hidden).
pub fn parse_read_query(
    params: &[(String, String)],
    schema: &Schema,
    visible: &[bool],
    limits: &QueryLimits,
) -> Result<ReadPlan, QueryError> {
    let columns = Columns { schema, visible };
    let mut plan = ReadPlan::default();
    let mut filters = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in params {
        let key = key.as_str();
        if SINGLE_KEYS.contains(&key) && !seen.insert(key) {
            return Err(QueryError::malformed(key, "is given more than once"));
        }
        match key {
            "select" => plan.select = parse_select(value, &columns)?,
            "order" => plan.order = parse_order(value, &columns)?,
            "limit" => plan.limit = Some(parse_count(key, value)?),
            "offset" => plan.offset = parse_count(key, value)?,
            _ if IGNORED_KEYS.contains(&key) => {}
            _ => filters.push(parse_filter_parameter(key, value, &columns, limits)?),
        }
    }
    plan.filter = combine(filters);
    check_aggregate_order(&plan, &columns)?;
    Ok(plan)
}

/// Parses only filters (column filters and `or`/`and`/`not.or`/`not.and`),
/// as in a view's row filter `commune=eq.Troyes`. Any other reserved key is
/// an error, not silently dropped. `Ok(None)` when there is no filter.
pub fn parse_filters(
    params: &[(String, String)],
    schema: &Schema,
    visible: &[bool],
) -> Result<Option<Filter>, QueryError> {
    let columns = Columns { schema, visible };
    let limits = QueryLimits::default();
    let mut filters = Vec::new();
    for (key, value) in params {
        let key = key.as_str();
        if SINGLE_KEYS.contains(&key) || IGNORED_KEYS.contains(&key) {
            return Err(QueryError::malformed(key, "is not a filter"));
        }
        filters.push(parse_filter_parameter(key, value, &columns, &limits)?);
    }
    Ok(combine(filters))
}

/// Repeated filter keys are ANDed; one filter stays as it is.
fn combine(mut filters: Vec<Filter>) -> Option<Filter> {
    match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Filter::And(filters)),
    }
}

/// The schema seen through the caller's visibility mask.
struct Columns<'a> {
    schema: &'a Schema,
    visible: &'a [bool],
}

impl Columns<'_> {
    fn is_visible(&self, index: ColumnIndex) -> bool {
        self.visible.get(index).copied().unwrap_or(false)
    }

    /// The index of a visible column, or the unknown-column error, which is
    /// the same whether the column is missing or hidden.
    fn resolve(&self, parameter: &str, name: &str) -> Result<ColumnIndex, QueryError> {
        match self.schema.position(name) {
            Some(index) if self.is_visible(index) => Ok(index),
            _ => Err(QueryError::UnknownColumn {
                parameter: excerpt(parameter),
                column: excerpt(name),
                suggestion: self.closest_visible(name),
            }),
        }
    }

    fn field(&self, index: ColumnIndex) -> &Field {
        &self.schema.fields[index]
    }

    fn visible_indices(&self) -> impl Iterator<Item = ColumnIndex> + '_ {
        (0..self.schema.fields.len()).filter(|index| self.is_visible(*index))
    }

    /// The visible column within edit distance 2 of `name`, closest first.
    fn closest_visible(&self, name: &str) -> Option<String> {
        const MAX_DISTANCE: usize = 2;
        let length = name.chars().count();
        self.visible_indices()
            .map(|index| &self.field(index).name)
            .filter(|candidate| candidate.chars().count().abs_diff(length) <= MAX_DISTANCE)
            .map(|candidate| (edit_distance(name, candidate), candidate))
            .filter(|(distance, _)| *distance <= MAX_DISTANCE)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, candidate)| candidate.clone())
    }
}

/// Levenshtein distance over characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

// ---------------------------------------------------------------- select

fn parse_select(value: &str, columns: &Columns) -> Result<Vec<SelectItem>, QueryError> {
    const PARAMETER: &str = "select";
    if value.trim().is_empty() {
        return Err(QueryError::malformed_with_hint(
            PARAMETER,
            "is empty",
            "list columns, e.g. `select=commune,population`, or use `select=*`",
        ));
    }
    if value.trim() == "*" {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    for raw in value.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            return Err(QueryError::malformed(
                PARAMETER,
                format!("has an empty item in `{}`", excerpt(value)),
            ));
        }
        if item == "*" {
            items.extend(columns.visible_indices().map(|column| SelectItem::Column {
                column,
                alias: None,
            }));
            continue;
        }
        items.push(parse_select_item(item, columns)?);
    }
    let mut names = HashSet::new();
    for item in &items {
        let name = output_name(item, columns);
        if !names.insert(name) {
            return Err(QueryError::malformed_with_hint(
                PARAMETER,
                format!("output name `{}` appears more than once", excerpt(name)),
                "give one of the items an alias, e.g. `total:population.sum()`",
            ));
        }
    }
    Ok(items)
}

fn parse_select_item(item: &str, columns: &Columns) -> Result<SelectItem, QueryError> {
    const PARAMETER: &str = "select";
    if item.contains("::") {
        return Err(QueryError::malformed(
            PARAMETER,
            format!("casts (`::`) are not supported: `{}`", excerpt(item)),
        ));
    }
    let (alias, expression) = match item.split_once(':') {
        Some((alias, expression)) => (Some(parse_alias(alias.trim())?), expression.trim()),
        None => (None, item),
    };
    let Some(call) = expression.strip_suffix("()") else {
        if expression.contains(['(', ')']) {
            return Err(malformed_aggregate(item));
        }
        let column = columns.resolve(PARAMETER, expression)?;
        return Ok(SelectItem::Column { column, alias });
    };
    if call == "count" {
        return Ok(SelectItem::Aggregate {
            function: AggregateFunction::Count,
            column: None,
            alias,
        });
    }
    let Some((column_name, function_name)) = call.rsplit_once('.') else {
        return Err(malformed_aggregate(item));
    };
    let function = match function_name {
        "count" => AggregateFunction::Count,
        "sum" => AggregateFunction::Sum,
        "avg" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        _ => return Err(malformed_aggregate(item)),
    };
    let column = columns.resolve(PARAMETER, column_name)?;
    let field = columns.field(column);
    if matches!(function, AggregateFunction::Sum | AggregateFunction::Avg)
        && !field.field_type.is_numeric()
    {
        return Err(QueryError::invalid_aggregate(
            PARAMETER,
            format!(
                "{}() needs a numeric column; `{}` is {}",
                function.name(),
                excerpt(&field.name),
                super::error::type_name(field.field_type)
            ),
        ));
    }
    Ok(SelectItem::Aggregate {
        function,
        column: Some(column),
        alias,
    })
}

fn malformed_aggregate(item: &str) -> QueryError {
    QueryError::malformed_with_hint(
        "select",
        format!("`{}` is not a column or an aggregate", excerpt(item)),
        "aggregates are count(), column.count(), column.sum(), column.avg(), column.min() and column.max()",
    )
}

fn parse_alias(alias: &str) -> Result<String, QueryError> {
    let mut characters = alias.chars();
    let valid = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|next| next.is_ascii_alphanumeric() || next == '_');
    if valid {
        Ok(alias.to_owned())
    } else {
        Err(QueryError::malformed_with_hint(
            "select",
            format!("`{}` is not a valid alias", excerpt(alias)),
            "an alias is a letter or `_` followed by letters, digits or `_`",
        ))
    }
}

/// The key an item gets in the output: its alias, else the column name or
/// the aggregate's name.
fn output_name<'a>(item: &'a SelectItem, columns: &'a Columns) -> &'a str {
    match item {
        SelectItem::Column {
            alias: Some(alias), ..
        }
        | SelectItem::Aggregate {
            alias: Some(alias), ..
        } => alias,
        SelectItem::Column { column, .. } => &columns.field(*column).name,
        SelectItem::Aggregate { function, .. } => function.name(),
    }
}

// ----------------------------------------------------- order, limit, offset

fn parse_order(value: &str, columns: &Columns) -> Result<Vec<OrderTerm>, QueryError> {
    const PARAMETER: &str = "order";
    if value.trim().is_empty() {
        return Err(QueryError::malformed_with_hint(
            PARAMETER,
            "is empty",
            "e.g. `order=commune,population.desc.nullslast`",
        ));
    }
    let mut terms = Vec::new();
    for raw in value.split(',') {
        let term = raw.trim();
        let mut parts = term.split('.');
        let name = parts.next().unwrap_or_default();
        if name.is_empty() {
            return Err(QueryError::malformed(
                PARAMETER,
                format!("`{}` does not start with a column", excerpt(term)),
            ));
        }
        let column = columns.resolve(PARAMETER, name)?;
        let mut descending = None;
        let mut nulls = None;
        for modifier in parts {
            match modifier {
                "asc" | "desc" if descending.is_none() && nulls.is_none() => {
                    descending = Some(modifier == "desc");
                }
                "nullsfirst" | "nullslast" if nulls.is_none() => {
                    nulls = Some(if modifier == "nullsfirst" {
                        NullsOrder::First
                    } else {
                        NullsOrder::Last
                    });
                }
                _ => {
                    return Err(QueryError::malformed_with_hint(
                        PARAMETER,
                        format!("unexpected `{}` in `{}`", excerpt(modifier), excerpt(term)),
                        "a term is `column`, then optionally `.asc` or `.desc`, then optionally `.nullsfirst` or `.nullslast`",
                    ));
                }
            }
        }
        terms.push(OrderTerm {
            column,
            descending: descending.unwrap_or(false),
            nulls,
        });
    }
    Ok(terms)
}

/// A `limit` or `offset`: digits only, within a signed 64-bit integer.
fn parse_count(parameter: &str, value: &str) -> Result<u64, QueryError> {
    let number = value
        .bytes()
        .all(|byte| byte.is_ascii_digit())
        .then(|| value.parse::<i64>().ok())
        .flatten()
        .filter(|_| !value.is_empty());
    match number {
        Some(number) => Ok(number.unsigned_abs()),
        None => Err(QueryError::malformed(
            parameter,
            format!(
                "`{}` is not a non-negative integer below 2^63",
                excerpt(value)
            ),
        )),
    }
}

/// When aggregating, rows are grouped by the plain selected columns: ordering
/// by anything else has no meaning (and PostgreSQL refuses it).
fn check_aggregate_order(plan: &ReadPlan, columns: &Columns) -> Result<(), QueryError> {
    if !plan.is_aggregate() {
        return Ok(());
    }
    let grouped: HashSet<ColumnIndex> = plan
        .select
        .iter()
        .filter_map(|item| match item {
            SelectItem::Column { column, .. } => Some(*column),
            SelectItem::Aggregate { .. } => None,
        })
        .collect();
    match plan
        .order
        .iter()
        .find(|term| !grouped.contains(&term.column))
    {
        Some(term) => Err(QueryError::invalid_aggregate(
            "order",
            format!(
                "column `{}` is not grouped: with aggregates, order only by columns listed in select",
                excerpt(&columns.field(term.column).name)
            ),
        )),
        None => Ok(()),
    }
}

// --------------------------------------------------------------- filters

/// One filter key: a logic group (`or`, `and`, `not.or`, `not.and`) or a
/// column filter `col=[not.]op.value`.
fn parse_filter_parameter(
    key: &str,
    value: &str,
    columns: &Columns,
    limits: &QueryLimits,
) -> Result<Filter, QueryError> {
    let (negated, group) = match key {
        "or" => (false, Group::Or),
        "and" => (false, Group::And),
        "not.or" => (true, Group::Or),
        "not.and" => (true, Group::And),
        _ => return parse_column_filter(key, value, columns),
    };
    let mut cursor = Cursor::new(key, value);
    let parser = LogicParser {
        columns,
        max_nesting: limits.max_nesting,
    };
    let filter = parser.group(&mut cursor, group, 1)?;
    if !cursor.at_end() {
        return Err(cursor.error("unexpected text after the closing parenthesis"));
    }
    Ok(negate_if(negated, filter))
}

fn negate_if(negated: bool, filter: Filter) -> Filter {
    if negated {
        Filter::Not(Box::new(filter))
    } else {
        filter
    }
}

/// `col=[not.]op.value` at the top level: the value is taken literally
/// (no quoting) except for `in.(…)` lists.
fn parse_column_filter(key: &str, value: &str, columns: &Columns) -> Result<Filter, QueryError> {
    let column = columns.resolve(key, key)?;
    let Some((mut operator, mut operand)) = value.split_once('.') else {
        return Err(QueryError::malformed_with_hint(
            key,
            format!("`{}` is not `operator.value`", excerpt(value)),
            OPERATOR_HINT,
        ));
    };
    let mut negated = false;
    if operator == "not" {
        negated = true;
        (operator, operand) = operand.split_once('.').ok_or_else(|| {
            QueryError::malformed_with_hint(
                key,
                format!("`{}` is not `not.operator.value`", excerpt(value)),
                OPERATOR_HINT,
            )
        })?;
    }
    let name = OperatorName::parse(key, operator)?;
    let raw = if name == OperatorName::In {
        let mut cursor = Cursor::new(key, operand);
        let items = cursor.list()?;
        if !cursor.at_end() {
            return Err(cursor.error("unexpected text after the closing parenthesis"));
        }
        RawOperand::List(items)
    } else {
        RawOperand::Text(operand.to_owned())
    };
    let condition = build_condition(key, columns, column, name, raw)?;
    Ok(negate_if(negated, Filter::Condition(condition)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    And,
    Or,
}

/// The recursive parser of `(item,item,…)` groups.
struct LogicParser<'a> {
    columns: &'a Columns<'a>,
    max_nesting: usize,
}

impl LogicParser<'_> {
    /// `(item,…)` at nesting `depth` (the top-level group is 1).
    fn group(&self, cursor: &mut Cursor, group: Group, depth: usize) -> Result<Filter, QueryError> {
        if depth > self.max_nesting {
            return Err(QueryError::TooDeep {
                parameter: excerpt(cursor.parameter),
                max: self.max_nesting,
            });
        }
        cursor.expect('(')?;
        let mut items = Vec::new();
        loop {
            items.push(self.item(cursor, depth)?);
            if cursor.eat(',') {
                continue;
            }
            cursor.expect(')')?;
            break;
        }
        Ok(match group {
            Group::And => Filter::And(items),
            Group::Or => Filter::Or(items),
        })
    }

    /// `and(…)`, `or(…)`, `not.and(…)`, `not.or(…)` or `col.[not.]op.value`.
    fn item(&self, cursor: &mut Cursor, depth: usize) -> Result<Filter, QueryError> {
        cursor.skip_whitespace();
        let start = cursor.position;
        let name = cursor.take_until(&['.', ',', '(', ')']);
        if name.is_empty() {
            return Err(cursor.error("expected a condition such as `column.eq.value`"));
        }
        if name == "not" && cursor.peek() == Some('.') {
            cursor.bump();
            let inner = cursor.take_until(&['.', ',', '(', ')']);
            if let Some(group) = group_named(inner).filter(|_| cursor.peek() == Some('(')) {
                return Ok(Filter::Not(Box::new(self.group(
                    cursor,
                    group,
                    depth + 1,
                )?)));
            }
            // A column named `not`: read it again as a condition.
            cursor.position = start;
            cursor.take_until(&['.', ',', '(', ')']);
        } else if let Some(group) = group_named(name).filter(|_| cursor.peek() == Some('(')) {
            return self.group(cursor, group, depth + 1);
        }
        self.condition(cursor, name)
    }

    /// The rest of `col.[not.]op.value`, the column name already read.
    fn condition(&self, cursor: &mut Cursor, name: &str) -> Result<Filter, QueryError> {
        let parameter = cursor.parameter;
        let column = self.columns.resolve(parameter, name)?;
        cursor.expect('.')?;
        let mut operator = cursor.take_until(&['.', ',', '(', ')']);
        let mut negated = false;
        if operator == "not" {
            negated = true;
            cursor.expect('.')?;
            operator = cursor.take_until(&['.', ',', '(', ')']);
        }
        let operator = OperatorName::parse(parameter, operator)?;
        cursor.expect('.')?;
        let raw = if operator == OperatorName::In {
            RawOperand::List(cursor.list()?)
        } else if cursor.peek() == Some('"') {
            RawOperand::Text(cursor.quoted()?)
        } else {
            RawOperand::Text(cursor.take_until(&[',', ')']).to_owned())
        };
        let condition = build_condition(parameter, self.columns, column, operator, raw)?;
        Ok(negate_if(negated, Filter::Condition(condition)))
    }
}

fn group_named(name: &str) -> Option<Group> {
    match name {
        "and" => Some(Group::And),
        "or" => Some(Group::Or),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperatorName {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    In,
    Is,
}

impl OperatorName {
    fn parse(parameter: &str, text: &str) -> Result<OperatorName, QueryError> {
        Ok(match text {
            "eq" => OperatorName::Eq,
            "neq" => OperatorName::Neq,
            "gt" => OperatorName::Gt,
            "gte" => OperatorName::Gte,
            "lt" => OperatorName::Lt,
            "lte" => OperatorName::Lte,
            "like" => OperatorName::Like,
            "ilike" => OperatorName::Ilike,
            "in" => OperatorName::In,
            "is" => OperatorName::Is,
            _ => {
                return Err(QueryError::malformed_with_hint(
                    parameter,
                    format!("unknown operator `{}`", excerpt(text)),
                    OPERATOR_HINT,
                ));
            }
        })
    }
}

/// An operand before typing: one text, or the items of an `in.(…)` list.
enum RawOperand {
    Text(String),
    List(Vec<String>),
}

/// Types the operand for the column and checks the operator applies to it.
fn build_condition(
    parameter: &str,
    columns: &Columns,
    column: ColumnIndex,
    name: OperatorName,
    raw: RawOperand,
) -> Result<Condition, QueryError> {
    let field = columns.field(column);
    let typed = |text: &str| {
        Value::parse(field.field_type, text).map_err(|_| QueryError::InvalidValue {
            parameter: excerpt(parameter),
            column: excerpt(&field.name),
            field_type: field.field_type,
            value: excerpt(text),
        })
    };
    let wrong_type = |operator: String| QueryError::InvalidOperator {
        parameter: excerpt(parameter),
        column: excerpt(&field.name),
        field_type: field.field_type,
        operator,
    };
    let text = match raw {
        RawOperand::List(items) => {
            let values = items
                .iter()
                .map(|item| typed(item))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Condition {
                column,
                operator: Operator::In(values),
            });
        }
        RawOperand::Text(text) => text,
    };
    let operator = match name {
        OperatorName::Eq => Operator::Eq(typed(&text)?),
        OperatorName::Neq => Operator::Neq(typed(&text)?),
        OperatorName::Gt => Operator::Gt(typed(&text)?),
        OperatorName::Gte => Operator::Gte(typed(&text)?),
        OperatorName::Lt => Operator::Lt(typed(&text)?),
        OperatorName::Lte => Operator::Lte(typed(&text)?),
        OperatorName::Like | OperatorName::Ilike => {
            if !stored_as_text(field.field_type) {
                let operator = if name == OperatorName::Like {
                    "like"
                } else {
                    "ilike"
                };
                return Err(wrong_type(operator.to_owned()));
            }
            let pattern = Operator::like_pattern(&text);
            if name == OperatorName::Like {
                Operator::Like(pattern)
            } else {
                Operator::Ilike(pattern)
            }
        }
        OperatorName::Is => {
            let is = match text.to_ascii_lowercase().as_str() {
                "null" => IsValue::Null,
                "true" => IsValue::True,
                "false" => IsValue::False,
                "unknown" => IsValue::Unknown,
                _ => {
                    return Err(QueryError::malformed_with_hint(
                        parameter,
                        format!("`is.{}` is not a valid test", excerpt(&text)),
                        "use is.null, is.true, is.false or is.unknown",
                    ));
                }
            };
            if is != IsValue::Null && field.field_type != FieldType::Boolean {
                return Err(wrong_type(format!("is.{}", text.to_ascii_lowercase())));
            }
            Operator::Is(is)
        }
        OperatorName::In => {
            unreachable!("`in` operands are always parsed as lists")
        }
    };
    Ok(Condition { column, operator })
}

/// Types the stores keep as text, on which `like` is meaningful.
fn stored_as_text(field_type: FieldType) -> bool {
    !matches!(
        field_type,
        FieldType::Integer | FieldType::Number | FieldType::Boolean
    )
}

// ---------------------------------------------------------------- cursor

/// A position in one parameter's value, for the hand-written parsers of
/// logic groups and `in` lists. Delimiters are ASCII, so every slice taken at
/// a delimiter is on a character boundary.
struct Cursor<'a> {
    parameter: &'a str,
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(parameter: &'a str, text: &'a str) -> Self {
        Cursor {
            parameter,
            text,
            position: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.position += next.len_utf8();
        Some(next)
    }

    fn at_end(&self) -> bool {
        self.position >= self.text.len()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, expected: char) -> Result<(), QueryError> {
        if self.eat(expected) {
            Ok(())
        } else if self.at_end() {
            Err(self.error(&format!("expected `{expected}` but the value ends")))
        } else {
            Err(self.error(&format!("expected `{expected}`")))
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Everything up to (not including) the first of `stops`, or the end.
    fn take_until(&mut self, stops: &[char]) -> &'a str {
        let rest = self.rest();
        let length = rest.find(stops).unwrap_or(rest.len());
        self.position += length;
        &rest[..length]
    }

    /// A double-quoted value; `\"` and `\\` (any `\x`) stand for the character.
    fn quoted(&mut self) -> Result<String, QueryError> {
        self.expect('"')?;
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    Some(escaped) => value.push(escaped),
                    None => return Err(self.error("unterminated quoted value")),
                },
                Some(other) => value.push(other),
                None => return Err(self.error("unterminated quoted value")),
            }
        }
    }

    /// `(a,b,"c,d")`: items quoted or bare; `()` is the empty list.
    fn list(&mut self) -> Result<Vec<String>, QueryError> {
        self.expect('(')?;
        let mut items = Vec::new();
        if self.eat(')') {
            return Ok(items);
        }
        loop {
            let item = if self.peek() == Some('"') {
                self.quoted()?
            } else {
                self.take_until(&[',', ')']).to_owned()
            };
            items.push(item);
            if self.eat(',') {
                continue;
            }
            self.expect(')')?;
            return Ok(items);
        }
    }

    /// A malformed-query error that quotes where parsing stopped.
    fn error(&self, message: &str) -> QueryError {
        let at = if self.at_end() {
            String::new()
        } else {
            format!(" at `{}`", excerpt(self.rest()))
        };
        QueryError::malformed(
            self.parameter,
            format!(
                "{message}{at} (character {} of `{}`)",
                self.text[..self.position].chars().count() + 1,
                excerpt(self.text)
            ),
        )
    }
}

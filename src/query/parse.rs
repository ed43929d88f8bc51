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
use super::limits::{FilterBudget, QueryLimits};
use super::plan::{
    AggregateFunction, ColumnIndex, Condition, Filter, IsValue, NullsOrder, Operator, OrderTerm,
    ReadPlan, SelectItem,
};
use crate::domain::{Field, FieldType, Schema, Value};

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
    let mut budget = FilterBudget::new(limits);
    let mut seen = HashSet::new();
    for (key, value) in params {
        let key = key.as_str();
        if SINGLE_KEYS.contains(&key) && !seen.insert(key) {
            return Err(QueryError::malformed(key, "is given more than once"));
        }
        match key {
            "select" => {
                plan.select = parse_select(value, &columns)?;
                limits.check_select(plan.select.len())?;
            }
            "order" => {
                plan.order = parse_order(value, &columns)?;
                limits.check_order(plan.order.len())?;
            }
            "limit" => plan.limit = Some(parse_count(key, value)?),
            "offset" => plan.offset = parse_count(key, value)?,
            _ if IGNORED_KEYS.contains(&key) => {}
            _ => {
                let filter = parse_filter_parameter(key, value, &columns, limits)?;
                budget.charge(key, &filter)?;
                filters.push(filter);
            }
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

/// A `limit` or `offset`: digits only, within a signed 64-bit integer
/// (what both stores bind).
fn parse_count(parameter: &str, value: &str) -> Result<u64, QueryError> {
    let digits_only = !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
    match value.parse::<i64>() {
        Ok(number) if digits_only => Ok(number.unsigned_abs()),
        _ => Err(QueryError::malformed(
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

#[cfg(test)]
mod tests {
    use super::*;

    const HIDDEN: ColumnIndex = 5;

    /// id, commune, conso, actif, releve visible; nom_abonne hidden.
    fn schema() -> Schema {
        Schema {
            fields: vec![
                Field::new("id", FieldType::Integer),
                Field::new("commune", FieldType::String),
                Field::new("conso", FieldType::Number),
                Field::new("actif", FieldType::Boolean),
                Field::new("releve", FieldType::Date),
                Field::new("nom_abonne", FieldType::String),
            ],
            primary_key: None,
        }
    }

    fn visible() -> Vec<bool> {
        vec![true, true, true, true, true, false]
    }

    /// Decodes `text` as a browser would send it, then parses it.
    fn pairs(text: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect()
    }

    fn parse(text: &str) -> Result<ReadPlan, QueryError> {
        parse_read_query(&pairs(text), &schema(), &visible(), &QueryLimits::default())
    }

    /// The single raw pair, without form decoding (for `+`, `%`, `\`).
    fn parse_pair(key: &str, value: &str) -> Result<ReadPlan, QueryError> {
        parse_read_query(
            &[(key.to_owned(), value.to_owned())],
            &schema(),
            &visible(),
            &QueryLimits::default(),
        )
    }

    fn filter(text: &str) -> Filter {
        parse(text)
            .unwrap_or_else(|error| panic!("{text}: {error}"))
            .filter
            .expect("a filter")
    }

    fn condition(column: ColumnIndex, operator: Operator) -> Filter {
        Filter::Condition(Condition { column, operator })
    }

    fn not(filter: Filter) -> Filter {
        Filter::Not(Box::new(filter))
    }

    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    /// Every comparison operator types its value for the column.
    #[test]
    fn comparison_operators_type_their_values() {
        let cases = [
            ("id=eq.3", condition(0, Operator::Eq(Value::Int(3)))),
            ("id=neq.3", condition(0, Operator::Neq(Value::Int(3)))),
            (
                "conso=gt.2.5",
                condition(2, Operator::Gt(Value::Float(2.5))),
            ),
            (
                "conso=gte.-1",
                condition(2, Operator::Gte(Value::Float(-1.0))),
            ),
            (
                "releve=lt.2024-01-31",
                condition(4, Operator::Lt(text("2024-01-31"))),
            ),
            ("id=lte.0", condition(0, Operator::Lte(Value::Int(0)))),
            (
                "actif=eq.true",
                condition(3, Operator::Eq(Value::Bool(true))),
            ),
            (
                "commune=eq.Bar.sur.Aube",
                condition(1, Operator::Eq(text("Bar.sur.Aube"))),
            ),
            ("commune=eq.", condition(1, Operator::Eq(text("")))),
            (
                "commune=eq.Saint-Andr%C3%A9",
                condition(1, Operator::Eq(text("Saint-André"))),
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(filter(query), expected, "{query}");
        }
    }

    /// `like`/`ilike` turn `*` into `%` and keep `%`, `_` and `\` as PostgREST does.
    #[test]
    fn like_patterns_follow_postgrest() {
        assert_eq!(
            filter("commune=like.Saint*"),
            condition(1, Operator::Like("Saint%".into()))
        );
        assert_eq!(
            filter("commune=ilike.*troyes*"),
            condition(1, Operator::Ilike("%troyes%".into()))
        );
        let plan = parse_pair("commune", r"like.100%_a\_b*").unwrap();
        assert_eq!(
            plan.filter,
            Some(condition(1, Operator::Like(r"100%_a\_b%".into())))
        );
        let plan = parse_pair("commune", r"like.fin\").unwrap();
        assert_eq!(
            plan.filter,
            Some(condition(1, Operator::Like(r"fin\\".into())))
        );
        assert_eq!(
            filter("releve=like.2024-*"),
            condition(4, Operator::Like("2024-%".into()))
        );
    }

    /// `like` on a number and `is.true` on a text are refused, naming both.
    #[test]
    fn operators_that_do_not_fit_the_type_are_refused() {
        for query in ["id=like.1*", "conso=ilike.*", "actif=like.t*"] {
            let error = parse(query).unwrap_err();
            assert_eq!(error.kind_slug(), "invalid-operator", "{query}");
        }
        let error = parse("commune=is.true").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `commune`: operator `is.true` does not apply to column `commune` of type string"
        );
        assert_eq!(error.postgrest_code(), "42883");
    }

    /// `is.` takes null on any column and true/false/unknown on booleans.
    #[test]
    fn is_tests_null_and_truth_values() {
        assert_eq!(
            filter("commune=is.null"),
            condition(1, Operator::Is(IsValue::Null))
        );
        assert_eq!(
            filter("actif=is.TRUE"),
            condition(3, Operator::Is(IsValue::True))
        );
        assert_eq!(
            filter("actif=is.false"),
            condition(3, Operator::Is(IsValue::False))
        );
        assert_eq!(
            filter("actif=is.unknown"),
            condition(3, Operator::Is(IsValue::Unknown))
        );
        assert_eq!(
            filter("releve=not.is.null"),
            not(condition(4, Operator::Is(IsValue::Null)))
        );
        let error = parse("actif=is.maybe").unwrap_err();
        assert_eq!(error.kind_slug(), "invalid-query");
        assert!(error.to_string().contains("is.maybe"), "{error}");
    }

    /// `not.` negates, and repeated keys are ANDed in order.
    #[test]
    fn not_prefix_and_repeated_keys() {
        assert_eq!(
            filter("commune=not.eq.Troyes"),
            not(condition(1, Operator::Eq(text("Troyes"))))
        );
        assert_eq!(
            filter("id=gt.1&id=lt.10&commune=not.like.*x"),
            Filter::And(vec![
                condition(0, Operator::Gt(Value::Int(1))),
                condition(0, Operator::Lt(Value::Int(10))),
                not(condition(1, Operator::Like("%x".into()))),
            ])
        );
    }

    /// `in.(…)` takes bare and double-quoted items with `\"` and `\\` escapes.
    #[test]
    fn in_lists_with_quotes() {
        let plan = parse_pair(
            "commune",
            r#"in.(Troyes,"Bar-sur-Aube, ville","a\"b","c\\d",)"#,
        )
        .unwrap();
        assert_eq!(
            plan.filter,
            Some(condition(
                1,
                Operator::In(vec![
                    text("Troyes"),
                    text("Bar-sur-Aube, ville"),
                    text("a\"b"),
                    text("c\\d"),
                    text(""),
                ])
            ))
        );
        assert_eq!(
            filter("id=in.(1,2,3)"),
            condition(
                0,
                Operator::In(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
            )
        );
        assert_eq!(filter("id=in.()"), condition(0, Operator::In(vec![])));
        assert_eq!(
            filter("id=not.in.(4)"),
            not(condition(0, Operator::In(vec![Value::Int(4)])))
        );
        for query in ["id=in.1,2", "id=in.(1,2", "id=in.(1)x", "commune=in.(\"a)"] {
            assert_eq!(
                parse(query).unwrap_err().kind_slug(),
                "invalid-query",
                "{query}"
            );
        }
        let error = parse("id=in.(1,deux)").unwrap_err();
        assert_eq!(error.kind_slug(), "invalid-value");
        assert!(error.to_string().contains("`deux`"), "{error}");
    }

    /// Values that do not parse for the column's type name the column and type.
    #[test]
    fn type_errors_name_column_and_type() {
        let cases = [
            (
                "id=eq.abc",
                "parameter `id`: `abc` is not a valid integer value for column `id`",
            ),
            (
                "conso=gt.NaN",
                "parameter `conso`: `NaN` is not a valid number value for column `conso`",
            ),
            (
                "actif=eq.oui",
                "parameter `actif`: `oui` is not a valid boolean value for column `actif`",
            ),
            (
                "releve=gte.31/01/2024",
                "parameter `releve`: `31/01/2024` is not a valid date value for column `releve`",
            ),
            (
                "or=(id.eq.x)",
                "parameter `or`: `x` is not a valid integer value for column `id`",
            ),
        ];
        for (query, message) in cases {
            let error = parse(query).unwrap_err();
            assert_eq!(error.to_string(), message);
            assert_eq!(error.kind_slug(), "invalid-value");
            assert_eq!(error.postgrest_code(), "22P02");
            assert!(error.hint().is_some());
        }
    }

    /// `or`/`and` groups nest, with `not.` on groups and on conditions and
    /// quoted values holding commas and parentheses.
    #[test]
    fn logic_groups_nest() {
        assert_eq!(
            filter("or=(id.eq.1,conso.gt.2,and(id.lt.3,releve.is.null))"),
            Filter::Or(vec![
                condition(0, Operator::Eq(Value::Int(1))),
                condition(2, Operator::Gt(Value::Float(2.0))),
                Filter::And(vec![
                    condition(0, Operator::Lt(Value::Int(3))),
                    condition(4, Operator::Is(IsValue::Null)),
                ]),
            ])
        );
        let plan = parse_pair(
            "and",
            r#"(not.or(id.eq.1,id.eq.2),commune.not.eq."x,(y)",commune.in.("a,b",c), commune.like.*z)"#,
        )
        .unwrap();
        assert_eq!(
            plan.filter,
            Some(Filter::And(vec![
                not(Filter::Or(vec![
                    condition(0, Operator::Eq(Value::Int(1))),
                    condition(0, Operator::Eq(Value::Int(2))),
                ])),
                not(condition(1, Operator::Eq(text("x,(y)")))),
                condition(1, Operator::In(vec![text("a,b"), text("c")])),
                condition(1, Operator::Like("%z".into())),
            ]))
        );
        assert_eq!(
            filter("not.and=(id.gte.1,id.lte.2)"),
            not(Filter::And(vec![
                condition(0, Operator::Gte(Value::Int(1))),
                condition(0, Operator::Lte(Value::Int(2))),
            ]))
        );
        assert_eq!(
            filter("not.or=(actif.is.true)&id=eq.1"),
            Filter::And(vec![
                not(Filter::Or(vec![condition(3, Operator::Is(IsValue::True))])),
                condition(0, Operator::Eq(Value::Int(1))),
            ])
        );
    }

    /// Unbalanced parentheses, empty groups and trailing junk are refused,
    /// naming the parameter.
    #[test]
    fn malformed_logic_groups_are_refused() {
        for query in [
            "or=(id.eq.1",
            "or=id.eq.1",
            "or=(id.eq.1))",
            "or=(id.eq.1)x",
            "or=()",
            "or=(id.eq.1,)",
            "or=(id.eq)",
            "or=(id)",
            "or=(id.zz.1)",
            "or=(and(id.eq.1)",
            "or=(commune.eq.\"open)",
            "and=(not.xor(id.eq.1))",
        ] {
            let error = parse(query).unwrap_err();
            let key = query.split('=').next().unwrap();
            assert!(
                error.to_string().starts_with(&format!("parameter `{key}`")),
                "{query}: {error}"
            );
        }
        let error = parse("or=(id.eq.1").unwrap_err();
        assert_eq!(error.kind_slug(), "invalid-query");
        assert_eq!(
            error.to_string(),
            "parameter `or`: expected `)` but the value ends (character 9 of `(id.eq.1`)"
        );
        assert_eq!(
            parse("or=(id.eq.1)x").unwrap_err().to_string(),
            "parameter `or`: unexpected text after the closing parenthesis at `x` (character 10 of `(id.eq.1)x`)"
        );
        assert_eq!(
            parse("or=(id.zz.1)").unwrap_err().hint().as_deref(),
            Some(OPERATOR_HINT)
        );
    }

    fn nested(levels: usize) -> String {
        let mut value = "id.eq.1".to_owned();
        for _ in 1..levels {
            value = format!("and({value})");
        }
        format!("({value})")
    }

    /// Nesting up to the limit parses; one more level, or 10,000, is an error.
    #[test]
    fn nesting_is_bounded() {
        assert!(parse_pair("or", &nested(16)).is_ok());
        let error = parse_pair("or", &nested(17)).unwrap_err();
        assert_eq!(
            error,
            QueryError::TooDeep {
                parameter: "or".into(),
                max: 16
            }
        );
        assert_eq!(error.postgrest_code(), "PGRST100");
        let limits = QueryLimits {
            max_nesting: 2,
            ..QueryLimits::default()
        };
        let deep = [("and".to_owned(), nested(3))];
        assert!(parse_read_query(&deep, &schema(), &visible(), &limits).is_err());
        let very_deep = format!("({}{}", "or(".repeat(10_000), ")".repeat(10_001));
        assert!(matches!(
            parse_pair("or", &very_deep),
            Err(QueryError::TooDeep { .. })
        ));
        let not_deep = "(not.and(".repeat(10_000);
        assert!(parse_pair("and", &not_deep).is_err());
    }

    /// Columns, aliases, every aggregate, `*` and whitespace around items.
    #[test]
    fn select_columns_aliases_and_aggregates() {
        let plan = parse(
            "select=id, ville:commune,conso.sum(),total:conso.sum(),count(),communes:commune.count(),conso.avg(),releve.min(),id.max(),n:count()",
        )
        .unwrap();
        let aggregate = |function, column, alias: Option<&str>| SelectItem::Aggregate {
            function,
            column,
            alias: alias.map(str::to_owned),
        };
        assert_eq!(
            plan.select,
            vec![
                SelectItem::Column {
                    column: 0,
                    alias: None
                },
                SelectItem::Column {
                    column: 1,
                    alias: Some("ville".into())
                },
                aggregate(AggregateFunction::Sum, Some(2), None),
                aggregate(AggregateFunction::Sum, Some(2), Some("total")),
                aggregate(AggregateFunction::Count, None, None),
                aggregate(AggregateFunction::Count, Some(1), Some("communes")),
                aggregate(AggregateFunction::Avg, Some(2), None),
                aggregate(AggregateFunction::Min, Some(4), None),
                aggregate(AggregateFunction::Max, Some(0), None),
                aggregate(AggregateFunction::Count, None, Some("n")),
            ]
        );
    }

    fn column(column: ColumnIndex) -> SelectItem {
        SelectItem::Column {
            column,
            alias: None,
        }
    }

    /// `*` alone means every visible column; mixed, it expands to them.
    #[test]
    fn select_star() {
        assert_eq!(parse("select=*").unwrap().select, vec![]);
        assert_eq!(parse("select= * ").unwrap().select, vec![]);
        let plan = parse("select=*,count()").unwrap();
        let mut expected: Vec<SelectItem> = (0..5).map(column).collect();
        expected.push(SelectItem::Aggregate {
            function: AggregateFunction::Count,
            column: None,
            alias: None,
        });
        assert_eq!(plan.select, expected);
        assert!(plan.is_aggregate());
    }

    /// Bad select items are refused with the kind that fits.
    #[test]
    fn select_errors() {
        let cases = [
            ("select=", "invalid-query"),
            ("select=id,,commune", "invalid-query"),
            ("select=,", "invalid-query"),
            ("select=id::text", "invalid-query"),
            ("select=total:conso.sum()::int", "invalid-query"),
            ("select=1x:id", "invalid-query"),
            ("select=a-b:id", "invalid-query"),
            ("select=:id", "invalid-query"),
            ("select=id.median()", "invalid-query"),
            ("select=sum()", "invalid-query"),
            ("select=id.sum(conso)", "invalid-query"),
            ("select=id,id", "invalid-query"),
            ("select=commune,commune:id", "invalid-query"),
            ("select=conso.sum(),id.sum()", "invalid-query"),
            ("select=commune.sum()", "invalid-aggregate"),
            ("select=releve.avg()", "invalid-aggregate"),
            ("select=actif.sum()", "invalid-aggregate"),
            ("select=inconnu.max()", "unknown-column"),
            ("select=inconnu", "unknown-column"),
            ("select=id&select=commune", "invalid-query"),
        ];
        for (query, kind) in cases {
            let error = parse(query).unwrap_err();
            assert_eq!(error.kind_slug(), kind, "{query}: {error}");
            assert!(
                error.to_string().starts_with("parameter `select`"),
                "{error}"
            );
        }
        let error = parse("select=commune.avg()").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `select`: avg() needs a numeric column; `commune` is string"
        );
        let error = parse("select=id::text").unwrap_err();
        assert!(error.to_string().contains("`id::text`"), "{error}");
    }

    /// `order` terms with direction and null placement; bare is ascending.
    #[test]
    fn order_terms() {
        let plan = parse("order=id,commune.desc,conso.asc.nullsfirst, releve.nullslast").unwrap();
        assert_eq!(
            plan.order,
            vec![
                OrderTerm {
                    column: 0,
                    descending: false,
                    nulls: None
                },
                OrderTerm {
                    column: 1,
                    descending: true,
                    nulls: None
                },
                OrderTerm {
                    column: 2,
                    descending: false,
                    nulls: Some(NullsOrder::First)
                },
                OrderTerm {
                    column: 4,
                    descending: false,
                    nulls: Some(NullsOrder::Last)
                },
            ]
        );
        for query in [
            "order=",
            "order=.desc",
            "order=id.down",
            "order=id.desc.asc",
            "order=id.nullsfirst.desc",
            "order=id.nullsfirst.nullslast",
            "order=id,",
            "order=id&order=commune",
        ] {
            let error = parse(query).unwrap_err();
            assert_eq!(error.kind_slug(), "invalid-query", "{query}");
            assert!(
                error.to_string().starts_with("parameter `order`"),
                "{error}"
            );
        }
        assert_eq!(
            parse("order=inconnu.desc").unwrap_err().kind_slug(),
            "unknown-column"
        );
    }

    /// With aggregates, order may only use the grouped (selected) columns.
    #[test]
    fn aggregate_order_uses_grouped_columns() {
        let plan = parse("select=commune,conso.sum()&order=commune.desc").unwrap();
        assert_eq!(plan.order.len(), 1);
        let error = parse("select=commune,conso.sum()&order=id").unwrap_err();
        assert_eq!(error.kind_slug(), "invalid-aggregate");
        assert!(error.to_string().contains("`id`"), "{error}");
        assert!(parse("select=commune&order=id").is_ok());
    }

    /// `limit` and `offset` are non-negative integers that fit an i64.
    #[test]
    fn limit_and_offset() {
        let plan = parse("limit=25&offset=50").unwrap();
        assert_eq!((plan.limit, plan.offset), (Some(25), 50));
        let plan = parse("limit=0").unwrap();
        assert_eq!((plan.limit, plan.offset), (Some(0), 0));
        assert_eq!(parse("").unwrap(), ReadPlan::default());
        assert_eq!(
            parse(&format!("offset={}", i64::MAX)).unwrap().offset,
            i64::MAX as u64
        );
        for query in [
            "limit=-1",
            "offset=-5",
            "limit=",
            "limit=%2B5",
            "limit=1.5",
            "limit=ten",
            "limit=%205",
            "limit=9223372036854775808",
            "offset=99999999999999999999",
            "limit=1&limit=2",
        ] {
            let error = parse(query).unwrap_err();
            assert_eq!(error.kind_slug(), "invalid-query", "{query}");
        }
        assert_eq!(
            parse("limit=-1").unwrap_err().to_string(),
            "parameter `limit`: `-1` is not a non-negative integer below 2^63"
        );
    }

    /// Keys the HTTP layer handles are ignored here.
    #[test]
    fn http_keys_are_ignored() {
        let plan = parse("format=csv&page=2&page_size=10&csv_sep=semicolon&bom=true").unwrap();
        assert_eq!(plan, ReadPlan::default());
    }

    /// An unknown column suggests the closest visible one, never a hidden one.
    #[test]
    fn unknown_columns_suggest_visible_names() {
        let error = parse("comune=eq.Troyes").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `comune`: column `comune` does not exist"
        );
        assert_eq!(error.hint().as_deref(), Some("did you mean `commune`?"));
        assert_eq!(error.postgrest_code(), "42703");
        assert_eq!(error.title(), "Unknown column");
        assert_eq!(parse("xyz=eq.1").unwrap_err().hint(), None);
        assert_eq!(parse("nom_abonn=eq.x").unwrap_err().hint(), None);
        assert_eq!(
            parse("order=releves").unwrap_err().hint().as_deref(),
            Some("did you mean `releve`?")
        );
    }

    /// A hidden column gives exactly the error of a column that does not
    /// exist, wherever it appears.
    #[test]
    fn hidden_column_is_reported_as_unknown() {
        let mut without = schema();
        without.fields.remove(HIDDEN);
        let without_visible = vec![true; without.fields.len()];
        for query in [
            "select=nom_abonne",
            "select=id,x:nom_abonne",
            "select=nom_abonne.count()",
            "select=nom_abonne.min()",
            "select=nom_abonne.sum()",
            "nom_abonne=eq.Dupont",
            "nom_abonne=not.is.null",
            "nom_abonne=zz.1",
            "or=(id.eq.1,nom_abonne.eq.Dupont)",
            "and=(or(nom_abonne.like.*a))",
            "not.or=(nom_abonne.is.null)",
            "order=nom_abonne.desc",
            "select=commune,count()&order=nom_abonne",
            "nom_abonn=eq.x",
        ] {
            let params = pairs(query);
            let limits = QueryLimits::default();
            let hidden = parse_read_query(&params, &schema(), &visible(), &limits).unwrap_err();
            let missing =
                parse_read_query(&params, &without, &without_visible, &limits).unwrap_err();
            assert_eq!(hidden, missing, "{query}");
            assert_eq!(hidden.to_string(), missing.to_string(), "{query}");
            assert_eq!(hidden.kind_slug(), "unknown-column", "{query}");
            assert_eq!(hidden.title(), missing.title());
            assert_eq!(hidden.hint(), missing.hint(), "{query}");
        }
        let everything = vec![true; 6];
        let plan = parse_read_query(
            &pairs("select=nom_abonne"),
            &schema(),
            &everything,
            &QueryLimits::default(),
        )
        .unwrap();
        assert_eq!(plan.select, vec![column(HIDDEN)]);
        // A mask shorter than the schema hides the rest.
        let error = parse_read_query(
            &pairs("select=releve"),
            &schema(),
            &[true],
            &QueryLimits::default(),
        )
        .unwrap_err();
        assert_eq!(error.kind_slug(), "unknown-column");
        // `*` expands to visible columns only.
        let plan = parse("select=*,n:count()").unwrap();
        assert!(!plan.select.contains(&column(HIDDEN)));
    }

    /// `parse_filters` reads only filters, for a view's row filter.
    #[test]
    fn filters_only() {
        let everything = vec![true; 6];
        let parsed = parse_filters(&pairs("commune=eq.Troyes"), &schema(), &everything).unwrap();
        assert_eq!(parsed, Some(condition(1, Operator::Eq(text("Troyes")))));
        assert_eq!(parse_filters(&[], &schema(), &everything).unwrap(), None);
        let parsed = parse_filters(
            &pairs("or=(commune.eq.Troyes,commune.eq.Reims)&nom_abonne=not.is.null"),
            &schema(),
            &everything,
        )
        .unwrap();
        assert_eq!(
            parsed,
            Some(Filter::And(vec![
                Filter::Or(vec![
                    condition(1, Operator::Eq(text("Troyes"))),
                    condition(1, Operator::Eq(text("Reims"))),
                ]),
                not(condition(HIDDEN, Operator::Is(IsValue::Null))),
            ]))
        );
        for query in [
            "limit=5",
            "select=id",
            "format=csv",
            "commune=Troyes",
            "x=eq.1",
        ] {
            assert!(
                parse_filters(&pairs(query), &schema(), &everything).is_err(),
                "{query}"
            );
        }
        let error = parse_filters(&pairs("nom_abonne=eq.x"), &schema(), &visible()).unwrap_err();
        assert_eq!(error.kind_slug(), "unknown-column");
    }

    /// Malformed column filters name the parameter and the offending text.
    #[test]
    fn malformed_column_filters() {
        let cases = [
            ("id=eq", "parameter `id`: `eq` is not `operator.value`"),
            ("id=3", "parameter `id`: `3` is not `operator.value`"),
            ("id=", "parameter `id`: `` is not `operator.value`"),
            ("id=zz.1", "parameter `id`: unknown operator `zz`"),
            (
                "id=not.eq",
                "parameter `id`: `not.eq` is not `not.operator.value`",
            ),
            ("id=not.not.eq.1", "parameter `id`: unknown operator `not`"),
            ("id=cs.{1}", "parameter `id`: unknown operator `cs`"),
        ];
        for (query, message) in cases {
            let error = parse(query).unwrap_err();
            assert_eq!(error.to_string(), message, "{query}");
            assert_eq!(error.kind_slug(), "invalid-query");
        }
    }

    /// No input panics: a list of malformed strings all fail, and thousands
    /// of pseudo-random strings over the grammar's alphabet parse or fail.
    #[test]
    fn malformed_input_never_panics() {
        let deep = "(".repeat(10_000);
        let long = "é".repeat(5_000);
        let malformed: Vec<(String, String)> = [
            ("or", "("),
            ("or", ")"),
            ("or", ""),
            ("and", "(("),
            ("not.or", "(id.eq.1"),
            ("or", deep.as_str()),
            ("or", "(id.in.("),
            ("or", "(id.in.(1,2)"),
            ("or", r"(\"),
            ("or", "(commune.eq.\"\\"),
            ("or", "(é.eq.1)"),
            ("or", "(commune.é.1)"),
            ("or", "(commune.eq.é"),
            ("or", "(not.)"),
            ("or", "(not.and)"),
            ("or", "(.)"),
            ("or", "(..)"),
            ("or", "(,)"),
            ("a", "eq"),
            ("id", "zz.1"),
            ("id", "in.("),
            ("id", "in.)"),
            ("id", "in."),
            ("id", ""),
            ("id", "."),
            ("id", "eq.é"),
            ("commune", "in.(\"é"),
            ("actif", "is."),
            ("select", ","),
            ("select", ""),
            ("select", "é"),
            ("select", "()"),
            ("select", ".sum()"),
            ("select", "é:id"),
            ("select", ":"),
            ("select", "id:"),
            ("select", "count(*)"),
            ("order", ".desc"),
            ("order", ","),
            ("order", "é.desc"),
            ("order", "id."),
            ("limit", "é"),
            ("offset", ""),
            ("", ""),
            ("", "eq.1"),
            ("é", "eq.1"),
            (long.as_str(), long.as_str()),
            ("commune", long.as_str()),
            ("select", long.as_str()),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        for pair in malformed {
            let outcome = parse_read_query(
                std::slice::from_ref(&pair),
                &schema(),
                &visible(),
                &QueryLimits::default(),
            );
            assert!(outcome.is_err(), "{pair:?} was accepted: {outcome:?}");
            let error = outcome.unwrap_err();
            assert!(error.to_string().chars().count() < 400, "{error}");
        }

        // A small linear congruential generator: deterministic, no dependency.
        let alphabet: Vec<char> = "(),.\"\\:*é idcomneqtlkanrsuvg1-".chars().collect();
        let keys = [
            "or", "and", "not.or", "id", "commune", "select", "order", "limit",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % bound
        };
        for _ in 0..5_000 {
            let key = keys[next(keys.len())];
            let length = next(40);
            let value: String = (0..length)
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let params = [(key.to_owned(), value)];
            let _ = parse_read_query(&params, &schema(), &visible(), &QueryLimits::default());
            let _ = parse_filters(&params, &schema(), &visible());
        }
    }
}

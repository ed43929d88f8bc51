//! SQL for dataset reads, built with `QueryBuilder` for either backend.
//!
//! Invariants: identifiers come only from the dataset's schema (quoted with
//! [`quote_identifier`]) and the catalogue's table names; every user value is
//! pushed with `push_bind`. The two backends differ only where
//! [`DatasetBackend`] says so (case-insensitive LIKE, aggregate casts).

use sqlx::{Database, Postgres, QueryBuilder, Row, Sqlite};

use crate::domain::{FieldType, Schema, Value};
use crate::query::plan::{
    AggregateFunction, Condition, Filter, IsValue, NullsOrder, Operator, ReadPlan, SelectItem,
};

use super::Backend;

/// How a result cell is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    Int,
    Float,
    Text,
    Bool,
}

impl CellKind {
    /// The kind a column of `field_type` decodes to.
    pub fn of(field_type: FieldType) -> CellKind {
        match field_type {
            FieldType::Integer => CellKind::Int,
            FieldType::Number => CellKind::Float,
            FieldType::Boolean => CellKind::Bool,
            FieldType::String
            | FieldType::Date
            | FieldType::Datetime
            | FieldType::Geopoint
            | FieldType::Geojson => CellKind::Text,
        }
    }
}

/// One column of a result: its JSON key / CSV header and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    pub key: String,
    pub kind: CellKind,
    /// The schema column it shows, when it is a plain column (geometry needs it).
    pub source: Option<usize>,
}

/// What a read needs besides the plan: the physical table and the view's
/// restrictions, already resolved.
#[derive(Debug, Clone)]
pub struct TableQuery<'a> {
    pub table: &'a str,
    pub schema: &'a Schema,
    pub plan: &'a ReadPlan,
    /// Which schema columns the caller may see (an empty `select` shows these).
    pub visible: &'a [bool],
    /// The view's row filter, ANDed with the caller's.
    pub row_filter: Option<&'a Filter>,
}

/// The output columns of a read, in order.
pub fn output_columns(query: &TableQuery<'_>) -> Vec<OutputColumn> {
    let schema = query.schema;
    if query.plan.select.is_empty() {
        return schema
            .fields
            .iter()
            .enumerate()
            .filter(|(index, _)| query.visible.get(*index).copied().unwrap_or(false))
            .map(|(index, field)| OutputColumn {
                key: field.name.clone(),
                kind: CellKind::of(field.field_type),
                source: Some(index),
            })
            .collect();
    }
    query
        .plan
        .select
        .iter()
        .map(|item| match item {
            SelectItem::Column { column, alias } => {
                let field = &schema.fields[*column];
                OutputColumn {
                    key: alias.clone().unwrap_or_else(|| field.name.clone()),
                    kind: CellKind::of(field.field_type),
                    source: Some(*column),
                }
            }
            SelectItem::Aggregate {
                function,
                column,
                alias,
            } => {
                let column_kind = column.map(|index| CellKind::of(schema.fields[index].field_type));
                let kind = match (function, column_kind) {
                    (AggregateFunction::Count, _) => CellKind::Int,
                    (AggregateFunction::Avg, _) => CellKind::Float,
                    (_, Some(kind)) => kind,
                    (_, None) => CellKind::Int,
                };
                OutputColumn {
                    key: alias.clone().unwrap_or_else(|| function.name().to_owned()),
                    kind,
                    source: None,
                }
            }
        })
        .collect()
}

/// Quotes an identifier for both SQLite and PostgreSQL.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The per-backend pieces of dataset SQL.
pub trait DatasetBackend: Database {
    const BACKEND: Backend;

    /// Binds one value.
    fn push_value(builder: &mut QueryBuilder<Self>, value: &Value);

    /// Reads cell `index` of `row` as `kind`.
    fn decode_cell(row: &Self::Row, index: usize, kind: CellKind) -> Result<Value, sqlx::Error>;
}

/// Both stores bind and decode the same way; only the database type differs.
macro_rules! dataset_backend {
    ($database:ty, $backend:expr) => {
        impl DatasetBackend for $database {
            const BACKEND: Backend = $backend;

            fn push_value(builder: &mut QueryBuilder<Self>, value: &Value) {
                match value {
                    Value::Null => builder.push("NULL"),
                    Value::Bool(flag) => builder.push_bind(*flag),
                    Value::Int(number) => builder.push_bind(*number),
                    Value::Float(number) => builder.push_bind(*number),
                    Value::Text(text) => builder.push_bind(text.clone()),
                };
            }

            fn decode_cell(
                row: &Self::Row,
                index: usize,
                kind: CellKind,
            ) -> Result<Value, sqlx::Error> {
                decode_with(row, index, kind)
            }
        }
    };
}

dataset_backend!(Sqlite, Backend::Sqlite);
dataset_backend!(Postgres, Backend::Postgres);

fn decode_with<R>(row: &R, index: usize, kind: CellKind) -> Result<Value, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(match kind {
        CellKind::Int => row
            .try_get::<Option<i64>, _>(index)?
            .map_or(Value::Null, Value::Int),
        CellKind::Float => row
            .try_get::<Option<f64>, _>(index)?
            .map_or(Value::Null, Value::Float),
        CellKind::Text => row
            .try_get::<Option<String>, _>(index)?
            .map_or(Value::Null, Value::Text),
        CellKind::Bool => row
            .try_get::<Option<bool>, _>(index)?
            .map_or(Value::Null, Value::Bool),
    })
}

/// `SELECT … FROM … WHERE … GROUP BY … ORDER BY … LIMIT … OFFSET …`.
/// `limit` is the effective one (after the server's page cap), if any.
pub fn build_select<DB: DatasetBackend>(
    query: &TableQuery<'_>,
    limit: Option<u64>,
) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("SELECT ");
    push_select_list(&mut builder, query);
    push_from_where(&mut builder, query);
    push_group_by(&mut builder, query);
    push_order(&mut builder, query);
    if let Some(limit) = limit {
        builder.push(" LIMIT ");
        DB::push_value(
            &mut builder,
            &Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        );
    } else if query.plan.offset > 0 && DB::BACKEND == Backend::Sqlite {
        // SQLite needs a LIMIT before OFFSET; -1 means none.
        builder.push(" LIMIT -1");
    }
    if query.plan.offset > 0 {
        builder.push(" OFFSET ");
        DB::push_value(
            &mut builder,
            &Value::Int(i64::try_from(query.plan.offset).unwrap_or(i64::MAX)),
        );
    }
    builder
}

/// `SELECT count(*)` of what [`build_select`] would return without limit and offset.
pub fn build_count<DB: DatasetBackend>(query: &TableQuery<'_>) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 AS one");
    if query.plan.is_aggregate() {
        push_group_columns_as_select(&mut builder, query);
    }
    push_from_where(&mut builder, query);
    push_group_by(&mut builder, query);
    builder.push(") AS counted");
    builder
}

/// Every group of an aggregate read with its size as one more, last column:
/// small groups included, no limit or offset. The reader suppresses small
/// groups and pages in the same pass, so an aggregate-only answer and its
/// suppressed count cost one GROUP BY, not two.
pub fn build_groups_with_sizes<DB: DatasetBackend>(query: &TableQuery<'_>) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("SELECT ");
    push_select_list(&mut builder, query);
    builder.push(", count(*)");
    push_from_where(&mut builder, query);
    push_group_by(&mut builder, query);
    push_order(&mut builder, query);
    builder
}

fn push_group_columns_as_select<DB: DatasetBackend>(
    builder: &mut QueryBuilder<DB>,
    query: &TableQuery<'_>,
) {
    for column in group_columns(query.plan) {
        builder.push(", ");
        builder.push(quote_identifier(&query.schema.fields[column].name));
    }
}

fn push_select_list<DB: DatasetBackend>(builder: &mut QueryBuilder<DB>, query: &TableQuery<'_>) {
    let schema = query.schema;
    if query.plan.select.is_empty() {
        let mut first = true;
        for (index, field) in schema.fields.iter().enumerate() {
            if query.visible.get(index).copied().unwrap_or(false) {
                if !first {
                    builder.push(", ");
                }
                first = false;
                builder.push(quote_identifier(&field.name));
            }
        }
        if first {
            // A view that shows nothing still answers with row counts.
            builder.push("1");
        }
        return;
    }
    for (position, item) in query.plan.select.iter().enumerate() {
        if position > 0 {
            builder.push(", ");
        }
        match item {
            SelectItem::Column { column, .. } => {
                builder.push(quote_identifier(&schema.fields[*column].name));
            }
            SelectItem::Aggregate {
                function, column, ..
            } => push_aggregate::<DB>(builder, schema, *function, *column),
        }
    }
}

fn push_aggregate<DB: DatasetBackend>(
    builder: &mut QueryBuilder<DB>,
    schema: &Schema,
    function: AggregateFunction,
    column: Option<usize>,
) {
    let Some(column) = column else {
        builder.push("count(*)");
        return;
    };
    let field = &schema.fields[column];
    let name = quote_identifier(&field.name);
    let postgres = DB::BACKEND == Backend::Postgres;
    let sql = match function {
        AggregateFunction::Count => format!("count({name})"),
        // PostgreSQL widens sum(bigint) and avg() to numeric: bring them back
        // to the types both stores answer with.
        AggregateFunction::Sum if postgres && field.field_type == FieldType::Integer => {
            format!("CAST(sum({name}) AS BIGINT)")
        }
        AggregateFunction::Sum => format!("sum({name})"),
        AggregateFunction::Avg if postgres => format!("CAST(avg({name}) AS DOUBLE PRECISION)"),
        AggregateFunction::Avg => format!("avg({name})"),
        // PostgreSQL has no min/max on booleans.
        AggregateFunction::Min if postgres && field.field_type == FieldType::Boolean => {
            format!("bool_and({name})")
        }
        AggregateFunction::Max if postgres && field.field_type == FieldType::Boolean => {
            format!("bool_or({name})")
        }
        AggregateFunction::Min => format!("min({name})"),
        AggregateFunction::Max => format!("max({name})"),
    };
    builder.push(sql);
}

fn push_from_where<DB: DatasetBackend>(builder: &mut QueryBuilder<DB>, query: &TableQuery<'_>) {
    builder.push(" FROM ");
    builder.push(quote_identifier(query.table));
    let filters: Vec<&Filter> = query
        .row_filter
        .into_iter()
        .chain(query.plan.filter.as_ref())
        .collect();
    if filters.is_empty() {
        return;
    }
    builder.push(" WHERE ");
    for (position, filter) in filters.into_iter().enumerate() {
        if position > 0 {
            builder.push(" AND ");
        }
        push_filter(builder, query.schema, filter);
    }
}

/// The schema columns a grouped select groups by (its plain columns).
pub fn group_columns(plan: &ReadPlan) -> Vec<usize> {
    if !plan.is_aggregate() {
        return Vec::new();
    }
    let mut columns = Vec::new();
    for item in &plan.select {
        if let SelectItem::Column { column, .. } = item
            && !columns.contains(column)
        {
            columns.push(*column);
        }
    }
    columns
}

/// `GROUP BY` the plain columns of an aggregate select. Small groups are
/// never left out here: [`crate::store::Store::read_groups`] does it, once for
/// every format.
fn push_group_by<DB: DatasetBackend>(builder: &mut QueryBuilder<DB>, query: &TableQuery<'_>) {
    let columns = group_columns(query.plan);
    if !columns.is_empty() {
        builder.push(" GROUP BY ");
        for (position, column) in columns.iter().enumerate() {
            if position > 0 {
                builder.push(", ");
            }
            builder.push(quote_identifier(&query.schema.fields[*column].name));
        }
    }
}

fn push_order<DB: DatasetBackend>(builder: &mut QueryBuilder<DB>, query: &TableQuery<'_>) {
    if query.plan.order.is_empty() {
        return;
    }
    builder.push(" ORDER BY ");
    for (position, term) in query.plan.order.iter().enumerate() {
        if position > 0 {
            builder.push(", ");
        }
        builder.push(quote_identifier(&query.schema.fields[term.column].name));
        builder.push(if term.descending { " DESC" } else { " ASC" });
        builder.push(match term.nulls_placement() {
            NullsOrder::First => " NULLS FIRST",
            NullsOrder::Last => " NULLS LAST",
        });
    }
}

fn push_filter<DB: DatasetBackend>(
    builder: &mut QueryBuilder<DB>,
    schema: &Schema,
    filter: &Filter,
) {
    match filter {
        Filter::And(parts) | Filter::Or(parts) if parts.is_empty() => {
            // An empty and() is true, an empty or() is false (PostgreSQL's reading).
            builder.push(if matches!(filter, Filter::And(_)) {
                "1=1"
            } else {
                "1=0"
            });
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            builder.push("(");
            for (position, part) in parts.iter().enumerate() {
                if position > 0 {
                    builder.push(joiner);
                }
                push_filter(builder, schema, part);
            }
            builder.push(")");
        }
        Filter::Not(inner) => {
            builder.push("NOT (");
            push_filter(builder, schema, inner);
            builder.push(")");
        }
        Filter::Condition(condition) => push_condition(builder, schema, condition),
    }
}

fn push_condition<DB: DatasetBackend>(
    builder: &mut QueryBuilder<DB>,
    schema: &Schema,
    condition: &Condition,
) {
    let column = quote_identifier(&schema.fields[condition.column].name);
    let comparison = |builder: &mut QueryBuilder<DB>, operator: &str, value: &Value| {
        builder.push(format!("{column} {operator} "));
        DB::push_value(builder, value);
    };
    match &condition.operator {
        Operator::Eq(value) => comparison(builder, "=", value),
        Operator::Neq(value) => comparison(builder, "<>", value),
        Operator::Gt(value) => comparison(builder, ">", value),
        Operator::Gte(value) => comparison(builder, ">=", value),
        Operator::Lt(value) => comparison(builder, "<", value),
        Operator::Lte(value) => comparison(builder, "<=", value),
        Operator::Like(pattern) => {
            builder.push(format!("{column} LIKE "));
            DB::push_value(builder, &Value::Text(pattern.clone()));
            builder.push(" ESCAPE '\\'");
        }
        Operator::Ilike(pattern) => {
            if DB::BACKEND == Backend::Postgres {
                builder.push(format!("{column} ILIKE "));
                DB::push_value(builder, &Value::Text(pattern.clone()));
            } else {
                // SQLite's lower() folds ASCII, as the contract requires at least.
                builder.push(format!("lower({column}) LIKE lower("));
                DB::push_value(builder, &Value::Text(pattern.clone()));
                builder.push(")");
            }
            builder.push(" ESCAPE '\\'");
        }
        Operator::In(values) if values.is_empty() => {
            builder.push("1=0");
        }
        Operator::In(values) => {
            builder.push(format!("{column} IN ("));
            for (position, value) in values.iter().enumerate() {
                if position > 0 {
                    builder.push(", ");
                }
                DB::push_value(builder, value);
            }
            builder.push(")");
        }
        Operator::Is(is) => {
            builder.push(format!(
                "{column} {}",
                match is {
                    IsValue::Null | IsValue::Unknown => "IS NULL",
                    IsValue::True => "IS TRUE",
                    IsValue::False => "IS FALSE",
                }
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Field;
    use crate::query::plan::OrderTerm;

    fn schema() -> Schema {
        Schema {
            fields: vec![
                Field::new("id", FieldType::Integer),
                Field::new("commune", FieldType::String),
                Field::new("conso \"kwh\"", FieldType::Number),
            ],
            primary_key: None,
        }
    }

    /// Values are bound, identifiers quoted, and the view's filter ANDed in.
    #[test]
    fn builds_parameterised_sql() {
        let schema = schema();
        let plan = ReadPlan {
            filter: Some(Filter::Condition(Condition {
                column: 1,
                operator: Operator::Eq(Value::Text("Troyes'; DROP TABLE x".into())),
            })),
            order: vec![OrderTerm {
                column: 0,
                descending: true,
                nulls: None,
            }],
            limit: Some(10),
            ..ReadPlan::default()
        };
        let row_filter = Filter::Condition(Condition {
            column: 0,
            operator: Operator::Gt(Value::Int(3)),
        });
        let query = TableQuery {
            table: "ds_demo_1",
            schema: &schema,
            plan: &plan,
            visible: &[true, true, false],
            row_filter: Some(&row_filter),
        };
        let sql = build_select::<Postgres>(&query, Some(10)).into_string();
        assert_eq!(
            sql,
            "SELECT \"id\", \"commune\" FROM \"ds_demo_1\" WHERE \"id\" > $1 AND \"commune\" = $2 \
             ORDER BY \"id\" DESC NULLS FIRST LIMIT $3"
        );
        let sql = build_select::<Sqlite>(&query, Some(10)).into_string();
        assert!(sql.contains("\"commune\" = ?"), "{sql}");
    }

    /// Grouped selects group by their plain columns; small groups are left
    /// out by the reader, never by a HAVING of their own.
    #[test]
    fn groups_by_plain_columns() {
        let schema = schema();
        let plan = ReadPlan {
            select: vec![
                SelectItem::Column {
                    column: 1,
                    alias: None,
                },
                SelectItem::Aggregate {
                    function: AggregateFunction::Sum,
                    column: Some(0),
                    alias: None,
                },
            ],
            ..ReadPlan::default()
        };
        let query = TableQuery {
            table: "t",
            schema: &schema,
            plan: &plan,
            visible: &[true, true, true],
            row_filter: None,
        };
        assert_eq!(
            build_select::<Postgres>(&query, None).into_string(),
            "SELECT \"commune\", CAST(sum(\"id\") AS BIGINT) FROM \"t\" GROUP BY \"commune\""
        );
        assert_eq!(
            build_groups_with_sizes::<Sqlite>(&query).into_string(),
            "SELECT \"commune\", sum(\"id\"), count(*) FROM \"t\" GROUP BY \"commune\""
        );
        let keys: Vec<String> = output_columns(&query).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["commune", "sum"]);
    }

    /// Quotes inside a column name cannot close the identifier.
    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("conso \"kwh\""), "\"conso \"\"kwh\"\"\"");
    }
}

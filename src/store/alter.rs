//! Compatible schema changes (a new nullable column, a wider type) applied
//! to the rows a dataset already has, without a new upload.
//!
//! Each table holding rows of the dataset (the current version's and every
//! kept earlier version's, so a restore serves them under the same schema)
//! is rewritten into a fresh table of the new shape (`CREATE TABLE … AS
//! SELECT` with casts, null in the new columns), and the catalogue and
//! version rows are pointed at it, in the same transaction as the new
//! definition. The old table is retired, as an import retires the table it
//! replaces, rather than altered in place:
//! - a read or export that started on it finishes on it (its lease keeps
//!   it), where an `ALTER TABLE` on PostgreSQL would wait for it while
//!   queueing every new reader behind its lock;
//! - a changed column type under the same table name would break the
//!   statements PostgreSQL connections have prepared for it ("cached plan
//!   must not change result type"); a new name is new SQL text.
//!
//! The cost: the rows are copied once (a change of definition, not of
//! data, so rare). Numbers widened to strings are written by each
//! database's own cast (`2.0` on SQLite, `2` on PostgreSQL).

use sqlx::AssertSqlSafe;

use super::changes::{Announce, Change};
use super::datasets::{TABLE_PREFIX, column_type, index_sql};
use super::retired::{RETIRE_SQL, now_seconds};
use super::sql::quote_identifier;
use super::{Backend, Store, StoreError};
use crate::domain::{FieldType, Schema, SchemaChange};

/// What a compatible schema change writes besides the rows.
#[derive(Debug, Clone)]
pub struct SchemaUpdate<'a> {
    pub id: &'a str,
    /// The new schema (the new columns and types, the primary key and indexes).
    pub schema: &'a Schema,
    pub changes: &'a [SchemaChange],
    /// The new definition, its hash and its schema, as `update_definition` takes them.
    pub definition: &'a str,
    pub definition_hash: &'a str,
    pub schema_json: &'a str,
}

impl Store {
    /// Applies compatible `changes` to every table holding rows of the
    /// dataset and records its new definition, all or nothing.
    pub async fn apply_schema_changes(&self, update: SchemaUpdate<'_>) -> Result<(), StoreError> {
        let backend = self.backend();
        macro_rules! run {
            ($transaction:ident, $columns_sql:literal) => {{
                let current: Option<String> =
                    sqlx::query_scalar("SELECT table_name FROM datasets WHERE id = $1")
                        .bind(update.id)
                        .fetch_optional(&mut *$transaction)
                        .await?;
                let kept: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name FROM dataset_versions \
                     WHERE dataset_id = $1 AND table_name IS NOT NULL",
                )
                .bind(update.id)
                .fetch_all(&mut *$transaction)
                .await?;
                let mut tables: Vec<String> = current.into_iter().chain(kept).collect();
                tables.retain(|table| table.starts_with(TABLE_PREFIX));
                tables.sort();
                tables.dedup();
                for table in tables {
                    let columns: Vec<String> = sqlx::query_scalar($columns_sql)
                        .bind(&table)
                        .fetch_all(&mut *$transaction)
                        .await?;
                    if columns.is_empty() {
                        continue;
                    }
                    let rewritten = rewritten_name(&table, update.definition_hash);
                    for statement in rewrite_sql(backend, &table, &rewritten, &columns, &update) {
                        sqlx::query(AssertSqlSafe(statement))
                            .execute(&mut *$transaction)
                            .await?;
                    }
                    sqlx::query("UPDATE datasets SET table_name = $1 WHERE id = $2 AND table_name = $3")
                        .bind(&rewritten)
                        .bind(update.id)
                        .bind(&table)
                        .execute(&mut *$transaction)
                        .await?;
                    sqlx::query(
                        "UPDATE dataset_versions SET table_name = $1 \
                         WHERE dataset_id = $2 AND table_name = $3",
                    )
                    .bind(&rewritten)
                    .bind(update.id)
                    .bind(&table)
                    .execute(&mut *$transaction)
                    .await?;
                    sqlx::query(RETIRE_SQL)
                        .bind(&table)
                        .bind(update.id)
                        .bind(now_seconds())
                        .execute(&mut *$transaction)
                        .await?;
                }
                sqlx::query(
                    "UPDATE datasets SET definition = $1, definition_hash = $2, schema = $3 WHERE id = $4",
                )
                .bind(update.definition)
                .bind(update.definition_hash)
                .bind(update.schema_json)
                .bind(update.id)
                .execute(&mut *$transaction)
                .await?;
                $transaction
                    .announce(&Change::Catalog {
                        dataset: update.id.to_owned(),
                    })
                    .await?;
                $transaction.commit().await?;
            }};
        }
        match self {
            Store::Sqlite(pool) => {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                run!(
                    transaction,
                    "SELECT name FROM pragma_table_info($1) ORDER BY cid"
                );
            }
            Store::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                run!(
                    transaction,
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     ORDER BY ordinal_position"
                );
            }
        }
        Ok(())
    }
}

/// Length of the definition hash prefix that names a rewritten table.
const SUFFIX_LENGTH: usize = 8;

/// The name of `table` rewritten for the definition `hash`: its version's
/// name with `_w` and the start of the hash (a previous such suffix replaced).
fn rewritten_name(table: &str, hash: &str) -> String {
    let base = match table.rsplit_once("_w") {
        Some((base, suffix))
            if suffix.len() == SUFFIX_LENGTH
                && suffix
                    .chars()
                    .all(|character| character.is_ascii_hexdigit()) =>
        {
            base
        }
        _ => table,
    };
    let suffix = hash.get(..SUFFIX_LENGTH).unwrap_or(hash);
    let name = format!("{base}_w{suffix}");
    if name == table {
        // The same prefix twice in a row: take the next one.
        format!(
            "{base}_w{}",
            hash.get(SUFFIX_LENGTH..2 * SUFFIX_LENGTH).unwrap_or("0")
        )
    } else {
        name
    }
}

/// The statements that copy `table` (whose columns are `columns`) into
/// `rewritten` under the new schema, and index it as an import would.
fn rewrite_sql(
    backend: Backend,
    table: &str,
    rewritten: &str,
    columns: &[String],
    update: &SchemaUpdate<'_>,
) -> Vec<String> {
    let mut select: Vec<String> = columns
        .iter()
        .map(|column| {
            let widened = update.changes.iter().find_map(|change| match change {
                SchemaChange::WidenColumn { field, .. } if &field.name == column => {
                    Some(field.field_type)
                }
                _ => None,
            });
            let quoted = quote_identifier(column);
            match widened {
                Some(field_type) => format!("{} AS {quoted}", cast(backend, &quoted, field_type)),
                None => quoted,
            }
        })
        .collect();
    for change in update.changes {
        if let SchemaChange::AddColumn(field) = change
            && !columns.contains(&field.name)
        {
            select.push(format!(
                "{} AS {}",
                cast(backend, "NULL", field.field_type),
                quote_identifier(&field.name)
            ));
        }
    }
    let mut statements = vec![
        format!("DROP TABLE IF EXISTS {}", quote_identifier(rewritten)),
        format!(
            "CREATE TABLE {} AS SELECT {} FROM {}",
            quote_identifier(rewritten),
            select.join(", "),
            quote_identifier(table)
        ),
    ];
    statements.extend(index_sql(backend, rewritten, update.schema));
    statements
}

/// `expression` as a value of `field_type`, with the type the store's
/// tables give it (text compares by code point on PostgreSQL).
fn cast(backend: Backend, expression: &str, field_type: FieldType) -> String {
    let column = column_type(backend, field_type);
    match column.split_once(" COLLATE ") {
        Some((base, collation)) => format!("CAST({expression} AS {base}) COLLATE {collation}"),
        None => format!("CAST({expression} AS {column})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Field;

    /// A rewritten table keeps its version's name and carries the new
    /// definition's hash, replacing an earlier rewrite's.
    #[test]
    fn names_rewritten_tables() {
        assert_eq!(
            rewritten_name("ds_a_v3", "0123456789abcdef"),
            "ds_a_v3_w01234567"
        );
        assert_eq!(
            rewritten_name("ds_a_v3_w01234567", "89abcdef01234567"),
            "ds_a_v3_w89abcdef"
        );
        assert_eq!(
            rewritten_name("ds_a_v3_w01234567", "0123456789abcdef"),
            "ds_a_v3_w89abcdef"
        );
    }

    /// Widened columns are cast, new ones are typed nulls, the rest copied.
    #[test]
    fn rewrites_with_casts() {
        let schema = Schema {
            fields: vec![
                Field::new("n", FieldType::Number),
                Field::new("s", FieldType::String),
                Field::new("new", FieldType::Integer),
            ],
            primary_key: None,
        };
        let changes = vec![
            SchemaChange::WidenColumn {
                field: schema.fields[0].clone(),
                from: FieldType::Integer,
            },
            SchemaChange::AddColumn(schema.fields[2].clone()),
        ];
        let update = SchemaUpdate {
            id: "a",
            schema: &schema,
            changes: &changes,
            definition: "{}",
            definition_hash: "0123456789",
            schema_json: "{}",
        };
        let columns = vec!["n".to_owned(), "s".to_owned()];
        let statements = rewrite_sql(
            Backend::Postgres,
            "ds_a_v1",
            "ds_a_v1_w01234567",
            &columns,
            &update,
        );
        assert_eq!(
            statements[1],
            "CREATE TABLE \"ds_a_v1_w01234567\" AS SELECT CAST(\"n\" AS DOUBLE PRECISION) AS \"n\", \"s\", CAST(NULL AS BIGINT) AS \"new\" FROM \"ds_a_v1\""
        );
        let sqlite = rewrite_sql(Backend::Sqlite, "ds_a_v1", "x", &columns, &update);
        assert!(
            sqlite[1].contains("CAST(\"n\" AS REAL) AS \"n\""),
            "{sqlite:?}"
        );
        assert_eq!(
            cast(Backend::Postgres, "\"s\"", FieldType::String),
            "CAST(\"s\" AS TEXT) COLLATE \"C\""
        );
    }
}

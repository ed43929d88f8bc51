//! Dataset rows in the store: streamed reads, counts, and the import that
//! writes a new version into a fresh table and swaps it in atomically, so an
//! import either fully succeeds or changes nothing. The replaced table is
//! retired, never dropped on the spot (see [`super::retired`]): readers and
//! other instances may still be reading it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::Execute;
use sqlx::QueryBuilder;

use super::changes::{Announce, Change};
use super::retired::{RETIRE_SQL, TableLease, now_seconds};
use super::sql::{
    self, CellKind, DatasetBackend, OutputColumn, TableQuery, build_count, build_groups_with_sizes,
    build_select, quote_identifier,
};
use super::{Backend, Store, StoreError};
use crate::domain::{FieldType, Schema, Value};
use crate::query::plan::{Filter, ReadPlan};

/// Runs `$body` with `$pool` bound to the concrete pool and `$db` naming its
/// database type, so generic SQL builders get a concrete backend.
macro_rules! with_backend {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            Store::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}

/// An owned read: everything needed to run it after the request has moved on
/// (streamed bodies outlive the handler).
#[derive(Debug, Clone)]
pub struct DatasetRead {
    pub table: String,
    pub schema: Arc<Schema>,
    pub plan: ReadPlan,
    pub visible: Vec<bool>,
    pub row_filter: Option<Filter>,
    pub min_group_size: Option<u32>,
    /// Keeps `table` from being dropped while this read (or its stream) lives.
    pub lease: Option<TableLease>,
}

impl DatasetRead {
    pub fn as_query(&self) -> TableQuery<'_> {
        TableQuery {
            table: &self.table,
            schema: &self.schema,
            plan: &self.plan,
            visible: &self.visible,
            row_filter: self.row_filter.as_ref(),
        }
    }

    pub fn output_columns(&self) -> Vec<OutputColumn> {
        sql::output_columns(&self.as_query())
    }

    /// How each output column decodes.
    pub fn cell_kinds(&self) -> Vec<CellKind> {
        self.output_columns()
            .iter()
            .map(|column| column.kind)
            .collect()
    }
}

/// The cells of one result row, decoded as `kinds` (extra columns ignored).
fn decode_row<DB: DatasetBackend>(
    row: &DB::Row,
    kinds: &[CellKind],
) -> Result<Vec<Value>, StoreError> {
    kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| DB::decode_cell(row, index, *kind).map_err(StoreError::Sql))
        .collect()
}

/// The groups an aggregate-only read shows, and how many it left out.
#[derive(Debug, Default)]
pub struct SuppressedGroups {
    /// The groups shown (offset and limit applied).
    pub rows: Vec<Vec<Value>>,
    /// Groups of at least the minimum size, offset and limit ignored.
    pub kept: u64,
    /// Groups under the minimum size.
    pub left_out: u64,
}

/// A row stream that owns its connection and query.
pub type RowStream = BoxStream<'static, Result<Vec<Value>, StoreError>>;

/// Groups with their sizes (rows, then the group's row count).
pub type GroupStream = BoxStream<'static, Result<(Vec<Value>, i64), StoreError>>;

impl Store {
    /// Streams the rows of `read`, at most `limit` of them.
    pub fn stream_rows(&self, read: Arc<DatasetRead>, limit: Option<u64>) -> RowStream {
        let kinds = read.cell_kinds();
        with_backend!(self.clone(), pool, DB => {
            async_stream::try_stream! {
                let mut builder = build_select::<DB>(&read.as_query(), limit);
                let mut rows = builder.build().fetch(&pool);
                while let Some(row) = rows.try_next().await.map_err(StoreError::Sql)? {
                    yield decode_row::<DB>(&row, &kinds)?;
                }
            }
            .boxed()
        })
    }

    /// Every group of an aggregate read with its size, small ones included,
    /// ignoring limit and offset (see [`build_groups_with_sizes`]).
    pub fn stream_groups(&self, read: Arc<DatasetRead>) -> GroupStream {
        let kinds = read.cell_kinds();
        with_backend!(self.clone(), pool, DB => {
            async_stream::try_stream! {
                let mut builder = build_groups_with_sizes::<DB>(&read.as_query());
                let mut rows = builder.build().fetch(&pool);
                while let Some(row) = rows.try_next().await.map_err(StoreError::Sql)? {
                    let cells = decode_row::<DB>(&row, &kinds)?;
                    let size = match <DB as DatasetBackend>::decode_cell(&row, kinds.len(), CellKind::Int).map_err(StoreError::Sql)? {
                        Value::Int(size) => size,
                        _ => 0,
                    };
                    yield (cells, size);
                }
            }
            .boxed()
        })
    }

    /// An aggregate-only answer: the groups of at least `minimum` rows,
    /// after the plan's offset and within `limit`, with how many groups were
    /// left out and how many kept. The one implementation of small-group
    /// suppression, for every format: one GROUP BY, read in one pass.
    pub async fn read_groups(
        &self,
        read: Arc<DatasetRead>,
        minimum: u32,
        limit: Option<u64>,
    ) -> Result<SuppressedGroups, StoreError> {
        let mut groups = self.stream_groups(read.clone());
        let mut answer = SuppressedGroups::default();
        let mut skipped = 0;
        while let Some(group) = groups.try_next().await? {
            let (row, size) = group;
            if size < i64::from(minimum) {
                answer.left_out += 1;
                continue;
            }
            answer.kept += 1;
            if skipped < read.plan.offset {
                skipped += 1;
            } else if limit.is_none_or(|limit| (answer.rows.len() as u64) < limit) {
                answer.rows.push(row);
            }
        }
        Ok(answer)
    }

    /// Exact number of rows (or groups) `read` matches, ignoring limit and offset.
    pub async fn count_rows(&self, read: &DatasetRead) -> Result<u64, StoreError> {
        let count: i64 = with_backend!(self, pool, DB => {
            build_count::<DB>(&read.as_query()).build_query_scalar().fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The planner's estimate of the rows `read` matches (PostgreSQL), or
    /// `None` where the backend has no planner statistics to offer.
    pub async fn estimate_rows(&self, read: &DatasetRead) -> Result<Option<u64>, StoreError> {
        let Store::Postgres(pool) = self else {
            return Ok(None);
        };
        let select = build_count::<sqlx::Postgres>(&read.as_query()).into_string();
        // EXPLAIN of the inner query: its top node's row estimate.
        let inner = select
            .strip_prefix("SELECT count(*) FROM (")
            .and_then(|rest| rest.strip_suffix(") AS counted"))
            .unwrap_or(&select)
            .to_owned();
        let mut counted = build_count::<sqlx::Postgres>(&read.as_query());
        let mut query = counted.build();
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let statement = sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {inner}"));
        let plan: serde_json::Value = match arguments {
            Some(arguments) => {
                sqlx::query_scalar_with(statement, arguments)
                    .fetch_one(pool)
                    .await?
            }
            None => sqlx::query_scalar(statement).fetch_one(pool).await?,
        };
        Ok(plan
            .pointer("/0/Plan/Plan Rows")
            .and_then(serde_json::Value::as_f64)
            .map(|rows| rows.max(0.0) as u64))
    }

    /// Replaces a dataset's rows with `rows`, in a new table created in the
    /// same transaction as the catalogue update. On any invalid row nothing
    /// changes and up to `max_problems` problems are returned.
    pub async fn import_rows<I, E>(
        &self,
        new: NewVersion<'_>,
        rows: I,
        max_problems: usize,
    ) -> Result<ImportOutcome<E>, StoreError>
    where
        I: Iterator<Item = Result<Vec<Value>, E>>,
    {
        match self {
            Store::Sqlite(pool) => import_sqlite(pool, new, rows, max_problems).await,
            Store::Postgres(pool) => import_postgres(pool, new, rows, max_problems).await,
        }
    }

    /// Every dataset row of the catalogue table.
    pub async fn stored_datasets(&self) -> Result<Vec<StoredDataset>, StoreError> {
        let sql = "SELECT id, definition, definition_hash, source_hash, schema, table_name, \
                   version, record_count, last_updated, origin, retired_at, retired_by \
                   FROM datasets ORDER BY id";
        let rows: Vec<StoredDataset> = with_backend!(self, pool, DB => {
            sqlx::query_as::<DB, StoredDataset>(sql).fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// Updates a dataset's metadata without touching its rows.
    pub async fn update_definition(
        &self,
        id: &str,
        definition: &str,
        definition_hash: &str,
        schema: &str,
    ) -> Result<(), StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "UPDATE datasets SET definition = ?, definition_hash = ?, schema = ? WHERE id = ?"
            }
            Backend::Postgres => {
                "UPDATE datasets SET definition = $1, definition_hash = $2, schema = $3 WHERE id = $4"
            }
        };
        with_backend!(self, pool, DB => {
            let mut transaction = pool.begin().await?;
            sqlx::query::<DB>(sql)
                .bind(definition)
                .bind(definition_hash)
                .bind(schema)
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            transaction
                .announce(&Change::Catalog { dataset: id.to_owned() })
                .await?;
            transaction.commit().await?;
        });
        Ok(())
    }

    /// Records a register entry with no data yet (no table, no rows,
    /// version 0), or turns a dataset back into one (its table is retired).
    /// `last_updated` stays empty: no version was ever published.
    /// `origin` goes in `source_hash`: [`REGISTER_IMPORT`] for entries of an
    /// imported register, which a catalogue sync leaves alone.
    pub async fn upsert_metadata_only(
        &self,
        id: &str,
        definition: &str,
        definition_hash: &str,
        origin: &str,
    ) -> Result<(), StoreError> {
        let previous = "SELECT table_name FROM datasets WHERE id = $1";
        let upsert = "INSERT INTO datasets (id, definition, definition_hash, source_hash, schema, \
                      table_name, version, record_count, last_updated) \
                      VALUES ($1, $2, $3, $4, '{\"fields\":[]}', '', 0, 0, '') \
                      ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, \
                      definition_hash = excluded.definition_hash, source_hash = excluded.source_hash, \
                      schema = excluded.schema, table_name = '', version = 0, record_count = 0, \
                      last_updated = ''";
        with_backend!(self, pool, DB => {
            let mut transaction = pool.begin().await?;
            let old_table: Option<String> = sqlx::query_scalar::<DB, String>(previous)
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
            sqlx::query::<DB>(upsert)
                .bind(id)
                .bind(definition)
                .bind(definition_hash)
                .bind(origin)
                .execute(&mut *transaction)
                .await?;
            if let Some(table) = old_table.filter(|table| table.starts_with(TABLE_PREFIX)) {
                sqlx::query::<DB>(RETIRE_SQL)
                    .bind(table)
                    .bind(id)
                    .bind(now_seconds())
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
        });
        Ok(())
    }

    /// Removes a dataset; its table is retired, dropped once no reader uses it.
    pub async fn delete_dataset(&self, id: &str, table_name: &str) -> Result<(), StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => "DELETE FROM datasets WHERE id = ?",
            Backend::Postgres => "DELETE FROM datasets WHERE id = $1",
        };
        with_backend!(self, pool, DB => {
            let mut transaction = pool.begin().await?;
            sqlx::query::<DB>(sql).bind(id).execute(&mut *transaction).await?;
            if table_name.starts_with(TABLE_PREFIX) {
                sqlx::query::<DB>(RETIRE_SQL)
                    .bind(table_name)
                    .bind(id)
                    .bind(now_seconds())
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction
                .announce(&Change::Catalog { dataset: id.to_owned() })
                .await?;
            transaction.commit().await?;
        });
        Ok(())
    }
}

/// The `source_hash` of register entries created by `passerelle register
/// import` (no file behind them: a catalogue sync does not remove them).
pub const REGISTER_IMPORT: &str = "register-import";

/// Tables the gateway creates for imported datasets start with this prefix;
/// only those are ever dropped (a `source.table` is someone else's).
pub const TABLE_PREFIX: &str = "ds_";

/// The start of an import, the same on both stores but for the placeholder:
/// the previous version, the next version number, and its fresh, empty table.
/// A number whose table is still retired (a dataset removed, then added
/// again) is skipped: that table may still be read.
macro_rules! start_version {
    ($transaction:ident, $new:ident, $backend:expr, $select:literal) => {{
        let previous: Option<(i64, String)> = sqlx::query_as($select)
            .bind($new.id)
            .fetch_optional(&mut *$transaction)
            .await?;
        let mut version = previous.as_ref().map_or(1, |(version, _)| version + 1);
        let mut table = table_name_for($new.id, version);
        while sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM retired_tables WHERE table_name = $1",
        )
        .bind(&table)
        .fetch_one(&mut *$transaction)
        .await?
            > 0
        {
            version += 1;
            table = table_name_for($new.id, version);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            quote_identifier(&table)
        )))
        .execute(&mut *$transaction)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(create_table_sql(
            $backend,
            &table,
            $new.schema,
        )))
        .execute(&mut *$transaction)
        .await?;
        (previous, version, table)
    }};
}

/// The end of an import, the same on both stores but for the placeholders:
/// point the catalogue row at the new table, retire the previous table, commit.
macro_rules! record_version {
    ($transaction:ident, $new:ident, $previous:ident, $table:ident, $version:ident, $record_count:ident, $placeholders:literal) => {{
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        sqlx::query(concat!(
            "INSERT INTO datasets (id, definition, definition_hash, source_hash, schema, table_name, version, record_count, last_updated, origin) \
             VALUES (",
            $placeholders,
            ") ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, definition_hash = excluded.definition_hash, \
             source_hash = excluded.source_hash, schema = excluded.schema, table_name = excluded.table_name, \
             version = excluded.version, record_count = excluded.record_count, last_updated = excluded.last_updated"
        ))
        .bind($new.id)
        .bind($new.definition)
        .bind($new.definition_hash)
        .bind($new.source_hash)
        .bind(serde_json::to_string($new.schema).unwrap_or_default())
        .bind(&$table)
        .bind($version)
        .bind($record_count)
        .bind(now)
        .bind($new.origin)
        .execute(&mut *$transaction)
        .await?;
        if let Some((_, old_table)) = $previous
            && old_table != $table
            && old_table.starts_with(TABLE_PREFIX)
        {
            sqlx::query(RETIRE_SQL)
                .bind(&old_table)
                .bind($new.id)
                .bind(now_seconds())
                .execute(&mut *$transaction)
                .await?;
        }
        // Every instance swaps the new version in at once (PostgreSQL).
        $transaction
            .announce(&Change::Catalog {
                dataset: $new.id.to_owned(),
            })
            .await?;
        $transaction.commit().await?;
        Ok(ImportOutcome::Imported {
            table_name: $table,
            version: $version,
            record_count: $record_count,
        })
    }};
}

/// A row of the catalogue table.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDataset {
    pub id: String,
    pub definition: String,
    pub definition_hash: String,
    pub source_hash: String,
    pub schema: String,
    pub table_name: String,
    pub version: i64,
    pub record_count: i64,
    pub last_updated: String,
    /// `file` (a definition in `catalog/`, managed by sync) or `api`.
    pub origin: String,
    /// Set when the dataset is retired (a tombstone): RFC 3339.
    pub retired_at: Option<String>,
    /// Who retired it.
    pub retired_by: Option<String>,
}

impl StoredDataset {
    /// True for a dataset created through the publishing API.
    pub fn from_api(&self) -> bool {
        self.origin == ORIGIN_API
    }

    /// True for a retired dataset (a tombstone: no data served).
    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }
}

/// Origin of a dataset defined by a file in `catalog/`.
pub const ORIGIN_FILE: &str = "file";
/// Origin of a dataset created through the publishing API.
pub const ORIGIN_API: &str = "api";

/// What an import writes besides the rows.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub id: &'a str,
    pub schema: &'a Schema,
    pub definition: &'a str,
    pub definition_hash: &'a str,
    pub source_hash: &'a str,
    /// [`ORIGIN_FILE`] or [`ORIGIN_API`]; kept when the dataset exists already.
    pub origin: &'a str,
}

/// The result of an import.
#[derive(Debug)]
pub enum ImportOutcome<E> {
    Imported {
        table_name: String,
        version: i64,
        record_count: i64,
    },
    /// Invalid rows: nothing was changed.
    Rejected(Vec<E>),
}

fn table_name_for(id: &str, version: i64) -> String {
    let slug: String = id
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character
            } else {
                '_'
            }
        })
        .collect();
    format!("{TABLE_PREFIX}{slug}_v{version}")
}

pub(super) fn column_type(backend: Backend, field_type: FieldType) -> &'static str {
    match (backend, field_type) {
        (Backend::Sqlite, FieldType::Integer | FieldType::Boolean) => "INTEGER",
        (Backend::Sqlite, FieldType::Number) => "REAL",
        (Backend::Sqlite, _) => "TEXT",
        (Backend::Postgres, FieldType::Integer) => "BIGINT",
        (Backend::Postgres, FieldType::Number) => "DOUBLE PRECISION",
        (Backend::Postgres, FieldType::Boolean) => "BOOLEAN",
        // Binary collation: text compares by code point, as on SQLite.
        (Backend::Postgres, _) => "TEXT COLLATE \"C\"",
    }
}

fn create_table_sql(backend: Backend, table: &str, schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields
        .iter()
        .map(|field| {
            format!(
                "{} {}",
                quote_identifier(&field.name),
                column_type(backend, field.field_type)
            )
        })
        .collect();
    format!(
        "CREATE TABLE {} ({})",
        quote_identifier(table),
        columns.join(", ")
    )
}

/// The indexes of a dataset's table: the primary key, unique, and one per
/// filterable column.
///
/// On SQLite a filterable column's index also holds the primary key, after
/// it: the most common read, a filter on that column in the default order
/// (the key) with a limit, or its next page (`&id=gt.N`), is then one range
/// of the index. With the column alone, SQLite (whose statistics give only
/// the average rows per value) chose that index for a frequent value and
/// sorted every row of it: 100 rows of `commune=eq.Troyes` from a given id
/// took 100-550 ms on 1 M rows (30 % Troyes), against under 1 ms now.
/// PostgreSQL plans it well from its own statistics, and building the wider
/// index would slow its imports.
pub(super) fn index_sql(backend: Backend, table: &str, schema: &Schema) -> Vec<String> {
    let mut statements = Vec::new();
    let key = schema.primary_key.as_deref();
    if let Some(key) = key {
        statements.push(format!(
            "CREATE UNIQUE INDEX {} ON {} ({})",
            quote_identifier(&format!("{table}_pk")),
            quote_identifier(table),
            quote_identifier(key)
        ));
    }
    for (position, field) in schema.fields.iter().enumerate() {
        if field.filterable && key != Some(field.name.as_str()) {
            let columns = match (backend, key) {
                (Backend::Sqlite, Some(key)) => {
                    format!(
                        "{}, {}",
                        quote_identifier(&field.name),
                        quote_identifier(key)
                    )
                }
                _ => quote_identifier(&field.name),
            };
            statements.push(format!(
                "CREATE INDEX {} ON {} ({columns})",
                quote_identifier(&format!("{table}_i{position}")),
                quote_identifier(table),
            ));
        }
    }
    statements
}

/// Longest pause between two slices of a SQLite import (see [`write_slice_sqlite`]).
const SQLITE_MAX_PAUSE: Duration = Duration::from_millis(50);

/// SQLite has one writer at a time, and the audit log writes on every
/// request: an import in one transaction would stall every request for its
/// whole length. So the new table is claimed, filled in short transactions
/// (the lock left free between them) and swapped in by a short last one.
/// Until the swap the table is registered as retired, so a crashed import
/// leaves nothing behind for long.
async fn import_sqlite<I, E>(
    pool: &sqlx::SqlitePool,
    new: NewVersion<'_>,
    rows: I,
    max_problems: usize,
) -> Result<ImportOutcome<E>, StoreError>
where
    I: Iterator<Item = Result<Vec<Value>, E>>,
{
    let (version, table) = claim_table_sqlite(pool, &new).await?;
    let outcome = match fill_table_sqlite(pool, &new, &table, rows, max_problems).await {
        Ok(Ok(record_count)) => match analyze_sqlite(pool, &table).await {
            Ok(()) => swap_table_sqlite(pool, &new, &table, version, record_count).await,
            Err(error) => Err(error),
        },
        Ok(Err(problems)) => Ok(ImportOutcome::Rejected(problems)),
        Err(error) => Err(error),
    };
    if !matches!(outcome, Ok(ImportOutcome::Imported { .. })) {
        discard_table_sqlite(pool, &table).await;
    }
    outcome
}

/// Gathers the filled table's statistics before it is served. The bundled
/// SQLite keeps samples of each index (STAT4) and plans with the values
/// bound: without them, a page of a frequent value read in key order
/// (`commune=eq.Troyes&id=gte.N&limit=100`, 30 % of the rows) went through
/// the filter's index and sorted 150,000 rows, 200 ms a request; with them
/// it walks the key's index, 0.4 ms. About 0.5 s for 1 M rows, holding the
/// write lock once. SQLite loads statistics with the schema: connections
/// opened later (and the one that ran this) plan with them at once, the
/// others from their next schema reload or when the pool renews them.
async fn analyze_sqlite(pool: &sqlx::SqlitePool, table: &str) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ANALYZE {}",
        quote_identifier(table)
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Creates the new version's empty table and indexes, registered as retired
/// until the swap (a name no other import can take meanwhile).
async fn claim_table_sqlite(
    pool: &sqlx::SqlitePool,
    new: &NewVersion<'_>,
) -> Result<(i64, String), StoreError> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (_, version, table) = start_version!(
        transaction,
        new,
        Backend::Sqlite,
        "SELECT version, table_name FROM datasets WHERE id = ?"
    );
    for statement in index_sql(Backend::Sqlite, &table, new.schema) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *transaction)
            .await?;
    }
    sqlx::query(RETIRE_SQL)
        .bind(&table)
        .bind(new.id)
        .bind(now_seconds())
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok((version, table))
}

/// Writes every row into `table`; the rows' problems if any is invalid.
async fn fill_table_sqlite<I, E>(
    pool: &sqlx::SqlitePool,
    new: &NewVersion<'_>,
    table: &str,
    rows: I,
    max_problems: usize,
) -> Result<Result<i64, Vec<E>>, StoreError>
where
    I: Iterator<Item = Result<Vec<Value>, E>>,
{
    let width = new.schema.fields.len().max(1);
    // SQLite allows 32,766 bound parameters per statement.
    let batch_rows = (32_000 / width).clamp(1, 1_000);
    let insert_head = format!(
        "INSERT INTO {} ({}) ",
        quote_identifier(table),
        new.schema
            .fields
            .iter()
            .map(|field| quote_identifier(&field.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut problems = Vec::new();
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(batch_rows);
    let mut record_count: i64 = 0;
    for row in rows {
        match row {
            Ok(cells) if problems.is_empty() => {
                batch.push(cells);
                record_count += 1;
                if batch.len() == batch_rows {
                    write_slice_sqlite(pool, table, &insert_head, &mut batch).await?;
                }
            }
            Ok(_) => {}
            Err(problem) => {
                problems.push(problem);
                if problems.len() >= max_problems {
                    break;
                }
            }
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    write_slice_sqlite(pool, table, &insert_head, &mut batch).await?;
    Ok(Ok(record_count))
}

/// One batch in its own transaction, which also tells the cleanup the
/// import is alive; then the write lock is left free about as long as it
/// was held, so that a waiting writer (polling between sleeps) gets it.
async fn write_slice_sqlite(
    pool: &sqlx::SqlitePool,
    table: &str,
    head: &str,
    batch: &mut Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    let locked = Instant::now();
    insert_batch_sqlite(&mut transaction, head, batch).await?;
    sqlx::query("UPDATE retired_tables SET retired_at = $1 WHERE table_name = $2")
        .bind(now_seconds())
        .bind(table)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    let held = locked.elapsed();
    tokio::time::sleep(held.clamp(Duration::from_millis(1), SQLITE_MAX_PAUSE)).await;
    Ok(())
}

/// Points the catalogue at the filled table and retires the one it replaces
/// (re-read here: another import may have landed meanwhile).
async fn swap_table_sqlite<E>(
    pool: &sqlx::SqlitePool,
    new: &NewVersion<'_>,
    table: &str,
    version: i64,
    record_count: i64,
) -> Result<ImportOutcome<E>, StoreError> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    let registered = sqlx::query("DELETE FROM retired_tables WHERE table_name = $1")
        .bind(table)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
    if registered == 0 {
        return Err(StoreError::ImportCleanedUp(table.to_owned()));
    }
    let previous: Option<(i64, String)> =
        sqlx::query_as("SELECT version, table_name FROM datasets WHERE id = $1")
            .bind(new.id)
            .fetch_optional(&mut *transaction)
            .await?;
    // Versions only go up, whichever of two concurrent imports lands last.
    let version = previous
        .as_ref()
        .map_or(version, |(current, _)| version.max(current + 1));
    let table = table.to_owned();
    record_version!(
        transaction,
        new,
        previous,
        table,
        version,
        record_count,
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    )
}

/// Drops the table of an import that did not land; if that fails too, the
/// cleanup drops it once its grace has passed.
async fn discard_table_sqlite(pool: &sqlx::SqlitePool, table: &str) {
    let discard = async {
        let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            quote_identifier(table)
        )))
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM retired_tables WHERE table_name = $1")
            .bind(table)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok::<(), StoreError>(())
    };
    if let Err(error) = discard.await {
        tracing::warn!(%table, %error, "table of a failed import left to the cleanup");
    }
}

async fn insert_batch_sqlite(
    transaction: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    head: &str,
    batch: &mut Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut builder = QueryBuilder::<sqlx::Sqlite>::new(head);
    builder.push_values(batch.drain(..), |mut separated, row| {
        for value in row {
            match value {
                Value::Null => separated.push("NULL"),
                Value::Bool(flag) => separated.push_bind(flag),
                Value::Int(number) => separated.push_bind(number),
                Value::Float(number) => separated.push_bind(number),
                Value::Text(text) => separated.push_bind(text),
            };
        }
    });
    builder.build().execute(&mut **transaction).await?;
    Ok(())
}

async fn import_postgres<I, E>(
    pool: &sqlx::PgPool,
    new: NewVersion<'_>,
    rows: I,
    max_problems: usize,
) -> Result<ImportOutcome<E>, StoreError>
where
    I: Iterator<Item = Result<Vec<Value>, E>>,
{
    let mut transaction = pool.begin().await?;
    // One import of a dataset at a time, across every gateway instance.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(new.id)
        .execute(&mut *transaction)
        .await?;
    let (previous, version, table) = start_version!(
        transaction,
        new,
        Backend::Postgres,
        "SELECT version, table_name FROM datasets WHERE id = $1"
    );
    let columns = new
        .schema
        .fields
        .iter()
        .map(|field| quote_identifier(&field.name))
        .collect::<Vec<_>>()
        .join(", ");
    // Binary: the server reads each value as it is stored, without parsing
    // text (measured with psql on 1 M rows: 1.4 s against 1.8-2.3 s as CSV).
    let copy_statement = format!(
        "COPY {} ({columns}) FROM STDIN WITH (FORMAT binary)",
        quote_identifier(&table)
    );
    let types: Vec<FieldType> = new
        .schema
        .fields
        .iter()
        .map(|field| field.field_type)
        .collect();
    let mut copy = transaction.copy_in_raw(&copy_statement).await?;
    let mut problems = Vec::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(1 << 20);
    buffer.extend_from_slice(BINARY_COPY_HEADER);
    let mut record_count: i64 = 0;
    for row in rows {
        match row {
            Ok(cells) if problems.is_empty() => {
                if let Err(error) = write_binary_row(&mut buffer, &types, new.schema, &cells) {
                    copy.abort("a value does not fit its column").await.ok();
                    transaction.rollback().await?;
                    return Err(error);
                }
                record_count += 1;
                if buffer.len() >= 1 << 20 {
                    copy.send(std::mem::take(&mut buffer)).await?;
                    buffer.reserve(1 << 20);
                }
            }
            Ok(_) => {}
            Err(problem) => {
                problems.push(problem);
                if problems.len() >= max_problems {
                    break;
                }
            }
        }
    }
    if !problems.is_empty() {
        copy.abort("invalid rows").await.ok();
        transaction.rollback().await?;
        return Ok(ImportOutcome::Rejected(problems));
    }
    buffer.extend_from_slice(BINARY_COPY_TRAILER);
    copy.send(buffer).await?;
    copy.finish().await?;
    for statement in index_sql(Backend::Postgres, &table, new.schema) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *transaction)
            .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ANALYZE {}",
        quote_identifier(&table)
    )))
    .execute(&mut *transaction)
    .await?;
    record_version!(
        transaction,
        new,
        previous,
        table,
        version,
        record_count,
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
    )
}

// After the import macros it uses (macros are in scope below their definition).
impl Store {
    /// Creates the dataset `new.id` with an empty first version; false,
    /// writing nothing, when the id is taken. Two creations of one id at
    /// once: the store's write lock (SQLite) or the import lock
    /// (PostgreSQL) orders them, the second sees the first's row, and the
    /// catalogue's unique id stops any that slips through.
    pub async fn create_empty_dataset(&self, new: NewVersion<'_>) -> Result<bool, StoreError> {
        macro_rules! create {
            ($transaction:ident, $backend:expr) => {{
                let taken: Option<String> =
                    sqlx::query_scalar("SELECT id FROM datasets WHERE id = $1")
                        .bind(new.id)
                        .fetch_optional(&mut *$transaction)
                        .await?;
                if taken.is_some() {
                    return Ok(false);
                }
                let (_, version, table) = start_version!(
                    $transaction,
                    new,
                    $backend,
                    "SELECT version, table_name FROM datasets WHERE id = $1"
                );
                for statement in index_sql($backend, &table, new.schema) {
                    sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut *$transaction)
                        .await?;
                }
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let inserted = sqlx::query(
                    "INSERT INTO datasets (id, definition, definition_hash, source_hash, schema, \
                     table_name, version, record_count, last_updated, origin) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
                )
                .bind(new.id)
                .bind(new.definition)
                .bind(new.definition_hash)
                .bind(new.source_hash)
                .bind(serde_json::to_string(new.schema).unwrap_or_default())
                .bind(&table)
                .bind(version)
                .bind(now)
                .bind(new.origin)
                .execute(&mut *$transaction)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        return Ok(false);
                    }
                    other => other?,
                };
                $transaction
                    .announce(&Change::Catalog {
                        dataset: new.id.to_owned(),
                    })
                    .await?;
                $transaction.commit().await?;
                Ok(true)
            }};
        }
        match self {
            Store::Sqlite(pool) => {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                create!(transaction, Backend::Sqlite)
            }
            Store::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(new.id)
                    .execute(&mut *transaction)
                    .await?;
                create!(transaction, Backend::Postgres)
            }
        }
    }
}

/// The signature, flags and header extension of PostgreSQL's binary COPY.
const BINARY_COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends a binary COPY.
const BINARY_COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// One row in PostgreSQL's binary COPY format, each value in its column's
/// type (see [`column_type`]): `BIGINT` and `DOUBLE PRECISION` as 8 bytes
/// big-endian, `BOOLEAN` as one byte, text as its UTF-8 bytes, null as
/// length -1. An integer in a number column is widened; any other value
/// that does not fit its column is an error (the CSV reader never makes
/// one).
fn write_binary_row(
    buffer: &mut Vec<u8>,
    types: &[FieldType],
    schema: &Schema,
    cells: &[Value],
) -> Result<(), StoreError> {
    let unfit = |position: usize, value: &Value| StoreError::Unfit {
        column: schema
            .fields
            .get(position)
            .map_or_else(|| format!("#{}", position + 1), |field| field.name.clone()),
        value: format!("{value:?}"),
    };
    let count = i16::try_from(cells.len()).map_err(|_| unfit(cells.len(), &Value::Null))?;
    if cells.len() != types.len() {
        return Err(unfit(types.len().min(cells.len()), &Value::Null));
    }
    buffer.extend_from_slice(&count.to_be_bytes());
    for (position, (value, field_type)) in cells.iter().zip(types).enumerate() {
        match (field_type, value) {
            (_, Value::Null) => buffer.extend_from_slice(&(-1i32).to_be_bytes()),
            (FieldType::Integer, Value::Int(number)) => {
                buffer.extend_from_slice(&8i32.to_be_bytes());
                buffer.extend_from_slice(&number.to_be_bytes());
            }
            (FieldType::Number, Value::Float(number)) => {
                buffer.extend_from_slice(&8i32.to_be_bytes());
                buffer.extend_from_slice(&number.to_bits().to_be_bytes());
            }
            (FieldType::Number, Value::Int(number)) => {
                buffer.extend_from_slice(&8i32.to_be_bytes());
                buffer.extend_from_slice(&(*number as f64).to_bits().to_be_bytes());
            }
            (FieldType::Boolean, Value::Bool(flag)) => {
                buffer.extend_from_slice(&1i32.to_be_bytes());
                buffer.push(u8::from(*flag));
            }
            (
                FieldType::String
                | FieldType::Date
                | FieldType::Datetime
                | FieldType::Geopoint
                | FieldType::Geojson,
                Value::Text(text),
            ) => {
                let length =
                    i32::try_from(text.len()).map_err(|_| unfit(position, &Value::Null))?;
                buffer.extend_from_slice(&length.to_be_bytes());
                buffer.extend_from_slice(text.as_bytes());
            }
            (_, value) => return Err(unfit(position, value)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Field;

    /// Binary COPY rows: a field count, then each value's length and
    /// bytes in its column's type; null is length -1, an empty string
    /// length 0; an integer in a number column is widened.
    #[test]
    fn writes_binary_copy_rows() {
        let schema = Schema {
            fields: vec![
                Field::new("n", FieldType::Integer),
                Field::new("x", FieldType::Number),
                Field::new("s", FieldType::String),
                Field::new("e", FieldType::String),
                Field::new("b", FieldType::Boolean),
                Field::new("w", FieldType::Number),
            ],
            primary_key: None,
        };
        let types: Vec<FieldType> = schema.fields.iter().map(|field| field.field_type).collect();
        let mut buffer = Vec::new();
        write_binary_row(
            &mut buffer,
            &types,
            &schema,
            &[
                Value::Int(-2),
                Value::Null,
                Value::Text("é\"".into()),
                Value::Text(String::new()),
                Value::Bool(true),
                Value::Int(3),
            ],
        )
        .unwrap();
        let mut expected = vec![0, 6];
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&(-2i64).to_be_bytes());
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 3, 0xc3, 0xa9, b'"']);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&3.0f64.to_bits().to_be_bytes());
        assert_eq!(buffer, expected);
    }

    /// A value that does not fit its column is an error naming the column.
    #[test]
    fn refuses_unfit_values() {
        let schema = Schema {
            fields: vec![Field::new("flag", FieldType::Boolean)],
            primary_key: None,
        };
        let error = write_binary_row(
            &mut Vec::new(),
            &[FieldType::Boolean],
            &schema,
            &[Value::Text("oui".into())],
        )
        .unwrap_err();
        assert!(error.to_string().contains("flag"), "{error}");
    }

    /// Table names are derived from the slug and version only.
    #[test]
    fn names_tables_from_slug_and_version() {
        assert_eq!(table_name_for("velos-2024", 3), "ds_velos_2024_v3");
    }

    /// On SQLite, a page of a frequent value of a filterable column, in the
    /// default order and from a given key, is one range of that column's
    /// index: no sort of every row of the value (see [`index_sql`]).
    #[tokio::test]
    async fn sqlite_reads_a_page_of_a_frequent_value_from_its_index() {
        use crate::query::plan::{Condition, Operator, OrderTerm};
        let (store, _guard) = crate::store::test_support::sqlite().await;
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        let mut town = Field::new("commune", FieldType::String);
        town.filterable = true;
        let schema = Schema {
            fields: vec![Field::new("id", FieldType::Integer), town],
            primary_key: Some("id".to_owned()),
        };
        let table = "ds_towns_v1";
        let mut statements = vec![create_table_sql(Backend::Sqlite, table, &schema)];
        statements.extend(index_sql(Backend::Sqlite, table, &schema));
        // 20,000 rows over 80 towns, 30 % of them in the first.
        statements.push(format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO {table} SELECT i, CASE WHEN i % 10 < 3 THEN 'Troyes' ELSE 'c' || (i % 79) END FROM n"
        ));
        statements.push(format!("ANALYZE {table}"));
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(pool)
                .await
                .unwrap();
        }
        let plan = ReadPlan {
            filter: Some(Filter::And(vec![
                Filter::Condition(Condition {
                    column: 1,
                    operator: Operator::Eq(Value::Text("Troyes".into())),
                }),
                Filter::Condition(Condition {
                    column: 0,
                    operator: Operator::Gte(Value::Int(5)),
                }),
            ])),
            order: vec![OrderTerm {
                column: 0,
                descending: false,
                nulls: None,
            }],
            limit: Some(100),
            ..ReadPlan::default()
        };
        let query = TableQuery {
            table,
            schema: &schema,
            plan: &plan,
            visible: &[true, true],
            row_filter: None,
        };
        let sql = build_select::<sqlx::Sqlite>(&query, Some(100)).into_string();
        let steps: Vec<String> =
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("Troyes")
                .bind(5_i64)
                .bind(100_i64)
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                .collect();
        let steps = steps.join("\n");
        assert!(
            steps.contains("ds_towns_v1_i1") && !steps.contains("TEMP B-TREE"),
            "{sql}\n{steps}"
        );
    }
}

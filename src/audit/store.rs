//! The audit log's SQL, for SQLite and PostgreSQL alike. Values are always
//! bound; the only SQL text built at run time is fixed column lists.
//!
//! Every write that extends the chain runs in a "chain transaction": on
//! PostgreSQL it first takes a transaction-level advisory lock, so that
//! gateways sharing one database append to one chain, one batch at a time;
//! on SQLite it is `BEGIN IMMEDIATE` with `synchronous = FULL`, so a commit
//! is on disk (the store's pool defaults to `NORMAL`, which may lose the
//! last commits on power loss in WAL mode).

use std::sync::{Arc, LazyLock};

use sqlx::{AssertSqlSafe, Connection, QueryBuilder};

use super::columns::{COLUMNS, SqlType, SqlValue, column_list};
use super::event::{Event, GENESIS_HASH, StoredEvent};
use crate::store::Store;

/// The advisory lock key that serialises appends to the chain ("AUDIT" in ASCII).
pub const CHAIN_LOCK: i64 = 0x0041_5544_4954;

/// `BEGIN` and the chain's lock in one round trip: a simple query of two
/// statements (the key is the constant above, not a value from outside).
pub static BEGIN_CHAIN: LazyLock<Arc<str>> =
    LazyLock::new(|| format!("BEGIN; SELECT pg_advisory_xact_lock({CHAIN_LOCK})").into());

/// Runs `$body` with `$pool` bound to the backend's pool and `Db` to its database type.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            crate::store::Store::Sqlite($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                $body
            }
            crate::store::Store::Postgres($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// Runs `$body` inside a chain transaction `$tx` (see the module
/// documentation), commits, and yields the body's value.
macro_rules! in_chain_transaction {
    ($store:expr, $tx:ident => $body:expr) => {
        match $store {
            crate::store::Store::Sqlite(pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                let mut connection = pool.acquire().await?;
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut *connection)
                    .await?;
                let mut $tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            crate::store::Store::Postgres(pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                let mut $tx = pool
                    .begin_with(sqlx::AssertSqlSafe(
                        crate::audit::store::BEGIN_CHAIN.clone(),
                    ))
                    .await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
        }
    };
}

/// The last link of the chain: its sequence and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// One row of `audit_events` as read. The chain's columns are always read;
/// a content column holding what the gateway never writes (an unknown
/// action, roles that are not a JSON array) leaves its field at its default
/// and says why in `unreadable`: such a row cannot match its hash.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub stored: StoredEvent,
    pub unreadable: Option<String>,
}

impl<'r, R> sqlx::FromRow<'r, R> for EventRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<f64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    /// Reads the columns of [`column_list`], in its order.
    fn from_row(row: &'r R) -> Result<EventRow, sqlx::Error> {
        let mut stored = StoredEvent::default();
        let mut unreadable = None;
        for (index, column) in COLUMNS.iter().enumerate() {
            let value = match column.sql_type {
                SqlType::Text => SqlValue::Text(row.try_get(index)?),
                SqlType::BigInt => SqlValue::BigInt(row.try_get(index)?),
                SqlType::Double => SqlValue::Double(row.try_get(index)?),
            };
            if let Err(reason) = (column.get_mut)(&mut stored).read(value) {
                unreadable.get_or_insert_with(|| format!("column `{}`: {reason}", column.name));
            }
        }
        Ok(EventRow { stored, unreadable })
    }
}

impl EventRow {
    /// The hash the row's content would have at `seq` after its `prev_hash`
    /// (none when its content cannot be read).
    pub fn hash_at(&self, seq: i64) -> Option<String> {
        if self.unreadable.is_some() {
            None
        } else if seq == self.stored.seq {
            Some(self.stored.chain_hash())
        } else {
            let moved = StoredEvent {
                seq,
                ..self.stored.clone()
            };
            Some(moved.chain_hash())
        }
    }

    /// The event, unless a column cannot be read (then `verify` names it).
    pub fn into_stored(self) -> Result<StoredEvent, sqlx::Error> {
        match self.unreadable {
            None => Ok(self.stored),
            Some(reason) => Err(sqlx::Error::Decode(
                format!(
                    "audit event {} was not written by the gateway ({reason}): run `passerelle audit verify`",
                    self.stored.seq
                )
                .into(),
            )),
        }
    }
}

/// A signed statement about the chain (`kind` = `checkpoint` or `anchor`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckpointRow {
    pub id: i64,
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub time_us: i64,
    pub key_id: String,
    pub signature: String,
}

impl CheckpointRow {
    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        statement_message(&self.kind, self.seq, &self.hash, self.time_us)
    }
}

/// What a checkpoint or anchor signs.
pub fn statement_message(kind: &str, seq: i64, hash: &str, time_us: i64) -> Vec<u8> {
    format!("passerelle-audit-{kind}\n{seq}\n{hash}\n{time_us}").into_bytes()
}

/// The head inside a transaction: the last event, else the latest anchor
/// (after a purge that removed every event), else the genesis.
macro_rules! read_head {
    ($tx:expr) => {{
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *$tx)
                .await?;
        match last {
            Some((seq, hash)) => crate::audit::store::Head { seq, hash },
            None => {
                let anchor: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_checkpoints WHERE kind = 'anchor' ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut *$tx)
                .await?;
                match anchor {
                    Some((seq, hash)) => crate::audit::store::Head { seq: seq - 1, hash },
                    None => crate::audit::store::Head {
                        seq: 0,
                        hash: crate::audit::event::GENESIS_HASH.to_owned(),
                    },
                }
            }
        }
    }};
}

/// `INSERT` of one event, `$1…$n` in [`COLUMNS`] order.
#[cfg(test)]
static INSERT_ONE: LazyLock<Arc<str>> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO audit_events ({}) VALUES ({})",
        column_list(),
        placeholders.join(", ")
    )
    .into()
});

/// `INSERT`s of 2^k events (k up to [`INSERT_MANY_LARGEST`]), `?` in
/// [`COLUMNS`] order, event after event (SQLite). Each statement crosses to
/// the connection's thread once: one a row cost 100 us an event in a batch
/// of 15 durable events.
static INSERT_MANY: LazyLock<Vec<Arc<str>>> = LazyLock::new(|| {
    let row = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
    (0..=INSERT_MANY_LARGEST)
        .map(|size| {
            format!(
                "INSERT INTO audit_events ({}) VALUES {}",
                column_list(),
                vec![row.as_str(); 1 << size].join(", ")
            )
            .into()
        })
        .collect()
});

/// 512 events a statement: 512 x 31 parameters, under SQLite's 32,766.
const INSERT_MANY_LARGEST: u32 = 9;

/// One statement for the whole batch on PostgreSQL: one array per column.
static INSERT_UNNEST: LazyLock<Arc<str>> = LazyLock::new(|| {
    let arrays: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(index, column)| format!("${}::{}", index + 1, column.sql_type.postgres_array()))
        .collect();
    format!(
        "INSERT INTO audit_events ({}) SELECT * FROM UNNEST({})",
        column_list(),
        arrays.join(", ")
    )
    .into()
});

/// Binds every column of `stored`, in [`COLUMNS`] order.
fn bind_event<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    stored: &StoredEvent,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'a> Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<f64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    for column in COLUMNS.iter() {
        query = match (column.get)(stored).sql() {
            SqlValue::Text(value) => query.bind(value),
            SqlValue::BigInt(value) => query.bind(value),
            SqlValue::Double(value) => query.bind(value),
        };
    }
    query
}

/// The batch insert, written only if the chain's head is still `$n+1`
/// (the last argument): the head this writer left is checked by the
/// statement itself rather than read in a round trip of its own.
static INSERT_UNNEST_AFTER: LazyLock<Arc<str>> = LazyLock::new(|| {
    format!(
        "{} WHERE (SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1) = ${}",
        INSERT_UNNEST.as_ref(),
        COLUMNS.len() + 1
    )
    .into()
});

/// How each backend writes a batch of chained events fastest.
trait InsertEvents: sqlx::Database {
    /// Whether [`InsertEvents::insert_events_after`] checks the head in the
    /// statement (PostgreSQL: it saves a round trip per batch); SQLite
    /// reads its head in process.
    const CHECKS_HEAD: bool;

    fn insert_events<'a>(
        connection: &'a mut Self::Connection,
        rows: &'a [StoredEvent],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Inserts `rows` if the head's sequence is still `head_seq`; false
    /// (nothing written) if another writer moved it, or the events went.
    fn insert_events_after<'a>(
        connection: &'a mut Self::Connection,
        rows: &'a [StoredEvent],
        head_seq: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send + 'a;
}

impl InsertEvents for sqlx::Sqlite {
    const CHECKS_HEAD: bool = false;

    async fn insert_events_after<'a>(
        _connection: &'a mut sqlx::SqliteConnection,
        _rows: &'a [StoredEvent],
        _head_seq: i64,
    ) -> Result<bool, sqlx::Error> {
        Ok(false)
    }

    /// SQLite: a few multi-row statements, each of a power of two rows (the
    /// largest that fits what is left, up to 512), so that every statement
    /// is one of ten prepared and cached ones.
    async fn insert_events<'a>(
        connection: &'a mut sqlx::SqliteConnection,
        rows: &'a [StoredEvent],
    ) -> Result<(), sqlx::Error> {
        let mut rest = rows;
        while !rest.is_empty() {
            let size = rest.len().ilog2().min(INSERT_MANY_LARGEST);
            let (chunk, tail) = rest.split_at(1 << size);
            let mut query = sqlx::query(AssertSqlSafe(INSERT_MANY[size as usize].clone()));
            for row in chunk {
                query = bind_event(query, row);
            }
            query.execute(&mut *connection).await?;
            rest = tail;
        }
        Ok(())
    }
}

/// Binds one array per column of `rows`, in [`COLUMNS`] order.
fn bind_arrays<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rows: &[StoredEvent],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for column in COLUMNS.iter() {
        let values = rows.iter().map(|row| (column.get)(row).sql());
        query = match column.sql_type {
            SqlType::Text => query.bind(values.map(SqlValue::into_text).collect::<Vec<_>>()),
            SqlType::BigInt => query.bind(values.map(SqlValue::into_big_int).collect::<Vec<_>>()),
            SqlType::Double => query.bind(values.map(SqlValue::into_double).collect::<Vec<_>>()),
        };
    }
    query
}

impl InsertEvents for sqlx::Postgres {
    const CHECKS_HEAD: bool = true;

    async fn insert_events_after<'a>(
        connection: &'a mut sqlx::PgConnection,
        rows: &'a [StoredEvent],
        head_seq: i64,
    ) -> Result<bool, sqlx::Error> {
        let query = bind_arrays(
            sqlx::query(AssertSqlSafe(INSERT_UNNEST_AFTER.clone())),
            rows,
        );
        let done = query.bind(head_seq).execute(&mut *connection).await?;
        Ok(done.rows_affected() == rows.len() as u64)
    }

    /// PostgreSQL: one `INSERT … SELECT FROM UNNEST(arrays)` for the batch.
    async fn insert_events<'a>(
        connection: &'a mut sqlx::PgConnection,
        rows: &'a [StoredEvent],
    ) -> Result<(), sqlx::Error> {
        bind_arrays(sqlx::query(AssertSqlSafe(INSERT_UNNEST.clone())), rows)
            .execute(&mut *connection)
            .await?;
        Ok(())
    }
}

/// Whole partitions a purge can drop: monthly ones on PostgreSQL (see
/// [`super::partitions`]), none on SQLite.
trait DropPartitions: sqlx::Database {
    fn drop_purged<'a>(
        connection: &'a mut Self::Connection,
        keep_from: i64,
        before_us: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;
}

impl DropPartitions for sqlx::Sqlite {
    async fn drop_purged(
        _connection: &mut sqlx::SqliteConnection,
        _keep_from: i64,
        _before_us: i64,
    ) -> Result<u64, sqlx::Error> {
        Ok(0)
    }
}

impl DropPartitions for sqlx::Postgres {
    async fn drop_purged(
        connection: &mut sqlx::PgConnection,
        keep_from: i64,
        before_us: i64,
    ) -> Result<u64, sqlx::Error> {
        super::partitions::drop_purged(connection, keep_from, before_us).await
    }
}

/// Appends `events` to the chain in one transaction; returns their sequence
/// numbers and the new head. `known` is the head as this writer left it
/// after its last batch: on PostgreSQL the batch is chained to it and
/// written only if it is still the head (one round trip fewer); otherwise,
/// or when another gateway appended since, the head is read under the lock.
pub async fn append(
    store: &Store,
    events: &[Event],
    known: Option<&Head>,
) -> Result<(Vec<i64>, Head), sqlx::Error> {
    in_chain_transaction!(store, tx => {
        let mut written = None;
        if let Some(known) = known.filter(|_| <Db as InsertEvents>::CHECKS_HEAD) {
            let rows = chained(known, events);
            if <Db as InsertEvents>::insert_events_after(&mut *tx, &rows, known.seq).await? {
                written = Some(rows);
            }
        }
        let (rows, head) = match written {
            Some(rows) => (rows, known.cloned()),
            None => {
                let head = read_head!(tx);
                let rows = chained(&head, events);
                <Db as InsertEvents>::insert_events(&mut *tx, &rows).await?;
                (rows, Some(head))
            }
        };
        let head = rows
            .last()
            .map(|row| Head { seq: row.seq, hash: row.hash.clone() })
            .or(head)
            .unwrap_or(Head { seq: 0, hash: GENESIS_HASH.to_owned() });
        (rows.iter().map(|row| row.seq).collect::<Vec<i64>>(), head)
    })
}

/// `events` chained after `head`.
fn chained(head: &Head, events: &[Event]) -> Vec<StoredEvent> {
    let mut prev_hash = head.hash.clone();
    let mut rows = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let mut row = StoredEvent {
            seq: head.seq + 1 + index as i64,
            event: event.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.chain_hash();
        prev_hash = row.hash.clone();
        rows.push(row);
    }
    rows
}

/// Signs and stores a checkpoint of the current head, unless the head is
/// already checkpointed or the chain is empty. Returns the head checkpointed.
pub async fn checkpoint(
    store: &Store,
    signer: &dyn super::CheckpointSigner,
) -> Result<Option<Head>, sqlx::Error> {
    in_chain_transaction!(store, tx => {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let head = match last {
            Some((seq, hash)) => Head { seq, hash },
            None => Head { seq: 0, hash: GENESIS_HASH.to_owned() },
        };
        let existing: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM audit_checkpoints WHERE kind = 'checkpoint' AND seq = $1 AND hash = $2 LIMIT 1")
                .bind(head.seq)
                .bind(head.hash.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if head.seq == 0 || existing.is_some() {
            None
        } else {
            insert_statement(&mut tx, signer, "checkpoint", head.seq, &head.hash).await?;
            Some(head)
        }
    })
}

/// Inserts a signed checkpoint or anchor (works on both backends' transactions).
async fn insert_statement<'c, DB>(
    executor: &mut sqlx::Transaction<'c, DB>,
    signer: &dyn super::CheckpointSigner,
    kind: &str,
    seq: i64,
    hash: &str,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let time_us = chrono::Utc::now().timestamp_micros();
    let signature = hex::encode(signer.sign(&statement_message(kind, seq, hash, time_us)));
    let mut builder = QueryBuilder::<DB>::new(
        "INSERT INTO audit_checkpoints (kind, seq, hash, time_us, key_id, signature) ",
    );
    builder.push_values([()], |mut row, ()| {
        row.push_bind(kind.to_owned())
            .push_bind(seq)
            .push_bind(hash.to_owned())
            .push_bind(time_us)
            .push_bind(signer.key_id())
            .push_bind(signature.clone());
    });
    builder.build().execute(&mut **executor).await?;
    Ok(())
}

/// What a purge removed and the anchor it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub checkpoints: u64,
    pub anchor: Option<Head>,
}

/// Deletes events before sequence `keep_from` (and checkpoints and anchors
/// below it) after writing a signed anchor at `keep_from` whose hash is the
/// last deleted event's hash. `expected_hash` is that hash as verified.
/// On PostgreSQL, monthly partitions that end by `before_us` and hold only
/// purged events are dropped whole; the rest is deleted row by row.
pub async fn purge_before(
    store: &Store,
    signer: &dyn super::CheckpointSigner,
    keep_from: i64,
    before_us: i64,
    expected_hash: &str,
) -> Result<Purged, sqlx::Error> {
    in_chain_transaction!(store, tx => {
        let last_deleted: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(keep_from - 1)
            .fetch_optional(&mut *tx)
            .await?;
        match last_deleted {
            Some((hash,)) if hash == expected_hash => {
                insert_statement(&mut tx, signer, "anchor", keep_from, &hash).await?;
                let dropped = <Db as DropPartitions>::drop_purged(&mut *tx, keep_from, before_us).await?;
                let events = dropped + sqlx::query("DELETE FROM audit_events WHERE seq < $1")
                    .bind(keep_from)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let checkpoints = sqlx::query("DELETE FROM audit_checkpoints WHERE seq < $1")
                    .bind(keep_from)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                Purged { events, checkpoints, anchor: Some(Head { seq: keep_from, hash }) }
            }
            _ => Purged { events: 0, checkpoints: 0, anchor: None },
        }
    })
}

/// Events with `seq` in `[from, to]`, ascending, at most `limit`.
pub async fn events_ascending(
    store: &Store,
    from: i64,
    to: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    with_pool!(store, pool => {
        let mut builder = QueryBuilder::<Db>::new(format!("SELECT {} FROM audit_events WHERE seq >= ", column_list()));
        builder.push_bind(from);
        if let Some(to) = to {
            builder.push(" AND seq <= ").push_bind(to);
        }
        builder.push(" ORDER BY seq LIMIT ").push_bind(limit);
        builder.build_query_as::<EventRow>().fetch_all(pool).await
    })
}

/// The hash of event `seq`, if it exists.
pub async fn hash_of(store: &Store, seq: i64) -> Result<Option<String>, sqlx::Error> {
    with_pool!(store, pool => {
        sqlx::query_scalar::<Db, String>("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_optional(pool)
            .await
    })
}

/// Every checkpoint and anchor, by sequence.
pub async fn statements(store: &Store) -> Result<Vec<CheckpointRow>, sqlx::Error> {
    with_pool!(store, pool => {
        sqlx::query_as::<Db, CheckpointRow>(
            "SELECT id, kind, seq, hash, time_us, key_id, signature FROM audit_checkpoints ORDER BY seq, id",
        )
        .fetch_all(pool)
        .await
    })
}

/// The newest signed checkpoint, if any.
pub async fn last_checkpoint(store: &Store) -> Result<Option<CheckpointRow>, sqlx::Error> {
    with_pool!(store, pool => {
        sqlx::query_as::<Db, CheckpointRow>(
            "SELECT id, kind, seq, hash, time_us, key_id, signature FROM audit_checkpoints \
             WHERE kind = 'checkpoint' ORDER BY seq DESC, id DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
    })
}

/// The first sequence whose event is at or after `time_us`, if any.
pub async fn first_seq_since(store: &Store, time_us: i64) -> Result<Option<i64>, sqlx::Error> {
    with_pool!(store, pool => {
        sqlx::query_scalar::<Db, Option<i64>>("SELECT MIN(seq) FROM audit_events WHERE time_us >= $1")
            .bind(time_us)
            .fetch_one(pool)
            .await
    })
}

/// The current head (outside any lock: for reports only).
pub async fn head(store: &Store) -> Result<Option<Head>, sqlx::Error> {
    with_pool!(store, pool => {
        let row = sqlx::query_as::<Db, (i64, String)>("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|(seq, hash)| Head { seq, hash }))
    })
}

/// Writes one event row as given, bypassing the chain (tests forge rows with it).
#[cfg(test)]
pub async fn insert_raw(store: &Store, row: &StoredEvent) -> Result<(), sqlx::Error> {
    with_pool!(store, pool => {
        bind_event(sqlx::query::<Db>(AssertSqlSafe(INSERT_ONE.clone())), row)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

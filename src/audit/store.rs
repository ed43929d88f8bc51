//! The audit log's SQL, for SQLite and PostgreSQL alike. Values are always
//! bound; the only SQL text built at run time is fixed column lists.
//!
//! Every write that extends the chain runs in a "chain transaction": on
//! PostgreSQL it first takes a transaction-level advisory lock, so that
//! gateways sharing one database append to one chain, one batch at a time;
//! on SQLite it is `BEGIN IMMEDIATE` with `synchronous = FULL`, so a commit
//! is on disk (the store's pool defaults to `NORMAL`, which may lose the
//! last commits on power loss in WAL mode).

use sqlx::{Connection, QueryBuilder};

use super::event::{EventKind, EventRecord, GENESIS_HASH, StoredEvent, format_time};
use crate::store::Store;

/// The advisory lock key that serialises appends to the chain ("AUDIT" in ASCII).
pub const CHAIN_LOCK: i64 = 0x0041_5544_4954;

/// Columns of `audit_events`, in insert order.
pub const EVENT_COLUMNS: &str = "seq, kind, refers_to, time_us, request_id, subject, org, roles, auth_method, \
     client_id, token_id, ip, user_agent, method, path, query, dataset, action, decision, rule, view_name, \
     status, rows_sent, bytes_sent, duration_ms, complete, purpose, instance, prev_hash, hash";

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
                let mut $tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(crate::audit::store::CHAIN_LOCK)
                    .execute(&mut *$tx)
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

/// One row of `audit_events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub kind: String,
    pub refers_to: Option<i64>,
    pub time_us: i64,
    pub request_id: String,
    pub subject: Option<String>,
    pub org: Option<String>,
    pub roles: String,
    pub auth_method: String,
    pub client_id: Option<String>,
    pub token_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub dataset: Option<String>,
    pub action: String,
    pub decision: String,
    pub rule: Option<String>,
    pub view_name: Option<String>,
    pub status: i64,
    pub rows_sent: Option<i64>,
    pub bytes_sent: Option<i64>,
    pub duration_ms: f64,
    pub complete: Option<i64>,
    pub purpose: Option<String>,
    pub instance: String,
    pub prev_hash: String,
    pub hash: String,
}

impl EventRow {
    /// The content the hash covers. Roles that are not a JSON array keep
    /// their raw text as a single role so the hash check fails visibly.
    pub fn record(&self) -> EventRecord {
        EventRecord {
            kind: EventKind::parse(&self.kind),
            refers_to: self.refers_to,
            time_us: self.time_us,
            request_id: self.request_id.clone(),
            subject: self.subject.clone(),
            org: self.org.clone(),
            roles: serde_json::from_str(&self.roles).unwrap_or_else(|_| vec![self.roles.clone()]),
            auth_method: self.auth_method.clone(),
            client_id: self.client_id.clone(),
            token_id: self.token_id.clone(),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            dataset: self.dataset.clone(),
            action: self.action.clone(),
            decision: self.decision.clone(),
            rule: self.rule.clone(),
            view: self.view_name.clone(),
            status: self.status,
            rows: self.rows_sent,
            bytes: self.bytes_sent,
            duration_ms: self.duration_ms,
            // Only 0 and 1 are written; anything else must not verify as either.
            complete: self.complete.map(|value| value != 0),
            purpose: self.purpose.clone(),
            instance: self.instance.clone(),
        }
    }

    pub fn into_stored(self) -> StoredEvent {
        let record = self.record();
        StoredEvent {
            seq: self.seq,
            kind: record.kind,
            refers_to: self.refers_to,
            time: format_time(self.time_us),
            request_id: self.request_id,
            subject: self.subject,
            org: self.org,
            roles: record.roles,
            auth_method: self.auth_method,
            client_id: self.client_id,
            token_id: self.token_id,
            ip: self.ip,
            user_agent: self.user_agent,
            method: self.method,
            path: self.path,
            query: self.query,
            dataset: self.dataset,
            action: self.action,
            decision: self.decision,
            rule: self.rule,
            view: self.view_name,
            status: self.status,
            rows: self.rows_sent,
            bytes: self.bytes_sent,
            duration_ms: self.duration_ms,
            complete: record.complete,
            purpose: self.purpose,
            instance: self.instance,
            prev_hash: self.prev_hash,
            hash: self.hash,
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

/// An event with its place in the chain.
pub struct ChainedRow<'a> {
    pub seq: i64,
    pub record: &'a EventRecord,
    pub prev_hash: String,
    pub hash: String,
}

const INSERT_ONE: &str = "INSERT INTO audit_events (seq, kind, refers_to, time_us, request_id, subject, org, roles, \
     auth_method, client_id, token_id, ip, user_agent, method, path, query, dataset, action, decision, rule, \
     view_name, status, rows_sent, bytes_sent, duration_ms, complete, purpose, instance, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)";

/// One statement for the whole batch on PostgreSQL: one array per column.
const INSERT_UNNEST: &str = "INSERT INTO audit_events (seq, kind, refers_to, time_us, request_id, subject, org, roles, \
     auth_method, client_id, token_id, ip, user_agent, method, path, query, dataset, action, decision, rule, \
     view_name, status, rows_sent, bytes_sent, duration_ms, complete, purpose, instance, prev_hash, hash) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::bigint[], $23::bigint[], $24::bigint[], $25::float8[], $26::bigint[], $27::text[], $28::text[], $29::text[], $30::text[])";

/// Binds the 30 columns of one event, in `EVENT_COLUMNS` order.
macro_rules! bind_event {
    ($query:expr, $seq:expr, $record:expr, $prev_hash:expr, $hash:expr) => {{
        let record: &EventRecord = $record;
        $query
            .bind($seq)
            .bind(record.kind.as_str())
            .bind(record.refers_to)
            .bind(record.time_us)
            .bind(record.request_id.clone())
            .bind(record.subject.clone())
            .bind(record.org.clone())
            .bind(roles_json(record))
            .bind(record.auth_method.clone())
            .bind(record.client_id.clone())
            .bind(record.token_id.clone())
            .bind(record.ip.clone())
            .bind(record.user_agent.clone())
            .bind(record.method.clone())
            .bind(record.path.clone())
            .bind(record.query.clone())
            .bind(record.dataset.clone())
            .bind(record.action.clone())
            .bind(record.decision.clone())
            .bind(record.rule.clone())
            .bind(record.view.clone())
            .bind(record.status)
            .bind(record.rows)
            .bind(record.bytes)
            .bind(record.duration_ms)
            .bind(record.complete.map(i64::from))
            .bind(record.purpose.clone())
            .bind(record.instance.clone())
            .bind($prev_hash.to_owned())
            .bind($hash.to_owned())
    }};
}

fn roles_json(record: &EventRecord) -> String {
    serde_json::to_string(&record.roles).unwrap_or_else(|_| "[]".to_owned())
}

/// How each backend writes a batch of chained rows fastest.
trait InsertEvents: sqlx::Database {
    fn insert_events<'a>(
        connection: &'a mut Self::Connection,
        rows: &'a [ChainedRow<'a>],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}

impl InsertEvents for sqlx::Sqlite {
    /// SQLite: one cached prepared statement per row, inside the transaction.
    async fn insert_events<'a>(
        connection: &'a mut sqlx::SqliteConnection,
        rows: &'a [ChainedRow<'a>],
    ) -> Result<(), sqlx::Error> {
        {
            for row in rows {
                bind_event!(
                    sqlx::query(INSERT_ONE),
                    row.seq,
                    row.record,
                    &row.prev_hash,
                    &row.hash
                )
                .execute(&mut *connection)
                .await?;
            }
            Ok(())
        }
    }
}

impl InsertEvents for sqlx::Postgres {
    /// PostgreSQL: one `INSERT … SELECT FROM UNNEST(arrays)` for the batch.
    async fn insert_events<'a>(
        connection: &'a mut sqlx::PgConnection,
        rows: &'a [ChainedRow<'a>],
    ) -> Result<(), sqlx::Error> {
        {
            let column = |get: &dyn Fn(&ChainedRow<'_>) -> Option<String>| {
                rows.iter().map(get).collect::<Vec<_>>()
            };
            let number = |get: &dyn Fn(&ChainedRow<'_>) -> Option<i64>| {
                rows.iter().map(get).collect::<Vec<_>>()
            };
            sqlx::query(INSERT_UNNEST)
                .bind(rows.iter().map(|row| row.seq).collect::<Vec<i64>>())
                .bind(column(&|row| Some(row.record.kind.as_str().to_owned())))
                .bind(number(&|row| row.record.refers_to))
                .bind(number(&|row| Some(row.record.time_us)))
                .bind(column(&|row| Some(row.record.request_id.clone())))
                .bind(column(&|row| row.record.subject.clone()))
                .bind(column(&|row| row.record.org.clone()))
                .bind(column(&|row| Some(roles_json(row.record))))
                .bind(column(&|row| Some(row.record.auth_method.clone())))
                .bind(column(&|row| row.record.client_id.clone()))
                .bind(column(&|row| row.record.token_id.clone()))
                .bind(column(&|row| row.record.ip.clone()))
                .bind(column(&|row| row.record.user_agent.clone()))
                .bind(column(&|row| Some(row.record.method.clone())))
                .bind(column(&|row| Some(row.record.path.clone())))
                .bind(column(&|row| row.record.query.clone()))
                .bind(column(&|row| row.record.dataset.clone()))
                .bind(column(&|row| Some(row.record.action.clone())))
                .bind(column(&|row| Some(row.record.decision.clone())))
                .bind(column(&|row| row.record.rule.clone()))
                .bind(column(&|row| row.record.view.clone()))
                .bind(number(&|row| Some(row.record.status)))
                .bind(number(&|row| row.record.rows))
                .bind(number(&|row| row.record.bytes))
                .bind(
                    rows.iter()
                        .map(|row| row.record.duration_ms)
                        .collect::<Vec<f64>>(),
                )
                .bind(number(&|row| row.record.complete.map(i64::from)))
                .bind(column(&|row| row.record.purpose.clone()))
                .bind(column(&|row| Some(row.record.instance.clone())))
                .bind(column(&|row| Some(row.prev_hash.clone())))
                .bind(column(&|row| Some(row.hash.clone())))
                .execute(&mut *connection)
                .await?;
            Ok(())
        }
    }
}

/// Appends `records` to the chain in one transaction; returns their sequence numbers.
pub async fn append(store: &Store, records: &[EventRecord]) -> Result<Vec<i64>, sqlx::Error> {
    in_chain_transaction!(store, tx => {
        let head = read_head!(tx);
        let mut prev_hash = head.hash;
        let mut rows = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let seq = head.seq + 1 + index as i64;
            let hash = record.chain_hash(seq, &prev_hash);
            let prev_hash = std::mem::replace(&mut prev_hash, hash.clone());
            rows.push(ChainedRow { seq, record, prev_hash, hash });
        }
        <Db as InsertEvents>::insert_events(&mut *tx, &rows).await?;
        rows.iter().map(|row| row.seq).collect::<Vec<i64>>()
    })
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
pub async fn purge_before(
    store: &Store,
    signer: &dyn super::CheckpointSigner,
    keep_from: i64,
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
                let events = sqlx::query("DELETE FROM audit_events WHERE seq < $1")
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
        let mut builder = QueryBuilder::<Db>::new(format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq >= "));
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
pub async fn insert_raw(
    store: &Store,
    seq: i64,
    record: &EventRecord,
    prev_hash: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    with_pool!(store, pool => {
        bind_event!(sqlx::query::<Db>(INSERT_ONE), seq, record, prev_hash, hash)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

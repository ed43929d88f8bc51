//! Exports from SQLite stepped directly on a blocking thread.
//!
//! Through sqlx, every SQLite row crosses from the connection's worker
//! thread to the async task on its own, then is decoded cell by cell into
//! owned values: a profile of a 200k-row CSV export spent most of its time
//! there, not in SQLite. Here the export's connection is locked out of its
//! worker (`lock_handle`), the planned query (the same SQL as
//! [`build_select`], values still bound as parameters) is prepared and
//! stepped with the SQLite C API on a blocking thread, and each row is
//! encoded there by the export's own encoder into chunks of about
//! [`CHUNK_BYTES`] handed to the response with their row counts.
//!
//! The statement is finalized and the handle given back to the worker
//! before the connection returns to the pool, whatever happens (error,
//! client gone: the next send fails and the loop stops; a long scan that
//! yields nothing is interrupted by a progress handler once the receiver
//! is gone).

use std::ffi::{CString, c_int, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use libsqlite3_sys as ffi;
use sqlx::{Arguments, Execute, Sqlite, SqlitePool};
use tokio::sync::mpsc;

use super::copy::bound_values;
use super::datasets::DatasetRead;
use super::sql::{CellKind, build_select};
use super::{Store, StoreError};
use crate::domain::Value;
use crate::format::RowEncoder;

/// Bytes encoded before a chunk is handed over.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Encoded bytes and the number of rows they end.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Bytes,
    pub rows: u64,
}

/// Chunks of an export encoded next to the store.
pub type EncodedStream = BoxStream<'static, Result<Encoded, StoreError>>;

/// A read the store steps itself (SQLite, a plain read).
pub struct DirectExport {
    pool: SqlitePool,
    read: Arc<DatasetRead>,
    sql: String,
    values: Vec<Value>,
    kinds: Vec<CellKind>,
}

impl Store {
    /// The rows of `read` stepped and encoded next to the store, when it
    /// can (SQLite; not the aggregate-only reads, whose small groups the
    /// gateway suppresses); `None` otherwise.
    pub fn direct_export(
        &self,
        read: Arc<DatasetRead>,
        limit: Option<u64>,
    ) -> Option<DirectExport> {
        let Store::Sqlite(pool) = self else {
            return None;
        };
        if read.min_group_size.is_some() {
            return None;
        }
        let (sql, values) = statement(&read, limit)?;
        Some(DirectExport {
            pool: pool.clone(),
            kinds: read.cell_kinds(),
            read,
            sql,
            values,
        })
    }
}

/// The SQL of `read` and the values it binds, in order; `None` when the
/// placeholders cannot be accounted for (then the row-by-row path runs).
fn statement(read: &DatasetRead, limit: Option<u64>) -> Option<(String, Vec<Value>)> {
    let query = read.as_query();
    let values = bound_values(&query, limit);
    let mut builder = build_select::<Sqlite>(&query, limit);
    let mut built = builder.build();
    let bound = built
        .take_arguments()
        .ok()
        .flatten()
        .map_or(0, |arguments| arguments.len());
    let sql = built.sql().as_str().to_owned();
    (bound == values.len() && placeholders(&sql) == values.len()).then_some((sql, values))
}

/// The `?` placeholders of `sql` outside quoted identifiers and literals.
fn placeholders(sql: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut count = 0;
    for character in sql.chars() {
        match quote {
            Some(open) if character == open => quote = None,
            Some(_) => {}
            None if character == '"' || character == '\'' => quote = Some(character),
            None if character == '?' => count += 1,
            None => {}
        }
    }
    count
}

impl DirectExport {
    /// Steps the statement on a blocking thread, encoding rows with
    /// `encoder` (its `begin` and `end` included).
    pub fn stream(self, encoder: Box<dyn RowEncoder>) -> EncodedStream {
        let (sender, mut receiver) = mpsc::channel::<Result<Encoded, StoreError>>(2);
        let DirectExport {
            pool,
            read,
            sql,
            values,
            kinds,
        } = self;
        Box::pin(async_stream::stream! {
            let connection = match pool.acquire().await {
                Ok(connection) => connection,
                Err(error) => {
                    yield Err(StoreError::Sql(error));
                    return;
                }
            };
            let runtime = tokio::runtime::Handle::current();
            let blocking = tokio::task::spawn_blocking(move || {
                // Keeps the table leased while the export runs.
                let _read = read;
                let mut connection = connection;
                let outcome = match runtime.block_on(connection.lock_handle()) {
                    Ok(mut handle) => {
                        let job = Job { sql: &sql, values: &values, kinds: &kinds, sender: &sender };
                        // SAFETY: the locked handle keeps the worker thread off
                        // this connection until it is dropped, after the job
                        // has finalized its statement.
                        unsafe { job.run(handle.as_raw_handle(), encoder) }
                    }
                    Err(error) => Err(StoreError::Sql(error)),
                };
                if let Err(error) = outcome {
                    let _ = sender.blocking_send(Err(error));
                }
            });
            while let Some(chunk) = receiver.recv().await {
                yield chunk;
            }
            if let Err(error) = blocking.await {
                yield Err(StoreError::Sql(sqlx::Error::Protocol(format!("export thread failed: {error}"))));
            }
        })
    }
}

struct Job<'a> {
    sql: &'a str,
    values: &'a [Value],
    kinds: &'a [CellKind],
    sender: &'a mpsc::Sender<Result<Encoded, StoreError>>,
}

/// A prepared statement, finalized when dropped.
struct Statement(*mut ffi::sqlite3_stmt);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: prepared by sqlite3_prepare_v2 on a handle still locked.
        unsafe {
            ffi::sqlite3_finalize(self.0);
        }
    }
}

/// Removes the progress handler when the job ends.
struct Progress(*mut ffi::sqlite3);

impl Drop for Progress {
    fn drop(&mut self) {
        // SAFETY: the handle is still locked (see `Job::run`).
        unsafe { ffi::sqlite3_progress_handler(self.0, 0, None, std::ptr::null_mut()) };
    }
}

/// Interrupts the statement once nobody waits for its rows.
unsafe extern "C" fn receiver_gone(sender: *mut c_void) -> c_int {
    // SAFETY: `sender` points at the job's sender, alive while the handler is set.
    let sender = unsafe { &*(sender as *const mpsc::Sender<Result<Encoded, StoreError>>) };
    c_int::from(sender.is_closed())
}

fn sqlite_error(db: *mut ffi::sqlite3, code: c_int) -> StoreError {
    // SAFETY: sqlite3_errmsg returns a string valid until the next call on `db`.
    let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned();
    StoreError::Sql(sqlx::Error::Protocol(format!(
        "SQLite export failed (code {code}): {message}"
    )))
}

impl Job<'_> {
    /// # Safety
    /// `db` must be a connection no other thread uses until this returns.
    unsafe fn run(
        &self,
        db: NonNull<ffi::sqlite3>,
        mut encoder: Box<dyn RowEncoder>,
    ) -> Result<(), StoreError> {
        let db = db.as_ptr();
        let sql = CString::new(self.sql)
            .map_err(|_| StoreError::Sql(sqlx::Error::Protocol("NUL in SQL".into())))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `db` is ours (see above); `sql` is NUL-terminated.
        let code = unsafe {
            ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut raw, std::ptr::null_mut())
        };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(db, code));
        }
        let statement = Statement(raw);
        // SAFETY: as above; the statement is live until `statement` drops.
        unsafe { self.bind(db, statement.0) }?;
        let sender = std::ptr::from_ref(self.sender) as *mut c_void;
        // SAFETY: the sender outlives the handler, removed by `_progress`.
        unsafe { ffi::sqlite3_progress_handler(db, 100_000, Some(receiver_gone), sender) };
        let _progress = Progress(db);
        let width = self.kinds.len();
        let mut cells: Vec<Value> = vec![Value::Null; width];
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut rows = 0;
        encoder.begin(&mut buffer);
        loop {
            // SAFETY: a prepared statement of `db`.
            let code = unsafe { ffi::sqlite3_step(statement.0) };
            match code {
                ffi::SQLITE_ROW => {
                    for (index, kind) in self.kinds.iter().enumerate() {
                        // SAFETY: a row is current and `index` < the column count
                        // (the select list has one column per kind).
                        unsafe { read_cell(statement.0, index, *kind, &mut cells[index]) };
                    }
                    encoder.row(&mut buffer, &cells);
                    rows += 1;
                    if buffer.len() >= CHUNK_BYTES {
                        let bytes =
                            std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + 4096));
                        if !self.send(bytes, rows) {
                            return Ok(());
                        }
                        rows = 0;
                    }
                }
                ffi::SQLITE_DONE => break,
                // The receiver is gone: nobody to tell.
                ffi::SQLITE_INTERRUPT if self.sender.is_closed() => return Ok(()),
                code => return Err(sqlite_error(db, code)),
            }
        }
        encoder.end(&mut buffer);
        self.send(buffer, rows);
        Ok(())
    }

    /// False when the receiver is gone.
    fn send(&self, bytes: Vec<u8>, rows: u64) -> bool {
        let chunk = Encoded {
            bytes: Bytes::from(bytes),
            rows,
        };
        self.sender.blocking_send(Ok(chunk)).is_ok()
    }

    /// Binds the values in order (`?` placeholders are numbered from 1).
    unsafe fn bind(
        &self,
        db: *mut ffi::sqlite3,
        statement: *mut ffi::sqlite3_stmt,
    ) -> Result<(), StoreError> {
        // SAFETY: a prepared statement of `db`.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(statement) };
        if usize::try_from(expected).ok() != Some(self.values.len()) {
            return Err(StoreError::Sql(sqlx::Error::Protocol(format!(
                "SQLite export: {expected} parameters for {} values",
                self.values.len()
            ))));
        }
        for (offset, value) in self.values.iter().enumerate() {
            let index = c_int::try_from(offset + 1).unwrap_or(c_int::MAX);
            // SAFETY: `index` is within the parameter count; text is copied
            // by SQLite (SQLITE_TRANSIENT).
            let code = unsafe {
                match value {
                    Value::Null => ffi::sqlite3_bind_null(statement, index),
                    Value::Bool(flag) => {
                        ffi::sqlite3_bind_int64(statement, index, i64::from(*flag))
                    }
                    Value::Int(number) => ffi::sqlite3_bind_int64(statement, index, *number),
                    Value::Float(number) => ffi::sqlite3_bind_double(statement, index, *number),
                    Value::Text(text) => ffi::sqlite3_bind_text64(
                        statement,
                        index,
                        text.as_ptr().cast(),
                        text.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(sqlite_error(db, code));
            }
        }
        Ok(())
    }
}

/// Reads column `index` of the current row as `kind` into `cell`, reusing
/// its text buffer (as sqlx decodes it: integers and booleans as 64-bit
/// integers, floats as doubles, text as UTF-8).
///
/// # Safety
/// `statement` has a current row with more than `index` columns.
unsafe fn read_cell(
    statement: *mut ffi::sqlite3_stmt,
    index: usize,
    kind: CellKind,
    cell: &mut Value,
) {
    let column = index as c_int;
    // SAFETY: see the function's contract.
    unsafe {
        if ffi::sqlite3_column_type(statement, column) == ffi::SQLITE_NULL {
            *cell = Value::Null;
            return;
        }
        match kind {
            CellKind::Int => *cell = Value::Int(ffi::sqlite3_column_int64(statement, column)),
            CellKind::Bool => {
                *cell = Value::Bool(ffi::sqlite3_column_int64(statement, column) != 0)
            }
            CellKind::Float => *cell = Value::Float(ffi::sqlite3_column_double(statement, column)),
            CellKind::Text => {
                // sqlite3_column_text first, then its length (SQLite's advice).
                let text = ffi::sqlite3_column_text(statement, column);
                let length =
                    usize::try_from(ffi::sqlite3_column_bytes(statement, column)).unwrap_or(0);
                let bytes: &[u8] = if text.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts(text, length)
                };
                let text = String::from_utf8_lossy(bytes);
                match cell {
                    Value::Text(kept) => {
                        kept.clear();
                        kept.push_str(&text);
                    }
                    _ => *cell = Value::Text(text.into_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Placeholders inside quoted identifiers or literals are not counted.
    #[test]
    fn counts_placeholders_outside_quotes() {
        assert_eq!(
            placeholders("SELECT \"a?\" FROM t WHERE b = ? AND c = '?' LIMIT ?"),
            2
        );
        assert_eq!(placeholders("SELECT 1"), 0);
    }
}

//! The columns of `audit_events`, defined once. Each field of an event is
//! declared a single time (see `event.rs`, the `event_columns!` list); the
//! table generated from it drives the insert and select SQL of both stores,
//! the CSV export's header and cells and the hash chain's canonical
//! encoding, while serde derives the JSON listing from the same struct.
//!
//! How a value is stored, hashed and exported follows from its Rust type
//! (the [`Field`] trait): text as text, numbers in decimal, `duration_ms` as
//! its IEEE-754 bits in the hash, roles as a JSON array in SQL and the hash
//! but joined by `;` in CSV, the time as microseconds in SQL and the hash but
//! RFC 3339 in CSV and JSON, enums as their lower-case names.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::event::{StoredEvent, format_time};
use crate::domain::text;

/// The SQL type of a column, the same on both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    Text,
    BigInt,
    Double,
}

impl SqlType {
    /// The PostgreSQL array type a batched insert unnests.
    pub fn postgres_array(self) -> &'static str {
        match self {
            SqlType::Text => "text[]",
            SqlType::BigInt => "bigint[]",
            SqlType::Double => "float8[]",
        }
    }
}

/// A value as bound to SQL or read back from it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Text(Option<String>),
    BigInt(Option<i64>),
    Double(Option<f64>),
}

impl SqlValue {
    // A column's values are all of its SQL type (`columns_are_consistent`
    // tests it), so these never meet another variant.
    pub fn into_text(self) -> Option<String> {
        match self {
            SqlValue::Text(value) => value,
            _ => None,
        }
    }

    pub fn into_big_int(self) -> Option<i64> {
        match self {
            SqlValue::BigInt(value) => value,
            _ => None,
        }
    }

    pub fn into_double(self) -> Option<f64> {
        match self {
            SqlValue::Double(value) => value,
            _ => None,
        }
    }
}

/// How a field's value is stored, read back, hashed and exported.
pub(crate) trait Field {
    /// The value as stored.
    fn sql(&self) -> SqlValue;
    /// Takes the value `sql` stored; an error says why a stored value is
    /// not one the gateway writes (the row was tampered with).
    fn read(&mut self, value: SqlValue) -> Result<(), String>;
    /// The value in the canonical encoding; `None` is an absent value.
    fn canonical(&self) -> Option<Cow<'_, str>>;
    /// The CSV cell (empty for an absent value).
    fn csv(&self) -> Cow<'_, str> {
        self.canonical().unwrap_or_default()
    }
    /// Escapes hidden characters in text (see `domain::text`); once, before
    /// the event is hashed and stored.
    fn escape(&mut self) {}
}

/// The SQL type of a field's Rust type (apart from [`Field`], which must
/// stay usable as `dyn Field`).
pub(crate) trait SqlTyped {
    const SQL_TYPE: SqlType;
}

/// One column of `audit_events`.
#[derive(Clone, Copy)]
pub(crate) struct Column {
    /// Its SQL name.
    pub name: &'static str,
    /// Its CSV header, also the JSON key of the listing.
    pub header: &'static str,
    pub sql_type: SqlType,
    /// False only for the chain's links, which the hash cannot cover.
    pub hashed: bool,
    pub get: fn(&StoredEvent) -> &dyn Field,
    pub get_mut: fn(&mut StoredEvent) -> &mut dyn Field,
}

/// The column of the field at `stored.<path>`, with its SQL name.
macro_rules! column {
    ($sql:literal, $header:ident: $type:ty = stored $(.$path:ident)+, hashed: $hashed:literal) => {
        crate::audit::columns::Column {
            name: $sql,
            header: stringify!($header),
            sql_type: <$type as crate::audit::columns::SqlTyped>::SQL_TYPE,
            hashed: $hashed,
            get: |stored| &stored $(.$path)+,
            get_mut: |stored| &mut stored $(.$path)+,
        }
    };
}
pub(crate) use column;

/// Declares the event struct, one line a field (`doc, name: Type => "sql_column"`),
/// and `EVENT_COLUMNS`, its columns in that order.
macro_rules! event_columns {
    ($(#[$struct_meta:meta])* pub struct $name:ident {
        $($(#[$meta:meta])* $field:ident: $type:ty => $sql:literal,)*
    }) => {
        $(#[$struct_meta])*
        pub struct $name {
            $($(#[$meta])* pub $field: $type,)*
        }

        /// The event's columns, in the order of the canonical encoding.
        pub(crate) const EVENT_COLUMNS: &[crate::audit::columns::Column] = &[
            $(crate::audit::columns::column!($sql, $field: $type = stored.event.$field, hashed: true),)*
        ];
    };
}
pub(crate) use event_columns;

/// Every column of `audit_events`, in order: the chain's sequence, the
/// event's own columns, then the links of the chain.
pub(crate) static COLUMNS: LazyLock<Vec<Column>> = LazyLock::new(|| {
    let seq = column!("seq", seq: i64 = stored.seq, hashed: true);
    let prev_hash = column!("prev_hash", prev_hash: String = stored.prev_hash, hashed: false);
    let hash = column!("hash", hash: String = stored.hash, hashed: false);
    std::iter::once(seq)
        .chain(super::event::EVENT_COLUMNS.iter().copied())
        .chain([prev_hash, hash])
        .collect()
});

/// The comma-separated column names, for `SELECT` and `INSERT`.
pub(crate) fn column_list() -> String {
    COLUMNS
        .iter()
        .map(|column| column.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Field for String {
    fn sql(&self) -> SqlValue {
        SqlValue::Text(Some(self.clone()))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        *self = required(read_text(value)?)?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
    fn escape(&mut self) {
        *self = text::escape_owned(std::mem::take(self));
    }
}

impl Field for Option<String> {
    fn sql(&self) -> SqlValue {
        SqlValue::Text(self.clone())
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        *self = read_text(value)?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        self.as_deref().map(Cow::Borrowed)
    }
    fn escape(&mut self) {
        *self = self.take().map(text::escape_owned);
    }
}

impl Field for i64 {
    fn sql(&self) -> SqlValue {
        SqlValue::BigInt(Some(*self))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        *self = required(read_integer(value)?)?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.to_string()))
    }
}

impl Field for Option<i64> {
    fn sql(&self) -> SqlValue {
        SqlValue::BigInt(*self)
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        *self = read_integer(value)?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        self.map(|value| Cow::Owned(value.to_string()))
    }
}

/// An HTTP status.
impl Field for u16 {
    fn sql(&self) -> SqlValue {
        SqlValue::BigInt(Some(i64::from(*self)))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        let number = required(read_integer(value)?)?;
        *self = u16::try_from(number).map_err(|_| format!("`{number}` is not an HTTP status"))?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.to_string()))
    }
}

/// A duration: hashed as the bits of the float, so that no rounding can
/// make two durations hash alike.
impl Field for f64 {
    fn sql(&self) -> SqlValue {
        SqlValue::Double(Some(*self))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        match value {
            SqlValue::Double(value) => *self = required(value)?,
            other => return Err(format!("expected a number, found {other:?}")),
        }
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(format!("{:016x}", self.to_bits())))
    }
    fn csv(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

/// A completion's flag: `1` / `0` in SQL and the hash, `true` / `false` in CSV.
impl Field for Option<bool> {
    fn sql(&self) -> SqlValue {
        SqlValue::BigInt(self.map(i64::from))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        *self = match read_integer(value)? {
            None => None,
            Some(0) => Some(false),
            Some(1) => Some(true),
            Some(other) => return Err(format!("`{other}` is neither 0 nor 1")),
        };
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        self.map(|value| Cow::Borrowed(if value { "1" } else { "0" }))
    }
    fn csv(&self) -> Cow<'_, str> {
        self.map(|value| Cow::Owned(value.to_string()))
            .unwrap_or_default()
    }
}

/// Roles: a JSON array in SQL and the hash, joined by `;` in CSV.
impl Field for Vec<String> {
    fn sql(&self) -> SqlValue {
        SqlValue::Text(self.canonical().map(Cow::into_owned))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        let json = required(read_text(value)?)?;
        *self = serde_json::from_str(&json)
            .map_err(|_| format!("`{json}` is not a JSON array of strings"))?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(
            serde_json::to_string(self).unwrap_or_else(|_| "[]".to_owned()),
        ))
    }
    fn csv(&self) -> Cow<'_, str> {
        Cow::Owned(self.join(";"))
    }
    fn escape(&mut self) {
        for role in self.iter_mut() {
            role.escape();
        }
    }
}

/// The time: microseconds since the epoch in SQL and the hash, RFC 3339
/// with microseconds in CSV.
impl Field for DateTime<Utc> {
    fn sql(&self) -> SqlValue {
        SqlValue::BigInt(Some(self.timestamp_micros()))
    }
    fn read(&mut self, value: SqlValue) -> Result<(), String> {
        let micros = required(read_integer(value)?)?;
        *self = DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| format!("`{micros}` is not a time"))?;
        Ok(())
    }
    fn canonical(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.timestamp_micros().to_string()))
    }
    fn csv(&self) -> Cow<'_, str> {
        Cow::Owned(format_time(self.timestamp_micros()))
    }
}

/// The SQL type of each field type.
macro_rules! sql_types {
    ($($sql_type:ident: $($type:ty),+;)*) => {
        $($(impl SqlTyped for $type {
            const SQL_TYPE: SqlType = SqlType::$sql_type;
        })+)*
    };
}
sql_types! {
    Text: String, Option<String>, Vec<String>;
    BigInt: i64, Option<i64>, u16, Option<bool>, DateTime<Utc>;
    Double: f64;
}

/// An enum stored as its name: `as_str` is what SQL, the hash, CSV and the
/// JSON listing (through serde's renames) carry; the first variant is the default.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$variant_meta:meta])* $variant:ident = $text:tt,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
        pub enum $name {
            #[default]
            // `tt`, not `literal`: utoipa's derive does not see a rename
            // given as a `literal` fragment.
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The name stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl crate::audit::columns::SqlTyped for $name {
            const SQL_TYPE: crate::audit::columns::SqlType = crate::audit::columns::SqlType::Text;
        }

        impl crate::audit::columns::Field for $name {
            fn sql(&self) -> crate::audit::columns::SqlValue {
                crate::audit::columns::SqlValue::Text(Some(self.as_str().to_owned()))
            }
            fn read(&mut self, value: crate::audit::columns::SqlValue) -> Result<(), String> {
                let mut text = String::new();
                text.read(value)?;
                *self = $name::parse(&text).ok_or_else(|| {
                    format!("`{text}` is not a {} the gateway records", stringify!($name))
                })?;
                Ok(())
            }
            fn canonical(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some(std::borrow::Cow::Borrowed(self.as_str()))
            }
        }
    };
}
pub(crate) use named_enum;

fn read_text(value: SqlValue) -> Result<Option<String>, String> {
    match value {
        SqlValue::Text(text) => Ok(text),
        other => Err(format!("expected text, found {other:?}")),
    }
}

fn read_integer(value: SqlValue) -> Result<Option<i64>, String> {
    match value {
        SqlValue::BigInt(number) => Ok(number),
        other => Err(format!("expected an integer, found {other:?}")),
    }
}

fn required<T>(value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| "null where a value is required".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::event::tests::{chained, sample};
    use super::super::event::{Action, AuthMethod, Event, EventKind, GENESIS_HASH};
    use super::super::query::{event_csv_line, events_csv_header};
    use super::super::store::{self, EventRow};
    use super::*;
    use crate::store::{Store, test_support};

    /// An event in which no column has its default value, so that a column
    /// lost on the way in or out shows.
    fn full_event() -> Event {
        let event = sample("full").sealed("gw-full", None);
        Event {
            kind: EventKind::Completion,
            refers_to: Some(1),
            auth_method: AuthMethod::ClientCredentials,
            client_id: Some("client-1".to_owned()),
            action: Action::AuditRead,
            roles: vec!["partner".to_owned(), "reader;x".to_owned()],
            view: Some("public".to_owned()),
            bytes: Some(4096),
            complete: Some(false),
            changes: Some(r#"{"fields":[]}"#.to_owned()),
            ..event
        }
    }

    fn sql_type_of(value: &SqlValue) -> SqlType {
        match value {
            SqlValue::Text(_) => SqlType::Text,
            SqlValue::BigInt(_) => SqlType::BigInt,
            SqlValue::Double(_) => SqlType::Double,
        }
    }

    /// Names and headers are unique; every value is of its column's SQL
    /// type; the full event sets every column.
    #[test]
    fn columns_are_consistent() {
        let full = chained(&full_event(), 7, GENESIS_HASH);
        let default = StoredEvent::default();
        for (index, column) in COLUMNS.iter().enumerate() {
            let later = &COLUMNS[index + 1..];
            assert!(
                later
                    .iter()
                    .all(|other| other.name != column.name && other.header != column.header),
                "{}",
                column.name
            );
            for event in [&full, &default] {
                assert_eq!(
                    sql_type_of(&(column.get)(event).sql()),
                    column.sql_type,
                    "{}",
                    column.name
                );
            }
            assert_ne!(
                (column.get)(&full).sql(),
                (column.get)(&default).sql(),
                "{} is not set",
                column.name
            );
        }
        assert_eq!(COLUMNS.iter().filter(|column| column.hashed).count(), 29);
    }

    /// The table names the columns of `audit_events` as both migrations
    /// create them, in their order and with their types.
    #[test]
    fn columns_match_the_migrations() {
        for (file, types) in [
            (
                "migrations/sqlite/0003_audit.sql",
                ["TEXT", "INTEGER", "REAL"],
            ),
            (
                "migrations/postgres/0003_audit.sql",
                ["TEXT", "BIGINT", "DOUBLE PRECISION"],
            ),
        ] {
            let migration = std::fs::read_to_string(file).unwrap();
            let table = migration
                .split("CREATE TABLE audit_events (")
                .nth(1)
                .unwrap();
            let table = table.split(");").next().unwrap();
            let mut declared: Vec<(String, String)> = table
                .lines()
                .map(|line| line.split("--").next().unwrap().trim())
                .filter(|line| !line.is_empty())
                .map(|line| {
                    let (name, rest) = line.split_once(' ').unwrap();
                    let sql_type = rest
                        .split([','])
                        .next()
                        .unwrap()
                        .replace(" NOT NULL", "")
                        .replace(" PRIMARY KEY", "");
                    (name.to_owned(), sql_type.trim().to_owned())
                })
                .collect();
            // Columns added by later migrations come last, before the chain's links.
            let folder = std::path::Path::new(file).parent().unwrap();
            let mut later: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.file_name().unwrap().to_str().unwrap() > "0003")
                .collect();
            later.sort();
            let links = declared.split_off(declared.len() - 2);
            for path in later {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    if let Some(column) = line.strip_prefix("ALTER TABLE audit_events ADD COLUMN ")
                    {
                        let (name, sql_type) =
                            column.trim_end_matches(';').split_once(' ').unwrap();
                        declared.push((name.to_owned(), sql_type.to_owned()));
                    }
                }
            }
            declared.extend(links);
            let expected: Vec<(String, String)> = COLUMNS
                .iter()
                .map(|column| {
                    let sql_type = match column.sql_type {
                        SqlType::Text => types[0],
                        SqlType::BigInt => types[1],
                        SqlType::Double => types[2],
                    };
                    (column.name.to_owned(), sql_type.to_owned())
                })
                .collect();
            assert_eq!(declared, expected, "{file}");
        }
    }

    /// Every column round-trips on both stores: inserted, selected back
    /// equal, exported in CSV under its header, listed in JSON under the same
    /// key, and the chain still verifies.
    #[tokio::test]
    async fn every_column_round_trips() {
        let mut stores = vec![test_support::sqlite().await];
        stores.extend(test_support::postgres().await);
        for (store, _guard) in stores {
            let backend = match &store {
                Store::Sqlite(_) => "sqlite",
                Store::Postgres(_) => "postgres",
            };
            let events = [sample("first").sealed("gw", None), full_event()];
            let (sequences, _) = store::append(&store, &events, None).await.unwrap();
            assert_eq!(sequences, vec![1, 2], "{backend}");
            let rows: Vec<EventRow> = store::events_ascending(&store, 1, None, 10).await.unwrap();
            let read: Vec<StoredEvent> = rows
                .into_iter()
                .map(|row| row.into_stored().unwrap())
                .collect();
            let first = chained(&events[0], 1, GENESIS_HASH);
            let second = chained(&events[1], 2, &first.hash);
            assert_eq!(read, vec![first, second.clone()], "{backend}");

            let text = format!("{}{}", events_csv_header(), event_csv_line(&read[1]));
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader.headers().unwrap().clone();
            let cells = reader.records().next().unwrap().unwrap();
            let json = serde_json::to_value(&read[1]).unwrap();
            let json = json.as_object().unwrap();
            assert_eq!(
                json.len(),
                COLUMNS.len(),
                "{backend}: one JSON key a column"
            );
            for (index, column) in COLUMNS.iter().enumerate() {
                let value = (column.get)(&second);
                assert_eq!(&headers[index], column.header);
                assert_eq!(
                    &cells[index],
                    value.csv(),
                    "{backend}: CSV {}",
                    column.header
                );
                let listed = &json[column.header];
                let shown = listed
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| listed.to_string());
                assert!(!listed.is_null(), "{backend}: JSON {}", column.header);
                if column.header != "time" && column.header != "roles" {
                    assert_eq!(shown, value.csv(), "{backend}: JSON {}", column.header);
                }
            }
            assert_eq!(json["time"], "2026-11-29T10:00:00.123456Z");
            assert_eq!(json["roles"], serde_json::json!(["partner", "reader;x"]));
        }
    }
}

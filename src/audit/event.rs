//! Audit events: what the HTTP layer hands in and the log stores and lists
//! (`Event`, one definition whose columns drive SQL, CSV and the hash; see
//! `columns.rs`), its place in the chain (`StoredEvent`), and the hash chain
//! that links them.
//!
//! # Canonical encoding (version 1)
//! `hash = SHA-256(prev_hash || encoding)` where `prev_hash` is the previous
//! event's hash as 32 raw bytes (32 zero bytes before the first event) and
//! `encoding` is the ASCII tag `passerelle-audit-v1` followed by `seq` and
//! every column of [`Event`], in declaration order, each as a 4-byte
//! big-endian length and its UTF-8 bytes; an absent value is the length
//! `0xFFFF_FFFF` with no bytes. Integers are written in decimal (the time in
//! microseconds since the epoch), `duration_ms` as the 16 lower-case hex
//! digits of its IEEE-754 bits, booleans as `1` / `0`, `roles` as a JSON
//! array, enums as their names. Changing the order or the form of a column
//! breaks every existing log: `canonical_hash_is_pinned` guards it.
//!
//! # Version 2: events that carry `changes`
//! The `changes` column (the fields a publishing operation changed with
//! their old and new values, or an upload's version, rows, bytes and file
//! SHA-256, as JSON text) came after version 1. An event without `changes`
//! is encoded exactly as in version 1, so every existing log still verifies.
//! An event with `changes` uses the tag `passerelle-audit-v2` and appends the
//! `changes` column, encoded like any other text, after `instance`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::columns::{COLUMNS, event_columns, named_enum};
use crate::domain::text;

/// The column hashed only by the version 2 encoding (see the module documentation).
const CHANGES_COLUMN: &str = "changes";

/// The hash the first event of a chain links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Query parameters whose values never reach the log.
const SECRET_PARAMETERS: &[&str] = &[
    "access_token",
    "client_secret",
    "api_key",
    "apikey",
    "token",
    "refresh_token",
    "id_token",
    "password",
];

named_enum! {
    /// The kind of an event: a request, or the completion of a streamed one.
    pub enum EventKind {
        Access = "access",
        Completion = "completion",
    }
}

named_enum! {
    /// Whether the caller got what it asked for (any response of 400 or
    /// more is a `deny`). `deny` is the default: fail closed.
    pub enum Decision {
        Deny = "deny",
        Allow = "allow",
    }
}

named_enum! {
    /// What a request did: the policy's actions, and the gateway's own.
    pub enum Action {
        /// Any request that is not one of the actions below (an unknown
        /// route, a refusal before the handler decided).
        Request = "request",
        Read = "read",
        Export = "export",
        Aggregate = "aggregate",
        Metadata = "metadata",
        AuditRead = "audit:read",
        Admin = "admin",
        /// The OAuth2 token endpoint.
        Token = "token",
        /// A staff sign-in to the pages (OpenID Connect), and its end.
        SignIn = "sign-in",
        SignOut = "sign-out",
        /// The data register's inventory.
        InventoryRead = "inventory:read",
        /// A new version uploaded or restored.
        Publish = "publish",
        /// A dataset created, its metadata edited, retired or restored.
        Manage = "manage",
        /// A change of access level, metadata visibility, personal data or views.
        Classify = "classify",
        /// An earlier version read.
        History = "history",
    }
}

named_enum! {
    /// How the caller authenticated: the gateway's own tokens are
    /// `client_credentials` when a partner client obtained them, `jwt` like
    /// an identity provider's when minted for a person.
    pub enum AuthMethod {
        Anonymous = "anonymous",
        Jwt = "jwt",
        ClientCredentials = "client_credentials",
        ApiKey = "api_key",
        /// An operator's command on the gateway's host (`passerelle
        /// datasets …`, `passerelle import`), subject `cli:<login>`.
        Local = "local",
    }
}

impl From<crate::policy::Action> for Action {
    fn from(action: crate::policy::Action) -> Action {
        use crate::policy::Action as Policy;
        match action {
            Policy::Read => Action::Read,
            Policy::Export => Action::Export,
            Policy::Aggregate => Action::Aggregate,
            Policy::Metadata => Action::Metadata,
            Policy::AuditRead => Action::AuditRead,
            Policy::Admin => Action::Admin,
            Policy::InventoryRead => Action::InventoryRead,
            Policy::Publish => Action::Publish,
            Policy::Manage => Action::Manage,
            Policy::Classify => Action::Classify,
            Policy::History => Action::History,
        }
    }
}

// Each line is a column of `audit_events` (its SQL name after `=>`); the
// field name is its CSV header and JSON key; the order is the canonical
// encoding's. The HTTP layer fills in what it knows and leaves the rest to
// its default; the log normalises the event (`Event::sealed`) before
// hashing and storing it.
event_columns! {
    /// One event of the audit log: a request, or the completion of a streamed one.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
    pub struct Event {
        kind: EventKind => "kind",
        /// For a completion: the `seq` of the request it completes.
        refers_to: Option<i64> => "refers_to",
        /// RFC 3339, UTC, microseconds.
        #[serde(serialize_with = "serialize_time")]
        #[schema(value_type = String)]
        time: DateTime<Utc> => "time_us",
        request_id: String => "request_id",
        /// Null when anonymous.
        subject: Option<String> => "subject",
        org: Option<String> => "org",
        roles: Vec<String> => "roles",
        auth_method: AuthMethod => "auth_method",
        client_id: Option<String> => "client_id",
        token_id: Option<String> => "token_id",
        /// The client's address, or `hmac-sha256:<hex>` when addresses are hashed.
        ip: Option<String> => "ip",
        user_agent: Option<String> => "user_agent",
        method: String => "method",
        path: String => "path",
        /// The query string, secret parameters' values replaced by `REDACTED`.
        query: Option<String> => "query",
        dataset: Option<String> => "dataset",
        action: Action => "action",
        decision: Decision => "decision",
        rule: Option<String> => "rule",
        view: Option<String> => "view_name",
        status: u16 => "status",
        rows: Option<i64> => "rows_sent",
        bytes: Option<i64> => "bytes_sent",
        duration_ms: f64 => "duration_ms",
        /// For a completion: whether the export ended normally.
        complete: Option<bool> => "complete",
        purpose: Option<String> => "purpose",
        /// The gateway instance that wrote the event.
        instance: String => "instance",
        /// Publishing and classification: what changed (JSON: the fields
        /// with their old and new values, the reason given; for uploads the
        /// version, rows, bytes and SHA-256). Null for other events. Hashed
        /// with the version 2 encoding only when present.
        changes: Option<String> => "changes",
    }
}

/// An event with its place in the chain, as stored, listed and exported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Position in the chain (1, 2, 3…).
    pub seq: i64,
    #[serde(flatten)]
    pub event: Event,
    pub prev_hash: String,
    pub hash: String,
}

/// A stored event reads as its event.
impl std::ops::Deref for StoredEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Proof that an event was committed; hand it to `AuditLog::complete` when a
/// streamed export ends.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The committed event's sequence number.
    pub sequence: i64,
    pub(crate) event: Box<Event>,
}

/// How a streamed response ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub status: u16,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub duration_ms: f64,
    /// False when the stream was cut off (client gone, store error).
    pub complete: bool,
}

impl Event {
    /// The access event as the log stores it: subject null for anonymous
    /// callers, secret query parameters redacted, the IP hashed with
    /// `ip_hash_key` when there is one, the time in microseconds, and every
    /// text escaped (see `domain::text`) once, before the event is hashed
    /// and stored: a NUL byte, which PostgreSQL cannot store, or a
    /// bidirectional override is recorded as `\u{…}`, never dropped, and can
    /// never make a batch of events fail.
    pub(crate) fn sealed(mut self, instance: &str, ip_hash_key: Option<&[u8]>) -> Event {
        self.kind = EventKind::Access;
        self.refers_to = None;
        self.complete = None;
        self.instance = instance.to_owned();
        self.time = in_micros(self.time);
        if self.auth_method == AuthMethod::Anonymous
            || self.subject.as_deref().is_some_and(str::is_empty)
        {
            self.subject = None;
        }
        if let (Some(ip), Some(key)) = (&self.ip, ip_hash_key) {
            self.ip = Some(format!(
                "hmac-sha256:{}",
                hex::encode(hmac_sha256(key, ip.as_bytes()))
            ));
        }
        self.query = self.query.map(|query| redact_query(&query));
        let mut stored = StoredEvent {
            event: self,
            ..StoredEvent::default()
        };
        for column in COLUMNS.iter() {
            (column.get_mut)(&mut stored).escape();
        }
        stored.event
    }

    /// The completion of this streamed request (committed as `sequence`).
    pub(crate) fn completion(&self, sequence: i64, outcome: Outcome, instance: &str) -> Event {
        Event {
            kind: EventKind::Completion,
            refers_to: Some(sequence),
            time: in_micros(Utc::now()),
            status: outcome.status,
            rows: outcome.rows,
            bytes: outcome.bytes,
            duration_ms: outcome.duration_ms,
            complete: Some(outcome.complete),
            instance: text::escape_owned(instance.to_owned()),
            ..self.clone()
        }
    }
}

impl StoredEvent {
    /// The canonical encoding (see the module documentation).
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        // Version 1 for every event without `changes`: byte for byte the
        // encoding of the logs written before the column existed.
        let with_changes = self.event.changes.is_some();
        out.extend_from_slice(if with_changes {
            b"passerelle-audit-v2"
        } else {
            b"passerelle-audit-v1"
        });
        for column in COLUMNS
            .iter()
            .filter(|column| column.hashed)
            .filter(|column| with_changes || column.name != CHANGES_COLUMN)
        {
            match (column.get)(self).canonical() {
                Some(text) => {
                    let length = u32::try_from(text.len()).unwrap_or(u32::MAX - 1);
                    out.extend_from_slice(&length.to_be_bytes());
                    out.extend_from_slice(&text.as_bytes()[..length as usize]);
                }
                None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        out
    }

    /// The chain hash of this event at its `seq` after its `prev_hash` (hex).
    pub(crate) fn chain_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(hash_bytes(&self.prev_hash));
        hasher.update(self.canonical());
        hex::encode(hasher.finalize())
    }
}

/// `time` cut to the microseconds the log keeps.
fn in_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

fn serialize_time<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(time.timestamp_micros()))
}

/// A hex hash as raw bytes; anything malformed hashes as its text so that
/// a tampered `prev_hash` still gives a (different) result.
fn hash_bytes(hash: &str) -> Vec<u8> {
    match hex::decode(hash) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => hash.as_bytes().to_vec(),
    }
}

/// Formats microseconds since the epoch as RFC 3339 with microseconds.
pub fn format_time(time_us: i64) -> String {
    Utc.timestamp_micros(time_us)
        .single()
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_else(|| time_us.to_string())
}

/// Replaces the value of every secret parameter of a raw query string with `REDACTED`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let (key, has_value) = match pair.split_once('=') {
                Some((key, _)) => (key, true),
                None => (pair, false),
            };
            let decoded: String = form_urlencoded::parse(key.as_bytes())
                .map(|(name, _)| name.into_owned())
                .next()
                .unwrap_or_default();
            if has_value
                && SECRET_PARAMETERS
                    .iter()
                    .any(|secret| decoded.eq_ignore_ascii_case(secret))
            {
                format!("{key}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // HMAC accepts keys of any length (longer ones are hashed first).
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(request_id: &str) -> Event {
        Event {
            time: Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
            request_id: request_id.to_owned(),
            subject: Some("alice".to_owned()),
            org: Some("ademe".to_owned()),
            roles: vec!["partner".to_owned()],
            auth_method: AuthMethod::Jwt,
            token_id: Some("t1".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("curl/8".to_owned()),
            method: "GET".to_owned(),
            path: "/api/v1/data/energy".to_owned(),
            query: Some("select=a&api_key=s3cret".to_owned()),
            dataset: Some("energy".to_owned()),
            action: Action::Read,
            decision: Decision::Allow,
            rule: Some("p, partner, partners, read".to_owned()),
            status: 200,
            rows: Some(10),
            duration_ms: 1.25,
            purpose: Some("study".to_owned()),
            ..Event::default()
        }
    }

    /// `event` at `seq` after `prev_hash`.
    pub(crate) fn chained(event: &Event, seq: i64, prev_hash: &str) -> StoredEvent {
        let mut stored = StoredEvent {
            seq,
            event: event.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        stored.hash = stored.chain_hash();
        stored
    }

    /// RFC 4231 test case 2 ("Jefe").
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// Secret parameters are redacted whatever their case; others are kept verbatim.
    #[test]
    fn redacts_secret_parameters() {
        assert_eq!(
            redact_query("select=a,b&access_token=abc&Client_Secret=x%20y&limit=5&token"),
            "select=a,b&access_token=REDACTED&Client_Secret=REDACTED&limit=5&token"
        );
        assert_eq!(
            redact_query("api%5Fkey=k&q=token"),
            "api%5Fkey=REDACTED&q=token"
        );
    }

    /// Every field takes part in the hash; absent and empty values differ.
    #[test]
    fn hash_covers_every_field() {
        let record = sample("r1").sealed("gw", None);
        assert_eq!(record.query.as_deref(), Some("select=a&api_key=REDACTED"));
        let base = chained(&record, 1, GENESIS_HASH).hash;
        assert_eq!(
            base,
            chained(&record, 1, GENESIS_HASH).hash,
            "deterministic"
        );
        assert_ne!(base, chained(&record, 2, GENESIS_HASH).hash, "sequence");
        let other_prev = "11".repeat(32);
        assert_ne!(base, chained(&record, 1, &other_prev).hash, "previous hash");
        let variants: Vec<Event> = vec![
            Event {
                rows: Some(11),
                ..record.clone()
            },
            Event {
                duration_ms: 1.2500001,
                ..record.clone()
            },
            Event {
                org: None,
                ..record.clone()
            },
            Event {
                org: Some(String::new()),
                ..record.clone()
            },
            Event {
                roles: vec![],
                ..record.clone()
            },
            Event {
                time: record.time + chrono::Duration::microseconds(1),
                ..record.clone()
            },
            Event {
                instance: "gw2".to_owned(),
                ..record.clone()
            },
            Event {
                complete: Some(true),
                ..record.clone()
            },
        ];
        for variant in variants {
            assert_ne!(chained(&variant, 1, GENESIS_HASH).hash, base, "{variant:?}");
        }
    }

    /// The canonical encoding of existing logs never changes: these hashes
    /// were computed before the event's fields moved into one column table,
    /// and an access event and its completion must still hash to them.
    #[test]
    fn canonical_hash_is_pinned() {
        let record = sample("pinned").sealed("gw-1", Some(b"0123456789abcdef"));
        let access = chained(&record, 41, GENESIS_HASH).hash;
        assert_eq!(
            access,
            "b358e871fa87835c277d0a88a8fa3e11391b2a43088b3e01d47181d676a0aac1"
        );
        let outcome = Outcome {
            status: 200,
            rows: Some(7),
            bytes: Some(2048),
            duration_ms: 15.5,
            complete: false,
        };
        let completion = Event {
            time: record.time + chrono::Duration::seconds(1),
            ..record.completion(41, outcome, "gw-2")
        };
        assert_eq!(
            chained(&completion, 42, &access).hash,
            "2edeb81fedb2dda8572df153d73846cab30b6a31ae137fb214a18e1cce212696"
        );
    }

    /// An event without `changes` hashes as version 1 (the pinned hash
    /// above, untouched by the column); with `changes` as version 2, which
    /// covers the column: changing it changes the hash.
    #[test]
    fn changes_use_the_version_2_encoding() {
        let record = sample("pinned").sealed("gw-1", Some(b"0123456789abcdef"));
        let v1 = chained(&record, 41, GENESIS_HASH);
        assert!(v1.canonical().starts_with(b"passerelle-audit-v1"));
        let changed = Event {
            changes: Some(
                r#"{"fields":[{"field":"access","old":"internal","new":"open"}]}"#.into(),
            ),
            ..record.clone()
        };
        let v2 = chained(&changed, 41, GENESIS_HASH);
        let canonical = v2.canonical();
        assert!(canonical.starts_with(b"passerelle-audit-v2"));
        // The v2 encoding is the v1 columns, then the `changes` column.
        let v1_columns = &v1.canonical()[b"passerelle-audit-v1".len()..];
        assert_eq!(
            &canonical[b"passerelle-audit-v2".len()..][..v1_columns.len()],
            v1_columns
        );
        assert_ne!(v1.hash, v2.hash);
        let other = Event {
            changes: Some(r#"{"fields":[]}"#.into()),
            ..record
        };
        assert_ne!(chained(&other, 41, GENESIS_HASH).hash, v2.hash);
    }

    /// Anonymous callers have no subject; hashed IPs are keyed and stable.
    #[test]
    fn normalises_subject_and_ip() {
        let mut anonymous = sample("r1");
        anonymous.auth_method = AuthMethod::Anonymous;
        assert_eq!(anonymous.sealed("gw", None).subject, None);
        let hashed = sample("r1").sealed("gw", Some(b"key")).ip.unwrap();
        assert!(hashed.starts_with("hmac-sha256:") && !hashed.contains("203.0.113.7"));
        assert_eq!(sample("r2").sealed("gw", Some(b"key")).ip.unwrap(), hashed);
        assert_ne!(
            sample("r2").sealed("gw", Some(b"other")).ip.unwrap(),
            hashed
        );
    }

    /// Text fields are stored escaped: a NUL or a right-to-left override is
    /// written `\u{…}`, visible text (accents included) is kept.
    #[test]
    fn escapes_hidden_characters_in_every_text_field() {
        let mut event = sample("r1");
        event.dataset = Some("a\0b".to_owned());
        event.user_agent = Some("navigateur (été) \u{202e}".to_owned());
        event.subject = Some("zoë\u{200b}".to_owned());
        event.roles = vec!["x\u{7}".to_owned()];
        event.purpose = Some("suivi précarité\r\n".to_owned());
        event.rule = Some("nul\0".to_owned());
        let record = event.sealed("gw\0", None);
        assert_eq!(record.dataset.as_deref(), Some("a\\u{0}b"));
        assert_eq!(
            record.user_agent.as_deref(),
            Some("navigateur (été) \\u{202e}")
        );
        assert_eq!(record.subject.as_deref(), Some("zoë\\u{200b}"));
        assert_eq!(record.roles, vec!["x\\u{7}".to_owned()]);
        assert_eq!(
            record.purpose.as_deref(),
            Some("suivi précarité\\u{d}\\u{a}")
        );
        assert_eq!(record.rule.as_deref(), Some("nul\\u{0}"));
        assert_eq!(record.instance, "gw\\u{0}");
    }

    /// Times are RFC 3339 in UTC with microseconds.
    #[test]
    fn formats_time_with_microseconds() {
        let record = sample("r1").sealed("gw", None);
        assert_eq!(
            format_time(record.time.timestamp_micros()),
            "2026-11-29T10:00:00.123456Z"
        );
    }

    /// Enums are stored and listed under the names the log always used.
    #[test]
    fn enums_keep_their_names() {
        let names = |values: &[&str]| values.join(",");
        let action: Vec<&str> = Action::ALL.iter().map(|action| action.as_str()).collect();
        assert_eq!(
            names(&action),
            "request,read,export,aggregate,metadata,audit:read,admin,token,sign-in,sign-out,inventory:read,publish,manage,classify,history"
        );
        for policy in crate::policy::Action::ALL {
            assert_eq!(Action::from(policy).as_str(), policy.as_str());
        }
        assert_eq!(
            serde_json::to_value(AuthMethod::ClientCredentials).unwrap(),
            "client_credentials"
        );
        assert_eq!(serde_json::to_value(AuthMethod::Local).unwrap(), "local");
        assert_eq!(
            serde_json::to_value(Action::AuditRead).unwrap(),
            "audit:read"
        );
        assert_eq!(serde_json::to_value(Decision::Deny).unwrap(), "deny");
        assert_eq!(Decision::parse("allow"), Some(Decision::Allow));
        assert_eq!(Decision::parse("Allow"), None);
    }
}

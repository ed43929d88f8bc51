//! Audit events: what the HTTP layer hands in (`NewEvent`), what is stored
//! and listed (`StoredEvent`), and the hash chain that links them.
//!
//! # Canonical encoding (version 1)
//! `hash = SHA-256(prev_hash || encoding)` where `prev_hash` is the previous
//! event's hash as 32 raw bytes (32 zero bytes before the first event) and
//! `encoding` is the ASCII tag `passerelle-audit-v1` followed by every field
//! below, in this order, each as a 4-byte big-endian length and its UTF-8
//! bytes; an absent value is the length `0xFFFF_FFFF` with no bytes.
//! Integers are written in decimal, `duration_ms` as the 16 lower-case hex
//! digits of its IEEE-754 bits, booleans as `1` / `0`, `roles` as a JSON array.
//!
//! `seq, kind, refers_to, time_us, request_id, subject, org, roles,
//! auth_method, client_id, token_id, ip, user_agent, method, path, query,
//! dataset, action, decision, rule, view, status, rows, bytes, duration_ms,
//! complete, purpose, instance`

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::text;

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

/// One request, as the HTTP layer describes it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub time: DateTime<Utc>,
    pub request_id: String,
    /// Stored as null when `auth_method` is `anonymous` or the subject is empty.
    pub subject: String,
    pub org: Option<String>,
    pub roles: Vec<String>,
    pub auth_method: String,
    pub client_id: Option<String>,
    pub token_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub path: String,
    /// The raw query string; secret parameters are redacted before storage.
    pub query: Option<String>,
    pub dataset: Option<String>,
    pub action: String,
    /// `allow` or `deny`.
    pub decision: String,
    pub rule: Option<String>,
    pub view: Option<String>,
    pub status: u16,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub duration_ms: f64,
    pub purpose: Option<String>,
}

/// Proof that an event was committed; hand it to `AuditLog::complete` when a
/// streamed export ends.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The committed event's sequence number.
    pub sequence: i64,
    pub(crate) event: Box<EventRecord>,
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

/// The kind of an event: a request, or the completion of a streamed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Access,
    Completion,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Access => "access",
            EventKind::Completion => "completion",
        }
    }

    pub(crate) fn parse(text: &str) -> EventKind {
        if text == "completion" {
            EventKind::Completion
        } else {
            EventKind::Access
        }
    }
}

/// An event's content before it gets a place in the chain (all fields
/// normalised: subject nulled for anonymous, query redacted, IP hashed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRecord {
    pub kind: EventKind,
    pub refers_to: Option<i64>,
    pub time_us: i64,
    pub request_id: String,
    pub subject: Option<String>,
    pub org: Option<String>,
    pub roles: Vec<String>,
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
    pub view: Option<String>,
    pub status: i64,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub duration_ms: f64,
    pub complete: Option<bool>,
    pub purpose: Option<String>,
    pub instance: String,
}

impl EventRecord {
    /// Normalises a new event. `ip_hash_key`: hash the IP with this HMAC key.
    ///
    /// Every text field is escaped here, once, before the event is hashed
    /// and stored (see `domain::text`): a NUL byte, which PostgreSQL cannot
    /// store, or a bidirectional override is recorded as `\u{…}`, never
    /// dropped, and can never make a batch of events fail.
    pub fn from_new(event: NewEvent, instance: &str, ip_hash_key: Option<&[u8]>) -> EventRecord {
        let clean = text::escape_owned;
        let clean_optional = |value: Option<String>| value.map(text::escape_owned);
        let subject = if event.auth_method == "anonymous" || event.subject.is_empty() {
            None
        } else {
            Some(clean(event.subject))
        };
        let ip = match (event.ip, ip_hash_key) {
            (Some(ip), Some(key)) => Some(format!(
                "hmac-sha256:{}",
                hex::encode(hmac_sha256(key, ip.as_bytes()))
            )),
            (ip, _) => clean_optional(ip),
        };
        EventRecord {
            kind: EventKind::Access,
            refers_to: None,
            time_us: event.time.timestamp_micros(),
            request_id: clean(event.request_id),
            subject,
            org: clean_optional(event.org),
            roles: event.roles.into_iter().map(clean).collect(),
            auth_method: clean(event.auth_method),
            client_id: clean_optional(event.client_id),
            token_id: clean_optional(event.token_id),
            ip,
            user_agent: clean_optional(event.user_agent),
            method: clean(event.method),
            path: clean(event.path),
            query: event.query.map(|query| clean(redact_query(&query))),
            dataset: clean_optional(event.dataset),
            action: clean(event.action),
            decision: clean(event.decision),
            rule: clean_optional(event.rule),
            view: clean_optional(event.view),
            status: i64::from(event.status),
            rows: event.rows,
            bytes: event.bytes,
            duration_ms: event.duration_ms,
            complete: None,
            purpose: clean_optional(event.purpose),
            instance: clean(instance.to_owned()),
        }
    }

    /// The completion of the streamed request `original` (committed as `sequence`).
    pub fn completion(
        original: &EventRecord,
        sequence: i64,
        outcome: Outcome,
        instance: &str,
    ) -> EventRecord {
        EventRecord {
            kind: EventKind::Completion,
            refers_to: Some(sequence),
            time_us: Utc::now().timestamp_micros(),
            status: i64::from(outcome.status),
            rows: outcome.rows,
            bytes: outcome.bytes,
            duration_ms: outcome.duration_ms,
            complete: Some(outcome.complete),
            instance: text::escape_owned(instance.to_owned()),
            ..original.clone()
        }
    }

    /// The canonical encoding (see the module documentation) at `seq`.
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"passerelle-audit-v1");
        let roles = serde_json::to_string(&self.roles).unwrap_or_default();
        let seq = seq.to_string();
        let refers_to = self.refers_to.map(|value| value.to_string());
        let time_us = self.time_us.to_string();
        let status = self.status.to_string();
        let rows = self.rows.map(|value| value.to_string());
        let bytes = self.bytes.map(|value| value.to_string());
        let duration = format!("{:016x}", self.duration_ms.to_bits());
        let fields: [Option<&str>; 28] = [
            Some(&seq),
            Some(self.kind.as_str()),
            refers_to.as_deref(),
            Some(&time_us),
            Some(&self.request_id),
            self.subject.as_deref(),
            self.org.as_deref(),
            Some(&roles),
            Some(&self.auth_method),
            self.client_id.as_deref(),
            self.token_id.as_deref(),
            self.ip.as_deref(),
            self.user_agent.as_deref(),
            Some(&self.method),
            Some(&self.path),
            self.query.as_deref(),
            self.dataset.as_deref(),
            Some(&self.action),
            Some(&self.decision),
            self.rule.as_deref(),
            self.view.as_deref(),
            Some(&status),
            rows.as_deref(),
            bytes.as_deref(),
            Some(&duration),
            self.complete.map(|value| if value { "1" } else { "0" }),
            self.purpose.as_deref(),
            Some(&self.instance),
        ];
        for field in fields {
            match field {
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

    /// The chain hash of this event at `seq` after `prev_hash` (hex).
    pub fn chain_hash(&self, seq: i64, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(hash_bytes(prev_hash));
        hasher.update(self.canonical(seq));
        hex::encode(hasher.finalize())
    }
}

/// A hex hash as raw bytes; anything malformed hashes as its text so that
/// a tampered `prev_hash` still gives a (different) result.
fn hash_bytes(hash: &str) -> Vec<u8> {
    match hex::decode(hash) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => hash.as_bytes().to_vec(),
    }
}

/// An event as stored, listed and exported.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Position in the chain (1, 2, 3…).
    pub seq: i64,
    pub kind: EventKind,
    /// For a completion: the `seq` of the request it completes.
    pub refers_to: Option<i64>,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    pub request_id: String,
    /// Null when anonymous.
    pub subject: Option<String>,
    pub org: Option<String>,
    pub roles: Vec<String>,
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
    pub view: Option<String>,
    pub status: i64,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub duration_ms: f64,
    /// For a completion: whether the export ended normally.
    pub complete: Option<bool>,
    pub purpose: Option<String>,
    /// The gateway instance that wrote the event.
    pub instance: String,
    pub prev_hash: String,
    pub hash: String,
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

    pub(crate) fn sample(request_id: &str) -> NewEvent {
        NewEvent {
            time: Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
            request_id: request_id.to_owned(),
            subject: "alice".to_owned(),
            org: Some("ademe".to_owned()),
            roles: vec!["partner".to_owned()],
            auth_method: "jwt".to_owned(),
            client_id: None,
            token_id: Some("t1".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("curl/8".to_owned()),
            method: "GET".to_owned(),
            path: "/api/v1/data/energy".to_owned(),
            query: Some("select=a&api_key=s3cret".to_owned()),
            dataset: Some("energy".to_owned()),
            action: "read".to_owned(),
            decision: "allow".to_owned(),
            rule: Some("p, partner, partners, read".to_owned()),
            view: None,
            status: 200,
            rows: Some(10),
            bytes: None,
            duration_ms: 1.25,
            purpose: Some("study".to_owned()),
        }
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
        let record = EventRecord::from_new(sample("r1"), "gw", None);
        assert_eq!(record.query.as_deref(), Some("select=a&api_key=REDACTED"));
        let base = record.chain_hash(1, GENESIS_HASH);
        assert_eq!(base, record.chain_hash(1, GENESIS_HASH), "deterministic");
        assert_ne!(base, record.chain_hash(2, GENESIS_HASH), "sequence");
        let other_prev = "11".repeat(32);
        assert_ne!(base, record.chain_hash(1, &other_prev), "previous hash");
        let variants: Vec<EventRecord> = vec![
            EventRecord {
                rows: Some(11),
                ..record.clone()
            },
            EventRecord {
                duration_ms: 1.2500001,
                ..record.clone()
            },
            EventRecord {
                org: None,
                ..record.clone()
            },
            EventRecord {
                org: Some(String::new()),
                ..record.clone()
            },
            EventRecord {
                roles: vec![],
                ..record.clone()
            },
            EventRecord {
                time_us: record.time_us + 1,
                ..record.clone()
            },
            EventRecord {
                instance: "gw2".to_owned(),
                ..record.clone()
            },
            EventRecord {
                complete: Some(true),
                ..record.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.chain_hash(1, GENESIS_HASH), base, "{variant:?}");
        }
    }

    /// Anonymous callers have no subject; hashed IPs are keyed and stable.
    #[test]
    fn normalises_subject_and_ip() {
        let mut anonymous = sample("r1");
        anonymous.auth_method = "anonymous".to_owned();
        assert_eq!(EventRecord::from_new(anonymous, "gw", None).subject, None);
        let hashed = EventRecord::from_new(sample("r1"), "gw", Some(b"key"))
            .ip
            .unwrap();
        assert!(hashed.starts_with("hmac-sha256:") && !hashed.contains("203.0.113.7"));
        assert_eq!(
            EventRecord::from_new(sample("r2"), "gw", Some(b"key"))
                .ip
                .unwrap(),
            hashed
        );
        assert_ne!(
            EventRecord::from_new(sample("r2"), "gw", Some(b"other"))
                .ip
                .unwrap(),
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
        event.subject = "zoë\u{200b}".to_owned();
        event.roles = vec!["x\u{7}".to_owned()];
        event.purpose = Some("suivi précarité\r\n".to_owned());
        event.rule = Some("nul\0".to_owned());
        let record = EventRecord::from_new(event, "gw\0", None);
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

    /// The canonical encoding of existing logs never changes: these hashes
    /// were computed before the event's fields moved into one column table,
    /// and an access event and its completion must still hash to them.
    #[test]
    fn canonical_hash_is_pinned() {
        let record = EventRecord::from_new(sample("pinned"), "gw-1", Some(b"0123456789abcdef"));
        let access = record.chain_hash(41, GENESIS_HASH);
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
        let completion = EventRecord {
            time_us: record.time_us + 1_000_000,
            ..EventRecord::completion(&record, 41, outcome, "gw-2")
        };
        assert_eq!(
            completion.chain_hash(42, &access),
            "2edeb81fedb2dda8572df153d73846cab30b6a31ae137fb214a18e1cce212696"
        );
    }

    /// Times are RFC 3339 in UTC with microseconds.
    #[test]
    fn formats_time_with_microseconds() {
        let record = EventRecord::from_new(sample("r1"), "gw", None);
        assert_eq!(format_time(record.time_us), "2026-11-29T10:00:00.123456Z");
    }
}

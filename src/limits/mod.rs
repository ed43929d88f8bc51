//! Rate limits and daily quotas: how many requests a caller may make, and
//! how many rows or bytes of data it may be sent in a UTC day.
//!
//! A caller is counted under one key: its API key, its partner client (the
//! client-credentials tokens), its subject (other tokens), or, without
//! credentials, the client address the edge resolved through
//! `server.trusted_proxies` (an IPv6 client by its /64, which one host
//! usually holds whole). Daily quotas of partners are counted per client,
//! whichever of its keys or tokens it uses: the agreement is the client's.
//!
//! The limits are GCRA (a steady rate with a burst), in memory by default
//! (governor) or in Redis when `limits.redis_url` is set, so that every
//! instance shares them. When Redis does not answer, each instance falls back
//! to its own memory: the gateway keeps serving and keeps limiting, each
//! instance up to the full limit, until Redis is back. Refusing everybody
//! because a counter is away would turn a Redis outage into an outage of the
//! gateway, and no data is ever served on the strength of a limit (access is
//! decided elsewhere, fail-closed).

mod memory;
pub mod policy;
mod shared;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use self::memory::MemoryLimits;
use self::policy::{CallerClass, DAY_SECONDS};
use self::shared::SharedLimits;
use crate::auth::{AuthMethod, Caller, ClientRegistry};
use crate::store::Store;

pub use self::policy::{LimitSet, LimitSettings, Policy, Rate};

/// The answer of a rate limiter for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCheck {
    pub allowed: bool,
    /// Requests still allowed at once after this one.
    pub remaining: u64,
    /// When refused: how long until one request is allowed again.
    pub retry_after: Duration,
    /// How long until the full burst is available again.
    pub reset: Duration,
}

/// Rows and bytes sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub rows: u64,
    pub bytes: u64,
}

/// One daily quota as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub unit: QuotaUnit,
    pub limit: u64,
    pub used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaUnit {
    Rows,
    Bytes,
}

impl QuotaUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaUnit::Rows => "rows",
            QuotaUnit::Bytes => "bytes",
        }
    }
}

/// What the limits say about one request.
#[derive(Debug, Clone)]
pub struct Admission {
    pub policy: Policy,
    /// The rate check, when the caller has a rate limit.
    pub rate: Option<RateCheck>,
    /// The daily quotas the caller has.
    pub quotas: Vec<QuotaState>,
    /// Seconds until the quotas start again (next UTC midnight).
    pub quota_reset: u64,
    /// What the request is charged to, when the caller has a daily quota.
    pub charge: Option<QuotaCharge>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The name of the policy that fired (`anonymous`, `partners-daily-rows`…).
    pub policy: String,
    /// For the audit and the problem: the limit in words.
    pub rule: String,
    /// Seconds to wait (at least 1).
    pub retry_after: u64,
}

impl Admission {
    /// The limit that refuses this request, if any: a spent quota first
    /// (no request is taken from the rate then), else the rate.
    pub fn refusal(&self) -> Option<Refusal> {
        if let Some(quota) = self.quotas.iter().find(|quota| quota.used >= quota.limit) {
            let unit = quota.unit.as_str();
            return Some(Refusal {
                policy: format!("{}-daily-{unit}", self.policy.name),
                rule: format!(
                    "limits.{}: daily quota of {} {unit} used ({} sent today)",
                    self.policy.name, quota.limit, quota.used
                ),
                retry_after: self.quota_reset.max(1),
            });
        }
        let (rate, check) = self.policy.rate.zip(self.rate)?;
        if check.allowed {
            return None;
        }
        Some(Refusal {
            policy: self.policy.name.to_owned(),
            rule: format!(
                "limits.{}: {} requests per {} s (burst {})",
                self.policy.name, rate.requests, rate.per_seconds, rate.burst
            ),
            retry_after: whole_seconds(check.retry_after).max(1),
        })
    }
}

/// Charges what a request sent to its caller's daily quota.
#[derive(Clone)]
pub struct QuotaCharge {
    limits: Limits,
    key: Arc<str>,
    day: i64,
}

impl std::fmt::Debug for QuotaCharge {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "QuotaCharge({})", self.key)
    }
}

impl QuotaCharge {
    /// Adds `rows` and `bytes` to today's usage (the day the request began).
    pub async fn spend(&self, rows: u64, bytes: u64) {
        let spent = Usage { rows, bytes };
        if spent == Usage::default() {
            return;
        }
        let inner = &self.limits.inner;
        if let Some(shared) = &inner.shared
            && shared.spend(self.day, &self.key, spent).await.is_ok()
        {
            return;
        }
        inner.memory.spend(self.day, &self.key, spent);
    }
}

/// The limits of every request. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    settings: LimitSettings,
    memory: Arc<MemoryLimits>,
    shared: Option<SharedLimits>,
    clients: ClientRegistry,
    /// Clients' own limits, by client id (`None`: none of their own).
    client_limits: Cache<String, Option<LimitSet>>,
}

impl Limits {
    /// The limits of `settings`; clients' own limits are read from `store`.
    pub fn new(settings: &LimitSettings, store: Store) -> anyhow::Result<Limits> {
        let shared = match settings.redis_url.as_deref() {
            Some(url) if settings.enabled => Some(SharedLimits::new(settings, url)?),
            _ => None,
        };
        Ok(Limits {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                memory: MemoryLimits::start(),
                shared,
                clients: ClientRegistry::new(store),
                client_limits: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(
                        settings.client_limits_cache_seconds.max(1),
                    ))
                    .build(),
            }),
        })
    }

    /// Whether limits apply at all.
    pub fn enabled(&self) -> bool {
        self.inner.settings.enabled
    }

    /// Counts one request of `caller` (from `ip`) and says whether it may
    /// proceed. `None` when nothing limits the caller.
    pub async fn admit(&self, caller: &Caller, ip: Option<IpAddr>) -> Option<Admission> {
        let inner = &self.inner;
        if !inner.settings.enabled {
            return None;
        }
        let class = class_of(caller);
        let own = match &caller.client_id {
            Some(client_id) => self.client_limits(client_id).await,
            None => None,
        };
        let policy = inner.settings.policy(class, own);
        if policy.is_unlimited() {
            return None;
        }
        let day = today();
        let quota_key = match &caller.client_id {
            Some(client_id) => format!("client:{client_id}"),
            None => rate_key(caller, ip),
        };
        let mut quotas = Vec::new();
        if policy.daily_rows.is_some() || policy.daily_bytes.is_some() {
            let used = self.usage(day, &quota_key).await;
            quotas.extend(policy.daily_rows.map(|limit| QuotaState {
                unit: QuotaUnit::Rows,
                limit,
                used: used.rows,
            }));
            quotas.extend(policy.daily_bytes.map(|limit| QuotaState {
                unit: QuotaUnit::Bytes,
                limit,
                used: used.bytes,
            }));
        }
        let charge = (!quotas.is_empty()).then(|| QuotaCharge {
            limits: self.clone(),
            key: Arc::from(quota_key),
            day,
        });
        let spent = quotas.iter().any(|quota| quota.used >= quota.limit);
        let rate = match policy.rate {
            // A request refused for its quota takes nothing from the rate.
            Some(rate) if !spent => Some(self.check_rate(&rate_key(caller, ip), rate).await),
            _ => None,
        };
        Some(Admission {
            policy,
            rate,
            quotas,
            quota_reset: seconds_to_midnight(),
            charge,
        })
    }

    async fn check_rate(&self, key: &str, rate: Rate) -> RateCheck {
        let inner = &self.inner;
        if let Some(shared) = &inner.shared
            && let Ok(check) = shared.check(key, rate).await
        {
            return check;
        }
        inner.memory.check(key, rate)
    }

    async fn usage(&self, day: i64, key: &str) -> Usage {
        let inner = &self.inner;
        if let Some(shared) = &inner.shared
            && let Ok(usage) = shared.usage(day, key).await
        {
            return usage;
        }
        inner.memory.usage(day, key)
    }

    /// A client's own limits changed: they are read again at its next request.
    pub async fn forget_client(&self, client_id: &str) {
        self.inner.client_limits.invalidate(client_id).await;
    }

    /// Changes may have been missed: every client's limits are read again.
    pub fn forget_all_clients(&self) {
        self.inner.client_limits.invalidate_all();
    }

    /// A client's own limits. When the store cannot tell, the class's
    /// limits apply (and the store is asked again at the next request).
    async fn client_limits(&self, client_id: &str) -> Option<LimitSet> {
        let inner = &self.inner;
        if let Some(cached) = inner.client_limits.get(client_id).await {
            return cached;
        }
        match inner.clients.limits(client_id).await {
            Ok(limits) => {
                inner
                    .client_limits
                    .insert(client_id.to_owned(), limits)
                    .await;
                limits
            }
            Err(error) => {
                tracing::warn!(%error, client_id, "cannot read a client's limits: its class's apply");
                None
            }
        }
    }
}

/// Which limits apply to a caller.
pub fn class_of(caller: &Caller) -> CallerClass {
    if caller.is_anonymous() {
        CallerClass::Anonymous
    } else if caller.client_id.is_some() {
        CallerClass::Partners
    } else {
        CallerClass::Staff
    }
}

/// The key a caller's requests are counted under.
pub fn rate_key(caller: &Caller, ip: Option<IpAddr>) -> String {
    match (caller.auth_method, &caller.client_id, &caller.token_id) {
        (AuthMethod::Anonymous, _, _) => match ip {
            Some(IpAddr::V6(address)) if address.to_ipv4_mapped().is_none() => {
                let segments = address.segments();
                format!(
                    "ip:{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
            Some(IpAddr::V6(address)) => format!("ip:{}", address.to_canonical()),
            Some(address) => format!("ip:{address}"),
            None => "ip:unknown".to_owned(),
        },
        (AuthMethod::ApiKey, _, Some(key_id)) => format!("key:{key_id}"),
        (_, Some(client_id), _) => format!("client:{client_id}"),
        _ => {
            let issuer = caller
                .claims
                .get("iss")
                .and_then(|issuer| issuer.as_str())
                .unwrap_or("");
            format!("sub:{issuer}:{}", caller.subject)
        }
    }
}

/// Days since the Unix epoch, in UTC.
pub(crate) fn today() -> i64 {
    chrono::Utc::now()
        .timestamp()
        .div_euclid(DAY_SECONDS as i64)
}

fn seconds_to_midnight() -> u64 {
    let now = chrono::Utc::now().timestamp();
    let next = (now.div_euclid(DAY_SECONDS as i64) + 1) * DAY_SECONDS as i64;
    u64::try_from(next - now).unwrap_or(DAY_SECONDS)
}

/// Whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(method: AuthMethod, client: Option<&str>, token: Option<&str>) -> Caller {
        let mut caller = Caller::anonymous();
        caller.auth_method = method;
        caller.subject = "alice".to_owned();
        caller.client_id = client.map(str::to_owned);
        caller.token_id = token.map(str::to_owned);
        caller
    }

    /// Each kind of caller has its own key; anonymous IPv6 callers by /64.
    #[test]
    fn keys_per_caller() {
        let anonymous = Caller::anonymous();
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(rate_key(&anonymous, ip("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(
            rate_key(&anonymous, ip("2001:db8:1:2:3:4:5:6")),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            rate_key(&anonymous, ip("::ffff:203.0.113.7")),
            "ip:203.0.113.7"
        );
        let key = caller(AuthMethod::ApiKey, Some("client_a"), Some("k1"));
        assert_eq!(rate_key(&key, ip("203.0.113.7")), "key:k1");
        let token = caller(AuthMethod::GatewayToken, Some("client_a"), Some("jti"));
        assert_eq!(rate_key(&token, None), "client:client_a");
        let mut staff = caller(AuthMethod::ExternalJwt, None, Some("jti"));
        staff.claims.insert("iss".into(), "https://sso".into());
        assert_eq!(rate_key(&staff, None), "sub:https://sso:alice");
        assert_eq!(class_of(&staff), CallerClass::Staff);
        assert_eq!(class_of(&key), CallerClass::Partners);
        assert_eq!(class_of(&anonymous), CallerClass::Anonymous);
    }

    /// A spent quota refuses before the rate is looked at.
    #[test]
    fn spent_quota_refuses_until_midnight() {
        let admission = Admission {
            policy: LimitSettings::default().policy(CallerClass::Partners, None),
            rate: None,
            quotas: vec![QuotaState {
                unit: QuotaUnit::Rows,
                limit: 10,
                used: 12,
            }],
            quota_reset: 3600,
            charge: None,
        };
        let refusal = admission.refusal().expect("refused");
        assert_eq!(refusal.policy, "partners-daily-rows");
        assert_eq!(refusal.retry_after, 3600);
        assert!(refusal.rule.contains("10 rows"), "{}", refusal.rule);
    }
}

//! The limits as configured (`[limits]`) and as they apply to one caller:
//! a request rate with a burst, and a daily quota of rows or bytes sent.
//! Each value of a [`LimitSet`] is optional: what is not set comes from the
//! level below (built-in default → `[limits.<class>]` → the client's own
//! limits in the store). `0` means "no limit" for that value.

use serde::{Deserialize, Serialize};

/// Seconds in the window of a daily quota.
pub const DAY_SECONDS: u64 = 86_400;

/// `[limits]`: request rates and daily quotas per kind of caller, kept in
/// memory or shared by every instance through Redis.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Off: no limit, no `RateLimit` headers.
    pub enabled: bool,
    /// `redis://host:6379/0`: limits shared by every instance. Unset: each
    /// instance counts in memory.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key the limits write.
    pub redis_key_prefix: String,
    /// Longest wait for Redis (connection or answer), in milliseconds.
    pub redis_timeout_ms: u64,
    /// After Redis failed, how long each instance limits on its own, in
    /// memory, before it asks Redis again.
    pub redis_retry_seconds: u64,
    /// How long a client's own limits (`passerelle clients set-limit`) are
    /// reused before they are read from the store again.
    pub client_limits_cache_seconds: u64,
    /// Callers without credentials, counted per client address.
    pub anonymous: LimitSet,
    /// Partner clients (client-credentials tokens and API keys).
    pub partners: LimitSet,
    /// Everyone else with a verified identity (the authority's single
    /// sign-on, development tokens).
    pub staff: LimitSet,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            enabled: true,
            redis_url: None,
            redis_key_prefix: "passerelle:".to_owned(),
            redis_timeout_ms: 100,
            redis_retry_seconds: 5,
            client_limits_cache_seconds: 10,
            anonymous: LimitSet::default(),
            partners: LimitSet::default(),
            staff: LimitSet::default(),
        }
    }
}

/// Limit values, each optional (unset: the level below decides; `0`: none).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSet {
    /// Requests per `per_seconds` in the long run (`0`: no rate limit).
    pub requests: Option<u64>,
    /// The period of `requests`, in seconds.
    pub per_seconds: Option<u64>,
    /// Requests that may arrive at once (at least 1).
    pub burst: Option<u64>,
    /// Rows of data sent per UTC day (`0`: no quota).
    pub daily_rows: Option<u64>,
    /// Bytes of data sent per UTC day (`0`: no quota).
    pub daily_bytes: Option<u64>,
}

impl LimitSet {
    /// `self`, with what it leaves unset taken from `base`.
    pub fn over(self, base: LimitSet) -> LimitSet {
        LimitSet {
            requests: self.requests.or(base.requests),
            per_seconds: self.per_seconds.or(base.per_seconds),
            burst: self.burst.or(base.burst),
            daily_rows: self.daily_rows.or(base.daily_rows),
            daily_bytes: self.daily_bytes.or(base.daily_bytes),
        }
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }
}

/// The kinds of callers limits are set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerClass {
    Anonymous,
    Partners,
    Staff,
}

impl CallerClass {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerClass::Anonymous => "anonymous",
            CallerClass::Partners => "partners",
            CallerClass::Staff => "staff",
        }
    }

    /// The built-in limits: anonymous 50 requests/s (burst 100), partners
    /// 200 requests/s (burst 400) and 10 million rows a day, staff none.
    fn defaults(self) -> LimitSet {
        match self {
            CallerClass::Anonymous => LimitSet {
                requests: Some(50),
                per_seconds: Some(1),
                burst: Some(100),
                daily_rows: Some(0),
                daily_bytes: Some(0),
            },
            CallerClass::Partners => LimitSet {
                requests: Some(200),
                per_seconds: Some(1),
                burst: Some(400),
                daily_rows: Some(10_000_000),
                daily_bytes: Some(0),
            },
            CallerClass::Staff => LimitSet {
                requests: Some(0),
                per_seconds: Some(1),
                burst: None,
                daily_rows: Some(0),
                daily_bytes: Some(0),
            },
        }
    }
}

/// A request rate: `requests` per `per_seconds` in the long run, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub requests: u64,
    pub per_seconds: u64,
    pub burst: u64,
}

impl Rate {
    /// Time between two requests in the long run, in microseconds (at least 1).
    pub fn interval_micros(&self) -> u64 {
        (self.per_seconds.saturating_mul(1_000_000) / self.requests).max(1)
    }

    /// The window a full burst takes to come back, in whole seconds (at
    /// least 1): `RateLimit-Policy` advertises `burst` requests per it.
    pub fn window_seconds(&self) -> u64 {
        self.burst
            .saturating_mul(self.interval_micros())
            .div_ceil(1_000_000)
            .max(1)
    }
}

/// The limits that apply to one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Named in the headers, the audit and the metrics: the caller's class,
    /// or `client` when the client has limits of its own.
    pub name: &'static str,
    pub rate: Option<Rate>,
    pub daily_rows: Option<u64>,
    pub daily_bytes: Option<u64>,
}

impl Policy {
    /// True when nothing limits the caller.
    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none() && self.daily_rows.is_none() && self.daily_bytes.is_none()
    }
}

impl LimitSettings {
    /// The limits of a class of callers, with a client's own limits over them.
    pub fn policy(&self, class: CallerClass, client: Option<LimitSet>) -> Policy {
        let configured = match class {
            CallerClass::Anonymous => self.anonymous,
            CallerClass::Partners => self.partners,
            CallerClass::Staff => self.staff,
        };
        let own = client.filter(|limits| !limits.is_empty());
        let name = if own.is_some() {
            "client"
        } else {
            class.as_str()
        };
        let set = own
            .unwrap_or_default()
            .over(configured)
            .over(class.defaults());
        let requests = set.requests.unwrap_or(0);
        let rate = (requests > 0).then(|| Rate {
            requests,
            per_seconds: set.per_seconds.unwrap_or(1).max(1),
            burst: set.burst.unwrap_or(requests).max(1),
        });
        Policy {
            name,
            rate,
            daily_rows: set.daily_rows.filter(|&rows| rows > 0),
            daily_bytes: set.daily_bytes.filter(|&bytes| bytes > 0),
        }
    }

    /// Refuses values that cannot work.
    pub fn check(&self) -> Result<(), String> {
        for (class, set) in [
            ("anonymous", self.anonymous),
            ("partners", self.partners),
            ("staff", self.staff),
        ] {
            if set.per_seconds == Some(0) {
                return Err(format!("limits.{class}.per_seconds must be at least 1"));
            }
            if set.burst == Some(0) {
                return Err(format!("limits.{class}.burst must be at least 1"));
            }
        }
        if let Some(url) = &self.redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return Err("limits.redis_url is not a redis:// URL".to_owned());
        }
        if self.redis_timeout_ms == 0 {
            return Err("limits.redis_timeout_ms must be at least 1".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in limits: anonymous 50/s with a burst, partners 200/s and
    /// a daily quota of rows, staff unlimited.
    #[test]
    fn built_in_defaults() {
        let settings = LimitSettings::default();
        let anonymous = settings.policy(CallerClass::Anonymous, None);
        assert_eq!(
            anonymous.rate,
            Some(Rate {
                requests: 50,
                per_seconds: 1,
                burst: 100
            })
        );
        assert_eq!(anonymous.daily_rows, None);
        let partners = settings.policy(CallerClass::Partners, None);
        assert_eq!(partners.rate.map(|rate| rate.requests), Some(200));
        assert_eq!(partners.daily_rows, Some(10_000_000));
        assert!(settings.policy(CallerClass::Staff, None).is_unlimited());
    }

    /// A client's own limits override the class's value by value; `0` lifts one.
    #[test]
    fn client_limits_override_value_by_value() {
        let mut settings = LimitSettings::default();
        settings.partners.burst = Some(10);
        let own = LimitSet {
            requests: Some(5),
            daily_rows: Some(0),
            daily_bytes: Some(1000),
            ..LimitSet::default()
        };
        let policy = settings.policy(CallerClass::Partners, Some(own));
        assert_eq!(policy.name, "client");
        assert_eq!(
            policy.rate,
            Some(Rate {
                requests: 5,
                per_seconds: 1,
                burst: 10
            })
        );
        assert_eq!(policy.daily_rows, None);
        assert_eq!(policy.daily_bytes, Some(1000));
        let empty = settings.policy(CallerClass::Partners, Some(LimitSet::default()));
        assert_eq!(empty.name, "partners", "an empty override is no override");
    }

    /// The advertised window holds a full burst at the long-run rate.
    #[test]
    fn window_holds_a_burst() {
        let rate = |requests, per_seconds, burst| Rate {
            requests,
            per_seconds,
            burst,
        };
        assert_eq!(rate(50, 1, 50).window_seconds(), 1);
        assert_eq!(rate(50, 1, 100).window_seconds(), 2);
        assert_eq!(rate(200, 1, 300).window_seconds(), 2);
        assert_eq!(rate(1, 3600, 3).window_seconds(), 10_800);
        assert_eq!(rate(1_000_000, 1, 1).window_seconds(), 1);
    }
}

//! Limits counted in this process: a GCRA per caller (governor) and the
//! rows and bytes each caller was sent today. Used alone when no Redis is
//! configured, and as the fallback while Redis does not answer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::policy::Rate;
use super::{RateCheck, Usage};

type Limiter = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// Rows and bytes sent, counted as they are charged.
type Counters = Arc<[AtomicU64; 2]>;

/// How often idle callers are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Per-caller rate limiters (one governor limiter per distinct rate, since
/// a client may have a rate of its own) and today's usage.
#[derive(Default)]
pub(super) struct MemoryLimits {
    limiters: Mutex<HashMap<Rate, Arc<Limiter>>>,
    /// `(day, key)` → rows and bytes sent.
    usage: Mutex<HashMap<(i64, String), Counters>>,
}

impl MemoryLimits {
    /// Limits in memory, with a task that forgets idle callers and past days.
    pub fn start() -> Arc<MemoryLimits> {
        let limits = Arc::new(MemoryLimits::default());
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&limits)));
        }
        limits
    }

    /// Takes one request from `key`'s allowance.
    pub fn check(&self, key: &str, rate: Rate) -> RateCheck {
        let limiter = self.limiter(rate);
        let interval = rate.interval_micros();
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = u64::from(state.remaining_burst_capacity());
                RateCheck {
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: Duration::from_micros(
                        rate.burst
                            .saturating_sub(remaining)
                            .saturating_mul(interval),
                    ),
                }
            }
            Err(not_until) => RateCheck {
                allowed: false,
                remaining: 0,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                reset: Duration::from_micros(rate.burst.saturating_mul(interval)),
            },
        }
    }

    /// Rows and bytes sent to `key` on `day`.
    pub fn usage(&self, day: i64, key: &str) -> Usage {
        let counters = self
            .usage
            .lock()
            .ok()
            .and_then(|usage| usage.get(&(day, key.to_owned())).cloned());
        counters.map_or(Usage::default(), |counters| Usage {
            rows: counters[0].load(Ordering::Relaxed),
            bytes: counters[1].load(Ordering::Relaxed),
        })
    }

    /// Adds what was sent to `key` on `day`.
    pub fn spend(&self, day: i64, key: &str, spent: Usage) {
        let Ok(mut usage) = self.usage.lock() else {
            return;
        };
        let counters = usage.entry((day, key.to_owned())).or_default();
        counters[0].fetch_add(spent.rows, Ordering::Relaxed);
        counters[1].fetch_add(spent.bytes, Ordering::Relaxed);
    }

    fn limiter(&self, rate: Rate) -> Arc<Limiter> {
        let mut limiters = match self.limiters.lock() {
            Ok(limiters) => limiters,
            Err(poisoned) => poisoned.into_inner(),
        };
        limiters
            .entry(rate)
            .or_insert_with(|| {
                Arc::new(DefaultKeyedRateLimiter::keyed(quota(rate)).with_middleware())
            })
            .clone()
    }
}

/// governor's quota for a rate: one request back every interval, `burst` at once.
fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(u32::try_from(rate.burst).unwrap_or(u32::MAX).max(1))
        .unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_micros(rate.interval_micros()))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

async fn sweep(limits: Weak<MemoryLimits>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        let limiters: Vec<_> = limits
            .limiters
            .lock()
            .map(|limiters| limiters.values().cloned().collect())
            .unwrap_or_default();
        for limiter in limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let today = super::today();
        if let Ok(mut usage) = limits.usage.lock() {
            usage.retain(|(day, _), _| *day >= today);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst passes, the next request waits about one interval, and
    /// callers do not share an allowance.
    #[test]
    fn limits_per_key() {
        let limits = MemoryLimits::default();
        let rate = Rate {
            requests: 1,
            per_seconds: 3600,
            burst: 3,
        };
        let remaining: Vec<u64> = (0..3)
            .map(|_| limits.check("ip:a", rate))
            .map(|check| {
                assert!(check.allowed);
                check.remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check("ip:a", rate);
        assert!(!refused.allowed);
        assert!(
            refused.retry_after > Duration::from_secs(3500),
            "{refused:?}"
        );
        assert!(limits.check("ip:b", rate).allowed);
    }

    /// Usage adds up per day and key.
    #[test]
    fn counts_usage() {
        let limits = MemoryLimits::default();
        limits.spend(10, "client:a", Usage { rows: 2, bytes: 50 });
        limits.spend(10, "client:a", Usage { rows: 3, bytes: 5 });
        assert_eq!(limits.usage(10, "client:a"), Usage { rows: 5, bytes: 55 });
        assert_eq!(limits.usage(11, "client:a"), Usage::default());
        assert_eq!(limits.usage(10, "client:b"), Usage::default());
    }
}

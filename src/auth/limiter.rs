//! Counts failed token requests per client id and per IP: past the limit
//! within the window, requests are answered 429 without checking the secret
//! (which also keeps argon2 from being used to load the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;

/// Failed attempts by key (`client:<id>`, `ip:<address>`).
pub(crate) struct FailedAttempts {
    windows: Cache<String, Arc<Window>>,
    limit: u32,
    window: Duration,
}

struct Window {
    started: Instant,
    failures: AtomicU32,
}

impl FailedAttempts {
    pub fn new(limit: u32, window: Duration) -> FailedAttempts {
        FailedAttempts {
            // An entry lives one window from its first failure.
            windows: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
            limit,
            window,
        }
    }

    /// Seconds to wait when any of `keys` is over the limit.
    pub async fn retry_after(&self, keys: &[String]) -> Option<u64> {
        let mut wait = None;
        for key in keys {
            if let Some(window) = self.windows.get(key).await
                && window.failures.load(Ordering::Relaxed) >= self.limit
            {
                let left = self.window.saturating_sub(window.started.elapsed());
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                wait = Some(wait.unwrap_or(0).max(seconds.max(1)));
            }
        }
        wait
    }

    /// Counts one failure against each of `keys`.
    pub async fn record_failure(&self, keys: &[String]) {
        for key in keys {
            let window = self
                .windows
                .get_with(key.clone(), async {
                    Arc::new(Window {
                        started: Instant::now(),
                        failures: AtomicU32::new(0),
                    })
                })
                .await;
            window.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit applies per key and lifts when the window ends.
    #[tokio::test]
    async fn limits_per_key_within_a_window() {
        let attempts = FailedAttempts::new(3, Duration::from_millis(500));
        let client = vec!["client:a".to_owned()];
        for _ in 0..2 {
            attempts.record_failure(&client).await;
        }
        assert_eq!(attempts.retry_after(&client).await, None);
        attempts.record_failure(&client).await;
        assert_eq!(attempts.retry_after(&client).await, Some(1));
        assert_eq!(attempts.retry_after(&["client:b".to_owned()]).await, None);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(attempts.retry_after(&client).await, None);
    }
}

//! Limits shared by every instance through Redis: the same GCRA as in
//! memory, run as one Lua script (one round trip, atomic, on Redis's clock
//! so the instances' clocks do not matter), and the day's usage in a hash
//! per caller.
//!
//! Redis is an availability aid, not a gate: when it does not answer within
//! `redis_timeout_ms`, the caller of these functions falls back to the
//! in-memory limits of its own instance and Redis is left alone for
//! `redis_retry_seconds`, so an outage costs one timeout, not one per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use super::policy::{DAY_SECONDS, LimitSettings, Rate};
use super::{RateCheck, Usage};

/// KEYS[1]: the caller's theoretical arrival time (µs); ARGV: the interval
/// between requests (µs) and the burst. Returns allowed (0/1), remaining
/// burst, wait before a retry (µs), time until the full burst is back (µs).
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
";

/// The Redis side of the limits.
pub(super) struct SharedLimits {
    client: Client,
    prefix: String,
    timeout: Duration,
    retry: Duration,
    script: Script,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Set after a failure: Redis is not asked again before then.
    resting_until: Mutex<Option<Instant>>,
}

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum SharedError {
    #[error("Redis is resting after a failure")]
    Resting,
    #[error("Redis did not answer in time")]
    Timeout,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl SharedLimits {
    pub fn new(settings: &LimitSettings, url: &str) -> Result<SharedLimits, redis::RedisError> {
        Ok(SharedLimits {
            client: Client::open(url)?,
            prefix: settings.redis_key_prefix.clone(),
            timeout: Duration::from_millis(settings.redis_timeout_ms.max(1)),
            retry: Duration::from_secs(settings.redis_retry_seconds),
            script: Script::new(GCRA),
            connection: tokio::sync::Mutex::new(None),
            resting_until: Mutex::new(None),
        })
    }

    /// Takes one request from `key`'s allowance.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<RateCheck, SharedError> {
        let mut invocation = self.script.key(format!("{}rate:{key}", self.prefix));
        invocation.arg(rate.interval_micros()).arg(rate.burst);
        let answer: Vec<i64> = self
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        let field = |index: usize| {
            answer
                .get(index)
                .copied()
                .unwrap_or(0)
                .max(0)
                .unsigned_abs()
        };
        Ok(RateCheck {
            allowed: field(0) == 1,
            remaining: field(1),
            retry_after: Duration::from_micros(field(2)),
            reset: Duration::from_micros(field(3)),
        })
    }

    /// Rows and bytes sent to `key` on `day`.
    pub async fn usage(&self, day: i64, key: &str) -> Result<Usage, SharedError> {
        let hash = self.usage_key(day, key);
        let (rows, bytes): (Option<u64>, Option<u64>) = self
            .run(|mut connection| async move {
                redis::cmd("HMGET")
                    .arg(&hash)
                    .arg("rows")
                    .arg("bytes")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(Usage {
            rows: rows.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
        })
    }

    /// Adds what was sent to `key` on `day` (kept two days).
    pub async fn spend(&self, day: i64, key: &str, spent: Usage) -> Result<(), SharedError> {
        let hash = self.usage_key(day, key);
        self.run(|mut connection| async move {
            redis::pipe()
                .atomic()
                .cmd("HINCRBY")
                .arg(&hash)
                .arg("rows")
                .arg(spent.rows)
                .ignore()
                .cmd("HINCRBY")
                .arg(&hash)
                .arg("bytes")
                .arg(spent.bytes)
                .ignore()
                .cmd("EXPIRE")
                .arg(&hash)
                .arg(2 * DAY_SECONDS)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
        })
        .await
    }

    fn usage_key(&self, day: i64, key: &str) -> String {
        format!("{}usage:{day}:{key}", self.prefix)
    }

    /// Runs `operation` on the shared connection within the timeout; on
    /// failure drops the connection and rests.
    async fn run<T, F, Fut>(&self, operation: F) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = async {
            let connection = self.connection().await?;
            tokio::time::timeout(self.timeout, operation(connection))
                .await
                .map_err(|_| SharedError::Timeout)?
                .map_err(SharedError::from)
        }
        .await;
        if let Err(error) = &result
            && !matches!(error, SharedError::Resting)
        {
            self.rest(error).await;
        }
        result
    }

    async fn connection(&self) -> Result<MultiplexedConnection, SharedError> {
        if self.resting() {
            return Err(SharedError::Resting);
        }
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        // Another request may have failed while this one waited for the lock.
        if self.resting() {
            return Err(SharedError::Resting);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| SharedError::Timeout)??;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    fn resting(&self) -> bool {
        self.resting_until
            .lock()
            .ok()
            .and_then(|until| *until)
            .is_some_and(|until| Instant::now() < until)
    }

    async fn rest(&self, error: &SharedError) {
        tracing::warn!(
            %error,
            retry_in_seconds = self.retry.as_secs(),
            "Redis unavailable: rate limits and quotas counted per instance meanwhile"
        );
        if let Ok(mut until) = self.resting_until.lock() {
            *until = Some(Instant::now() + self.retry);
        }
        *self.connection.lock().await = None;
    }
}

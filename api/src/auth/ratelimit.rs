//! Fixed-window rate limits: in Redis in scale-out mode (shared by every API process), in
//! process memory in the embedded default. A refused call reports when to retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{AppError, ErrorKind};
use crate::redis_conn::RedisHandle;

#[derive(Debug)]
pub enum RateLimiter {
    Redis(RedisHandle),
    Memory(Mutex<HashMap<String, (Instant, u32)>>),
}

impl RateLimiter {
    pub fn new(redis: Option<RedisHandle>) -> Self {
        match redis {
            Some(r) => RateLimiter::Redis(r),
            None => RateLimiter::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one hit on `key`; `Err(seconds)` when over `limit` in the current window.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), u64> {
        match self {
            RateLimiter::Redis(redis) => {
                let key = redis.key(&format!("ratelimit:{key}"));
                let mut conn = redis.conn();
                let result: Result<(u32, i64), redis::RedisError> = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .ignore()
                    .cmd("TTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await;
                match result {
                    Ok((count, ttl)) if count > limit => Err(ttl.max(1) as u64),
                    Ok(_) => Ok(()),
                    Err(e) => {
                        // Fail open: a Redis hiccup must not lock everyone out of signing in.
                        tracing::warn!(error = %e, "rate limiter unavailable");
                        Ok(())
                    }
                }
            }
            RateLimiter::Memory(map) => {
                let now = Instant::now();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 10_000 {
                    map.retain(|_, (start, _)| now.duration_since(*start) < window);
                }
                let entry = map.entry(key.to_string()).or_insert((now, 0));
                if now.duration_since(entry.0) >= window {
                    *entry = (now, 0);
                }
                entry.1 += 1;
                if entry.1 > limit {
                    let left = window.saturating_sub(now.duration_since(entry.0));
                    Err(left.as_secs().max(1))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Like [`RateLimiter::hit`], as the 429 error the API returns.
    pub async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<(), AppError> {
        self.hit(key, limit, window).await.map_err(|retry_after| {
            let mut err = AppError::new(
                ErrorKind::RateLimited,
                "RATE_LIMITED",
                format!("too many attempts; retry in {retry_after} s"),
            );
            err.retry_after_secs = Some(retry_after);
            err
        })
    }
}

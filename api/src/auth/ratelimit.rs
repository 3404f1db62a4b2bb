//! Fixed-window rate limits: in Redis in scale-out mode (shared by every API process), in
//! process memory in the embedded default. A refused call reports when to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Count, Counter};
use crate::config::LimitSettings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::redis_conn::RedisHandle;

#[derive(Debug)]
pub enum RateLimiter {
    Redis(RedisHandle),
    Memory(Mutex<HashMap<String, (Instant, u32)>>),
}

/// Adds a hit on the fixed-window counter `key` to `pipe`: `INCR`, the window's expiry set
/// by the first hit (`EXPIRE NX`, not answered), `TTL`. Its two answers are the count and
/// the seconds the window has left.
pub(crate) fn bump(pipe: &mut redis::Pipeline, key: &str, window_secs: u64) {
    pipe.cmd("INCR").arg(key).cmd("EXPIRE").arg(key).arg(window_secs.max(1)).arg("NX").ignore().cmd("TTL").arg(key);
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
                let mut pipe = redis::pipe();
                bump(pipe.atomic(), &key, window.as_secs());
                let result: Result<(u32, i64), redis::RedisError> = pipe.query_async(&mut conn).await;
                match result {
                    Ok((count, ttl)) => Self::judge(u64::from(count), ttl, limit),
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

    /// A window's count after a hit against its limit: `Err(seconds until the window ends)`
    /// when over it.
    fn judge(count: u64, ttl_secs: i64, limit: u32) -> Result<(), u64> {
        if count > u64::from(limit) { Err(ttl_secs.max(1).unsigned_abs()) } else { Ok(()) }
    }

    /// Like [`RateLimiter::hit`], as the 429 error the API returns.
    pub async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<(), AppError> {
        self.hit(key, limit, window).await.map_err(limited)
    }
}

/// Per-user actions with a per-minute limit in `limits.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    TaskSubmit,
    Presign,
    StreamOpen,
}

impl UserAction {
    fn key(self) -> &'static str {
        match self {
            UserAction::TaskSubmit => "task-submit",
            UserAction::Presign => "presign",
            UserAction::StreamOpen => "stream-open",
        }
    }

    /// A user's counter key up to the user id (`RateLimiter::hit` puts `ratelimit:` before
    /// it): `limit_user` and the authenticator's bump (`user_counter`) count on the same key.
    fn user_key_prefix(self) -> String {
        format!("{}:", self.key())
    }

    fn per_minute(self, limits: &LimitSettings) -> u32 {
        match self {
            UserAction::TaskSubmit => limits.task_submits_per_minute,
            UserAction::Presign => limits.presigns_per_minute,
            UserAction::StreamOpen => limits.stream_opens_per_minute,
        }
    }
}

/// The window of the per-user limits (`limits.*_per_minute`).
const USER_WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// Counts one `action` of `user` against its per-minute limit in `limits` (none when
    /// it is 0): 429 `RATE_LIMITED` with `Retry-After` when over.
    pub async fn limit_user(&self, limits: &LimitSettings, action: UserAction, user: Uuid) -> AppResult<()> {
        let per_minute = action.per_minute(limits);
        if per_minute == 0 {
            return Ok(());
        }
        self.check(&format!("{}{user}", action.user_key_prefix()), per_minute, USER_WINDOW).await.map_err(user_limited)
    }

    /// The counter of `action` for the authenticator to bump in the caller's cache lookup
    /// (one round trip for both: `Authenticator::resolve_counting`), when this limiter
    /// counts in Redis and `action` is limited. Its key is the one `limit_user` counts.
    pub fn user_counter(&self, limits: &LimitSettings, action: UserAction) -> Option<Counter> {
        match self {
            RateLimiter::Redis(_) if action.per_minute(limits) > 0 => Some(Counter {
                prefix: format!("ratelimit:{}", action.user_key_prefix()),
                window_secs: USER_WINDOW.as_secs(),
            }),
            _ => None,
        }
    }

    /// [`Self::limit_user`] for a request whose count the authenticator already bumped
    /// (`Some`), else the limit applied now.
    pub async fn limit_counted(
        &self,
        limits: &LimitSettings,
        action: UserAction,
        user: Uuid,
        counted: Option<Count>,
    ) -> AppResult<()> {
        match counted {
            Some(Count { count, ttl_secs }) => {
                Self::judge(count, ttl_secs, action.per_minute(limits)).map_err(limited).map_err(user_limited)
            }
            None => self.limit_user(limits, action, user).await,
        }
    }
}

fn limited(retry_after: u64) -> AppError {
    let mut err = AppError::new(
        ErrorKind::RateLimited,
        ErrorCode::RateLimited,
        format!("too many attempts; retry in {retry_after} s"),
    );
    err.retry_after_secs = Some(retry_after);
    err
}

fn user_limited(mut e: AppError) -> AppError {
    e.message = format!("too many requests of this kind; retry in {} s", e.retry_after_secs.unwrap_or(1));
    e
}

/// Open task event streams per user, in this process.
#[derive(Debug, Default)]
pub struct StreamSlots(Arc<Mutex<HashMap<Uuid, u32>>>);

/// One open stream; dropping it (the stream ended or the client left) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<Mutex<HashMap<Uuid, u32>>>,
    user: Uuid,
}

impl StreamSlots {
    /// A slot for one more stream of `user`, unless `cap` (0 = no cap) are open: then 429
    /// `TOO_MANY_STREAMS`.
    pub fn acquire(&self, user: Uuid, cap: u32) -> AppResult<StreamSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user).or_insert(0);
        if cap != 0 && *count >= cap {
            let mut err = AppError::new(
                ErrorKind::RateLimited,
                ErrorCode::TooManyStreams,
                format!("at most {cap} task streams may be open at once; close one first"),
            );
            err.retry_after_secs = Some(1);
            return Err(err);
        }
        *count += 1;
        Ok(StreamSlot { slots: self.0.clone(), user })
    }

    /// Streams `user` has open in this process.
    pub fn open(&self, user: Uuid) -> u32 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

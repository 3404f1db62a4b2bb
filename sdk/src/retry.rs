//! The API's stable error codes on SDK errors, safe retries with backoff, and task
//! submission that is safe to retry.
//!
//! ```no_run
//! # async fn demo(client: funmagic_sdk::Client, request: funmagic_sdk::types::TaskCreateRequest) {
//! use funmagic_sdk::retry::{ErrorCode, submit_task};
//! match submit_task(&client, &request).await {
//!     Ok(task) => println!("submitted {}", task.id),
//!     Err(e) if e.code() == Some("INSUFFICIENT_CREDITS") => eprintln!("buy credits first"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use crate::{Client, Error, types};

/// The API's stable `code` (e.g. `INSUFFICIENT_CREDITS`, `NOT_FOUND`) and HTTP status of an
/// SDK error, when the server answered with its JSON error.
pub trait ErrorCode {
    fn code(&self) -> Option<&str>;
    fn status(&self) -> Option<u16>;
    /// Whether trying again later may succeed: the server was unreachable, rate limited
    /// (429) or briefly unavailable (502, 503, 504).
    fn is_transient(&self) -> bool;
}

impl ErrorCode for Error<types::ApiError> {
    fn code(&self) -> Option<&str> {
        match self {
            Error::ErrorResponse(resp) => Some(resp.code.as_str()),
            _ => None,
        }
    }

    fn status(&self) -> Option<u16> {
        self.status().map(|s| s.as_u16())
    }

    fn is_transient(&self) -> bool {
        match self {
            Error::CommunicationError(_) => true,
            Error::ErrorResponse(resp) => matches!(resp.status().as_u16(), 429 | 502 | 503 | 504),
            Error::UnexpectedResponse(resp) => matches!(resp.status().as_u16(), 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 attempts: waits of 200 ms, 400 ms, 800 ms, 1.6 s (with ±25 % jitter).
    fn default() -> Self {
        Self { attempts: 5, first: Duration::from_millis(200), max: Duration::from_secs(5) }
    }
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let base = self.first.saturating_mul(1 << attempt.min(16)).min(self.max);
        // ±25 % jitter so that many clients do not retry in step.
        let jitter = (uuid::Uuid::new_v4().as_u128() % 500) as f64 / 1000.0 + 0.75;
        base.mul_f64(jitter)
    }
}

/// Runs `call` until it succeeds, fails for good, or the attempts run out; transient
/// failures (see [`ErrorCode::is_transient`]) are retried after a growing pause. Only for
/// requests that are safe to repeat: reads, and writes made idempotent (an
/// `Idempotency-Key`, as [`submit_task`] sends).
pub async fn with_retry<T, F, Fut>(backoff: Backoff, mut call: F) -> Result<T, Error<types::ApiError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error<types::ApiError>>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt + 1 < backoff.attempts => {
                // The server's `Retry-After` (a rate limit, a full task line) when it is
                // longer than the backoff's pause, up to the backoff's longest pause.
                let asked = retry_after(&e).unwrap_or_default().min(backoff.max);
                let wait = backoff.delay(attempt).max(asked);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The `Retry-After` of an error answer, in seconds (at most 60).
fn retry_after(e: &Error<types::ApiError>) -> Option<Duration> {
    let headers = match e {
        Error::ErrorResponse(resp) => resp.headers(),
        Error::UnexpectedResponse(resp) => resp.headers(),
        _ => return None,
    };
    let secs: u64 = headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// Submits a task with a fresh `Idempotency-Key`, retrying transient failures with the same
/// key: however often the request reaches the server, one task is made and charged once.
pub async fn submit_task(
    client: &Client,
    request: &types::TaskCreateRequest,
) -> Result<types::Task, Error<types::ApiError>> {
    let key: types::TaskCreateIdempotencyKey = uuid::Uuid::new_v4()
        .to_string()
        .parse()
        .map_err(|e: types::error::ConversionError| Error::InvalidRequest(e.to_string()))?;
    with_retry(Backoff::default(), || async { client.task_create(Some(&key), request).await })
        .await
        .map(|r| r.into_inner().task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_its_cap() {
        let b = Backoff { attempts: 10, first: Duration::from_millis(100), max: Duration::from_secs(1) };
        for (attempt, base) in [(0, 100), (1, 200), (2, 400), (5, 1000), (9, 1000)] {
            let d = b.delay(attempt).as_millis() as u64;
            assert!(d >= base * 3 / 4 && d <= base * 5 / 4, "attempt {attempt}: {d} ms around {base}");
        }
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Error<types::ApiError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert("retry-after", v.parse().unwrap());
        }
        let body = types::ApiError { code: "QUEUE_FULL".into(), details: None, error: "full".into(), request_id: None };
        Error::ErrorResponse(crate::ResponseValue::new(body, reqwest::StatusCode::from_u16(status).unwrap(), headers))
    }

    #[test]
    fn retry_after_is_read_from_the_answer_up_to_a_minute() {
        assert_eq!(retry_after(&answer(503, Some("4"))), Some(Duration::from_secs(4)));
        assert_eq!(retry_after(&answer(429, Some("3600"))), Some(Duration::from_secs(60)));
        assert_eq!(retry_after(&answer(503, None)), None);
        assert_eq!(retry_after(&answer(503, Some("soon"))), None);
    }

    #[tokio::test]
    async fn only_transient_failures_are_retried() {
        let fast = Backoff { attempts: 3, first: Duration::from_millis(1), max: Duration::from_millis(2) };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result: Result<(), _> = with_retry(fast, || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err(Error::InvalidRequest("bad".into())) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "a client error is not retried");
        // A refused connection is transient: retried until the attempts run out.
        let unreachable = crate::ClientBuilder::new("http://127.0.0.1:9").build().unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result = with_retry(fast, || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            unreachable.tool_list(None, None, None)
        })
        .await;
        let err = result.unwrap_err();
        assert!(err.is_transient() && err.code().is_none());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}

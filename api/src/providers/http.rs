//! HTTP to the paid providers, one policy for all of them:
//!
//! * every request has a timeout (`providers.timeout_secs`);
//! * 429, 5xx, timeouts and dropped connections are retried up to `providers.max_retries`
//!   times, after the response's `Retry-After` (seconds or an HTTP date, capped at 2
//!   minutes) or an exponential backoff with jitter;
//! * other 4xx fail the step at once (401/403 as `PROVIDER_AUTH`), with the provider's own
//!   message, cut to 300 characters, control characters removed and the API key masked;
//! * when retries run out the error is transient (`PROVIDER_UNAVAILABLE`), so the task
//!   itself is retried later with its own backoff;
//! * a body that is not the JSON we expect is `PROVIDER_BAD_RESPONSE` (transient).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::ProviderSettings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};

/// Whether sending a request again can start (and bill) a second job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads (status, results, downloads): always safe to send again.
    Safe,
    /// Starts paid work (a generation, a submit): sent again only when the provider surely
    /// did not take it (429, 5xx, no connection) — never after a timeout or a broken answer,
    /// when it may be working on it already.
    CreatesWork,
}

/// Sends the request `make` builds (again for each retry) under the retry policy; returns
/// the successful response. `who` names the provider in messages.
pub async fn send(
    cfg: &ProviderSettings,
    who: &str,
    key: &SecretString,
    repeat: Repeat,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> AppResult<reqwest::Response> {
    let max_retries = cfg.max_retries;
    let mut attempt = 0u32;
    loop {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let outcome = if crate::traces::enabled() {
            traced(make().timeout(timeout), who).await
        } else {
            make().timeout(timeout).send().await
        };
        let (retry_after, problem) = match outcome {
            Ok(resp) if resp.status().is_success() => return Ok(resp),
            Ok(resp) => {
                let status = resp.status();
                let retry_after = retry_after(resp.headers());
                let request_id = request_id(resp.headers());
                let body = resp.text().await.unwrap_or_default();
                let message = safe_message(&provider_message(&body), key);
                let message = match request_id {
                    Some(id) => format!("{who} answered {}: {message} (request {id})", status.as_u16()),
                    None => format!("{who} answered {}: {message}", status.as_u16()),
                };
                if status.as_u16() == 429 || status.is_server_error() {
                    (retry_after, message)
                } else if status.as_u16() == 401 || status.as_u16() == 403 {
                    return Err(AppError::new(ErrorKind::Validation, ErrorCode::ProviderAuth, message));
                } else {
                    return Err(AppError::new(ErrorKind::Validation, ErrorCode::ProviderRejected, message));
                }
            }
            Err(e) if e.is_connect() => {
                (None, format!("{who} could not be reached: {}", safe_message(&e.to_string(), key)))
            }
            Err(e) if e.is_timeout() || e.is_request() || e.is_body() => {
                let problem = if e.is_timeout() {
                    format!("{who} did not answer in time")
                } else {
                    format!("the connection to {who} broke: {}", safe_message(&e.to_string(), key))
                };
                if repeat == Repeat::CreatesWork {
                    // It may be working on it already: not resent blindly here; the task's
                    // own retry (with its backoff and attempt limit) decides.
                    return Err(AppError::new(ErrorKind::Unavailable, ErrorCode::ProviderUnavailable, problem));
                }
                (None, problem)
            }
            Err(e) => return Err(AppError::internal(format!("{who}: {}", safe_message(&e.to_string(), key)))),
        };
        if attempt >= max_retries {
            return Err(AppError::new(
                ErrorKind::Unavailable,
                ErrorCode::ProviderUnavailable,
                format!("{problem} (after {} tries)", attempt + 1),
            ));
        }
        attempt += 1;
        let wait = retry_after.unwrap_or_else(|| backoff(attempt));
        tracing::info!(provider = who, attempt, wait_ms = wait.as_millis() as u64, "{problem}; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Sends one request in a client span (`{method}`, with the provider, the server's address
/// and path — never the query, which may hold a signature — and the status), carrying the
/// span's `traceparent` to the provider.
async fn traced(builder: reqwest::RequestBuilder, who: &str) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument;
    let (client, request) = builder.build_split();
    let mut request = request?;
    let url = request.url();
    let span = tracing::info_span!(
        "provider request",
        otel.name = %request.method(),
        otel.kind = "client",
        provider = who,
        http.request.method = %request.method(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        url.path = url.path(),
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = crate::traces::traceparent(&span)
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&parent)
    {
        request.headers_mut().insert("traceparent", value);
    }
    let outcome = client.execute(request).instrument(span.clone()).await;
    match &outcome {
        Ok(resp) => {
            span.record("http.response.status_code", resp.status().as_u16());
            if !resp.status().is_success() {
                crate::traces::set_error(&span, resp.status().to_string());
            }
        }
        // Classified only: the error's text holds the URL, whose query may be a signature.
        Err(e) => crate::traces::set_error(
            &span,
            if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "the request failed"
            },
        ),
    }
    outcome
}

/// The response body as JSON; anything else is `PROVIDER_BAD_RESPONSE`.
pub async fn json(who: &str, resp: reqwest::Response) -> AppResult<Value> {
    let text = resp.text().await.map_err(|e| bad_response(who, &format!("reading the body failed: {e}")))?;
    serde_json::from_str(&text).map_err(|_| bad_response(who, "the answer is not JSON"))
}

pub fn bad_response(who: &str, what: &str) -> AppError {
    AppError::new(ErrorKind::Unavailable, ErrorCode::ProviderBadResponse, format!("{who}: unexpected answer: {what}"))
}

/// Downloads a result file (no key: provider result URLs are pre-signed), under the same
/// retry policy, refusing more than `max` bytes.
pub async fn download(
    cfg: &ProviderSettings,
    http: &reqwest::Client,
    who: &str,
    url: &str,
    max: u64,
) -> AppResult<Vec<u8>> {
    if !crate::urls::is_http_url(url) {
        return Err(bad_response(who, "the result URL is not http(s)"));
    }
    let none = SecretString::from(String::new());
    let mut resp = send(cfg, who, &none, Repeat::Safe, || http.get(url)).await?;
    let too_large = || {
        AppError::new(
            ErrorKind::Validation,
            ErrorCode::ProviderResultTooLarge,
            format!("{who}: the result is over {max} bytes"),
        )
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    // Counted as it arrives: a chunked answer has no length to check up front.
    let mut bytes = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| bad_response(who, &format!("downloading the result failed: {e}")))?
    {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `Retry-After` as seconds or an HTTP date; at most 2 minutes.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<f64>() {
        // Capped before converting: `inf` or 1e30 would not fit a Duration.
        Ok(secs) if secs >= 0.0 => Duration::from_secs_f64(secs.min(120.0)),
        _ => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(Duration::from_secs(120)))
}

fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-request-id", "x-fal-request-id", "x-tripo-trace-id"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(80).collect())
}

/// 500 ms × 2^(n−1), at most 30 s, plus up to a quarter of jitter.
fn backoff(attempt: u32) -> Duration {
    crate::backoff::delay(500, 30_000, attempt)
}

/// The message inside the usual error bodies: `{"error":{"message"}}` (OpenAI),
/// `{"detail": …}` (fal.ai), `{"message", "suggestion"}` (Tripo), else the text.
fn provider_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else { return body.to_string() };
    let pick = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => {
                Some(items.iter().filter_map(|i| i["msg"].as_str().or(i.as_str())).collect::<Vec<_>>().join("; "))
            }
            _ => None,
        }
    };
    v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["error"].as_str().map(str::to_string))
        .or_else(|| pick(&v["detail"]))
        .or_else(|| {
            v["message"].as_str().map(|m| match v["suggestion"].as_str() {
                Some(s) => format!("{m} ({s})"),
                None => m.to_string(),
            })
        })
        .unwrap_or_else(|| body.to_string())
}

/// Safe to show a user: no control characters, the key masked, at most 300 characters.
pub fn safe_message(text: &str, key: &SecretString) -> String {
    let mut text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let key = key.expose_secret();
    if key.len() >= 8 {
        text = text.replace(key, "[key]");
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = if text.is_empty() { "no details".to_string() } else { text };
    if text.chars().count() > 300 { text.chars().take(300).collect::<String>() + "…" } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_safe_and_found() {
        let key = SecretString::from("sk-live-abcdefgh12345678".to_string());
        assert_eq!(provider_message(r#"{"error":{"message":"bad size","type":"invalid_request_error"}}"#), "bad size");
        assert_eq!(provider_message(r#"{"detail":[{"msg":"image_url is required"}]}"#), "image_url is required");
        assert_eq!(
            provider_message(r#"{"code":2010,"message":"no credit","suggestion":"top up"}"#),
            "no credit (top up)"
        );
        assert_eq!(provider_message("<html>oops</html>"), "<html>oops</html>");
        let shown = safe_message("key sk-live-abcdefgh12345678 is bad\n\u{1b}[31m", &key);
        assert_eq!(shown, "key [key] is bad [31m");
        assert_eq!(safe_message(&"x".repeat(400), &key).chars().count(), 301);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "9999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)), "capped");
        h.insert("retry-after", "inf".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)), "no panic on a huge value");
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert("retry-after", later.parse().unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28), "{wait:?}");
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}

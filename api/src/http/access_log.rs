//! The access log: one span per request with the method, the path and its query with
//! secret-bearing values redacted (signed URLs' signatures, verification and reset tokens,
//! OAuth codes), and the TCP peer — never a client-supplied `X-Real-IP` or
//! `X-Forwarded-For` (the trusted-proxy setting applies to rate limits and sessions, where
//! it is checked). Replaces poem's `Tracing`, which logged both in full.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument;

/// Query parameters whose values are never logged (matched case-insensitively, by part).
const SECRET_PARAMS: &[&str] = &["token", "sig", "secret", "code", "password", "credential", "key", "state"];

#[derive(Debug, Default)]
pub struct AccessLog;

impl<E: Endpoint> Middleware<E> for AccessLog {
    type Output = AccessLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AccessLogEndpoint { inner: ep }
    }
}

pub struct AccessLogEndpoint<E> {
    inner: E,
}

/// `path?query` with the values of secret-bearing parameters replaced by `***`.
pub fn redacted_target(uri: &poem::http::Uri) -> String {
    let Some(query) = uri.query() else { return uri.path().to_string() };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|s| name.to_ascii_lowercase().contains(s)) => {
                format!("{name}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

impl<E: Endpoint> Endpoint for AccessLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let span = tracing::info_span!(
            "request",
            remote_addr = %req.remote_addr(),
            version = ?req.version(),
            method = %req.method(),
            uri = %redacted_target(req.original_uri()),
        );
        async move {
            let started = Instant::now();
            let res = self.inner.call(req).await;
            let duration = started.elapsed();
            match res {
                Ok(resp) => {
                    let resp = resp.into_response();
                    tracing::info!(status = %resp.status(), duration = ?duration, "response");
                    Ok(resp)
                }
                Err(err) => {
                    tracing::info!(status = %err.status(), error = %err, duration = ?duration, "error");
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_queries_are_redacted() {
        let uri: poem::http::Uri =
            "/files/private/a/b.png?expires=99&sig=abcdef&limit=5&token=t0k&X-Amz-Signature=zz&X-Amz-Credential=cc"
                .parse()
                .unwrap();
        assert_eq!(
            super::redacted_target(&uri),
            "/files/private/a/b.png?expires=99&sig=***&limit=5&token=***&X-Amz-Signature=***&X-Amz-Credential=***"
        );
        let plain: poem::http::Uri = "/api/tasks?limit=5".parse().unwrap();
        assert_eq!(super::redacted_target(&plain), "/api/tasks?limit=5");
    }
}

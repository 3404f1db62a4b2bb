//! CORS for the web apps on other hosts listed in `auth.cors_origins` (the seed's topology:
//! web and admin on their own hosts). A request from a listed origin gets the CORS headers
//! with credentials, and its preflight is answered here (cached by the browser for two
//! hours); a request from any other origin passes through without them, so the browser
//! keeps its answer from the page (same-origin pages and non-browser clients are
//! unaffected). poem's own `Cors` refuses unlisted origins with 403, which would break the
//! server's own pages, and allows every origin when the list is empty; hence this module.

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, last-event-id, x-request-id, if-none-match, accept-language";
const EXPOSE_HEADERS: &str = "retry-after, etag, location, content-disposition, x-request-id";
/// How long a browser may reuse a preflight answer (seconds).
const MAX_AGE: &str = "7200";

/// The listed origins, compared exactly (ASCII case-insensitively), without a trailing slash.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins(Arc<Vec<String>>);

impl CorsOrigins {
    pub fn new(origins: &[String]) -> Self {
        Self(Arc::new(origins.to_vec()))
    }

    fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// The middleware: `routes.around(move |next, req| cors(next, origins.clone(), req))`.
pub async fn cors<E: Endpoint>(next: E, origins: CorsOrigins, req: Request) -> poem::Result<Response> {
    if origins.0.is_empty() {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let origin = req.headers().get(header::ORIGIN).filter(|o| o.to_str().is_ok_and(|o| origins.allows(o))).cloned();
    let Some(origin) = origin else {
        let mut resp = next.call(req).await.map(IntoResponse::into_response)?;
        resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
        return Ok(resp);
    };
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
            .header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
            .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE)
            .header(header::VARY, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
            .finish());
    }
    // Errors become responses here so that they carry the headers too (the page must be
    // able to read a 401 or a 422).
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let headers = resp.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(resp)
}

//! The HTTP surface: poem-openapi operations grouped by resource, the spec at
//! `/openapi.json`, the explorer at `/docs`, and JSON errors for everything.
//!
//! Handlers are thin: they parse, call the app layer, and map [`crate::error::AppError`]
//! through [`error::ErrorResponse`].

mod access_log;
pub mod admin;
pub mod assets;
pub mod auth;
pub mod banners;
pub mod caching;
pub mod cors;
pub mod credits;
pub mod error;
pub mod files;
pub mod health;
pub mod links;
pub mod models;
pub mod pages;
pub mod providers;
pub mod security;
pub mod sse;
pub mod tasks;
pub mod text;
pub mod tools;
pub mod webhooks;

use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::app::AppState;

/// Operation groups; every operation carries exactly one.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Liveness and dependency checks.
    #[oai(rename = "health")]
    Health,
    /// Accounts, sessions, API keys and the device sign-in flow.
    #[oai(rename = "auth")]
    Auth,
    /// The tool catalogue.
    #[oai(rename = "tools")]
    Tools,
    /// Running tools: submit, follow, cancel.
    #[oai(rename = "tasks")]
    Tasks,
    /// Uploads and stored files.
    #[oai(rename = "assets")]
    Assets,
    /// Credits: balance, history, packages, purchases.
    #[oai(rename = "credits")]
    Credits,
    /// Site content: banners.
    #[oai(rename = "content")]
    Content,
    /// Webhooks to your backend: endpoints, signing secrets, delivery logs.
    #[oai(rename = "webhooks")]
    Webhooks,
    /// Administration (admin and super_admin only).
    #[oai(rename = "admin")]
    Admin,
}

/// Every API of the server, in the order they appear in the spec.
pub type Apis = (
    health::HealthApi,
    auth::AuthApi,
    tools::ToolsApi,
    tasks::TasksApi,
    assets::AssetsApi,
    credits::CreditsApi,
    banners::BannersApi,
    webhooks::WebhooksApi,
    admin::AdminApi,
    tools::AdminToolsApi,
    tasks::AdminTasksApi,
    providers::AdminProvidersApi,
    banners::AdminBannersApi,
    assets::AdminAssetsApi,
    credits::AdminCreditsApi,
    webhooks::AdminWebhooksApi,
);

fn apis() -> Apis {
    (
        health::HealthApi,
        auth::AuthApi,
        tools::ToolsApi,
        tasks::TasksApi,
        assets::AssetsApi,
        credits::CreditsApi,
        banners::BannersApi,
        webhooks::WebhooksApi,
        admin::AdminApi,
        tools::AdminToolsApi,
        tasks::AdminTasksApi,
        providers::AdminProvidersApi,
        banners::AdminBannersApi,
        assets::AdminAssetsApi,
        credits::AdminCreditsApi,
        webhooks::AdminWebhooksApi,
    )
}

/// Largest request body the JSON API accepts (uploads go to storage URLs, not here).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI service; its spec needs no live services.
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "FunMagic API", env!("CARGO_PKG_VERSION")).description(
        "Multi-tenant AI tools platform: upload images, run AI tools, watch live progress, pay with credits. \
             Errors are JSON `{\"error\", \"code\"}` with a stable code.",
    )
}

/// The spec as committed in `openapi/funmagic.json` and served at `/openapi.json`:
/// poem-openapi's, plus the response links of [`links::LINKS`] (pretty JSON, trailing
/// newline).
pub fn spec_json() -> String {
    static SPEC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut api: openapiv3::OpenAPI =
            serde_json::from_str(&api_service().spec()).expect("poem-openapi's spec is valid OpenAPI");
        links::add_links(&mut api);
        let mut spec = serde_json::to_string_pretty(&api).expect("a spec serialises");
        spec.push('\n');
        spec
    });
    SPEC.clone()
}

/// `GET /openapi.json`.
#[poem::handler]
fn openapi_json() -> poem::Response {
    poem::Response::builder().content_type("application/json; charset=utf-8").body(spec_json())
}

/// Refuses API bodies over [`MAX_BODY_BYTES`]: by `Content-Length` up front, and by reading
/// the body itself with that limit whatever the headers say (an HTTP/2 request carries
/// neither `Content-Length` nor `Transfer-Encoding`). Handlers get the buffered body.
async fn limit_body<E: Endpoint>(next: E, mut req: poem::Request) -> poem::Result<poem::Response> {
    use futures::StreamExt;
    // File uploads are bounded by their signed length instead (`files::put`).
    if req.uri().path().starts_with("/files/") {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    use crate::error::{AppError, ErrorCode, ErrorKind};
    let too_large = || {
        error::poem_error(AppError::new(
            ErrorKind::PayloadTooLarge,
            ErrorCode::PayloadTooLarge,
            format!("the request body is over {MAX_BODY_BYTES} bytes"),
        ))
    };
    let bad_request = || {
        error::poem_error(AppError::new(
            ErrorKind::BadRequest,
            ErrorCode::BadRequest,
            "the request body could not be read (a bad Content-Length, or the connection broke)",
        ))
    };
    match req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()))
    {
        Some(Some(len)) if len > MAX_BODY_BYTES as u64 => return Err(too_large()),
        Some(None) => return Err(bad_request()),
        _ => {}
    }
    let body = req.take_body();
    if !body.is_empty() {
        let mut stream = std::pin::pin!(body.into_bytes_stream());
        let mut first: Option<bytes::Bytes> = None;
        let mut rest = bytes::BytesMut::new();
        let mut len = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| bad_request())?;
            len += chunk.len();
            if len > MAX_BODY_BYTES {
                return Err(too_large());
            }
            // The usual one-frame body is kept as is; only bodies in several frames are copied.
            match &first {
                None => first = Some(chunk),
                Some(f) => {
                    if rest.is_empty() {
                        rest.extend_from_slice(f);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        let bytes = if rest.is_empty() { first.unwrap_or_default() } else { rest.freeze() };
        req.set_body(bytes);
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// The methods each route answers, for the `Allow` header of a 405 (RFC 9110 §15.5.6):
/// the spec's operations plus the routes outside the spec.
/// It also names a request's route template for the metrics (`/api/tasks/{id}`, never the
/// raw path).
struct AllowTable(Vec<(Vec<Option<String>>, String, String)>);

impl AllowTable {
    fn build() -> Self {
        let spec: serde_json::Value = serde_json::from_str(&api_service().spec()).unwrap_or_default();
        let mut routes: Vec<(String, Vec<String>)> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, ops)| {
                let methods = ops.as_object().into_iter().flatten().map(|(m, _)| m.to_ascii_uppercase()).collect();
                (path.clone(), methods)
            })
            .collect();
        for path in crate::web::PATHS {
            routes.push((path.to_string(), vec!["GET".to_string()]));
        }
        for (path, methods) in [
            ("/api/auth/sign-in/social", vec!["GET"]),
            ("/api/auth/callback/{provider}", vec!["GET"]),
            ("/api/webhooks/stripe", vec!["POST"]),
        ] {
            routes.push((path.into(), methods.into_iter().map(String::from).collect()));
        }
        let table = routes
            .into_iter()
            .map(|(path, mut methods)| {
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                let segments = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|seg| (!seg.starts_with('{')).then(|| seg.to_string()))
                    .collect();
                (segments, methods.join(", "), path)
            })
            .collect();
        Self(table)
    }

    /// The routes whose template matches `path`, the most literal first.
    fn matching(&self, path: &str) -> Option<&(Vec<Option<String>>, String, String)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.0
            .iter()
            .filter(|(segments, _, _)| {
                segments.len() == parts.len()
                    && segments.iter().zip(&parts).all(|(seg, part)| seg.as_deref().is_none_or(|s| s == *part))
            })
            .max_by_key(|(segments, _, _)| segments.iter().filter(|s| s.is_some()).count())
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        if path.starts_with("/static/") {
            return Some("GET, HEAD");
        }
        if path.starts_with("/files/") {
            return Some("GET, HEAD, PUT");
        }
        self.matching(path).map(|(_, methods, _)| methods.as_str())
    }

    /// The route template of `path` for metric labels; `other` for paths no route has.
    fn template(&self, path: &str) -> &str {
        if path.starts_with("/static/") {
            return "/static/{hash}/{path}";
        }
        if path.starts_with("/files/") {
            return "/files/{bucket}/{key}";
        }
        if path == "/openapi.json" {
            return "/openapi.json";
        }
        if path == "/docs" || path.starts_with("/docs/") {
            return "/docs";
        }
        self.matching(path).map(|(_, _, template)| template.as_str()).unwrap_or("other")
    }
}

/// The request's id (a sane incoming `X-Request-Id`, else a new one) on the response, in
/// every log line of the request (a span) and in JSON error bodies; the request's duration
/// and the requests in flight as metrics, by route template.
async fn observe<E: Endpoint>(
    next: E,
    table: std::sync::Arc<AllowTable>,
    req: poem::Request,
) -> poem::Result<poem::Response> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let metrics = crate::telemetry::enabled();
    let traced = crate::traces::enabled();
    let route = if metrics || traced { table.template(req.uri().path()).to_string() } else { String::new() };
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| crate::telemetry::sane_request_id(id))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let _active = metrics.then(crate::telemetry::ActiveRequest::start);
    let span = if traced {
        // A server span named after the route template, with the semantic conventions'
        // attributes, continuing the caller's trace when it sent a `traceparent`.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        );
        crate::traces::set_parent_from_headers(&span, req.headers());
        crate::traces::set_attribute(&span, "url.path", req.uri().path().to_string());
        if let Some(scheme) = req.uri().scheme_str() {
            crate::traces::set_attribute(&span, "url.scheme", scheme.to_string());
        }
        span
    } else {
        tracing::info_span!("request", request_id = %request_id)
    };
    let recorded = span.clone();
    let call = async move {
        match next.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        }
    };
    let mut resp = crate::telemetry::with_request_id(request_id.clone(), call.instrument(span)).await;
    if traced {
        let status = resp.status().as_u16();
        recorded.record("http.response.status_code", status);
        if status >= 500 {
            recorded.record("otel.status_code", "ERROR");
        }
    }
    if let Ok(value) = poem::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", value);
    }
    if metrics {
        crate::telemetry::http_request(method.as_str(), &route, resp.status().as_u16(), started.elapsed());
    }
    Ok(resp)
}

/// Adds `Allow` to every 405.
async fn allow_header<E: Endpoint>(
    next: E,
    table: std::sync::Arc<AllowTable>,
    req: poem::Request,
) -> poem::Result<poem::Response> {
    let uri = req.uri().clone();
    let mut resp = next.call(req).await?.into_response();
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = table.allowed(uri.path())
        && let Ok(value) = poem::http::HeaderValue::from_str(methods)
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    Ok(resp)
}

/// All routes, with shared state and JSON errors.
pub fn routes(state: AppState) -> impl Endpoint {
    let allow = std::sync::Arc::new(AllowTable::build());
    let observed = allow.clone();
    let origins = cors::CorsOrigins::new(&state.settings().auth.cors_origins);
    let service = api_service();
    let docs = service.swagger_ui();
    // The spec's paths are all under /api and /health; the web UI has the rest of the tree.
    let api = std::sync::Arc::new(poem::IntoEndpoint::into_endpoint(service));
    let route = Route::new()
        .nest_no_strip("/api", api.clone())
        .nest_no_strip("/health", api)
        .nest("/docs", docs)
        .at("/openapi.json", poem::get(openapi_json));
    let in_process_api = Route::new()
        .nest("/", api_service())
        .data(state.clone())
        .with(poem::middleware::CookieJarManager::new())
        .boxed();
    crate::web::routes(route, in_process_api)
        .at("/api/auth/sign-in/social", poem::get(pages::social_sign_in))
        .at("/api/auth/callback/:provider", poem::get(pages::social_callback))
        .at("/api/webhooks/stripe", poem::post(pages::stripe_webhook))
        .at("/files/:bucket/*key", poem::get(files::get).put(files::put))
        .data(state)
        .around(limit_body)
        .with(poem::middleware::CookieJarManager::new())
        .with(poem::middleware::CatchPanic::new())
        .with(access_log::AccessLog)
        .catch_all_error(|err: poem::Error| async move {
            // Operations' own error responses already carry the JSON body: keep them.
            if err.is_from_response() { err.into_response() } else { error::json_error_body(&err) }
        })
        .around(caching::conditional)
        .around(move |next, req| allow_header(next, allow.clone(), req))
        .around(move |next, req| cors::cors(next, origins.clone(), req))
        .around(move |next, req| observe(next, observed.clone(), req))
}

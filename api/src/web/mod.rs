//! The web UI, served by `funmagic-server` itself on the API's origin: server-rendered
//! HTML pages (maud, escaped by default) plus a few plain ES modules for what needs a
//! browser (uploads, live progress over `EventSource`, the before/after slider, the 3D
//! viewers, form posts to the JSON API).
//!
//! Pages read their data through the JSON API itself, in process ([`Backend`]): the same
//! operation, authorization and JSON the SDK gets, with the visitor's cookie, so a page can
//! never show more than the API would. Writes are made by the page script with `fetch`
//! (the cookie, and the API's CSRF origin check). Every page carries a strict CSP
//! (`script-src 'self'`, no inline script or style), `frame-ancestors 'none'`, and
//! `no-store` when it shows a signed-in visitor's data.

pub mod i18n;
pub mod pages;
pub mod static_files;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, Request, Response, Route};
use serde_json::Value;

use crate::app::AppState;
use i18n::{Locale, Tr};

/// The cookie the footer's language switch sets.
pub const LANG_COOKIE: &str = "funmagic.lang";

/// The JSON API, callable in process by the pages.
#[derive(Clone)]
pub struct Backend(Arc<BoxEndpoint<'static>>);

/// A failed API call: the status and the API's error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiFailure {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

impl Backend {
    /// `api`: the JSON API's operations with their state (`http` builds it; the web layer
    /// sits beside the API, not under it).
    pub fn new(api: BoxEndpoint<'static>) -> Self {
        Self(Arc::new(api))
    }

    /// `GET path_and_query` as the visitor of `req` (their cookie and languages).
    pub async fn get(&self, req: &Request, path_and_query: impl Into<String>) -> Result<Value, ApiFailure> {
        let mut builder = Request::builder().method(Method::GET).uri_str(path_and_query.into());
        for name in [header::COOKIE, header::ACCEPT_LANGUAGE, header::USER_AGENT] {
            for value in req.headers().get_all(&name) {
                builder = builder.header(name.clone(), value.clone());
            }
        }
        builder = builder.header(header::ACCEPT, "application/json");
        let resp = match self.0.call(builder.finish()).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        let body: Value = match resp.into_body().into_bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if status.is_success() { Ok(body) } else { Err(ApiFailure { status, body }) }
    }
}

/// Who is asking, in which language, with what balance: what every page's header needs.
pub struct Ctx {
    pub tr: Tr,
    pub user: Option<Value>,
    pub balance: Option<Value>,
    pub path: String,
    pub oauth: (bool, bool),
    pub max_upload_mb: u64,
}

impl Ctx {
    pub async fn load(state: &AppState, backend: &Backend, req: &Request) -> Ctx {
        let locale = req
            .cookie()
            .get(LANG_COOKIE)
            .and_then(|c| Locale::parse(c.value_str()))
            .unwrap_or_else(|| Locale::from_accept_language(req.header(header::ACCEPT_LANGUAGE.as_str())));
        let has_credential = req.cookie().get(crate::auth::SESSION_COOKIE).is_some();
        let (user, balance) = if has_credential {
            let (session, balance) =
                tokio::join!(backend.get(req, "/api/auth/get-session"), backend.get(req, "/api/credits/balance"));
            (session.ok().map(|s| s["user"].clone()), balance.ok())
        } else {
            (None, None)
        };
        let oauth = &state.settings().oauth;
        Ctx {
            tr: Tr(locale),
            user,
            balance,
            path: req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
            oauth: (oauth.github.is_some(), oauth.google.is_some()),
            max_upload_mb: (state.settings().storage.max_image_bytes / (1024 * 1024)).max(1),
        }
    }

    pub fn signed_in(&self) -> bool {
        self.user.is_some()
    }

    pub fn t(&self, key: &str) -> &'static str {
        self.tr.s(key)
    }

    pub fn available(&self) -> i64 {
        self.balance.as_ref().and_then(|b| b["available"].as_i64()).unwrap_or(0)
    }

    /// `?locale=` for the catalogue operations (tool titles in the page's language).
    pub fn locale_query(&self) -> &'static str {
        match self.tr.0 {
            Locale::En => "locale=en",
            Locale::Zh => "locale=zh",
        }
    }
}

/// The page's Content-Security-Policy: only our own scripts and styles; images, uploads
/// and downloads also from the object store's origins when it is S3 (presigned URLs).
pub fn csp(state: &AppState) -> String {
    let mut extra = String::new();
    if let Some(s3) = &state.settings().s3 {
        let presigned = s3.public_endpoint.as_deref().unwrap_or(&s3.endpoint);
        for url in std::iter::once(presigned).chain(s3.cdn_url.as_deref()) {
            if let Some(origin) = crate::urls::origin(url) {
                extra.push(' ');
                extra.push_str(&origin);
            }
        }
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{extra}; \
         connect-src 'self' blob: data:{extra}; media-src 'self'{extra}; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// An HTML page response with the security and cache headers.
pub fn html_response(state: &AppState, status: StatusCode, private: bool, body: String) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, if private { "no-store" } else { "no-cache" })
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .header(header::VARY, "cookie, accept-language")
        .body(body);
    if let Ok(v) = HeaderValue::from_str(&csp(state)) {
        resp.headers_mut().insert("content-security-policy", v);
    }
    resp
}

/// A local path to go back to after sign-in (never another site: `//host` and `/\host`
/// are refused).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.contains("://") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The web UI's routes (added to the server's route table); `api` answers the pages'
/// in-process API calls.
pub fn routes(route: Route, api: BoxEndpoint<'static>) -> Route {
    let backend = Backend::new(api);
    let page = |ep| poem::get(ep).data(backend.clone());
    route
        .at("/", page(pages::home_page.boxed()))
        .at("/sign-in", page(pages::sign_in_page.boxed()))
        .at("/sign-up", page(pages::sign_up_page.boxed()))
        .at("/forgot-password", page(pages::forgot_password_page.boxed()))
        .at("/reset-password", page(pages::reset_password_page.boxed()))
        .at("/verify-email", page(pages::verify_email_page.boxed()))
        .at("/device", page(pages::device_page.boxed()))
        .at("/tools/:slug", page(pages::tool_page.boxed()))
        .at("/tasks", page(pages::tasks_page.boxed()))
        .at("/tasks/:id", page(pages::task_page.boxed()))
        .at("/assets", page(pages::assets_page.boxed()))
        .at("/credits", page(pages::credits_page.boxed()))
        .at("/account", page(pages::account_page.boxed()))
        .at("/lang/:tag", poem::get(pages::set_language))
        .at("/static/:hash/*path", poem::get(static_files::serve))
}

/// The web routes outside the spec, for the `Allow` table.
pub const PATHS: &[&str] = &[
    "/",
    "/sign-in",
    "/sign-up",
    "/forgot-password",
    "/reset-password",
    "/verify-email",
    "/device",
    "/tools/{slug}",
    "/tasks",
    "/tasks/{id}",
    "/assets",
    "/credits",
    "/account",
    "/lang/{tag}",
];

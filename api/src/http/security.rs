//! The security schemes the spec documents, and [`Caller`]: the extractor every
//! authenticated operation takes, which turns the presented credential into a
//! [`Principal`] (with the CSRF check for cookies) before the handler runs.

use std::marker::PhantomData;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

use crate::app::AppState;
use crate::auth::ratelimit::UserAction;
use crate::auth::{Principal, check_csrf};
use crate::error::AppError;

/// `Authorization: Bearer <session token or API key>` (CLI, SDK, scripts).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct BearerAuth(pub Bearer);

/// The HttpOnly session cookie set by sign-in (web); its name is `auth::SESSION_COOKIE`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "funmagic.session_token", key_in = "cookie")]
pub struct CookieAuth(pub ApiKey);

/// Either credential; Bearer wins when both are present. Only its spec entries are used:
/// handlers take [`Caller`], which resolves the credential.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerAuth),
    Cookie(CookieAuth),
}

/// An extractor of the caller: what it tells the spec (the [`Auth`] alternatives, no
/// parameter), and how it extracts (`$body`, with the request as `$req`).
macro_rules! caller_extractor {
    ($req:ident => $body:block) => {
        const TYPES: &'static [poem_openapi::ApiExtractorType] = &[poem_openapi::ApiExtractorType::SecurityScheme];
        type ParamType = ();
        type ParamRawType = ();

        fn register(registry: &mut poem_openapi::registry::Registry) {
            <Auth as poem_openapi::ApiExtractor>::register(registry);
        }

        fn security_schemes() -> Vec<&'static str> {
            <Auth as poem_openapi::ApiExtractor>::security_schemes()
        }

        async fn from_request(
            $req: &'a Request,
            _body: &mut poem::RequestBody,
            _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
        ) -> poem::Result<Self> $body
    };
}

/// The authenticated caller, extracted before the handler runs: Bearer (session token or
/// API key) or the session cookie (with the CSRF origin check for writes). The spec shows
/// the same two alternatives as [`Auth`]; failures answer with the precise code
/// (`INVALID_TOKEN`, `API_KEY_REVOKED`, `CSRF`, …) as a JSON error.
pub struct Caller(pub Principal);

impl<'a> poem_openapi::ApiExtractor<'a> for Caller {
    caller_extractor!(req => {
        let (state, secret) = presented(req)?;
        let principal = state.authenticator().resolve(&secret).await.map_err(extract_error)?;
        Ok(Caller(principal))
    });
}

/// The application state and the presented secret (with the CSRF check for a cookie).
fn presented(req: &Request) -> poem::Result<(&AppState, String)> {
    let state = req.data::<AppState>().ok_or_else(|| extract_error(AppError::internal("no application state")))?;
    let Some((secret, from_cookie)) = caller_secret(req) else {
        return Err(extract_error(AppError::unauthenticated()));
    };
    if from_cookie {
        check_csrf(req, &state.settings().auth, state.configured_public_url()).map_err(extract_error)?;
    }
    Ok((state, secret))
}

/// An action with a per-user rate limit (`limits.*_per_minute`) that a [`Counted`] caller
/// is held to.
pub trait RateCounted: Send + Sync {
    const ACTION: UserAction;
}

/// Task submissions (`limits.task_submits_per_minute`).
pub struct Submits;

impl RateCounted for Submits {
    const ACTION: UserAction = UserAction::TaskSubmit;
}

/// Event streams opened (`limits.stream_opens_per_minute`).
pub struct OpensStreams;

impl RateCounted for OpensStreams {
    const ACTION: UserAction = UserAction::StreamOpen;
}

/// [`Caller`], counted against its per-minute limit of `A::ACTION` (429 `RATE_LIMITED` with
/// `Retry-After` when over). In scale-out mode the count is bumped by the same Redis round
/// trip that looks the credential up; the counter is the one `RateLimiter::limit_user`
/// bumps, so processes of either kind count together. Same spec as [`Caller`].
pub struct Counted<A>(pub Principal, PhantomData<A>);

impl<'a, A: RateCounted> poem_openapi::ApiExtractor<'a> for Counted<A> {
    caller_extractor!(req => {
        let (state, secret) = presented(req)?;
        let limits = &state.settings().limits;
        let counter = state.limiter().user_counter(limits, A::ACTION);
        let (principal, counted) =
            state.authenticator().resolve_counting(&secret, counter.as_ref()).await.map_err(extract_error)?;
        state.limiter().limit_counted(limits, A::ACTION, principal.user_id(), counted).await.map_err(extract_error)?;
        Ok(Counted(principal, PhantomData))
    });
}

/// An extractor failure carrying the `AppError`.
fn extract_error(err: AppError) -> poem::Error {
    super::error::poem_error(err)
}

/// The presented secret: the Bearer token when there is one, else the session cookie
/// (`true`: it came from the cookie).
fn caller_secret(req: &Request) -> Option<(String, bool)> {
    let bearer = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string());
    match bearer {
        Some(token) => Some((token, false)),
        None => req.cookie().get(crate::auth::SESSION_COOKIE).map(|c| (c.value_str().to_string(), true)),
    }
}

/// The caller when a valid credential is presented (Bearer, else the session cookie), for
/// routes that answer everyone but tell more to some (health details for admins). Only for
/// reads: no CSRF check is made.
pub async fn optional_principal(state: &AppState, req: &Request) -> Option<Principal> {
    let (secret, _) = caller_secret(req)?;
    state.authenticator().resolve(&secret).await.ok()
}

//! The security schemes the spec documents, and turning a presented credential into a
//! [`Principal`] (with the CSRF check for cookies).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

use crate::app::AppState;
use crate::auth::{Principal, check_csrf};
use crate::error::AppResult;

/// `Authorization: Bearer <session token or API key>` (CLI, SDK, scripts).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct BearerAuth(pub Bearer);

/// The HttpOnly session cookie set by sign-in (web); its name is `auth::SESSION_COOKIE`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "funmagic.session_token", key_in = "cookie")]
pub struct CookieAuth(pub ApiKey);

/// Either credential; Bearer wins when both are present.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerAuth),
    Cookie(CookieAuth),
}

impl Auth {
    /// Resolves the caller; cookie-authenticated writes must pass the CSRF origin check.
    pub async fn principal(&self, state: &AppState, req: &Request) -> AppResult<Principal> {
        let secret = match self {
            Auth::Bearer(BearerAuth(bearer)) => &bearer.token,
            Auth::Cookie(CookieAuth(key)) => {
                check_csrf(req, &state.settings().auth, state.configured_public_url())?;
                &key.key
            }
        };
        state.authenticator().resolve(secret).await
    }
}

/// The caller when a valid credential is presented (Bearer, else the session cookie), for
/// routes that answer everyone but tell more to some (health details for admins). Only for
/// reads: no CSRF check is made.
pub async fn optional_principal(state: &AppState, req: &Request) -> Option<Principal> {
    let bearer = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let secret = bearer.or_else(|| req.cookie().get(crate::auth::SESSION_COOKIE).map(|c| c.value_str().to_string()))?;
    state.authenticator().resolve(&secret).await.ok()
}

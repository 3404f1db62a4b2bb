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

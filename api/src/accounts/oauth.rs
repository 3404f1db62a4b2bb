//! Sign-in with GitHub and Google: OAuth 2.0 authorization code with PKCE (S256) and a
//! state bound to the browser by a cookie. An external identity is linked to an existing
//! user only through an email that both the provider and we have verified, so nobody can
//! pre-register someone else's address and inherit their sign-in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration as ChronoDuration;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::flows::{self, Client, IssuedSession};
use crate::app::AppState;
use crate::auth::token;
use crate::config::OAuthProviderSettings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{NewUser, Role, StoreError};

/// Cookie that binds the `state` to the browser that started the flow.
pub const STATE_COOKIE: &str = "funmagic.oauth_state";
const STATE_TTL: ChronoDuration = ChronoDuration::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    Google,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "github" => Some(Provider::GitHub),
            "google" => Some(Provider::Google),
            _ => None,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Google => "google",
        }
    }

    fn settings(self, state: &AppState) -> AppResult<&OAuthProviderSettings> {
        let oauth = &state.settings().oauth;
        match self {
            Provider::GitHub => oauth.github.as_ref(),
            Provider::Google => oauth.google.as_ref(),
        }
        .ok_or_else(|| {
            AppError::new(
                ErrorKind::NotFound,
                ErrorCode::ProviderNotConfigured,
                format!("sign-in with {} is not enabled here", self.id()),
            )
        })
    }

    fn scope(self) -> &'static str {
        match self {
            Provider::GitHub => "read:user user:email",
            Provider::Google => "openid email profile",
        }
    }
}

/// What the callback needs back, stored server-side under the hash of `state`.
#[derive(Debug, Serialize, Deserialize)]
struct PendingFlow {
    provider: String,
    verifier: String,
    callback: String,
}

/// How long one call to GitHub or Google may take.
const OAUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A path, or a URL on a configured origin (see [`crate::auth::redirect::callback_target`]),
/// so the flow cannot be used as an open redirect; anything else goes to the web app's root.
pub fn safe_callback(state: &AppState, callback: Option<&str>) -> String {
    let settings = state.settings();
    let (public, web) = (state.public_url(), settings.web_url.as_deref());
    callback
        .and_then(|c| crate::auth::redirect::callback_target(&public, web, &settings.auth.cors_origins, c))
        .unwrap_or_else(|| web.map_or_else(|| "/".to_string(), |w| format!("{w}/")))
}

pub fn redirect_uri(state: &AppState, provider: Provider) -> String {
    format!("{}/api/auth/callback/{}", state.public_url(), provider.id())
}

/// Starts a flow: returns the provider URL to redirect to and the state for the cookie.
pub async fn start(state: &AppState, provider: Provider, callback: Option<&str>) -> AppResult<(String, String)> {
    let settings = provider.settings(state)?;
    let flow_state = token::generate("");
    let verifier = token::generate("");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let pending = PendingFlow { provider: provider.id().into(), verifier, callback: safe_callback(state, callback) };
    let identifier = format!("oauth-state:{}", serde_json::to_string(&pending).map_err(AppError::internal)?);
    state.store().verification_create(&identifier, &token::hash(&flow_state), crate::store::now() + STATE_TTL).await?;
    let mut url = reqwest::Url::parse(&settings.authorize_url).map_err(AppError::internal)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &redirect_uri(state, provider))
        .append_pair("scope", provider.scope())
        .append_pair("state", &flow_state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok((url.to_string(), flow_state))
}

/// The identity a provider vouches for.
#[derive(Debug)]
struct Identity {
    account_id: String,
    email: Option<String>,
    email_verified: bool,
    name: String,
    image: Option<String>,
}

/// Finishes a flow: checks state and cookie, exchanges the code, signs in (creating or
/// linking the user as allowed). Returns the session and where to send the browser.
pub async fn finish(
    state: &AppState,
    provider: Provider,
    code: &str,
    flow_state: &str,
    cookie_state: Option<&str>,
    client: &Client,
) -> AppResult<(IssuedSession, String)> {
    let settings = provider.settings(state)?;
    let bad_state = || {
        AppError::new(
            ErrorKind::BadRequest,
            ErrorCode::InvalidState,
            "this sign-in link is invalid or expired; start again",
        )
    };
    if cookie_state != Some(flow_state) {
        return Err(bad_state());
    }
    let identifier = state
        .store()
        .verification_consume("oauth-state:", &token::hash(flow_state), state.clock().now())
        .await?
        .ok_or_else(bad_state)?;
    let pending: PendingFlow =
        serde_json::from_str(identifier.trim_start_matches("oauth-state:")).map_err(|_| bad_state())?;
    if pending.provider != provider.id() {
        return Err(bad_state());
    }
    let http = state.http();
    let access_token = exchange_code(http, settings, &redirect_uri(state, provider), code, &pending.verifier).await?;
    let identity = match provider {
        Provider::GitHub => github_identity(http, settings, &access_token).await?,
        Provider::Google => google_identity(http, settings, &access_token).await?,
    };
    let user = find_or_create_user(state, provider, identity).await?;
    if user.banned {
        return Err(AppError::new(ErrorKind::Forbidden, ErrorCode::UserBanned, "this account has been suspended"));
    }
    Ok((flows::create_session(state, user, client).await?, pending.callback))
}

fn upstream(provider: &str, what: &str) -> AppError {
    tracing::warn!(provider, what, "OAuth provider error");
    AppError::new(ErrorKind::Unavailable, ErrorCode::OauthProviderError, format!("the sign-in provider failed: {what}"))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn exchange_code(
    http: &reqwest::Client,
    settings: &OAuthProviderSettings,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> AppResult<String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", settings.client_id.as_str()),
        ("client_secret", settings.client_secret.expose_secret()),
        ("code_verifier", verifier),
    ];
    let resp = http
        .post(&settings.token_url)
        .header("accept", "application/json")
        .form(&form)
        .timeout(OAUTH_TIMEOUT)
        .send()
        .await
        .map_err(|e| upstream("token", &e.to_string()))?;
    let status = resp.status();
    let parsed: TokenResponse = resp.json().await.map_err(|_| upstream("token", "malformed token response"))?;
    match (parsed.access_token, parsed.error) {
        (Some(token), None) if status.is_success() => Ok(token),
        (_, Some(error)) => Err(AppError::new(
            ErrorKind::BadRequest,
            ErrorCode::OauthCodeRejected,
            format!("the provider refused the sign-in: {error} {}", parsed.error_description.unwrap_or_default())
                .trim()
                .to_string(),
        )),
        _ => Err(upstream("token", &format!("HTTP {status}"))),
    }
}

#[derive(Deserialize)]
struct GitHubUser {
    id: i64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

async fn github_identity(http: &reqwest::Client, settings: &OAuthProviderSettings, token: &str) -> AppResult<Identity> {
    let get = |path: &str| {
        http.get(format!("{}{path}", settings.api_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .timeout(OAUTH_TIMEOUT)
            .send()
    };
    let user: GitHubUser = get("/user")
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("github user", &e.to_string()))?
        .json()
        .await
        .map_err(|_| upstream("github user", "malformed user"))?;
    let emails: Vec<GitHubEmail> = get("/user/emails")
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("github emails", &e.to_string()))?
        .json()
        .await
        .map_err(|_| upstream("github emails", "malformed emails"))?;
    let primary = emails.iter().find(|e| e.primary && e.verified).or_else(|| emails.iter().find(|e| e.verified));
    Ok(Identity {
        account_id: user.id.to_string(),
        email: primary.map(|e| e.email.clone()),
        email_verified: primary.is_some(),
        name: user.name.filter(|n| !n.trim().is_empty()).unwrap_or(user.login),
        image: user.avatar_url,
    })
}

#[derive(Deserialize)]
struct GoogleUser {
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    picture: Option<String>,
}

async fn google_identity(http: &reqwest::Client, settings: &OAuthProviderSettings, token: &str) -> AppResult<Identity> {
    let user: GoogleUser = http
        .get(&settings.api_url)
        .bearer_auth(token)
        .timeout(OAUTH_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("google userinfo", &e.to_string()))?
        .json()
        .await
        .map_err(|_| upstream("google userinfo", "malformed userinfo"))?;
    let name = user.name.clone().or_else(|| user.email.clone()).unwrap_or_else(|| "Google user".into());
    Ok(Identity {
        account_id: user.sub,
        email_verified: user.email_verified.unwrap_or(false) && user.email.is_some(),
        email: user.email,
        name,
        image: user.picture,
    })
}

async fn find_or_create_user(
    state: &AppState,
    provider: Provider,
    identity: Identity,
) -> AppResult<crate::store::UserRow> {
    let store = state.store();
    let user = if let Some(account) = store.account_get(provider.id(), &identity.account_id).await? {
        store.user_get(account.user_id).await?.ok_or_else(|| AppError::not_found("user"))?
    } else {
        link_user(state, provider, &identity).await?
    };
    // When this sign-in happened: what "signed in recently" is judged by (account deletion).
    store.account_touch(provider.id(), &identity.account_id, state.clock().now()).await?;
    // The provider's picture becomes the avatar of a user who has none.
    match identity.image.as_deref() {
        Some(url) if user.image.is_none() && url.len() <= 2048 && crate::urls::is_http_url(url) => {
            Ok(store.user_set_profile(user.id, None, Some(Some(url))).await?.unwrap_or(user))
        }
        _ => Ok(user),
    }
}

/// The user an external account signs in for the first time: the one with its verified
/// email, or a new one; the external account is linked to it.
async fn link_user(state: &AppState, provider: Provider, identity: &Identity) -> AppResult<crate::store::UserRow> {
    let store = state.store();
    let (Some(email), true) = (identity.email.as_deref(), identity.email_verified) else {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            ErrorCode::EmailNotVerified,
            format!("your {} account has no verified email address", provider.id()),
        ));
    };
    let email = flows::normalize_email(email)?;
    let user = match store.user_get_by_email(&email).await? {
        Some(user) if user.email_verified => user,
        Some(_) => {
            return Err(AppError::conflict(
                ErrorCode::AccountExistsUnverified,
                "an account with this email exists but its address is not verified; sign in with your password and verify it first",
            ));
        }
        None => {
            let name = flows::validate_name(&identity.name).unwrap_or_else(|_| email.clone());
            let new = NewUser { email, name, role: Role::User, email_verified: true };
            match store.user_create(&new).await {
                Ok(user) => {
                    crate::credits::grant_signup_bonus(state, user.id).await?;
                    user
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(AppError::conflict(
                        ErrorCode::EmailTaken,
                        "an account with this email was just created; try again",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    store.account_link(user.id, provider.id(), &identity.account_id, None, Some(provider.scope())).await.map_err(
        |e| match e {
            StoreError::Conflict(_) => {
                AppError::conflict(ErrorCode::AccountLinked, "this external account is already linked")
            }
            other => other.into(),
        },
    )?;
    Ok(user)
}

//! `/api/auth/*`: better-auth's route names for email + password, sessions, verification
//! and reset; API keys; the RFC 8628 device authorization grant for the CLI.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::{ApiKey, ApiKeyScope, RevokedSessions, Session, Success, User};
use super::security::Caller;
use super::text::{DeviceGrantType, Email, HttpUrl, Line, Name, NewPassword, Opt, Password, Prose, Text, Token};
use crate::accounts::flows::{self, Client, DevicePoll, IssuedSession};
use crate::app::AppState;
use crate::auth::{Credential, SESSION_COOKIE, client_ip, user_agent};
use crate::error::{AppError, ErrorCode, ErrorKind};

type Result<T> = std::result::Result<T, ErrorResponse>;

fn client(state: &AppState, req: &Request) -> Client {
    Client { ip: client_ip(req, state.settings().auth.trust_forwarded_for), user_agent: user_agent(req) }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct SignUpRequest {
    pub name: Name,
    pub email: Email,
    pub password: NewPassword,
}

impl poem_openapi::types::Example for SignUpRequest {
    fn example() -> Self {
        Self {
            name: Name("Ada Lovelace".into()),
            email: Email("ada@example.com".into()),
            password: NewPassword("correct horse battery".into()),
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct SignInRequest {
    pub email: Email,
    pub password: Password,
}

impl poem_openapi::types::Example for SignInRequest {
    fn example() -> Self {
        Self { email: Email("ada@example.com".into()), password: Password("correct horse battery".into()) }
    }
}

/// A new session: `token` is the bearer secret (shown once; the web gets it as a cookie).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AuthResponse {
    pub token: String,
    pub user: User,
    pub session: Session,
}

#[derive(Debug, ApiResponse)]
pub enum SignedIn {
    /// Signed in; the session cookie is set too.
    #[oai(status = 200)]
    Ok(Json<AuthResponse>, #[oai(header = "Set-Cookie")] String),
}

#[derive(Debug, ApiResponse)]
pub enum SignedOut {
    /// Signed out; the session cookie is cleared.
    #[oai(status = 200)]
    Ok(Json<Success>, #[oai(header = "Set-Cookie")] String),
}

/// The caller: their user, and the session or API key they authenticated with.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionInfo {
    pub user: User,
    /// Present when authenticated with a session.
    pub session: Option<SessionSummary>,
    /// Present when authenticated with an API key.
    pub api_key_id: Option<Uuid>,
    /// The effective scope of this credential.
    pub scope: ApiKeyScope,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionSummary {
    pub id: Uuid,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PasswordResetRequest {
    pub email: Email,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ResetPasswordRequest {
    pub token: Token<512>,
    pub new_password: NewPassword,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ChangePasswordRequest {
    pub current_password: Password,
    pub new_password: NewPassword,
    /// Sign out every other session (default true).
    pub revoke_other_sessions: Opt<bool>,
    /// Revoke every API key (and device sign-ins approved but not collected yet) (default true).
    pub revoke_api_keys: Opt<bool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct CreateApiKeyRequest {
    pub name: Name,
    pub scope: ApiKeyScope,
    /// Days until the key stops working (1–3650); none: never.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Opt<u32>,
}

impl poem_openapi::types::Example for CreateApiKeyRequest {
    fn example() -> Self {
        Self { name: Name("ci".into()), scope: ApiKeyScope::Read, expires_in_days: Opt(Some(90)) }
    }
}

/// The new key's secret is in `key`, shown this once.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreatedApiKey {
    pub key: String,
    pub api_key: ApiKey,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

/// RFC 8628 §3.1 (field names as in the RFC).
#[derive(Debug, Object)]
pub struct DeviceCodeRequest {
    /// Shown to the person approving, e.g. `funmagic-cli on laptop`.
    pub client_id: Opt<Prose<200>>,
}

/// RFC 8628 §3.2.
#[derive(Debug, Object)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i32,
}

/// RFC 8628 §3.4.
#[derive(Debug, Object)]
pub struct DeviceTokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: DeviceGrantType,
    pub device_code: Token<512>,
}

/// RFC 6749 §5.1 access token response; the token is a session token.
#[derive(Debug, Object)]
pub struct DeviceTokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeviceApproveRequest {
    /// As shown (`ABCD-EFGH`); case, spaces and dashes do not matter.
    pub user_code: Line<64>,
    /// false denies the request.
    pub approve: bool,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeviceApproveResponse {
    pub approved: bool,
    /// The client that asked, as it named itself.
    pub client_name: String,
}

/// A pending device sign-in request, as the approval page shows it before confirmation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DevicePending {
    pub user_code: String,
    /// The client that asked, as it named itself.
    pub client_name: String,
    /// When the client asked.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Seconds since the client asked.
    pub age_secs: i64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A change to the caller's profile: only the fields present change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateProfileRequest {
    pub name: Opt<Name>,
    /// The picture's URL (http or https).
    pub image: Opt<HttpUrl>,
    /// An uploaded image of the caller's (an asset id) becomes the picture: the file is
    /// published and its public URL kept. Not with `image`.
    pub image_asset_id: Opt<Uuid>,
    /// `true` removes the picture (`image` and `imageAssetId` are then ignored).
    pub remove_image: Opt<bool>,
}

/// The proof asked to delete one's own account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeleteAccountRequest {
    /// The account's password; an account without one (OAuth sign-in only) leaves it out
    /// and must use a session signed in within the last ten minutes.
    pub password: Opt<Password>,
}

/// One of the caller's sessions (a signed-in browser or CLI).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionEntry {
    pub id: Uuid,
    /// The session this request is made with.
    pub current: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the session was last used, to the day (sessions are touched at most daily).
    pub last_used_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The client address it was created from.
    pub ip_address: Option<String>,
    /// The client program it was created by (`User-Agent`).
    pub user_agent: Option<String>,
}

#[derive(Debug, Object)]
pub struct SessionList {
    pub sessions: Vec<SessionEntry>,
}

pub struct AuthApi;

/// The session cookie (`auth.cookie_domain` shares it with the subdomains of that domain).
pub(crate) fn session_cookie(state: &AppState, value: &str, max_age_secs: i64) -> String {
    let secure = if state.public_url().starts_with("https://") { "; Secure" } else { "" };
    let domain = match &state.settings().auth.cookie_domain {
        Some(d) => format!("; Domain={d}"),
        None => String::new(),
    };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{domain}{secure}")
}

fn signed_in(state: &AppState, issued: IssuedSession) -> SignedIn {
    let max_age = (issued.session.expires_at - state.clock().now()).num_seconds().max(0);
    let cookie = session_cookie(state, &issued.token, max_age);
    SignedIn::Ok(
        Json(AuthResponse { token: issued.token, user: issued.user.into(), session: issued.session.into() }),
        cookie,
    )
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Creates an account with email and password, and signs it in.
    #[oai(path = "/api/auth/sign-up/email", method = "post", operation_id = "auth_sign_up_email")]
    async fn sign_up(&self, state: Data<&AppState>, req: &Request, body: Json<SignUpRequest>) -> Result<SignedIn> {
        let issued = flows::sign_up(&state, &body.name, &body.email, &body.password, &client(&state, req)).await?;
        Ok(signed_in(&state, issued))
    }

    /// Signs in with email and password.
    #[oai(path = "/api/auth/sign-in/email", method = "post", operation_id = "auth_sign_in_email")]
    async fn sign_in(&self, state: Data<&AppState>, req: &Request, body: Json<SignInRequest>) -> Result<SignedIn> {
        let issued = flows::sign_in(&state, &body.email, &body.password, &client(&state, req)).await?;
        Ok(signed_in(&state, issued))
    }

    /// Ends the current session.
    #[oai(path = "/api/auth/sign-out", method = "post", operation_id = "auth_sign_out")]
    async fn sign_out(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<SignedOut> {
        flows::sign_out(&state, &principal).await?;
        Ok(SignedOut::Ok(Success::ok(), session_cookie(&state, "", 0)))
    }

    /// The caller's user and credential.
    #[oai(path = "/api/auth/get-session", method = "get", operation_id = "auth_session_get")]
    async fn get_session(&self, Caller(principal): Caller) -> Result<Json<SessionInfo>> {
        let scope = principal.scope().into();
        let (session, api_key_id) = match &principal.credential {
            Credential::Session { id, expires_at, .. } => {
                (Some(SessionSummary { id: *id, expires_at: *expires_at }), None)
            }
            Credential::ApiKey { id, .. } => (None, Some(*id)),
        };
        Ok(Json(SessionInfo { user: principal.user.into(), session, api_key_id, scope }))
    }

    /// Changes the caller's name and/or picture; answers the updated user.
    #[oai(path = "/api/auth/user", method = "patch", operation_id = "auth_user_update")]
    async fn user_update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<UpdateProfileRequest>,
    ) -> Result<Json<User>> {
        let remove = body.remove_image.get().unwrap_or(false);
        let from_asset = match (body.image_asset_id.get(), body.image.as_str(), remove) {
            (Some(_), Some(_), false) => {
                return Err(AppError::validation("give image or imageAssetId, not both").into());
            }
            (Some(id), None, false) => Some(crate::assets::avatar_url(&state, &principal, id).await?),
            _ => None,
        };
        let image = match (from_asset.as_deref().or(body.image.as_str()), remove) {
            (_, true) => Some(None),
            (Some(url), false) => Some(Some(url)),
            (None, false) => None,
        };
        let user = flows::profile_update(&state, &principal, body.name.as_str(), image).await?;
        Ok(Json(user.into()))
    }

    /// Deletes the caller's account: sessions, API keys and files go at once, unfinished
    /// tasks are cancelled with their credits released; the credits ledger and the tasks
    /// stay, tied to an anonymised record. The last super admin cannot delete itself.
    #[oai(path = "/api/auth/user", method = "delete", operation_id = "auth_user_delete")]
    async fn user_delete(
        &self,
        state: Data<&AppState>,
        req: &Request,
        Caller(principal): Caller,
        body: Json<DeleteAccountRequest>,
    ) -> Result<SignedOut> {
        flows::delete_own_account(&state, &principal, body.password.as_str(), &client(&state, req)).await?;
        Ok(SignedOut::Ok(Success::ok(), session_cookie(&state, "", 0)))
    }

    /// The caller's live sessions, newest first; the one making this request is marked.
    #[oai(path = "/api/auth/sessions", method = "get", operation_id = "auth_session_list")]
    async fn session_list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<SessionList>> {
        let current = principal.session_id();
        let sessions = flows::sessions_list(&state, &principal).await?;
        Ok(Json(SessionList {
            sessions: sessions
                .into_iter()
                .map(|s| SessionEntry {
                    id: s.id,
                    current: Some(s.id) == current,
                    created_at: s.created_at,
                    last_used_at: s.updated_at,
                    expires_at: s.expires_at,
                    ip_address: s.ip_address,
                    user_agent: s.user_agent,
                })
                .collect(),
        }))
    }

    /// Ends one of the caller's sessions at once (the current one too: that signs out).
    #[oai(path = "/api/auth/sessions/:id", method = "delete", operation_id = "auth_session_revoke")]
    async fn session_revoke(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        flows::session_revoke(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// Ends every session of the caller except the one making this request (with an API
    /// key: every session).
    #[oai(path = "/api/auth/sessions/revoke-others", method = "post", operation_id = "auth_sessions_revoke_others")]
    async fn sessions_revoke_others(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
    ) -> Result<Json<RevokedSessions>> {
        let revoked = flows::sessions_revoke_others(&state, &principal).await?;
        Ok(Json(RevokedSessions { revoked: revoked as u64 }))
    }

    /// Sends a new email verification link to the caller.
    #[oai(path = "/api/auth/send-verification-email", method = "post", operation_id = "auth_verification_email_send")]
    async fn send_verification(
        &self,
        state: Data<&AppState>,
        req: &Request,
        Caller(principal): Caller,
    ) -> Result<Json<Success>> {
        flows::resend_verification(&state, &principal, &client(&state, req)).await?;
        Ok(Success::ok())
    }

    /// Confirms an email address with the token from the verification link.
    #[oai(path = "/api/auth/verify-email", method = "get", operation_id = "auth_email_verify")]
    async fn verify_email(&self, state: Data<&AppState>, token: Query<Token<512>>) -> Result<Json<User>> {
        Ok(Json(flows::verify_email(&state, &token).await?.into()))
    }

    /// Mails a password-reset token if the address has an account (the answer is the same either way).
    #[oai(path = "/api/auth/request-password-reset", method = "post", operation_id = "auth_password_reset_request")]
    async fn request_reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordResetRequest>,
    ) -> Result<Json<Success>> {
        flows::request_password_reset(&state, &body.email, &client(&state, req)).await?;
        Ok(Success::ok())
    }

    /// Sets a new password with a reset token; every session, API key and approved device
    /// sign-in of the account is revoked, and the email counts as verified.
    #[oai(path = "/api/auth/reset-password", method = "post", operation_id = "auth_password_reset")]
    async fn reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ResetPasswordRequest>,
    ) -> Result<Json<Success>> {
        flows::reset_password(&state, &body.token, &body.new_password, &client(&state, req)).await?;
        Ok(Success::ok())
    }

    /// Changes the caller's password.
    #[oai(path = "/api/auth/change-password", method = "post", operation_id = "auth_password_change")]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        Caller(principal): Caller,
        body: Json<ChangePasswordRequest>,
    ) -> Result<Json<Success>> {
        let revoke = body.revoke_other_sessions.unwrap_or(true);
        flows::change_password(
            &state,
            &principal,
            &body.current_password,
            &body.new_password,
            revoke,
            body.revoke_api_keys.unwrap_or(true),
            &client(&state, req),
        )
        .await?;
        Ok(Success::ok())
    }

    /// Creates an API key; its secret is returned this once. Needs a signed-in session (403
    /// `SESSION_REQUIRED` for an API key).
    #[oai(path = "/api/auth/api-keys", method = "post", operation_id = "auth_api_key_create")]
    async fn api_key_create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<CreateApiKeyRequest>,
    ) -> Result<Json<CreatedApiKey>> {
        let issued =
            flows::api_key_create(&state, &principal, &body.name, body.scope.into(), body.expires_in_days.get())
                .await?;
        Ok(Json(CreatedApiKey { key: issued.secret, api_key: issued.key.into() }))
    }

    /// The caller's live API keys.
    #[oai(path = "/api/auth/api-keys", method = "get", operation_id = "auth_api_key_list")]
    async fn api_key_list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ApiKeyList>> {
        let keys = flows::api_keys(&state, &principal).await?;
        Ok(Json(ApiKeyList { api_keys: keys.into_iter().map(Into::into).collect() }))
    }

    /// Revokes one of the caller's API keys; it stops working at once.
    #[oai(path = "/api/auth/api-keys/:id", method = "delete", operation_id = "auth_api_key_revoke")]
    async fn api_key_revoke(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        flows::api_key_revoke(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// RFC 8628 device authorization request (used by `funmagic auth login`).
    #[oai(path = "/api/auth/device/code", method = "post", operation_id = "auth_device_code_create")]
    async fn device_code(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<DeviceCodeRequest>,
    ) -> Result<Json<DeviceCodeResponse>> {
        let name = body.client_id.to_owned_string().unwrap_or_default();
        let (device_code, row) = flows::device_code_create(&state, &name, &client(&state, req)).await?;
        let uri = format!("{}/device", state.public_url());
        Ok(Json(DeviceCodeResponse {
            device_code,
            verification_uri_complete: format!("{uri}?user_code={}", row.user_code),
            verification_uri: uri,
            user_code: row.user_code,
            expires_in: flows::DEVICE_CODE_TTL_SECS,
            interval: row.interval_secs,
        }))
    }

    /// RFC 8628 device access token request. While waiting, answers 400 with `error`
    /// `authorization_pending` or `slow_down`; then `access_denied` or `expired_token`.
    #[oai(path = "/api/auth/device/token", method = "post", operation_id = "auth_device_token_create")]
    async fn device_token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<DeviceTokenRequest>,
    ) -> Result<Json<DeviceTokenResponse>> {
        if !DeviceGrantType::accepts(&body.grant_type) {
            return Err(rfc_error(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be urn:ietf:params:oauth:grant-type:device_code",
            ));
        }
        match flows::device_token_poll(&state, &body.device_code, &client(&state, req)).await {
            Err(e) if e.code == ErrorCode::SlowDown => {
                Err(rfc_error(ErrorCode::SlowDown, "polling too fast; wait longer between requests"))
            }
            Err(e) if e.code == ErrorCode::InvalidGrant => Err(rfc_error(ErrorCode::InvalidGrant, &e.message)),
            Err(e) => Err(e.into()),
            Ok(DevicePoll::Pending) => {
                Err(rfc_error(ErrorCode::AuthorizationPending, "waiting for the user to approve"))
            }
            Ok(DevicePoll::SlowDown) => {
                Err(rfc_error(ErrorCode::SlowDown, "polling too fast; wait longer between requests"))
            }
            Ok(DevicePoll::Denied) => Err(rfc_error(ErrorCode::AccessDenied, "the request was denied")),
            Ok(DevicePoll::Expired) => Err(rfc_error(ErrorCode::ExpiredToken, "the device code expired; start again")),
            Ok(DevicePoll::Granted(issued)) => Ok(Json(DeviceTokenResponse {
                expires_in: (issued.session.expires_at - state.clock().now()).num_seconds(),
                access_token: issued.token,
                token_type: "Bearer".into(),
            })),
        }
    }

    /// A pending device sign-in request by its user code: which client asked and when, so the
    /// person can check it before approving. Needs a signed-in session.
    #[oai(path = "/api/auth/device/pending", method = "get", operation_id = "auth_device_pending_get")]
    async fn device_pending(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        user_code: Query<Line<64>>,
    ) -> Result<Json<DevicePending>> {
        let row = flows::device_lookup(&state, &principal, &user_code).await?;
        Ok(Json(DevicePending {
            age_secs: (state.clock().now() - row.created_at).num_seconds().max(0),
            user_code: row.user_code,
            client_name: row.client_name,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }))
    }

    /// Approves (or denies) a device sign-in request by its user code, as the caller. Needs a
    /// signed-in session (403 `SESSION_REQUIRED` for an API key).
    #[oai(path = "/api/auth/device/approve", method = "post", operation_id = "auth_device_approve")]
    async fn device_approve(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<DeviceApproveRequest>,
    ) -> Result<Json<DeviceApproveResponse>> {
        let client_name = flows::device_decide(&state, &principal, &body.user_code, body.approve).await?;
        Ok(Json(DeviceApproveResponse { approved: body.approve, client_name }))
    }
}

/// An RFC 6749 §5.2 error: `error` is the RFC's code (our `code` in lower case), details
/// say more.
fn rfc_error(code: ErrorCode, description: &str) -> ErrorResponse {
    let mut err = AppError::new(ErrorKind::BadRequest, code, code.as_str().to_ascii_lowercase());
    err.details = Some(serde_json::json!({ "error_description": description }));
    err.into()
}

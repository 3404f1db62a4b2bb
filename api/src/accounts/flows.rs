//! The account flows of the app layer: sign-up, sign-in, sign-out, email verification,
//! password reset and change, API keys, the device authorization grant, and the admin
//! actions on users. Handlers call these; these enforce limits, rules and invariants.

use chrono::Duration as ChronoDuration;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, MINUTE, Principal, token};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{ApiKeyRow, DeviceCodeStatus, KeyScope, NewUser, Role, SessionRow, StoreError, UserRow};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_EMAIL_LEN: usize = 254;
const EMAIL_VERIFICATION_TTL: ChronoDuration = ChronoDuration::hours(24);
const PASSWORD_RESET_TTL: ChronoDuration = ChronoDuration::hours(1);
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
pub const DEVICE_POLL_INTERVAL_SECS: i32 = 5;

/// Who is calling, for limits and session records.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// A new session: the secret (shown once) and its row.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub session: SessionRow,
    pub user: UserRow,
}

/// Lower-cases and checks an email address (shape and length only; delivery proves it).
pub fn normalize_email(raw: &str) -> AppResult<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || AppError::new(ErrorKind::Validation, ErrorCode::InvalidEmail, "that is not a valid email address");
    if raw.chars().count() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local.contains('@')
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        // Reserved (RFC 2606): never delivers mail, and deleted accounts are renamed into it.
        || domain == "invalid"
        || domain.ends_with(".invalid")
    {
        return Err(invalid());
    }
    Ok(email)
}

/// Trims a name and checks it: 1 to `MAX_NAME_LEN` characters as given, no control
/// characters, not only spaces (the rule the spec states for `http::text::Name`).
pub fn validate_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    let len = raw.chars().count();
    if name.is_empty() || len > MAX_NAME_LEN || raw.chars().any(char::is_control) {
        return Err(AppError::new(
            ErrorKind::Validation,
            ErrorCode::InvalidName,
            format!("the name must have 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(name.to_string())
}

async fn limit_ip(state: &AppState, action: &str, client: &Client) -> AppResult<()> {
    let limit = state.settings().auth.rate_limit_per_minute;
    state.limiter().check(&format!("{action}:ip:{}", client.ip), limit, MINUTE).await
}

/// Per (email, client address): wrong passwords from one place slow that place down, and a
/// stranger elsewhere cannot lock the owner out of their account.
async fn limit_email_from(state: &AppState, action: &str, email: &str, client: &Client) -> AppResult<()> {
    let limit = state.settings().auth.rate_limit_per_email_per_minute;
    let key = token::hash(&format!("{email}\n{}", client.ip));
    state.limiter().check(&format!("{action}:email-ip:{key}"), limit, MINUTE).await
}

async fn limit_email(state: &AppState, action: &str, email: &str) -> AppResult<()> {
    let limit = state.settings().auth.rate_limit_per_email_per_minute;
    state.limiter().check(&format!("{action}:email:{}", token::hash(email)), limit, MINUTE).await
}

pub async fn sign_up(
    state: &AppState,
    name: &str,
    email: &str,
    password: &str,
    client: &Client,
) -> AppResult<IssuedSession> {
    if !state.settings().auth.signup_enabled {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            ErrorCode::SignupDisabled,
            "sign-up is disabled on this server",
        ));
    }
    limit_ip(state, "sign-up", client).await?;
    let name = validate_name(name)?;
    let email = normalize_email(email)?;
    crate::auth::password::validate_new_password(password)?;
    let hash = state.hasher().hash(password).await?;
    let new = NewUser { email: email.clone(), name, role: Role::User, email_verified: false };
    let user = state.store().user_create_with_password(&new, &hash).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            AppError::conflict(ErrorCode::EmailTaken, "an account with this email already exists; sign in instead")
        }
        other => other.into(),
    })?;
    crate::credits::grant_signup_bonus(state, user.id).await?;
    send_verification(state, &user).await?;
    create_session(state, user, client).await
}

pub async fn sign_in(state: &AppState, email: &str, password: &str, client: &Client) -> AppResult<IssuedSession> {
    limit_ip(state, "sign-in", client).await?;
    let invalid =
        || AppError::new(ErrorKind::Unauthenticated, ErrorCode::InvalidCredentials, "wrong email or password");
    // A malformed email is answered like a wrong one, after the same work.
    let email = normalize_email(email).unwrap_or_default();
    limit_email_from(state, "sign-in", &email, client).await?;
    let user = if email.is_empty() { None } else { state.store().user_get_by_email(&email).await? };
    let stored = match &user {
        Some(u) => state.store().password_hash_get(u.id).await?,
        None => None,
    };
    if !state.hasher().verify(password, stored.as_deref()).await {
        return Err(invalid());
    }
    let user = user.ok_or_else(invalid)?;
    if user.banned {
        return Err(AppError::new(ErrorKind::Forbidden, ErrorCode::UserBanned, "this account has been suspended"));
    }
    create_session(state, user, client).await
}

pub async fn create_session(state: &AppState, user: UserRow, client: &Client) -> AppResult<IssuedSession> {
    let token = token::generate(token::SESSION_PREFIX);
    let now = state.clock().now();
    let expires_at = now + state.authenticator().session_ttl();
    let session = state
        .store()
        .session_create(user.id, &token::hash(&token), expires_at, Some(&client.ip), client.user_agent.as_deref(), now)
        .await?;
    Ok(IssuedSession { token, session, user })
}

/// Ends the caller's session (an API key is not a session: 403 SESSION_REQUIRED; revoke
/// the key instead).
pub async fn sign_out(state: &AppState, principal: &Principal) -> AppResult<()> {
    let crate::auth::Credential::Session { token_hash, .. } = &principal.credential else {
        // An API key: 403 SESSION_REQUIRED.
        return principal.require_session("signing out (revoke an API key instead)");
    };
    state.store().session_delete_by_token(token_hash).await?;
    state.authenticator().forget(std::slice::from_ref(token_hash)).await;
    Ok(())
}

async fn send_verification(state: &AppState, user: &UserRow) -> AppResult<()> {
    let secret = token::generate(token::VERIFICATION_PREFIX);
    let expires = state.clock().now() + EMAIL_VERIFICATION_TTL;
    state
        .store()
        .verification_create(&format!("email-verification:{}", user.id), &token::hash(&secret), expires)
        .await?;
    // The web app's page when there is one (it calls the API); else the API link itself.
    let link = match &state.settings().web_url {
        Some(web) => format!("{web}/verify-email?token={secret}"),
        None => format!("{}/api/auth/verify-email?token={secret}", state.public_url()),
    };
    let body = format!(
        "Hello {},\n\nconfirm your email address for FunMagic by opening this link within 24 hours:\n\n{link}\n\nIf you did not sign up, ignore this message.\n",
        user.name
    );
    state.mailer().send(&user.email, "Confirm your FunMagic email address", &body).await;
    Ok(())
}

/// Sends a new verification link to the caller (rate limited like sign-in).
pub async fn resend_verification(state: &AppState, principal: &Principal, client: &Client) -> AppResult<()> {
    principal.require(Access::Write)?;
    limit_ip(state, "verify", client).await?;
    limit_email(state, "verify", &principal.user.email).await?;
    if principal.user.email_verified {
        return Err(AppError::conflict(ErrorCode::AlreadyVerified, "this email address is already verified"));
    }
    send_verification(state, &principal.user).await
}

pub async fn verify_email(state: &AppState, secret: &str) -> AppResult<UserRow> {
    let invalid =
        || AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidToken, "this link is invalid, used or expired");
    let identifier = state
        .store()
        .verification_consume("email-verification:", &token::hash(secret), state.clock().now())
        .await?
        .ok_or_else(invalid)?;
    let user_id = parse_identifier(&identifier).ok_or_else(invalid)?;
    state.store().user_set_email_verified(user_id).await?;
    state.authenticator().forget_user(user_id).await;
    state.store().user_get(user_id).await?.ok_or_else(invalid)
}

/// Always succeeds from the caller's point of view, so it does not reveal who has an account.
pub async fn request_password_reset(state: &AppState, email: &str, client: &Client) -> AppResult<()> {
    limit_ip(state, "reset", client).await?;
    // A malformed address is refused (422); an unknown one answers like a known one.
    let email = normalize_email(email)?;
    limit_email(state, "reset", &email).await?;
    let Some(user) = state.store().user_get_by_email(&email).await? else { return Ok(()) };
    let secret = token::generate(token::VERIFICATION_PREFIX);
    let expires = state.clock().now() + PASSWORD_RESET_TTL;
    state.store().verification_create(&format!("password-reset:{}", user.id), &token::hash(&secret), expires).await?;
    let page = match &state.settings().web_url {
        Some(web) => format!("open {web}/reset-password?token={secret}, or "),
        None => String::new(),
    };
    let body = format!(
        "Hello {},\n\nsomeone asked to reset your FunMagic password. Within one hour, {page}run\n\n    funmagic auth reset-password --token {secret}\n\nor send {{\"token\": \"{secret}\", \"newPassword\": \"…\"}} to {}/api/auth/reset-password.\nIf it was not you, ignore this message: your password is unchanged.\n",
        user.name,
        state.public_url()
    );
    state.mailer().send(&user.email, "Reset your FunMagic password", &body).await;
    Ok(())
}

/// Sets a new password from a reset token and signs out every session of the user.
pub async fn reset_password(state: &AppState, secret: &str, new_password: &str, client: &Client) -> AppResult<()> {
    limit_ip(state, "reset", client).await?;
    crate::auth::password::validate_new_password(new_password)?;
    let invalid = || {
        AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidToken, "this reset token is invalid, used or expired")
    };
    let identifier = state
        .store()
        .verification_consume("password-reset:", &token::hash(secret), state.clock().now())
        .await?
        .ok_or_else(invalid)?;
    let user_id = parse_identifier(&identifier).ok_or_else(invalid)?;
    let hash = state.hasher().hash(new_password).await?;
    state.store().password_hash_set(user_id, &hash).await?;
    // Whoever held the account before the reset (e.g. signed up first with someone else's
    // address) loses every credential: sessions, API keys, approved-but-unused device codes.
    revoke_sessions(state, user_id, None).await?;
    revoke_api_keys(state, user_id).await?;
    // The reset token came by mail: the address is proven.
    state.store().user_set_email_verified(user_id).await?;
    Ok(())
}

/// Changes the caller's password; other sessions are signed out (`revoke_others`).
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    current: &str,
    new_password: &str,
    revoke_others: bool,
    revoke_keys: bool,
    client: &Client,
) -> AppResult<()> {
    principal.require(Access::Write)?;
    limit_ip(state, "sign-in", client).await?;
    crate::auth::password::validate_new_password(new_password)?;
    let stored = state.store().password_hash_get(principal.user_id()).await?;
    if !state.hasher().verify(current, stored.as_deref()).await {
        return Err(AppError::new(
            ErrorKind::Unauthenticated,
            ErrorCode::InvalidCredentials,
            "the current password is wrong",
        ));
    }
    let hash = state.hasher().hash(new_password).await?;
    state.store().password_hash_set(principal.user_id(), &hash).await?;
    if revoke_others {
        revoke_sessions(state, principal.user_id(), principal.session_id()).await?;
    }
    if revoke_keys {
        revoke_api_keys(state, principal.user_id()).await?;
    }
    Ok(())
}

/// Revokes every live API key of a user and denies device codes it approved that no device
/// has collected yet; cached principals of those keys are dropped at once.
pub async fn revoke_api_keys(state: &AppState, user_id: Uuid) -> AppResult<usize> {
    let hashes = state.store().api_keys_revoke_for_user(user_id).await?;
    state.store().device_codes_deny_for_user(user_id).await?;
    state.authenticator().forget(&hashes).await;
    state.authenticator().forget_user(user_id).await;
    Ok(hashes.len())
}

/// Deletes a user's sessions (except `keep`) and drops them from every cache.
pub async fn revoke_sessions(state: &AppState, user_id: Uuid, keep: Option<Uuid>) -> AppResult<usize> {
    let hashes = state.store().sessions_delete_for_user(user_id, keep).await?;
    state.authenticator().forget(&hashes).await;
    state.authenticator().forget_user(user_id).await;
    Ok(hashes.len())
}

/// Changes the caller's name and/or picture (`image: Some(None)` removes it). The picture
/// is an http(s) URL of at most 2048 characters.
pub async fn profile_update(
    state: &AppState,
    principal: &Principal,
    name: Option<&str>,
    image: Option<Option<&str>>,
) -> AppResult<UserRow> {
    principal.require(Access::Write)?;
    let name = name.map(validate_name).transpose()?;
    if let Some(Some(url)) = image
        && (url.len() > 2048 || !crate::urls::is_http_url(url))
    {
        return Err(AppError::validation("image must be an http(s) URL of at most 2048 characters"));
    }
    let user = state
        .store()
        .user_set_profile(principal.user_id(), name.as_deref(), image)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    // Cached principals carry the user row: drop them so every credential sees the change.
    state.authenticator().forget_user(user.id).await;
    Ok(user)
}

/// The caller's live sessions, newest first.
pub async fn sessions_list(state: &AppState, principal: &Principal) -> AppResult<Vec<crate::store::SessionRow>> {
    Ok(state.store().sessions_of_user(principal.user_id(), state.clock().now()).await?)
}

/// Ends one of the caller's sessions (the current one too: that signs out). 404 for a
/// session that is not the caller's.
pub async fn session_revoke(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Write)?;
    let hash = state
        .store()
        .session_delete_of_user(principal.user_id(), id)
        .await?
        .ok_or_else(|| AppError::not_found("session"))?;
    state.authenticator().forget(&[hash]).await;
    Ok(())
}

/// Ends every session of the caller but the one making the request (every session, when
/// the caller uses an API key); returns how many ended.
pub async fn sessions_revoke_others(state: &AppState, principal: &Principal) -> AppResult<usize> {
    principal.require(Access::Write)?;
    revoke_sessions(state, principal.user_id(), principal.session_id()).await
}

/// How recently an account without a password must have signed in to delete itself.
const FRESH_SIGN_IN_MINUTES: i64 = 10;

/// Deletes the caller's own account. The proof asked for: the password; an account without
/// one (OAuth sign-in only) must use a session made within the last ten minutes, with an
/// OAuth sign-in within them too.
pub async fn delete_own_account(
    state: &AppState,
    principal: &Principal,
    password: Option<&str>,
    client: &Client,
) -> AppResult<()> {
    principal.require(Access::Write)?;
    limit_ip(state, "sign-in", client).await?;
    match state.store().password_hash_get(principal.user_id()).await? {
        Some(stored) => {
            let password =
                password.ok_or_else(|| AppError::validation("password is required to delete this account"))?;
            if !state.hasher().verify(password, Some(&stored)).await {
                return Err(AppError::new(
                    ErrorKind::Unauthenticated,
                    ErrorCode::InvalidCredentials,
                    "the password is wrong",
                ));
            }
        }
        None => {
            // Both the session and an OAuth sign-in must be recent: a session that a device
            // approval minted from an old one is new, but no sign-in happened.
            let now = state.clock().now();
            let recent =
                |at: chrono::DateTime<chrono::Utc>| now - at <= chrono::Duration::minutes(FRESH_SIGN_IN_MINUTES);
            let fresh = match principal.session_id() {
                Some(id) => {
                    let sessions = state.store().sessions_of_user(principal.user_id(), now).await?;
                    sessions.iter().any(|s| s.id == id && recent(s.created_at))
                        && state.store().last_external_sign_in(principal.user_id()).await?.is_some_and(recent)
                }
                None => false,
            };
            if !fresh {
                return Err(AppError::new(
                    ErrorKind::Forbidden,
                    ErrorCode::ReauthenticationRequired,
                    format!(
                        "this account has no password: sign in again and delete it within {FRESH_SIGN_IN_MINUTES} minutes, from that session"
                    ),
                ));
            }
        }
    }
    delete_account(state, principal.user_id()).await
}

/// An admin deletes a user's account: admins may delete users, only a super admin may
/// delete an admin or a super admin, and the last super admin cannot go.
pub async fn admin_delete_user(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    let target = admin_user_get(state, principal, id).await?;
    if target.deleted_at.is_some() {
        return Err(AppError::not_found("user"));
    }
    if target.role() >= Role::Admin {
        principal.require(Access::SuperAdmin)?;
    }
    delete_account(state, id).await
}

/// The deletion: the account becomes an anonymised tombstone and loses every credential at
/// once (one transaction), then its unfinished tasks are cancelled (their reserved credits
/// released by the cancellation) and its files deleted. The ledger and the tasks stay, tied
/// to the tombstone. Should the process stop half-way, `sweep_deleted_accounts` finishes.
async fn delete_account(state: &AppState, user_id: Uuid) -> AppResult<()> {
    let hashes = state.store().user_delete_account(user_id).await.map_err(|e| match e {
        StoreError::NotFound => AppError::not_found("user"),
        StoreError::Constraint(c) if c == "last_super_admin" => AppError::conflict(
            ErrorCode::LastSuperAdmin,
            "the last super admin cannot be deleted; promote another one first",
        ),
        other => other.into(),
    })?;
    state.authenticator().forget(&hashes).await;
    state.authenticator().forget_user(user_id).await;
    tracing::info!(user = %user_id, "account deleted");
    // The account is gone from here on; what fails now the sweep finishes.
    if let Err(e) = finish_deletion(state, user_id).await {
        tracing::warn!(user = %user_id, error = %e, "account deleted; its files and tasks are left to the sweep");
    }
    Ok(())
}

/// Cancels a deleted account's unfinished tasks and deletes its files.
async fn finish_deletion(state: &AppState, user_id: Uuid) -> AppResult<()> {
    for task in state.store().tasks_unfinished_of_user(user_id, 10_000).await? {
        crate::tasks::request_cancel(state, task).await?;
    }
    crate::assets::remove_all_of_user(state, user_id).await?;
    Ok(())
}

/// Finishes deletions a stopped process left (and files a cancelled task's last step stored
/// after its account went); returns how many accounts it worked on.
pub async fn sweep_deleted_accounts(state: &AppState) -> AppResult<usize> {
    let users = state.store().users_deleted_unfinished(100).await?;
    for &user in &users {
        // One account's failure (a storage error) must not hold up the others.
        if let Err(e) = finish_deletion(state, user).await {
            tracing::warn!(user = %user, error = %e, "could not finish an account deletion");
        }
    }
    Ok(users.len())
}

fn parse_identifier(identifier: &str) -> Option<Uuid> {
    identifier.rsplit_once(':').and_then(|(_, id)| Uuid::parse_str(id).ok())
}

/// A new API key: the secret (shown once) and its row.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub secret: String,
    pub key: ApiKeyRow,
}

pub async fn api_key_create(
    state: &AppState,
    principal: &Principal,
    name: &str,
    scope: KeyScope,
    expires_in_days: Option<u32>,
) -> AppResult<IssuedKey> {
    principal.require(Access::Write)?;
    principal.require_session("creating an API key")?;
    let name = validate_name(name)?;
    if scope == KeyScope::Admin {
        principal.require(Access::Admin).map_err(|_| {
            AppError::new(
                ErrorKind::Forbidden,
                ErrorCode::Forbidden,
                "only admins can create keys with the admin scope",
            )
        })?;
    }
    if principal.scope() < scope {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            ErrorCode::InsufficientScope,
            "a key cannot create a key with more scope than its own",
        ));
    }
    if expires_in_days == Some(0) || expires_in_days.is_some_and(|d| d > 3650) {
        return Err(AppError::validation("expiresInDays must be between 1 and 3650"));
    }
    if state.store().api_key_list(principal.user_id()).await?.len() >= 100 {
        return Err(AppError::conflict(ErrorCode::TooManyKeys, "revoke an API key before creating more than 100"));
    }
    let secret = token::generate(token::API_KEY_PREFIX);
    let prefix: String = secret.chars().take(12).collect();
    let expires_at = expires_in_days.map(|d| state.clock().now() + ChronoDuration::days(i64::from(d)));
    let key = state
        .store()
        .api_key_create(principal.user_id(), &name, &prefix, &token::hash(&secret), scope, expires_at)
        .await?;
    Ok(IssuedKey { secret, key })
}

/// The caller's live API keys.
pub async fn api_keys(state: &AppState, principal: &Principal) -> AppResult<Vec<crate::store::ApiKeyRow>> {
    Ok(state.store().api_key_list(principal.user_id()).await?)
}

pub async fn api_key_revoke(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Write)?;
    let hash =
        state.store().api_key_revoke(principal.user_id(), id).await?.ok_or_else(|| AppError::not_found("API key"))?;
    state.authenticator().forget(&[hash]).await;
    Ok(())
}

/// RFC 8628 §3.2: a new device code and the user code a person types on the approval page.
pub async fn device_code_create(
    state: &AppState,
    client_name: &str,
    client: &Client,
) -> AppResult<(String, crate::store::DeviceCodeRow)> {
    limit_ip(state, "device-code", client).await?;
    let client_name: String = client_name.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    let client_name = if client_name.is_empty() { "funmagic".to_string() } else { client_name };
    let device_code = token::generate(token::DEVICE_CODE_PREFIX);
    let expires = state.clock().now() + ChronoDuration::seconds(DEVICE_CODE_TTL_SECS);
    for _ in 0..5 {
        match state
            .store()
            .device_code_create(
                &token::hash(&device_code),
                &token::user_code(),
                &client_name,
                DEVICE_POLL_INTERVAL_SECS,
                expires,
            )
            .await
        {
            Ok(row) => return Ok((device_code, row)),
            Err(StoreError::Conflict(_)) => continue, // user code collision: draw again
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::unavailable("could not allocate a device code; try again"))
}

/// The outcome of one token poll (RFC 8628 §3.5).
#[derive(Debug)]
pub enum DevicePoll {
    Granted(Box<IssuedSession>),
    Pending,
    SlowDown,
    Denied,
    Expired,
}

pub async fn device_token_poll(state: &AppState, device_code: &str, client: &Client) -> AppResult<DevicePoll> {
    limit_ip(state, "device-token", client).await.map_err(|mut e| {
        e.code = ErrorCode::SlowDown;
        e
    })?;
    let Some(row) = state.store().device_code_poll(&token::hash(device_code)).await? else {
        return Err(AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidGrant, "unknown device code"));
    };
    let now = state.clock().now();
    if row.expires_at <= now {
        return Ok(DevicePoll::Expired);
    }
    match row.status {
        DeviceCodeStatus::Denied => Ok(DevicePoll::Denied),
        DeviceCodeStatus::Consumed => {
            Err(AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidGrant, "this device code was already used"))
        }
        DeviceCodeStatus::Approved => {
            let user_id = row.user_id.ok_or_else(|| AppError::internal("approved device code without user"))?;
            if !state.store().device_code_consume(row.id).await? {
                return Err(AppError::new(
                    ErrorKind::BadRequest,
                    ErrorCode::InvalidGrant,
                    "this device code was already used",
                ));
            }
            let user = state.store().user_get(user_id).await?.ok_or_else(|| AppError::not_found("user"))?;
            if user.banned {
                return Ok(DevicePoll::Denied);
            }
            Ok(DevicePoll::Granted(Box::new(create_session(state, user, client).await?)))
        }
        DeviceCodeStatus::Pending => {
            let too_fast = row.last_polled_at.is_some_and(|t| {
                now - t < ChronoDuration::seconds(i64::from(row.interval_secs)) - ChronoDuration::milliseconds(500)
            });
            Ok(if too_fast { DevicePoll::SlowDown } else { DevicePoll::Pending })
        }
    }
}

fn invalid_user_code() -> AppError {
    AppError::new(
        ErrorKind::NotFound,
        ErrorCode::InvalidUserCode,
        "no pending sign-in request has that code; it may have expired",
    )
}

/// A pending device sign-in request by its user code, for the approval page to show who
/// asked and when before the person confirms. Needs a session (never an API key).
pub async fn device_lookup(
    state: &AppState,
    principal: &Principal,
    user_code: &str,
) -> AppResult<crate::store::DeviceCodeRow> {
    principal.require(Access::Write)?;
    principal.require_session("approving a device sign-in")?;
    let code = token::normalize_user_code(user_code).ok_or_else(invalid_user_code)?;
    state
        .store()
        .device_code_by_user_code(&code)
        .await?
        .filter(|row| row.status == DeviceCodeStatus::Pending && row.expires_at > state.clock().now())
        .ok_or_else(invalid_user_code)
}

/// A signed-in person approves (or denies) the code shown by their CLI; returns the name the
/// client gave itself.
pub async fn device_decide(
    state: &AppState,
    principal: &Principal,
    user_code: &str,
    approve: bool,
) -> AppResult<String> {
    let row = device_lookup(state, principal, user_code).await?;
    if !state.store().device_code_decide(&row.user_code, principal.user_id(), approve).await? {
        return Err(invalid_user_code());
    }
    Ok(row.client_name)
}

// ── admin actions ────────────────────────────────────────────────────────────────────

/// The target user, visible to admins only (404 otherwise, as for any missing user).
/// A page of users matching `query` (email or name), newest first (admins).
pub async fn admin_user_search(
    state: &AppState,
    principal: &Principal,
    query: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<UserRow>> {
    principal.require(Access::Admin)?;
    let query = query.map(str::trim).filter(|q| !q.is_empty());
    Ok(state.store().user_search(query, before, limit).await?)
}

pub async fn admin_user_get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<UserRow> {
    principal.require(Access::Admin)?;
    state.store().user_get(id).await?.ok_or_else(|| AppError::not_found("user"))
}

pub async fn admin_set_role(state: &AppState, principal: &Principal, id: Uuid, role: Role) -> AppResult<UserRow> {
    principal.require(Access::SuperAdmin)?;
    if admin_user_get(state, principal, id).await?.deleted_at.is_some() {
        return Err(AppError::not_found("user"));
    }
    let user = state.store().user_set_role(id, role).await.map_err(|e| match e {
        StoreError::NotFound => AppError::not_found("user"),
        StoreError::Constraint(c) if c == "last_super_admin" => AppError::conflict(
            ErrorCode::LastSuperAdmin,
            "the last super admin cannot be demoted; promote another one first",
        ),
        other => other.into(),
    })?;
    state.authenticator().forget_user(id).await;
    Ok(user)
}

/// Bans or unbans; a ban ends every session at once. Admins may ban users; only a super
/// admin may ban an admin; nobody bans themselves or a super admin.
pub async fn admin_set_banned(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    banned: bool,
    reason: Option<&str>,
) -> AppResult<UserRow> {
    let target = admin_user_get(state, principal, id).await?;
    if target.deleted_at.is_some() {
        return Err(AppError::not_found("user"));
    }
    if target.id == principal.user_id() {
        return Err(AppError::conflict(ErrorCode::CannotBanSelf, "you cannot ban yourself"));
    }
    match target.role() {
        Role::SuperAdmin => return Err(AppError::forbidden()),
        Role::Admin => principal.require(Access::SuperAdmin)?,
        Role::User => {}
    }
    let reason: Option<String> = reason.map(|r| r.trim().chars().take(500).collect());
    let user = state
        .store()
        .user_set_banned(id, banned, if banned { reason.as_deref() } else { None })
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    state.authenticator().forget_user(id).await;
    if banned {
        revoke_sessions(state, id, None).await?;
    }
    Ok(user)
}

pub async fn admin_revoke_sessions(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<usize> {
    let target = admin_user_get(state, principal, id).await?;
    if target.role() >= Role::Admin && target.id != principal.user_id() {
        principal.require(Access::SuperAdmin)?;
    }
    revoke_sessions(state, id, None).await
}

/// Creates (or promotes and re-passwords) a super admin: the bootstrap path.
pub async fn ensure_super_admin(state: &AppState, email: &str, name: &str, password: &str) -> AppResult<UserRow> {
    let email = normalize_email(email)?;
    crate::auth::password::validate_new_password(password)?;
    let hash = state.hasher().hash(password).await?;
    let user = match state.store().user_get_by_email(&email).await? {
        Some(user) => {
            state.store().password_hash_set(user.id, &hash).await?;
            state.store().user_set_role(user.id, Role::SuperAdmin).await?
        }
        None => {
            let new = NewUser { email, name: validate_name(name)?, role: Role::SuperAdmin, email_verified: true };
            state.store().user_create_with_password(&new, &hash).await?
        }
    };
    state.authenticator().forget_user(user.id).await;
    Ok(user)
}

/// Embedded first start: when there is no super admin yet, create one and return the
/// generated password so it can be printed once.
pub async fn bootstrap_admin(state: &AppState) -> AppResult<Option<(String, String)>> {
    if state.store().user_count_with_role(Role::SuperAdmin).await? > 0 {
        return Ok(None);
    }
    let email = "admin@funmagic.local".to_string();
    let password = token::generate("").chars().take(20).collect::<String>();
    ensure_super_admin(state, &email, "Administrator", &password).await?;
    Ok(Some((email, password)))
}

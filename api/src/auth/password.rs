//! Password hashing with argon2id (parameters from configuration), and the checks a new
//! password must pass.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::AuthSettings;
use crate::error::{AppError, AppResult, ErrorCode};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

/// Hashes and verifies passwords; verification of an unknown user costs the same.
#[derive(Debug, Clone)]
pub struct PasswordHasherCfg {
    params: Params,
    /// A hash of a random password, verified against when the email is unknown so that
    /// "no such user" and "wrong password" take the same time.
    dummy_hash: String,
}

impl PasswordHasherCfg {
    pub fn new(settings: &AuthSettings) -> Result<Self, String> {
        let params =
            Params::new(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_parallelism, None)
                .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let mut this = Self { params, dummy_hash: String::new() };
        this.dummy_hash = this.hash_blocking(&crate::auth::token::generate(""))?;
        Ok(this)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
    }

    /// Hashes off the async runtime (argon2 is deliberately slow).
    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let this = self.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)
    }

    /// `stored = None` (unknown user) still spends the time of a verification.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_string();
        let argon2 = self.argon2();
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

/// Length limits (in characters) on a new password.
pub fn validate_new_password(password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(AppError::new(
            crate::error::ErrorKind::Validation,
            ErrorCode::PasswordTooShort,
            format!("the password must have at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(AppError::new(
            crate::error::ErrorKind::Validation,
            ErrorCode::PasswordTooLong,
            format!("the password must have at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

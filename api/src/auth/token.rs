//! Random bearer secrets and their storage form.
//!
//! A secret is 256 random bits, base64url-encoded behind a recognizable prefix (`fms_` for
//! sessions, `fmk_` for API keys, `fmd_` for device codes, `fmv_` for email and reset
//! links). Only the SHA-256 of the whole string is stored, so a database leak reveals no
//! usable credential, and lookups by hash need no constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const SESSION_PREFIX: &str = "fms_";
pub const API_KEY_PREFIX: &str = "fmk_";
pub const DEVICE_CODE_PREFIX: &str = "fmd_";
pub const VERIFICATION_PREFIX: &str = "fmv_";

/// `prefix` + 43 characters of base64url (32 random bytes).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256 of a secret: what the database stores and is queried by.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A short code a person can read and type: 8 letters from an unambiguous alphabet,
/// shown as `ABCD-EFGH` (RFC 8628 §6.1 recommends this shape).
pub fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    let letters: String = bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// Normalizes what a person typed as a user code: upper-case, dash optional.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let letters: String = input.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    (letters.len() == 8).then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_hashed() {
        let a = generate(SESSION_PREFIX);
        let b = generate(SESSION_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("fms_") && a.len() == 4 + 43);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn user_codes_normalize() {
        let code = user_code();
        assert_eq!(normalize_user_code(&code.to_lowercase().replace('-', " ")), Some(code));
        assert_eq!(normalize_user_code("abc"), None);
    }
}

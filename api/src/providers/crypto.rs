//! Provider API keys at rest: AES-256-GCM under the master key, a fresh 96-bit nonce per
//! encryption, the provider's id as associated data (a ciphertext copied onto another row
//! does not decrypt), stored as base64(nonce ‖ ciphertext) with the master key's id (the
//! first 8 hex digits of its SHA-256) so keys can be rotated and a wrong key is named.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Digest;
use uuid::Uuid;

use crate::config::{ConfigError, Settings};

/// The master key and its id.
#[derive(Clone)]
pub struct MasterKey {
    key: SecretSlice<u8>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("this key was encrypted under master key {found}, but this server has {expected}")]
    WrongMasterKey { found: String, expected: String },
    #[error("the encrypted key is damaged or belongs to another provider")]
    Corrupt,
}

impl MasterKey {
    /// Parses 32 bytes given as base64 or as 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            STANDARD.decode(text).map_err(|_| "must be 32 bytes as base64 or 64 hex digits".to_string())?
        };
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!("must be 32 bytes, not {}", bytes.len()));
        }
        let id = hex::encode(&sha2::Sha256::digest(&bytes)[..4]);
        Ok(Self { key: SecretSlice::from(bytes), id })
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        Self::from_bytes(bytes).expect("32 bytes")
    }

    /// base64, for a file or an environment variable.
    pub fn encoded(&self) -> String {
        STANDARD.encode(self.key.expose_secret())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.key.expose_secret()).expect("32-byte key")
    }

    /// base64(nonce ‖ ciphertext) of `plaintext`, bound to `provider_id`.
    pub fn encrypt(&self, provider_id: Uuid, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: provider_id.as_bytes() })
            .expect("AES-GCM encryption does not fail for short inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// The plaintext of a value made by [`MasterKey::encrypt`] under key `key_id`.
    pub fn decrypt(&self, provider_id: Uuid, key_id: &str, stored: &str) -> Result<String, CryptoError> {
        if key_id != self.id {
            return Err(CryptoError::WrongMasterKey { found: key_id.into(), expected: self.id.clone() });
        }
        let raw = STANDARD.decode(stored).map_err(|_| CryptoError::Corrupt)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: provider_id.as_bytes() })
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)
    }
}

/// The last 4 characters of a key (all an API shows of it).
pub fn last4(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

pub fn key_path(settings: &Settings) -> std::path::PathBuf {
    settings.data_dir.join("master.key")
}

/// The master key: `FUNMAGIC_MASTER_KEY`, or the one in `<data_dir>/master.key`, generated
/// there (mode 0600) on first use.
pub fn load(settings: &Settings) -> Result<MasterKey, ConfigError> {
    if let Some(key) = &settings.providers.master_key {
        return MasterKey::parse(key.expose_secret()).map_err(|e| ConfigError::new("FUNMAGIC_MASTER_KEY", e));
    }
    let path = key_path(settings);
    let problem = |e: String| ConfigError::new("FUNMAGIC_DATA_DIR", format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => return MasterKey::parse(&text).map_err(problem),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(problem(e.to_string())),
        Err(_) => {}
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| problem(e.to_string()))?;
    let key = MasterKey::generate();
    match write_new(&path, &key.encoded()) {
        Ok(()) => Ok(key),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            MasterKey::parse(&std::fs::read_to_string(&path).map_err(|e| problem(e.to_string()))?).map_err(problem)
        }
        Err(e) => Err(problem(e.to_string())),
    }
}

/// Creates `path` with mode 0600 and `text`; fails if it exists.
pub fn write_new(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binding_and_rotation_errors() {
        let key = MasterKey::generate();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = key.encrypt(a, "sk-test-1234567890");
        assert!(!sealed.contains("sk-test"));
        assert_ne!(sealed, key.encrypt(a, "sk-test-1234567890"), "a fresh nonce each time");
        assert_eq!(key.decrypt(a, key.id(), &sealed).unwrap(), "sk-test-1234567890");
        assert!(matches!(key.decrypt(b, key.id(), &sealed), Err(CryptoError::Corrupt)), "bound to its row");
        let other = MasterKey::generate();
        assert!(matches!(other.decrypt(a, key.id(), &sealed), Err(CryptoError::WrongMasterKey { .. })));
        let mut damaged = STANDARD.decode(&sealed).unwrap();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(matches!(key.decrypt(a, key.id(), &STANDARD.encode(damaged)), Err(CryptoError::Corrupt)));
        assert_eq!(last4("sk-test-1234567890"), "7890");
        assert_eq!(last4("ab"), "ab");
    }

    #[test]
    fn parses_base64_and_hex_and_rejects_the_rest() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.encoded()).unwrap();
        assert_eq!(again.id(), key.id());
        let hex = hex::encode(STANDARD.decode(key.encoded()).unwrap());
        assert_eq!(MasterKey::parse(&hex).unwrap().id(), key.id());
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([0u8; 16])).is_err());
        assert!(!format!("{key:?}").contains(&key.encoded()));
    }
}

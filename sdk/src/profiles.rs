//! The profiles file shared by the `funmagic` CLI and the `funmagic-admin` console:
//! `$FUNMAGIC_CONFIG_DIR/config.toml`, else the user's config dir `funmagic/config.toml`;
//! named profiles with an API URL and a token, written atomically with mode 0600.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot find a config directory; set FUNMAGIC_CONFIG_DIR")]
    NoDirectory,
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// One named profile of the config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub api_url: Option<String>,
    pub token: Option<String>,
}

/// The config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The directory of the config file.
pub fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("FUNMAGIC_CONFIG_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::config_dir().map(|d| d.join("funmagic")),
    }
}

impl ConfigFile {
    pub fn path() -> Option<PathBuf> {
        config_dir().map(|d| d.join("config.toml"))
    }

    /// Writes the file atomically with mode 0600 (it holds tokens), in a 0700 directory.
    pub fn save(&self) -> Result<PathBuf, ProfileError> {
        let path = Self::path().ok_or(ProfileError::NoDirectory)?;
        let dir = path.parent().expect("config.toml has a parent");
        let io = |e: std::io::Error| ProfileError::Io { path: path.clone(), source: e };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = toml::to_string_pretty(self)
            .map_err(|e| ProfileError::Parse { path: path.clone(), message: e.to_string() })?;
        let tmp = dir.join(format!(".config.toml.{}", std::process::id()));
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
                options.mode(0o600);
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    /// A missing file is an empty config; a broken one is an error naming the file.
    pub fn load() -> Result<Self, ProfileError> {
        let Some(path) = Self::path() else { return Ok(Self::default()) };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ProfileError::Parse { path, message: e.to_string().trim().to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ProfileError::Io { path, source: e }),
        }
    }
}

//! Resolving where and as whom to talk: flag → environment → profile in the config file
//! (`$FUNMAGIC_CONFIG_DIR/config.toml`, else the user's config dir `funmagic/config.toml`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use funmagic_sdk::{Client, ClientBuilder, DEFAULT_API_URL};
use serde::{Deserialize, Serialize};

use crate::GlobalArgs;
use crate::exit::CliError;

/// One named profile of the config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub api_url: Option<String>,
    pub token: Option<String>,
}

/// The CLI's config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The directory of the CLI's config file.
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
    pub fn save(&self) -> Result<PathBuf, CliError> {
        let path =
            Self::path().ok_or_else(|| CliError::other("cannot find a config directory; set FUNMAGIC_CONFIG_DIR"))?;
        let dir = path.parent().expect("config.toml has a parent");
        let io = |e: std::io::Error| CliError::other(format!("cannot write {}: {e}", path.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = toml::to_string_pretty(self).map_err(|e| CliError::other(e.to_string()))?;
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
    pub fn load() -> Result<Self, CliError> {
        let Some(path) = Self::path() else { return Ok(Self::default()) };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| CliError::usage(format!("{}: {}", path.display(), e.to_string().trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::other(format!("cannot read {}: {e}", path.display()))),
        }
    }
}

/// Everything a command needs to talk to the server.
#[derive(Debug)]
pub struct Context {
    pub api_url: String,
    pub profile: String,
    /// Where the token came from, if any: `flag or FUNMAGIC_TOKEN`, or `profile`.
    pub token_source: Option<&'static str>,
    pub json: bool,
    pub client: Client,
}

impl Context {
    pub fn resolve(args: &GlobalArgs) -> Result<Self, CliError> {
        let config = ConfigFile::load()?;
        let profile = config.profiles.get(&args.profile).cloned().unwrap_or_default();
        let api_url = args
            .api_url
            .clone()
            .or(profile.api_url)
            .unwrap_or_else(|| DEFAULT_API_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        let (token, token_source) = match (args.token.clone(), profile.token) {
            (Some(t), _) => (Some(t), Some("--token or FUNMAGIC_TOKEN")),
            (None, Some(t)) => (Some(t), Some("profile")),
            (None, None) => (None, None),
        };
        let client = ClientBuilder::new(api_url.clone())
            .maybe_token(token)
            .build()
            .map_err(|e| CliError::usage(e.to_string()))?;
        Ok(Self { api_url, profile: args.profile.clone(), token_source, json: args.json, client })
    }

    /// A client for the same server with another token.
    pub fn client_with_token(&self, token: &str) -> Result<Client, CliError> {
        ClientBuilder::new(self.api_url.clone()).token(token).build().map_err(|e| CliError::usage(e.to_string()))
    }

    /// Stores `token` (and the API URL) in this profile.
    pub fn store_token(&self, token: Option<&str>) -> Result<PathBuf, CliError> {
        let mut config = ConfigFile::load()?;
        let entry = config.profiles.entry(self.profile.clone()).or_default();
        entry.token = token.map(str::to_string);
        if token.is_some() {
            entry.api_url = Some(self.api_url.clone());
        }
        config.save()
    }
}

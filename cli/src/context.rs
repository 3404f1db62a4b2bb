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
        let token = args.token.clone().or(profile.token);
        let client = ClientBuilder::new(api_url.clone())
            .maybe_token(token)
            .build()
            .map_err(|e| CliError::usage(e.to_string()))?;
        Ok(Self { api_url, json: args.json, client })
    }
}

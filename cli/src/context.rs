//! Resolving where and as whom to talk: flag → environment → profile in the config file
//! (`$FUNMAGIC_CONFIG_DIR/config.toml`, else the user's config dir `funmagic/config.toml`).

use std::path::PathBuf;

use funmagic_sdk::{Client, ClientBuilder, DEFAULT_API_URL};

use crate::GlobalArgs;
use crate::exit::CliError;

pub use funmagic_sdk::profiles::ConfigFile;

fn profile_error(e: funmagic_sdk::profiles::ProfileError) -> CliError {
    match e {
        funmagic_sdk::profiles::ProfileError::Parse { .. } => CliError::usage(e.to_string()),
        other => CliError::other(other.to_string()),
    }
}

/// Loads the config file (a missing one is empty).
pub fn load_config() -> Result<ConfigFile, CliError> {
    ConfigFile::load().map_err(profile_error)
}

/// Saves the config file (0600).
pub fn save_config(config: &ConfigFile) -> Result<PathBuf, CliError> {
    config.save().map_err(profile_error)
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
        let config = load_config()?;
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
        let mut config = load_config()?;
        let entry = config.profiles.entry(self.profile.clone()).or_default();
        entry.token = token.map(str::to_string);
        if token.is_some() {
            entry.api_url = Some(self.api_url.clone());
        }
        save_config(&config)
    }
}

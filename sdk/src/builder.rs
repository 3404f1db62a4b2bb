//! Building a [`Client`]: base URL, bearer token (session token or API key), timeouts.
//!
//! progenitor's own `Client::new` sets a 15 s *total* timeout, which would cut long
//! downloads and event streams; here connect and read timeouts are separate and there is
//! no total timeout.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::Client;

/// Where the server listens by default.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";

#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
}

/// The token could not be used in an HTTP header, or the HTTP client failed to build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the token contains characters not allowed in an HTTP header")]
    InvalidToken,
    #[error("the base URL '{0}' must start with http:// or https://")]
    InvalidBaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new(DEFAULT_API_URL)
    }
}

impl ClientBuilder {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("funmagic-sdk/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// A session token or an API key, sent as `Authorization: Bearer …`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn maybe_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest silence between two reads of a response (not a total timeout).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn build(self) -> Result<Client, BuildError> {
        let base = self.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BuildError::InvalidBaseUrl(base));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| BuildError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .user_agent(self.user_agent)
            .build()?;
        Ok(Client::new_with_client(&base, http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_base_urls_and_tokens() {
        assert!(matches!(ClientBuilder::new("localhost:8000").build(), Err(BuildError::InvalidBaseUrl(_))));
        assert!(matches!(
            ClientBuilder::new("http://127.0.0.1:8000").token("bad\ntoken").build(),
            Err(BuildError::InvalidToken)
        ));
        let client = ClientBuilder::new("http://127.0.0.1:8000/").token("fmk_abc").build().unwrap();
        assert_eq!(client.baseurl, "http://127.0.0.1:8000", "trailing slash removed");
    }
}

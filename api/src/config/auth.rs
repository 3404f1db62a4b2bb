//! `[auth]` (sessions, passwords, sign-up, origins), `[mail]` (verification and reset mail)
//! and `[oauth]` (GitHub and Google sign-in).

use secrecy::SecretString;

use super::ConfigError;
use super::section::{at_least, http_url, http_urls, section};

section! {
    /// Sessions, password hashing, sign-up and the origins allowed to write with a cookie.
    pub struct AuthLayer => AuthSettings in "auth" {
        session_ttl_days: u32 {
            env: "FUNMAGIC_SESSION_TTL_DAYS",
            default: 7u32,
            check: at_least(1),
            help: "sessions expire after this many days without use (rolling)",
        },
        signup_enabled: bool {
            env: "FUNMAGIC_SIGNUP_ENABLED",
            default: true,
            help: "allow anyone to create an account",
        },
        trusted_origins: Vec<String> {
            env: "FUNMAGIC_TRUSTED_ORIGINS",
            default: Vec::<String>::new(),
            shown: "(public_url only)",
            check: http_urls,
            help: "comma-separated extra origins allowed to send cookie-authenticated writes",
        },
        cors_origins: Vec<String> {
            env: "FUNMAGIC_CORS_ORIGINS",
            default: Vec::<String>::new(),
            shown: "(none)",
            check: origins,
            help: "comma-separated origins of web apps on other hosts that may call the API from a browser, with credentials (exact match); they may also send cookie-authenticated writes",
        },
        cookie_domain: String {
            env: "FUNMAGIC_COOKIE_DOMAIN",
            shown: "(unset: this host only)",
            check: cookie_domain,
            help: "Domain of the session cookie, e.g. example.com to share sign-in with its subdomains",
        },
        argon2_memory_kib: u32 {
            env: "FUNMAGIC_ARGON2_MEMORY_KIB",
            default: 19_456u32,
            check: at_least(1),
            help: "argon2id memory cost",
        },
        argon2_iterations: u32 {
            env: "FUNMAGIC_ARGON2_ITERATIONS",
            default: 2u32,
            check: at_least(1),
            help: "argon2id time cost",
        },
        argon2_parallelism: u32 {
            env: "FUNMAGIC_ARGON2_PARALLELISM",
            default: 1u32,
            check: at_least(1),
            help: "argon2id lanes",
        },
        rate_limit_per_minute: u32 {
            env: "FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE",
            default: 20u32,
            check: at_least(1),
            help: "sign-in, sign-up, reset and device requests per client IP per minute",
        },
        rate_limit_per_email_per_minute: u32 {
            env: "FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE",
            default: 5u32,
            check: at_least(1),
            help: "sign-in attempts per email address and client address, reset mails per email address, per minute",
        },
        trust_forwarded_for: bool {
            env: "FUNMAGIC_TRUST_FORWARDED_FOR",
            default: false,
            help: "behind one reverse proxy: take the client address from X-Forwarded-For",
        },
        bootstrap_admin: bool {
            env: "FUNMAGIC_BOOTSTRAP_ADMIN",
            default: true,
            help: "embedded mode: create a super admin with printed credentials when there is none",
        },
    }
}

impl AuthSettings {
    /// Origins compare without a trailing slash; CORS origins in the form browsers send
    /// (`https://App.example.com:443/` → `https://app.example.com`); the cookie domain
    /// without a leading dot.
    pub(super) fn normalized(mut self) -> Self {
        for origin in &mut self.trusted_origins {
            *origin = origin.trim_end_matches('/').to_string();
        }
        for origin in &mut self.cors_origins {
            if let Ok(url) = reqwest::Url::parse(origin) {
                *origin = url.origin().ascii_serialization();
            }
        }
        self.cookie_domain = self.cookie_domain.map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        self
    }
}

/// Check: each an origin, `scheme://host[:port]` (http or https; no user, path, query or
/// fragment).
fn origins(list: &[String]) -> Result<(), String> {
    for origin in list {
        let ok = reqwest::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
        });
        if !ok {
            return Err(format!("'{origin}' is not an origin (scheme://host[:port], http or https)"));
        }
    }
    Ok(())
}

/// Check: a host name (letters, digits, `-`, `.`), as a cookie's Domain attribute takes.
fn cookie_domain(domain: &str) -> Result<(), String> {
    let d = domain.trim_start_matches('.');
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok { Ok(()) } else { Err(format!("'{domain}' is not a domain name")) }
}

section! {
    /// Outgoing mail.
    pub struct MailLayer => MailSettings in "mail" {
        smtp_url: SecretString {
            env: "FUNMAGIC_SMTP_URL",
            shown: "(unset: links go to the log)",
            help: "smtps://user:pass@host:465, or smtp://…:587?tls=required for STARTTLS",
        },
        from: String {
            env: "FUNMAGIC_MAIL_FROM",
            default: "FunMagic <no-reply@localhost>",
            help: "sender of outgoing mail",
        },
    }
}

section! {
    /// GitHub and Google sign-in, as given (see [`OAuthSettings`] for the resolved form).
    pub struct OAuthLayer => OAuthValues in "oauth" {
        github_client_id: String {
            env: "FUNMAGIC_GITHUB_CLIENT_ID",
            shown: "(unset: GitHub sign-in off)",
            help: "GitHub OAuth app client id",
        },
        github_client_secret: SecretString { env: "FUNMAGIC_GITHUB_CLIENT_SECRET", help: "GitHub OAuth app client secret" },
        github_authorize_url: String {
            env: "FUNMAGIC_GITHUB_AUTHORIZE_URL",
            default: "https://github.com/login/oauth/authorize",
            check: http_url,
            help: "GitHub authorization endpoint",
        },
        github_token_url: String {
            env: "FUNMAGIC_GITHUB_TOKEN_URL",
            default: "https://github.com/login/oauth/access_token",
            check: http_url,
            help: "GitHub token endpoint",
        },
        github_api_url: String {
            env: "FUNMAGIC_GITHUB_API_URL",
            default: "https://api.github.com",
            check: http_url,
            help: "GitHub REST API base (user and emails)",
        },
        google_client_id: String {
            env: "FUNMAGIC_GOOGLE_CLIENT_ID",
            shown: "(unset: Google sign-in off)",
            help: "Google OAuth client id",
        },
        google_client_secret: SecretString { env: "FUNMAGIC_GOOGLE_CLIENT_SECRET", help: "Google OAuth client secret" },
        google_authorize_url: String {
            env: "FUNMAGIC_GOOGLE_AUTHORIZE_URL",
            default: "https://accounts.google.com/o/oauth2/v2/auth",
            check: http_url,
            help: "Google authorization endpoint",
        },
        google_token_url: String {
            env: "FUNMAGIC_GOOGLE_TOKEN_URL",
            default: "https://oauth2.googleapis.com/token",
            check: http_url,
            help: "Google token endpoint",
        },
        google_userinfo_url: String {
            env: "FUNMAGIC_GOOGLE_USERINFO_URL",
            default: "https://openidconnect.googleapis.com/v1/userinfo",
            check: http_url,
            help: "Google OpenID Connect userinfo endpoint",
        },
    }
}

/// One OAuth provider's endpoints and credentials.
#[derive(Debug, Clone)]
pub struct OAuthProviderSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: String,
    pub token_url: String,
    /// GitHub: the REST API base; Google: the userinfo endpoint.
    pub api_url: String,
}

/// The sign-in providers that are on.
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    pub github: Option<OAuthProviderSettings>,
    pub google: Option<OAuthProviderSettings>,
}

impl OAuthValues {
    /// A provider is on when its client id and secret are both set; one without the other
    /// is a mistake.
    pub(super) fn resolve(self) -> Result<OAuthSettings, ConfigError> {
        Ok(OAuthSettings {
            github: provider(
                "GITHUB",
                self.github_client_id,
                self.github_client_secret,
                [self.github_authorize_url, self.github_token_url, self.github_api_url],
            )?,
            google: provider(
                "GOOGLE",
                self.google_client_id,
                self.google_client_secret,
                [self.google_authorize_url, self.google_token_url, self.google_userinfo_url],
            )?,
        })
    }
}

fn provider(
    upper: &str,
    id: Option<String>,
    secret: Option<SecretString>,
    [authorize_url, token_url, api_url]: [String; 3],
) -> Result<Option<OAuthProviderSettings>, ConfigError> {
    let (client_id, client_secret) = match (id, secret) {
        (None, None) => return Ok(None),
        (Some(id), Some(secret)) => (id, secret),
        (Some(_), None) => {
            return Err(ConfigError::new(format!("FUNMAGIC_{upper}_CLIENT_SECRET"), "required with the client id"));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(format!("FUNMAGIC_{upper}_CLIENT_ID"), "required with the client secret"));
        }
    };
    let trim = |url: String| url.trim_end_matches('/').to_string();
    Ok(Some(OAuthProviderSettings {
        client_id,
        client_secret,
        authorize_url: trim(authorize_url),
        token_url: trim(token_url),
        api_url: trim(api_url),
    }))
}

//! Exit codes and turning SDK errors into one clear line.

use std::process::ExitCode;

use funmagic_sdk::Error;

/// The documented exit codes (see `funmagic --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Error = 1,
    Usage = 2,
    Cancelled = 3,
    Auth = 4,
    TaskFailed = 5,
    InsufficientCredits = 6,
    RateLimited = 7,
}

impl Exit {
    /// The exit code an API answer's HTTP status maps to (401/403 auth, 402 credits, 429
    /// rate limited, the rest an error).
    pub fn for_status(status: u16) -> Self {
        match status {
            401 | 403 => Exit::Auth,
            402 => Exit::InsufficientCredits,
            429 => Exit::RateLimited,
            _ => Exit::Error,
        }
    }
}

/// A failure of a command: what to print and how to exit.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub code: Option<String>,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, code: None, message: message.into() }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Exit::Error, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Classifies an SDK error; `api_url` names the server in connection errors.
    pub fn from_sdk<E: ErrorBody + std::fmt::Debug>(err: Error<E>, api_url: &str) -> Self {
        match err {
            Error::CommunicationError(e) => {
                let exit = if e.is_timeout() { Exit::Cancelled } else { Exit::Error };
                let cause = if e.is_connect() {
                    "connection refused or host unreachable".to_string()
                } else if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    root_cause(&e)
                };
                let mut err = Self::new(
                    exit,
                    format!(
                        "cannot reach the FunMagic server at {api_url}: {cause} (is `funmagic-server serve` running? set --api-url or FUNMAGIC_API_URL)"
                    ),
                );
                err.code = Some("UNREACHABLE".into());
                err
            }
            Error::ErrorResponse(resp) => {
                let status = resp.status().as_u16();
                let (code, message) = resp.into_inner().code_and_message();
                Self { exit: Exit::for_status(status), code, message: format!("{message} (HTTP {status})") }
            }
            Error::UnexpectedResponse(resp) => {
                Self::other(format!("unexpected answer from {api_url}: HTTP {}", resp.status()))
            }
            other => Self::other(format!("request to {api_url} failed: {other}")),
        }
    }

    /// Prints the error on stderr (as a JSON line with `--json`: data goes to stdout,
    /// errors never do) and exits.
    pub fn report(self, json: bool) -> ExitCode {
        if json {
            let body = serde_json::json!({ "error": self.message, "code": self.code, "exitCode": self.exit as u8 });
            eprintln!("{body}");
        } else {
            let code = self.code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
            anstream::eprintln!(
                "{}error:{} {}{code}",
                crate::output::ERROR.render(),
                crate::output::ERROR.render_reset(),
                self.message
            );
        }
        ExitCode::from(self.exit as u8)
    }
}

/// An error body the API sent: its stable code and message, when it has them.
pub trait ErrorBody {
    fn code_and_message(self) -> (Option<String>, String);
}

impl ErrorBody for funmagic_sdk::types::ApiError {
    fn code_and_message(self) -> (Option<String>, String) {
        (Some(self.code), self.error)
    }
}

impl ErrorBody for funmagic_sdk::types::HealthReport {
    fn code_and_message(self) -> (Option<String>, String) {
        (Some("UNHEALTHY".into()), "the server reports unhealthy dependencies".into())
    }
}

fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

//! The HTTP-agnostic error of the app layer.
//!
//! Every failure a client can see is an [`AppError`]: a [`ErrorKind`] (what went wrong, which
//! the HTTP layer maps to a status once, in `http::error`), a stable machine `code`, a safe
//! message, and optional structured details. Internal causes are logged, never sent.

use std::borrow::Cow;

use serde_json::Value;

/// The class of a failure; `http::error` maps each to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthenticated,
    PaymentRequired,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    RateLimited,
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self { kind, code: Cow::Borrowed(code), message: message.into(), details: None, retry_after_secs: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, "BAD_REQUEST", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "UNAUTHORIZED",
            "authentication required: send `Authorization: Bearer <token>` or sign in",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorKind::Forbidden, "FORBIDDEN", "you do not have permission to do this")
    }

    /// `what` is the resource name shown to the client ("task", "asset").
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, "NOT_FOUND", format!("{what} not found"))
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, "VALIDATION_FAILED", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "SERVICE_UNAVAILABLE", message)
    }

    /// An unexpected failure: the cause goes to the log, the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorKind::Internal, "INTERNAL", "internal server error")
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::NotFound => AppError::not_found("resource"),
            StoreError::Conflict(constraint) => {
                AppError::conflict("CONFLICT", format!("already exists ({constraint})"))
            }
            StoreError::Unavailable(msg) => {
                tracing::error!(error = %msg, "database unavailable");
                AppError::unavailable("the database is unavailable")
            }
            other => AppError::internal(other),
        }
    }
}

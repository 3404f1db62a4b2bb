//! The one place where [`AppError`] becomes HTTP: a status, and the JSON body
//! `{"error": "<safe message>", "code": "<STABLE_CODE>", "details": …}`.
//!
//! Operations return `Result<_, ErrorResponse>`; request-parsing failures inside
//! poem-openapi go through [`ErrorResponse::from_poem`] (the `bad_request_handler`), and
//! errors raised outside any operation (unknown route, wrong method, panics) through
//! [`json_error_body`], so a client always gets the same shape.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;

use crate::error::{AppError, ErrorCode, ErrorKind};

/// The error body of every failed request.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ApiError {
    /// A human-readable message, safe to show to the user.
    pub error: String,
    /// A stable machine-readable code, e.g. `NOT_FOUND`, `INSUFFICIENT_CREDITS`.
    pub code: String,
    /// Structured details for some codes (e.g. `cost` and `available` for 402).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The request's id, as in the `X-Request-Id` header: quote it when reporting a problem
    /// (the server's log lines for the request carry it).
    #[oai(rename = "requestId", skip_serializing_if_is_none)]
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error body, stamped with the current request's id.
    pub fn new(error: String, code: String, details: Option<Value>) -> Self {
        Self { error, code, details, request_id: crate::telemetry::current_request_id() }
    }
}

/// Every error status an operation may answer with; all carry [`ApiError`].
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "ErrorResponse::from_poem")]
pub enum ErrorResponse {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// No valid credentials were given.
    #[oai(status = 401)]
    Unauthorized(Json<ApiError>),
    /// Not enough credits.
    #[oai(status = 402)]
    PaymentRequired(Json<ApiError>),
    /// Authenticated, but not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ApiError>),
    /// No such resource (or not yours).
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    /// The request conflicts with the current state.
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    /// The payload is too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// The media type is not allowed.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ApiError>),
    /// The request is well-formed but invalid.
    #[oai(status = 422)]
    Unprocessable(Json<ApiError>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ApiError>, #[oai(header = "Retry-After")] Option<u64>),
    /// An unexpected server error.
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    /// A dependency is unavailable, or the task line is full (`QUEUE_FULL`); retry after
    /// the given number of seconds when given.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>, #[oai(header = "Retry-After")] Option<u64>),
}

/// The HTTP status of each error kind — the only such mapping in the code base.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::LengthRequired => StatusCode::LENGTH_REQUIRED,
        ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<AppError> for ErrorResponse {
    fn from(err: AppError) -> Self {
        let body = Json(ApiError::new(err.message, err.code.as_str().to_string(), err.details));
        match err.kind {
            ErrorKind::BadRequest => ErrorResponse::BadRequest(body),
            ErrorKind::Unauthenticated => ErrorResponse::Unauthorized(body),
            ErrorKind::PaymentRequired => ErrorResponse::PaymentRequired(body),
            ErrorKind::Forbidden => ErrorResponse::Forbidden(body),
            ErrorKind::NotFound => ErrorResponse::NotFound(body),
            ErrorKind::Conflict => ErrorResponse::Conflict(body),
            ErrorKind::PayloadTooLarge => ErrorResponse::PayloadTooLarge(body),
            ErrorKind::UnsupportedMediaType => ErrorResponse::UnsupportedMediaType(body),
            // Only the file routes outside the spec answer 411 (see `error_response`).
            ErrorKind::LengthRequired => ErrorResponse::BadRequest(body),
            ErrorKind::Validation => ErrorResponse::Unprocessable(body),
            ErrorKind::RateLimited => ErrorResponse::TooManyRequests(body, err.retry_after_secs),
            ErrorKind::Internal => ErrorResponse::Internal(body),
            ErrorKind::Unavailable => ErrorResponse::Unavailable(body, err.retry_after_secs),
        }
    }
}

impl From<crate::store::StoreError> for ErrorResponse {
    fn from(err: crate::store::StoreError) -> Self {
        AppError::from(err).into()
    }
}

impl ErrorResponse {
    /// Request parsing failed inside poem-openapi (bad JSON, missing parameter, …).
    pub fn from_poem(err: poem::Error) -> Self {
        // An extractor of ours (`security::Caller`) failed with a precise error: keep it.
        if let Some(app) = err.downcast_ref::<AppError>() {
            return app.clone().into();
        }
        if err.status() == StatusCode::UNAUTHORIZED {
            return AppError::new(
                ErrorKind::Unauthenticated,
                ErrorCode::Unauthorized,
                "authentication required: send `Authorization: Bearer <token>` or sign in",
            )
            .into();
        }
        // Well-formed JSON whose values do not fit the schema (a wrong type, a value outside
        // an enum or range, a missing field) is 422, like every other validation failure;
        // JSON that does not parse stays 400.
        if is_schema_mismatch(&err) {
            return AppError::new(ErrorKind::Validation, ErrorCode::ValidationFailed, err.to_string()).into();
        }
        let (code, kind) = code_for_status(err.status());
        AppError::new(kind, code, err.to_string()).into()
    }
}

/// A request body that is well-formed JSON but does not fit the operation's schema (a
/// wrong type, a value outside an enum or a declared range, a missing field); JSON that
/// does not parse is not.
fn is_schema_mismatch(err: &poem::Error) -> bool {
    let message = err.to_string();
    message.starts_with("parse request payload error:")
        && (message.contains("(occurred while parsing \"") || message.contains("verification failed"))
}

fn code_for_status(status: StatusCode) -> (ErrorCode, ErrorKind) {
    match status {
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, ErrorKind::Unauthenticated),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, ErrorKind::Forbidden),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, ErrorKind::NotFound),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, ErrorKind::BadRequest),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, ErrorKind::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorCode::UnsupportedMediaType, ErrorKind::UnsupportedMediaType),
        StatusCode::UNPROCESSABLE_ENTITY => (ErrorCode::ValidationFailed, ErrorKind::Validation),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, ErrorKind::RateLimited),
        StatusCode::SERVICE_UNAVAILABLE => (ErrorCode::ServiceUnavailable, ErrorKind::Unavailable),
        s if s.is_server_error() => (ErrorCode::Internal, ErrorKind::Internal),
        _ => (ErrorCode::BadRequest, ErrorKind::BadRequest),
    }
}

/// A `poem::Error` carrying an `AppError`, for failures outside an operation's handler
/// (extractors, middleware): its status from [`status_of`], and `ErrorResponse::from_poem`
/// and the JSON catch-all answer with its code.
pub fn poem_error(err: AppError) -> poem::Error {
    let status = status_of(err.kind);
    poem::Error::new(err, status)
}

/// The JSON error response for an error raised outside any operation.
pub fn json_error_body(err: &poem::Error) -> poem::Response {
    if let Some(app) = err.downcast_ref::<AppError>() {
        return poem::IntoResponse::into_response(ErrorResponse::from(app.clone()));
    }
    let (status, code) = if is_schema_mismatch(err) {
        (status_of(ErrorKind::Validation), ErrorCode::ValidationFailed)
    } else {
        (err.status(), code_for_status(err.status()).0)
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "unhandled server error");
        "internal server error".to_string()
    } else if status == StatusCode::NOT_FOUND {
        "no such route".to_string()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "method not allowed on this route".to_string()
    } else {
        err.to_string()
    };
    let body = ApiError::new(message, code.as_str().to_string(), None);
    poem::Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// An error answer of a route outside the spec (the local store's `/files/…`): the same
/// JSON body as every other error, with the status of its kind.
pub fn error_response(kind: ErrorKind, code: ErrorCode, message: &str) -> poem::Response {
    let body = ApiError::new(message.to_string(), code.as_str().to_string(), None);
    poem::Response::builder()
        .status(status_of(kind))
        .content_type("application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

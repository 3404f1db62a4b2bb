//! The HTTP-agnostic error of the app layer.
//!
//! Every failure a client can see is an [`AppError`]: a [`ErrorKind`] (what went wrong, which
//! the HTTP layer maps to a status once, in `http::error`), a stable machine `code`, a safe
//! message, and optional structured details. Internal causes are logged, never sent.

use serde_json::Value;

use crate::domain::wire_enum;

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
    /// A body without its length where one is required (the local store's uploads).
    LengthRequired,
    Validation,
    RateLimited,
    Unavailable,
    Internal,
}

wire_enum! {
    /// The stable machine-readable codes of error bodies (`code`), one variant each.
    ErrorCode {
        AccessDenied = "ACCESS_DENIED",
        AccountExistsUnverified = "ACCOUNT_EXISTS_UNVERIFIED",
        AccountLinked = "ACCOUNT_LINKED",
        AdjustmentExceedsAvailable = "ADJUSTMENT_EXCEEDS_AVAILABLE",
        AdminAsset = "ADMIN_ASSET",
        AlreadyCompleted = "ALREADY_COMPLETED",
        AlreadyUploaded = "ALREADY_UPLOADED",
        AlreadyVerified = "ALREADY_VERIFIED",
        ApiKeyExpired = "API_KEY_EXPIRED",
        ApiKeyRevoked = "API_KEY_REVOKED",
        AuthorizationPending = "AUTHORIZATION_PENDING",
        BadRequest = "BAD_REQUEST",
        CannotBanSelf = "CANNOT_BAN_SELF",
        Conflict = "CONFLICT",
        DeliveryInProgress = "DELIVERY_IN_PROGRESS",
        ContentMismatch = "CONTENT_MISMATCH",
        CsrfRejected = "CSRF_REJECTED",
        EchoInjectedFailure = "ECHO_INJECTED_FAILURE",
        EmailNotVerified = "EMAIL_NOT_VERIFIED",
        EmailTaken = "EMAIL_TAKEN",
        ExpiredToken = "EXPIRED_TOKEN",
        FileTooLarge = "FILE_TOO_LARGE",
        Forbidden = "FORBIDDEN",
        IdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS",
        ImageUrlRefused = "IMAGE_URL_REFUSED",
        ImageUrlUnreachable = "IMAGE_URL_UNREACHABLE",
        IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED",
        InsufficientCredits = "INSUFFICIENT_CREDITS",
        InsufficientScope = "INSUFFICIENT_SCOPE",
        Internal = "INTERNAL",
        InvalidCredentials = "INVALID_CREDENTIALS",
        InvalidEmail = "INVALID_EMAIL",
        InvalidGrant = "INVALID_GRANT",
        InvalidImage = "INVALID_IMAGE",
        InvalidInput = "INVALID_INPUT",
        InvalidKey = "INVALID_KEY",
        InvalidName = "INVALID_NAME",
        InvalidRequest = "INVALID_REQUEST",
        InvalidSignature = "INVALID_SIGNATURE",
        InvalidState = "INVALID_STATE",
        InvalidToken = "INVALID_TOKEN",
        InvalidToolConfig = "INVALID_TOOL_CONFIG",
        InvalidUserCode = "INVALID_USER_CODE",
        InUse = "IN_USE",
        KeyInUse = "KEY_IN_USE",
        KeyRequired = "KEY_REQUIRED",
        LastSuperAdmin = "LAST_SUPER_ADMIN",
        LengthRequired = "LENGTH_REQUIRED",
        LocalStepFailed = "LOCAL_STEP_FAILED",
        MethodNotAllowed = "METHOD_NOT_ALLOWED",
        NameTaken = "NAME_TAKEN",
        NoWebhookEndpoint = "NO_WEBHOOK_ENDPOINT",
        NotFound = "NOT_FOUND",
        OauthCodeRejected = "OAUTH_CODE_REJECTED",
        OauthDenied = "OAUTH_DENIED",
        OauthProviderError = "OAUTH_PROVIDER_ERROR",
        PackageInUse = "PACKAGE_IN_USE",
        ParentNotCompleted = "PARENT_NOT_COMPLETED",
        PasswordTooLong = "PASSWORD_TOO_LONG",
        PasswordTooShort = "PASSWORD_TOO_SHORT",
        PayloadTooLarge = "PAYLOAD_TOO_LARGE",
        PaymentProviderError = "PAYMENT_PROVIDER_ERROR",
        ProviderAuth = "PROVIDER_AUTH",
        ProviderBadResponse = "PROVIDER_BAD_RESPONSE",
        ProviderDisabled = "PROVIDER_DISABLED",
        ProviderJobFailed = "PROVIDER_JOB_FAILED",
        ProviderKeyUnreadable = "PROVIDER_KEY_UNREADABLE",
        ProviderMissing = "PROVIDER_MISSING",
        ProviderNotConfigured = "PROVIDER_NOT_CONFIGURED",
        ProviderNoKey = "PROVIDER_NO_KEY",
        ProviderRejected = "PROVIDER_REJECTED",
        ProviderResultTooLarge = "PROVIDER_RESULT_TOO_LARGE",
        ProviderUnavailable = "PROVIDER_UNAVAILABLE",
        PurchasesDisabled = "PURCHASES_DISABLED",
        QueueFull = "QUEUE_FULL",
        QuotaExceeded = "QUOTA_EXCEEDED",
        RateLimited = "RATE_LIMITED",
        ReauthenticationRequired = "REAUTHENTICATION_REQUIRED",
        ReservationMismatch = "RESERVATION_MISMATCH",
        ServiceUnavailable = "SERVICE_UNAVAILABLE",
        SessionExpired = "SESSION_EXPIRED",
        SessionRequired = "SESSION_REQUIRED",
        SignupDisabled = "SIGNUP_DISABLED",
        SizeMismatch = "SIZE_MISMATCH",
        SlowDown = "SLOW_DOWN",
        SlugTaken = "SLUG_TAKEN",
        StepNotAvailable = "STEP_NOT_AVAILABLE",
        StepPanicked = "STEP_PANICKED",
        StepTimeout = "STEP_TIMEOUT",
        TaskFinished = "TASK_FINISHED",
        TaskNotFailed = "TASK_NOT_FAILED",
        ToolChanged = "TOOL_CHANGED",
        TooManyEndpoints = "TOO_MANY_ENDPOINTS",
        TooManyKeys = "TOO_MANY_KEYS",
        TooManyStreams = "TOO_MANY_STREAMS",
        Unauthorized = "UNAUTHORIZED",
        Unavailable = "UNAVAILABLE",
        UnknownStep = "UNKNOWN_STEP",
        UnknownStyle = "UNKNOWN_STYLE",
        UnknownThumbnail = "UNKNOWN_THUMBNAIL",
        UnsupportedGrantType = "UNSUPPORTED_GRANT_TYPE",
        UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE",
        UploadClosed = "UPLOAD_CLOSED",
        UploadMissing = "UPLOAD_MISSING",
        UserBanned = "USER_BANNED",
        ValidationFailed = "VALIDATION_FAILED",
        WebhookDisabled = "WEBHOOK_DISABLED",
        WebhookUrlRefused = "WEBHOOK_URL_REFUSED",
        WorkerCrashes = "WORKER_CRASHES",
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { kind, code, message: message.into(), details: None, retry_after_secs: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, ErrorCode::BadRequest, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            ErrorCode::Unauthorized,
            "authentication required: send `Authorization: Bearer <token>` or sign in",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorKind::Forbidden, ErrorCode::Forbidden, "you do not have permission to do this")
    }

    /// `what` is the resource name shown to the client ("task", "asset").
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, ErrorCode::ValidationFailed, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, ErrorCode::ServiceUnavailable, message)
    }

    /// An unexpected failure: the cause goes to the log, the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorKind::Internal, ErrorCode::Internal, "internal server error")
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::NotFound => AppError::not_found("resource"),
            StoreError::Conflict(constraint) => {
                AppError::conflict(ErrorCode::Conflict, format!("already exists ({constraint})"))
            }
            StoreError::Unavailable(msg) => {
                tracing::error!(error = %msg, "database unavailable");
                AppError::unavailable("the database is unavailable")
            }
            other => AppError::internal(other),
        }
    }
}

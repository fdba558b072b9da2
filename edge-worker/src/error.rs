//! The edge's one error type, mapped to a status and a `{code, message}` body in one place.

use shared_types::{ErrorBody, ErrorCode, ValidationError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    /// The client's request breaks an input rule; answered 400 without calling the core.
    Invalid(ValidationError),
    /// No valid end-user token where one is needed, or a token that fails verification.
    Unauthorized(String),
    /// A valid caller asking for something that is not theirs (another user's answers or
    /// events), or a write the edge does not forward.
    Forbidden(String),
    /// A request body over [`crate::plan::MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// A body the edge must read (events with a token) in a format it cannot.
    UnsupportedMediaType,
    RouteNotFound,
    MethodNotAllowed,
    /// The core could not be reached in time and no stale answer exists.
    OriginUnavailable,
    /// A write was sent but not confirmed in time: its outcome is unknown.
    WriteOutcomeUnknown,
    /// The token-signing keys (JWKS) could not be fetched, so no token can be checked.
    KeysUnavailable,
    /// The caller's identity (user, else address) spent its request budget.
    RateLimited {
        retry_after_secs: u32,
    },
    /// A `[vars]` value is unusable; an operator must fix the deployment.
    Misconfigured(String),
}

/// Seconds a client should wait before retrying when the core is unavailable.
pub const RETRY_AFTER_SECS: u32 = 5;

impl From<ValidationError> for EdgeError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

impl EdgeError {
    /// HTTP status, JSON body and the one extra header the answer needs, if any
    /// (`Retry-After` or `WWW-Authenticate`).
    pub fn response_parts(&self) -> (u16, ErrorBody, Option<(&'static str, String)>) {
        let retry = || Some(("retry-after", RETRY_AFTER_SECS.to_string()));
        let (code, message, header) = match self {
            Self::Invalid(e) => (e.code, e.message.clone(), None),
            Self::Unauthorized(why) => (
                ErrorCode::Unauthorized,
                why.clone(),
                Some(("www-authenticate", "Bearer".into())),
            ),
            Self::Forbidden(why) => (ErrorCode::Forbidden, why.clone(), None),
            Self::PayloadTooLarge => (
                ErrorCode::PayloadTooLarge,
                format!(
                    "request bodies are limited to {} bytes",
                    crate::plan::MAX_BODY_BYTES
                ),
                None,
            ),
            Self::UnsupportedMediaType => (
                ErrorCode::UnsupportedMediaType,
                "send application/json or application/x-ndjson".into(),
                None,
            ),
            Self::RouteNotFound => (ErrorCode::RouteNotFound, "no such endpoint".into(), None),
            Self::MethodNotAllowed => (
                ErrorCode::MethodNotAllowed,
                "method not allowed on this endpoint".into(),
                None,
            ),
            Self::OriginUnavailable => (
                ErrorCode::OriginUnavailable,
                "recommendations are temporarily unavailable; try again shortly".into(),
                retry(),
            ),
            Self::WriteOutcomeUnknown => (
                ErrorCode::WriteOutcomeUnknown,
                "the write was not confirmed in time and may or may not be stored; send it \
                 again with the same event ids (an event is stored once per id)"
                    .into(),
                retry(),
            ),
            Self::KeysUnavailable => (
                ErrorCode::AuthUnavailable,
                "tokens cannot be checked right now; try again shortly".into(),
                retry(),
            ),
            Self::RateLimited { retry_after_secs } => (
                ErrorCode::RateLimited,
                "too many requests; slow down".into(),
                Some(("retry-after", retry_after_secs.to_string())),
            ),
            Self::Misconfigured(why) => (ErrorCode::EdgeMisconfigured, why.clone(), None),
        };
        (code.status(), ErrorBody::new(code, message), header)
    }
}

//! The edge's one error type, mapped to a status and a `{code, message}` body in one place.

use shared_types::{ErrorBody, ValidationError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    /// The client's request breaks an input rule; answered 400 without calling the core.
    Invalid(ValidationError),
    RouteNotFound,
    MethodNotAllowed,
    /// The core could not be reached in time and no stale answer exists.
    OriginUnavailable,
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
    /// HTTP status, JSON body and the `Retry-After` value, if any.
    pub fn response_parts(&self) -> (u16, ErrorBody, Option<u32>) {
        let (status, code, message, retry) = match self {
            Self::Invalid(e) => (400, e.code, e.message.clone(), None),
            Self::RouteNotFound => (404, "route_not_found", "no such endpoint".into(), None),
            Self::MethodNotAllowed => (
                405,
                "method_not_allowed",
                "method not allowed on this endpoint".into(),
                None,
            ),
            Self::OriginUnavailable => (
                503,
                "origin_unavailable",
                "recommendations are temporarily unavailable; try again shortly".into(),
                Some(RETRY_AFTER_SECS),
            ),
            Self::Misconfigured(why) => (500, "edge_misconfigured", why.clone(), None),
        };
        (
            status,
            ErrorBody {
                code: code.into(),
                message,
            },
            retry,
        )
    }
}

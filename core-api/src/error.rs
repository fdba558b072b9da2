//! The domain error of the engine. The HTTP layer maps it to a status in one place
//! (`http::ApiError`).

use gpu_batch::EmbedError;
use shared_types::{ErrorCode, ValidationError};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The client sent something the engine cannot accept.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// The client referred to something that does not exist.
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// The request conflicts with the current state (e.g. a training already running).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Too much work queued (e.g. the embedding batcher is full); retry shortly.
    #[error("overloaded: {0}")]
    Overloaded(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert_eq!(code.status(), 400, "{code} is not a 400 code");
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert_eq!(code.status(), 409, "{code} is not a 409 code");
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert_eq!(code.status(), 404, "{code} is not a 404 code");
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
}

impl From<ValidationError> for EngineError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid {
            code: e.code,
            message: e.message,
        }
    }
}

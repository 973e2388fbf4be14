//! The one error every service returns. It speaks of the domain (not found, a
//! conflict with the current state, invalid input naming its field); the HTTP layer
//! maps each variant to a status in one place (`crate::error`), the command line and
//! the job runner print or log it.

use std::time::Duration;

use crate::domain::advisory::FieldError;

/// Why a business operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input could not be read at all (a body that broke off, bad framing).
    #[error("{0}")]
    Malformed(String),
    /// No valid credentials (unknown, expired or revoked; a wrong password).
    #[error("{0}")]
    Unauthenticated(String),
    /// Known caller, not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or not visible to the caller: the two are never told apart.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Existed, but is withdrawn for good (a yanked patch's file).
    #[error("{0}")]
    Gone(String),
    /// Clashes with the current state (a duplicate, already published).
    #[error("{0}")]
    Conflict(String),
    /// Larger than a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Well-formed but invalid; `field` names the offending field when known.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    /// The caller already keeps as many as its cap allows.
    #[error("{}", .0.message())]
    OverCap(crate::services::refusals::Cap),
    #[error("too many attempts; retry later")]
    RateLimited { retry_after: Duration },
    /// A dependency (the database) cannot be reached; the detail is for the log.
    #[error("service unavailable")]
    Unavailable(String),
    /// The database is known to be down: answered at once, to be retried after the wait.
    #[error("the database is unavailable; retry shortly")]
    Down { retry_after: Duration },
    /// A bug or an unexpected failure; the detail is for the log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// What a service returns.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// Invalid input in `field`, with a message that names the problem.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An unexpected failure, with what was being done.
    pub fn internal(context: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        ServiceError::Internal(anyhow::anyhow!("{context}: {err}"))
    }
}

impl From<diesel::result::Error> for ServiceError {
    /// A connection that broke during the query means the database went away, not a
    /// bug: 503, like a connection that could not be had.
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
            | Error::BrokenTransactionManager => ServiceError::Unavailable(format!("database connection lost: {err}")),
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<crate::db::RunError> for ServiceError {
    fn from(err: crate::db::RunError) -> Self {
        match err {
            crate::db::RunError::Unavailable(cause) => ServiceError::Unavailable(cause),
            crate::db::RunError::KnownDown(retry_after) => ServiceError::Down { retry_after },
            crate::db::RunError::Crashed(cause) => ServiceError::Internal(anyhow::anyhow!(cause)),
            crate::db::RunError::Query(err) => err.into(),
        }
    }
}

impl From<FieldError> for ServiceError {
    fn from(err: FieldError) -> Self {
        ServiceError::Invalid {
            field: (!err.field.is_empty()).then_some(err.field),
            message: err.message,
        }
    }
}

/// Whether a database error is a unique-constraint violation, the one database error
/// that is the caller's doing (a duplicate) rather than the server's.
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

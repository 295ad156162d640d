//! Errors of the domain: [`ValidationError`] for bad input (nothing is written) and
//! [`ApplyError`] for a command that was valid but could not take effect on the current state
//! (it is replicated and answered the same way on every replica).

use serde::{Deserialize, Serialize};

/// Bad input, found before anything is proposed. Names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// The request field, as named in the API (`patient`, `categories[3]`, ...).
    pub field: String,
    /// What is wrong with it, for a human.
    pub reason: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A valid command that could not take effect on the current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    /// The record the command refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The command conflicts with the record's current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The record is not in a state that allows the command (an illegal lifecycle transition,
    /// a consent request past its deadline, a validity period already over, ...).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The caller may not change this record (e.g. a catalog entry owned by another
    /// organisation).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A per-record-owner bound would be exceeded (e.g. too many blocks on one patient).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
}

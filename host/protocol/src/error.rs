//! The error object of a failed request: `{code, message, hint?}`.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No session by that name.
    NotFound,
    /// A session, branch or worktree by that name already exists.
    Exists,
    /// The params did not have the expected shape or values.
    InvalidParams,
    /// The host does not know the method.
    UnknownMethod,
    /// Removing would lose uncommitted, untracked or unmerged work.
    UnsavedWork,
    /// A git operation failed (not a repository, bad ref, …).
    Git,
    /// The agent could not be started or controlled.
    Agent,
    /// The session is not in a state that allows the request.
    InvalidState,
    /// An issue tracker request failed.
    Tracker,
    /// The host is shutting down.
    ShuttingDown,
    /// The session's remote host cannot be reached now: its link is down (stale,
    /// reconnecting, refused) or it did not answer in time. Nothing was sent.
    HostUnreachable,
    /// Anything else; the message says what.
    Internal,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

/// A failed request as it travels in a response's error slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: ErrorCode,
    /// One line saying what went wrong.
    pub message: String,
    /// What the user can do about it, when there is something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Itemised specifics, e.g. each change `rm` would lose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
            details: Vec::new(),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
}

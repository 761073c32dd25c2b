//! The one error the CLI shows: a line saying what went wrong, the specifics, and a
//! hint saying what to do, with an exit code by kind.

use std::process::ExitCode;

use canopy_protocol::RpcError;

use crate::client::ClientError;

/// A failure as the user sees it.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub details: Vec<String>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Vec::new(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Print to stderr and give the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.message);
        for d in &self.details {
            eprintln!("  - {d}");
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(1)
    }
}

impl From<RpcError> for CliError {
    fn from(e: RpcError) -> Self {
        Self {
            message: e.message,
            details: e.details,
            hint: e.hint,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Rpc(e) => e.into(),
            // Another user's socket directory: its host serves only its own user.
            ClientError::Connect { ref source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                CliError::new(e.to_string()).with_hint(
                    "a Canopy host serves only the user who runs it; use your own (unset $CANOPY_SOCKET)",
                )
            }
            ClientError::Connect { .. } => CliError::new(e.to_string())
                .with_hint("start one with `canopy host`, or check $CANOPY_SOCKET"),
            ClientError::Start(_) => CliError::new(e.to_string()),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::new(e.to_string()).with_hint("fix the file, or move it aside to use the defaults")
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

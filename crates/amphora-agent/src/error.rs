//! The agent library's error type; the REST layer maps it to HTTP in `api.rs`.

use std::path::PathBuf;

/// Everything that can go wrong inside the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file is unreadable or invalid.
    #[error("invalid agent configuration: {0}")]
    Config(String),
    /// A certificate or key could not be loaded or used.
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// A file operation failed.
    #[error("{context} {path}: {source}", path = path.display())]
    Io {
        /// What the agent was doing ("write haproxy config", ...).
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The request is malformed (bad id, bad file name, bad body).
    #[error("{message}: {details}")]
    BadRequest {
        /// Short summary for the `message` field.
        message: String,
        /// Explanation for the `details` field.
        details: String,
    },
    /// HAProxy refused the configuration (`haproxy -c`); its output is attached.
    #[error("invalid haproxy configuration: {0}")]
    InvalidHaproxyConfig(String),
    /// keepalived refused the configuration (`keepalived -t`); its output is attached.
    #[error("invalid keepalived configuration: {0}")]
    InvalidKeepalivedConfig(String),
    /// The object named by the request does not exist.
    #[error("{message}: {details}")]
    NotFound {
        /// Short summary for the `message` field.
        message: String,
        /// Explanation for the `details` field.
        details: String,
    },
    /// The request conflicts with the current state (interface already plugged).
    #[error("{message}: {details}")]
    Conflict {
        /// Short summary for the `message` field.
        message: String,
        /// Explanation for the `details` field.
        details: String,
    },
    /// An external command (`haproxy`, `ip`) failed or could not run.
    #[error("{command} failed: {details}")]
    Command {
        /// The command line (program and first arguments).
        command: String,
        /// Its output or the spawn error.
        details: String,
    },
}

impl AgentError {
    /// A file operation error with its context.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// A bad-request error.
    pub fn bad_request(message: impl Into<String>, details: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: details.into(),
        }
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>, details: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
            details: details.into(),
        }
    }
}

/// Result alias of the agent library.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

//! The one error of the drivers: who is at fault and whether trying again may help.

use std::fmt;

/// Whose fault a failure is; the flow engine and the logs use it to assign blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOwner {
    /// A bug or an impossible state in our own code.
    Ours,
    /// The compute service (instance build, boot, delete).
    Compute,
    /// The network service (ports, VIPs, subnets).
    Network,
    /// The amphora agent (unreachable, rejected a request).
    Agent,
}

impl FaultOwner {
    /// Lowercase name for logs and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Compute => "compute",
            Self::Network => "network",
            Self::Agent => "agent",
        }
    }
}

impl fmt::Display for FaultOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed driver call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The operation may succeed if tried again (timeout, busy backend, agent still booting).
    #[error("{owner} failed to {context} (retryable): {message}")]
    Retryable {
        owner: FaultOwner,
        /// What was being done, as a verb phrase ("plug vip on amphora").
        context: String,
        message: String,
    },
    /// Trying again will not help (bad request, quota, invariant broken).
    #[error("{owner} failed to {context}: {message}")]
    Permanent {
        owner: FaultOwner,
        /// What was being done, as a verb phrase.
        context: String,
        message: String,
    },
}

impl DriverError {
    /// A failure that may go away when retried.
    pub fn retryable(
        owner: FaultOwner,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Retryable {
            owner,
            context: context.into(),
            message: message.into(),
        }
    }

    /// A failure that will not go away when retried.
    pub fn permanent(
        owner: FaultOwner,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Permanent {
            owner,
            context: context.into(),
            message: message.into(),
        }
    }

    /// Whether the flow engine should try the step again before reverting.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// Whose fault the failure is.
    pub fn owner(&self) -> FaultOwner {
        match self {
            Self::Retryable { owner, .. } | Self::Permanent { owner, .. } => *owner,
        }
    }
}

/// Result alias of the drivers.
pub type Result<T> = std::result::Result<T, DriverError>;

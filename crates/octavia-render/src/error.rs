//! The one error type of the renderer, and what each error is about.

use std::fmt;

use octavia_model::ObjectKind;
use uuid::Uuid;

/// What a render error is about: one object of the load balancer's tree, or the renderer's
/// settings. The flow that renders uses it to tell an object that cannot be served (left out
/// when it is already in ERROR) from a job that must fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An object of the tree (the load balancer itself for its VIP).
    Object(ObjectKind, Uuid),
    /// The render settings (`[haproxy_amphora]` options).
    Settings,
}

impl Subject {
    /// The object, if the error is about one.
    pub fn object(&self) -> Option<(ObjectKind, Uuid)> {
        match *self {
            Self::Object(kind, id) => Some((kind, id)),
            Self::Settings => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object(kind, id) => {
                let kind = match kind {
                    ObjectKind::LoadBalancer => "load balancer",
                    ObjectKind::HealthMonitor => "health monitor",
                    other => other.as_str(),
                };
                write!(f, "{kind} {id}")
            }
            Self::Settings => f.write_str("settings"),
        }
    }
}

/// Why a configuration could not be rendered.
///
/// Every variant names its [`Subject`], so the flow that called the renderer can put the
/// message on the load balancer's error status as is, and knows which object to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The model asks for something the amphora provider does not serve (the rules of
    /// [`crate::support`], which the API applies before it accepts a request).
    #[error("unsupported: {subject}: {reason}")]
    Unsupported { subject: Subject, reason: String },
    /// A field holds a value that cannot be written into haproxy.cfg safely
    /// (control characters, an address that is not an IP, a malformed code list, ...).
    #[error("invalid {subject} {field}: {reason}")]
    InvalidValue {
        subject: Subject,
        /// The field name, as in the model.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The input does not hang together: a reference to an object that is not in the input,
    /// or a listener/pool protocol combination the API forbids.
    #[error("inconsistent input: {subject}: {reason}")]
    Inconsistent { subject: Subject, reason: String },
}

impl RenderError {
    pub(crate) fn invalid(
        subject: Subject,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            subject,
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(subject: Subject, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            subject,
            reason: reason.into(),
        }
    }

    pub(crate) fn inconsistent(subject: Subject, reason: impl Into<String>) -> Self {
        Self::Inconsistent {
            subject,
            reason: reason.into(),
        }
    }

    /// What the error is about.
    pub fn subject(&self) -> Subject {
        match self {
            Self::Unsupported { subject, .. }
            | Self::InvalidValue { subject, .. }
            | Self::Inconsistent { subject, .. } => *subject,
        }
    }
}

//! The one error type of the renderer.

/// Why a configuration could not be rendered.
///
/// Every variant names the object concerned, so the flow that called the renderer can put
/// the message on the load balancer's error status as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The model asks for something this renderer does not produce yet (a listener protocol
    /// that needs certificates or LVS, a pool with backend certificates, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A field holds a value that cannot be written into haproxy.cfg safely
    /// (control characters, an address that is not an IP, a malformed code list, ...).
    #[error("invalid {object} {field}: {reason}")]
    InvalidValue {
        /// The object, e.g. `member 5d3c...`.
        object: String,
        /// The field name, as in the model.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The input does not hang together: a reference to an object that is not in the input,
    /// or a listener/pool protocol combination the API forbids.
    #[error("inconsistent input: {0}")]
    Inconsistent(String),
}

impl RenderError {
    pub(crate) fn invalid(
        object: impl Into<String>,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            object: object.into(),
            field,
            reason: reason.into(),
        }
    }
}

//! The one error type of the wire layer: a rejected request, naming the field.

/// Why a request body was refused. Both variants name the offending field by its
/// wire name (`protocol_port`, `listener.protocol`, `session_persistence.cookie_name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypesError {
    /// The value is malformed, out of range or not allowed here (HTTP 400).
    #[error("Invalid input for field/attribute {field}. {message}")]
    Invalid { field: String, message: String },
    /// The request is valid Octavia but asks for something this deployment does not
    /// implement yet, or the amphora provider does not support (HTTP 501).
    #[error("Not implemented: {field}: {message}")]
    NotImplemented { field: String, message: String },
}

impl TypesError {
    /// A 400-class error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    /// A 501-class error for `field`.
    pub fn not_implemented(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotImplemented {
            field: field.into(),
            message: message.into(),
        }
    }
    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. } | Self::NotImplemented { field, .. } => field,
        }
    }
}

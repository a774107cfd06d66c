//! Errors of the store; variants exist where callers branch.

use std::fmt;

use octavia_model::ObjectKind;

/// The error of the database driver (sqlx), kept as the source of [`DbError::Retryable`]
/// and [`DbError::Other`]; named here so callers need not depend on the driver.
pub use sqlx::Error as DriverError;

/// A kind of record the store holds: an object of the model (what a job can target), or a
/// record no job targets (a quota row; the operator's catalogue of flavors, availability
/// zones and their profiles). It names what a [`DbError::NotFound`] did not find and what a
/// list query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A load balancer, listener, ..., amphora.
    Object(ObjectKind),
    /// A project's quota row.
    Quota,
    /// A flavor (`flavor`).
    Flavor,
    /// A flavor profile (`flavor_profile`).
    FlavorProfile,
    /// An availability zone (`availability_zone`, keyed by name).
    AvailabilityZone,
    /// An availability zone profile (`availability_zone_profile`).
    AvailabilityZoneProfile,
}

impl From<ObjectKind> for RecordKind {
    fn from(kind: ObjectKind) -> Self {
        Self::Object(kind)
    }
}

/// Octavia's name in user-facing messages (`Load Balancer`, `L7 Policy`, `Quota`,
/// `Flavor Profile`).
impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Object(kind) => kind.display_name(),
            Self::Quota => "Quota",
            Self::Flavor => "Flavor",
            Self::FlavorProfile => "Flavor Profile",
            Self::AvailabilityZone => "Availability Zone",
            Self::AvailabilityZoneProfile => "Availability Zone Profile",
        })
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The object (or a parent named in the request) does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: RecordKind, id: String },
    /// The write conflicts with the current state (locked LB, duplicate, in use).
    /// The message is user-facing, in Octavia's words.
    #[error("{0}")]
    Conflict(String),
    /// A project quota would be exceeded; names the resources.
    #[error("quota has been met for resources: {0}")]
    QuotaExceeded(String),
    /// The request is invalid with respect to stored data (bad marker, bad sort key).
    #[error("{0}")]
    Invalid(String),
    /// A transient failure (busy database, serialization failure, lost connection).
    #[error("database temporarily unavailable: {}", driver_message(.0))]
    Retryable(#[source] DriverError),
    /// Any other failure the driver reported.
    #[error("database error: {}", driver_message(.0))]
    Other(#[source] DriverError),
    /// A stored value that does not read back, or a broken invariant of the store itself.
    #[error("database error: {0}")]
    Internal(String),
}

impl DbError {
    /// `kind` `id` not found.
    pub(crate) fn not_found(kind: impl Into<RecordKind>, id: impl ToString) -> Self {
        Self::NotFound {
            kind: kind.into(),
            id: id.to_string(),
        }
    }

    /// Whether trying again may succeed (busy database, serialization failure, lost
    /// connection).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// What the database said (without the driver's "error returned from database" prefix), or
/// the driver's own message.
fn driver_message(e: &DriverError) -> String {
    match e {
        DriverError::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

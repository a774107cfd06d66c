//! Typed ids: every object id is a UUID rendered as its 36-character string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The error for a string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid UUID")]
pub struct InvalidId(pub String);

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId(s.to_string()))
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Id of a load balancer.
    LoadBalancerId
);
id_type!(
    /// Id of a listener.
    ListenerId
);
id_type!(
    /// Id of a pool.
    PoolId
);
id_type!(
    /// Id of a pool member.
    MemberId
);
id_type!(
    /// Id of a health monitor.
    HealthMonitorId
);
id_type!(
    /// Id of an L7 policy.
    L7PolicyId
);
id_type!(
    /// Id of an L7 rule.
    L7RuleId
);
id_type!(
    /// Id of an amphora.
    AmphoraId
);
id_type!(
    /// Id of a job in the queue.
    JobId
);
id_type!(
    /// Id of a flavor (what a load balancer's `flavor_id` names).
    FlavorId
);
id_type!(
    /// Id of a flavor profile.
    FlavorProfileId
);
id_type!(
    /// Id of an availability zone profile (availability zones themselves are keyed by name).
    AvailabilityZoneProfileId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_as_hyphenated_string() {
        let id = LoadBalancerId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.parse::<LoadBalancerId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
        assert!("not-a-uuid".parse::<PoolId>().is_err());
    }
}

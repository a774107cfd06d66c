//! The closed sets of values Octavia uses, spelled exactly as on the wire and in the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The error for a string outside an enum's set; names the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of {allowed:?}")]
pub struct InvalidEnum {
    /// What was given.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static [&'static str],
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The wire and database spelling.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidEnum;
            fn from_str(s: &str) -> Result<Self, InvalidEnum> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(InvalidEnum { value: s.to_string(), allowed: Self::ALL }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
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

wire_enum!(
    /// `provisioning_status` of API objects, plus the amphora-only values.
    ProvisioningStatus {
        Active = "ACTIVE",
        PendingCreate = "PENDING_CREATE",
        PendingUpdate = "PENDING_UPDATE",
        PendingDelete = "PENDING_DELETE",
        Deleted = "DELETED",
        Error = "ERROR",
        Allocated = "ALLOCATED",
        Booting = "BOOTING",
        Ready = "READY",
        FailoverStopped = "FAILOVER_STOPPED",
    }
);

impl ProvisioningStatus {
    /// Whether the object is in one of the `PENDING_*` states (locked by a job).
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Self::PendingCreate | Self::PendingUpdate | Self::PendingDelete
        )
    }
    /// `MUTABLE_STATUSES`: only ACTIVE objects accept changes.
    pub fn is_mutable(&self) -> bool {
        matches!(self, Self::Active)
    }
    /// `DELETABLE_STATUSES` and `FAILOVERABLE_STATUSES`: ACTIVE or ERROR.
    pub fn is_deletable(&self) -> bool {
        matches!(self, Self::Active | Self::Error)
    }
}

wire_enum!(
    /// `operating_status`: what the health of an object looks like from the data plane.
    OperatingStatus {
        Online = "ONLINE",
        Offline = "OFFLINE",
        Degraded = "DEGRADED",
        Error = "ERROR",
        Draining = "DRAINING",
        NoMonitor = "NO_MONITOR",
    }
);

wire_enum!(
    /// Listener protocols.
    ListenerProtocol {
        Tcp = "TCP",
        Http = "HTTP",
        Https = "HTTPS",
        TerminatedHttps = "TERMINATED_HTTPS",
        Udp = "UDP",
        Sctp = "SCTP",
        Prometheus = "PROMETHEUS",
    }
);

/// The layer-4 port space a protocol occupies; two listeners of one load balancer
/// may not share a port within one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSpace {
    /// TCP and everything carried over it.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl ListenerProtocol {
    /// The L4 port space of this protocol.
    pub fn port_space(&self) -> PortSpace {
        match self {
            Self::Udp => PortSpace::Udp,
            Self::Sctp => PortSpace::Sctp,
            _ => PortSpace::Tcp,
        }
    }
    /// Pool protocols a listener of this protocol may forward to (reference §1.5).
    pub fn allowed_pool_protocols(&self) -> &'static [PoolProtocol] {
        use PoolProtocol as P;
        match self {
            Self::Tcp => &[P::Http, P::Https, P::Proxy, P::ProxyV2, P::Tcp],
            Self::Http => &[P::Http, P::Proxy, P::ProxyV2],
            Self::Https => &[P::Https, P::Proxy, P::ProxyV2, P::Tcp],
            Self::TerminatedHttps => &[P::Http, P::Proxy, P::ProxyV2],
            Self::Udp => &[P::Udp],
            Self::Sctp => &[P::Sctp],
            Self::Prometheus => &[],
        }
    }
}

wire_enum!(
    /// Pool protocols.
    PoolProtocol {
        Tcp = "TCP",
        Http = "HTTP",
        Https = "HTTPS",
        Proxy = "PROXY",
        ProxyV2 = "PROXYV2",
        Udp = "UDP",
        Sctp = "SCTP",
    }
);

wire_enum!(
    /// Pool balancing algorithms.
    LbAlgorithm {
        RoundRobin = "ROUND_ROBIN",
        LeastConnections = "LEAST_CONNECTIONS",
        SourceIp = "SOURCE_IP",
        SourceIpPort = "SOURCE_IP_PORT",
    }
);

wire_enum!(
    /// Session persistence types.
    SessionPersistenceType {
        SourceIp = "SOURCE_IP",
        HttpCookie = "HTTP_COOKIE",
        AppCookie = "APP_COOKIE",
    }
);

wire_enum!(
    /// Health monitor types.
    HealthMonitorType {
        Http = "HTTP",
        Https = "HTTPS",
        Ping = "PING",
        Tcp = "TCP",
        TlsHello = "TLS-HELLO",
        UdpConnect = "UDP-CONNECT",
        Sctp = "SCTP",
    }
);

wire_enum!(
    /// HTTP methods a health monitor may use.
    HttpMethod {
        Get = "GET",
        Head = "HEAD",
        Post = "POST",
        Put = "PUT",
        Delete = "DELETE",
        Trace = "TRACE",
        Options = "OPTIONS",
        Connect = "CONNECT",
        Patch = "PATCH",
    }
);

wire_enum!(
    /// L7 policy actions.
    L7PolicyAction {
        Reject = "REJECT",
        RedirectToUrl = "REDIRECT_TO_URL",
        RedirectToPool = "REDIRECT_TO_POOL",
        RedirectPrefix = "REDIRECT_PREFIX",
    }
);

wire_enum!(
    /// L7 rule types.
    L7RuleType {
        HostName = "HOST_NAME",
        Path = "PATH",
        FileType = "FILE_TYPE",
        Header = "HEADER",
        Cookie = "COOKIE",
        SslConnHasCert = "SSL_CONN_HAS_CERT",
        SslVerifyResult = "SSL_VERIFY_RESULT",
        SslDnField = "SSL_DN_FIELD",
    }
);

wire_enum!(
    /// L7 rule comparisons.
    L7RuleCompareType {
        Regex = "REGEX",
        StartsWith = "STARTS_WITH",
        EndsWith = "ENDS_WITH",
        Contains = "CONTAINS",
        EqualTo = "EQUAL_TO",
    }
);

wire_enum!(
    /// TLS client authentication modes of a listener.
    ClientAuthentication {
        None = "NONE",
        Optional = "OPTIONAL",
        Mandatory = "MANDATORY",
    }
);

wire_enum!(
    /// Role of an amphora within its load balancer.
    AmphoraRole {
        Master = "MASTER",
        Backup = "BACKUP",
        Standalone = "STANDALONE",
    }
);

wire_enum!(
    /// Load balancer topology.
    Topology {
        Single = "SINGLE",
        ActiveStandby = "ACTIVE_STANDBY",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_name_allowed_values() {
        for s in HealthMonitorType::ALL {
            assert_eq!(s.parse::<HealthMonitorType>().unwrap().as_str(), *s);
        }
        let err = "ROUND_ROBINX".parse::<LbAlgorithm>().unwrap_err();
        assert!(err.to_string().contains("LEAST_CONNECTIONS"));
        assert_eq!(
            serde_json::to_string(&ProvisioningStatus::PendingCreate).unwrap(),
            "\"PENDING_CREATE\""
        );
    }

    #[test]
    fn status_classes_follow_octavia() {
        assert!(ProvisioningStatus::Active.is_mutable());
        assert!(!ProvisioningStatus::Error.is_mutable());
        assert!(ProvisioningStatus::Error.is_deletable());
        assert!(!ProvisioningStatus::PendingUpdate.is_deletable());
        assert!(ProvisioningStatus::PendingDelete.is_pending());
    }

    #[test]
    fn listener_pool_compatibility_matches_reference() {
        assert!(ListenerProtocol::Http
            .allowed_pool_protocols()
            .contains(&PoolProtocol::Proxy));
        assert!(!ListenerProtocol::Http
            .allowed_pool_protocols()
            .contains(&PoolProtocol::Tcp));
        assert!(ListenerProtocol::Prometheus
            .allowed_pool_protocols()
            .is_empty());
        assert_eq!(
            ListenerProtocol::TerminatedHttps.port_space(),
            ListenerProtocol::Tcp.port_space()
        );
    }
}

//! Compute, network and amphora drivers: the traits flows program against, and `noop`.
//!
//! Flows see only the traits of [`Drivers`]. The `noop` implementations succeed at
//! once with plausible ids and addresses and record every call in a shared [`CallLog`]
//! (API tests, flow tests); real implementations (`netns`, the mTLS agent client) plug in
//! behind the same traits.

pub mod agent_client;
pub mod amphora;
pub mod ca_rotation;
pub mod certs;
pub mod compute;
pub mod error;
pub mod netns;
pub mod network;
pub mod noop;

use std::sync::Arc;

pub use agent_client::{AgentClient, AgentClientConfig};
pub use amphora::{AgentInfo, AmphoraDriver, VrrpAction};
pub use certs::{
    AmphoraCert, BootBundle, BootFile, CertGenerator, CertificateAuthority, ControllerIdentity,
    Secret, DEFAULT_CERT_VALIDITY,
};
pub use compute::{AntiAffinity, BuildRequest, ComputeDriver, ComputeInstance, ComputeStatus};
pub use error::{DriverError, FaultOwner, Result};
pub use netns::{ImageRecord, ImageRegistry, NetnsCompute, NetnsComputeSettings, NetnsNetwork};
pub use network::{
    AmphoraNetworkConfig, FixedIp, HostRoute, Interface, MemberNetworkConfig, Network,
    NetworkDriver, NetworkLookup, Port, PortAddress, Subnet, VipPlug, VipRequest,
};
pub use noop::{CallLog, DriverCall};

/// The drivers a worker runs flows with.
#[derive(Clone)]
pub struct Drivers {
    pub compute: Arc<dyn ComputeDriver>,
    pub network: Arc<dyn NetworkDriver>,
    pub amphora: Arc<dyn AmphoraDriver>,
    /// Issues amphora server certificates (at build and renewal).
    pub certificates: Arc<dyn CertGenerator>,
}

impl Drivers {
    /// The noop drivers, sharing one call log (returned for assertions).
    pub fn noop() -> (Drivers, CallLog) {
        let log = CallLog::default();
        let drivers = Drivers {
            compute: Arc::new(noop::NoopCompute::new(log.clone())),
            network: Arc::new(noop::NoopNetwork::new(log.clone())),
            amphora: Arc::new(noop::NoopAmphora::new(log.clone())),
            certificates: Arc::new(noop::NoopCertificates::new(log.clone())),
        };
        (drivers, log)
    }
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drivers").finish_non_exhaustive()
    }
}

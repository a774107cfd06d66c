//! The noop drivers: succeed at once, answer with plausible ids and addresses, record calls.
//!
//! Ids and addresses are derived from the ids they are asked about (UUIDv5), so a second
//! process, or a resumed flow, gets the same answers without shared state. Nothing is ever
//! contacted: the addresses are only strings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use octavia_model::{Amphora, LoadBalancerId, Topology, Vip};
use uuid::Uuid;

use crate::certs::{AmphoraCert, CertGenerator, Secret, DEFAULT_CERT_VALIDITY};
use crate::{
    AgentInfo, AmphoraDriver, AmphoraNetworkConfig, BuildRequest, ComputeDriver, ComputeInstance,
    ComputeStatus, FixedIp, Interface, MemberNetworkConfig, Network, NetworkDriver, NetworkLookup,
    Port, Result, Subnet, VipPlug, VipRequest, VrrpAction,
};

/// One call a noop driver received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverCall {
    /// `driver.operation`, e.g. `compute.build`, `network.plug_vip`, `amphora.upload_config`.
    pub op: &'static str,
    /// The id the call was about (amphora id, compute id or load balancer id).
    pub subject: String,
    /// Call-specific detail (the uploaded configuration text, the network id, ...).
    pub detail: String,
}

/// Calls a [`CallLog`] keeps; older ones are forgotten so that a long-running process
/// on the noop drivers (the all-in-one, a benchmark) does not grow without bound.
pub const CALL_LOG_CAPACITY: usize = 10_000;

/// The most recent calls received by a set of noop drivers (at most
/// [`CALL_LOG_CAPACITY`]), in order.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<DriverCall>>>,
    /// The requests of the `compute.build` calls, in order (same bound as the calls).
    builds: Arc<Mutex<Vec<BuildRequest>>>,
}

impl CallLog {
    fn lock(&self) -> MutexGuard<'_, Vec<DriverCall>> {
        // A poisoned log only means a test thread panicked while pushing; the data is intact.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_builds(&self) -> MutexGuard<'_, Vec<BuildRequest>> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_build(&self, request: &BuildRequest) {
        let mut builds = self.lock_builds();
        if builds.len() >= CALL_LOG_CAPACITY {
            builds.drain(..CALL_LOG_CAPACITY / 2);
        }
        builds.push(request.clone());
    }

    /// What each `compute.build` call asked for (image, flavor, zone, peers), in order.
    pub fn build_requests(&self) -> Vec<BuildRequest> {
        self.lock_builds().clone()
    }

    fn push(&self, op: &'static str, subject: impl ToString, detail: impl Into<String>) {
        let call = DriverCall {
            op,
            subject: subject.to_string(),
            detail: detail.into(),
        };
        tracing::debug!(op, subject = %call.subject, "noop driver call");
        let mut calls = self.lock();
        if calls.len() >= CALL_LOG_CAPACITY {
            // Drop the older half at once: amortised O(1) per call.
            calls.drain(..CALL_LOG_CAPACITY / 2);
        }
        calls.push(call);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<DriverCall> {
        self.lock().clone()
    }

    /// The operations so far, in order.
    pub fn ops(&self) -> Vec<&'static str> {
        self.lock().iter().map(|c| c.op).collect()
    }

    /// The calls about one subject, in order.
    pub fn calls_for(&self, subject: &str) -> Vec<DriverCall> {
        self.lock()
            .iter()
            .filter(|c| c.subject == subject)
            .cloned()
            .collect()
    }

    /// How many calls of `op` were received.
    pub fn count(&self, op: &str) -> usize {
        self.lock().iter().filter(|c| c.op == op).count()
    }

    /// Forget every call so far.
    pub fn clear(&self) {
        self.lock().clear();
        self.lock_builds().clear();
    }
}

const NAMESPACE: Uuid = Uuid::from_u128(0x6f63_7461_7669_615f_6e6f_6f70_5f64_7276);

fn derived_id(kind: &str, of: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{kind}/{of}").as_bytes())
}

/// A host part in 1..=254 from a byte.
fn host_octet(b: u8) -> u8 {
    1 + b % 254
}

fn address(prefix: &str, id: Uuid) -> String {
    let b = id.as_bytes();
    format!("{prefix}.{}.{}", b[1], host_octet(b[2]))
}

fn mac(id: Uuid) -> String {
    let b = id.as_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Noop compute: instances are "active" as soon as they are built, in the zone they were
/// asked for.
#[derive(Debug, Default)]
pub struct NoopCompute {
    log: CallLog,
    deleted: Mutex<BTreeSet<String>>,
    /// compute id → the zone its build asked for
    zones: Mutex<BTreeMap<String, String>>,
}

impl NoopCompute {
    /// A noop compute driver recording into `log`.
    pub fn new(log: CallLog) -> Self {
        Self {
            log,
            deleted: Mutex::new(BTreeSet::new()),
            zones: Mutex::new(BTreeMap::new()),
        }
    }

    fn deleted(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.deleted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn zones(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.zones.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ComputeDriver for NoopCompute {
    async fn build(&self, request: &BuildRequest) -> Result<String> {
        let compute_id = derived_id("compute", &request.amphora_id.to_string()).to_string();
        self.deleted().remove(&compute_id);
        match &request.availability_zone {
            Some(zone) => self.zones().insert(compute_id.clone(), zone.clone()),
            None => self.zones().remove(&compute_id),
        };
        self.log.push_build(request);
        self.log
            .push("compute.build", request.amphora_id, compute_id.clone());
        Ok(compute_id)
    }

    async fn instance(&self, compute_id: &str) -> Result<ComputeInstance> {
        self.log.push("compute.instance", compute_id, "");
        let id = Uuid::parse_str(compute_id).unwrap_or_else(|_| derived_id("compute", compute_id));
        let status = if self.deleted().contains(compute_id) {
            ComputeStatus::Deleted
        } else {
            ComputeStatus::Active
        };
        Ok(ComputeInstance {
            compute_id: compute_id.to_string(),
            status,
            lb_network_ip: Some(address("10.0", id)),
            host: Some(format!("noop-host-{}", id.as_bytes()[3] % 4)),
            image_id: Some(derived_id("image", "noop").to_string()),
            availability_zone: self.zones().get(compute_id).cloned(),
        })
    }

    async fn delete(&self, compute_id: &str) -> Result<()> {
        self.log.push("compute.delete", compute_id, "");
        self.deleted().insert(compute_id.to_string());
        Ok(())
    }

    /// The one image every noop instance reports booting from, whatever the tag: noop
    /// amphorae are never outdated.
    async fn current_image(&self, image_tag: &str) -> Result<String> {
        self.log.push("compute.current_image", image_tag, "");
        Ok(derived_id("image", "noop").to_string())
    }
}

/// Noop network: VIPs and ports are derived from the ids asked about.
#[derive(Debug, Default)]
pub struct NoopNetwork {
    log: CallLog,
    /// compute id → network id → interface
    plugged: Mutex<BTreeMap<String, BTreeMap<String, Interface>>>,
}

impl NoopNetwork {
    /// A noop network driver recording into `log`.
    pub fn new(log: CallLog) -> Self {
        Self {
            log,
            plugged: Mutex::new(BTreeMap::new()),
        }
    }

    fn plugged(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<String, Interface>>> {
        self.plugged.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interface(compute_id: &str, network_id: &str) -> Interface {
        let port = derived_id("port", &format!("{compute_id}/{network_id}"));
        Interface {
            compute_id: compute_id.to_string(),
            network_id: network_id.to_string(),
            port_id: port.to_string(),
            mac_address: mac(port),
            fixed_ips: vec![FixedIp {
                subnet_id: derived_id("subnet", network_id).to_string(),
                ip_address: address("172.16", port),
            }],
        }
    }
}

/// The noop network service knows every id, as Octavia's noop driver does: each subnet is
/// on its own network, each network has one subnet, each port is free with one address.
#[async_trait]
impl NetworkLookup for NoopNetwork {
    async fn find_subnet(&self, subnet_id: &str) -> Result<Option<Subnet>> {
        let net = derived_id("network-of-subnet", subnet_id);
        let b = net.as_bytes();
        Ok(Some(Subnet {
            id: subnet_id.to_string(),
            network_id: net.to_string(),
            cidr: format!("172.{}.{}.0/24", 16 + b[0] % 16, b[1]),
            gateway_ip: Some(format!("172.{}.{}.1", 16 + b[0] % 16, b[1])),
        }))
    }

    async fn find_network(&self, network_id: &str) -> Result<Option<Network>> {
        Ok(Some(Network {
            id: network_id.to_string(),
            subnet_ids: vec![derived_id("subnet", network_id).to_string()],
        }))
    }

    async fn find_port(&self, port_id: &str) -> Result<Option<Port>> {
        Ok(Some(Port {
            id: port_id.to_string(),
            network_id: derived_id("network-of-port", port_id).to_string(),
            fixed_ips: vec![FixedIp {
                subnet_id: derived_id("subnet-of-port", port_id).to_string(),
                ip_address: address("192.168", derived_id("port-address", port_id)),
            }],
            device_id: None,
        }))
    }
}

#[async_trait]
impl NetworkDriver for NoopNetwork {
    async fn allocate_vip(&self, request: &VipRequest) -> Result<Vip> {
        let lb = request.load_balancer_id.to_string();
        let r = &request.requested;
        let network_id = r
            .network_id
            .clone()
            .unwrap_or_else(|| derived_id("network", &lb).to_string());
        let vip = Vip {
            ip_address: r
                .ip_address
                .clone()
                .or_else(|| Some(address("192.168", derived_id("vip", &lb)))),
            port_id: r
                .port_id
                .clone()
                .or_else(|| Some(derived_id("vip-port", &lb).to_string())),
            subnet_id: r
                .subnet_id
                .clone()
                .or_else(|| Some(derived_id("subnet", &network_id).to_string())),
            network_id: Some(network_id),
            qos_policy_id: r.qos_policy_id.clone(),
        };
        self.log.push(
            "network.allocate_vip",
            &lb,
            vip.ip_address.clone().unwrap_or_default(),
        );
        Ok(vip)
    }

    async fn deallocate_vip(&self, load_balancer_id: LoadBalancerId, vip: &Vip) -> Result<()> {
        self.log.push(
            "network.deallocate_vip",
            load_balancer_id,
            vip.port_id.clone().unwrap_or_default(),
        );
        Ok(())
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> Result<VipPlug> {
        let vrrp_port = derived_id("vrrp-port", &amphora.id.to_string());
        let plug = VipPlug {
            vrrp_ip: address("172.16", vrrp_port),
            vrrp_port_id: vrrp_port.to_string(),
            ha_ip: vip.ip_address.clone().unwrap_or_default(),
            ha_port_id: vip.port_id.clone().unwrap_or_default(),
        };
        self.log
            .push("network.plug_vip", amphora.id, plug.ha_ip.clone());
        Ok(plug)
    }

    async fn unplug_vip(&self, amphora: &Amphora, vip: &Vip) -> Result<()> {
        self.log.push(
            "network.unplug_vip",
            amphora.id,
            vip.ip_address.clone().unwrap_or_default(),
        );
        Ok(())
    }

    async fn plug_network(&self, compute_id: &str, network_id: &str) -> Result<Interface> {
        self.log
            .push("network.plug_network", compute_id, network_id);
        let iface = Self::interface(compute_id, network_id);
        self.plugged()
            .entry(compute_id.to_string())
            .or_default()
            .insert(network_id.to_string(), iface.clone());
        Ok(iface)
    }

    async fn unplug_network(&self, compute_id: &str, network_id: &str) -> Result<()> {
        self.log
            .push("network.unplug_network", compute_id, network_id);
        if let Some(nets) = self.plugged().get_mut(compute_id) {
            nets.remove(network_id);
        }
        Ok(())
    }

    async fn plugged_networks(&self, compute_id: &str) -> Result<Vec<Interface>> {
        Ok(self
            .plugged()
            .get(compute_id)
            .map(|nets| nets.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn network_config(&self, amphora: &Amphora, vip: &Vip) -> Result<AmphoraNetworkConfig> {
        let vrrp_port = derived_id("vrrp-port", &amphora.id.to_string());
        let subnet = derived_id("vip", vip.subnet_id.as_deref().unwrap_or_default());
        let b = subnet.as_bytes();
        Ok(AmphoraNetworkConfig {
            subnet_cidr: format!("192.168.{}.0/24", b[0]),
            gateway: Some(format!("192.168.{}.1", b[0])),
            mac_address: mac(vrrp_port),
            mtu: Some(1500),
            vrrp_ip: amphora.vrrp_ip.clone(),
            host_routes: Vec::new(),
        })
    }
}

/// The interface name the noop agent client reports for every address.
pub const NOOP_VRRP_INTERFACE: &str = "eth1";

/// Noop agent client: every agent answers at once and accepts every upload.
#[derive(Debug, Default)]
pub struct NoopAmphora {
    log: CallLog,
}

impl NoopAmphora {
    /// A noop agent client recording into `log`.
    pub fn new(log: CallLog) -> Self {
        Self { log }
    }
}

#[async_trait]
impl AmphoraDriver for NoopAmphora {
    async fn wait_for_connectivity(
        &self,
        amphora: &Amphora,
        _timeout: Duration,
    ) -> Result<AgentInfo> {
        self.log.push(
            "amphora.wait_for_connectivity",
            amphora.id,
            amphora.lb_network_ip.clone().unwrap_or_default(),
        );
        Ok(AgentInfo {
            hostname: format!("amphora-{}", amphora.id),
            api_version: "1.0".to_string(),
            haproxy_version: Some("2.8".to_string()),
        })
    }

    async fn upload_config(
        &self,
        amphora: &Amphora,
        _load_balancer_id: LoadBalancerId,
        config: &str,
    ) -> Result<()> {
        self.log.push("amphora.upload_config", amphora.id, config);
        Ok(())
    }

    async fn reload(&self, amphora: &Amphora, load_balancer_id: LoadBalancerId) -> Result<()> {
        self.log
            .push("amphora.reload", amphora.id, load_balancer_id.to_string());
        Ok(())
    }

    async fn remove_config(
        &self,
        amphora: &Amphora,
        load_balancer_id: LoadBalancerId,
    ) -> Result<()> {
        self.log.push(
            "amphora.remove_config",
            amphora.id,
            load_balancer_id.to_string(),
        );
        Ok(())
    }

    async fn plug_vip(
        &self,
        amphora: &Amphora,
        vip_address: &str,
        _config: &AmphoraNetworkConfig,
        topology: Topology,
    ) -> Result<()> {
        self.log.push(
            "amphora.plug_vip",
            amphora.id,
            format!("{vip_address} {topology}"),
        );
        Ok(())
    }

    /// Every amphora's VIP-network interface is `eth1`, as in Octavia's amphora image.
    async fn interface_of(&self, amphora: &Amphora, ip: &str) -> Result<String> {
        self.log.push("amphora.interface_of", amphora.id, ip);
        Ok(NOOP_VRRP_INTERFACE.to_string())
    }

    async fn upload_vrrp_config(&self, amphora: &Amphora, config: &str) -> Result<()> {
        self.log
            .push("amphora.upload_vrrp_config", amphora.id, config);
        Ok(())
    }

    async fn vrrp_action(&self, amphora: &Amphora, action: VrrpAction) -> Result<()> {
        self.log
            .push("amphora.vrrp_action", amphora.id, action.as_str());
        Ok(())
    }

    async fn plug_network(&self, amphora: &Amphora, config: &MemberNetworkConfig) -> Result<()> {
        self.log.push(
            "amphora.plug_network",
            amphora.id,
            config.mac_address.clone(),
        );
        Ok(())
    }

    async fn update_agent_config(&self, amphora: &Amphora, config: &str) -> Result<()> {
        self.log
            .push("amphora.update_agent_config", amphora.id, config);
        Ok(())
    }

    async fn upload_server_certificate(&self, amphora: &Amphora, cert: &AmphoraCert) -> Result<()> {
        self.log.push(
            "amphora.upload_server_certificate",
            amphora.id,
            cert.expires_at.to_string(),
        );
        Ok(())
    }
}

/// Issues self-signed amphora certificates (CN = SAN DNS = the amphora id) valid for
/// [`DEFAULT_CERT_VALIDITY`], held by no CA: nothing ever verifies them, since the noop
/// amphora driver contacts no agent.
#[derive(Debug, Clone)]
pub struct NoopCertificates {
    log: CallLog,
}

impl NoopCertificates {
    /// Issues into `log` (`certificates.issue`, the expiry as detail).
    pub fn new(log: CallLog) -> Self {
        Self { log }
    }
}

impl CertGenerator for NoopCertificates {
    fn amphora_certificate(&self, amphora_id: octavia_model::AmphoraId) -> Result<AmphoraCert> {
        const CTX: &str = "issue noop amphora certificate";
        let ours = |e: String| crate::DriverError::permanent(crate::FaultOwner::Ours, CTX, e);
        let key = rcgen::KeyPair::generate().map_err(|e| ours(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![amphora_id.to_string()])
            .map_err(|e| ours(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc();
        let validity =
            time::Duration::try_from(DEFAULT_CERT_VALIDITY).map_err(|e| ours(e.to_string()))?;
        params.not_before = now;
        params.not_after = now + validity;
        let expires_at = chrono::DateTime::from_timestamp(params.not_after.unix_timestamp(), 0)
            .map(|t| t.naive_utc())
            .ok_or_else(|| ours("expiry out of range".into()))?;
        let cert = params.self_signed(&key).map_err(|e| ours(e.to_string()))?;
        self.log
            .push("certificates.issue", amphora_id, expires_at.to_string());
        Ok(AmphoraCert {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Drivers;
    use octavia_model::{now, AmphoraId, ProvisioningStatus};

    fn amphora() -> Amphora {
        Amphora::new(
            AmphoraId::new(),
            None,
            ProvisioningStatus::PendingCreate,
            now(),
        )
    }

    #[test]
    fn call_log_keeps_only_the_most_recent_calls() {
        let log = CallLog::default();
        for i in 0..CALL_LOG_CAPACITY + 10 {
            log.push("compute.build", i, "");
        }
        let calls = log.calls();
        assert!(calls.len() <= CALL_LOG_CAPACITY);
        let last = calls.last().expect("calls kept");
        assert_eq!(last.subject, (CALL_LOG_CAPACITY + 9).to_string());
    }

    #[tokio::test]
    async fn compute_builds_active_instances_and_forgets_deleted_ones() {
        let (d, log) = Drivers::noop();
        let amp = amphora();
        let req = BuildRequest {
            amphora_id: amp.id,
            image_id: None,
            image_tag: Some("amphora".into()),
            flavor: Some("m1.amp".into()),
            availability_zone: Some("az1".into()),
            management_network: None,
            anti_affinity_peers: vec![],
            anti_affinity: Default::default(),
            server_certificate: d.certificates.amphora_certificate(amp.id).unwrap(),
            heartbeat_key: None,
        };
        let id = d.compute.build(&req).await.unwrap();
        assert_eq!(
            log.build_requests(),
            vec![req.clone()],
            "the request is recorded"
        );
        assert_eq!(
            d.compute
                .instance(&id)
                .await
                .unwrap()
                .availability_zone
                .as_deref(),
            Some("az1"),
            "the instance runs in the zone it was asked for"
        );
        assert_eq!(
            d.compute.build(&req).await.unwrap(),
            id,
            "build is idempotent"
        );
        let inst = d.compute.instance(&id).await.unwrap();
        assert_eq!(inst.status, ComputeStatus::Active);
        assert!(inst.lb_network_ip.unwrap().starts_with("10.0."));
        assert!(d.compute.host(&id).await.unwrap().is_some());
        d.compute.delete(&id).await.unwrap();
        d.compute.delete(&id).await.unwrap();
        assert_eq!(d.compute.status(&id).await.unwrap(), ComputeStatus::Deleted);
        assert_eq!(log.count("compute.build"), 2);
        assert_eq!(log.build_requests().len(), 2);
        assert_eq!(log.count("compute.delete"), 2);
        let build = log
            .calls_for(&amp.id.to_string())
            .into_iter()
            .find(|c| c.op == "compute.build")
            .expect("the build is logged under the amphora");
        assert_eq!(build.detail, id);
    }

    #[tokio::test]
    async fn network_vip_is_stable_and_keeps_what_was_requested() {
        let (d, log) = Drivers::noop();
        let lb = LoadBalancerId::new();
        let req = VipRequest {
            load_balancer_id: lb,
            project_id: "p".into(),
            requested: Vip {
                ip_address: Some("192.0.2.10".into()),
                ..Vip::default()
            },
        };
        let vip = d.network.allocate_vip(&req).await.unwrap();
        assert_eq!(vip.ip_address.as_deref(), Some("192.0.2.10"));
        assert!(vip.port_id.is_some() && vip.subnet_id.is_some() && vip.network_id.is_some());
        assert_eq!(d.network.allocate_vip(&req).await.unwrap(), vip);

        let amp = amphora();
        let plug = d.network.plug_vip(&amp, &vip).await.unwrap();
        assert_eq!(plug.ha_ip, "192.0.2.10");
        assert_eq!(Some(plug.ha_port_id), vip.port_id);
        let iface = d.network.plug_network("c1", "net-a").await.unwrap();
        assert_eq!(d.network.plugged_networks("c1").await.unwrap(), vec![iface]);
        d.network.unplug_network("c1", "net-a").await.unwrap();
        assert!(d.network.plugged_networks("c1").await.unwrap().is_empty());
        assert_eq!(
            log.ops(),
            vec![
                "network.allocate_vip",
                "network.allocate_vip",
                "network.plug_vip",
                "network.plug_network",
                "network.unplug_network"
            ]
        );
    }

    #[tokio::test]
    async fn agent_records_uploaded_configuration() {
        let (d, log) = Drivers::noop();
        let amp = amphora();
        let lb = LoadBalancerId::new();
        d.amphora
            .wait_for_connectivity(&amp, Duration::from_secs(1))
            .await
            .unwrap();
        d.amphora
            .upload_config(&amp, lb, "frontend x")
            .await
            .unwrap();
        d.amphora.reload(&amp, lb).await.unwrap();
        let calls = log.calls_for(&amp.id.to_string());
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1].op, "amphora.upload_config");
        assert_eq!(calls[1].detail, "frontend x");
        assert_eq!(calls[2].op, "amphora.reload");
    }

    #[test]
    fn noop_certificates_name_the_amphora_and_expire_after_the_default_validity() {
        let (d, log) = Drivers::noop();
        let id = AmphoraId::new();
        let before = now();
        let cert = d.certificates.amphora_certificate(id).unwrap();
        assert_eq!(
            crate::certs::cert_expiration(&cert.cert_pem).unwrap(),
            cert.expires_at
        );
        let lifetime = (cert.expires_at - before).num_seconds();
        let default = DEFAULT_CERT_VALIDITY.as_secs() as i64;
        assert!(
            (default - 5..=default + 5).contains(&lifetime),
            "{lifetime}"
        );
        assert!(cert.server_pem().expose().contains("PRIVATE KEY"));
        assert_eq!(log.calls_for(&id.to_string())[0].op, "certificates.issue");
    }
}

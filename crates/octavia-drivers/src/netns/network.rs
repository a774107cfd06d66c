//! `NetnsNetwork`: operator-created tenant networks (a bridge, a CIDR, a gateway), address
//! management for VIPs and ports, and veths from amphora namespaces to the bridges. All state
//! is one JSON file, so allocations survive a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use octavia_model::{Amphora, LoadBalancerId, Vip};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::sys::{self, Ipv4Cidr};
use crate::error::{DriverError, FaultOwner, Result};
use crate::network::{
    AmphoraNetworkConfig, FixedIp, Interface, Network, NetworkDriver, NetworkLookup, Port, Subnet,
    VipPlug, VipRequest,
};

const OWNER: FaultOwner = FaultOwner::Network;
const STATE_FILE: &str = "networks.json";
/// The state lock file beside it.
const LOCK_FILE: &str = "networks.lock";

/// What the operator asks for (`octavia network create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// Bridge name (at most 15 characters); `None` = `otb<8 hex of the id>`.
    pub bridge: Option<String>,
    /// IPv4 CIDR of the network's one subnet.
    pub cidr: String,
    /// Gateway address (inside the CIDR); the host side of the bridge holds it.
    pub gateway: Option<String>,
}

/// A tenant network with its one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantNetwork {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet_id: String,
    pub cidr: String,
    pub gateway: Option<String>,
}

/// What an allocated address is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PortKind {
    /// The VIP address of a load balancer (no interface: the agent adds it to the vrrp port).
    Vip { load_balancer_id: String },
    /// An amphora's own port on the VIP network (interface in the amphora namespace).
    Vrrp,
    /// An amphora's port on a member network.
    Member,
    /// An address reserved by the operator (e.g. a member server outside any amphora).
    Reserved { description: String },
}

/// One allocated address, and the veth holding it if it is plugged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub id: String,
    pub network_id: String,
    pub subnet_id: String,
    pub ip_address: String,
    pub mac_address: String,
    pub kind: PortKind,
    /// The amphora namespace the port is plugged into.
    pub compute_id: Option<String>,
    /// Host end of the veth (on the network's bridge).
    pub host_ifname: Option<String>,
    /// Namespace end of the veth.
    pub ns_ifname: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    networks: BTreeMap<String, TenantNetwork>,
    ports: BTreeMap<String, PortRecord>,
}

/// The `netns` network driver.
#[derive(Clone)]
pub struct NetnsNetwork {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NetnsNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsNetwork")
            .field("state_file", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    /// Held around every read-modify-write of the state file, across processes too.
    lock: sys::StateLock,
}

fn invalid(context: &str, message: impl Into<String>) -> DriverError {
    DriverError::permanent(OWNER, context, message)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        DriverError::permanent(FaultOwner::Ours, "run netns driver task", e.to_string())
    })?
}

impl NetnsNetwork {
    /// A driver keeping its state in `<state_dir>/networks.json` (created if missing).
    pub fn new(state_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = state_dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| sys::io_error(OWNER, "open network state", dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: dir.join(STATE_FILE),
                lock: sys::StateLock::new(dir.join(LOCK_FILE)),
            }),
        })
    }

    /// Create a tenant network and its bridge (with the gateway address on the host side).
    pub fn create_network(&self, spec: &NetworkSpec) -> Result<TenantNetwork> {
        self.inner.create_network(spec)
    }

    /// All tenant networks, by name.
    pub fn list_networks(&self) -> Result<Vec<TenantNetwork>> {
        let _g = self.inner.guard()?;
        let mut nets: Vec<_> = self.inner.load()?.networks.into_values().collect();
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nets)
    }

    /// The network with this id or name.
    pub fn find_network(&self, id_or_name: &str) -> Result<Option<TenantNetwork>> {
        let _g = self.inner.guard()?;
        Ok(find(&self.inner.load()?, id_or_name).cloned())
    }

    /// Delete a network and its bridge; refused while addresses are allocated on it.
    /// `Ok(false)` if there is no such network.
    pub fn delete_network(&self, id_or_name: &str) -> Result<bool> {
        self.inner.delete_network(id_or_name)
    }

    /// Reserve an address on a network for something outside any amphora (a member server).
    pub fn reserve_address(&self, network: &str, description: &str) -> Result<PortRecord> {
        let _g = self.inner.guard()?;
        let mut state = self.inner.load()?;
        let net = find(&state, network)
            .cloned()
            .ok_or_else(|| invalid("reserve address", format!("no network {network:?}")))?;
        let port = new_port(
            &state,
            &net,
            None,
            PortKind::Reserved {
                description: description.to_string(),
            },
        )?;
        state.ports.insert(port.id.clone(), port.clone());
        self.inner.save(&state)?;
        Ok(port)
    }

    /// Release an address (any kind; unplugs its veth). `Ok(false)` if it was not allocated.
    pub fn release_address(&self, port_id: &str) -> Result<bool> {
        let _g = self.inner.guard()?;
        let mut state = self.inner.load()?;
        let Some(port) = state.ports.get(port_id).cloned() else {
            return Ok(false);
        };
        remove_veth(&port)?;
        state.ports.remove(port_id);
        self.inner.save(&state)?;
        Ok(true)
    }

    /// The stored state, read on the blocking pool.
    async fn state(&self) -> Result<State> {
        let inner = self.inner.clone();
        blocking(move || {
            let _g = inner.guard()?;
            inner.load()
        })
        .await
    }

    /// Every allocated address.
    pub fn ports(&self) -> Result<Vec<PortRecord>> {
        let _g = self.inner.guard()?;
        Ok(self.inner.load()?.ports.into_values().collect())
    }

    /// After a restart: recreate missing bridges (with their gateway addresses).
    pub fn ensure_bridges(&self) -> Result<()> {
        let _g = self.inner.guard()?;
        for net in self.inner.load()?.networks.values() {
            ensure_network_bridge(net)?;
        }
        Ok(())
    }
}

fn find<'a>(state: &'a State, id_or_name: &str) -> Option<&'a TenantNetwork> {
    state
        .networks
        .get(id_or_name)
        .or_else(|| state.networks.values().find(|n| n.name == id_or_name))
}

fn cidr_of(net: &TenantNetwork) -> Result<Ipv4Cidr> {
    net.cidr
        .parse()
        .map_err(|e: String| invalid("read network", format!("network {}: {e}", net.id)))
}

fn ensure_network_bridge(net: &TenantNetwork) -> Result<()> {
    let cidr = cidr_of(net)?;
    let gateway = match &net.gateway {
        Some(g) => Some(cidr.with_host(parse_addr(g)?)),
        None => None,
    };
    sys::ensure_bridge(OWNER, &net.bridge, gateway.as_deref())
}

fn parse_addr(s: &str) -> Result<Ipv4Addr> {
    s.trim()
        .parse()
        .map_err(|_| invalid("parse address", format!("{s:?} is not an IPv4 address")))
}

/// A new port with the first free address of the network.
fn new_port(
    state: &State,
    net: &TenantNetwork,
    wanted: Option<&str>,
    kind: PortKind,
) -> Result<PortRecord> {
    const CTX: &str = "allocate address";
    let cidr = cidr_of(net)?;
    let used: BTreeSet<Ipv4Addr> = state
        .ports
        .values()
        .filter(|p| p.network_id == net.id)
        .filter_map(|p| p.ip_address.parse().ok())
        .chain(net.gateway.as_deref().and_then(|g| g.parse().ok()))
        .collect();
    let addr = match wanted {
        Some(w) => {
            let a = parse_addr(w)?;
            if !cidr.is_host(a) {
                return Err(invalid(CTX, format!("{a} is not a host address of {cidr}")));
            }
            if used.contains(&a) {
                return Err(invalid(
                    CTX,
                    format!("{a} is already in use on {}", net.name),
                ));
            }
            a
        }
        None => cidr
            .hosts()
            .find(|a| !used.contains(a))
            .ok_or_else(|| invalid(CTX, format!("network {} ({cidr}) is full", net.name)))?,
    };
    let id = Uuid::new_v4();
    Ok(PortRecord {
        id: id.to_string(),
        network_id: net.id.clone(),
        subnet_id: net.subnet_id.clone(),
        ip_address: addr.to_string(),
        mac_address: sys::mac_from(id.as_bytes()),
        kind,
        compute_id: None,
        host_ifname: None,
        ns_ifname: None,
    })
}

fn remove_veth(port: &PortRecord) -> Result<()> {
    if let Some(host_if) = &port.host_ifname {
        sys::delete_link(OWNER, host_if)?;
    }
    Ok(())
}

fn interface_of(port: &PortRecord) -> Interface {
    Interface {
        compute_id: port.compute_id.clone().unwrap_or_default(),
        network_id: port.network_id.clone(),
        port_id: port.id.clone(),
        mac_address: port.mac_address.clone(),
        fixed_ips: vec![FixedIp {
            subnet_id: port.subnet_id.clone(),
            ip_address: port.ip_address.clone(),
        }],
    }
}

impl Inner {
    fn guard(&self) -> Result<sys::StateGuard<'_>> {
        self.lock.lock(OWNER)
    }

    fn load(&self) -> Result<State> {
        sys::load_json(OWNER, &self.path)
    }

    fn save(&self, state: &State) -> Result<()> {
        sys::save_json(OWNER, &self.path, state)
    }

    fn create_network(&self, spec: &NetworkSpec) -> Result<TenantNetwork> {
        const CTX: &str = "create network";
        let name = spec.name.trim();
        if name.is_empty() {
            return Err(invalid(CTX, "the name must not be empty"));
        }
        let cidr: Ipv4Cidr = spec.cidr.parse().map_err(|e: String| invalid(CTX, e))?;
        if cidr.prefix() > 30 {
            return Err(invalid(CTX, format!("{cidr} is too small (at most /30)")));
        }
        let gateway = match &spec.gateway {
            Some(g) => {
                let a = parse_addr(g)?;
                if !cidr.is_host(a) {
                    return Err(invalid(CTX, format!("gateway {a} is not a host of {cidr}")));
                }
                Some(a.to_string())
            }
            None => None,
        };
        let id = Uuid::new_v4();
        let bridge = spec
            .bridge
            .clone()
            .unwrap_or_else(|| format!("otb{}", &id.simple().to_string()[..8]));
        if !sys::valid_name(&bridge) || bridge.len() > 15 {
            return Err(invalid(
                CTX,
                format!("bad bridge name {bridge:?} (at most 15 characters)"),
            ));
        }
        let _g = self.guard()?;
        let mut state = self.load()?;
        if state.networks.values().any(|n| n.name == name) {
            return Err(invalid(CTX, format!("a network named {name:?} exists")));
        }
        if let Some(n) = state.networks.values().find(|n| n.bridge == bridge) {
            return Err(invalid(
                CTX,
                format!("bridge {bridge} belongs to network {}", n.name),
            ));
        }
        let net = TenantNetwork {
            id: id.to_string(),
            name: name.to_string(),
            bridge,
            subnet_id: Uuid::new_v4().to_string(),
            cidr: cidr.to_string(),
            gateway,
        };
        ensure_network_bridge(&net)?;
        state.networks.insert(net.id.clone(), net.clone());
        self.save(&state)?;
        tracing::info!(network_id = %net.id, name = %net.name, bridge = %net.bridge, cidr = %net.cidr, "created tenant network");
        Ok(net)
    }

    fn delete_network(&self, id_or_name: &str) -> Result<bool> {
        let _g = self.guard()?;
        let mut state = self.load()?;
        let Some(net) = find(&state, id_or_name).cloned() else {
            return Ok(false);
        };
        let in_use = state
            .ports
            .values()
            .filter(|p| p.network_id == net.id)
            .count();
        if in_use > 0 {
            return Err(invalid(
                "delete network",
                format!(
                    "network {} still has {in_use} allocated addresses",
                    net.name
                ),
            ));
        }
        sys::delete_link(OWNER, &net.bridge)?;
        state.networks.remove(&net.id);
        self.save(&state)?;
        tracing::info!(network_id = %net.id, bridge = %net.bridge, "deleted tenant network");
        Ok(true)
    }

    /// The network a VIP lives on (by subnet, then network).
    fn vip_network(state: &State, vip: &Vip) -> Result<TenantNetwork> {
        let by_subnet = vip
            .subnet_id
            .as_deref()
            .and_then(|s| state.networks.values().find(|n| n.subnet_id == s));
        let by_network = vip
            .network_id
            .as_deref()
            .and_then(|n| state.networks.get(n));
        by_subnet.or(by_network).cloned().ok_or_else(|| {
            invalid(
                "find VIP network",
                format!(
                    "no tenant network for subnet {:?} / network {:?}",
                    vip.subnet_id, vip.network_id
                ),
            )
        })
    }

    fn allocate_vip(&self, request: &VipRequest) -> Result<Vip> {
        let lb = request.load_balancer_id.to_string();
        let _g = self.guard()?;
        let mut state = self.load()?;
        let vip_of = |p: &PortRecord| Vip {
            ip_address: Some(p.ip_address.clone()),
            port_id: Some(p.id.clone()),
            subnet_id: Some(p.subnet_id.clone()),
            network_id: Some(p.network_id.clone()),
            qos_policy_id: request.requested.qos_policy_id.clone(),
        };
        let existing = state.ports.values().find(
            |p| matches!(&p.kind, PortKind::Vip { load_balancer_id } if *load_balancer_id == lb),
        );
        if let Some(p) = existing {
            return Ok(vip_of(p));
        }
        let net = Self::vip_network(&state, &request.requested)?;
        let port = new_port(
            &state,
            &net,
            request.requested.ip_address.as_deref(),
            PortKind::Vip {
                load_balancer_id: lb.clone(),
            },
        )?;
        state.ports.insert(port.id.clone(), port.clone());
        self.save(&state)?;
        tracing::info!(load_balancer_id = %lb, vip = %port.ip_address, network_id = %net.id, "allocated VIP");
        Ok(vip_of(&port))
    }

    fn deallocate_vip(&self, lb: LoadBalancerId, vip: &Vip) -> Result<()> {
        let lb = lb.to_string();
        let _g = self.guard()?;
        let mut state = self.load()?;
        let before = state.ports.len();
        state.ports.retain(|id, p| {
            let is_lb =
                matches!(&p.kind, PortKind::Vip { load_balancer_id } if *load_balancer_id == lb);
            let is_port = vip.port_id.as_deref() == Some(id.as_str())
                && matches!(p.kind, PortKind::Vip { .. });
            !(is_lb || is_port)
        });
        if state.ports.len() != before {
            self.save(&state)?;
            tracing::info!(load_balancer_id = %lb, "released VIP");
        }
        Ok(())
    }

    /// Find or create the port of `kind` for `compute_id` on `net`, and make sure its veth
    /// exists (recreated if the namespace lost it).
    fn plug(&self, compute_id: &str, net: &TenantNetwork, kind: PortKind) -> Result<PortRecord> {
        const CTX: &str = "plug amphora into network";
        if !sys::valid_name(compute_id) || !sys::netns_exists(compute_id) {
            return Err(DriverError::permanent(
                OWNER,
                CTX,
                format!("amphora namespace {compute_id:?} does not exist"),
            ));
        }
        let mut state = self.load()?;
        let existing = state
            .ports
            .values()
            .find(|p| {
                p.compute_id.as_deref() == Some(compute_id)
                    && p.network_id == net.id
                    && p.kind == kind
            })
            .cloned();
        let mut port = match existing {
            Some(p) => p,
            None => {
                let mut p = new_port(&state, net, None, kind)?;
                p.compute_id = Some(compute_id.to_string());
                p.host_ifname = Some(format!("ot{}", &p.id.replace('-', "")[..12]));
                p
            }
        };
        let host_if = port
            .host_ifname
            .clone()
            .ok_or_else(|| invalid(CTX, format!("port {} has no interface name", port.id)))?;
        // The namespace end keeps its name unless it is gone (then pick the first free ethN).
        let present = port
            .ns_ifname
            .as_deref()
            .is_some_and(|n| sys::link_exists(Some(compute_id), n));
        if !present {
            if sys::link_exists(None, &host_if) {
                sys::delete_link(OWNER, &host_if)?;
            }
            let names = sys::links_in(OWNER, compute_id)?;
            let free = (1..)
                .map(|n| format!("eth{n}"))
                .find(|n| !names.contains(n))
                .unwrap_or_else(|| "eth1".into());
            port.ns_ifname = Some(free);
        }
        // Record first, so unplug and delete find the veth even if a step below fails.
        state.ports.insert(port.id.clone(), port.clone());
        self.save(&state)?;
        ensure_network_bridge(net)?;
        let ns_if = port.ns_ifname.clone().unwrap_or_default();
        sys::ensure_veth(
            OWNER,
            &host_if,
            compute_id,
            &ns_if,
            Some(&port.mac_address),
            &net.bridge,
        )?;
        tracing::info!(compute_id = %compute_id, network_id = %net.id, port_id = %port.id, ip = %port.ip_address, "plugged port");
        Ok(port)
    }

    /// Remove the ports of `kind` of `compute_id` (on `network_id`, or on any network).
    fn unplug(&self, compute_id: &str, network_id: Option<&str>, kind: &PortKind) -> Result<()> {
        let _g = self.guard()?;
        let mut state = self.load()?;
        let gone: Vec<PortRecord> = state
            .ports
            .values()
            .filter(|p| {
                p.compute_id.as_deref() == Some(compute_id)
                    && network_id.is_none_or(|n| p.network_id == n)
                    && p.kind == *kind
            })
            .cloned()
            .collect();
        for port in &gone {
            remove_veth(port)?;
            state.ports.remove(&port.id);
            tracing::info!(compute_id = %compute_id, port_id = %port.id, "unplugged port");
        }
        if !gone.is_empty() {
            self.save(&state)?;
        }
        Ok(())
    }

    fn vrrp_port(
        &self,
        amphora: &Amphora,
        vip: &Vip,
    ) -> Result<(TenantNetwork, Option<PortRecord>)> {
        let compute_id = amphora_compute_id(amphora)?;
        let state = self.load()?;
        let net = Self::vip_network(&state, vip)?;
        let port = state
            .ports
            .values()
            .find(|p| {
                p.compute_id.as_deref() == Some(compute_id)
                    && p.network_id == net.id
                    && p.kind == PortKind::Vrrp
            })
            .cloned();
        Ok((net, port))
    }
}

fn amphora_compute_id(amphora: &Amphora) -> Result<&str> {
    amphora.compute_id.as_deref().ok_or_else(|| {
        invalid(
            "plug amphora into network",
            format!("amphora {} has no compute id", amphora.id),
        )
    })
}

fn subnet_of(net: &TenantNetwork) -> Subnet {
    Subnet {
        id: net.subnet_id.clone(),
        network_id: net.id.clone(),
        cidr: net.cidr.clone(),
        gateway_ip: net.gateway.clone(),
    }
}

/// What a port is bound to: every port of this driver is (a VIP, an amphora's interface,
/// or an operator's reservation for a server), so none can be handed over as a VIP port.
fn device_of(port: &PortRecord) -> String {
    match (&port.kind, &port.compute_id) {
        (PortKind::Vip { load_balancer_id }, _) => format!("loadbalancer-{load_balancer_id}"),
        (_, Some(compute_id)) => compute_id.clone(),
        (PortKind::Reserved { description }, None) => format!("reserved ({description})"),
        (PortKind::Vrrp | PortKind::Member, None) => "amphora".to_string(),
    }
}

#[async_trait]
impl NetworkLookup for NetnsNetwork {
    async fn find_subnet(&self, subnet_id: &str) -> Result<Option<Subnet>> {
        let state = self.state().await?;
        Ok(state
            .networks
            .values()
            .find(|n| n.subnet_id == subnet_id)
            .map(subnet_of))
    }

    async fn find_network(&self, network_id: &str) -> Result<Option<Network>> {
        let state = self.state().await?;
        Ok(state.networks.get(network_id).map(|n| Network {
            id: n.id.clone(),
            subnet_ids: vec![n.subnet_id.clone()],
        }))
    }

    async fn find_port(&self, port_id: &str) -> Result<Option<Port>> {
        let state = self.state().await?;
        Ok(state.ports.get(port_id).map(|p| Port {
            id: p.id.clone(),
            network_id: p.network_id.clone(),
            fixed_ips: vec![FixedIp {
                subnet_id: p.subnet_id.clone(),
                ip_address: p.ip_address.clone(),
            }],
            device_id: Some(device_of(p)),
        }))
    }
}

#[async_trait]
impl NetworkDriver for NetnsNetwork {
    async fn allocate_vip(&self, request: &VipRequest) -> Result<Vip> {
        let inner = self.inner.clone();
        let request = request.clone();
        blocking(move || inner.allocate_vip(&request)).await
    }

    async fn deallocate_vip(&self, load_balancer_id: LoadBalancerId, vip: &Vip) -> Result<()> {
        let inner = self.inner.clone();
        let vip = vip.clone();
        blocking(move || inner.deallocate_vip(load_balancer_id, &vip)).await
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> Result<VipPlug> {
        let inner = self.inner.clone();
        let amphora = amphora.clone();
        let vip = vip.clone();
        blocking(move || {
            let compute_id = amphora_compute_id(&amphora)?.to_string();
            let _g = inner.guard()?;
            let net = Inner::vip_network(&inner.load()?, &vip)?;
            let port = inner.plug(&compute_id, &net, PortKind::Vrrp)?;
            Ok(VipPlug {
                vrrp_ip: port.ip_address,
                vrrp_port_id: port.id,
                ha_ip: vip.ip_address.clone().unwrap_or_default(),
                ha_port_id: vip.port_id.clone().unwrap_or_default(),
            })
        })
        .await
    }

    async fn unplug_vip(&self, amphora: &Amphora, _vip: &Vip) -> Result<()> {
        // The amphora's one port on the VIP network, found by its kind: the VIP may be
        // incomplete (an allocation that failed) or its network gone.
        let Some(compute_id) = amphora.compute_id.clone() else {
            return Ok(());
        };
        let inner = self.inner.clone();
        blocking(move || inner.unplug(&compute_id, None, &PortKind::Vrrp)).await
    }

    async fn plug_network(&self, compute_id: &str, network_id: &str) -> Result<Interface> {
        let inner = self.inner.clone();
        let compute_id = compute_id.to_string();
        let network_id = network_id.to_string();
        blocking(move || {
            let _g = inner.guard()?;
            let net = find(&inner.load()?, &network_id)
                .cloned()
                .ok_or_else(|| invalid("plug network", format!("no network {network_id:?}")))?;
            let port = inner.plug(&compute_id, &net, PortKind::Member)?;
            Ok(interface_of(&port))
        })
        .await
    }

    async fn unplug_network(&self, compute_id: &str, network_id: &str) -> Result<()> {
        let inner = self.inner.clone();
        let compute_id = compute_id.to_string();
        let network_id = network_id.to_string();
        blocking(move || inner.unplug(&compute_id, Some(&network_id), &PortKind::Member)).await
    }

    async fn plugged_networks(&self, compute_id: &str) -> Result<Vec<Interface>> {
        let inner = self.inner.clone();
        let compute_id = compute_id.to_string();
        blocking(move || {
            let _g = inner.guard()?;
            Ok(inner
                .load()?
                .ports
                .values()
                .filter(|p| p.compute_id.as_deref() == Some(compute_id.as_str()))
                .map(interface_of)
                .collect())
        })
        .await
    }

    async fn network_config(&self, amphora: &Amphora, vip: &Vip) -> Result<AmphoraNetworkConfig> {
        let inner = self.inner.clone();
        let amphora = amphora.clone();
        let vip = vip.clone();
        blocking(move || {
            let _g = inner.guard()?;
            let (net, port) = inner.vrrp_port(&amphora, &vip)?;
            let port = port.ok_or_else(|| {
                invalid(
                    "describe VIP interface",
                    format!(
                        "amphora {} is not plugged into network {}",
                        amphora.id, net.name
                    ),
                )
            })?;
            Ok(AmphoraNetworkConfig {
                subnet_cidr: net.cidr.clone(),
                gateway: net.gateway.clone(),
                mac_address: port.mac_address,
                mtu: None,
                vrrp_ip: Some(port.ip_address),
                host_routes: Vec::new(),
            })
        })
        .await
    }
}

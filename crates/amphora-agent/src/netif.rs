//! Interfaces of the amphora's network namespace: address lookup and plugging VIP and member
//! ports (found by MAC address) with `ip` commands.

use std::net::IpAddr;

use amphora_proto::agent::{HostRoute, PlugNetwork, PlugTopology, PlugVip};
use serde::Deserialize;
use tokio::process::Command;

use crate::error::{AgentError, Result};

/// Policy routing table that holds the VIP subnet's routes (traffic sourced from a VIP).
const VIP_TABLE: &str = "1";

/// One interface as `ip -j addr show` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    /// Interface name.
    pub ifname: String,
    /// MAC address.
    #[serde(default)]
    pub address: Option<String>,
    /// Addresses.
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

/// One address of an interface.
#[derive(Debug, Clone, Deserialize)]
pub struct AddrInfo {
    /// The address.
    pub local: Option<IpAddr>,
    /// `global`, `link`, `host`.
    #[serde(default)]
    pub scope: Option<String>,
}

async fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| AgentError::Command {
            command: format!("ip {}", args.join(" ")),
            details: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(AgentError::Command {
            command: format!("ip {}", args.join(" ")),
            details: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every interface of the namespace with its addresses.
pub async fn links() -> Result<Vec<Link>> {
    let text = ip(&["-j", "addr", "show"]).await?;
    serde_json::from_str(&text).map_err(|e| AgentError::Command {
        command: "ip -j addr show".into(),
        details: format!("unreadable output: {e}"),
    })
}

/// The interface holding `addr`, if any.
pub async fn interface_of(addr: IpAddr) -> Result<Option<String>> {
    Ok(links()
        .await?
        .into_iter()
        .find(|l| l.addr_info.iter().any(|a| a.local == Some(addr)))
        .map(|l| l.ifname))
}

async fn link_by_mac(mac: &str) -> Result<Link> {
    let wanted = mac.trim().to_ascii_lowercase();
    links()
        .await?
        .into_iter()
        .find(|l| l.address.as_deref().map(str::to_ascii_lowercase) == Some(wanted.clone()))
        .ok_or_else(|| {
            AgentError::not_found(
                "Network interface not found",
                format!("No suitable network interface found (mac {mac})"),
            )
        })
}

fn refuse_if_plugged(link: &Link) -> Result<()> {
    let plugged = link
        .addr_info
        .iter()
        .any(|a| a.scope.as_deref() == Some("global"));
    if plugged {
        return Err(AgentError::Conflict {
            message: "Interface already exists".into(),
            details: format!("interface {} is already plugged", link.ifname),
        });
    }
    Ok(())
}

/// Prefix length of a CIDR whose family matches `addr`.
fn prefix_len(cidr: &str, addr: IpAddr) -> Result<u8> {
    let bad = || AgentError::bad_request("Invalid subnet", format!("invalid subnet_cidr {cidr:?}"));
    let (net, len) = cidr.split_once('/').ok_or_else(bad)?;
    let net: IpAddr = net.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    if net.is_ipv4() != addr.is_ipv4() {
        return Err(AgentError::bad_request(
            "Invalid subnet",
            format!("{addr} is not of the family of {cidr}"),
        ));
    }
    Ok(len)
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

async fn add_routes(dev: &str, routes: &[HostRoute], table: Option<&str>) -> Result<()> {
    for route in routes {
        let nexthop = route.nexthop.to_string();
        let mut args = vec![
            family(route.nexthop),
            "route",
            "replace",
            route.destination.as_str(),
            "via",
            nexthop.as_str(),
            "dev",
            dev,
        ];
        if let Some(table) = table {
            args.extend(["table", table]);
        }
        ip(&args).await?;
    }
    Ok(())
}

async fn set_mtu(dev: &str, mtu: Option<u32>) -> Result<()> {
    if let Some(mtu) = mtu {
        ip(&["link", "set", "dev", dev, "mtu", &mtu.to_string()]).await?;
    }
    Ok(())
}

/// Whether keepalived, not the agent, holds the VIP of `plug` (ACTIVE_STANDBY).
fn keepalived_holds_vip(plug: &PlugVip) -> bool {
    plug.topology == Some(PlugTopology::ActiveStandby)
}

/// An ACTIVE_STANDBY plug must name the amphora's own address: the VIP is keepalived's.
fn check_vrrp_ip(plug: &PlugVip) -> Result<()> {
    if keepalived_holds_vip(plug) && plug.vrrp_ip.is_none() {
        return Err(AgentError::bad_request(
            "Invalid VRRP Address",
            "an ACTIVE_STANDBY plug needs the amphora's vrrp_ip",
        ));
    }
    Ok(())
}

/// Let HAProxy bind the VIP while keepalived has not put it here (the standby amphora), as
/// Octavia's amphora image does with `net.ipv{4,6}.ip_nonlocal_bind` in its namespace. The
/// setting belongs to the network namespace the agent runs in.
async fn allow_nonlocal_bind(vip: IpAddr) -> Result<()> {
    let path = if vip.is_ipv4() {
        "/proc/sys/net/ipv4/ip_nonlocal_bind"
    } else {
        "/proc/sys/net/ipv6/ip_nonlocal_bind"
    };
    tokio::fs::write(path, "1")
        .await
        .map_err(|e| AgentError::Command {
            command: format!("write 1 to {path}"),
            details: e.to_string(),
        })
}

/// Addresses, routes and the source rule of a VIP (and its additional VIPs) on `dev`.
///
/// ACTIVE_STANDBY (as Octavia's agent does): only the amphora's own `vrrp_ip` and the subnet's
/// host routes in the main table; the VIP addresses, their table-1 routes and their source
/// rules are keepalived's (`virtual_ipaddress`, `virtual_routes`, `virtual_rules`), so only
/// the amphora that holds the VIP has them.
async fn configure_vip(dev: &str, vip: IpAddr, plug: &PlugVip) -> Result<()> {
    let len = prefix_len(&plug.subnet_cidr, vip)?;
    check_vrrp_ip(plug)?;
    if let Some(vrrp_ip) = plug.vrrp_ip {
        let len = prefix_len(&plug.subnet_cidr, vrrp_ip)?;
        ip(&["addr", "add", &format!("{vrrp_ip}/{len}"), "dev", dev]).await?;
    }
    if keepalived_holds_vip(plug) {
        allow_nonlocal_bind(vip).await?;
        ip(&["link", "set", "dev", dev, "up"]).await?;
        add_routes(dev, &plug.host_routes, None).await?;
        for extra in &plug.additional_vips {
            prefix_len(&extra.subnet_cidr, extra.ip_address)?;
            add_routes(dev, &extra.host_routes, None).await?;
        }
        return Ok(());
    }
    ip(&["addr", "add", &format!("{vip}/{len}"), "dev", dev]).await?;
    ip(&["link", "set", "dev", dev, "up"]).await?;
    let mut vips = vec![(
        vip,
        plug.subnet_cidr.clone(),
        plug.gateway,
        plug.host_routes.clone(),
    )];
    for extra in &plug.additional_vips {
        let len = prefix_len(&extra.subnet_cidr, extra.ip_address)?;
        ip(&[
            "addr",
            "add",
            &format!("{}/{len}", extra.ip_address),
            "dev",
            dev,
        ])
        .await?;
        vips.push((
            extra.ip_address,
            extra.subnet_cidr.clone(),
            extra.gateway,
            extra.host_routes.clone(),
        ));
    }
    // Replies from a VIP leave through the VIP subnet's gateway (table 1), whatever the main
    // table's default route (the management network) says.
    for (addr, cidr, gateway, routes) in vips {
        let fam = family(addr);
        ip(&[
            fam, "route", "replace", &cidr, "dev", dev, "scope", "link", "table", VIP_TABLE,
        ])
        .await?;
        if let Some(gw) = gateway {
            ip(&[
                fam,
                "route",
                "replace",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                dev,
                "onlink",
                "table",
                VIP_TABLE,
            ])
            .await?;
        }
        add_routes(dev, &routes, Some(VIP_TABLE)).await?;
        add_routes(dev, &routes, None).await?;
        let host = if addr.is_ipv4() { 32 } else { 128 };
        ip(&[
            fam,
            "rule",
            "add",
            "from",
            &format!("{addr}/{host}"),
            "table",
            VIP_TABLE,
            "priority",
            "100",
        ])
        .await?;
    }
    Ok(())
}

/// `POST /plug/vip/{vip}`: configures the interface with `plug.mac_address`; returns its name.
pub async fn plug_vip(vip: IpAddr, plug: &PlugVip) -> Result<String> {
    prefix_len(&plug.subnet_cidr, vip)?;
    check_vrrp_ip(plug)?;
    let link = link_by_mac(&plug.mac_address).await?;
    refuse_if_plugged(&link)?;
    set_mtu(&link.ifname, plug.mtu).await?;
    configure_vip(&link.ifname, vip, plug).await?;
    // keepalived announces the VIP itself when it takes it (ACTIVE_STANDBY).
    if !keepalived_holds_vip(plug) {
        announce(&link.ifname, vip);
    }
    tracing::info!(%vip, interface = %link.ifname, "vip plugged");
    Ok(link.ifname)
}

/// Tell the neighbours that `vip` now lives here (gratuitous ARP, `arping -U`), so that
/// after a failover they stop sending to the replaced amphora at once instead of when their
/// ARP entries expire. Best effort, in the background: without `arping` (Debian package
/// `iputils-arping`) traffic moves when the neighbours' caches time out.
fn announce(dev: &str, vip: IpAddr) {
    if !vip.is_ipv4() {
        return;
    }
    let spawned = tokio::process::Command::new("arping")
        .args(["-U", "-c", "2", "-I", dev, &vip.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match spawned {
        Ok(child) => {
            let dev = dev.to_string();
            tokio::spawn(async move {
                match child.wait_with_output().await {
                    Ok(out) if out.status.success() => {
                        tracing::debug!(%vip, interface = %dev, "gratuitous ARP sent")
                    }
                    Ok(out) => tracing::warn!(
                        %vip,
                        interface = %dev,
                        stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                        "arping failed; neighbours learn the VIP's new place when their ARP entries expire"
                    ),
                    Err(error) => tracing::warn!(%vip, %error, "arping failed"),
                }
            });
        }
        Err(error) => tracing::warn!(
            %vip,
            %error,
            "cannot run arping (install iputils-arping); neighbours learn the VIP's new place \
             when their ARP entries expire"
        ),
    }
}

/// `POST /plug/network`: configures a member network port; returns the interface name.
pub async fn plug_network(plug: &PlugNetwork) -> Result<String> {
    for fixed in &plug.fixed_ips {
        prefix_len(&fixed.subnet_cidr, fixed.ip_address)?;
    }
    let link = link_by_mac(&plug.mac_address).await?;
    refuse_if_plugged(&link)?;
    let dev = link.ifname.as_str();
    set_mtu(dev, plug.mtu).await?;
    for fixed in &plug.fixed_ips {
        let len = prefix_len(&fixed.subnet_cidr, fixed.ip_address)?;
        ip(&[
            "addr",
            "add",
            &format!("{}/{len}", fixed.ip_address),
            "dev",
            dev,
        ])
        .await?;
    }
    ip(&["link", "set", "dev", dev, "up"]).await?;
    for fixed in &plug.fixed_ips {
        add_routes(dev, &fixed.host_routes, None).await?;
    }
    if let Some(info) = &plug.vip_net_info {
        configure_vip(dev, info.vip, &info.plug).await?;
    }
    tracing::info!(interface = %dev, "network plugged");
    Ok(link.ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths() {
        let v4: IpAddr = "10.0.0.5".parse().expect("ip");
        let v6: IpAddr = "2001:db8::5".parse().expect("ip");
        assert_eq!(prefix_len("10.0.0.0/24", v4).expect("ok"), 24);
        assert_eq!(prefix_len("2001:db8::/64", v6).expect("ok"), 64);
        assert!(prefix_len("10.0.0.0/33", v4).is_err());
        assert!(prefix_len("10.0.0.0", v4).is_err());
        assert!(prefix_len("2001:db8::/64", v4).is_err());
    }
}

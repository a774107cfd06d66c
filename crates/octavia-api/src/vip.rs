//! The VIP of a new load balancer, checked against the network service before anything is
//! written (reference §1.5), as Octavia's API does: a port, network or subnet that does not
//! exist, a port already bound to something, or an address the chosen subnet cannot hold is
//! a 400 at `POST`, never a load balancer that goes ERROR in its create job.
//!
//! On success the VIP is completed the way Octavia completes it: the network of a subnet,
//! the subnet (and address) of a port, the subnet of a network holding the requested address.

use std::net::IpAddr;

use octavia_drivers::{NetworkLookup, Subnet};
use octavia_model::Vip;

use crate::error::ApiError;

fn validation(detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Validation failure: {detail}"))
}

/// Octavia's `InvalidSubresource`: `<Resource> <id> not found.` with 400.
fn missing(resource: &str, id: &str) -> ApiError {
    ApiError::BadRequest(format!("{resource} {id} not found."))
}

fn unavailable(e: octavia_drivers::DriverError) -> ApiError {
    tracing::warn!(error = %e, "network service lookup failed");
    ApiError::Unavailable(format!(
        "The network service could not be reached to validate the VIP; retry later ({e})"
    ))
}

/// Whether `address` lies inside `cidr` (`a.b.c.d/n` or an IPv6 prefix).
pub fn cidr_contains(cidr: &str, address: IpAddr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.trim().parse::<IpAddr>(), len.trim().parse::<u32>()) else {
        return false;
    };
    match (net, address) {
        (IpAddr::V4(n), IpAddr::V4(a)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn parse_address(vip: &Vip) -> Result<Option<IpAddr>, ApiError> {
    vip.ip_address
        .as_deref()
        .map(|a| {
            a.trim().parse::<IpAddr>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "Invalid input for field/attribute vip_address. Value: '{a}'. \
                     Value should be IPv4 or IPv6 format"
                ))
            })
        })
        .transpose()
}

async fn subnet(lookup: &dyn NetworkLookup, id: &str) -> Result<Subnet, ApiError> {
    lookup
        .find_subnet(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| missing("Subnet", id))
}

/// Check `vip` (as a tenant asked for it) against the network service and complete it.
pub async fn resolve(lookup: &dyn NetworkLookup, vip: &mut Vip) -> Result<(), ApiError> {
    let address = parse_address(vip)?;
    if let Some(port_id) = vip.port_id.clone() {
        let port = lookup
            .find_port(&port_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| missing("Port", &port_id))?;
        if let Some(device) = &port.device_id {
            return Err(validation(format!(
                "Port {port_id} is already used by device {device}"
            )));
        }
        vip.network_id = Some(port.network_id.clone());
        let fixed = if let Some(subnet_id) = &vip.subnet_id {
            subnet(lookup, subnet_id).await?;
            port.fixed_ips
                .iter()
                .find(|f| &f.subnet_id == subnet_id)
                .ok_or_else(|| {
                    validation(
                        "No VIP address found on the specified VIP port within the specified subnet.",
                    )
                })?
        } else if let Some(address) = address {
            port.fixed_ips
                .iter()
                .find(|f| f.ip_address.parse::<IpAddr>().ok() == Some(address))
                .ok_or_else(|| {
                    validation("Specified VIP address not found on the specified VIP port.")
                })?
        } else {
            match port.fixed_ips.as_slice() {
                [only] => only,
                _ => {
                    return Err(validation(
                        "VIP port's subnet could not be determined. Please specify either a VIP \
                         subnet or address.",
                    ))
                }
            }
        };
        vip.subnet_id = Some(fixed.subnet_id.clone());
        vip.ip_address = Some(fixed.ip_address.clone());
        return Ok(());
    }
    let chosen = if let Some(network_id) = vip.network_id.clone() {
        let network = lookup
            .find_network(&network_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| missing("Network", &network_id))?;
        match (&vip.subnet_id, address) {
            (Some(subnet_id), _) => {
                if !network.subnet_ids.contains(subnet_id) {
                    return Err(missing("Subnet", subnet_id));
                }
                subnet(lookup, subnet_id).await?
            }
            (None, Some(address)) => {
                let mut found = None;
                for id in &network.subnet_ids {
                    let s = subnet(lookup, id).await?;
                    if cidr_contains(&s.cidr, address) {
                        found = Some(s);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    validation(
                        "Supplied network does not contain a subnet for VIP address specified.",
                    )
                })?
            }
            (None, None) => {
                if network.subnet_ids.is_empty() {
                    return Err(validation("Supplied network does not contain a subnet."));
                }
                // The first IPv4 subnet, else the first subnet.
                let mut first = None;
                let mut v4 = None;
                for id in &network.subnet_ids {
                    let s = subnet(lookup, id).await?;
                    if !s.cidr.contains(':') {
                        v4 = Some(s);
                        break;
                    }
                    first.get_or_insert(s);
                }
                match v4.or(first) {
                    Some(s) => s,
                    None => return Err(validation("Supplied network does not contain a subnet.")),
                }
            }
        }
    } else if let Some(subnet_id) = vip.subnet_id.clone() {
        subnet(lookup, &subnet_id).await?
    } else {
        return Err(ApiError::BadRequest(
            "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, \
             vip_subnet_id."
                .to_string(),
        ));
    };
    if let Some(address) = address {
        if !cidr_contains(&chosen.cidr, address) {
            return Err(validation(format!(
                "VIP address {address} is not within subnet {} ({})",
                chosen.id, chosen.cidr
            )));
        }
    }
    vip.network_id = Some(chosen.network_id.clone());
    vip.subnet_id = Some(chosen.id);
    Ok(())
}

/// The VIP's network must be one of `valid_networks` when the list is not empty (an
/// availability zone's `valid_vip_networks`; compared without regard to case, as Octavia
/// does). A VIP whose network is not known (no network service to ask) cannot be shown to
/// be allowed and is refused.
pub fn check_network_allowed(vip: &Vip, valid_networks: &[String]) -> Result<(), ApiError> {
    if valid_networks.is_empty() {
        return Ok(());
    }
    let allowed = vip.network_id.as_deref().is_some_and(|n| {
        valid_networks
            .iter()
            .any(|v| v.to_lowercase() == n.to_lowercase())
    });
    if allowed {
        Ok(())
    } else {
        Err(validation(
            "Supplied VIP network_id is not allowed by the configuration of this deployment.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_restricts_the_vip_network() {
        let on = |n: Option<&str>| Vip {
            network_id: n.map(String::from),
            ..Vip::default()
        };
        let list = vec!["NET-A".to_string(), "net-b".to_string()];
        assert!(check_network_allowed(&on(Some("x")), &[]).is_ok());
        assert!(check_network_allowed(&on(None), &[]).is_ok());
        assert!(check_network_allowed(&on(Some("net-a")), &list).is_ok());
        assert!(check_network_allowed(&on(Some("NET-B")), &list).is_ok());
        for vip in [on(Some("net-c")), on(None)] {
            let e = check_network_allowed(&vip, &list).unwrap_err();
            assert_eq!(e.status().as_u16(), 400);
            assert!(e
                .to_string()
                .starts_with("Validation failure: Supplied VIP network_id"));
        }
    }

    #[test]
    fn cidr_membership() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (cidr, address, inside) in [
            ("10.0.0.0/24", "10.0.0.7", true),
            ("10.0.0.0/24", "10.0.1.7", false),
            ("10.0.0.0/0", "192.0.2.1", true),
            ("10.0.0.5/32", "10.0.0.5", true),
            ("2001:db8::/64", "2001:db8::1", true),
            ("2001:db8::/64", "2001:db9::1", false),
            ("10.0.0.0/24", "2001:db8::1", false),
            ("10.0.0.0/33", "10.0.0.1", false),
            ("garbage", "10.0.0.1", false),
        ] {
            assert_eq!(
                cidr_contains(cidr, ip(address)),
                inside,
                "{address} in {cidr}"
            );
        }
    }
}

//! The keepalived configuration of one amphora of an ACTIVE_STANDBY load balancer: one VRRP
//! instance that holds the VIP, tracks a check script and routes the VIP's traffic through
//! its own table (reference §11.2).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use amphora_proto::agent::{VRRP_CHECK_SCRIPT_FILE, VRRP_DIR};
use octavia_model::{AmphoraRole, LoadBalancerId, ObjectKind};

use crate::{RenderError, Subject};

/// keepalived's priority of the MASTER amphora (Octavia's `ROLE_MASTER_PRIORITY`).
pub const MASTER_PRIORITY: u8 = 100;
/// keepalived's priority of the BACKUP amphora (Octavia's `ROLE_BACKUP_PRIORITY`).
pub const BACKUP_PRIORITY: u8 = 90;
/// The routing table of the VIP's source routes and rules (Octavia's table 1).
const VIP_ROUTE_TABLE: u32 = 1;
/// Priority of the VIP's source rules.
const VIP_RULE_PRIORITY: u32 = 100;
/// VRRPv3 carries the advert interval in centiseconds in 12 bits: 0.01 s to 40.95 s.
const ADVERT_INT_MIN_CS: u128 = 1;
const ADVERT_INT_MAX_CS: u128 = 4095;

/// Operator settings of keepalived (Octavia's `[keepalived_vrrp]`); `Default` gives Octavia's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedSettings {
    /// The agent's base path (`[haproxy_amphora] base_path`); the check script is
    /// `<base_path>/vrrp/check_script.sh`.
    pub base_path: String,
    /// VRRP advertisement interval (`vrrp_advert_int`): whole centiseconds from 0.01 s to
    /// 40.95 s (VRRPv3). The BACKUP takes the VIP after about three intervals of silence.
    pub vrrp_advert_int: Duration,
    /// Seconds between two runs of the check script (`vrrp_check_interval`).
    pub vrrp_check_interval: u32,
    /// Failed checks before the instance goes to FAULT and gives up the VIP
    /// (`vrrp_fail_count`).
    pub vrrp_fail_count: u32,
    /// Successful checks before a FAULT instance is eligible again (`vrrp_success_count`).
    pub vrrp_success_count: u32,
    /// Seconds between gratuitous ARPs / unsolicited NAs while MASTER; 0 sends none after the
    /// takeover's (`vrrp_garp_refresh_interval`, keepalived's `garp_master_refresh`).
    pub vrrp_garp_refresh_interval: u32,
    /// Gratuitous ARPs per refresh (`vrrp_garp_refresh_count`,
    /// keepalived's `garp_master_refresh_repeat`).
    pub vrrp_garp_refresh_count: u32,
    /// Seconds after a takeover before the second burst of gratuitous ARPs; 0 sends no second
    /// burst (keepalived's `garp_master_delay`, whose default 5 Octavia keeps by not setting it).
    pub vrrp_garp_master_delay: u32,
}

impl Default for KeepalivedSettings {
    fn default() -> Self {
        Self {
            base_path: "/var/lib/octavia".to_string(),
            vrrp_advert_int: Duration::from_secs(1),
            vrrp_check_interval: 5,
            vrrp_fail_count: 2,
            vrrp_success_count: 2,
            vrrp_garp_refresh_interval: 5,
            vrrp_garp_refresh_count: 2,
            vrrp_garp_master_delay: 5,
        }
    }
}

/// A route of a VIP's subnet (Neutron's `host_routes` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpHostRoute {
    /// Destination CIDR (`10.1.0.0/16`).
    pub destination: String,
    /// Next hop.
    pub nexthop: IpAddr,
}

/// One VIP of the load balancer with what its source routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpVip {
    /// The VIP address.
    pub address: IpAddr,
    /// Its subnet's CIDR (`10.0.0.0/24`, the network address).
    pub subnet_cidr: String,
    /// Its subnet's gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Its subnet's host routes.
    pub host_routes: Vec<VrrpHostRoute>,
}

/// What the keepalived configuration of one amphora is made of; the controller fills it from
/// the load balancer, the amphora and its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedInput {
    /// The load balancer; the VRRP instance is named after it (Octavia's `vrrp_group_name`,
    /// the id without dashes).
    pub load_balancer_id: LoadBalancerId,
    /// This amphora's role, MASTER or BACKUP.
    pub role: AmphoraRole,
    /// The amphora's interface on the VIP network (`vrrp_interface`).
    pub interface: String,
    /// `virtual_router_id` (the amphora's `vrrp_id`, always 1 in Octavia).
    pub virtual_router_id: u8,
    /// This amphora's address on the VIP network (`vrrp_ip`): the source of its adverts.
    pub vrrp_ip: IpAddr,
    /// The other amphorae's `vrrp_ip`: the unicast peers.
    pub peer_vrrp_ips: Vec<IpAddr>,
    /// The VIP first, then any additional VIPs.
    pub vips: Vec<VrrpVip>,
}

/// The path of the check script that the configuration tracks, under `base_path`.
pub fn keepalived_check_script_path(base_path: &str) -> String {
    format!(
        "{}/{VRRP_DIR}/{VRRP_CHECK_SCRIPT_FILE}",
        base_path.trim_end_matches('/')
    )
}

/// The keepalived priority of a role: 100 for MASTER, 90 for BACKUP.
pub fn vrrp_priority(role: AmphoraRole) -> Option<u8> {
    match role {
        AmphoraRole::Master => Some(MASTER_PRIORITY),
        AmphoraRole::Backup => Some(BACKUP_PRIORITY),
        AmphoraRole::Standalone => None,
    }
}

/// Renders `octavia-keepalived.conf` for one amphora.
///
/// Differences from Octavia's template, on purpose:
///
/// * **VRRPv3** (`vrrp_version 3` in `global_defs`), so the advert interval may be below one
///   second. VRRPv3 has no authentication (RFC 5798 removed it; keepalived 2.2.7 warns
///   "VRRP version 3 does not support authentication" and `keepalived -t` fails), so there is
///   no `authentication` block: the VRRP group's `vrrp_auth_*` are not rendered.
/// * **`state BACKUP` for both roles**: the roles differ by priority only. keepalived clears
///   `nopreempt` on an instance that starts as MASTER ("nopreempt will not work with initial
///   state MASTER"), which Octavia fixed by leaving `state` out (BACKUP is the default); we
///   write the default down.
/// * `global_defs` runs the check script as root with `enable_script_security` (keepalived
///   refuses scripts without a `script_user` otherwise, and the script reads HAProxy's pid
///   files under the agent's base path).
/// * `garp_master_delay` comes from the settings.
/// * A subnet's host routes are written `<destination> via <nexthop> dev ...`: Octavia's
///   template writes `gateway <nexthop>`, which keepalived 2.2.7 does not know ("unknown route
///   keyword gateway") and skips.
pub fn render_keepalived(
    input: &KeepalivedInput,
    settings: &KeepalivedSettings,
) -> Result<String, RenderError> {
    render(input, settings, false)
}

/// The priority of an amphora taking the VIP over from a live holder: above both roles, below
/// 255 (which VRRP reserves for the address owner).
pub const TAKEOVER_PRIORITY: u8 = 250;

/// [`render_keepalived`] for a handover: the same configuration with [`TAKEOVER_PRIORITY`] and
/// without `nopreempt`, so this amphora's keepalived preempts the holder's lower-priority
/// adverts and takes the VIP while the holder still serves it (the two hold it for a moment,
/// nobody is without it). A failover renders it for the survivor before it stops the old
/// holder, then puts the ordinary configuration back.
pub fn render_keepalived_takeover(
    input: &KeepalivedInput,
    settings: &KeepalivedSettings,
) -> Result<String, RenderError> {
    render(input, settings, true)
}

fn render(
    input: &KeepalivedInput,
    settings: &KeepalivedSettings,
    takeover: bool,
) -> Result<String, RenderError> {
    let lb_subject = Subject::Object(ObjectKind::LoadBalancer, input.load_balancer_id.uuid());
    let priority = vrrp_priority(input.role).ok_or_else(|| {
        RenderError::inconsistent(
            lb_subject,
            "a STANDALONE amphora has no keepalived configuration (MASTER or BACKUP only)",
        )
    })?;
    let priority = if takeover {
        TAKEOVER_PRIORITY
    } else {
        priority
    };
    check_interface(&input.interface)
        .map_err(|r| RenderError::invalid(lb_subject, "vrrp_interface", r))?;
    if input.virtual_router_id == 0 {
        return Err(RenderError::invalid(
            lb_subject,
            "vrrp_id",
            "virtual_router_id must be between 1 and 255",
        ));
    }
    let advert_int = advert_int(settings.vrrp_advert_int)
        .map_err(|r| RenderError::invalid(Subject::Settings, "vrrp_advert_int", r))?;
    for (field, value) in [
        ("vrrp_check_interval", settings.vrrp_check_interval),
        ("vrrp_fail_count", settings.vrrp_fail_count),
        ("vrrp_success_count", settings.vrrp_success_count),
        ("vrrp_garp_refresh_count", settings.vrrp_garp_refresh_count),
    ] {
        if value == 0 {
            return Err(RenderError::invalid(
                Subject::Settings,
                field,
                "must be at least 1",
            ));
        }
    }
    let script = keepalived_check_script_path(&settings.base_path);
    check_path(&script).map_err(|r| RenderError::invalid(Subject::Settings, "base_path", r))?;
    let v6 = input.vrrp_ip.is_ipv6();
    let peers: Vec<IpAddr> = input
        .peer_vrrp_ips
        .iter()
        .copied()
        .filter(|p| *p != input.vrrp_ip)
        .collect();
    if let Some(p) = peers.iter().find(|p| p.is_ipv6() != v6) {
        return Err(RenderError::invalid(
            lb_subject,
            "vrrp_ip",
            format!(
                "peer {p} and this amphora's {} are not of the same IP family",
                input.vrrp_ip
            ),
        ));
    }
    if input.vips.is_empty() {
        return Err(RenderError::inconsistent(lb_subject, "no VIP to hold"));
    }
    if !input.vips.iter().any(|v| v.address.is_ipv6() == v6) {
        return Err(RenderError::inconsistent(
            lb_subject,
            format!(
                "no VIP of the IP family of vrrp_ip {} (keepalived needs one to advertise)",
                input.vrrp_ip
            ),
        ));
    }
    let mut subnets = Vec::with_capacity(input.vips.len());
    for vip in &input.vips {
        let (net, len) = parse_cidr(&vip.subnet_cidr)
            .map_err(|r| RenderError::invalid(lb_subject, "vip_subnet_cidr", r))?;
        if net.is_ipv6() != vip.address.is_ipv6() {
            return Err(RenderError::invalid(
                lb_subject,
                "vip_subnet_cidr",
                format!(
                    "subnet {} does not hold VIP {}",
                    vip.subnet_cidr, vip.address
                ),
            ));
        }
        if let Some(gw) = vip.gateway {
            if gw.is_ipv6() != vip.address.is_ipv6() {
                return Err(RenderError::invalid(
                    lb_subject,
                    "gateway_ip",
                    format!("gateway {gw} is not of the family of VIP {}", vip.address),
                ));
            }
        }
        for route in &vip.host_routes {
            parse_cidr(&route.destination)
                .map_err(|r| RenderError::invalid(lb_subject, "host_routes", r))?;
        }
        subnets.push(format!("{net}/{len}"));
    }

    let intf = &input.interface;
    let name = input.load_balancer_id.uuid().simple().to_string();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Configuration for Loadbalancer {}",
        input.load_balancer_id
    );
    let _ = writeln!(w, "global_defs {{");
    let _ = writeln!(w, "    vrrp_version 3");
    let _ = writeln!(w, "    script_user root");
    let _ = writeln!(w, "    enable_script_security");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "vrrp_script check_script {{");
    let _ = writeln!(w, "    script {script}");
    let _ = writeln!(w, "    interval {}", settings.vrrp_check_interval);
    let _ = writeln!(w, "    fall {}", settings.vrrp_fail_count);
    let _ = writeln!(w, "    rise {}", settings.vrrp_success_count);
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "vrrp_instance {name} {{");
    let _ = writeln!(w, "    # {}", input.role.as_str());
    let _ = writeln!(w, "    state BACKUP");
    let _ = writeln!(w, "    interface {intf}");
    let _ = writeln!(w, "    virtual_router_id {}", input.virtual_router_id);
    let _ = writeln!(w, "    priority {priority}");
    if !takeover {
        let _ = writeln!(w, "    nopreempt");
    }
    let _ = writeln!(w, "    accept");
    let _ = writeln!(
        w,
        "    garp_master_refresh {}",
        settings.vrrp_garp_refresh_interval
    );
    let _ = writeln!(
        w,
        "    garp_master_refresh_repeat {}",
        settings.vrrp_garp_refresh_count
    );
    let _ = writeln!(
        w,
        "    garp_master_delay {}",
        settings.vrrp_garp_master_delay
    );
    let _ = writeln!(w, "    advert_int {advert_int}");
    let _ = writeln!(w);
    let _ = writeln!(w, "    unicast_src_ip {}", input.vrrp_ip);
    let _ = writeln!(w, "    unicast_peer {{");
    for peer in &peers {
        let _ = writeln!(w, "        {peer}");
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w);
    let _ = writeln!(w, "    virtual_ipaddress {{");
    for vip in input.vips.iter().filter(|v| v.address.is_ipv6() == v6) {
        let _ = writeln!(w, "        {}", vip.address);
    }
    let _ = writeln!(w, "    }}");
    let excluded: Vec<&VrrpVip> = input
        .vips
        .iter()
        .filter(|v| v.address.is_ipv6() != v6)
        .collect();
    if !excluded.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "    virtual_ipaddress_excluded {{");
        for vip in excluded {
            let _ = writeln!(w, "        {}", vip.address);
        }
        let _ = writeln!(w, "    }}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "    virtual_routes {{");
    for (vip, subnet) in input.vips.iter().zip(&subnets) {
        let _ = writeln!(
            w,
            "        {subnet} dev {intf} src {} scope link table {VIP_ROUTE_TABLE}",
            vip.address
        );
        if let Some(gw) = vip.gateway {
            let _ = writeln!(
                w,
                "        default via {gw} dev {intf} onlink table {VIP_ROUTE_TABLE}"
            );
        }
        for route in &vip.host_routes {
            let _ = writeln!(
                w,
                "        {} via {} dev {intf} onlink table {VIP_ROUTE_TABLE}",
                route.destination, route.nexthop
            );
        }
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w);
    let _ = writeln!(w, "    virtual_rules {{");
    for vip in &input.vips {
        let len = if vip.address.is_ipv6() { 128 } else { 32 };
        let _ = writeln!(
            w,
            "        from {}/{len} table {VIP_ROUTE_TABLE} priority {VIP_RULE_PRIORITY}",
            vip.address
        );
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w);
    let _ = writeln!(w, "    track_script {{");
    let _ = writeln!(w, "        check_script");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    Ok(out)
}

/// `advert_int` in seconds as keepalived reads it: `1`, `0.1`, `0.25`.
fn advert_int(d: Duration) -> Result<String, String> {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(10_000_000) {
        return Err(format!(
            "{d:?} is not a whole number of centiseconds (VRRPv3 counts in 0.01 s)"
        ));
    }
    let cs = ms / 10;
    if !(ADVERT_INT_MIN_CS..=ADVERT_INT_MAX_CS).contains(&cs) {
        return Err(format!(
            "{d:?} is outside VRRPv3's range of 0.01 s to 40.95 s"
        ));
    }
    let (secs, frac) = (cs / 100, cs % 100);
    Ok(match frac {
        0 => secs.to_string(),
        f if f.is_multiple_of(10) => format!("{secs}.{}", f / 10),
        f => format!("{secs}.{f:02}"),
    })
}

/// An interface name keepalived and the kernel accept: 1 to 15 bytes, no whitespace, `/` or
/// control characters.
fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} is not 1 to 15 bytes long"));
    }
    if name.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || c == '/'
            || c == '{'
            || c == '}'
            || c == '#'
            || c == '!'
            || c == '"'
    }) {
        return Err(format!(
            "{name:?} holds a character an interface name cannot"
        ));
    }
    Ok(())
}

/// A script path keepalived reads as one word.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not an absolute path"));
    }
    if path.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || c == '"'
            || c == '#'
            || c == '!'
            || c == '{'
            || c == '}'
    }) {
        return Err(format!(
            "{path:?} holds whitespace or a character keepalived reads as syntax"
        ));
    }
    Ok(())
}

/// Parses `address/prefix` whose host bits are zero.
fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not a CIDR (address/prefix)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{cidr:?} does not start with an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{cidr:?} has no numeric prefix length"))?;
    let (bits, max): (u128, u8) = match addr {
        IpAddr::V4(a) => (u32::from(a).into(), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if len > max {
        return Err(format!("{cidr:?} has a prefix longer than {max}"));
    }
    let host_bits = u32::from(max - len);
    let host_mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if bits & host_mask != 0 {
        return Err(format!(
            "{cidr:?} has host bits set (not a network address)"
        ));
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> KeepalivedInput {
        KeepalivedInput {
            load_balancer_id: "6f8d2e3a-0000-4000-8000-000000000001".parse().expect("id"),
            role: AmphoraRole::Master,
            interface: "eth1".into(),
            virtual_router_id: 1,
            vrrp_ip: "10.0.0.5".parse().expect("ip"),
            peer_vrrp_ips: vec!["10.0.0.6".parse().expect("ip")],
            vips: vec![VrrpVip {
                address: "10.0.0.10".parse().expect("ip"),
                subnet_cidr: "10.0.0.0/24".into(),
                gateway: Some("10.0.0.1".parse().expect("ip")),
                host_routes: vec![],
            }],
        }
    }

    #[test]
    fn advert_interval_is_written_in_seconds() {
        for (ms, text) in [
            (1000, "1"),
            (100, "0.1"),
            (200, "0.2"),
            (250, "0.25"),
            (10, "0.01"),
            (1500, "1.5"),
            (40_950, "40.95"),
        ] {
            assert_eq!(
                advert_int(Duration::from_millis(ms)).as_deref(),
                Ok(text),
                "{ms}"
            );
        }
        for ms in [0, 5, 15, 40_960, 60_000] {
            assert!(advert_int(Duration::from_millis(ms)).is_err(), "{ms}");
        }
    }

    #[test]
    fn a_takeover_outranks_both_roles_and_preempts() {
        let s = KeepalivedSettings::default();
        let text = render_keepalived_takeover(&input(), &s).expect("render");
        assert!(text.contains("    priority 250\n"), "{text}");
        assert!(!text.contains("nopreempt"), "{text}");
        let normal = render_keepalived(&input(), &s).expect("render");
        assert_eq!(
            normal
                .replace("    nopreempt\n", "")
                .replace("    priority 100\n", "    priority 250\n"),
            text
        );
    }

    #[test]
    fn roles_differ_by_priority_only() {
        let master = render_keepalived(&input(), &KeepalivedSettings::default()).expect("render");
        let backup = render_keepalived(
            &KeepalivedInput {
                role: AmphoraRole::Backup,
                ..input()
            },
            &KeepalivedSettings::default(),
        )
        .expect("render");
        assert!(master.contains("    priority 100\n"));
        assert!(backup.contains("    priority 90\n"));
        for text in [&master, &backup] {
            assert!(text.contains("    state BACKUP\n"));
            assert!(text.contains("    nopreempt\n"));
            assert!(!text.contains("authentication"));
        }
        let err = render_keepalived(
            &KeepalivedInput {
                role: AmphoraRole::Standalone,
                ..input()
            },
            &KeepalivedSettings::default(),
        )
        .expect_err("standalone");
        assert!(err.to_string().contains("STANDALONE"), "{err}");
    }

    #[test]
    fn settings_reach_the_instance_and_the_script() {
        let settings = KeepalivedSettings {
            base_path: "/srv/amp/".into(),
            vrrp_advert_int: Duration::from_millis(200),
            vrrp_check_interval: 3,
            vrrp_fail_count: 4,
            vrrp_success_count: 6,
            vrrp_garp_refresh_interval: 7,
            vrrp_garp_refresh_count: 8,
            vrrp_garp_master_delay: 0,
        };
        let text = render_keepalived(&input(), &settings).expect("render");
        for line in [
            "    script /srv/amp/vrrp/check_script.sh\n",
            "    interval 3\n",
            "    fall 4\n",
            "    rise 6\n",
            "    garp_master_refresh 7\n",
            "    garp_master_refresh_repeat 8\n",
            "    garp_master_delay 0\n",
            "    advert_int 0.2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn peers_exclude_self_and_other_family_vips_are_excluded() {
        let mut i = input();
        i.peer_vrrp_ips.push(i.vrrp_ip);
        i.vips.push(VrrpVip {
            address: "fd00::10".parse().expect("ip"),
            subnet_cidr: "fd00::/64".into(),
            gateway: None,
            host_routes: vec![VrrpHostRoute {
                destination: "fd01::/64".into(),
                nexthop: "fd00::1".parse().expect("ip"),
            }],
        });
        let text = render_keepalived(&i, &KeepalivedSettings::default()).expect("render");
        assert!(
            text.contains("    unicast_peer {\n        10.0.0.6\n    }\n"),
            "{text}"
        );
        assert!(
            text.contains("    virtual_ipaddress {\n        10.0.0.10\n    }\n"),
            "{text}"
        );
        assert!(
            text.contains("    virtual_ipaddress_excluded {\n        fd00::10\n    }\n"),
            "{text}"
        );
        assert!(text.contains("        fd01::/64 via fd00::1 dev eth1 onlink table 1\n"));
        assert!(text.contains("        from fd00::10/128 table 1 priority 100\n"));
        assert!(text.contains("        from 10.0.0.10/32 table 1 priority 100\n"));
    }

    #[test]
    fn bad_input_is_refused_naming_what_is_wrong() {
        let s = KeepalivedSettings::default();
        let cases: Vec<(KeepalivedInput, KeepalivedSettings, &str)> = vec![
            (
                KeepalivedInput {
                    interface: "eth1 x".into(),
                    ..input()
                },
                s.clone(),
                "vrrp_interface",
            ),
            (
                KeepalivedInput {
                    interface: "a-very-long-interface".into(),
                    ..input()
                },
                s.clone(),
                "15 bytes",
            ),
            (
                KeepalivedInput {
                    virtual_router_id: 0,
                    ..input()
                },
                s.clone(),
                "virtual_router_id",
            ),
            (
                KeepalivedInput {
                    vips: vec![],
                    ..input()
                },
                s.clone(),
                "no VIP",
            ),
            (
                KeepalivedInput {
                    peer_vrrp_ips: vec!["fd00::6".parse().expect("ip")],
                    ..input()
                },
                s.clone(),
                "same IP family",
            ),
            (
                KeepalivedInput {
                    vips: vec![VrrpVip {
                        subnet_cidr: "10.0.0.1/24".into(),
                        ..input().vips[0].clone()
                    }],
                    ..input()
                },
                s.clone(),
                "host bits",
            ),
            (
                KeepalivedInput {
                    vips: vec![VrrpVip {
                        subnet_cidr: "fd00::/64".into(),
                        ..input().vips[0].clone()
                    }],
                    ..input()
                },
                s.clone(),
                "does not hold",
            ),
            (
                input(),
                KeepalivedSettings {
                    vrrp_advert_int: Duration::from_millis(5),
                    ..s.clone()
                },
                "vrrp_advert_int",
            ),
            (
                input(),
                KeepalivedSettings {
                    vrrp_fail_count: 0,
                    ..s.clone()
                },
                "vrrp_fail_count",
            ),
            (
                input(),
                KeepalivedSettings {
                    base_path: "/var/lib/oct avia".into(),
                    ..s.clone()
                },
                "base_path",
            ),
        ];
        for (i, settings, want) in cases {
            let err = render_keepalived(&i, &settings).expect_err(want);
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Ok(("10.0.0.0".parse().expect("ip"), 8))
        );
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        assert!(parse_cidr("::/0").is_ok());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("fd00::1/64").is_err());
    }
}

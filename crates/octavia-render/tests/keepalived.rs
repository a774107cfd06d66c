//! Golden-file tests of the keepalived renderer; every golden configuration also passes the
//! real `keepalived -t` (config test mode) inside a network namespace the test creates, where
//! the configuration's interface exists (keepalived 2.2.7 refuses a configuration that names
//! a missing interface, and any warning makes `-t` exit 5).
//!
//! `UPDATE_GOLDEN=1 cargo nextest run -p octavia-render` rewrites `tests/golden/*.conf`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use octavia_model::{AmphoraRole, LoadBalancerId};
use octavia_render::{
    keepalived_check_script_path, render_keepalived, KeepalivedInput, KeepalivedSettings,
    VrrpHostRoute, VrrpVip,
};
use octavia_test_support::require;

fn lb_id() -> LoadBalancerId {
    "00000001-0000-4000-8000-000000000001".parse().expect("id")
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("ip")
}

fn ipv4(role: AmphoraRole) -> KeepalivedInput {
    let (me, peer) = match role {
        AmphoraRole::Master => ("10.0.0.5", "10.0.0.6"),
        _ => ("10.0.0.6", "10.0.0.5"),
    };
    KeepalivedInput {
        load_balancer_id: lb_id(),
        role,
        interface: "eth1".into(),
        virtual_router_id: 1,
        vrrp_ip: ip(me),
        peer_vrrp_ips: vec![ip(peer)],
        vips: vec![VrrpVip {
            address: ip("10.0.0.10"),
            subnet_cidr: "10.0.0.0/24".into(),
            gateway: Some(ip("10.0.0.1")),
            host_routes: vec![VrrpHostRoute {
                destination: "10.2.0.0/16".into(),
                nexthop: ip("10.0.0.254"),
            }],
        }],
    }
}

fn ipv6() -> KeepalivedInput {
    KeepalivedInput {
        load_balancer_id: lb_id(),
        role: AmphoraRole::Master,
        interface: "eth1".into(),
        virtual_router_id: 1,
        vrrp_ip: ip("fd00:10::5"),
        peer_vrrp_ips: vec![ip("fd00:10::6")],
        vips: vec![VrrpVip {
            address: ip("fd00:10::10"),
            subnet_cidr: "fd00:10::/64".into(),
            gateway: Some(ip("fd00:10::1")),
            host_routes: vec![],
        }],
    }
}

/// The fast setting takeover figures are measured with: adverts every 0.1 s.
fn fast() -> KeepalivedSettings {
    KeepalivedSettings {
        vrrp_advert_int: Duration::from_millis(100),
        vrrp_check_interval: 1,
        ..KeepalivedSettings::default()
    }
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.conf"))
}

/// A network namespace with a veth pair whose one end is named as the configuration's
/// interface; deleted on drop, also when the test fails.
struct Netns(String);

impl Netns {
    fn new(interface: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "okrt-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        run(&[
            "ip", "-n", &ns.0, "link", "add", interface, "type", "veth", "peer", "name", "peer0",
        ]);
        for dev in ["lo", interface, "peer0"] {
            run(&["ip", "-n", &ns.0, "link", "set", dev, "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `keepalived -t` on `text` in a fresh namespace that has `interface`, with the check
/// script the configuration names replaced by an existing one (keepalived disables, and `-t`
/// fails on, a track script it cannot find). `None` when the machine cannot run it (skipped).
fn keepalived_test(what: &str, text: &str, interface: &str) -> Option<(bool, String)> {
    let bin = require::keepalived(&format!("the keepalived -t check of {what}"))?;
    if !require::netns(&format!("the keepalived -t check of {what}")) {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("check_script.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let text = text.replace(
        &keepalived_check_script_path(&KeepalivedSettings::default().base_path),
        &script.display().to_string(),
    );
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, &text).expect("config");
    let ns = Netns::new(interface);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&bin)
        .arg("-t")
        .arg("-l")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("run keepalived -t");
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), format!("{}: {report}", out.status)))
}

/// Compare with (or, under `UPDATE_GOLDEN=1`, rewrite) the golden file, then `keepalived -t`.
fn golden(name: &str, input: &KeepalivedInput, settings: &KeepalivedSettings) {
    let text = render_keepalived(input, settings).expect("render");
    assert_eq!(
        text,
        render_keepalived(input, settings).expect("render"),
        "same input, same bytes"
    );
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &text).expect("write golden file");
    } else {
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        assert_eq!(
            want,
            text,
            "{name} differs from {} (UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        );
    }
    if let Some((ok, report)) = keepalived_test(name, &text, &input.interface) {
        assert!(
            ok,
            "keepalived -t refused golden {name}:\n{report}\n--- config ---\n{text}"
        );
    }
}

#[test]
fn golden_master_ipv4() {
    golden(
        "keepalived_master_ipv4",
        &ipv4(AmphoraRole::Master),
        &KeepalivedSettings::default(),
    );
}

#[test]
fn golden_backup_ipv4() {
    golden(
        "keepalived_backup_ipv4",
        &ipv4(AmphoraRole::Backup),
        &KeepalivedSettings::default(),
    );
}

#[test]
fn golden_ipv6_vip() {
    golden("keepalived_ipv6", &ipv6(), &KeepalivedSettings::default());
}

#[test]
fn golden_fast_advert() {
    golden(
        "keepalived_fast_advert",
        &ipv4(AmphoraRole::Master),
        &fast(),
    );
}

/// The check above can fail: `keepalived -t` refuses a golden file with an unknown keyword, a
/// missing brace, a VRRPv2 fractional interval, VRRPv3 authentication, a MASTER start state
/// with `nopreempt`, or an interface the namespace does not have.
#[test]
fn keepalived_test_refuses_broken_configurations() {
    let good = render_keepalived(&ipv4(AmphoraRole::Master), &fast()).expect("render");
    let Some((ok, report)) = keepalived_test("the unchanged golden", &good, "eth1") else {
        return;
    };
    assert!(ok, "the unchanged configuration must pass: {report}");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown keyword",
            good.replace("    nopreempt\n", "    nopreempt\n    no_such_keyword 1\n"),
            "eth1",
        ),
        (
            "missing brace",
            good.trim_end().trim_end_matches('}').to_string(),
            "eth1",
        ),
        (
            "VRRPv2 with a fractional advert interval",
            good.replace("vrrp_version 3", "vrrp_version 2"),
            "eth1",
        ),
        (
            "authentication under VRRPv3",
            good.replace(
                "    advert_int 0.1\n",
                "    advert_int 0.1\n    authentication {\n        auth_type PASS\n        auth_pass abcdefg\n    }\n",
            ),
            "eth1",
        ),
        (
            "initial state MASTER with nopreempt",
            good.replace("    state BACKUP\n", "    state MASTER\n"),
            "eth1",
        ),
        ("interface missing", good.clone(), "eth2"),
    ];
    for (what, text, interface) in cases {
        assert!(
            text != good || interface != "eth1",
            "{what}: the case must change the configuration or the namespace"
        );
        let (ok, report) = keepalived_test(what, &text, interface).expect("ran above");
        assert!(
            !ok,
            "keepalived -t accepted a configuration with {what}:\n{report}\n{text}"
        );
    }
}

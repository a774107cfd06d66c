//! ACTIVE_STANDBY helpers of the data-plane tests and benchmarks: which amphora holds the
//! VIP, the amphorae and their hosts as the API and `octavia amphora list` show them.

use std::time::Duration;

use octavia_test_support::eventually;
use serde_json::Value;

use crate::lab::Lab;

/// Debian's keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// Whether namespace `ns` has `addr` on one of its interfaces (false when `ns` is gone).
pub fn holds(ns: &str, addr: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-j", "addr", "show"])
        .output()
        .expect("ip addr in an amphora namespace");
    if !out.status.success() {
        return false;
    }
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    links.as_array().into_iter().flatten().any(|link| {
        link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"] == addr)
    })
}

/// The live amphorae of `lb` as the admin API shows them.
pub async fn amphorae(lab: &Lab, lb: &str) -> Vec<Value> {
    let mut amps = lab.amphorae_of(lb).await;
    amps.retain(|a| a["status"] != "DELETED");
    amps
}

/// A flavor (and its profile) whose load balancers are ACTIVE_STANDBY; its id.
pub async fn standby_flavor(lab: &Lab) -> String {
    lab.create_flavor("ha", r#"{"loadbalancer_topology": "ACTIVE_STANDBY"}"#)
        .await
}

/// The role the API shows for the amphora in namespace `ns`.
pub async fn role_of(lab: &Lab, lb: &str, ns: &str) -> String {
    amphorae(lab, lb)
        .await
        .iter()
        .find(|a| compute_id(a) == ns)
        .and_then(|a| a["role"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The hosts `octavia amphora list` shows for `amps` (its last column).
pub fn hosts_of(lab: &Lab, amps: &[Value]) -> Vec<String> {
    let list = lab.octavia(&["amphora", "list"]);
    amps.iter()
        .filter_map(|a| {
            let id = a["id"].as_str()?;
            let line = list.lines().find(|l| l.contains(id))?;
            line.split_whitespace().last().map(str::to_string)
        })
        .collect()
}

/// The amphora id of the amphora in namespace `ns`.
pub fn non_holder_id(amps: &[Value], ns: &str) -> String {
    amps.iter()
        .find(|a| compute_id(a) == ns)
        .and_then(|a| a["id"].as_str())
        .unwrap_or("?")
        .to_string()
}

pub fn compute_id(amp: &Value) -> String {
    amp["compute_id"].as_str().unwrap_or("").to_string()
}

/// The namespaces among `amps` that hold `vip`.
pub fn holders(amps: &[Value], vip: &str) -> Vec<String> {
    amps.iter()
        .map(compute_id)
        .filter(|ns| holds(ns, vip))
        .collect()
}

/// Wait until exactly one of `amps` holds `vip`; its namespace.
pub async fn one_holder(amps: &[Value], vip: &str, what: &str) -> String {
    eventually(what, Duration::from_secs(20), || {
        let h = holders(amps, vip);
        async move { (h.len() == 1).then(|| h[0].clone()) }
    })
    .await
}

//! Host plumbing shared by the `netns` drivers: `ip` commands, processes, JSON state files and
//! IPv4 CIDR arithmetic.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DriverError, FaultOwner, Result};

/// Where `ip netns add` mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Run `ip` with `args`; its stdout on success, a retryable error carrying stderr otherwise.
pub(crate) fn ip(owner: FaultOwner, context: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        DriverError::permanent(owner, context, format!("cannot run `ip` (iproute2): {e}"))
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        tracing::warn!(args = ?args, stderr = %stderr.trim(), "ip command failed");
        Err(DriverError::retryable(
            owner,
            context,
            format!("`ip {}` failed: {}", args.join(" "), stderr.trim()),
        ))
    }
}

/// Whether the named network namespace exists.
pub(crate) fn netns_exists(name: &str) -> bool {
    valid_name(name) && Path::new(NETNS_DIR).join(name).exists()
}

/// Names of the named network namespaces starting with `prefix`, sorted.
pub(crate) fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Create the namespace (with `lo` up) unless it exists.
pub(crate) fn ensure_netns(owner: FaultOwner, name: &str) -> Result<()> {
    if !netns_exists(name) {
        ip(owner, "create network namespace", &["netns", "add", name])?;
    }
    ip(
        owner,
        "bring up loopback",
        &["-n", name, "link", "set", "lo", "up"],
    )?;
    Ok(())
}

/// Delete the namespace if it exists.
pub(crate) fn delete_netns(owner: FaultOwner, name: &str) -> Result<()> {
    if netns_exists(name) {
        ip(owner, "delete network namespace", &["netns", "del", name])?;
    }
    Ok(())
}

/// Whether interface `name` exists on the host (`netns = None`) or in a namespace.
pub(crate) fn link_exists(netns: Option<&str>, name: &str) -> bool {
    if !valid_name(name) {
        return false;
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        if !netns_exists(ns) {
            return false;
        }
        cmd.args(["-n", ns]);
    }
    cmd.args(["link", "show", "dev", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Interface names in a namespace.
pub(crate) fn links_in(owner: FaultOwner, netns: &str) -> Result<Vec<String>> {
    let out = ip(
        owner,
        "list interfaces",
        &["-n", netns, "-o", "link", "show"],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect())
}

/// Delete a host interface if it exists.
pub(crate) fn delete_link(owner: FaultOwner, name: &str) -> Result<()> {
    if link_exists(None, name) {
        ip(owner, "delete interface", &["link", "del", "dev", name])?;
    }
    Ok(())
}

/// Create the bridge unless it exists, bring it up and give it `address` (`a.b.c.d/len`).
pub(crate) fn ensure_bridge(owner: FaultOwner, name: &str, address: Option<&str>) -> Result<()> {
    if !link_exists(None, name) {
        ip(
            owner,
            "create bridge",
            &["link", "add", name, "type", "bridge"],
        )?;
    }
    // A bridge without a MAC of its own takes the lowest of its ports', so it changes when
    // an amphora's port leaves (a deleted or lost amphora): every neighbour's ARP entry for
    // the bridge's address goes stale and heartbeats and replies to it are lost for
    // seconds, from every amphora at once. A fixed address, derived from the name, stays.
    ip(
        owner,
        "fix the bridge's MAC address",
        &["link", "set", name, "address", &bridge_mac(name)],
    )?;
    ip(owner, "bring up bridge", &["link", "set", name, "up"])?;
    if let Some(address) = address {
        ip(
            owner,
            "address bridge",
            &["addr", "replace", address, "dev", name],
        )?;
    }
    Ok(())
}

/// A locally administered unicast MAC address for bridge `name` (FNV-1a of the name), the
/// same on every start.
pub(crate) fn bridge_mac(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[3], b[4], b[5], b[6], b[7]
    )
}

/// A veth pair: `host_if` on the host, enslaved to `bridge`; `ns_if` (with `mac`, if given)
/// inside `netns`. Both up. Nothing is recreated if `host_if` exists.
pub(crate) fn ensure_veth(
    owner: FaultOwner,
    host_if: &str,
    netns: &str,
    ns_if: &str,
    mac: Option<&str>,
    bridge: &str,
) -> Result<()> {
    if !link_exists(None, host_if) {
        let mut args = vec![
            "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
        ];
        if let Some(mac) = mac {
            args.extend(["address", mac]);
        }
        args.extend(["netns", netns]);
        ip(owner, "create veth pair", &args)?;
    }
    ip(
        owner,
        "attach veth to bridge",
        &["link", "set", host_if, "master", bridge, "up"],
    )?;
    ip(
        owner,
        "bring up interface",
        &["-n", netns, "link", "set", ns_if, "up"],
    )?;
    Ok(())
}

/// Pids of every process in the namespace (empty if it does not exist).
pub(crate) fn netns_pids(name: &str) -> Vec<u32> {
    if !netns_exists(name) {
        return Vec::new();
    }
    ip(
        FaultOwner::Compute,
        "list namespace pids",
        &["netns", "pids", name],
    )
    .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
    .unwrap_or_default()
}

/// Whether `pid` is a live (not zombie) process.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => state != "Z" && state != "X",
        None => false,
    }
}

/// SIGKILL every pid and wait (up to `timeout`) until none is alive.
pub(crate) fn kill_all(pids: &[u32], timeout: Duration) -> bool {
    for pid in pids {
        if pid_alive(*pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|p| !pid_alive(*p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Interface and namespace names we create: letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Read a JSON state file; its default when it does not exist.
pub(crate) fn load_json<T: DeserializeOwned + Default>(
    owner: FaultOwner,
    path: &Path,
) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            DriverError::permanent(
                owner,
                "read driver state",
                format!("{} is not valid: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io_error(owner, "read driver state", path, e)),
    }
}

/// Replace a JSON state file atomically (write a temporary file, then rename).
pub(crate) fn save_json<T: Serialize>(owner: FaultOwner, path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| {
        DriverError::permanent(owner, "write driver state", format!("cannot encode: {e}"))
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io_error(owner, "write driver state", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(owner, "write driver state", path, e))
}

/// An exclusive `flock` on a file, held until dropped (closing the file releases it, also
/// when the process dies). Every process whose driver shares a state directory — the
/// control-plane nodes of one host and the operator's CLI — takes the same lock file, so
/// read-modify-write of the driver's records is serialised across processes as the
/// in-process mutex serialises it across threads.
#[derive(Debug)]
struct FileLock(#[allow(dead_code)] std::fs::File);

/// A driver's state lock: an in-process mutex (threads queue on it) and, while it is held,
/// the [`FileLock`] on `path` (processes queue on that).
#[derive(Debug)]
pub(crate) struct StateLock {
    mutex: std::sync::Mutex<()>,
    path: std::path::PathBuf,
}

/// Both halves of a [`StateLock`], released on drop.
pub(crate) struct StateGuard<'a> {
    _file: FileLock,
    _mutex: std::sync::MutexGuard<'a, ()>,
}

impl StateLock {
    /// A lock whose cross-process half is the file `path` (created on first use).
    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        Self {
            mutex: std::sync::Mutex::new(()),
            path,
        }
    }

    /// Wait for the mutex, then for the file lock.
    pub(crate) fn lock(&self, owner: FaultOwner) -> Result<StateGuard<'_>> {
        let mutex = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        Ok(StateGuard {
            _file: lock_file(owner, &self.path)?,
            _mutex: mutex,
        })
    }
}

/// Take the exclusive lock on `path` (created if missing), waiting for other holders.
fn lock_file(owner: FaultOwner, path: &Path) -> Result<FileLock> {
    const CTX: &str = "lock driver state";
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(owner, CTX, path, e))?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(FileLock(file)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_error(owner, CTX, path, e.into())),
        }
    }
}

/// An I/O failure on `path`.
pub(crate) fn io_error(
    owner: FaultOwner,
    context: &str,
    path: &Path,
    e: std::io::Error,
) -> DriverError {
    DriverError::retryable(owner, context, format!("{}: {e}", path.display()))
}

/// A locally administered unicast MAC derived from the first five bytes of `bytes`.
pub(crate) fn mac_from(bytes: &[u8]) -> String {
    let mut b = [0u8; 5];
    for (dst, src) in b.iter_mut().zip(bytes) {
        *dst = *src;
    }
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// An IPv4 network in CIDR notation (`10.0.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Whether `addr` lies in the network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// Whether `addr` is a usable host address (not the network or broadcast address).
    pub fn is_host(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr) && self.hosts().any(|h| h == addr)
    }

    /// Usable host addresses in order (all but the network and broadcast addresses; both
    /// addresses of a /31, the single one of a /32).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.network);
        let size: u64 = 1u64 << (32 - u32::from(self.prefix));
        let (first, last) = if size <= 2 {
            (0u64, size - 1)
        } else {
            (1u64, size - 2)
        };
        (first..=last).map(move |i| Ipv4Addr::from(base.wrapping_add(i as u32)))
    }

    /// `addr/prefix` for `ip addr`.
    pub fn with_host(&self, addr: Ipv4Addr) -> String {
        format!("{addr}/{}", self.prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    /// Parses `a.b.c.d/len`; host bits must be zero.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (a.b.c.d/len)"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            format!("{s:?}: {addr:?} is not an IPv4 address (only IPv4 is supported)")
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0 to 32"))?;
        let cidr = Ipv4Cidr {
            network: addr,
            prefix,
        };
        if u32::from(addr) & !cidr.mask() != 0 {
            return Err(format!("{s:?} has host bits set"));
        }
        Ok(cidr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_macs_are_stable_local_unicast_and_differ_by_name() {
        let a = bridge_mac("octmgmt0");
        assert_eq!(a, bridge_mac("octmgmt0"));
        assert_ne!(a, bridge_mac("octdemo0"));
        assert!(a.starts_with("02:"), "{a}");
        assert_eq!(a.split(':').count(), 6);
    }

    #[test]
    fn cidr_parsing_and_hosts() {
        let c: Ipv4Cidr = "10.1.2.0/30".parse().unwrap();
        let hosts: Vec<_> = c.hosts().collect();
        assert_eq!(
            hosts,
            vec![Ipv4Addr::new(10, 1, 2, 1), Ipv4Addr::new(10, 1, 2, 2)]
        );
        assert!(c.contains(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!c.is_host(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 3, 1)));
        assert_eq!(c.with_host(Ipv4Addr::new(10, 1, 2, 1)), "10.1.2.1/30");
        assert!("10.1.2.1/24".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.2.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("fd00::/64".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.2.0".parse::<Ipv4Cidr>().is_err());
        assert_eq!(
            "10.9.0.0/16".parse::<Ipv4Cidr>().unwrap().hosts().count(),
            65534
        );
    }

    #[test]
    fn macs_are_local_unicast() {
        assert_eq!(mac_from(&[1, 2, 3, 4, 5, 6]), "02:01:02:03:04:05");
        assert_eq!(mac_from(&[]), "02:00:00:00:00:00");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("amp-1a2b"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
    }
}

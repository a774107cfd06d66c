//! The external check of PING health monitors.
//!
//! A PING monitor renders `option external-check` with `external-check command
//! <base_path>/ping-wrapper.sh` (reference §9). HAProxy runs that command for every check
//! with an almost empty environment: the member's address is in `HAPROXY_SERVER_ADDR`, and
//! exit status 0 means the member answered. The agent installs the script when it starts, so
//! an amphora needs nothing from its image but `ping` (Debian package `iputils-ping`).
//!
//! HAProxy runs checks as the user it drops to (`nobody`), with `no_new_privs` set, so ping's
//! file capability does not apply: `ping` has to work through an ICMP datagram socket, which
//! `net.ipv4.ping_group_range` must allow for HAProxy's group. [`allow_unprivileged_ping`]
//! opens it in the amphora's network namespace.

use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};
use crate::fsutil;

/// The script's file name under the agent's `base_path`.
pub const FILE_NAME: &str = "ping-wrapper.sh";

/// The script: one echo request, one second to answer; IPv6 addresses contain a colon.
pub const SCRIPT: &str = "#!/bin/sh\n\
# Installed by the octavia-rs amphora agent: HAProxy's external check for PING health\n\
# monitors. HAProxy passes the member address in HAPROXY_SERVER_ADDR; 0 = it answered.\n\
PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
case \"$HAPROXY_SERVER_ADDR\" in\n\
    '') echo 'HAPROXY_SERVER_ADDR is not set' >&2; exit 2 ;;\n\
    *:*) exec ping -6 -q -n -c 1 -w 1 -- \"$HAPROXY_SERVER_ADDR\" >/dev/null 2>&1 ;;\n\
    *) exec ping -4 -q -n -c 1 -w 1 -- \"$HAPROXY_SERVER_ADDR\" >/dev/null 2>&1 ;;\n\
esac\n";

/// Writes the script to `<base_path>/ping-wrapper.sh` (mode 0755) unless it is already there
/// as it should be; returns its path.
pub fn install(base_path: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = base_path.join(FILE_NAME);
    let current = std::fs::read(&path).ok();
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o7777)
        .ok();
    if current.as_deref() != Some(SCRIPT.as_bytes()) || mode != Some(0o755) {
        fsutil::write_file(&path, SCRIPT.as_bytes(), 0o755)?;
    }
    Ok(path)
}

/// The kernel setting that lets every group open ICMP datagram sockets, in the network
/// namespace of the calling process.
const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// Lets every group ping without privileges in this network namespace (the setting is per
/// namespace; a new one starts with nobody allowed). Inside an amphora this is what the health
/// checks of PING monitors need; the agent only calls it when configured to
/// (`[amphora_agent] allow_unprivileged_ping`), as it changes a kernel setting.
pub fn allow_unprivileged_ping() -> Result<()> {
    let path = Path::new(PING_GROUP_RANGE);
    std::fs::write(path, "0 2147483647\n")
        .map_err(|e| AgentError::io("allow unprivileged ping", path, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn install_writes_an_executable_script_and_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(FILE_NAME));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SCRIPT);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o755);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        install(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SCRIPT);
        assert_eq!(mode(&path), 0o755);
    }

    #[test]
    fn script_without_an_address_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        let out = Command::new(&path).env_clear().output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("HAPROXY_SERVER_ADDR"));
    }
}

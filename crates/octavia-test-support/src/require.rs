//! Tests that need a piece of the machine (root, iproute2, HAProxy, keepalived, python3, a
//! binary):
//! where a piece is missing the test is skipped with the reason printed, except under
//! `CI=true`, where the test fails: CI must never skip one silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian installs HAProxy.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// Whether this run is CI's (`CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|c| c == "true")
}

/// `true` when every `(what, present)` of `needs` is present. Otherwise the test `test` is
/// skipped with the missing pieces printed, or, under `CI=true`, fails with them.
pub fn require(test: &str, needs: &[(&str, bool)]) -> bool {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(_, present)| !present)
        .map(|(what, _)| *what)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test} needs {}", missing.join(", "));
    assert!(!under_ci(), "CI=true but {why}");
    eprintln!("skipped: {why}");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether `program args` runs and succeeds (e.g. `ip -V`).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a file exists at `path`.
pub fn exists(path: impl AsRef<Path>) -> bool {
    path.as_ref().exists()
}

/// The requirements of tests that build network namespaces: root and iproute2.
pub fn netns(test: &str) -> bool {
    require(
        test,
        &[("root", is_root()), ("iproute2 (ip)", runs("ip", &["-V"]))],
    )
}

/// The HAProxy binary (`HAPROXY_BIN`, else the first `haproxy` on `PATH` or in the sbin
/// directories), if any.
pub fn haproxy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HAPROXY_BIN") {
        return Some(PathBuf::from(p));
    }
    find_program("haproxy")
}

/// The first file named `name` on `PATH` or in the sbin directories, if any.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The HAProxy binary for `test`, or `None` when the test is skipped (see [`require`]).
pub fn haproxy(test: &str) -> Option<PathBuf> {
    let bin = haproxy_bin();
    require(test, &[("HAProxy (or HAPROXY_BIN)", bin.is_some())]).then_some(bin)?
}

/// The keepalived binary (the first `keepalived` on `PATH` or in the sbin directories), if any.
pub fn keepalived_bin() -> Option<PathBuf> {
    find_program("keepalived")
}

/// The keepalived binary for `test`, or `None` when the test is skipped (see [`require`]).
pub fn keepalived(test: &str) -> Option<PathBuf> {
    let bin = keepalived_bin();
    require(test, &[("keepalived", bin.is_some())]).then_some(bin)?
}

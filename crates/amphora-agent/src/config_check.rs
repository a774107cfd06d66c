//! A daemon's own check of a configuration file (`haproxy -c`, `keepalived -t`) before the
//! agent installs it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{AgentError, Result};

/// How long a configuration check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd FLAGS -f path`. `Ok(Ok(()))`: accepted; `Ok(Err(output))`: refused, with the
/// daemon's stdout and stderr, trimmed (or the exit status when it printed nothing); `Err`:
/// the check itself could not run or timed out.
pub async fn check(
    cmd: &Path,
    flags: &[&str],
    path: &Path,
) -> Result<std::result::Result<(), String>> {
    let command = format!(
        "{} {} -f {}",
        cmd.display(),
        flags.join(" "),
        path.display()
    );
    let run = Command::new(cmd)
        .args(flags)
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CHECK_TIMEOUT, run)
        .await
        .map_err(|_| AgentError::Command {
            command: command.clone(),
            details: "timed out".into(),
        })?
        .map_err(|e| AgentError::Command {
            command,
            details: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let mut details = String::from_utf8_lossy(&out.stdout).into_owned();
    details.push_str(&String::from_utf8_lossy(&out.stderr));
    let details = details.trim();
    Ok(Err(if details.is_empty() {
        format!("exited with {}", out.status)
    } else {
        details.to_owned()
    }))
}

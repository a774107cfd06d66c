//! The state of a CA rotation (`octavia certs rotate-ca`, `octavia certs rotate-client`):
//! its phases, the file `rotation.json` in the CA directory that lets an interrupted run
//! continue where it stopped, and the lock (`rotation.lock`) that keeps two runs apart.
//!
//! A server CA rotation: *introduce* (the new CA signs, the controller trusts old + new),
//! *renew* (every amphora serves a certificate from the new CA), *retire* (the controller
//! trusts only the new CA). A client CA rotation: *introduce* (new amphorae boot trusting
//! old + new), *push bundle* (every amphora trusts old + new), *switch controller* (the
//! controller's certificate is signed by the new CA), *retire* (new amphorae boot trusting
//! only the new CA), *push new* (every amphora trusts only the new CA).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::certs::CaRole;
use crate::{DriverError, FaultOwner, Result};

/// The state file, in the CA directory.
pub const STATE_FILE: &str = "rotation.json";
/// The lock file a running rotation holds, in the CA directory.
pub const LOCK_FILE: &str = "rotation.lock";

/// One phase of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Create the new CA and add it to the bundle; its key becomes the signing key.
    Introduce,
    /// Server CA: every live amphora gets a certificate from the new CA.
    Renew,
    /// Client CA: every live amphora gets the bundle old + new.
    PushBundle,
    /// Client CA: the controller gets a certificate from the new CA.
    SwitchController,
    /// The old CA leaves the bundle in the CA directory.
    Retire,
    /// Client CA: every live amphora gets the new CA alone.
    PushNew,
    /// Finished.
    Done,
}

impl Phase {
    /// The phases of a rotation of `role`, in order, `Done` last.
    pub fn all(role: CaRole) -> &'static [Phase] {
        match role {
            CaRole::Server => &[Phase::Introduce, Phase::Renew, Phase::Retire, Phase::Done],
            CaRole::Client => &[
                Phase::Introduce,
                Phase::PushBundle,
                Phase::SwitchController,
                Phase::Retire,
                Phase::PushNew,
                Phase::Done,
            ],
        }
    }

    /// The phase after this one in a rotation of `role` (`Done` stays `Done`; a phase the
    /// role does not have is followed by `Done`).
    pub fn next(self, role: CaRole) -> Phase {
        let phases = Self::all(role);
        phases
            .iter()
            .position(|p| *p == self)
            .and_then(|i| phases.get(i + 1))
            .copied()
            .unwrap_or(Phase::Done)
    }

    /// Its 1-based place among the phases of `role` (`Done` excluded), for progress lines.
    pub fn number(self, role: CaRole) -> (usize, usize) {
        let phases = Self::all(role);
        let n = phases.iter().position(|p| *p == self).map_or(0, |i| i + 1);
        (n.min(phases.len() - 1), phases.len() - 1)
    }

    /// Whether the phase goes through every live amphora.
    pub fn per_amphora(self) -> bool {
        matches!(self, Phase::Renew | Phase::PushBundle | Phase::PushNew)
    }

    /// What the phase does, for progress lines.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Introduce => "introduce the new CA",
            Phase::Renew => "amphorae serving a certificate of the new server CA",
            Phase::PushBundle => "amphorae trusting the old and the new client CA",
            Phase::SwitchController => "controller certificate from the new client CA",
            Phase::Retire => "retire the old CA",
            Phase::PushNew => "amphorae trusting only the new client CA",
            Phase::Done => "done",
        }
    }
}

/// A rotation in progress, as `rotation.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    /// Which CA is being replaced.
    pub role: CaRole,
    /// The phase to run (or running).
    pub phase: Phase,
    /// Amphorae (ids) the current phase has finished with.
    #[serde(default)]
    pub done: BTreeSet<String>,
    /// The last failure of the current phase per amphora (cleared when it succeeds).
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
    /// When the rotation started (RFC 3339).
    pub started_at: String,
}

impl RotationState {
    /// A rotation of `role` that has not started.
    pub fn new(role: CaRole, started_at: String) -> Self {
        Self {
            role,
            phase: Phase::Introduce,
            done: BTreeSet::new(),
            failures: BTreeMap::new(),
            started_at,
        }
    }

    /// Move to the next phase, forgetting the amphorae of this one.
    pub fn advance(&mut self) {
        self.phase = self.phase.next(self.role);
        self.done.clear();
        self.failures.clear();
    }

    /// Record that `amphora` is done in this phase.
    pub fn mark_done(&mut self, amphora: &str) {
        self.failures.remove(amphora);
        self.done.insert(amphora.to_string());
    }

    /// Of `live` amphora ids, those the current phase has still to do.
    pub fn remaining<'a>(&self, live: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        live.into_iter()
            .filter(|id| !self.done.contains(*id))
            .collect()
    }
}

fn err(context: &str, message: impl Into<String>) -> DriverError {
    DriverError::permanent(FaultOwner::Ours, context, message)
}

/// The rotation in progress in `dir`, if any.
pub fn load_state(dir: &Path) -> Result<Option<RotationState>> {
    const CTX: &str = "read rotation state";
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            err(
                CTX,
                format!(
                    "{} is not a rotation state ({e}); restore it, or remove it only if the \
                     CA files are consistent",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(CTX, format!("cannot read {}: {e}", path.display()))),
    }
}

/// Save `state` (write to a temporary file, then rename).
pub fn save_state(dir: &Path, state: &RotationState) -> Result<()> {
    const CTX: &str = "save rotation state";
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| err(CTX, e.to_string()))?;
    (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })()
    .map_err(|e| err(CTX, format!("cannot write {}: {e}", path.display())))
}

/// Forget the finished rotation.
pub fn clear_state(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(STATE_FILE)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("clear rotation state", e.to_string())),
    }
}

/// The exclusive lock of a running rotation; released when dropped or when the process
/// dies (it is a `flock`).
#[derive(Debug)]
pub struct RotationLock(#[allow(dead_code)] std::fs::File);

impl RotationLock {
    /// Take the lock of `dir`, or refuse at once, naming the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        const CTX: &str = "lock the certificate rotation";
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| err(CTX, format!("cannot open {}: {e}", path.display())))?;
        use rustix::fs::{flock, FlockOperation};
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(DriverError::retryable(
                FaultOwner::Ours,
                CTX,
                if e == rustix::io::Errno::WOULDBLOCK {
                    format!(
                        "another certificate rotation is running (pid {}); wait for it or \
                         watch it with --status",
                        holder.trim()
                    )
                } else {
                    format!("cannot lock {}: {e}", path.display())
                },
            ));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(Self(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_role_in_order() {
        let walk = |role| {
            let mut p = Phase::Introduce;
            let mut seen = vec![p];
            while p != Phase::Done {
                p = p.next(role);
                seen.push(p);
            }
            seen
        };
        assert_eq!(walk(CaRole::Server), Phase::all(CaRole::Server));
        assert_eq!(walk(CaRole::Client), Phase::all(CaRole::Client));
        // The client CA leaves the controller's bundle before the amphorae get it alone, so
        // an amphora built in between boots with the new CA alone; the controller switches
        // only after every amphora trusts both.
        let client = Phase::all(CaRole::Client);
        let at = |p| client.iter().position(|q| *q == p).unwrap();
        assert!(at(Phase::PushBundle) < at(Phase::SwitchController));
        assert!(at(Phase::SwitchController) < at(Phase::Retire));
        assert!(at(Phase::Retire) < at(Phase::PushNew));
        assert_eq!(Phase::PushBundle.next(CaRole::Server), Phase::Done);
        assert_eq!(Phase::Renew.number(CaRole::Server), (2, 3));
        assert_eq!(Phase::Done.number(CaRole::Client), (5, 5));
    }

    #[test]
    fn advance_forgets_the_amphorae_of_the_phase() {
        let mut s = RotationState::new(CaRole::Client, "t".into());
        s.advance();
        s.failures.insert("a".into(), "refused".into());
        s.mark_done("b");
        assert!(s.failures.contains_key("a"));
        assert_eq!(s.remaining(["a", "b", "c"]), vec!["a", "c"]);
        s.mark_done("a");
        assert!(s.failures.is_empty());
        assert!(s.remaining(["a", "b"]).is_empty());
        s.advance();
        assert_eq!(s.phase, Phase::SwitchController);
        assert!(s.done.is_empty() && s.failures.is_empty());
    }

    #[test]
    fn state_survives_a_save_and_a_second_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_state(dir.path()).unwrap(), None);
        let mut s = RotationState::new(CaRole::Server, "2026-12-07T00:00:00Z".into());
        s.advance();
        s.mark_done("x");
        save_state(dir.path(), &s).unwrap();
        assert_eq!(load_state(dir.path()).unwrap(), Some(s));
        std::fs::write(dir.path().join(STATE_FILE), b"{").unwrap();
        assert!(load_state(dir.path()).is_err());
        clear_state(dir.path()).unwrap();
        assert_eq!(load_state(dir.path()).unwrap(), None);

        let held = RotationLock::acquire(dir.path()).unwrap();
        let refused = RotationLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(held);
        RotationLock::acquire(dir.path()).unwrap();
    }
}

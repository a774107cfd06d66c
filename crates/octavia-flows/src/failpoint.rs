//! Failpoints: make a named step of a named flow fail or hang, for tests.
//!
//! A failpoint is keyed `flow/step` (`create_load_balancer/plug_vip`; `*` matches any
//! flow). It is set from the environment variable [`ENV_VAR`] as a `;`-separated list of
//! `flow/step=action` entries, or programmatically. Actions: `error` fails the step (the
//! flow reverts), `pause` blocks before the step until the job is abandoned (lease lost,
//! shutdown deadline) or the process dies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{FlowError, Result};

/// The environment variable holding the failpoints of a process.
pub const ENV_VAR: &str = "OCTAVIA_FAILPOINTS";

/// What happens when a step's failpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Fail the step without running it (not retryable).
    Error,
    /// Block before the step for as long as the job runs here.
    Pause,
}

/// A shared, mutable set of failpoints.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    points: Arc<Mutex<BTreeMap<String, FailAction>>>,
}

impl Failpoints {
    /// No failpoints.
    pub fn none() -> Self {
        Self::default()
    }

    /// Failpoints from [`ENV_VAR`] (none if unset or empty).
    pub fn from_env() -> Result<Self> {
        let fp = Self::none();
        fp.extend_from_env()?;
        Ok(fp)
    }

    /// Parse `flow/step=action;flow/step=action`.
    pub fn parse(spec: &str) -> Result<Self> {
        let fp = Self::none();
        fp.extend(spec)?;
        Ok(fp)
    }

    /// Arm the failpoints of [`ENV_VAR`] in addition to those already set.
    pub fn extend_from_env(&self) -> Result<()> {
        match std::env::var(ENV_VAR) {
            Ok(spec) => self.extend(&spec),
            Err(std::env::VarError::NotPresent) => Ok(()),
            Err(e) => Err(FlowError::FailpointSpec(format!("{ENV_VAR}: {e}"))),
        }
    }

    /// Arm the failpoints of a `flow/step=action;...` list in addition to those already set.
    pub fn extend(&self, spec: &str) -> Result<()> {
        let mut parsed = Vec::new();
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, action) = entry
                .split_once('=')
                .ok_or_else(|| FlowError::FailpointSpec(format!("'{entry}' has no '='")))?;
            let (flow, step) = key
                .trim()
                .split_once('/')
                .ok_or_else(|| FlowError::FailpointSpec(format!("'{key}' is not flow/step")))?;
            if flow.is_empty() || step.is_empty() {
                return Err(FlowError::FailpointSpec(format!(
                    "'{key}' is not flow/step"
                )));
            }
            let action = match action.trim() {
                "error" => FailAction::Error,
                "pause" => FailAction::Pause,
                other => {
                    return Err(FlowError::FailpointSpec(format!(
                        "unknown action '{other}' (expected error or pause)"
                    )))
                }
            };
            parsed.push((flow, step, action));
        }
        for (flow, step, action) in parsed {
            self.set(flow, step, action);
        }
        Ok(())
    }

    /// The armed failpoints as `flow/step=action` entries, for logs.
    pub fn describe(&self) -> String {
        self.lock()
            .iter()
            .map(|(k, a)| match a {
                FailAction::Error => format!("{k}=error"),
                FailAction::Pause => format!("{k}=pause"),
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, FailAction>> {
        self.points.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arm a failpoint (`flow` may be `*`).
    pub fn set(&self, flow: &str, step: &str, action: FailAction) {
        self.lock().insert(format!("{flow}/{step}"), action);
    }

    /// Disarm a failpoint.
    pub fn clear(&self, flow: &str, step: &str) {
        self.lock().remove(&format!("{flow}/{step}"));
    }

    /// Whether any failpoint is armed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The action armed for this step of this flow, if any.
    pub fn check(&self, flow: &str, step: &str) -> Option<FailAction> {
        let points = self.lock();
        points
            .get(&format!("{flow}/{step}"))
            .or_else(|| points.get(&format!("*/{step}")))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let fp = Failpoints::parse(
            "create_load_balancer/plug_vip=pause; delete_pool/update_amphorae=error;",
        )
        .unwrap();
        assert_eq!(
            fp.check("create_load_balancer", "plug_vip"),
            Some(FailAction::Pause)
        );
        assert_eq!(
            fp.check("delete_pool", "update_amphorae"),
            Some(FailAction::Error)
        );
        assert_eq!(fp.check("create_pool", "update_amphorae"), None);
        assert!(Failpoints::parse("").unwrap().is_empty());
        assert_eq!(
            fp.describe(),
            "create_load_balancer/plug_vip=pause;delete_pool/update_amphorae=error"
        );
    }

    #[test]
    fn wildcard_flow_matches_every_flow() {
        let fp = Failpoints::parse("*/update_amphorae=error").unwrap();
        assert_eq!(
            fp.check("create_member", "update_amphorae"),
            Some(FailAction::Error)
        );
        fp.clear("*", "update_amphorae");
        assert_eq!(fp.check("create_member", "update_amphorae"), None);
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "plug_vip=error",
            "a/b",
            "a/b=explode",
            "/b=error",
            "a/=pause",
        ] {
            assert!(
                matches!(Failpoints::parse(bad), Err(FlowError::FailpointSpec(_))),
                "{bad} should be rejected"
            );
        }
    }
}

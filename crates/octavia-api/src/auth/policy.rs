//! The policy engine: Octavia's default rules (`octavia/policies/` of the current release),
//! overridable rule by rule from an operator's YAML file (`[oslo_policy] policy_file`) that is
//! re-read when it changes. Decisions follow oslo.policy: an overridden rule is the
//! operator's check string; otherwise the default, or-ed with the deprecated rule it replaced
//! while `[oslo_policy] enforce_new_defaults` is false (so Octavia's `load-balancer_*` roles
//! keep working, as Octavia's policy documentation describes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::check::{Check, Credentials, ParseError, Rules, Target};

/// Prefix of every API rule.
pub const API: &str = "os_load-balancer_api";

/// How often, at most, the policy file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// The base rules: (name, check, deprecated check).
const BASE: &[(&str, &str, Option<&str>)] = &[
    (
        "load-balancer:read",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or \
         rule:load-balancer:member_and_owner or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-global",
        "rule:load-balancer:global_observer or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:write",
        "rule:load-balancer:member_and_owner or rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-quota",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or \
         rule:load-balancer:member_and_owner or rule:load-balancer:quota-admin or \
         rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:read-quota-global",
        "rule:load-balancer:global_observer or rule:load-balancer:quota-admin or \
         rule:load-balancer:admin",
        None,
    ),
    (
        "load-balancer:write-quota",
        "rule:load-balancer:quota-admin or rule:load-balancer:admin",
        None,
    ),
    // Keystone's default roles.
    (
        "project-member",
        "role:member and project_id:%(project_id)s",
        None,
    ),
    (
        "project-reader",
        "role:reader and project_id:%(project_id)s",
        None,
    ),
    (
        "context_is_admin",
        "role:admin",
        Some("role:admin or role:load-balancer_admin"),
    ),
    (
        "load-balancer:admin",
        "is_admin:True or role:admin",
        Some("is_admin:True or role:admin or role:load-balancer_admin"),
    ),
    ("service", "role:service", None),
    (
        "load-balancer:global_observer",
        "role:admin",
        Some("role:load-balancer_global_observer"),
    ),
    (
        "load-balancer:member_and_owner",
        "rule:project-member",
        Some("role:load-balancer_member and rule:load-balancer:owner"),
    ),
    (
        "load-balancer:observer_and_owner",
        "rule:project-reader",
        Some("role:load-balancer_observer and rule:load-balancer:owner"),
    ),
    (
        "load-balancer:quota-admin",
        "role:admin",
        Some("role:load-balancer_quota_admin"),
    ),
    // Octavia's advanced RBAC.
    ("load-balancer:owner", "project_id:%(project_id)s", None),
];

const READ: &str = "rule:load-balancer:read";
const READ_GLOBAL: &str = "rule:load-balancer:read-global";
const WRITE: &str = "rule:load-balancer:write";
const ADMIN: &str = "rule:load-balancer:admin";

/// The API rules: `os_load-balancer_api:<resource>:<action>` → check.
fn api_rules() -> Vec<(String, &'static str)> {
    let mut out = vec![];
    let mut add = |resource: &str, actions: &[(&str, &'static str)]| {
        for (action, check) in actions {
            out.push((format!("{API}:{resource}:{action}"), *check));
        }
    };
    let tenant = |stats: bool, status: bool, global: bool| {
        let mut a = vec![
            ("get_all", READ),
            ("get_one", READ),
            ("post", WRITE),
            ("put", WRITE),
            ("delete", WRITE),
        ];
        if global {
            a.push(("get_all-global", READ_GLOBAL));
        }
        if stats {
            a.push(("get_stats", READ));
        }
        if status {
            a.push(("get_status", READ));
        }
        a
    };
    let mut lb = tenant(true, true, true);
    lb.extend([
        ("put_failover", ADMIN),
        ("post:vip_sg_ids", WRITE),
        ("put:vip_sg_ids", WRITE),
    ]);
    add("loadbalancer", &lb);
    add("listener", &tenant(true, false, true));
    add("pool", &tenant(false, false, true));
    add("healthmonitor", &tenant(false, false, true));
    add("l7policy", &tenant(false, false, true));
    add("l7rule", &tenant(false, false, false));
    let mut member = tenant(false, false, false);
    member[0] = ("get_all", "rule:load-balancer:read or rule:service");
    add("member", &member);
    add(
        "quota",
        &[
            ("get_all", "rule:load-balancer:read-quota"),
            ("get_all-global", "rule:load-balancer:read-quota-global"),
            ("get_one", "rule:load-balancer:read-quota"),
            ("get_defaults", "rule:load-balancer:read-quota"),
            ("put", "rule:load-balancer:write-quota"),
            ("delete", "rule:load-balancer:write-quota"),
        ],
    );
    add(
        "amphora",
        &[
            ("get_all", ADMIN),
            ("get_one", ADMIN),
            ("delete", ADMIN),
            ("put_config", ADMIN),
            ("put_failover", ADMIN),
            ("get_stats", ADMIN),
        ],
    );
    add("provider", &[("get_all", READ)]);
    add("provider-flavor", &[("get_all", ADMIN)]);
    add("provider-availability-zone", &[("get_all", ADMIN)]);
    for (resource, read) in [
        ("flavor", READ),
        ("availability-zone", READ),
        ("flavor-profile", ADMIN),
        ("availability-zone-profile", ADMIN),
    ] {
        add(
            resource,
            &[
                ("get_all", read),
                ("get_one", read),
                ("post", ADMIN),
                ("put", ADMIN),
                ("delete", ADMIN),
            ],
        );
    }
    out
}

/// `os_load-balancer_api:<resource>:<action>`.
pub fn rule(resource: &str, action: &str) -> String {
    format!("{API}:{resource}:{action}")
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "policy file {path} is not a YAML (or JSON) map of rule name to check string: {source}"
    )]
    Format {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("policy file {path}, rule {rule:?}: {source}")]
    Check {
        path: PathBuf,
        rule: String,
        #[source]
        source: ParseError,
    },
}

/// `[oslo_policy]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicySettings {
    /// `policy_file`: YAML overrides; `None` = Octavia's defaults only.
    pub policy_file: Option<PathBuf>,
    /// `enforce_new_defaults`: false (or-ed deprecated rules) as Octavia documents.
    pub enforce_new_defaults: bool,
}

/// The rules in force: name → check.
#[derive(Debug, Default)]
struct RuleSet(HashMap<String, Check>);

impl Rules for RuleSet {
    fn evaluate_rule(&self, name: &str, target: &Target, creds: &Credentials, depth: u8) -> bool {
        self.0
            .get(name)
            .is_some_and(|c| c.evaluate(target, creds, self, depth))
    }
}

/// What the file held when it was last read.
struct FileState {
    checked: Instant,
    modified: Option<SystemTime>,
}

/// Decides `authorize(rule, target, credentials)`; cheap to share (`Arc`).
pub struct PolicyEngine {
    settings: PolicySettings,
    defaults: HashMap<String, Check>,
    rules: RwLock<Arc<RuleSet>>,
    file: Mutex<FileState>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Octavia's defaults and the operator's file; a file that exists but does not parse
    /// is refused (the process should not start on a policy it cannot read).
    pub fn new(settings: PolicySettings) -> Result<Arc<Self>, PolicyError> {
        let mut defaults = HashMap::new();
        for (name, check, deprecated) in BASE {
            let mut c = Check::parse(check).expect("default rules parse");
            if let (Some(old), false) = (deprecated, settings.enforce_new_defaults) {
                c = c.or(Check::parse(old).expect("deprecated rules parse"));
            }
            defaults.insert((*name).to_string(), c);
        }
        for (name, check) in api_rules() {
            defaults.insert(name, Check::parse(check).expect("API rules parse"));
        }
        let engine = PolicyEngine {
            defaults,
            rules: RwLock::new(Arc::new(RuleSet::default())),
            file: Mutex::new(FileState {
                checked: Instant::now(),
                modified: None,
            }),
            settings,
        };
        let (rules, modified) = engine.load()?;
        *engine.rules.write().expect("policy lock") = Arc::new(rules);
        engine.file.lock().expect("policy lock").modified = modified;
        Ok(Arc::new(engine))
    }

    /// Every rule name the engine knows by default (for documentation and tests).
    pub fn default_rule_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.defaults.keys().cloned().collect();
        v.sort();
        v
    }

    /// The defaults with the file's overrides on top, and the file's modification time.
    fn load(&self) -> Result<(RuleSet, Option<SystemTime>), PolicyError> {
        let mut rules = self.defaults.clone();
        let Some(path) = &self.settings.policy_file else {
            return Ok((RuleSet(rules), None));
        };
        let modified = match std::fs::metadata(path) {
            Ok(m) => m.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "policy file not found; using Octavia's default policy");
                return Ok((RuleSet(rules), None));
            }
            Err(source) => {
                return Err(PolicyError::Read {
                    path: path.clone(),
                    source,
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        let overrides = parse_file(path, &text)?;
        for (name, check) in overrides {
            if !self.defaults.contains_key(&name) {
                tracing::debug!(rule = %name, "policy file defines a rule Octavia does not");
            }
            rules.insert(name, check);
        }
        Ok((RuleSet(rules), modified))
    }

    /// Re-read the file if its modification time changed (looked at once a second at most).
    /// A file that no longer parses keeps the rules in force, with an ERROR in the log.
    fn refresh(&self) {
        if self.settings.policy_file.is_none() {
            return;
        }
        let Ok(mut state) = self.file.try_lock() else {
            return; // another request is looking
        };
        if state.checked.elapsed() < RECHECK {
            return;
        }
        state.checked = Instant::now();
        let path = self.settings.policy_file.as_deref().expect("checked above");
        let modified = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
        if modified == state.modified {
            return;
        }
        match self.load() {
            Ok((rules, modified)) => {
                *self.rules.write().expect("policy lock") = Arc::new(rules);
                state.modified = modified;
                tracing::info!(path = %path.display(), "policy file re-read");
            }
            Err(e) => {
                state.modified = modified;
                tracing::error!(error = %e, "policy file changed but cannot be used; the previous rules stay in force");
            }
        }
    }

    /// Whether `creds` pass `rule` for an object of `project` (`None`: no project).
    pub fn authorize(&self, rule: &str, project: Option<&str>, creds: &Credentials) -> bool {
        self.refresh();
        let mut target = Target::new();
        if let Some(p) = project {
            target.insert("project_id", p.to_string());
        }
        let rules = self.rules.read().expect("policy lock").clone();
        let allowed = rules.evaluate_rule(rule, &target, creds, 0);
        if !allowed {
            tracing::debug!(rule, project, roles = ?creds.roles, "policy denied");
        }
        allowed
    }
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, Check)>, PolicyError> {
    // An empty file, or one of comments only (as oslo's sample generator writes it), is a
    // YAML null: no overrides.
    let map: HashMap<String, String> = serde_yaml::from_str::<Option<_>>(text)
        .map_err(|source| PolicyError::Format {
            path: path.to_path_buf(),
            source,
        })?
        .unwrap_or_default();
    map.into_iter()
        .map(|(rule, check)| {
            Check::parse(&check)
                .map(|c| (rule.clone(), c))
                .map_err(|source| PolicyError::Check {
                    path: path.to_path_buf(),
                    rule,
                    source,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(project: &str, roles: &[&str]) -> Credentials {
        Credentials {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    fn engine(enforce_new_defaults: bool) -> Arc<PolicyEngine> {
        PolicyEngine::new(PolicySettings {
            policy_file: None,
            enforce_new_defaults,
        })
        .unwrap()
    }

    #[test]
    fn octavia_defaults() {
        let e = engine(false);
        let lb = |a: &str| rule("loadbalancer", a);
        let reader = creds("p", &["reader"]);
        let member = creds("p", &["member", "reader"]);
        let admin = creds("x", &["admin", "member", "reader"]);
        let nobody = creds("p", &[]);
        assert!(e.authorize(&lb("get_one"), Some("p"), &reader));
        assert!(!e.authorize(&lb("get_one"), Some("q"), &reader));
        assert!(!e.authorize(&lb("post"), Some("p"), &reader));
        assert!(e.authorize(&lb("post"), Some("p"), &member));
        assert!(!e.authorize(&lb("post"), Some("q"), &member));
        assert!(!e.authorize(&lb("get_all-global"), None, &member));
        assert!(e.authorize(&lb("get_all-global"), None, &admin));
        assert!(e.authorize(&lb("delete"), Some("p"), &admin));
        assert!(!e.authorize(&lb("put_failover"), Some("p"), &member));
        assert!(!e.authorize(&lb("get_one"), Some("p"), &nobody));
        assert!(!e.authorize(&rule("amphora", "get_all"), Some("p"), &member));
        assert!(!e.authorize(&rule("provider-flavor", "get_all"), Some("p"), &member));
        assert!(e.authorize(&rule("provider", "get_all"), Some("p"), &reader));
        assert!(e.authorize(&rule("flavor", "get_all"), Some("p"), &reader));
        assert!(!e.authorize(&rule("flavor", "post"), Some("p"), &member));
        assert!(!e.authorize(&rule("quota", "put"), Some("p"), &member));
        assert!(e.authorize(
            &rule("member", "get_all"),
            Some("q"),
            &creds("s", &["service"])
        ));
        let noauth_admin = Credentials {
            is_admin: true,
            ..Default::default()
        };
        assert!(e.authorize(&rule("amphora", "delete"), None, &noauth_admin));
    }

    #[test]
    fn deprecated_roles_work_until_new_defaults_are_enforced() {
        let old_member = creds("p", &["load-balancer_member"]);
        let old_global = creds("p", &["load-balancer_global_observer"]);
        let old_quota = creds("p", &["load-balancer_quota_admin"]);
        let old_admin = creds("p", &["load-balancer_admin"]);
        let lb_post = rule("loadbalancer", "post");
        let relaxed = engine(false);
        assert!(relaxed.authorize(&lb_post, Some("p"), &old_member));
        assert!(!relaxed.authorize(&lb_post, Some("q"), &old_member));
        assert!(relaxed.authorize(&rule("loadbalancer", "get_all-global"), None, &old_global));
        assert!(!relaxed.authorize(&lb_post, Some("p"), &old_global));
        assert!(relaxed.authorize(&rule("quota", "put"), Some("q"), &old_quota));
        assert!(relaxed.authorize(&rule("amphora", "get_all"), None, &old_admin));
        let strict = engine(true);
        assert!(!strict.authorize(&lb_post, Some("p"), &old_member));
        assert!(!strict.authorize(&rule("amphora", "get_all"), None, &old_admin));
        assert!(strict.authorize(&lb_post, Some("p"), &creds("p", &["member"])));
    }

    #[test]
    fn the_file_overrides_and_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "# readers may create\n\"os_load-balancer_api:loadbalancer:post\": \"rule:load-balancer:read\"\n",
        )
        .unwrap();
        let e = PolicyEngine::new(PolicySettings {
            policy_file: Some(path.clone()),
            enforce_new_defaults: false,
        })
        .unwrap();
        let reader = creds("p", &["reader"]);
        let lb_post = rule("loadbalancer", "post");
        assert!(e.authorize(&lb_post, Some("p"), &reader));
        // Change it: a different length and a later mtime; force the recheck.
        std::fs::write(&path, "\"os_load-balancer_api:loadbalancer:post\": \"!\"\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        e.file.lock().unwrap().checked = Instant::now() - RECHECK;
        assert!(!e.authorize(&lb_post, Some("p"), &creds("p", &["member"])));
        // A broken file keeps the rules in force.
        std::fs::write(
            &path,
            "\"os_load-balancer_api:loadbalancer:post\": \"role:\"\n",
        )
        .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later + Duration::from_secs(5))
            .unwrap();
        e.file.lock().unwrap().checked = Instant::now() - RECHECK;
        assert!(!e.authorize(&lb_post, Some("p"), &creds("p", &["member"])));
        assert!(e.authorize(&rule("loadbalancer", "get_one"), Some("p"), &reader));
    }

    #[test]
    fn a_file_of_comments_or_nothing_keeps_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        let member = creds("p", &["member"]);
        for text in [
            "",
            "\n",
            "# \"os_load-balancer_api:loadbalancer:post\": \"!\"\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let e = PolicyEngine::new(PolicySettings {
                policy_file: Some(path.clone()),
                enforce_new_defaults: false,
            })
            .unwrap_or_else(|err| panic!("{text:?}: {err}"));
            assert!(e.authorize(&rule("loadbalancer", "post"), Some("p"), &member));
        }
    }

    #[test]
    fn a_broken_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "a: [1, 2\n").unwrap();
        let settings = PolicySettings {
            policy_file: Some(path.clone()),
            enforce_new_defaults: false,
        };
        assert!(matches!(
            PolicyEngine::new(settings.clone()),
            Err(PolicyError::Format { .. })
        ));
        std::fs::write(&path, "\"x\": \"role:a and\"\n").unwrap();
        assert!(matches!(
            PolicyEngine::new(settings),
            Err(PolicyError::Check { .. })
        ));
    }
}

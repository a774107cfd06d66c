//! `tidy`: the crate rules of ARCHITECTURE.md, checked on every test run.
//!
//! Reads `cargo metadata --no-deps` (which crates declare which dependencies) and the sources
//! under each crate's `src/` (which paths they name), and fails with one line per breach:
//! `file:line: [rule] crate: what is wrong`, file and line being where to fix it. The rules,
//! deny lists and allow-lists live in this file, each entry with its reason; ARCHITECTURE.md
//! ("Checked by") says the same in prose. Changing a rule means changing both.
//!
//! 1. The pure crates have no async runtime, SQL, network/HTTP, filesystem or OS dependency,
//!    neither directly nor through a crate of ours, and their sources name no such API.
//! 2. Only `octavia-db` depends on SQL crates (any dependency kind).
//! 3. `amphora-agent` depends on no crate of ours but `amphora-proto`.
//! 4. The API, health and driver crates do not depend on `octavia-flows`, even indirectly.
//! 5. The environment is read only where [`ENV_READERS`] allows.

mod scan;
mod workspace;

use std::collections::{BTreeSet, VecDeque};

use scan::PathRef;
use workspace::{DepKind, Location, Package, Workspace};

/// Crates that do no I/O: same input, same output. ARCHITECTURE.md marks each one *Pure*.
const PURE_CRATES: &[&str] = &[
    "octavia-model",
    "octavia-api-types",
    "amphora-proto",
    "octavia-render",
];

/// The one crate allowed to contain SQL.
const STORE_CRATE: &str = "octavia-db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impurity {
    Async,
    Sql,
    Network,
    Filesystem,
    Os,
}

impl Impurity {
    fn describe(self) -> &'static str {
        match self {
            Impurity::Async => "async runtime",
            Impurity::Sql => "SQL",
            Impurity::Network => "network/HTTP",
            Impurity::Filesystem => "filesystem",
            Impurity::Os => "OS interface",
        }
    }
}

/// External crates a pure crate may not depend on (normal dependencies, its own or those of a
/// crate of ours it depends on). `name-*` is a family. What the external crates themselves
/// depend on is not followed: the list names the crates that bring in the capability.
const IMPURE_CRATES: &[(&str, Impurity)] = &[
    // Async runtimes and async plumbing: pure code is synchronous.
    ("tokio", Impurity::Async),
    ("tokio-*", Impurity::Async),
    ("async-*", Impurity::Async),
    ("futures", Impurity::Async),
    ("futures-*", Impurity::Async),
    ("smol", Impurity::Async),
    ("mio", Impurity::Async),
    ("glommio", Impurity::Async),
    // Databases: SQL lives in octavia-db only (rule 2 reuses these).
    ("sqlx", Impurity::Sql),
    ("sqlx-*", Impurity::Sql),
    ("rusqlite", Impurity::Sql),
    ("libsqlite3-sys", Impurity::Sql),
    ("postgres", Impurity::Sql),
    ("postgres-*", Impurity::Sql),
    ("tokio-postgres", Impurity::Sql),
    ("diesel", Impurity::Sql),
    ("diesel-*", Impurity::Sql),
    ("sea-orm", Impurity::Sql),
    ("mysql", Impurity::Sql),
    ("mysql_async", Impurity::Sql),
    ("r2d2", Impurity::Sql),
    ("deadpool-*", Impurity::Sql),
    // HTTP clients/servers, TLS, sockets.
    ("hyper", Impurity::Network),
    ("hyper-*", Impurity::Network),
    ("h2", Impurity::Network),
    ("h3", Impurity::Network),
    ("reqwest", Impurity::Network),
    ("ureq", Impurity::Network),
    ("isahc", Impurity::Network),
    ("curl", Impurity::Network),
    ("surf", Impurity::Network),
    ("axum", Impurity::Network),
    ("axum-*", Impurity::Network),
    ("tower", Impurity::Network),
    ("tower-*", Impurity::Network),
    ("actix-*", Impurity::Network),
    ("warp", Impurity::Network),
    ("tonic", Impurity::Network),
    ("quinn", Impurity::Network),
    ("socket2", Impurity::Network),
    ("rustls", Impurity::Network),
    ("native-tls", Impurity::Network),
    ("openssl", Impurity::Network),
    // Files and directories.
    ("tempfile", Impurity::Filesystem),
    ("walkdir", Impurity::Filesystem),
    ("notify", Impurity::Filesystem),
    ("glob", Impurity::Filesystem),
    ("ignore", Impurity::Filesystem),
    ("fs_extra", Impurity::Filesystem),
    ("fs-err", Impurity::Filesystem),
    ("memmap2", Impurity::Filesystem),
    ("dirs", Impurity::Filesystem),
    ("directories", Impurity::Filesystem),
    // System calls, processes, signals.
    ("libc", Impurity::Os),
    ("rustix", Impurity::Os),
    ("nix", Impurity::Os),
    ("signal-hook", Impurity::Os),
    ("signal-hook-*", Impurity::Os),
    ("sysinfo", Impurity::Os),
];

/// Standard library items pure sources may not name (`std::net::IpAddr` and the other address
/// types are data and stay allowed).
const IMPURE_STD: &[(&[&str], Impurity)] = &[
    (&["std", "fs"], Impurity::Filesystem),
    (&["std", "os", "unix", "fs"], Impurity::Filesystem),
    (&["std", "net", "TcpStream"], Impurity::Network),
    (&["std", "net", "TcpListener"], Impurity::Network),
    (&["std", "net", "UdpSocket"], Impurity::Network),
    (&["std", "net", "ToSocketAddrs"], Impurity::Network),
    (&["std", "os", "unix", "net"], Impurity::Network),
    (&["std", "process"], Impurity::Os),
    (&["std", "env"], Impurity::Os),
];

/// The impurity of an external crate name, if it is on the deny list.
fn impurity(name: &str) -> Option<Impurity> {
    IMPURE_CRATES.iter().find_map(|&(pattern, what)| {
        let hit = match pattern.strip_suffix('*') {
            Some(family) => name.starts_with(family),
            None => name == pattern,
        };
        hit.then_some(what)
    })
}

/// Crates that must never depend on `octavia-flows`, even through another crate of ours: they
/// never run a flow (ARCHITECTURE.md). Dev-dependencies are not checked.
const NO_FLOWS: &[&str] = &[
    "octavia-api",
    "octavia-health",
    "octavia-housekeeping",
    "octavia-drivers",
];
const FLOWS_CRATE: &str = "octavia-flows";

/// The agent runs inside amphorae: of our crates it may depend only on these.
const AGENT_CRATE: &str = "amphora-agent";
const AGENT_MAY_USE: &[&str] = &["amphora-proto"];

/// Where the environment may be read (`std::env::var`, `var_os`, `vars`, `vars_os`; `args` is
/// not the environment). Only `src/` is scanned, so `tests/`, `benches/`, `examples/` and build
/// scripts are out of scope, and so are items under `#[cfg(test)]`.
struct EnvReader {
    /// A file, or a directory ending in `/`, relative to the workspace root.
    path: &'static str,
    /// The only arguments allowed (a constant's name or a string literal with its quotes);
    /// `None`: any.
    vars: Option<&'static [&'static str]>,
    why: &'static str,
}

const ENV_READERS: &[EnvReader] = &[
    EnvReader {
        path: "crates/octavia/src/",
        vars: None,
        why: "the `octavia` crate is the configuration layer: its binaries and settings read \
              the environment so that the libraries never have to",
    },
    EnvReader {
        path: "crates/octavia-flows/src/failpoint.rs",
        vars: Some(&["ENV_VAR", "\"OCTAVIA_FAILPOINTS\""]),
        why: "OCTAVIA_FAILPOINTS arms the crash-test failpoints of the flow engine in whichever \
              process runs flows, without a configuration option",
    },
    EnvReader {
        path: "crates/octavia-test-support/src/store.rs",
        vars: Some(&["PG_URL_ENV", "\"OCTAVIA_TEST_PG_URL\""]),
        why: "the throwaway stores of the dev-only test-support crate: OCTAVIA_TEST_PG_URL \
              selects the PostgreSQL server of the test suites",
    },
    EnvReader {
        path: "crates/octavia-test-support/src/require.rs",
        vars: Some(&["\"CI\"", "\"HAPROXY_BIN\"", "\"PATH\""]),
        why: "the dev-only test-support crate: CI=true turns a test skipped for a missing \
              piece of the machine into a failure; HAPROXY_BIN and PATH find HAProxy",
    },
    EnvReader {
        path: "crates/octavia-test-support/src/keystone.rs",
        vars: Some(&[
            "URL_ENV",
            "ADMIN_PASSWORD_ENV",
            "SERVICE_USER_ENV",
            "SERVICE_PASSWORD_ENV",
            "SERVICE_PROJECT_ENV",
            "OPENSTACK_PYTHON_ENV",
        ]),
        why: "the dev-only test-support crate: OCTAVIA_TEST_KEYSTONE_* locate the run's \
              Keystone and its admin and service users, OCTAVIA_TEST_OPENSTACK_PYTHON the \
              python with openstacksdk (scripts/openstack.sh sets them)",
    },
];

const ENV_READS: &[&[&str]] = &[
    &["std", "env", "var"],
    &["std", "env", "var_os"],
    &["std", "env", "vars"],
    &["std", "env", "vars_os"],
];

/// Crates that read the environment for you (and clap with its `env` feature): only the
/// configuration crate may depend on them (normal or build dependency).
const ENV_CRATES: &[&str] = &["dotenv", "dotenvy", "envy"];
const CONFIG_CRATE: &str = "octavia";

/// One broken rule, where to fix it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Breach {
    at: Location,
    rule: &'static str,
    krate: String,
    what: String,
}

/// Fails with every breach, one per line, if there is any.
fn report(rule: &str, mut breaches: Vec<Breach>) {
    breaches.sort();
    breaches.dedup();
    if breaches.is_empty() {
        return;
    }
    let lines: Vec<String> = breaches
        .iter()
        .map(|b| format!("{}: [{}] {}: {}", b.at, b.rule, b.krate, b.what))
        .collect();
    panic!(
        "\n{} breach(es) of the ARCHITECTURE.md rule \"{rule}\" (checked by xtask/src/tidy.rs):\n\n{}\n",
        lines.len(),
        lines.join("\n")
    );
}

/// Our crates `from` depends on through normal dependencies, itself included, each with the
/// chain that leads to it (`from → a → b`), nearest first.
fn ours_reachable<'w>(ws: &'w Workspace, from: &'w Package) -> Vec<(&'w Package, Vec<&'w str>)> {
    let mut seen = BTreeSet::from([from.name.as_str()]);
    let mut queue = VecDeque::from([(from, vec![from.name.as_str()])]);
    let mut out = Vec::new();
    while let Some((pkg, chain)) = queue.pop_front() {
        for dep in pkg.deps.iter().filter(|d| d.kind == DepKind::Normal) {
            if ws.is_ours(&dep.name) && seen.insert(dep.name.as_str()) {
                let next = ws.package(&dep.name);
                let mut c = chain.clone();
                c.push(next.name.as_str());
                queue.push_back((next, c));
            }
        }
        out.push((pkg, chain));
    }
    out
}

/// Where `chain[0]` declares its dependency on `chain[1]`.
fn first_hop(ws: &Workspace, chain: &[&str]) -> Location {
    let pkg = ws.package(chain[0]);
    let dep = pkg
        .deps
        .iter()
        .find(|d| d.kind == DepKind::Normal && d.name == chain[1])
        .expect("chain follows declared dependencies");
    ws.declared_at(pkg, dep)
}

#[test]
fn pure_crates_have_no_impure_dependencies() {
    let rule = "pure crates: no async runtime, SQL, network, filesystem or OS dependency";
    let ws = Workspace::get();
    let mut breaches = Vec::new();
    for &name in PURE_CRATES {
        let pure = ws.package(name);
        for (pkg, chain) in ours_reachable(ws, pure) {
            for dep in pkg.deps.iter().filter(|d| d.kind == DepKind::Normal) {
                let Some(what) = impurity(&dep.name) else {
                    continue;
                };
                let declared = ws.declared_at(pkg, dep);
                let (at, how) = if chain.len() == 1 {
                    (declared, String::new())
                } else {
                    (
                        first_hop(ws, &chain),
                        format!(" through {} (declared at {declared})", chain.join(" → ")),
                    )
                };
                breaches.push(Breach {
                    at,
                    rule: "pure",
                    krate: name.to_string(),
                    what: format!(
                        "depends on `{}` ({}){how}; a pure crate does no I/O: move the code that \
                         needs it to a crate that may",
                        dep.name,
                        what.describe()
                    ),
                });
            }
        }
    }
    report(rule, breaches);
}

#[test]
fn pure_crates_name_no_io_api() {
    let rule = "pure crates: sources use no filesystem, socket, process, environment or async API";
    let ws = Workspace::get();
    let mut breaches = Vec::new();
    for &name in PURE_CRATES {
        let pkg = ws.package(name);
        for (file, scanned) in scan::crate_sources(&pkg.dir) {
            for p in &scanned.paths {
                let std_hit = IMPURE_STD
                    .iter()
                    .find(|(item, _)| p.names(item))
                    .map(|(item, what)| (item.join("::"), *what));
                let crate_hit = p.segs.first().and_then(|root| {
                    let as_crate = root.replace('_', "-");
                    impurity(&as_crate).map(|what| (as_crate, what))
                });
                if let Some((item, what)) = std_hit.or(crate_hit) {
                    breaches.push(Breach {
                        at: Location {
                            file: ws.rel(&file),
                            line: p.line,
                        },
                        rule: "pure",
                        krate: name.to_string(),
                        what: format!(
                            "names `{}` ({}: `{item}`); a pure crate does no I/O",
                            p.display(),
                            what.describe()
                        ),
                    });
                }
            }
        }
    }
    report(rule, breaches);
}

#[test]
fn only_the_store_depends_on_sql() {
    let rule = "only octavia-db contains SQL";
    let ws = Workspace::get();
    ws.package(STORE_CRATE);
    let mut breaches = Vec::new();
    for pkg in ws.packages.iter().filter(|p| p.name != STORE_CRATE) {
        for dep in &pkg.deps {
            if impurity(&dep.name) == Some(Impurity::Sql) {
                breaches.push(Breach {
                    at: ws.declared_at(pkg, dep),
                    rule: "sql",
                    krate: pkg.name.clone(),
                    what: format!(
                        "depends on `{}` ({} dependency); only {STORE_CRATE} talks to the \
                         database: add what you need to its API (tests: `octavia_test_support`, \
                         `octavia_db::admin`)",
                        dep.name,
                        dep.kind.label()
                    ),
                });
            }
        }
    }
    report(rule, breaches);
}

#[test]
fn amphora_agent_depends_only_on_amphora_proto() {
    let rule = "amphora-agent depends only on amphora-proto among our crates";
    let ws = Workspace::get();
    let agent = ws.package(AGENT_CRATE);
    let mut breaches = Vec::new();
    for dep in agent.deps.iter().filter(|d| d.kind == DepKind::Normal) {
        if ws.is_ours(&dep.name) && !AGENT_MAY_USE.contains(&dep.name.as_str()) {
            breaches.push(Breach {
                at: ws.declared_at(agent, dep),
                rule: "agent",
                krate: AGENT_CRATE.to_string(),
                what: format!(
                    "depends on `{}`; the agent runs inside amphorae and shares only the wire \
                     types of {} with the controller",
                    dep.name,
                    AGENT_MAY_USE.join(", ")
                ),
            });
        }
    }
    report(rule, breaches);
}

#[test]
fn api_health_and_drivers_do_not_depend_on_flows() {
    let rule = "the API, health and driver crates never run a flow";
    let ws = Workspace::get();
    ws.package(FLOWS_CRATE);
    let mut breaches = Vec::new();
    for &name in NO_FLOWS {
        let pkg = ws.package(name);
        for (reached, chain) in ours_reachable(ws, pkg) {
            if reached.name == FLOWS_CRATE {
                breaches.push(Breach {
                    at: first_hop(ws, &chain),
                    rule: "no-flows",
                    krate: name.to_string(),
                    what: format!(
                        "depends on {FLOWS_CRATE} ({}); it must queue a job for a worker \
                         instead of running a flow",
                        chain.join(" → ")
                    ),
                });
            }
        }
    }
    report(rule, breaches);
}

#[test]
fn environment_is_read_only_where_allowed() {
    let rule = "the environment is read only by the octavia crate (and the listed exceptions)";
    let ws = Workspace::get();
    ws.package(CONFIG_CRATE);
    for r in ENV_READERS {
        assert!(
            ws.root.join(r.path).exists(),
            "tidy: ENV_READERS names {}, which does not exist: update the list and \
             ARCHITECTURE.md",
            r.path
        );
    }
    // The entry of ENV_READERS that allows this read, if any.
    let allowed_by = |file: &str, p: &PathRef| {
        ENV_READERS.iter().position(|r| {
            let here = if r.path.ends_with('/') {
                file.starts_with(r.path)
            } else {
                file == r.path
            };
            here && r
                .vars
                .is_none_or(|vars| p.arg.as_deref().is_some_and(|a| vars.contains(&a)))
        })
    };
    let mut used = vec![false; ENV_READERS.len()];
    let mut breaches = Vec::new();
    for pkg in &ws.packages {
        for (file, scanned) in scan::crate_sources(&pkg.dir) {
            let file = ws.rel(&file);
            for p in &scanned.paths {
                if !ENV_READS.iter().any(|item| p.names(item)) {
                    continue;
                }
                if let Some(entry) = allowed_by(&file, p) {
                    used[entry] = true;
                } else {
                    breaches.push(Breach {
                        at: Location {
                            file: file.clone(),
                            line: p.line,
                        },
                        rule: "env",
                        krate: pkg.name.clone(),
                        what: format!(
                            "reads the environment (`{}{}`); take the value as a setting from \
                             the caller (the `octavia` crate reads configuration), or add an \
                             entry with its reason to ENV_READERS and ARCHITECTURE.md",
                            p.display(),
                            p.arg
                                .as_deref()
                                .map(|a| format!("({a})"))
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
        // Environment-reading dependencies count as reads, outside the configuration crate.
        if pkg.name != CONFIG_CRATE {
            for dep in pkg.deps.iter().filter(|d| d.kind != DepKind::Dev) {
                let clap_env = dep.name == "clap" && dep.features.iter().any(|f| f == "env");
                if ENV_CRATES.contains(&dep.name.as_str()) || clap_env {
                    breaches.push(Breach {
                        at: ws.declared_at(pkg, dep),
                        rule: "env",
                        krate: pkg.name.clone(),
                        what: format!(
                            "`{}`{} reads the environment; only the `octavia` crate may",
                            dep.name,
                            if clap_env { " with feature `env`" } else { "" }
                        ),
                    });
                }
            }
        }
    }
    // An exception for named variables that nothing reads any more is stale (and a scanner
    // that stopped seeing reads would pass everything: this catches that too).
    for (r, used) in ENV_READERS.iter().zip(used) {
        if r.vars.is_some() && !used {
            breaches.push(Breach {
                at: Location {
                    file: r.path.to_string(),
                    line: 1,
                },
                rule: "env",
                krate: "xtask".to_string(),
                what: "ENV_READERS allows reading the environment here, but nothing does: \
                       remove the entry (and its line in ARCHITECTURE.md)"
                    .to_string(),
            });
        }
    }
    report(rule, breaches);
}

/// ARCHITECTURE.md and this file describe the same rules: the crates marked *Pure* there are
/// [`PURE_CRATES`], and every [`ENV_READERS`] path is named there.
#[test]
fn architecture_md_states_the_checked_rules() {
    let ws = Workspace::get();
    let doc = std::fs::read_to_string(ws.root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    // The crate bullets: `* **name** — text`, continued on indented lines.
    let mut bullets: Vec<(String, String)> = Vec::new();
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix("* **") {
            if let Some((name, text)) = rest.split_once("**") {
                bullets.push((name.to_string(), text.to_string()));
                continue;
            }
        }
        match bullets.last_mut() {
            Some((_, text)) if line.starts_with("  ") => {
                text.push(' ');
                text.push_str(line.trim());
            }
            _ => {
                bullets.push((String::new(), String::new()));
            }
        }
    }
    let marked_pure: BTreeSet<&str> = bullets
        .iter()
        .filter(|(name, text)| ws.is_ours(name) && text.contains("*Pure"))
        .map(|(name, _)| name.as_str())
        .collect();
    let checked: BTreeSet<&str> = PURE_CRATES.iter().copied().collect();
    assert_eq!(
        marked_pure, checked,
        "ARCHITECTURE.md marks these crates *Pure*, xtask/src/tidy.rs PURE_CRATES checks those: \
         make them agree"
    );
    for r in ENV_READERS {
        assert!(
            doc.contains(r.path.trim_end_matches('/')),
            "ENV_READERS allows {} ({}), but ARCHITECTURE.md does not say so",
            r.path,
            r.why
        );
    }
    assert!(
        doc.contains("xtask/src/tidy.rs"),
        "ARCHITECTURE.md should point to the checks (xtask/src/tidy.rs)"
    );
}

//! The workspace as `cargo metadata --no-deps` describes it: our crates, the dependencies each
//! declares, and the manifest line that declares each one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// A dependency section of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    pub fn label(self) -> &'static str {
        match self {
            DepKind::Normal => "normal",
            DepKind::Dev => "dev",
            DepKind::Build => "build",
        }
    }

    fn section(self) -> &'static str {
        match self {
            DepKind::Normal => "dependencies",
            DepKind::Dev => "dev-dependencies",
            DepKind::Build => "build-dependencies",
        }
    }
}

/// One dependency as the manifest declares it.
#[derive(Debug, Clone)]
pub struct Dep {
    /// The package name (a `package = "..."` rename does not hide it).
    pub name: String,
    /// The key in the manifest (the rename if any).
    key: String,
    pub kind: DepKind,
    /// Features the manifest enables on it.
    pub features: Vec<String>,
}

/// One crate of the workspace.
#[derive(Debug)]
pub struct Package {
    pub name: String,
    /// The directory of its `Cargo.toml`.
    pub dir: PathBuf,
    manifest: PathBuf,
    manifest_text: String,
    pub deps: Vec<Dep>,
}

/// A place in the repository, shown as `path:line` relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub packages: Vec<Package>,
}

impl Workspace {
    /// The workspace this crate belongs to (`cargo metadata` runs once per process).
    pub fn get() -> &'static Workspace {
        static WS: OnceLock<Workspace> = OnceLock::new();
        WS.get_or_init(Workspace::load)
    }

    fn load() -> Workspace {
        // `CARGO` is set by cargo and nextest for the tests they run.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| panic!("tidy: cannot run {cargo:?} metadata: {e}"));
        assert!(
            out.status.success(),
            "tidy: cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let root = PathBuf::from(meta["workspace_root"].as_str().expect("workspace_root"));
        let members: Vec<&str> = meta["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let packages = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
            .map(|p| {
                let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
                let manifest_text = std::fs::read_to_string(&manifest)
                    .unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", manifest.display()));
                let deps = p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .map(|d| {
                        let name = d["name"].as_str().expect("dependency name").to_string();
                        Dep {
                            key: d["rename"].as_str().unwrap_or(&name).to_string(),
                            name,
                            kind: match d["kind"].as_str() {
                                Some("dev") => DepKind::Dev,
                                Some("build") => DepKind::Build,
                                _ => DepKind::Normal,
                            },
                            features: d["features"]
                                .as_array()
                                .map(|f| {
                                    f.iter()
                                        .filter_map(Value::as_str)
                                        .map(String::from)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect();
                Package {
                    name: p["name"].as_str().expect("name").to_string(),
                    dir: manifest.parent().expect("manifest dir").to_path_buf(),
                    manifest,
                    manifest_text,
                    deps,
                }
            })
            .collect();
        Workspace { root, packages }
    }

    /// The crate a rule names; a rule naming a crate that is gone must be updated, not pass.
    pub fn package(&self, name: &str) -> &Package {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "tidy: xtask/src/tidy.rs names crate `{name}`, which is not in the workspace: \
                     update the rule (and ARCHITECTURE.md)"
                )
            })
    }

    /// Whether `name` is a crate of ours.
    pub fn is_ours(&self, name: &str) -> bool {
        self.packages.iter().any(|p| p.name == name)
    }

    /// `path` relative to the workspace root.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The line of `pkg`'s manifest that declares `dep`.
    pub fn declared_at(&self, pkg: &Package, dep: &Dep) -> Location {
        Location {
            file: self.rel(&pkg.manifest),
            line: declaration_line(&pkg.manifest_text, dep.kind.section(), &dep.key),
        }
    }
}

/// The 1-based line declaring `key` in a `[section]` (or `[target.*.section]`) table, or
/// heading its own `[section.key]` table; 1 if not found.
fn declaration_line(manifest: &str, section: &str, key: &str) -> usize {
    let mut in_section = false;
    for (n, raw) in manifest.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let table = header.rsplit_once("target.").map_or(header, |(_, t)| {
                // `target.'cfg(unix)'.dependencies`: drop the target part.
                t.split_once("'.")
                    .or_else(|| t.split_once("\"."))
                    .or_else(|| t.split_once('.'))
                    .map_or(t, |(_, rest)| rest)
            });
            if table == format!("{section}.{key}") {
                return n + 1;
            }
            in_section = table == section;
            continue;
        }
        if in_section {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.starts_with([' ', '=', '.', '\t']) {
                    return n + 1;
                }
            }
        }
    }
    1
}

#[test]
fn declaration_lines() {
    let m = "[package]\nname = \"x\"\n\n[dependencies]\ntokio-util = \"1\"\ntokio.workspace = true\n\
             \n[dev-dependencies]\nsqlx = \"1\"\n\n[target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n\
             \n[dependencies.tempfile]\nworkspace = true\n";
    assert_eq!(declaration_line(m, "dependencies", "tokio"), 6);
    assert_eq!(declaration_line(m, "dev-dependencies", "sqlx"), 9);
    assert_eq!(declaration_line(m, "dependencies", "sqlx"), 1);
    assert_eq!(declaration_line(m, "dependencies", "libc"), 12);
    assert_eq!(declaration_line(m, "dependencies", "tempfile"), 14);
}

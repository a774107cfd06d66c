//! The Grafana dashboard under `monitoring/grafana/` asks only for metrics the daemons export:
//! every `octavia_*` name in a panel's query is registered by a `counter!`, `gauge!` or
//! `histogram!` call in the shipped sources (a histogram's `_bucket`, `_sum` and `_count`
//! series count as its name).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds xtask")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, tests and benches excluded.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "tests" | "benches" | "target") {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The metric names registered in `text`: the string literal that opens each
/// `counter!(`, `gauge!(` or `histogram!(` call.
fn registered(text: &str) -> BTreeSet<String> {
    named(text, false)
}

/// The metric names given help text in `text` (`describe_counter!(` and its kin).
fn described(text: &str) -> BTreeSet<String> {
    named(text, true)
}

fn named(text: &str, describe: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for mac in ["counter!(", "gauge!(", "histogram!("] {
        let mut rest = text;
        while let Some(i) = rest.find(mac) {
            let is_describe = rest[..i].ends_with("describe_");
            rest = &rest[i + mac.len()..];
            if is_describe != describe {
                continue;
            }
            let arg = rest.trim_start();
            if let Some(lit) = arg.strip_prefix('"') {
                if let Some(end) = lit.find('"') {
                    names.insert(lit[..end].to_string());
                }
            }
        }
    }
    names
}

#[test]
fn every_metric_has_help_text() {
    let mut files = Vec::new();
    sources(&repo_root().join("crates"), &mut files);
    let (mut used, mut helped) = (BTreeSet::new(), BTreeSet::new());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        used.extend(registered(&text));
        helped.extend(described(&text));
    }
    let missing: Vec<_> = used.difference(&helped).collect();
    assert!(
        missing.is_empty(),
        "metrics without help text (add them to describe_metrics in crates/octavia/src/runtime.rs): {missing:?}"
    );
}

/// The `octavia_*` identifiers in a PromQL expression.
fn queried(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("octavia_") {
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..len].to_string());
        }
        rest = &tail[len..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let root = repo_root();
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    let mut exported = BTreeSet::new();
    for f in &files {
        exported.extend(registered(
            &std::fs::read_to_string(f).expect("read source"),
        ));
    }
    assert!(
        exported.contains("octavia_jobs_total"),
        "the scan found no metric registrations: {exported:?}"
    );
    let dir = root.join("monitoring/grafana");
    let mut dashboards = 0;
    let mut missing = Vec::new();
    for e in std::fs::read_dir(&dir)
        .expect("monitoring/grafana")
        .flatten()
    {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).expect("read dashboard");
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()));
        let mut all = Vec::new();
        exprs(&json, &mut all);
        assert!(!all.is_empty(), "{} has no query", path.display());
        for expr in &all {
            for name in queried(expr) {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|b| exported.contains(*b))
                    .unwrap_or(&name);
                if !exported.contains(base) {
                    missing.push(format!("{}: {name} in `{expr}`", path.display()));
                }
            }
        }
    }
    assert!(dashboards > 0, "no dashboard in {}", dir.display());
    assert!(
        missing.is_empty(),
        "dashboard queries name metrics no daemon exports:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scanners_see_what_they_should() {
    let text = "metrics::counter!(\n \"octavia_a_total\", \"k\" => v); gauge!(name) \
                describe_gauge!(\"octavia_b\", \"help\")";
    assert_eq!(
        registered(text),
        BTreeSet::from(["octavia_a_total".to_string()])
    );
    assert_eq!(described(text), BTreeSet::from(["octavia_b".to_string()]));
    assert_eq!(
        queried("sum(rate(octavia_x_bucket[5m])) / my_octavia_y + octavia_z"),
        BTreeSet::from(["octavia_x_bucket".to_string(), "octavia_z".to_string()])
    );
}

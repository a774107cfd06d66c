//! `octavia config check` and `config sample` as an operator runs them.

use std::process::Command;

fn octavia(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_octavia"))
        .args(args)
        .output()
        .expect("run octavia");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn config_check_accepts_the_sample_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample.toml");
    let (ok, text) = octavia(&["config", "sample"]);
    assert!(ok, "{text}");
    std::fs::write(&sample, &text).unwrap();
    let (ok, out) = octavia(&["--config", sample.to_str().unwrap(), "config", "check"]);
    assert!(ok, "{out}");
    assert!(out.contains("configuration is valid"), "{out}");

    for (bad, must_name) in [
        ("[api_settings]\nbind_prot = 9876\n", "bind_prot"),
        ("[task_flow]\nmax_workers = 0\n", "task_flow.max_workers"),
        (
            "[controller_worker]\ncompute_driver = \"nova\"\n",
            "compute_driver",
        ),
        (
            "[database]\nconnection = \"mysql://x\"\n",
            "database.connection",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, bad).unwrap();
        let (ok, out) = octavia(&["--config", path.to_str().unwrap(), "config", "check"]);
        assert!(!ok, "accepted {bad:?}: {out}");
        assert!(out.contains(must_name), "{bad:?} → {out}");
    }
    let (ok, out) = octavia(&["--config", "/nonexistent/octavia.toml", "config", "check"]);
    assert!(!ok && out.contains("/nonexistent/octavia.toml"), "{out}");
}

/// `octavia certs status`: refuses before the CA exists (naming `certs init`), then lists
/// the CAs and the controller's certificate with their expiry, as a table and as JSON.
#[test]
fn certs_status_lists_every_certificate_with_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("octavia.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\nconnection = \"sqlite://{}\"\n\n[certificates]\nca_dir = \"{}\"\n",
            dir.path().join("octavia.db").display(),
            dir.path().join("ca").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (ok, out) = octavia(&["--config", cfg, "certs", "status"]);
    assert!(!ok && out.contains("octavia certs init"), "{out}");
    let (ok, out) = octavia(&["--config", cfg, "certs", "init"]);
    assert!(ok, "{out}");
    let (ok, out) = octavia(&["--config", cfg, "certs", "status"]);
    assert!(
        ok && out.contains("server CA") && out.contains("days left"),
        "{out}"
    );
    let (ok, out) = octavia(&["--config", cfg, "certs", "status", "-f", "json"]);
    assert!(ok, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let kinds: Vec<&str> = rows
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for k in ["server CA", "client CA", "controller client certificate"] {
        assert!(kinds.contains(&k), "{k} missing: {out}");
    }
    for r in rows.as_array().unwrap() {
        assert!(r["seconds_left"].as_i64().unwrap_or(0) > 86_400, "{r}");
    }
}

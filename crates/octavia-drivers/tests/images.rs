//! The amphora image registry on a real filesystem: registration, listing, resolution by
//! id and by tag, and the refusals (non-executable source, missing tag, tampered binary).
//! Shell scripts stand in for agent binaries. Needs no root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use octavia_drivers::netns::ImageResolver;
use octavia_drivers::{DriverError, FaultOwner, ImageRegistry};

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An executable shell script `name` in `dir` with `body` after the shebang line.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn agent(dir: &Path, name: &str, version: &str) -> PathBuf {
    script(dir, name, &format!("echo \"amphora-agent {version}\""))
}

fn message(e: &DriverError) -> String {
    e.to_string()
}

fn assert_permanent_compute(e: &DriverError) {
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.owner(), FaultOwner::Compute, "{e}");
}

struct Setup {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    registry: ImageRegistry,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let registry = ImageRegistry::open(tmp.path().join("images")).unwrap();
    Setup {
        _tmp: tmp,
        src,
        registry,
    }
}

#[test]
fn register_copies_the_binary_and_writes_the_manifest() {
    let s = setup();
    let src = agent(&s.src, "agent", "9.9");
    let record = s
        .registry
        .register(&src, &tags(&["amphora", "amphora"]))
        .unwrap();

    assert!(uuid::Uuid::parse_str(&record.id).is_ok_and(|u| u.get_version_num() == 4));
    assert_eq!(record.tags, tags(&["amphora"]));
    assert_eq!(record.version.as_deref(), Some("amphora-agent 9.9"));
    assert_eq!(record.source, src);
    let content = std::fs::read(&src).unwrap();
    assert_eq!(record.size, content.len() as u64);

    let dir = s.registry.dir().join(&record.id);
    assert_eq!(record.agent_path, dir.join("amphora-agent"));
    let meta = std::fs::symlink_metadata(&record.agent_path).unwrap();
    assert!(meta.is_file(), "a copy, not a link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(&record.agent_path).unwrap(), content);
    // The copy is independent of the source.
    std::fs::write(&src, "#!/bin/sh\necho changed\n").unwrap();
    assert_eq!(std::fs::read(&record.agent_path).unwrap(), content);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["id"], record.id.as_str());
    assert_eq!(manifest["tags"], serde_json::json!(["amphora"]));
    assert_eq!(manifest["size"], record.size);
    assert_eq!(manifest["version"], "amphora-agent 9.9");
    assert_eq!(manifest["source"], src.to_str().unwrap());
    let sha = manifest["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(sha, record.sha256);
    let created = manifest["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    assert_eq!(s.registry.get(&record.id).unwrap(), Some(record.clone()));
    // A registry opened anew (another process) sees the same image.
    let again = ImageRegistry::open(s.registry.dir()).unwrap();
    assert_eq!(again.list().unwrap(), vec![record]);
}

#[test]
fn list_is_newest_first_and_resolution_by_tag_picks_the_newest() {
    let s = setup();
    let old = s
        .registry
        .register(&agent(&s.src, "a1", "1.0"), &tags(&["amphora"]))
        .unwrap();
    let other = s
        .registry
        .register(&agent(&s.src, "b", "2.0"), &tags(&["canary"]))
        .unwrap();
    let new = s
        .registry
        .register(&agent(&s.src, "a2", "3.0"), &tags(&["amphora", "x"]))
        .unwrap();

    let ids: Vec<_> = s
        .registry
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![new.id.clone(), other.id.clone(), old.id.clone()]);

    let by_tag = s.registry.resolve(None, Some("amphora")).unwrap();
    assert_eq!(by_tag.image_id, new.id);
    assert_eq!(by_tag.agent_path, new.agent_path);
    assert_eq!(
        s.registry.resolve(None, Some("canary")).unwrap().image_id,
        other.id
    );

    // An explicit id wins over the tag.
    let by_id = s.registry.resolve(Some(&old.id), Some("amphora")).unwrap();
    assert_eq!(by_id.image_id, old.id);
    assert_eq!(by_id.agent_path, old.agent_path);
    let out = std::process::Command::new(&by_id.agent_path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "amphora-agent 1.0"
    );

    // Deleting the newest makes the tag resolve to the older one.
    s.registry.delete(&new.id).unwrap();
    assert!(!s.registry.dir().join(&new.id).exists());
    assert_eq!(s.registry.get(&new.id).unwrap(), None);
    assert_eq!(
        s.registry.resolve(None, Some("amphora")).unwrap().image_id,
        old.id
    );
    let e = s.registry.delete(&new.id).unwrap_err();
    assert!(
        message(&e).contains(&format!("no amphora image {}", new.id)),
        "{e}"
    );
}

#[test]
fn missing_images_and_tags_are_permanent_compute_errors() {
    let s = setup();
    let e = s.registry.resolve(None, Some("amphora")).unwrap_err();
    assert_permanent_compute(&e);
    assert!(
        message(&e).contains(
            "no amphora image is tagged 'amphora'; register one with \
             `octavia image register --tag amphora PATH`"
        ),
        "{e}"
    );

    s.registry
        .register(&agent(&s.src, "a", "1"), &tags(&["other"]))
        .unwrap();
    let e = s.registry.resolve(None, Some("amphora")).unwrap_err();
    assert!(
        message(&e).contains("no amphora image is tagged 'amphora'"),
        "{e}"
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let e = s
        .registry
        .resolve(Some(&missing), Some("other"))
        .unwrap_err();
    assert_permanent_compute(&e);
    assert!(
        message(&e).contains(&format!("no amphora image {missing}")),
        "{e}"
    );

    // Not a UUID (and no path escapes through the id).
    let e = s.registry.resolve(Some("../src/a"), None).unwrap_err();
    assert!(message(&e).contains("no amphora image ../src/a"), "{e}");

    let e = s.registry.resolve(None, None).unwrap_err();
    assert_permanent_compute(&e);
}

#[test]
fn non_executable_and_non_file_sources_are_refused() {
    let s = setup();
    let plain = s.src.join("plain");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = s.registry.register(&plain, &tags(&["a"])).unwrap_err();
    assert_permanent_compute(&e);
    assert!(message(&e).contains(plain.to_str().unwrap()), "{e}");
    assert!(message(&e).contains("not executable"), "{e}");

    let e = s.registry.register(&s.src, &tags(&["a"])).unwrap_err();
    assert!(message(&e).contains(s.src.to_str().unwrap()), "{e}");
    assert!(message(&e).contains("not a regular file"), "{e}");

    let missing = s.src.join("missing");
    let e = s.registry.register(&missing, &tags(&["a"])).unwrap_err();
    assert!(message(&e).contains(missing.to_str().unwrap()), "{e}");

    let e = s
        .registry
        .register(&agent(&s.src, "ok", "1"), &tags(&["bad tag"]))
        .unwrap_err();
    assert!(message(&e).contains("invalid image tag"), "{e}");

    // Nothing was left behind, not even hidden temporary directories.
    assert_eq!(std::fs::read_dir(s.registry.dir()).unwrap().count(), 0);
    assert!(s.registry.list().unwrap().is_empty());
}

#[test]
fn tampered_or_half_deleted_binaries_are_refused() {
    let s = setup();
    let same_size = s
        .registry
        .register(&agent(&s.src, "a", "1.0"), &tags(&["t1"]))
        .unwrap();
    let other_size = s
        .registry
        .register(&agent(&s.src, "b", "1.0"), &tags(&["t2"]))
        .unwrap();
    let removed = s
        .registry
        .register(&agent(&s.src, "c", "1.0"), &tags(&["t3"]))
        .unwrap();

    // Same size, other content.
    std::fs::write(
        &same_size.agent_path,
        "#!/bin/sh\necho \"amphora-agent 6.6\"\n",
    )
    .unwrap();
    let e = s.registry.resolve(Some(&same_size.id), None).unwrap_err();
    assert_permanent_compute(&e);
    assert!(message(&e).contains("sha256"), "{e}");

    std::fs::write(&other_size.agent_path, "#!/bin/sh\nexec /bin/false\n").unwrap();
    let e = s.registry.resolve(None, Some("t2")).unwrap_err();
    assert_permanent_compute(&e);
    assert!(message(&e).contains("bytes, the manifest says"), "{e}");

    std::fs::remove_file(&removed.agent_path).unwrap();
    let e = s.registry.resolve(None, Some("t3")).unwrap_err();
    assert_permanent_compute(&e);
    assert!(
        message(&e).contains(&format!("amphora image {} is broken", removed.id)),
        "{e}"
    );
}

#[test]
fn temporary_and_invalid_directories_are_skipped() {
    let s = setup();
    let good = s
        .registry
        .register(&agent(&s.src, "a", "1"), &tags(&["amphora"]))
        .unwrap();
    let dir = s.registry.dir();
    // A registration in progress elsewhere, garbage, and a broken manifest.
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("manifest.json"), "{}").unwrap();
    std::fs::create_dir(dir.join("not-an-image")).unwrap();
    let broken = dir.join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), "{ not json").unwrap();
    let empty = dir.join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir(&empty).unwrap();
    // A manifest copied from another image.
    let copied = dir.join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir(&copied).unwrap();
    std::fs::copy(
        dir.join(&good.id).join("manifest.json"),
        copied.join("manifest.json"),
    )
    .unwrap();

    assert_eq!(s.registry.list().unwrap(), vec![good.clone()]);
    assert_eq!(
        s.registry.resolve(None, Some("amphora")).unwrap().image_id,
        good.id
    );
    // A fresh temporary directory survives reopening (it may be a live registration).
    ImageRegistry::open(dir).unwrap();
    assert!(tmp.exists());
}

#[test]
fn tags_can_be_added_and_removed() {
    let s = setup();
    let old = s
        .registry
        .register(&agent(&s.src, "a", "1"), &tags(&["amphora"]))
        .unwrap();
    let new = s
        .registry
        .register(&agent(&s.src, "b", "2"), &tags(&["canary"]))
        .unwrap();
    assert_eq!(
        s.registry.resolve(None, Some("amphora")).unwrap().image_id,
        old.id
    );

    let tagged = s
        .registry
        .tag(&new.id, &tags(&["amphora", "canary"]))
        .unwrap();
    assert_eq!(tagged.tags, tags(&["canary", "amphora"]));
    assert_eq!(s.registry.get(&new.id).unwrap(), Some(tagged));
    assert_eq!(
        s.registry.resolve(None, Some("amphora")).unwrap().image_id,
        new.id
    );

    let untagged = s
        .registry
        .untag(&new.id, &tags(&["amphora", "nope"]))
        .unwrap();
    assert_eq!(untagged.tags, tags(&["canary"]));
    assert_eq!(
        s.registry.resolve(None, Some("amphora")).unwrap().image_id,
        old.id
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let e = s.registry.tag(&missing, &tags(&["x"])).unwrap_err();
    assert!(
        message(&e).contains(&format!("no amphora image {missing}")),
        "{e}"
    );
    assert!(!s.registry.dir().join(&missing).exists());
}

#[test]
fn version_is_null_when_the_binary_does_not_answer() {
    let s = setup();
    let silent = script(&s.src, "silent", "exit 0");
    let failing = script(&s.src, "failing", "echo usage; exit 2");
    let hanging = script(&s.src, "hanging", "exec sleep 30");
    let registry = s
        .registry
        .clone()
        .with_version_timeout(Duration::from_millis(300));

    assert_eq!(registry.register(&silent, &[]).unwrap().version, None);
    assert_eq!(registry.register(&failing, &[]).unwrap().version, None);
    let start = Instant::now();
    let record = registry.register(&hanging, &[]).unwrap();
    assert_eq!(record.version, None);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "hung binary was killed"
    );
    assert_eq!(registry.list().unwrap().len(), 3);
}

#[test]
fn concurrent_registrations_do_not_interfere() {
    let s = setup();
    let src = agent(&s.src, "a", "9.9");
    let dir = s.registry.dir().to_path_buf();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let src = src.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                // Each worker opens its own registry, as a separate process would.
                let registry = ImageRegistry::open(dir).unwrap();
                (0..3)
                    .map(|_| registry.register(&src, &[format!("w{i}")]).unwrap().id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    ids.sort();
    let list = s.registry.list().unwrap();
    let mut listed: Vec<String> = list.iter().map(|r| r.id.clone()).collect();
    listed.sort();
    assert_eq!(listed, ids);
    assert_eq!(ids.len(), 12);
    for record in &list {
        assert_eq!(record.version.as_deref(), Some("amphora-agent 9.9"));
        s.registry.resolve(Some(&record.id), None).unwrap();
    }
    // No temporary directories are left.
    let hidden = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(hidden, 0);
}

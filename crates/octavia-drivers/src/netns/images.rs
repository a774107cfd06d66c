//! The amphora image registry: registered, versioned agent binaries with tags, kept in a
//! directory, which the `netns` compute driver resolves build requests against.
//!
//! Layout: `<dir>/<image id>/` per image, holding a copy of the agent binary
//! (`amphora-agent`, mode 0755) and `manifest.json` ([`ImageRecord`] minus the derived path).
//! A registration is assembled in a hidden temporary directory inside `<dir>`, synced, and
//! renamed into place, so a crash leaves either a complete image or a hidden leftover, and
//! registrations in separate processes never touch each other's files. There is no shared
//! index: the directory listing is the index. Tag changes rewrite one manifest under a lock
//! file of that image.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::compute::{ImageResolver, ResolvedImage};
use super::sys;
use crate::error::{DriverError, FaultOwner, Result};

const OWNER: FaultOwner = FaultOwner::Compute;
/// File name of the agent binary inside an image directory.
pub const AGENT_FILE: &str = "amphora-agent";
/// File name of the manifest inside an image directory.
pub const MANIFEST_FILE: &str = "manifest.json";
const LOCK_FILE: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";
const DELETED_PREFIX: &str = ".deleted-";
/// How long `<binary> --version` may take at registration.
pub const DEFAULT_VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Leftovers of crashed registrations older than this are removed by [`ImageRegistry::open`].
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);
/// At most this much of the `--version` output is read.
const VERSION_OUTPUT_LIMIT: u64 = 64 * 1024;
const TAG_MAX_LEN: usize = 255;

/// `manifest.json` of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    id: String,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    sha256: String,
    size: u64,
    version: Option<String>,
    source: PathBuf,
}

/// One registered image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRecord {
    /// The image id (a UUID v4), recorded on amphorae booted from it.
    pub id: String,
    /// Tags, in the order they were added, without duplicates.
    pub tags: Vec<String>,
    /// When the image was registered.
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the agent binary, lowercase hex.
    pub sha256: String,
    /// Size of the agent binary in bytes.
    pub size: u64,
    /// First line of `<binary> --version`, if it answered in time.
    pub version: Option<String>,
    /// The path the binary was copied from.
    pub source: PathBuf,
    /// The registry's copy of the binary, the path amphorae start.
    pub agent_path: PathBuf,
}

impl ImageRecord {
    fn from_manifest(m: Manifest, dir: &Path) -> Self {
        Self {
            agent_path: dir.join(AGENT_FILE),
            id: m.id,
            tags: m.tags,
            created_at: m.created_at,
            sha256: m.sha256,
            size: m.size,
            version: m.version,
            source: m.source,
        }
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            id: self.id.clone(),
            tags: self.tags.clone(),
            created_at: self.created_at,
            sha256: self.sha256.clone(),
            size: self.size,
            version: self.version.clone(),
            source: self.source.clone(),
        }
    }

    /// Whether the image carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// The image registry in one directory. Cheap to clone; every call reads the directory, so
/// several processes may share it.
#[derive(Debug, Clone)]
pub struct ImageRegistry {
    dir: PathBuf,
    version_timeout: Duration,
}

impl ImageRegistry {
    /// Open (creating it if needed) the registry in `dir`, and remove leftovers of
    /// registrations that crashed more than an hour ago.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| sys::io_error(OWNER, "open image registry", &dir, e))?;
        let registry = Self {
            dir,
            version_timeout: DEFAULT_VERSION_TIMEOUT,
        };
        registry.remove_leftovers();
        Ok(registry)
    }

    /// How long `<binary> --version` may take at registration (default 5 s).
    pub fn with_version_timeout(mut self, timeout: Duration) -> Self {
        self.version_timeout = timeout;
        self
    }

    /// The registry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Register a copy of the executable at `path` as a new image carrying `tags`.
    pub fn register(&self, path: &Path, tags: &[String]) -> Result<ImageRecord> {
        const CTX: &str = "register amphora image";
        let tags = normalize_tags(CTX, tags)?;
        let meta = std::fs::metadata(path).map_err(|e| {
            DriverError::permanent(OWNER, CTX, format!("cannot read {}: {e}", path.display()))
        })?;
        if !meta.is_file() {
            return Err(DriverError::permanent(
                OWNER,
                CTX,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(DriverError::permanent(
                OWNER,
                CTX,
                format!("{} is not executable", path.display()),
            ));
        }
        let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());

        let id = Uuid::new_v4().hyphenated().to_string();
        let tmp = self.dir.join(format!("{TMP_PREFIX}{id}"));
        std::fs::create_dir(&tmp).map_err(|e| sys::io_error(OWNER, CTX, &tmp, e))?;
        let result = self.assemble(&tmp, &id, path, source, tags);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Fill the temporary directory `tmp` and rename it to the image directory.
    fn assemble(
        &self,
        tmp: &Path,
        id: &str,
        path: &Path,
        source: PathBuf,
        tags: Vec<String>,
    ) -> Result<ImageRecord> {
        const CTX: &str = "register amphora image";
        let agent = tmp.join(AGENT_FILE);
        let (sha256, size) = copy_executable(path, &agent)?;
        let version = agent_version(&agent, self.version_timeout);
        let manifest = Manifest {
            id: id.to_string(),
            tags,
            created_at: Utc::now(),
            sha256,
            size,
            version,
            source,
        };
        write_synced(&tmp.join(MANIFEST_FILE), &encode(&manifest)?)?;
        sync_dir(tmp)?;
        let final_dir = self.dir.join(id);
        std::fs::rename(tmp, &final_dir).map_err(|e| sys::io_error(OWNER, CTX, &final_dir, e))?;
        sync_dir(&self.dir)?;
        tracing::info!(image_id = %id, source = %path.display(), "amphora image registered");
        Ok(ImageRecord::from_manifest(manifest, &final_dir))
    }

    /// All valid images, newest first. Temporary directories and directories without a
    /// valid manifest are skipped.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| sys::io_error(OWNER, "list amphora images", &self.dir, e))?;
        let mut images = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| sys::io_error(OWNER, "list amphora images", &self.dir, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(canonical_id) else {
                continue;
            };
            if let Some(record) = self.read(&id)? {
                images.push(record);
            }
        }
        images.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(images)
    }

    /// The image `id`, if registered.
    pub fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        match canonical_id(id) {
            Some(id) => self.read(&id),
            None => Ok(None),
        }
    }

    /// The newest image carrying `tag`, if any.
    pub fn newest_tagged(&self, tag: &str) -> Result<Option<ImageRecord>> {
        Ok(self.list()?.into_iter().find(|r| r.has_tag(tag)))
    }

    /// Remove the image `id`. The directory is first renamed out of sight, so a crash in
    /// the middle never leaves a half-deleted image that looks valid.
    pub fn delete(&self, id: &str) -> Result<()> {
        const CTX: &str = "delete amphora image";
        let Some(id) = canonical_id(id) else {
            return Err(not_found(CTX, id));
        };
        let dir = self.dir.join(&id);
        let doomed = self
            .dir
            .join(format!("{DELETED_PREFIX}{id}-{}", Uuid::new_v4().simple()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(CTX, &id)),
            Err(e) => return Err(sys::io_error(OWNER, CTX, &dir, e)),
        }
        sync_dir(&self.dir)?;
        std::fs::remove_dir_all(&doomed).map_err(|e| sys::io_error(OWNER, CTX, &doomed, e))?;
        tracing::info!(image_id = %id, "amphora image deleted");
        Ok(())
    }

    /// Add `tags` to the image `id` (tags it already has are kept once).
    pub fn tag(&self, id: &str, tags: &[String]) -> Result<ImageRecord> {
        const CTX: &str = "tag amphora image";
        let tags = normalize_tags(CTX, tags)?;
        self.update(CTX, id, |record| {
            for tag in tags {
                if !record.has_tag(&tag) {
                    record.tags.push(tag);
                }
            }
        })
    }

    /// Remove `tags` from the image `id` (tags it does not have are ignored).
    pub fn untag(&self, id: &str, tags: &[String]) -> Result<ImageRecord> {
        self.update("untag amphora image", id, |record| {
            record.tags.retain(|t| !tags.contains(t))
        })
    }

    /// Read-modify-write the manifest of `id` under the image's lock file.
    fn update(
        &self,
        context: &str,
        id: &str,
        change: impl FnOnce(&mut ImageRecord),
    ) -> Result<ImageRecord> {
        let Some(id) = canonical_id(id) else {
            return Err(not_found(context, id));
        };
        let dir = self.dir.join(&id);
        let lock_path = dir.join(LOCK_FILE);
        let lock = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found(context, &id))
            }
            Err(e) => return Err(sys::io_error(OWNER, context, &lock_path, e)),
        };
        lock.lock()
            .map_err(|e| sys::io_error(OWNER, context, &lock_path, e))?;
        let Some(mut record) = self.read(&id)? else {
            return Err(not_found(context, &id));
        };
        change(&mut record);
        let manifest_path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        write_synced(&tmp, &encode(&record.manifest())?)?;
        std::fs::rename(&tmp, &manifest_path)
            .map_err(|e| sys::io_error(OWNER, context, &manifest_path, e))?;
        sync_dir(&dir)?;
        // Dropping the file releases the lock.
        drop(lock);
        Ok(record)
    }

    /// Check that the binary of `record` is still the one registered: a regular executable
    /// file of the recorded size and SHA-256.
    pub fn verify(&self, record: &ImageRecord) -> Result<()> {
        const CTX: &str = "verify amphora image";
        let path = &record.agent_path;
        let broken = |why: String| {
            DriverError::permanent(
                OWNER,
                CTX,
                format!("amphora image {} is broken: {why}", record.id),
            )
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| broken(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(broken(format!(
                "{} is not an executable file",
                path.display()
            )));
        }
        if meta.len() != record.size {
            return Err(broken(format!(
                "{} has {} bytes, the manifest says {}",
                path.display(),
                meta.len(),
                record.size
            )));
        }
        let file =
            File::open(path).map_err(|e| broken(format!("cannot read {}: {e}", path.display())))?;
        let (sha256, _) = hash_copy(file, std::io::sink())
            .map_err(|e| broken(format!("cannot read {}: {e}", path.display())))?;
        if sha256 != record.sha256 {
            return Err(broken(format!(
                "{} does not match the sha256 of the manifest",
                path.display()
            )));
        }
        Ok(())
    }

    /// The image in `<dir>/<id>/`; `None` when it is missing or its manifest is not valid.
    fn read(&self, id: &str) -> Result<Option<ImageRecord>> {
        let dir = self.dir.join(id);
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(sys::io_error(OWNER, "read amphora image", &path, e)),
        };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m.id == id => Ok(Some(ImageRecord::from_manifest(m, &dir))),
            Ok(m) => {
                tracing::warn!(
                    path = %path.display(),
                    manifest_id = %m.id,
                    "image manifest names another image, skipped"
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "invalid image manifest, skipped");
                Ok(None)
            }
        }
    }

    /// Best effort: remove hidden leftovers of crashed registrations and deletions.
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let deleted = name.starts_with(DELETED_PREFIX);
            if !deleted && !name.starts_with(TMP_PREFIX) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP_AGE);
            if deleted || stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl ImageResolver for ImageRegistry {
    fn resolve(&self, image_id: Option<&str>, image_tag: Option<&str>) -> Result<ResolvedImage> {
        const CTX: &str = "resolve amphora image";
        let record = match (image_id, image_tag) {
            (Some(id), _) => self.get(id)?.ok_or_else(|| not_found(CTX, id))?,
            (None, Some(tag)) => self.newest_tagged(tag)?.ok_or_else(|| {
                DriverError::permanent(
                    OWNER,
                    CTX,
                    format!(
                        "no amphora image is tagged '{tag}'; register one with \
                         `octavia image register --tag {tag} PATH`"
                    ),
                )
            })?,
            (None, None) => {
                return Err(DriverError::permanent(
                    OWNER,
                    CTX,
                    "the build request names neither an image id nor an image tag",
                ))
            }
        };
        self.verify(&record)?;
        Ok(ResolvedImage {
            image_id: record.id,
            agent_path: record.agent_path,
        })
    }

    fn current(&self, image_tag: &str) -> Result<String> {
        match self.newest_tagged(image_tag)? {
            Some(record) => Ok(record.id),
            None => Ok(self.resolve(None, Some(image_tag))?.image_id),
        }
    }
}

fn not_found(context: &str, id: &str) -> DriverError {
    DriverError::permanent(OWNER, context, format!("no amphora image {id}"))
}

/// The directory name of image `id`: the lowercase hyphenated UUID, or `None` when `id` is
/// not a UUID (which also keeps paths like `..` out).
fn canonical_id(id: &str) -> Option<String> {
    Uuid::parse_str(id).ok().map(|u| u.hyphenated().to_string())
}

/// Tags without duplicates, in order; refuses empty tags and tags with whitespace or
/// control characters.
fn normalize_tags(context: &str, tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let valid = !tag.is_empty()
            && tag.len() <= TAG_MAX_LEN
            && !tag.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(DriverError::permanent(
                OWNER,
                context,
                format!(
                    "invalid image tag {tag:?}: tags are 1 to {TAG_MAX_LEN} characters \
                     without spaces"
                ),
            ));
        }
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    Ok(out)
}

fn encode(manifest: &Manifest) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(manifest).map_err(|e| {
        DriverError::permanent(
            FaultOwner::Ours,
            "write image manifest",
            format!("cannot encode: {e}"),
        )
    })
}

/// Copy `src` to the new file `dst` (mode 0755), synced; returns its SHA-256 and size,
/// computed from the bytes written.
fn copy_executable(src: &Path, dst: &Path) -> Result<(String, u64)> {
    const CTX: &str = "register amphora image";
    let input = File::open(src).map_err(|e| {
        DriverError::permanent(OWNER, CTX, format!("cannot read {}: {e}", src.display()))
    })?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(dst)
        .map_err(|e| sys::io_error(OWNER, CTX, dst, e))?;
    let (sha256, size) =
        hash_copy(input, &mut output).map_err(|e| sys::io_error(OWNER, CTX, dst, e))?;
    // The umask may have cleared bits of the creation mode.
    output
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| sys::io_error(OWNER, CTX, dst, e))?;
    output
        .sync_all()
        .map_err(|e| sys::io_error(OWNER, CTX, dst, e))?;
    Ok((sha256, size))
}

/// Copy `input` to `output`, returning the SHA-256 (lowercase hex) and length of the bytes.
fn hash_copy(mut input: impl Read, mut output: impl Write) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    output.flush()?;
    Ok((format!("{:x}", hasher.finalize()), size))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    const CTX: &str = "write image manifest";
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| sys::io_error(OWNER, CTX, path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| sys::io_error(OWNER, CTX, path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| sys::io_error(OWNER, "sync image registry", dir, e))
}

/// The first non-empty line `<binary> --version` prints on stdout, if it exits successfully
/// within `timeout`; a binary that hangs is killed.
fn agent_version(binary: &Path, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut child = loop {
        match Command::new(binary)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => break child,
            // Another thread of this process may briefly hold a write descriptor of the
            // freshly copied file (inherited by a child between fork and exec).
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                tracing::debug!(binary = %binary.display(), error = %e, "cannot run --version");
                return None;
            }
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        // A grandchild may keep the pipe open after the binary exits; the reader is left
        // behind then instead of blocking the registration.
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.take(VERSION_OUTPUT_LIMIT).read_to_end(&mut out);
            let _ = tx.send(out);
        });
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if !status?.success() {
        return None;
    }
    let out = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()?;
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids_only() {
        let id = Uuid::new_v4();
        assert_eq!(
            canonical_id(&id.hyphenated().to_string().to_uppercase()),
            Some(id.hyphenated().to_string())
        );
        assert_eq!(canonical_id(".."), None);
        assert_eq!(canonical_id(".tmp-x"), None);
        assert_eq!(canonical_id("../etc"), None);
    }

    #[test]
    fn tags_are_deduplicated_and_checked() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_tags("x", &t(&["a", "b", "a"])).unwrap(),
            t(&["a", "b"])
        );
        assert!(normalize_tags("x", &t(&[""])).is_err());
        assert!(normalize_tags("x", &t(&["a b"])).is_err());
        assert!(normalize_tags("x", &t(&["a\n"])).is_err());
    }

    #[test]
    fn hash_copy_matches_known_digest() {
        let mut out = Vec::new();
        let (sha, size) = hash_copy(&b"abc"[..], &mut out).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
        assert_eq!(out, b"abc");
    }
}

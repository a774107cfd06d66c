//! File helpers: directories and files created with explicit modes, written atomically.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{AgentError, Result};

/// Creates `dir` (and its parents) with `mode` if it does not exist.
pub fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| AgentError::io("create directory", dir, e))
}

/// Writes `data` to `path` with `mode` through a temporary file and a rename, so readers see
/// the old or the new content, never a mix.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| AgentError::io("create file", &tmp, e))?;
    // The mode given to open() is filtered by the umask; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| AgentError::io("set file mode", &tmp, e))?;
    file.write_all(data)
        .and_then(|_| file.sync_all())
        .map_err(|e| AgentError::io("write file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io("replace file", path, e))
}

//! Per load balancer certificate files (`<base_cert_dir>/<lb_id>/<name>.pem`, mode 0600).

use std::path::PathBuf;

use crate::error::{AgentError, Result};
use crate::fsutil;
use crate::haproxy::md5_hex;

/// The certificate store of the amphora.
#[derive(Debug, Clone)]
pub struct CertificateStore {
    base_cert_dir: PathBuf,
}

impl CertificateStore {
    /// A store under `base_cert_dir`.
    pub fn new(base_cert_dir: PathBuf) -> Self {
        Self { base_cert_dir }
    }

    /// Directory of one load balancer's certificates.
    pub fn lb_dir(&self, lb_id: &str) -> PathBuf {
        self.base_cert_dir.join(lb_id)
    }

    fn path(&self, lb_id: &str, filename: &str) -> Result<PathBuf> {
        check_filename(filename)?;
        Ok(self.lb_dir(lb_id).join(filename))
    }

    /// Stores a PEM file (mode 0600) and returns its MD5.
    pub fn put(&self, lb_id: &str, filename: &str, data: &[u8]) -> Result<String> {
        let path = self.path(lb_id, filename)?;
        fsutil::create_dir(&self.lb_dir(lb_id), 0o700)?;
        fsutil::write_file(&path, data, 0o600)?;
        tracing::info!(lb_id, filename, "certificate stored");
        Ok(md5_hex(data))
    }

    /// The MD5 of a stored file.
    pub fn md5(&self, lb_id: &str, filename: &str) -> Result<String> {
        let path = self.path(lb_id, filename)?;
        match std::fs::read(&path) {
            Ok(data) => Ok(md5_hex(&data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(cert_not_found(filename)),
            Err(e) => Err(AgentError::io("read certificate", &path, e)),
        }
    }

    /// Removes a stored file (absent files are fine: deletes are idempotent).
    pub fn delete(&self, lb_id: &str, filename: &str) -> Result<()> {
        let path = self.path(lb_id, filename)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(lb_id, filename, "certificate removed");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::io("remove certificate", &path, e)),
        }
    }

    /// Removes every certificate of a load balancer.
    pub fn delete_all(&self, lb_id: &str) -> Result<()> {
        let dir = self.lb_dir(lb_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::io("remove certificate directory", &dir, e)),
        }
    }
}

fn cert_not_found(filename: &str) -> AgentError {
    AgentError::not_found(
        "Certificate Not Found",
        format!("No certificate with filename: {filename}"),
    )
}

/// A certificate file name: `<name>.pem`, letters, digits, `.`, `_`, `-` only, no path.
fn check_filename(filename: &str) -> Result<()> {
    let stem = filename.strip_suffix(".pem").unwrap_or("");
    let ok = !stem.is_empty()
        && !filename.starts_with('.')
        && filename
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AgentError::bad_request(
            "Filename has wrong extension",
            format!("certificate file names must look like <name>.pem, got {filename:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(check_filename("listener.pem").is_ok());
        assert!(check_filename("a1b2-c3.d4.pem").is_ok());
        for bad in [
            ".pem",
            "x.crt",
            "../x.pem",
            "a/b.pem",
            ".hidden.pem",
            "x.pem.bak",
        ] {
            assert!(check_filename(bad).is_err(), "{bad}");
        }
    }
}

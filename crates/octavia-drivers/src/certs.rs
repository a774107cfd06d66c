//! The local certificate authority of the amphora control plane (reference §9).
//!
//! [`CertificateAuthority::init`] keeps everything in one directory and creates it on first
//! use. Following the reference's recommended production design, there are **two separate
//! self-signed roots**:
//!
//! * the *server CA* (`server_ca.pem`, `server_ca.key`) signs one certificate per amphora
//!   (CN = SAN DNS = the amphora id); the controller trusts only this CA when it talks to
//!   agents (`[haproxy_amphora] server_ca`);
//! * the *client CA* (`client_ca.pem`, `client_ca.key`) signs only the controller's client
//!   certificate (`client.pem` = certificate + key, `CN=OctaviaController`, clientAuth);
//!   every amphora gets `client_ca.pem` and accepts only clients it signed.
//!
//! A stolen amphora certificate therefore cannot be used to act as a controller towards
//! another amphora: the agents do not trust the server CA for clients.
//!
//! Keys are ECDSA P-256 (the reference's generator uses RSA 2048; `ring` cannot generate RSA
//! keys, and P-256 is accepted by every TLS stack the agent runs). Amphora certificates carry
//! the reference's extensions: BasicConstraints CA=false, KeyUsage digitalSignature,
//! keyEncipherment, dataEncipherment, keyAgreement, ExtendedKeyUsage serverAuth+clientAuth,
//! subject and authority key identifiers, a random 128-bit serial.
//!
//! Private-key files are written with mode 0600 (the directory 0700 when we create it); each
//! file is written to a temporary name and renamed into place. A directory holding only some
//! of the files (an interrupted first start, a careless copy) is refused with an error naming
//! the missing files rather than silently regenerated, because regenerating would orphan every
//! amphora issued so far. Run `init` from one process at a time on first start.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use octavia_model::{AmphoraId, Timestamp};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::{DriverError, FaultOwner, Result};

/// Default validity of an amphora certificate: `[certificates] cert_validity_time` (30 days).
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(2_592_000);

/// Common name of the controller's client certificate.
pub const CONTROLLER_CN: &str = "OctaviaController";

/// Server CA certificate (PEM); `[haproxy_amphora] server_ca`.
pub const SERVER_CA_CERT_FILE: &str = "server_ca.pem";
/// Server CA private key (PEM, 0600).
pub const SERVER_CA_KEY_FILE: &str = "server_ca.key";
/// Client CA certificate (PEM); copied to every amphora as `client_ca.pem`.
pub const CLIENT_CA_CERT_FILE: &str = "client_ca.pem";
/// Client CA private key (PEM, 0600).
pub const CLIENT_CA_KEY_FILE: &str = "client_ca.key";
/// Controller client certificate followed by its key (PEM, 0600); `[haproxy_amphora] client_cert`.
pub const CONTROLLER_CERT_FILE: &str = "client.pem";

/// Boot-bundle file names, as an amphora finds them on its config drive.
pub const BOOT_SERVER_PEM: &str = "server.pem";
/// The client CA an agent verifies controllers with.
pub const BOOT_CLIENT_CA_PEM: &str = "client_ca.pem";
/// The agent's configuration file.
pub const BOOT_AGENT_CONF: &str = "amphora-agent.conf";

const ALL_FILES: [&str; 5] = [
    SERVER_CA_CERT_FILE,
    SERVER_CA_KEY_FILE,
    CLIENT_CA_CERT_FILE,
    CLIENT_CA_KEY_FILE,
    CONTROLLER_CERT_FILE,
];

const CA_VALIDITY: Duration = Duration::from_secs(7300 * 86_400);
const CONTROLLER_VALIDITY: Duration = Duration::from_secs(1825 * 86_400);
/// Certificates start a little in the past so that small clock skews do not reject them.
const BACKDATE: Duration = Duration::from_secs(300);
/// Longest validity we agree to issue (guards against overflow and typos).
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A secret string (private key PEM, configuration holding keys). `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// A certificate issued to one amphora.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmphoraCert {
    /// The certificate (PEM); CN = SAN DNS = the amphora id.
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: Secret,
    /// End of validity (UTC), for `amphora.cert_expiration`.
    pub expires_at: Timestamp,
}

impl AmphoraCert {
    /// The agent's `server.pem`: certificate followed by key.
    pub fn server_pem(&self) -> Secret {
        Secret(format!("{}{}", self.cert_pem, self.key_pem.expose()))
    }
}

/// One file of a [`BootBundle`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BootFile<'a> {
    /// File name (no directory), e.g. `server.pem`.
    pub name: &'static str,
    /// Contents; may be secret (never log them).
    pub contents: &'a str,
    /// Unix permission bits to create the file with.
    pub mode: u32,
}

impl fmt::Debug for BootFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootFile")
            .field("name", &self.name)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish_non_exhaustive()
    }
}

/// What an amphora receives at boot, like Octavia's config drive: its server certificate
/// and key, the client CA it verifies controllers with, and its agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootBundle {
    /// `server.pem`: the amphora certificate followed by its key.
    pub server_pem: Secret,
    /// `client_ca.pem`: the CA that signed the controller's client certificate.
    pub client_ca_pem: String,
    /// `amphora-agent.conf`: holds the heartbeat key, hence secret.
    pub agent_config: Secret,
    /// End of validity of the amphora certificate, for `amphora.cert_expiration`.
    pub cert_expires_at: Timestamp,
}

impl BootBundle {
    /// The files to write, with their modes (0600 for anything secret).
    pub fn files(&self) -> [BootFile<'_>; 3] {
        [
            BootFile {
                name: BOOT_SERVER_PEM,
                contents: self.server_pem.expose(),
                mode: 0o600,
            },
            BootFile {
                name: BOOT_CLIENT_CA_PEM,
                contents: &self.client_ca_pem,
                mode: 0o644,
            },
            BootFile {
                name: BOOT_AGENT_CONF,
                contents: self.agent_config.expose(),
                mode: 0o600,
            },
        ]
    }
}

/// The controller's identity towards agents: client certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerIdentity {
    /// The controller certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: Secret,
}

/// The identity of every CA file (modified time, size, inode; `None` when missing): the CA
/// notices a change — a rotation, a restore — with one `stat` per file.
type Stamp = Vec<Option<(std::time::SystemTime, u64, u64)>>;

fn stamp(dir: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    ALL_FILES
        .iter()
        .map(|name| {
            std::fs::metadata(dir.join(name)).ok().map(|m| {
                let modified = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                (modified, m.len(), m.ino())
            })
        })
        .collect()
}

/// The CA files as last read.
struct Loaded {
    stamp: Stamp,
    generation: u64,
    /// The server CA whose key is `server_ca.key`: it signs new amphora certificates.
    signer: Arc<(Certificate, KeyPair)>,
    /// Every server CA trusted (the signer and, during a rotation, the one it replaces).
    server_ca_pem: String,
    /// Every client CA agents are given (during a rotation: the new one and the old one).
    client_ca_pem: String,
    controller: ControllerIdentity,
}

/// The local CA: signs amphora certificates, holds the controller's client identity.
///
/// A CA file may hold several certificates, a *trust bundle* (during `octavia certs
/// rotate-ca` or `rotate-client`: the new CA and the old one); every one of them is trusted.
/// The CA that signs is the one whose public key is the key file's, wherever it sits in
/// the bundle. The files are read again, at the next use, whenever one of them changes, so a
/// long-running process follows a rotation without a restart; a change that does not load
/// (a half-restored directory) is logged and the files last read stay in use.
pub struct CertificateAuthority {
    dir: PathBuf,
    current: RwLock<Arc<Loaded>>,
    amphora_cert_validity: Duration,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn ca_error(context: &str, message: impl Into<String>) -> DriverError {
    DriverError::permanent(FaultOwner::Ours, context, message)
}

const INIT: &str = "initialise certificate authority";
const ISSUE: &str = "issue amphora certificate";

impl CertificateAuthority {
    /// Load the CA kept in `dir`, or create it there if `dir` holds none of its files.
    ///
    /// Refuses a directory holding only some of the files, or files that cannot be read or
    /// parsed, or keys that do not match a certificate of their bundle.
    pub fn init(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for name in ALL_FILES {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(_) => present.push(name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(name),
                Err(e) => {
                    return Err(ca_error(
                        INIT,
                        format!("cannot inspect {}: {e}", path.display()),
                    ))
                }
            }
        }
        if present.is_empty() {
            Self::create(&dir)?;
        } else if !missing.is_empty() {
            return Err(ca_error(
                INIT,
                format!(
                    "{} holds an incomplete certificate authority (present: {}; missing: {}); \
                     restore the missing files or remove the directory to create a new one \
                     (every existing amphora certificate becomes untrusted)",
                    dir.display(),
                    present.join(", "),
                    missing.join(", ")
                ),
            ));
        }
        let loaded = load(&dir, 0)?;
        tracing::debug!(dir = %dir.display(), "loaded local certificate authority");
        Ok(Self {
            dir,
            current: RwLock::new(Arc::new(loaded)),
            amphora_cert_validity: DEFAULT_CERT_VALIDITY,
        })
    }

    fn create(dir: &Path) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ca_error(INIT, format!("cannot create {}: {e}", dir.display())))?;

        let now = OffsetDateTime::now_utc();
        let (server_ca, server_ca_key) = new_root(CaRole::Server.common_name(), now)?;
        let (client_ca, client_ca_key) = new_root(CaRole::Client.common_name(), now)?;
        let controller = new_controller_identity(&client_ca, &client_ca_key, now)?;
        // Keys first, certificates after: an interrupted first start leaves files missing
        // (refused by `init`), never a certificate without its key.
        write_file(
            dir,
            SERVER_CA_KEY_FILE,
            &server_ca_key.serialize_pem(),
            0o600,
        )?;
        write_file(
            dir,
            CLIENT_CA_KEY_FILE,
            &client_ca_key.serialize_pem(),
            0o600,
        )?;
        write_file(dir, CONTROLLER_CERT_FILE, &controller, 0o600)?;
        write_file(dir, CLIENT_CA_CERT_FILE, &client_ca.pem(), 0o644)?;
        write_file(dir, SERVER_CA_CERT_FILE, &server_ca.pem(), 0o644)?;
        tracing::info!(dir = %dir.display(), "created local certificate authority");
        Ok(())
    }

    /// The files as they are now: read again if one of them changed since the last use.
    fn current(&self) -> Arc<Loaded> {
        let loaded = match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let now = stamp(&self.dir);
        if now == loaded.stamp {
            return loaded;
        }
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.stamp == now {
            return guard.clone();
        }
        let next = match load(&self.dir, guard.generation + 1) {
            Ok(fresh) => {
                tracing::info!(
                    dir = %self.dir.display(),
                    generation = fresh.generation,
                    "certificate authority files changed: reloaded"
                );
                fresh
            }
            Err(error) => {
                tracing::warn!(
                    dir = %self.dir.display(), %error,
                    "certificate authority files changed but do not load; still using those read before"
                );
                Loaded {
                    stamp: now,
                    generation: guard.generation,
                    signer: guard.signer.clone(),
                    server_ca_pem: guard.server_ca_pem.clone(),
                    client_ca_pem: guard.client_ca_pem.clone(),
                    controller: guard.controller.clone(),
                }
            }
        };
        *guard = Arc::new(next);
        guard.clone()
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts the reloads of the files (0 for the first read): what a user of
    /// [`CertificateAuthority::server_ca_pem`] compares to know it must read the trust again.
    pub fn generation(&self) -> u64 {
        self.current().generation
    }

    /// The server CA certificates (PEM, one or a bundle): what the controller verifies
    /// agents against.
    pub fn server_ca_pem(&self) -> String {
        self.current().server_ca_pem.clone()
    }

    /// The client CA certificates (PEM, one or a bundle): what agents verify the
    /// controller against.
    pub fn client_ca_pem(&self) -> String {
        self.current().client_ca_pem.clone()
    }

    /// The controller's client certificate and key.
    pub fn controller_identity(&self) -> ControllerIdentity {
        self.current().controller.clone()
    }

    /// Issue a certificate for one amphora: CN = SAN DNS = its id, serverAuth + clientAuth,
    /// valid from now for `validity` (see [`DEFAULT_CERT_VALIDITY`]), signed by the server
    /// CA of `server_ca.key`.
    pub fn issue_amphora_cert(
        &self,
        amphora_id: AmphoraId,
        validity: Duration,
    ) -> Result<AmphoraCert> {
        if validity.is_zero() || validity > MAX_VALIDITY {
            return Err(ca_error(
                ISSUE,
                format!(
                    "validity of {} s is out of range (1 s to {} s)",
                    validity.as_secs(),
                    MAX_VALIDITY.as_secs()
                ),
            ));
        }
        let name = amphora_id.to_string();
        let key = new_key(ISSUE)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named(&name);
        params.subject_alt_names =
            vec![SanType::DnsName(name.clone().try_into().map_err(|e| {
                ca_error(ISSUE, format!("amphora id is not a DNS name: {e}"))
            })?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now
            .checked_sub(time_duration(BACKDATE, ISSUE)?)
            .unwrap_or(now);
        params.not_after = now
            .checked_add(time_duration(validity, ISSUE)?)
            .ok_or_else(|| ca_error(ISSUE, "validity overflows the calendar"))?;
        let expires_at = to_timestamp(params.not_after, ISSUE)?;
        let loaded = self.current();
        let (signer, signer_key) = &*loaded.signer;
        let cert = params
            .signed_by(&key, signer, signer_key)
            .map_err(|e| ca_error(ISSUE, format!("cannot sign certificate: {e}")))?;
        tracing::info!(amphora_id = %amphora_id, expires_at = %expires_at, "issued amphora certificate");
        Ok(AmphoraCert {
            cert_pem: cert.pem(),
            key_pem: Secret(key.serialize_pem()),
            expires_at,
        })
    }

    /// How long the amphora certificates [`CertGenerator::amphora_certificate`] issues are
    /// valid (`[certificates] cert_validity_time`; default [`DEFAULT_CERT_VALIDITY`]).
    pub fn with_amphora_cert_validity(mut self, validity: Duration) -> Self {
        self.amphora_cert_validity = validity;
        self
    }

    /// The validity of the amphora certificates this CA issues through [`CertGenerator`].
    pub fn amphora_cert_validity(&self) -> Duration {
        self.amphora_cert_validity
    }

    /// Assemble the files an amphora gets at boot: `cert` (issued for it) as its server
    /// certificate, our client CA bundle, and `agent_config_toml` as its `amphora-agent.conf`.
    pub fn boot_bundle(&self, cert: &AmphoraCert, agent_config_toml: &str) -> BootBundle {
        BootBundle {
            server_pem: cert.server_pem(),
            client_ca_pem: self.client_ca_pem(),
            agent_config: Secret(agent_config_toml.to_string()),
            cert_expires_at: cert.expires_at,
        }
    }
}

/// Read and check every file of the CA in `dir`.
fn load(dir: &Path, generation: u64) -> Result<Loaded> {
    // Taken before reading: a change made while we read is seen at the next use.
    let stamp = stamp(dir);
    let server_ca_pem = read_file(dir, SERVER_CA_CERT_FILE, false)?;
    let server_key_pem = read_file(dir, SERVER_CA_KEY_FILE, true)?;
    let client_ca_pem = read_file(dir, CLIENT_CA_CERT_FILE, false)?;
    // The client CA key signs only controller certificates; it must be there and fit.
    let client_key_pem = read_file(dir, CLIENT_CA_KEY_FILE, true)?;
    let controller_pem = read_file(dir, CONTROLLER_CERT_FILE, true)?;

    let bad =
        |name: &str, what: String| ca_error(INIT, format!("{}: {what}", dir.join(name).display()));
    let server_ca_key = KeyPair::from_pem(&server_key_pem)
        .map_err(|e| bad(SERVER_CA_KEY_FILE, format!("not a usable private key: {e}")))?;
    let server_bundle = bundle_ders(&server_ca_pem).map_err(|e| bad(SERVER_CA_CERT_FILE, e))?;
    let signer_der =
        signer_in(&server_bundle, &server_ca_key).map_err(|e| bad(SERVER_CA_KEY_FILE, e))?;
    let server_ca = CertificateParams::from_ca_cert_der(&signer_der.clone().into())
        .and_then(|params| params.self_signed(&server_ca_key))
        .map_err(|e| bad(SERVER_CA_CERT_FILE, format!("not a usable CA: {e}")))?;

    let client_bundle = bundle_ders(&client_ca_pem).map_err(|e| bad(CLIENT_CA_CERT_FILE, e))?;
    let client_ca_key = KeyPair::from_pem(&client_key_pem)
        .map_err(|e| bad(CLIENT_CA_KEY_FILE, format!("not a usable private key: {e}")))?;
    signer_in(&client_bundle, &client_ca_key).map_err(|e| bad(CLIENT_CA_KEY_FILE, e))?;
    let (controller_cert_pem, controller_key_pem) =
        split_cert_and_key(&controller_pem).map_err(|e| bad(CONTROLLER_CERT_FILE, e))?;
    let controller_der = first_cert_der(&controller_cert_pem)
        .map_err(|e| bad(CONTROLLER_CERT_FILE, e))?
        .ok_or_else(|| bad(CONTROLLER_CERT_FILE, "holds no certificate".into()))?;
    let controller_key = KeyPair::from_pem(controller_key_pem.expose()).map_err(|e| {
        bad(
            CONTROLLER_CERT_FILE,
            format!("not a usable private key: {e}"),
        )
    })?;
    check_key_matches(&controller_der, &controller_key)
        .map_err(|e| bad(CONTROLLER_CERT_FILE, e))?;
    issuer_in(&controller_der, &client_bundle).map_err(|e| bad(CONTROLLER_CERT_FILE, e))?;
    if let Ok(expires) = cert_expiration(&controller_cert_pem) {
        if expires < chrono::Utc::now().naive_utc() {
            tracing::warn!(
                file = %dir.join(CONTROLLER_CERT_FILE).display(),
                expired_at = %expires,
                "controller client certificate has expired; agents will refuse it"
            );
        }
    }
    Ok(Loaded {
        stamp,
        generation,
        signer: Arc::new((server_ca, server_ca_key)),
        server_ca_pem,
        client_ca_pem,
        controller: ControllerIdentity {
            cert_pem: controller_cert_pem,
            key_pem: controller_key_pem,
        },
    })
}

/// The certificates (DER) of a PEM bundle; at least one.
fn bundle_ders(pem: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let ders = rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.map(|d| d.to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if ders.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(ders)
}

/// The certificate of `bundle` whose public key is `key`'s.
fn signer_in(bundle: &[Vec<u8>], key: &KeyPair) -> std::result::Result<Vec<u8>, String> {
    bundle
        .iter()
        .find(|der| check_key_matches(der, key).is_ok())
        .cloned()
        .ok_or_else(|| "private key matches no certificate of its CA file".into())
}

/// The certificate of `bundle` that signed `cert_der`.
fn issuer_in(cert_der: &[u8], bundle: &[Vec<u8>]) -> std::result::Result<Vec<u8>, String> {
    bundle
        .iter()
        .find(|issuer| check_signed_by(cert_der, issuer).is_ok())
        .cloned()
        .ok_or_else(|| format!("not signed by the client CA ({CLIENT_CA_CERT_FILE})"))
}

fn new_controller_identity(
    client_ca: &Certificate,
    client_ca_key: &KeyPair,
    now: OffsetDateTime,
) -> Result<String> {
    let controller_key = new_key(INIT)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = named(CONTROLLER_CN);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, now, CONTROLLER_VALIDITY, INIT)?;
    let controller_cert = params
        .signed_by(&controller_key, client_ca, client_ca_key)
        .map_err(|e| ca_error(INIT, format!("cannot sign controller certificate: {e}")))?;
    Ok(format!(
        "{}{}",
        controller_cert.pem(),
        controller_key.serialize_pem()
    ))
}

/// Which of the two roots a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaRole {
    /// The server CA: signs amphora certificates, trusted by the controller.
    Server,
    /// The client CA: signs the controller's certificate, trusted by agents.
    Client,
}

impl CaRole {
    /// Its certificate (bundle) file.
    pub fn cert_file(self) -> &'static str {
        match self {
            Self::Server => SERVER_CA_CERT_FILE,
            Self::Client => CLIENT_CA_CERT_FILE,
        }
    }

    /// Its private key file.
    pub fn key_file(self) -> &'static str {
        match self {
            Self::Server => SERVER_CA_KEY_FILE,
            Self::Client => CLIENT_CA_KEY_FILE,
        }
    }

    fn common_name(self) -> &'static str {
        match self {
            Self::Server => "Octavia amphora server CA",
            Self::Client => "Octavia controller client CA",
        }
    }

    /// Where a rotation keeps the new CA until it is the only one: `<role>_ca.next.pem`
    /// and `.key`.
    fn staged(self) -> (String, String) {
        let stem = self.cert_file().trim_end_matches(".pem");
        (format!("{stem}.next.pem"), format!("{stem}.next.key"))
    }
}

const ROTATE: &str = "rotate certificate authority";

/// Rotation, first step: create the new CA of `role` beside the files (`*.next.pem`,
/// `*.next.key`), or keep the one a previous, interrupted run created. Returns its PEM.
pub fn stage_new_ca(dir: &Path, role: CaRole) -> Result<String> {
    let (pem_name, key_name) = role.staged();
    if dir.join(&pem_name).exists() && dir.join(&key_name).exists() {
        let pem = read_file(dir, &pem_name, false)?;
        let key = read_file(dir, &key_name, true)?;
        let key = KeyPair::from_pem(&key)
            .map_err(|e| ca_error(ROTATE, format!("{key_name}: not a usable key: {e}")))?;
        let ders = bundle_ders(&pem).map_err(|e| ca_error(ROTATE, format!("{pem_name}: {e}")))?;
        signer_in(&ders, &key).map_err(|e| ca_error(ROTATE, format!("{key_name}: {e}")))?;
        return Ok(pem);
    }
    let (ca, key) = new_root(role.common_name(), OffsetDateTime::now_utc())?;
    // Key first: a certificate staged without its key would be created again, never used.
    write_file(dir, &key_name, &key.serialize_pem(), 0o600)?;
    write_file(dir, &pem_name, &ca.pem(), 0o644)?;
    tracing::info!(dir = %dir.display(), ?role, "staged a new certificate authority");
    Ok(ca.pem())
}

/// Rotation, second step: the staged CA joins the trust bundle (first) and its key becomes
/// the signing key. The bundle is written before the key, so a reader in between still
/// finds the old CA's key matching a certificate of the bundle. Running it again changes
/// nothing.
pub fn introduce_new_ca(dir: &Path, role: CaRole) -> Result<()> {
    let new_pem = stage_new_ca(dir, role)?;
    let (_, key_name) = role.staged();
    let key = read_file(dir, &key_name, true)?;
    let bundle = read_file(dir, role.cert_file(), false)?;
    let new_der = bundle_ders(&new_pem).map_err(|e| ca_error(ROTATE, e))?;
    let mut certs = pem_certs(&new_pem)?;
    for (der, pem) in bundle_ders(&bundle)
        .map_err(|e| ca_error(ROTATE, e))?
        .into_iter()
        .zip(pem_certs(&bundle)?)
    {
        if !new_der.contains(&der) {
            certs.push(pem);
        }
    }
    let joined = certs.concat();
    if joined != bundle {
        write_file(dir, role.cert_file(), &joined, 0o644)?;
    }
    if read_file(dir, role.key_file(), true)? != key {
        write_file(dir, role.key_file(), &key, 0o600)?;
    }
    Ok(())
}

/// Rotation, last step: only the staged (now signing) CA stays in the trust bundle, and
/// the staging files go. Running it again changes nothing.
pub fn retire_old_ca(dir: &Path, role: CaRole) -> Result<()> {
    let (pem_name, key_name) = role.staged();
    let key_pem = read_file(dir, role.key_file(), true)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        ca_error(
            ROTATE,
            format!("{}: not a usable key: {e}", role.key_file()),
        )
    })?;
    let bundle = read_file(dir, role.cert_file(), false)?;
    let ders = bundle_ders(&bundle).map_err(|e| ca_error(ROTATE, e))?;
    let signer = signer_in(&ders, &key).map_err(|e| ca_error(ROTATE, e))?;
    let only = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", signer),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    if only != bundle {
        write_file(dir, role.cert_file(), &only, 0o644)?;
    }
    for name in [pem_name, key_name] {
        match std::fs::remove_file(dir.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ca_error(ROTATE, format!("cannot remove {name}: {e}"))),
        }
    }
    Ok(())
}

/// Rotation of the client CA: a new controller certificate signed by the client CA of
/// `client_ca.key`, unless `client.pem` is already one. Returns whether it wrote one.
pub fn reissue_controller_cert(dir: &Path) -> Result<bool> {
    let key_pem = read_file(dir, CLIENT_CA_KEY_FILE, true)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        ca_error(
            ROTATE,
            format!("{CLIENT_CA_KEY_FILE}: not a usable key: {e}"),
        )
    })?;
    let bundle = read_file(dir, CLIENT_CA_CERT_FILE, false)?;
    let signer_der = signer_in(
        &bundle_ders(&bundle).map_err(|e| ca_error(ROTATE, e))?,
        &key,
    )
    .map_err(|e| ca_error(ROTATE, e))?;
    let current = read_file(dir, CONTROLLER_CERT_FILE, true)?;
    let (cert_pem, _) = split_cert_and_key(&current).map_err(|e| ca_error(ROTATE, e))?;
    if let Some(der) = first_cert_der(&cert_pem).map_err(|e| ca_error(ROTATE, e))? {
        if check_signed_by(&der, &signer_der).is_ok() {
            return Ok(false);
        }
    }
    let signer = CertificateParams::from_ca_cert_der(&signer_der.into())
        .and_then(|params| params.self_signed(&key))
        .map_err(|e| ca_error(ROTATE, format!("client CA not usable: {e}")))?;
    let identity = new_controller_identity(&signer, &key, OffsetDateTime::now_utc())?;
    write_file(dir, CONTROLLER_CERT_FILE, &identity, 0o600)?;
    Ok(true)
}

/// Whether `cert_pem` (the first certificate) was signed by the first certificate of
/// `issuer_pem`.
pub fn signed_by(cert_pem: &str, issuer_pem: &str) -> bool {
    match (first_cert_der(cert_pem), first_cert_der(issuer_pem)) {
        (Ok(Some(cert)), Ok(Some(issuer))) => check_signed_by(&cert, &issuer).is_ok(),
        _ => false,
    }
}

/// Each certificate of a PEM bundle, as its own PEM text.
pub fn pem_certs(bundle: &str) -> Result<Vec<String>> {
    const CTX: &str = "read certificate bundle";
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(pem::parse_many(bundle)
        .map_err(|e| ca_error(CTX, format!("invalid PEM: {e}")))?
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| pem::encode_config(&b, config))
        .collect())
}

/// Issues the server certificates of amphorae (Octavia's `cert_generator`): the flows ask
/// for one before building an amphora, and again to renew it before it expires.
pub trait CertGenerator: Send + Sync {
    /// A new certificate for `amphora_id` (CN = SAN DNS = the id), valid from now.
    fn amphora_certificate(&self, amphora_id: AmphoraId) -> Result<AmphoraCert>;
}

impl CertGenerator for CertificateAuthority {
    fn amphora_certificate(&self, amphora_id: AmphoraId) -> Result<AmphoraCert> {
        self.issue_amphora_cert(amphora_id, self.amphora_cert_validity)
    }
}

/// End of validity of the first certificate in `pem` (UTC), e.g. for `amphora.cert_expiration`.
pub fn cert_expiration(pem: &str) -> Result<Timestamp> {
    const CTX: &str = "read certificate expiration";
    let der = first_cert_der(pem)
        .map_err(|e| ca_error(CTX, e))?
        .ok_or_else(|| ca_error(CTX, "no certificate found"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| ca_error(CTX, format!("invalid certificate: {e}")))?;
    let secs = cert.validity().not_after.timestamp();
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.naive_utc())
        .ok_or_else(|| ca_error(CTX, "expiration out of range"))
}

/// Split a PEM holding certificates and one private key (Octavia's `client.pem` and
/// `server.pem` format) into the certificates' PEM and the key.
pub fn split_cert_and_key(text: &str) -> std::result::Result<(String, Secret), String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("invalid PEM: {e}"))?;
    let (certs, rest): (Vec<_>, Vec<_>) =
        blocks.into_iter().partition(|b| b.tag() == "CERTIFICATE");
    let mut keys = rest
        .into_iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"));
    let key = keys.next().ok_or("holds no private key")?;
    if keys.next().is_some() {
        return Err("holds more than one private key".into());
    }
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok((
        pem::encode_many_config(&certs, config),
        Secret(pem::encode_config(&key, config)),
    ))
}

fn first_cert_der(pem: &str) -> std::result::Result<Option<Vec<u8>>, String> {
    match rustls_pemfile::certs(&mut pem.as_bytes()).next() {
        None => Ok(None),
        Some(Ok(der)) => Ok(Some(der.to_vec())),
        Some(Err(e)) => Err(format!("invalid PEM: {e}")),
    }
}

fn check_key_matches(cert_der: &[u8], key: &KeyPair) -> std::result::Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("invalid certificate: {e}"))?;
    if cert.public_key().raw != key.public_key_der().as_slice() {
        return Err("private key does not match its certificate".into());
    }
    Ok(())
}

fn check_signed_by(cert_der: &[u8], issuer_der: &[u8]) -> std::result::Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("invalid certificate: {e}"))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| format!("invalid issuer certificate: {e}"))?;
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(|_| format!("not signed by the client CA ({CLIENT_CA_CERT_FILE})"))
}

fn new_key(context: &str) -> Result<KeyPair> {
    KeyPair::generate().map_err(|e| ca_error(context, format!("cannot generate key: {e}")))
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "octavia-rs");
    dn.push(DnType::CommonName, cn);
    dn
}

fn new_root(cn: &str, now: OffsetDateTime) -> Result<(Certificate, KeyPair)> {
    let key = new_key(INIT)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = named(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, now, CA_VALIDITY, INIT)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| ca_error(INIT, format!("cannot create {cn}: {e}")))?;
    Ok((cert, key))
}

fn set_validity(
    params: &mut CertificateParams,
    now: OffsetDateTime,
    validity: Duration,
    context: &str,
) -> Result<()> {
    params.not_before = now
        .checked_sub(time_duration(BACKDATE, context)?)
        .unwrap_or(now);
    params.not_after = now
        .checked_add(time_duration(validity, context)?)
        .ok_or_else(|| ca_error(context, "validity overflows the calendar"))?;
    Ok(())
}

fn time_duration(d: Duration, context: &str) -> Result<time::Duration> {
    time::Duration::try_from(d).map_err(|_| ca_error(context, "duration out of range"))
}

fn to_timestamp(t: OffsetDateTime, context: &str) -> Result<Timestamp> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
        .map(|d| d.naive_utc())
        .ok_or_else(|| ca_error(context, "time out of range"))
}

/// A positive 128-bit serial from a random UUID (as Octavia's generator does).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    // Clear the top bit so the DER INTEGER stays 16 bytes and positive.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode of `open` is filtered by the umask; make it exact.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ca_error(INIT, format!("cannot write {}: {e}", path.display()))
    })
}

fn read_file(dir: &Path, name: &str, secret: bool) -> Result<String> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ca_error(INIT, format!("cannot read {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Err(ca_error(
            INIT,
            format!("{} is empty (interrupted write?)", path.display()),
        ));
    }
    if secret {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = %format_args!("{:o}", meta.permissions().mode() & 0o777),
                    "private key file is readable by group or others; expected 0600"
                );
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("-----BEGIN PRIVATE KEY-----");
        assert_eq!(format!("{s:?}"), "***");
        let bundle = BootBundle {
            server_pem: Secret::new("cert+key"),
            client_ca_pem: "ca".into(),
            agent_config: Secret::new("heartbeat_key = 'k'"),
            cert_expires_at: chrono::DateTime::from_timestamp(0, 0).unwrap().naive_utc(),
        };
        let dbg = format!("{bundle:?} {:?}", bundle.files());
        assert!(
            !dbg.contains("cert+key") && !dbg.contains("heartbeat_key"),
            "{dbg}"
        );
    }

    #[test]
    fn split_requires_cert_and_key() {
        assert!(split_cert_and_key("").is_err());
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path()).unwrap();
        let id = ca.controller_identity();
        let (certs, key) =
            split_cert_and_key(&format!("{}{}", id.cert_pem, id.key_pem.expose())).unwrap();
        assert_eq!(certs, id.cert_pem);
        assert_eq!(key, id.key_pem);
        assert!(split_cert_and_key(&id.cert_pem).is_err());
    }

    fn ders(pem: &str) -> Vec<Vec<u8>> {
        bundle_ders(pem).unwrap()
    }

    #[test]
    fn server_rotation_trusts_both_then_only_the_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path()).unwrap();
        let id = AmphoraId(uuid::Uuid::new_v4());
        let old_pem = ca.server_ca_pem();
        let before = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
        let generation = ca.generation();

        let staged = stage_new_ca(dir.path(), CaRole::Server).unwrap();
        // Staging twice keeps the first new CA (a resumed run must not make a third).
        assert_eq!(stage_new_ca(dir.path(), CaRole::Server).unwrap(), staged);
        assert_eq!(ca.server_ca_pem(), old_pem, "staging changes no trust");

        introduce_new_ca(dir.path(), CaRole::Server).unwrap();
        introduce_new_ca(dir.path(), CaRole::Server).unwrap();
        let bundle = ca.server_ca_pem();
        assert!(ca.generation() > generation, "the running CA reloads");
        assert_eq!(ders(&bundle).len(), 2, "old + new, once each");
        assert_eq!(ders(&bundle)[0], ders(&staged)[0], "the new CA first");
        assert!(ders(&bundle).contains(&ders(&old_pem)[0]));
        let after = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
        assert!(
            signed_by(&after.cert_pem, &staged),
            "new certificates come from the new CA"
        );
        assert!(!signed_by(&after.cert_pem, &old_pem));
        assert!(signed_by(&before.cert_pem, &old_pem));
        // A second process opening the directory now sees the same bundle and signer.
        let other = CertificateAuthority::init(dir.path()).unwrap();
        assert_eq!(other.server_ca_pem(), bundle);
        let third = other.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
        assert!(signed_by(&third.cert_pem, &staged));

        retire_old_ca(dir.path(), CaRole::Server).unwrap();
        retire_old_ca(dir.path(), CaRole::Server).unwrap();
        assert_eq!(
            ders(&ca.server_ca_pem()),
            ders(&staged),
            "only the new CA is left"
        );
        assert!(!dir.path().join("server_ca.next.pem").exists());
        assert!(!dir.path().join("server_ca.next.key").exists());
        CertificateAuthority::init(dir.path()).unwrap();
    }

    #[test]
    fn a_bundle_written_before_its_key_still_loads_with_the_old_signer() {
        // introduce writes the bundle, then the key: a reader in between must load.
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path()).unwrap();
        let old_pem = ca.server_ca_pem();
        let staged = stage_new_ca(dir.path(), CaRole::Server).unwrap();
        write_file(
            dir.path(),
            SERVER_CA_CERT_FILE,
            &format!("{staged}{old_pem}"),
            0o644,
        )
        .unwrap();
        let between = CertificateAuthority::init(dir.path()).unwrap();
        let id = AmphoraId(uuid::Uuid::new_v4());
        let cert = between
            .issue_amphora_cert(id, DEFAULT_CERT_VALIDITY)
            .unwrap();
        assert!(signed_by(&cert.cert_pem, &old_pem));
        // A key matching no certificate of the bundle is refused, and a running CA keeps
        // what it had.
        let (_, stray) = new_root("stray", OffsetDateTime::now_utc()).unwrap();
        write_file(
            dir.path(),
            SERVER_CA_KEY_FILE,
            &stray.serialize_pem(),
            0o600,
        )
        .unwrap();
        let refused = CertificateAuthority::init(dir.path())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("matches no certificate"), "{refused}");
        assert!(between
            .issue_amphora_cert(id, DEFAULT_CERT_VALIDITY)
            .is_ok());
    }

    #[test]
    fn client_rotation_reissues_the_controller_certificate_once() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path()).unwrap();
        let old_ca = ca.client_ca_pem();
        let old_id = ca.controller_identity();
        introduce_new_ca(dir.path(), CaRole::Client).unwrap();
        let bundle = ca.client_ca_pem();
        assert_eq!(ders(&bundle).len(), 2);
        assert_eq!(
            ca.controller_identity(),
            old_id,
            "the controller keeps its certificate"
        );
        let id = AmphoraId(uuid::Uuid::new_v4());
        let cert = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
        assert_eq!(
            ca.boot_bundle(&cert, "").client_ca_pem,
            bundle,
            "new amphorae trust both"
        );

        assert!(reissue_controller_cert(dir.path()).unwrap());
        assert!(!reissue_controller_cert(dir.path()).unwrap(), "done once");
        let new_id = ca.controller_identity();
        assert_ne!(new_id, old_id);
        let new_ca = &pem_certs(&bundle).unwrap()[0];
        assert!(signed_by(&new_id.cert_pem, new_ca));
        assert!(!signed_by(&new_id.cert_pem, &old_ca));

        retire_old_ca(dir.path(), CaRole::Client).unwrap();
        assert_eq!(ders(&ca.client_ca_pem()), ders(new_ca));
        assert_eq!(ca.controller_identity(), new_id);
        let other = CertificateAuthority::init(dir.path()).unwrap();
        assert_eq!(other.controller_identity(), new_id);
    }
}

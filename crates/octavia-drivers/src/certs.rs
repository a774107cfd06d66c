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

/// The local CA: signs amphora certificates, holds the controller's client identity.
pub struct CertificateAuthority {
    dir: PathBuf,
    server_ca: Certificate,
    server_ca_key: KeyPair,
    server_ca_pem: String,
    client_ca_pem: String,
    controller: ControllerIdentity,
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
    /// parsed, or keys that do not match their certificates.
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
            Self::create(dir)
        } else if missing.is_empty() {
            Self::load(dir)
        } else {
            Err(ca_error(
                INIT,
                format!(
                    "{} holds an incomplete certificate authority (present: {}; missing: {}); \
                     restore the missing files or remove the directory to create a new one \
                     (every existing amphora certificate becomes untrusted)",
                    dir.display(),
                    present.join(", "),
                    missing.join(", ")
                ),
            ))
        }
    }

    fn create(dir: PathBuf) -> Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ca_error(INIT, format!("cannot create {}: {e}", dir.display())))?;

        let now = OffsetDateTime::now_utc();
        let (server_ca, server_ca_key) = new_root("Octavia amphora server CA", now)?;
        let (client_ca, client_ca_key) = new_root("Octavia controller client CA", now)?;

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
            .signed_by(&controller_key, &client_ca, &client_ca_key)
            .map_err(|e| ca_error(INIT, format!("cannot sign controller certificate: {e}")))?;
        let controller = ControllerIdentity {
            cert_pem: controller_cert.pem(),
            key_pem: Secret(controller_key.serialize_pem()),
        };

        let server_ca_pem = server_ca.pem();
        let client_ca_pem = client_ca.pem();
        // Keys first, certificates after: an interrupted first start leaves files missing
        // (refused by `init`), never a certificate without its key.
        write_file(
            &dir,
            SERVER_CA_KEY_FILE,
            &server_ca_key.serialize_pem(),
            0o600,
        )?;
        write_file(
            &dir,
            CLIENT_CA_KEY_FILE,
            &client_ca_key.serialize_pem(),
            0o600,
        )?;
        write_file(
            &dir,
            CONTROLLER_CERT_FILE,
            &format!("{}{}", controller.cert_pem, controller.key_pem.expose()),
            0o600,
        )?;
        write_file(&dir, CLIENT_CA_CERT_FILE, &client_ca_pem, 0o644)?;
        write_file(&dir, SERVER_CA_CERT_FILE, &server_ca_pem, 0o644)?;
        tracing::info!(dir = %dir.display(), "created local certificate authority");

        Ok(Self {
            dir,
            server_ca,
            server_ca_key,
            server_ca_pem,
            client_ca_pem,
            controller,
            amphora_cert_validity: DEFAULT_CERT_VALIDITY,
        })
    }

    fn load(dir: PathBuf) -> Result<Self> {
        let server_ca_pem = read_file(&dir, SERVER_CA_CERT_FILE, false)?;
        let server_key_pem = read_file(&dir, SERVER_CA_KEY_FILE, true)?;
        let client_ca_pem = read_file(&dir, CLIENT_CA_CERT_FILE, false)?;
        // The client CA key is not used at run time; it must still be there and fit.
        let client_key_pem = read_file(&dir, CLIENT_CA_KEY_FILE, true)?;
        let controller_pem = read_file(&dir, CONTROLLER_CERT_FILE, true)?;

        let bad = |name: &str, what: String| {
            ca_error(INIT, format!("{}: {what}", dir.join(name).display()))
        };
        let server_ca_key = KeyPair::from_pem(&server_key_pem)
            .map_err(|e| bad(SERVER_CA_KEY_FILE, format!("not a usable private key: {e}")))?;
        let server_ca_der = first_cert_der(&server_ca_pem)
            .map_err(|e| bad(SERVER_CA_CERT_FILE, e))?
            .ok_or_else(|| bad(SERVER_CA_CERT_FILE, "holds no certificate".into()))?;
        check_key_matches(&server_ca_der, &server_ca_key)
            .map_err(|e| bad(SERVER_CA_KEY_FILE, e))?;
        let server_ca = CertificateParams::from_ca_cert_pem(&server_ca_pem)
            .and_then(|params| params.self_signed(&server_ca_key))
            .map_err(|e| bad(SERVER_CA_CERT_FILE, format!("not a usable CA: {e}")))?;

        let client_ca_der = first_cert_der(&client_ca_pem)
            .map_err(|e| bad(CLIENT_CA_CERT_FILE, e))?
            .ok_or_else(|| bad(CLIENT_CA_CERT_FILE, "holds no certificate".into()))?;
        let client_ca_key = KeyPair::from_pem(&client_key_pem)
            .map_err(|e| bad(CLIENT_CA_KEY_FILE, format!("not a usable private key: {e}")))?;
        check_key_matches(&client_ca_der, &client_ca_key)
            .map_err(|e| bad(CLIENT_CA_KEY_FILE, e))?;
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
        check_signed_by(&controller_der, &client_ca_der)
            .map_err(|e| bad(CONTROLLER_CERT_FILE, e))?;
        if let Ok(expires) = cert_expiration(&controller_cert_pem) {
            if expires < chrono::Utc::now().naive_utc() {
                tracing::warn!(
                    file = %dir.join(CONTROLLER_CERT_FILE).display(),
                    expired_at = %expires,
                    "controller client certificate has expired; agents will refuse it"
                );
            }
        }
        tracing::debug!(dir = %dir.display(), "loaded local certificate authority");

        Ok(Self {
            dir,
            server_ca,
            server_ca_key,
            server_ca_pem,
            client_ca_pem,
            controller: ControllerIdentity {
                cert_pem: controller_cert_pem,
                key_pem: controller_key_pem,
            },
            amphora_cert_validity: DEFAULT_CERT_VALIDITY,
        })
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server CA certificate (PEM): what the controller verifies agents against.
    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca_pem
    }

    /// The client CA certificate (PEM): what agents verify the controller against.
    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca_pem
    }

    /// The controller's client certificate and key.
    pub fn controller_identity(&self) -> &ControllerIdentity {
        &self.controller
    }

    /// Issue a certificate for one amphora: CN = SAN DNS = its id, serverAuth + clientAuth,
    /// valid from now for `validity` (see [`DEFAULT_CERT_VALIDITY`]).
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
        let cert = params
            .signed_by(&key, &self.server_ca, &self.server_ca_key)
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
    /// certificate, our client CA, and `agent_config_toml` as its `amphora-agent.conf`.
    pub fn boot_bundle(&self, cert: &AmphoraCert, agent_config_toml: &str) -> BootBundle {
        BootBundle {
            server_pem: cert.server_pem(),
            client_ca_pem: self.client_ca_pem.clone(),
            agent_config: Secret(agent_config_toml.to_string()),
            cert_expires_at: cert.expires_at,
        }
    }
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
}

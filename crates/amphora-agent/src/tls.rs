//! Mutual TLS for the agent's REST server: the server certificate (swappable at run time by
//! `PUT /1.0/certificate`), mandatory client certificates signed by the client CA bundle
//! (swappable at run time by `PUT /1.0/client_ca`) and the TLS accept loop.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsProtocol;
use crate::error::{AgentError, Result};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM bundle holding a certificate chain followed by (or preceded by) its private key.
pub fn certified_key_from_pem(pem: &[u8]) -> Result<Arc<CertifiedKey>> {
    let mut reader = BufReader::new(pem);
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Tls(format!("read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(AgentError::Tls("no certificate in pem".into()));
    }
    let mut reader = BufReader::new(pem);
    let key = rustls_pemfile::private_key(&mut reader)
        .map_err(|e| AgentError::Tls(format!("read private key: {e}")))?
        .ok_or_else(|| AgentError::Tls("no private key in pem".into()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| AgentError::Tls(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified
        .keys_match()
        .map_err(|e| AgentError::Tls(format!("certificate does not match key: {e}")))?;
    Ok(Arc::new(certified))
}

/// The server certificate in use; replaced atomically by `PUT /1.0/certificate`.
#[derive(Debug)]
pub struct ServerCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Starts with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(key),
        })
    }

    /// New handshakes use `key` from now on; established connections are unaffected.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A verifier requiring client certificates signed by one of the CAs of a PEM bundle.
pub fn client_verifier_from_pem(pem: &[u8]) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(pem)) {
        let cert = cert.map_err(|e| AgentError::Tls(format!("read client ca: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| AgentError::Tls(format!("invalid client ca certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(AgentError::Tls("no certificate in client ca".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| AgentError::Tls(format!("client verifier: {e}")))
}

/// The client CA bundle in use; replaced atomically by `PUT /1.0/client_ca`. New handshakes
/// are verified against the new bundle; established connections are unaffected.
///
/// It hints no CA names to clients (an empty list, on which TLS clients send the certificate
/// they have), so that the hint cannot go stale while the bundle changes.
#[derive(Debug)]
pub struct ClientCa {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl ClientCa {
    /// Starts with the bundle in the file `client_ca`.
    pub fn from_file(client_ca: &Path) -> Result<Arc<Self>> {
        let pem =
            std::fs::read(client_ca).map_err(|e| AgentError::io("read client ca", client_ca, e))?;
        let verifier = client_verifier_from_pem(&pem).map_err(|e| match e {
            AgentError::Tls(m) => AgentError::Tls(format!("{m} ({})", client_ca.display())),
            other => other,
        })?;
        Ok(Arc::new(Self {
            current: RwLock::new(verifier),
        }))
    }

    /// New handshakes are verified with `verifier` from now on.
    pub fn replace(&self, verifier: Arc<dyn ClientCertVerifier>) {
        match self.current.write() {
            Ok(mut guard) => *guard = verifier,
            Err(poisoned) => *poisoned.into_inner() = verifier,
        }
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ClientCertVerifier for ClientCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// Builds the rustls server configuration: client certificates signed by a CA of
/// `client_ca` are required, the server certificate comes from `cert`.
pub fn server_config(
    client_ca: Arc<ClientCa>,
    cert: Arc<ServerCertificate>,
    protocol: TlsProtocol,
) -> Result<Arc<ServerConfig>> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match protocol {
        TlsProtocol::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsProtocol::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| AgentError::Tls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(client_ca)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose accepted connections have finished the mutual-TLS handshake.
/// Handshakes run concurrently, so a slow or hostile client cannot stall others.
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "tls handshake refused");
                        }
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local_addr,
            accepted,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(pair) => pair,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

//! End-to-end tests of the amphora agent: mutual TLS, the real HAProxy (config validation,
//! start, seamless reload under traffic, stop, delete), certificates, heartbeats on a loopback
//! UDP socket, the plug endpoints inside a network namespace the test creates, keepalived (VRRP)
//! inside such a namespace, and the metrics proxy of PROMETHEUS listeners over HAProxy's real
//! exporter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amphora_agent::{AgentConfig, RunningAgent};
use amphora_proto::heartbeat::{self, HeartbeatMessage};
use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use octavia_test_support::{eventually, require};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

const HAPROXY: &str = require::HAPROXY;

/// The keepalived the agents run: the machine's, else Debian's path (tests that need it are
/// skipped where it is missing).
fn keepalived_cmd() -> PathBuf {
    require::keepalived_bin().unwrap_or_else(|| PathBuf::from("/usr/sbin/keepalived"))
}

/// Whether the agent's HAProxy tests can run (see [`require::require`]).
fn haproxy_available() -> bool {
    require::require(
        "the agent's HAProxy tests",
        &[("HAProxy at /usr/sbin/haproxy", require::exists(HAPROXY))],
    )
}

// ---------------------------------------------------------------------------------------------
// helpers

fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-signed ca");
        Self { cert, key }
    }

    /// A leaf certificate with CN/SAN `name`; returns (cert pem, key pem).
    fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A client identity and the trust anchors for calling one agent.
#[derive(Clone)]
struct Client {
    amphora_id: String,
    server_ca: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("pem certs")
}

fn pem_key(pem: &str) -> PrivateKeyDer<'static> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .expect("pem key")
        .expect("a key")
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    peer_cert: Vec<u8>,
}

impl Response {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not json ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn etag(&self) -> String {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

impl Client {
    async fn call(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Response> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.server_ca {
            roots.add(cert.clone())?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(self.amphora_id.clone())?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("tls handshake")?;
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.amphora_id)
            .body(Full::new(body.into()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            headers,
            body,
            peer_cert,
        })
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Response {
        self.call(addr, Method::GET, path, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
    }

    async fn put(&self, addr: SocketAddr, path: &str, body: impl Into<Bytes>) -> Response {
        self.call(addr, Method::PUT, path, body)
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e:#}"))
    }

    async fn delete(&self, addr: SocketAddr, path: &str) -> Response {
        self.call(addr, Method::DELETE, path, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e:#}"))
    }

    async fn post(&self, addr: SocketAddr, path: &str, body: serde_json::Value) -> Response {
        self.call(addr, Method::POST, path, body.to_string())
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:#}"))
    }
}

/// Certificates for one amphora: a server CA, a client CA, the agent's server PEM and a
/// controller client identity.
struct Pki {
    amphora_id: String,
    server_ca: Ca,
    client_ca: Ca,
    server_pem: String,
}

impl Pki {
    fn new() -> Self {
        let amphora_id = unique_id();
        let server_ca = Ca::new("test server ca");
        let client_ca = Ca::new("test client ca");
        let (cert, key) = server_ca.issue(&amphora_id, ExtendedKeyUsagePurpose::ServerAuth);
        Self {
            server_pem: format!("{cert}{key}"),
            amphora_id,
            server_ca,
            client_ca,
        }
    }

    fn client_signed_by(&self, ca: &Ca) -> Client {
        let (cert, key) = ca.issue("OctaviaController", ExtendedKeyUsagePurpose::ClientAuth);
        Client {
            amphora_id: self.amphora_id.clone(),
            server_ca: pem_certs(&self.server_ca.pem()),
            identity: Some((pem_certs(&cert), Arc::new(pem_key(&key)))),
        }
    }

    fn client(&self) -> Client {
        self.client_signed_by(&self.client_ca)
    }
}

/// Kills every HAProxy started under `base` (the master's process group), also on failure.
struct HaproxyGuard {
    base: PathBuf,
}

impl Drop for HaproxyGuard {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pidfile = entry.path().join(format!("{name}.pid"));
            let Ok(text) = std::fs::read_to_string(&pidfile) else {
                continue;
            };
            if let Some(pid) = text
                .trim()
                .parse::<i32>()
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// A temporary amphora: directories, config file and the certificates in place.
struct Amphora {
    dir: tempfile::TempDir,
    pki: Pki,
    config_path: PathBuf,
}

impl Amphora {
    fn new(bind: SocketAddr, health: &str) -> Self {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("server.pem"), &pki.server_pem).expect("server pem");
        std::fs::write(root.join("client_ca.pem"), pki.client_ca.pem()).expect("client ca");
        let config = format!(
            r#"
[amphora_agent]
agent_server_cert = "{root}/server.pem"
agent_server_ca = "{root}/client_ca.pem"
amphora_id = "{id}"
agent_request_read_timeout = 60
# The tests' agents share the host's network namespace: leave its ping setting alone.
allow_unprivileged_ping = false
# ... and its port 9102: no metrics proxy (the test of the proxy sets its own).
prometheus_proxy_bind = ""

[haproxy_amphora]
base_path = "{root}/lib"
base_cert_dir = "{root}/lib/certs"
bind_host = "{host}"
bind_port = {port}
haproxy_cmd = "{HAPROXY}"
keepalived_cmd = "{keepalived}"

[health_manager]
{health}
"#,
            root = root.display(),
            keepalived = keepalived_cmd().display(),
            id = pki.amphora_id,
            host = bind.ip(),
            port = bind.port(),
        );
        let config_path = root.join("amphora-agent.toml");
        std::fs::write(&config_path, config).expect("config");
        Self {
            dir,
            pki,
            config_path,
        }
    }

    fn base(&self) -> PathBuf {
        self.dir.path().join("lib")
    }

    fn guard(&self) -> HaproxyGuard {
        HaproxyGuard { base: self.base() }
    }

    async fn start(&self) -> RunningAgent {
        let config = AgentConfig::load(&self.config_path).expect("load config");
        amphora_agent::start(config, Some(self.config_path.clone()))
            .await
            .expect("agent starts")
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// A tiny HTTP server on loopback answering every request with `200 hello`.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// One request on a new connection; returns the response head and body.
async fn http_get(addr: SocketAddr) -> anyhow::Result<String> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), io).await??;
    if !text.starts_with("HTTP/1.1 200") || !text.ends_with("hello") {
        bail!("unexpected response: {text:?}");
    }
    Ok(text)
}

struct LbIds {
    lb: String,
    listener: String,
    pool: String,
    members: [String; 3],
}

impl LbIds {
    fn new() -> Self {
        Self {
            lb: unique_id(),
            listener: unique_id(),
            pool: unique_id(),
            members: [unique_id(), unique_id(), unique_id()],
        }
    }
}

/// A configuration shaped like the renderer's: stats socket with fd transfer, one frontend per
/// listener, one backend `<pool>:<listener>`. Members: [0] the backend (UP), [1] a closed port
/// (DOWN once checked), [2] the backend with weight 0 (DRAIN). `generation` is echoed in an
/// `X-Gen` response header so the test can see a reload take effect.
fn haproxy_config(
    base: &Path,
    ids: &LbIds,
    port: u16,
    backend: SocketAddr,
    dead: u16,
    generation: u32,
) -> String {
    format!(
        "global\n\
         \x20   stats socket {base}/{lb}.sock mode 0666 level admin expose-fd listeners\n\
         \x20   maxconn 1000\n\
         \x20   server-state-file {base}/{lb}/servers-state\n\
         defaults\n\
         \x20   mode http\n\
         \x20   load-server-state-from-file global\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         frontend {listener}\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   maxconn 1000\n\
         \x20   http-response set-header X-Gen {generation}\n\
         \x20   default_backend {pool}:{listener}\n\
         backend {pool}:{listener}\n\
         \x20   balance roundrobin\n\
         \x20   server {m0} {backend} weight 1 check inter 200ms fall 1 rise 1\n\
         \x20   server {m1} 127.0.0.1:{dead} weight 1 check inter 200ms fall 1 rise 1\n\
         \x20   server {m2} {backend} weight 0 check inter 200ms fall 1 rise 1\n",
        base = base.display(),
        lb = ids.lb,
        listener = ids.listener,
        pool = ids.pool,
        m0 = ids.members[0],
        m1 = ids.members[1],
        m2 = ids.members[2],
    )
}

/// Whether `member` is in maintenance on the worker answering on `socket` (bit 0x01 of
/// `srv_admin_state` in `show servers state`).
async fn in_maintenance(socket: &Path, member: &str) -> bool {
    let state = amphora_agent::stats::show(socket, "show servers state")
        .await
        .expect("show servers state");
    let row = state
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(3) == Some(&member))
        .unwrap_or_else(|| panic!("{member} not in show servers state:\n{state}"));
    let admin: u32 = row[6].parse().expect("srv_admin_state is a number");
    admin & 0x01 != 0
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_is_required_and_server_certificate_rotates_live() {
    let amp = Amphora::new(loopback(), "");
    let running = amp.start().await;
    let addr = running.local_addr;
    let client = amp.pki.client();
    assert_eq!(
        running.metrics_proxy_addr, None,
        "disabled by an empty bind"
    );

    let root = client.get(addr, "/").await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.json(), serde_json::json!({"api_version": "1.0"}));
    let info = client.get(addr, "/1.0/info").await;
    assert_eq!(info.status, StatusCode::OK);
    let info = info.json();
    assert_eq!(info["api_version"], "1.0");
    assert!(info["hostname"].is_string(), "{info}");
    let missing = client.get(addr, "/1.0/nothing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        serde_json::json!({"error": "Not Found", "http_code": 404})
    );

    // No client certificate: refused.
    let anonymous = Client {
        identity: None,
        ..client.clone()
    };
    assert!(
        anonymous
            .call(addr, Method::GET, "/", Bytes::new())
            .await
            .is_err(),
        "a client without certificate must be refused"
    );
    // A client certificate from another CA: refused.
    let stranger = amp.pki.client_signed_by(&Ca::new("other ca"));
    assert!(
        stranger
            .call(addr, Method::GET, "/", Bytes::new())
            .await
            .is_err(),
        "a client certificate from a foreign CA must be refused"
    );
    // A server certificate for another name is refused by the client (hostname = amphora id).
    let wrong_name = Client {
        amphora_id: unique_id(),
        ..client.clone()
    };
    assert!(wrong_name
        .call(addr, Method::GET, "/", Bytes::new())
        .await
        .is_err());

    // Rotate the server certificate: new handshakes see it, no restart, file replaced (0600).
    let before = client.get(addr, "/").await.peer_cert;
    let (cert, key) = amp
        .pki
        .server_ca
        .issue(&amp.pki.amphora_id, ExtendedKeyUsagePurpose::ServerAuth);
    let new_pem = format!("{cert}{key}");
    let bad = client.put(addr, "/1.0/certificate", "not a pem").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let put = client.put(addr, "/1.0/certificate", new_pem.clone()).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let after = client.get(addr, "/").await.peer_cert;
    assert_ne!(before, after);
    assert_eq!(after, pem_certs(&cert)[0].as_ref());
    let stored = amp.dir.path().join("server.pem");
    assert_eq!(std::fs::read_to_string(&stored).expect("pem"), new_pem);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&stored)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // PUT /config: a bad file is refused, a good one is stored.
    let bad = client
        .put(addr, "/1.0/config", "[amphora_agent]\nnope = 1\n")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["details"].is_string());
    running.shutdown();
}

/// `PUT /1.0/client_ca` (ours): the client CA bundle is replaced for new handshakes without
/// a restart; old + new accepts controllers of both, new alone refuses the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_bundle_is_replaced_live() {
    let amp = Amphora::new(loopback(), "");
    let running = amp.start().await;
    let addr = running.local_addr;
    let old = amp.pki.client();
    let new_ca = Ca::new("next client ca");
    let new = amp.pki.client_signed_by(&new_ca);
    let refused =
        |c: Client| async move { c.call(addr, Method::GET, "/", Bytes::new()).await.is_err() };
    assert!(refused(new.clone()).await, "not trusted yet");

    let bad = old.put(addr, "/1.0/client_ca", "not a pem").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        old.get(addr, "/").await.status,
        StatusCode::OK,
        "a bad body changes nothing"
    );

    let bundle = format!("{}{}", new_ca.pem(), amp.pki.client_ca.pem());
    let put = old.put(addr, "/1.0/client_ca", bundle.clone()).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    assert_eq!(old.get(addr, "/").await.status, StatusCode::OK);
    assert_eq!(new.get(addr, "/").await.status, StatusCode::OK);
    let stored = amp.dir.path().join("client_ca.pem");
    assert_eq!(
        std::fs::read_to_string(&stored).expect("client ca file"),
        bundle
    );

    let put = new.put(addr, "/1.0/client_ca", new_ca.pem()).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    assert!(refused(old.clone()).await, "the old client CA is retired");
    assert_eq!(new.get(addr, "/").await.status, StatusCode::OK);
    running.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_put_get_delete() {
    let amp = Amphora::new(loopback(), "");
    let running = amp.start().await;
    let addr = running.local_addr;
    let client = amp.pki.client();
    let lb = unique_id();
    let path = format!("/1.0/loadbalancer/{lb}/certificates/listener.pem");

    let bad = client
        .put(
            addr,
            &format!("/1.0/loadbalancer/{lb}/certificates/listener.crt"),
            "x",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = client.get(addr, &path).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let content = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
    let put = client.put(addr, &path, content).await;
    assert_eq!(put.status, StatusCode::OK);
    let md5 = amphora_agent::haproxy::md5_hex(content.as_bytes());
    assert_eq!(put.etag(), md5);
    let file = amp.base().join("certs").join(&lb).join("listener.pem");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let got = client.get(addr, &path).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json(), serde_json::json!({ "md5sum": md5 }));

    let deleted = client.delete(addr, &path).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(!file.exists());
    assert_eq!(client.get(addr, &path).await.status, StatusCode::NOT_FOUND);
    running.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_lifecycle_with_seamless_reload() {
    if !haproxy_available() {
        return;
    }
    let amp = Amphora::new(loopback(), "");
    let _guard = amp.guard();
    let running = amp.start().await;
    let addr = running.local_addr;
    let client = amp.pki.client();
    let ids = LbIds::new();
    let amp_id = amp.pki.amphora_id.clone();
    let base = amp.base();
    let port = free_port().await;
    let dead = free_port().await;
    let backend = backend().await;
    let frontend: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let upload = format!("/1.0/loadbalancer/{amp_id}/{}/haproxy", ids.lb);
    let lb_path = format!("/1.0/loadbalancer/{}", ids.lb);

    // Unknown load balancer.
    assert_eq!(
        client.get(addr, &format!("{lb_path}/haproxy")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .put(addr, &format!("{lb_path}/start"), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Upload and start.
    let config = haproxy_config(&base, &ids, port, backend, dead, 1);
    let put = client.put(addr, &upload, config.clone()).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    assert_eq!(
        put.etag(),
        amphora_agent::haproxy::md5_hex(config.as_bytes())
    );
    let got = client.get(addr, &format!("{lb_path}/haproxy")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, config.as_bytes());
    assert_eq!(got.etag(), put.etag());
    let unknown = client.put(addr, &format!("{lb_path}/restart"), "").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.json()["details"]
        .as_str()
        .unwrap_or_default()
        .contains("Unknown action"));
    let start = client.put(addr, &format!("{lb_path}/Start"), "").await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{:?}", start.body);
    eventually(
        "traffic through haproxy",
        Duration::from_secs(10),
        || async { http_get(frontend).await.ok() },
    )
    .await;

    // A bad config is refused; the running one keeps serving and stays the current one.
    let broken = format!("{config}\nbackend broken\n    server x 127.0.0.1:1 nonsense-keyword\n");
    let refused = client.put(addr, &upload, broken.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let details = refused.json()["details"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(details.contains("nonsense-keyword"), "{details}");
    assert_eq!(
        std::fs::read_to_string(base.join(&ids.lb).join("haproxy.cfg.new-failed"))
            .expect("failed config kept"),
        broken
    );
    assert_eq!(
        client.get(addr, &format!("{lb_path}/haproxy")).await.body,
        config.as_bytes()
    );
    http_get(frontend)
        .await
        .expect("still serving after a refused config");

    // /listeners and /details shapes.
    let listeners = client.get(addr, "/1.0/listeners").await.json();
    assert_eq!(
        listeners,
        serde_json::json!([{"status": "ACTIVE", "uuid": ids.listener, "type": "HTTP"}])
    );
    let details = client.get(addr, "/1.0/details").await.json();
    let details: amphora_proto::agent::Details =
        serde_json::from_value(details).expect("details shape");
    assert_eq!(details.haproxy_count, 1);
    assert_eq!(details.listeners, vec![ids.listener.clone()]);
    assert!(details.cpu_count >= 1 && details.memory.total > 0 && details.cpu.total > 0);
    assert!(details.networks.contains_key("lo"));
    assert_eq!(details.load.len(), 3);
    assert!(details.haproxy_version.is_some());

    // Reload while a client loop sends requests: no request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let ok_count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let generation_seen = Arc::new(AtomicU64::new(1));
    let traffic = {
        let (stop, ok_count, failures, seen) = (
            stop.clone(),
            ok_count.clone(),
            failures.clone(),
            generation_seen.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match http_get(frontend).await {
                    Ok(text) => {
                        ok_count.fetch_add(1, Ordering::SeqCst);
                        if let Some(generation) = text
                            .lines()
                            .find_map(|l| l.strip_prefix("x-gen: "))
                            .and_then(|g| g.trim().parse().ok())
                        {
                            seen.store(generation, Ordering::SeqCst);
                        }
                    }
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
            }
        })
    };
    let master_before = std::fs::read_to_string(base.join(&ids.lb).join(format!("{}.pid", ids.lb)))
        .expect("pid file");
    // The weight-0 member goes into maintenance on the running worker; the reloads below
    // must carry that over (the agent saves `show servers state` before each reload).
    let socket = base.join(format!("{}.sock", ids.lb));
    let disabled = amphora_agent::stats::show(
        &socket,
        &format!(
            "disable server {}:{}/{}",
            ids.pool, ids.listener, ids.members[2]
        ),
    )
    .await
    .expect("disable server");
    assert!(disabled.trim().is_empty(), "disable server: {disabled}");
    assert!(in_maintenance(&socket, &ids.members[2]).await);
    for generation in 2..=6u32 {
        let config = haproxy_config(&base, &ids, port, backend, dead, generation);
        assert_eq!(
            client.put(addr, &upload, config).await.status,
            StatusCode::ACCEPTED
        );
        let reload = client.put(addr, &format!("{lb_path}/RELOAD"), "").await;
        assert_eq!(reload.status, StatusCode::ACCEPTED, "{:?}", reload.body);
        eventually(
            "reloaded generation served",
            Duration::from_secs(10),
            || {
                let seen = generation_seen.clone();
                async move { (seen.load(Ordering::SeqCst) == u64::from(generation)).then_some(()) }
            },
        )
        .await;
    }
    assert!(
        in_maintenance(&socket, &ids.members[2]).await,
        "the reloaded worker lost the member's maintenance state"
    );
    assert!(!in_maintenance(&socket, &ids.members[0]).await);
    let saved = std::fs::read_to_string(base.join(&ids.lb).join("servers-state"))
        .expect("server state saved before the reload");
    assert!(
        saved.starts_with('1') && saved.contains(&ids.members[2]),
        "{saved}"
    );
    let served = ok_count.load(Ordering::SeqCst);
    eventually(
        "more traffic after reloads",
        Duration::from_secs(10),
        || {
            let ok_count = ok_count.clone();
            async move { (ok_count.load(Ordering::SeqCst) >= served + 50).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.expect("traffic task");
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads: {:?}",
        failures.len(),
        ok_count.load(Ordering::SeqCst) + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(ok_count.load(Ordering::SeqCst) >= 100);
    let master_after = std::fs::read_to_string(base.join(&ids.lb).join(format!("{}.pid", ids.lb)))
        .expect("pid file");
    assert_eq!(master_before, master_after, "reload keeps the same master");

    // Agent restart: the running master is adopted, not started twice.
    running.shutdown_gracefully(Duration::from_secs(5)).await;
    let running = amp.start().await;
    let addr = running.local_addr;
    let master_adopted =
        std::fs::read_to_string(base.join(&ids.lb).join(format!("{}.pid", ids.lb)))
            .expect("pid file");
    assert_eq!(master_adopted, master_before);
    let again = client.put(addr, &format!("{lb_path}/start"), "").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert!(again.json()["details"]
        .as_str()
        .unwrap_or_default()
        .contains("already running"));
    http_get(frontend)
        .await
        .expect("serving after agent restart");

    // HAProxy crashes (master and workers killed): the agent's supervisor starts it again.
    let pid_file = base.join(&ids.lb).join(format!("{}.pid", ids.lb));
    let crashed: i32 = master_before.trim().parse().expect("pid");
    let group = rustix::process::Pid::from_raw(crashed).expect("pid");
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).expect("kill");
    let master_before = eventually("haproxy restarted", Duration::from_secs(15), || {
        let pid_file = pid_file.clone();
        async move {
            let text = std::fs::read_to_string(&pid_file).ok()?;
            let pid: i32 = text.trim().parse().ok()?;
            (pid != crashed && http_get(frontend).await.is_ok()).then_some(text)
        }
    })
    .await;

    // Stop: the master exits and the port closes; the agent does not restart it.
    let master_pid: i32 = master_before.trim().parse().expect("pid");
    let stopped = client.put(addr, &format!("{lb_path}/stop"), "").await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED);
    assert!(
        !Path::new(&format!("/proc/{master_pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{master_pid}/cmdline"))
                .map(|c| c.is_empty())
                .unwrap_or(true)
    );
    eventually("frontend port closed", Duration::from_secs(10), || async {
        TcpStream::connect(frontend).await.is_err().then_some(())
    })
    .await;
    let listeners = client.get(addr, "/1.0/listeners").await.json();
    assert_eq!(listeners[0]["status"], "STOPPED");

    // Delete: everything of the load balancer is gone.
    let deleted = client
        .delete(addr, &format!("/1.0/listeners/{}", ids.lb))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(!base.join(&ids.lb).exists());
    assert_eq!(
        client
            .delete(addr, &format!("/1.0/listeners/{}", ids.lb))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get(addr, "/1.0/listeners").await.json(),
        serde_json::json!([])
    );
    running.shutdown();
}

/// Forwards the datagrams of both "health managers" into one channel (true = first socket).
fn receive_both(
    a: UdpSocket,
    b: UdpSocket,
) -> tokio::sync::mpsc::UnboundedReceiver<(bool, Vec<u8>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (socket, is_a) in [(a, true), (b, false)] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                if tx.send((is_a, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

fn decode_any(packet: &[u8], key: &str) -> Option<HeartbeatMessage> {
    heartbeat::decode(packet, &[key]).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_listener_pool_and_member_status() {
    if !haproxy_available() {
        return;
    }
    let hm_a = UdpSocket::bind("127.0.0.1:0").await.expect("udp a");
    let hm_b = UdpSocket::bind("127.0.0.1:0").await.expect("udp b");
    let health = format!(
        "controller_ip_port_list = [\"{}\", \"{}\"]\nheartbeat_interval = \"100ms\"\nheartbeat_key = \"key-one\"\n",
        hm_a.local_addr().expect("addr"),
        hm_b.local_addr().expect("addr"),
    );
    let amp = Amphora::new(loopback(), &health);
    let _guard = amp.guard();
    let running = amp.start().await;
    let addr = running.local_addr;
    let client = amp.pki.client();
    let ids = LbIds::new();
    let port = free_port().await;
    let dead = free_port().await;
    let backend = backend().await;
    let config = haproxy_config(&amp.base(), &ids, port, backend, dead, 1);
    let upload = format!(
        "/1.0/loadbalancer/{}/{}/haproxy",
        amp.pki.amphora_id, ids.lb
    );
    assert_eq!(
        client.put(addr, &upload, config).await.status,
        StatusCode::ACCEPTED
    );
    let start = client
        .put(addr, &format!("/1.0/loadbalancer/{}/start", ids.lb), "")
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let frontend: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    eventually("traffic", Duration::from_secs(10), || async {
        http_get(frontend).await.ok()
    })
    .await;

    let pool_key = format!("{}:{}", ids.pool, ids.listener);
    let (mut seen_a, mut seen_b) = (0, 0);
    let mut packets = receive_both(hm_a, hm_b);
    let deadline = Instant::now() + Duration::from_secs(20);
    let msg = loop {
        assert!(
            Instant::now() < deadline,
            "no heartbeat with the expected statuses"
        );
        let Ok(Some((on_a, packet))) =
            tokio::time::timeout(Duration::from_secs(5), packets.recv()).await
        else {
            continue;
        };
        if on_a {
            seen_a += 1
        } else {
            seen_b += 1
        }
        assert!(
            heartbeat::decode(&packet, &["another-key"]).is_err(),
            "a heartbeat must not verify with another key"
        );
        let msg = decode_any(&packet, "key-one").expect("heartbeat decodes with the key");
        assert_eq!(msg.id, amp.pki.amphora_id);
        assert_eq!(msg.ver, 3);
        let member = |i: usize| {
            msg.pools
                .get(&pool_key)
                .and_then(|p| p.members.get(&ids.members[i]))
                .cloned()
                .unwrap_or_default()
        };
        if member(1) == "DOWN" && seen_a > 0 && seen_b > 0 {
            break msg;
        }
    };
    let listener = &msg.listeners[&ids.listener];
    assert_eq!(listener.status, "OPEN");
    let pool = &msg.pools[&pool_key];
    assert_eq!(pool.status, "UP");
    assert_eq!(pool.members[&ids.members[0]], "UP");
    assert_eq!(pool.members[&ids.members[1]], "DOWN");
    assert_eq!(pool.members[&ids.members[2]], "DRAIN");
    assert_eq!(msg.listeners.len(), 1);

    // Traffic shows up as deltas: after 5 more requests, the sum of `totconns` over the next
    // heartbeats reaches 5 while no single heartbeat repeats the absolute total.
    for _ in 0..5 {
        http_get(frontend).await.expect("request");
    }
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while total < 5 {
        assert!(
            Instant::now() < deadline,
            "deltas never added up to 5 requests"
        );
        let Ok(Some((_, packet))) =
            tokio::time::timeout(Duration::from_secs(5), packets.recv()).await
        else {
            continue;
        };
        let msg = decode_any(&packet, "key-one").expect("decodes");
        let l = &msg.listeners[&ids.listener].stats;
        assert!(l.totconns <= 5, "totconns is a delta, got {}", l.totconns);
        total += l.totconns;
    }

    // PUT /config applies a new key and interval at once.
    let new_config = std::fs::read_to_string(&amp.config_path)
        .expect("config")
        .replace("key-one", "key-two");
    let put = client.put(addr, "/1.0/config", new_config).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no heartbeat signed with the new key"
        );
        let Ok(Some((_, packet))) =
            tokio::time::timeout(Duration::from_secs(5), packets.recv()).await
        else {
            continue;
        };
        if decode_any(&packet, "key-two").is_some() {
            break;
        }
    }
    assert!(std::fs::read_to_string(&amp.config_path)
        .expect("config")
        .contains("key-two"));

    let deleted = client
        .delete(addr, &format!("/1.0/listeners/{}", ids.lb))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    running.shutdown();
}

// ---------------------------------------------------------------------------------------------
// plug endpoints inside a network namespace

fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("run {args:?}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A namespace with a management veth (the agent listens on it) and three unconfigured tenant
/// ports; deleted with everything in it on drop, and the agent process killed.
struct Netns {
    name: String,
    host_ifs: Vec<String>,
    agent: Option<std::process::Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.name]);
        for i in &self.host_ifs {
            let _ = sh(&["ip", "link", "del", i]);
        }
    }
}

fn ns_ip_json(ns: &str) -> serde_json::Value {
    let text = sh(&["ip", "netns", "exec", ns, "ip", "-j", "addr", "show"]).expect("ip addr");
    serde_json::from_str(&text).expect("ip json")
}

fn ns_has_addr(ns: &str, ifname: &str, addr: &str) -> bool {
    ns_ip_json(ns)
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] == ifname)
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .any(|a| a["local"] == addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plug_endpoints_configure_interfaces_in_the_namespace() {
    if !require::netns("the agent's namespace tests") {
        return;
    }
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let octet = std::process::id() % 250 + 1;
    let mut ns = Netns {
        name: format!("amptest-{tag}"),
        host_ifs: vec![
            format!("amm{tag}"),
            format!("amv{tag}"),
            format!("amn{tag}"),
            format!("ams{tag}"),
        ],
        agent: None,
    };
    let name = ns.name.clone();
    let (mgmt_host, mgmt_ns) = (format!("10.252.{octet}.1"), format!("10.252.{octet}.2"));
    let vip_mac = "02:5a:00:00:00:01";
    let net_mac = "02:5a:00:00:00:02";
    let standby_mac = "02:5a:00:00:00:03";
    sh(&["ip", "netns", "add", &name]).expect("netns add");
    let setup = || -> anyhow::Result<()> {
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_ifs[0],
            "type",
            "veth",
            "peer",
            "name",
            "mgmt0",
            "netns",
            &name,
        ])?;
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_ifs[1],
            "type",
            "veth",
            "peer",
            "name",
            "vip0",
            "address",
            vip_mac,
            "netns",
            &name,
        ])?;
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_ifs[2],
            "type",
            "veth",
            "peer",
            "name",
            "net0",
            "address",
            net_mac,
            "netns",
            &name,
        ])?;
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_ifs[3],
            "type",
            "veth",
            "peer",
            "name",
            "vip1",
            "address",
            standby_mac,
            "netns",
            &name,
        ])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{mgmt_host}/30"),
            "dev",
            &ns.host_ifs[0],
        ])?;
        for i in &ns.host_ifs {
            sh(&["ip", "link", "set", i, "up"])?;
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{mgmt_ns}/30"),
            "dev",
            "mgmt0",
        ])?;
        sh(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", "mgmt0", "up",
        ])?;
        sh(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
        ])?;
        Ok(())
    };
    setup().expect("namespace setup");

    let bind: SocketAddr = format!("{mgmt_ns}:9443").parse().expect("addr");
    let amp = Amphora::new(bind, "");
    ns.agent = Some(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                env!("CARGO_BIN_EXE_amphora-agent"),
                "--config",
            ])
            .arg(&amp.config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn agent in namespace"),
    );
    let client = amp.pki.client();
    eventually(
        "agent in namespace answers",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let r = client
                    .call(bind, Method::GET, "/", Bytes::new())
                    .await
                    .ok()?;
                (r.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;

    // GET /interface/{ip}.
    let found = client.get(bind, &format!("/1.0/interface/{mgmt_ns}")).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(
        found.json(),
        serde_json::json!({"message": "OK", "interface": "mgmt0"})
    );
    assert_eq!(
        client.get(bind, "/1.0/interface/10.253.0.9").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get(bind, "/1.0/interface/not-an-ip").await.status,
        StatusCode::BAD_REQUEST
    );

    // POST /plug/vip/{vip}.
    let vip_body = serde_json::json!({
        "subnet_cidr": "10.254.1.0/24", "gateway": "10.254.1.1", "mac_address": vip_mac,
        "mtu": 1400, "host_routes": [{"nexthop": "10.254.1.254", "destination": "10.254.9.0/24"}]
    });
    let plugged = client
        .post(bind, "/1.0/plug/vip/10.254.1.10", vip_body.clone())
        .await;
    assert_eq!(plugged.status, StatusCode::ACCEPTED, "{:?}", plugged.body);
    assert!(ns_has_addr(&name, "vip0", "10.254.1.10"));
    let link = sh(&[
        "ip", "netns", "exec", &name, "ip", "-j", "link", "show", "vip0",
    ])
    .expect("link");
    assert!(link.contains("\"mtu\":1400"), "{link}");
    let rules = sh(&["ip", "netns", "exec", &name, "ip", "rule", "show"]).expect("rules");
    assert!(rules.contains("from 10.254.1.10 lookup 1"), "{rules}");
    let table = sh(&[
        "ip", "netns", "exec", &name, "ip", "route", "show", "table", "1",
    ])
    .expect("table 1");
    assert!(table.contains("default via 10.254.1.1"), "{table}");
    assert!(table.contains("10.254.9.0/24 via 10.254.1.254"), "{table}");
    let found = client.get(bind, "/1.0/interface/10.254.1.10").await.json();
    assert_eq!(found["interface"], "vip0");
    let again = client
        .post(bind, "/1.0/plug/vip/10.254.1.10", vip_body)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown_mac =
        serde_json::json!({"subnet_cidr": "10.254.1.0/24", "mac_address": "02:5a:00:00:00:99"});
    assert_eq!(
        client
            .post(bind, "/1.0/plug/vip/10.254.1.11", unknown_mac)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bad_body = client
        .post(
            bind,
            "/1.0/plug/vip/10.254.1.11",
            serde_json::json!({"x": 1}),
        )
        .await;
    assert_eq!(bad_body.status, StatusCode::BAD_REQUEST);

    // POST /plug/vip/{vip} of an ACTIVE_STANDBY amphora: its vrrp_ip only; the VIP, its
    // table-1 routes and its source rule are left to keepalived.
    let standby_body = serde_json::json!({
        "subnet_cidr": "10.254.3.0/24", "gateway": "10.254.3.1", "mac_address": standby_mac,
        "vrrp_ip": "10.254.3.5", "topology": "ACTIVE_STANDBY",
        "host_routes": [{"nexthop": "10.254.3.254", "destination": "10.254.8.0/24"}]
    });
    let plugged = client
        .post(bind, "/1.0/plug/vip/10.254.3.10", standby_body.clone())
        .await;
    assert_eq!(plugged.status, StatusCode::ACCEPTED, "{:?}", plugged.body);
    assert!(ns_has_addr(&name, "vip1", "10.254.3.5"));
    assert!(
        !ns_has_addr(&name, "vip1", "10.254.3.10"),
        "keepalived's VIP"
    );
    let rules = sh(&["ip", "netns", "exec", &name, "ip", "rule", "show"]).expect("rules");
    assert!(!rules.contains("10.254.3.10"), "{rules}");
    let table = sh(&[
        "ip", "netns", "exec", &name, "ip", "route", "show", "table", "1",
    ])
    .expect("table 1");
    assert!(!table.contains("10.254.3."), "{table}");
    let main = sh(&["ip", "netns", "exec", &name, "ip", "route", "show"]).expect("routes");
    assert!(main.contains("10.254.8.0/24 via 10.254.3.254"), "{main}");
    let nonlocal = sh(&[
        "ip",
        "netns",
        "exec",
        &name,
        "cat",
        "/proc/sys/net/ipv4/ip_nonlocal_bind",
    ])
    .expect("sysctl");
    assert_eq!(
        nonlocal.trim(),
        "1",
        "HAProxy may bind the VIP it does not hold"
    );
    let no_vrrp_ip = serde_json::json!({
        "subnet_cidr": "10.254.4.0/24", "mac_address": "02:5a:00:00:00:97",
        "topology": "ACTIVE_STANDBY"
    });
    assert_eq!(
        client
            .post(bind, "/1.0/plug/vip/10.254.4.10", no_vrrp_ip)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let bad_topology = serde_json::json!({
        "subnet_cidr": "10.254.4.0/24", "mac_address": "02:5a:00:00:00:97",
        "topology": "TRIPLE"
    });
    assert_eq!(
        client
            .post(bind, "/1.0/plug/vip/10.254.4.10", bad_topology)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // POST /plug/network.
    let net_body = serde_json::json!({
        "mac_address": net_mac,
        "fixed_ips": [{"ip_address": "10.254.2.5", "subnet_cidr": "10.254.2.0/24", "host_routes": []}]
    });
    let plugged = client
        .post(bind, "/1.0/plug/network", net_body.clone())
        .await;
    assert_eq!(plugged.status, StatusCode::ACCEPTED, "{:?}", plugged.body);
    assert!(ns_has_addr(&name, "net0", "10.254.2.5"));
    let up = sh(&[
        "ip", "netns", "exec", &name, "ip", "-j", "link", "show", "net0",
    ])
    .expect("link");
    assert!(up.contains("\"UP\""), "{up}");
    assert_eq!(
        client
            .post(bind, "/1.0/plug/network", net_body)
            .await
            .status,
        StatusCode::CONFLICT
    );
    let missing = serde_json::json!({"mac_address": "02:5a:00:00:00:98"});
    assert_eq!(
        client.post(bind, "/1.0/plug/network", missing).await.status,
        StatusCode::NOT_FOUND
    );
}

/// HAProxy needs about 2.5 descriptors per connection of its global `maxconn` (2 sockets plus
/// `maxconn / 4` splice pipes of 2) and refuses to start when its hard open-file limit is lower;
/// the largest global `maxconn` that fits `nofile` (octavia-render's
/// `max_global_maxconn_for_fd_limit`, which the agent must not depend on).
fn maxconn_for(nofile: u64) -> u64 {
    (nofile - 1000) * 2 / 5
}

/// A renderer-shaped configuration (splice options included) with global `maxconn`.
fn limited_config(
    base: &Path,
    ids: &LbIds,
    port: u16,
    backend: SocketAddr,
    maxconn: u64,
) -> String {
    format!(
        "global\n\
         \x20   stats socket {base}/{lb}.sock mode 0666 level admin expose-fd listeners\n\
         \x20   maxconn {maxconn}\n\
         defaults\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         \x20   option splice-request\n\
         \x20   option splice-response\n\
         \x20   option http-keep-alive\n\
         frontend {listener}\n\
         \x20   maxconn 50000\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   mode http\n\
         \x20   default_backend {pool}:{listener}\n\
         \x20   timeout client 30s\n\
         backend {pool}:{listener}\n\
         \x20   mode http\n\
         \x20   balance roundrobin\n\
         \x20   fullconn 50000\n\
         \x20   timeout connect 5s\n\
         \x20   timeout server 30s\n\
         \x20   server {m0} {backend} weight 1\n",
        base = base.display(),
        lb = ids.lb,
        listener = ids.listener,
        pool = ids.pool,
        m0 = ids.members[0],
    )
}

/// Under an open-file limit below what `maxconn 50000` needs, HAProxy 2.6 refuses to start
/// (strict limits): `haproxy -c` accepts the file, the start fails and the agent reports why.
/// The global `maxconn` that fits the limit starts and serves (the frontend keeps its 50000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_maxconn_must_fit_the_open_file_limit() {
    if !haproxy_available() {
        return;
    }
    const NOFILE: u64 = 4096;
    let amp = Amphora::new(loopback(), "");
    let _guard = amp.guard();
    // HAProxy under a hard limit of NOFILE, whatever the host's limit is.
    let wrapper = amp.dir.path().join("haproxy-limited");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -Sn {NOFILE} && ulimit -Hn {NOFILE} || exit 111\nexec {HAPROXY} \"$@\"\n"),
    )
    .expect("wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod wrapper");
    }
    let toml = std::fs::read_to_string(&amp.config_path).expect("config");
    let toml = toml.replace(
        &format!("haproxy_cmd = \"{HAPROXY}\""),
        &format!("haproxy_cmd = \"{}\"", wrapper.display()),
    );
    assert!(toml.contains("haproxy-limited"));
    std::fs::write(&amp.config_path, toml).expect("config");

    let running = amp.start().await;
    let addr = running.local_addr;
    let client = amp.pki.client();
    let ids = LbIds::new();
    let base = amp.base();
    let port = free_port().await;
    let backend = backend().await;
    let frontend: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let upload = format!(
        "/1.0/loadbalancer/{}/{}/haproxy",
        amp.pki.amphora_id, ids.lb
    );
    let start = format!("/1.0/loadbalancer/{}/start", ids.lb);

    // maxconn 50000 needs ~125000 descriptors: valid, but HAProxy will not start.
    let too_big = limited_config(&base, &ids, port, backend, 50_000);
    let put = client.put(addr, &upload, too_big).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let refused = client.put(addr, &start, "").await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    let details = refused.json()["details"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        details.contains("Cannot raise FD limit to 125")
            && details.contains(&format!("limit is {NOFILE}")),
        "{details}"
    );
    assert!(http_get(frontend).await.is_err(), "nothing serves");

    // The largest maxconn that fits starts and serves.
    let fits = limited_config(&base, &ids, port, backend, maxconn_for(NOFILE));
    let put = client.put(addr, &upload, fits).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let started = client.put(addr, &start, "").await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    eventually(
        "traffic through haproxy",
        Duration::from_secs(10),
        || async { http_get(frontend).await.ok() },
    )
    .await;
    running.shutdown();
}

// ---------------------------------------------------------------------------------------------
// PING health monitors: the agent's external check under HAProxy

/// `check_status` of `server` in `backend` from `show stat` (`PROCOK`, `PROCERR`, ...).
async fn check_status(socket: &Path, backend: &str, server: &str) -> Option<String> {
    let stat = amphora_agent::stats::show_stat(socket).await.ok()?;
    let header: Vec<&str> = stat
        .lines()
        .next()?
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let at = header.iter().position(|h| *h == "check_status")?;
    stat.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&backend) && f.get(1) == Some(&server))
        .and_then(|f| f.get(at).map(|s| s.to_string()))
}

/// HAProxy as the amphora runs it (in its own network namespace, dropping to `nobody`) checks
/// the members of a PING monitor with the script the agent installs: a member that answers
/// ping is up, one that cannot be reached is down. The namespace has only its loopback, so
/// the echo requests never leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_health_monitor_checks_members_with_the_agent_script() {
    if !haproxy_available() || !require::netns("the agent's namespace tests") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // HAProxy's workers run as nobody: they must reach the script and the socket directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = amphora_agent::pingcheck::install(dir.path()).expect("install the script");
    let socket = dir.path().join("stats.sock");
    let tag = &unique_id()[..8];
    let mut ns = Netns {
        name: format!("amping-{tag}"),
        host_ifs: vec![],
        agent: None,
    };
    sh(&["ip", "netns", "add", &ns.name]).expect("netns add");
    sh(&[
        "ip", "netns", "exec", &ns.name, "ip", "link", "set", "lo", "up",
    ])
    .expect("lo up");
    // What the agent does at start inside an amphora, done from a thread that joins the
    // namespace (the setting is per namespace and read through the opener's).
    let ns_file = PathBuf::from(format!("/var/run/netns/{}", ns.name));
    std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let f = std::fs::File::open(&ns_file).expect("open netns");
        rustix::thread::move_into_link_name_space(
            f.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        amphora_agent::pingcheck::allow_unprivileged_ping().expect("ping_group_range");
    })
    .join()
    .expect("thread");
    let range = sh(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "cat",
        "/proc/sys/net/ipv4/ping_group_range",
    ])
    .expect("read range");
    assert_eq!(
        range.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );
    let config = format!(
        "global\n\
         \x20   user nobody\n\
         \x20   group nogroup\n\
         \x20   stats socket {socket} mode 0666 level user\n\
         \x20   external-check\n\
         \x20   insecure-fork-wanted\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 5s\n\
         \x20   timeout server 5s\n\
         backend pool\n\
         \x20   timeout check 2s\n\
         \x20   option external-check\n\
         \x20   external-check command {script}\n\
         \x20   server answers 127.0.0.1:80 check inter 200ms fall 1 rise 1\n\
         \x20   server unreachable 10.255.0.1:80 check inter 200ms fall 1 rise 1\n",
        socket = socket.display(),
        script = script.display(),
    );
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, config).expect("write config");
    ns.agent = Some(
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, HAPROXY, "-db", "-f"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    let want = |server: &'static str, status: &'static str| {
        let socket = socket.clone();
        async move {
            eventually(
                &format!("{server} checked as {status}"),
                Duration::from_secs(15),
                || {
                    let socket = socket.clone();
                    async move {
                        (check_status(&socket, "pool", server).await.as_deref() == Some(status))
                            .then_some(())
                    }
                },
            )
            .await
        }
    };
    want("answers", "PROCOK").await;
    want("unreachable", "PROCERR").await;
    drop(ns);
}

// ---------------------------------------------------------------------------------------------
// the metrics proxy of PROMETHEUS listeners

/// One plain HTTP/1.1 request; returns the status, the content type and the body.
async fn plain_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
) -> anyhow::Result<(StatusCode, String, String)> {
    let io = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "metrics.test")
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(15), io)
        .await
        .context("timed out")?
}

/// Shaped like the renderer's for a load balancer with a PROMETHEUS listener: HAProxy's
/// exporter on the internal frontend, an ordinary listener with one member, and the
/// PROMETHEUS listener whose backend is the agent's metrics proxy.
#[allow(clippy::too_many_arguments)]
fn prometheus_config(
    base: &Path,
    ids: &LbIds,
    exporter: u16,
    port: u16,
    backend: SocketAddr,
    prometheus_listener: &str,
    prometheus_port: u16,
    proxy: SocketAddr,
) -> String {
    format!(
        "global\n\
         \x20   stats socket {base}/{lb}.sock mode 0666 level admin expose-fd listeners\n\
         \x20   maxconn 1000\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         frontend prometheus-exporter-internal-endpoint\n\
         \x20   bind 127.0.0.1:{exporter}\n\
         \x20   http-request use-service prometheus-exporter if {{ path /metrics }}\n\
         \x20   http-request reject\n\
         frontend {listener}\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend {pool}:{listener}\n\
         backend {pool}:{listener}\n\
         \x20   server {m0} {backend} weight 1 check inter 200ms\n\
         frontend {prometheus_listener}\n\
         \x20   bind 127.0.0.1:{prometheus_port}\n\
         \x20   default_backend prometheus-exporter-internal\n\
         backend prometheus-exporter-internal\n\
         \x20   server prometheus-exporter-internal-server {proxy}\n",
        base = base.display(),
        lb = ids.lb,
        listener = ids.listener,
        pool = ids.pool,
        m0 = ids.members[0],
    )
}

/// The value of an unlabelled sample.
fn sample_value(body: &str, family: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(family)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The agent's proxy serves HAProxy's real exporter under Octavia's names, directly and
/// through a PROMETHEUS listener's frontend, and answers 502 while HAProxy does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_proxy_serves_haproxy_metrics_under_octavia_names() {
    if !haproxy_available() {
        return;
    }
    let amp = Amphora::new(loopback(), "");
    let _guard = amp.guard();
    let exporter = free_port().await;
    // Port 0: the agent reports the port it got, so parallel tests never collide.
    let toml = std::fs::read_to_string(&amp.config_path).expect("config");
    let toml = toml.replace(
        "prometheus_proxy_bind = \"\"",
        &format!(
            "prometheus_proxy_bind = \"127.0.0.1:0\"\n\
             prometheus_exporter_url = \"http://127.0.0.1:{exporter}/metrics\""
        ),
    );
    assert!(toml.contains("127.0.0.1:0"));
    std::fs::write(&amp.config_path, toml).expect("config");
    let running = amp.start().await;
    let addr = running.local_addr;
    let proxy = running
        .metrics_proxy_addr
        .expect("the metrics proxy listens");
    let client = amp.pki.client();

    // No HAProxy yet: nothing to read.
    let (status, _, _) = plain_call(proxy, Method::GET, "/metrics")
        .await
        .expect("proxy answers");
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    let ids = LbIds::new();
    let prometheus_listener = unique_id();
    let port = free_port().await;
    let prometheus_port = free_port().await;
    let backend = backend().await;
    let config = prometheus_config(
        &amp.base(),
        &ids,
        exporter,
        port,
        backend,
        &prometheus_listener,
        prometheus_port,
        proxy,
    );
    let upload = format!(
        "/1.0/loadbalancer/{}/{}/haproxy",
        amp.pki.amphora_id, ids.lb
    );
    let put = client.put(addr, &upload, config).await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let start = client
        .put(addr, &format!("/1.0/loadbalancer/{}/start", ids.lb), "")
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{:?}", start.body);
    let frontend: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    eventually(
        "traffic through haproxy",
        Duration::from_secs(10),
        || async { http_get(frontend).await.ok() },
    )
    .await;

    let (status, content_type, body) = eventually(
        "metrics through the proxy",
        Duration::from_secs(10),
        || async {
            plain_call(proxy, Method::GET, "/metrics")
                .await
                .ok()
                .filter(|(status, _, _)| *status == StatusCode::OK)
        },
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4");
    for family in [
        "octavia_listener_",
        "octavia_pool_",
        "octavia_member_",
        "octavia_loadbalancer_current_connections",
        "octavia_memory_pool_",
        "# TYPE octavia_loadbalancer_cpu gauge",
        "# TYPE octavia_loadbalancer_memory gauge",
    ] {
        assert!(body.contains(family), "no {family} in:\n{body}");
    }
    let leftover: Vec<&str> = body
        .lines()
        .filter(|l| {
            l.starts_with("haproxy_")
                || l.starts_with("# HELP haproxy_")
                || l.starts_with("# TYPE haproxy_")
        })
        .collect();
    assert!(leftover.is_empty(), "haproxy families left: {leftover:?}");
    assert!(!body.contains("prometheus-exporter"), "{body}");
    for label in [
        format!("listener=\"{}\"", ids.listener),
        format!("listener=\"{prometheus_listener}\""),
        format!("pool=\"{}:{}\"", ids.pool, ids.listener),
        format!("member=\"{}\"", ids.members[0]),
    ] {
        assert!(body.contains(&label), "no {label} in:\n{body}");
    }
    assert!(!body.contains("proxy=\""), "{body}");
    for gauge in ["octavia_loadbalancer_cpu", "octavia_loadbalancer_memory"] {
        let value = sample_value(&body, gauge).unwrap_or_else(|| panic!("no {gauge}"));
        assert!((0.0..=100.0).contains(&value), "{gauge} {value}");
    }

    // The same through the PROMETHEUS listener, as a scraper sees it.
    let listener_addr: SocketAddr = format!("127.0.0.1:{prometheus_port}")
        .parse()
        .expect("addr");
    let (status, content_type, body) = plain_call(listener_addr, Method::GET, "/metrics")
        .await
        .expect("metrics through the listener");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert!(body.contains(&format!("member=\"{}\"", ids.members[0])));

    // `/` answers the same; other paths and methods do not.
    let (status, _, body) = plain_call(proxy, Method::GET, "/").await.expect("GET /");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("octavia_listener_"));
    let (status, _, _) = plain_call(proxy, Method::POST, "/metrics")
        .await
        .expect("POST");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = plain_call(proxy, Method::GET, "/other")
        .await
        .expect("GET /other");
    assert_eq!(status, StatusCode::NOT_FOUND);

    // HAProxy stopped: the exporter is gone, the proxy says so.
    let stopped = client
        .put(addr, &format!("/1.0/loadbalancer/{}/stop", ids.lb), "")
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{:?}", stopped.body);
    eventually("502 without haproxy", Duration::from_secs(10), || async {
        plain_call(proxy, Method::GET, "/metrics")
            .await
            .ok()
            .filter(|(status, _, _)| *status == StatusCode::BAD_GATEWAY)
    })
    .await;

    // The proxy stops with the agent.
    running.shutdown();
    eventually("proxy port closed", Duration::from_secs(10), || async {
        TcpStream::connect(proxy).await.is_err().then_some(())
    })
    .await;
}

/// A metrics proxy that cannot bind is left out; the agent starts and serves its API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_starts_when_the_metrics_proxy_cannot_bind() {
    let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let amp = Amphora::new(loopback(), "");
    let toml = std::fs::read_to_string(&amp.config_path).expect("config");
    let toml = toml.replace(
        "prometheus_proxy_bind = \"\"",
        &format!("prometheus_proxy_bind = \"{taken_addr}\""),
    );
    std::fs::write(&amp.config_path, toml).expect("config");
    let running = amp.start().await;
    assert_eq!(running.metrics_proxy_addr, None);
    let root = amp.pki.client().get(running.local_addr, "/").await;
    assert_eq!(root.status, StatusCode::OK);
    running.shutdown();
    drop(taken);
}

// ---------------------------------------------------------------------------------------------
// keepalived (VRRP) inside a network namespace

/// Kills the keepalived started under `base` (its process group), also on failure.
struct KeepalivedGuard {
    base: PathBuf,
}

impl Drop for KeepalivedGuard {
    fn drop(&mut self) {
        let pidfile = self.base.join("vrrp/octavia-keepalived.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// A keepalived configuration shaped like the renderer's (octavia-render's golden files): one
/// VRRPv3 instance, 0.1 s adverts, the agent's check script every second.
fn keepalived_config(base: &Path, vrrp_ip: &str, peer: &str, vips: &[&str]) -> String {
    let vips: String = vips.iter().map(|v| format!("        {v}\n")).collect();
    format!(
        "global_defs {{\n\
         \x20   vrrp_version 3\n\
         \x20   script_user root\n\
         \x20   enable_script_security\n\
         }}\n\
         vrrp_script check_script {{\n\
         \x20   script {base}/vrrp/check_script.sh\n\
         \x20   interval 1\n\
         \x20   fall 2\n\
         \x20   rise 2\n\
         }}\n\
         vrrp_instance lb1 {{\n\
         \x20   state BACKUP\n\
         \x20   interface eth1\n\
         \x20   virtual_router_id 1\n\
         \x20   priority 100\n\
         \x20   nopreempt\n\
         \x20   accept\n\
         \x20   advert_int 0.1\n\
         \x20   unicast_src_ip {vrrp_ip}\n\
         \x20   unicast_peer {{\n\
         \x20       {peer}\n\
         \x20   }}\n\
         \x20   virtual_ipaddress {{\n\
         {vips}\
         \x20   }}\n\
         \x20   track_script {{\n\
         \x20       check_script\n\
         \x20   }}\n\
         }}\n",
        base = base.display(),
    )
}

/// An HAProxy the check script can see: its stats socket and one frontend on the namespace's
/// loopback.
fn minimal_haproxy_config(base: &Path, lb: &str) -> String {
    format!(
        "global\n\
         \x20   stats socket {base}/{lb}.sock mode 0666 level admin expose-fd listeners\n\
         \x20   maxconn 100\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 1s\n\
         \x20   timeout server 1s\n\
         frontend l1\n\
         \x20   bind 127.0.0.1:8080\n",
        base = base.display(),
    )
}

fn md5_hex(data: &[u8]) -> String {
    amphora_agent::haproxy::md5_hex(data)
}

/// The parent pid in keepalived's pid file, if that process lives.
fn keepalived_pid(base: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(base.join("vrrp/octavia-keepalived.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    (state != "Z").then_some(pid)
}

/// Receives the next heartbeat within `wait`, if any.
async fn next_heartbeat(socket: &UdpSocket, wait: Duration) -> Option<HeartbeatMessage> {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    decode_any(&buf[..n], "vrrp-key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrrp_upload_start_reload_stop_in_a_namespace() {
    let test = "the agent's keepalived test";
    if !haproxy_available() || !require::netns(test) || require::keepalived(test).is_none() {
        return;
    }
    let tag = &unique_id()[..8];
    let octet = std::process::id() % 250 + 1;
    let mut ns = Netns {
        name: format!("ampvrrp-{tag}"),
        host_ifs: vec![format!("akm{}", &tag[2..8])],
        agent: None,
    };
    let name = ns.name.clone();
    let (mgmt_host, mgmt_ns) = (format!("10.249.{octet}.1"), format!("10.249.{octet}.2"));
    let (vrrp_ip, peer, vip, vip2) = (
        format!("10.248.{octet}.5"),
        format!("10.248.{octet}.6"),
        format!("10.248.{octet}.10"),
        format!("10.248.{octet}.11"),
    );
    sh(&["ip", "netns", "add", &name]).expect("netns add");
    let setup = || -> anyhow::Result<()> {
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_ifs[0],
            "type",
            "veth",
            "peer",
            "name",
            "mgmt0",
            "netns",
            &name,
        ])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{mgmt_host}/30"),
            "dev",
            &ns.host_ifs[0],
        ])?;
        sh(&["ip", "link", "set", &ns.host_ifs[0], "up"])?;
        let ns_ip = |args: &[&str]| -> anyhow::Result<String> {
            let mut all = vec!["ip", "-n", name.as_str()];
            all.extend_from_slice(args);
            sh(&all)
        };
        // The VIP network: both ends of a veth inside the namespace; the peer never answers,
        // so this keepalived is a lone MASTER.
        ns_ip(&[
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ])?;
        ns_ip(&["addr", "add", &format!("{mgmt_ns}/30"), "dev", "mgmt0"])?;
        ns_ip(&["addr", "add", &format!("{vrrp_ip}/24"), "dev", "eth1"])?;
        for dev in ["lo", "mgmt0", "eth1", "eth1p"] {
            ns_ip(&["link", "set", dev, "up"])?;
        }
        Ok(())
    };
    setup().expect("namespace setup");

    let hm = UdpSocket::bind(format!("{mgmt_host}:0"))
        .await
        .expect("udp health manager");
    let health = format!(
        "controller_ip_port_list = [\"{}\"]\nheartbeat_interval = \"200ms\"\nheartbeat_key = \"vrrp-key\"\n",
        hm.local_addr().expect("addr"),
    );
    let bind: SocketAddr = format!("{mgmt_ns}:9443").parse().expect("addr");
    let amp = Amphora::new(bind, &health);
    let base = amp.base();
    let _haproxy = amp.guard();
    let _keepalived = KeepalivedGuard { base: base.clone() };
    ns.agent = Some(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                env!("CARGO_BIN_EXE_amphora-agent"),
                "--config",
            ])
            .arg(&amp.config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn agent in namespace"),
    );
    let client = amp.pki.client();
    eventually(
        "agent in namespace answers",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let r = client
                    .call(bind, Method::GET, "/", Bytes::new())
                    .await
                    .ok()?;
                (r.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;
    let has = |addr: &str| ns_has_addr(&name, "eth1", addr);

    // GET /info reports keepalived's version.
    let info = client.get(bind, "/1.0/info").await.json();
    let version = info["keepalived_version"].as_str().unwrap_or("").to_owned();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.'),
        "{info}"
    );

    // Nothing uploaded: a clear error, nothing started.
    let early = client.put(bind, "/1.0/vrrp/start", "").await;
    assert_eq!(early.status, StatusCode::NOT_FOUND, "{:?}", early.body);
    assert!(
        early.json()["details"]
            .as_str()
            .unwrap_or("")
            .contains("PUT /1.0/vrrp/upload"),
        "{}",
        early.json()
    );
    assert!(keepalived_pid(&base).is_none());
    let details = client.get(bind, "/1.0/details").await.json();
    assert_eq!(details["topology"], "SINGLE");
    assert!(details.get("vip_held").is_none(), "{details}");

    // A configuration keepalived refuses: 400 with keepalived's words, nothing installed.
    let good = keepalived_config(&base, &vrrp_ip, &peer, &[&vip]);
    let broken = good.replace("    nopreempt\n", "    nopreempt\n    no_such_keyword 1\n");
    let refused = client.put(bind, "/1.0/vrrp/upload", broken.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.body
    );
    assert!(
        refused.json()["details"]
            .as_str()
            .unwrap_or("")
            .contains("no_such_keyword"),
        "{}",
        refused.json()
    );
    assert!(!base.join("vrrp/octavia-keepalived.conf").exists());

    // An HAProxy, so the check script passes.
    let lb = unique_id();
    let put = client
        .put(
            bind,
            &format!("/1.0/loadbalancer/{}/{lb}/haproxy", amp.pki.amphora_id),
            minimal_haproxy_config(&base, &lb),
        )
        .await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{:?}", put.body);
    let started = client
        .put(bind, &format!("/1.0/loadbalancer/{lb}/start"), "")
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);

    // Upload: 200 with the MD5 as ETag, the config and the check scripts installed.
    let uploaded = client.put(bind, "/1.0/vrrp/upload", good.clone()).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{:?}", uploaded.body);
    assert_eq!(uploaded.etag(), md5_hex(good.as_bytes()));
    assert_eq!(
        std::fs::read_to_string(base.join("vrrp/octavia-keepalived.conf")).expect("conf"),
        good
    );
    for script in [
        "vrrp/check_script.sh",
        "vrrp/check_scripts/haproxy_check_script.sh",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(base.join(script))
            .expect(script)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }
    let bogus = client.put(bind, "/1.0/vrrp/restart", "").await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);

    // Start: the process runs with our configuration and, a lone MASTER after its advert
    // timeout, holds the VIP.
    let start = client.put(bind, "/1.0/vrrp/start", "").await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{:?}", start.body);
    assert_eq!(start.json()["details"], "keepalived started");
    let pid = keepalived_pid(&base).expect("keepalived runs after start");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("octavia-keepalived.conf"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    eventually("the VIP on eth1", Duration::from_secs(10), || async {
        has(&vip).then_some(())
    })
    .await;
    let details = client.get(bind, "/1.0/details").await.json();
    assert_eq!(details["topology"], "ACTIVE_STANDBY", "{details}");
    assert_eq!(details["vip_held"], true, "{details}");
    let hb = next_heartbeat(&hm, Duration::from_secs(5)).await;
    assert!(hb.is_some(), "heartbeats flow while keepalived runs");

    // A refused upload keeps the running configuration and process.
    let refused = client.put(bind, "/1.0/vrrp/upload", broken).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        std::fs::read_to_string(base.join("vrrp/octavia-keepalived.conf")).expect("conf"),
        good
    );
    assert_eq!(keepalived_pid(&base), Some(pid));

    // Reload: a second VIP appears, same process.
    let two = keepalived_config(&base, &vrrp_ip, &peer, &[&vip, &vip2]);
    let uploaded = client.put(bind, "/1.0/vrrp/upload", two.clone()).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{:?}", uploaded.body);
    let reload = client.put(bind, "/1.0/vrrp/reload", "").await;
    assert_eq!(reload.status, StatusCode::ACCEPTED, "{:?}", reload.body);
    eventually(
        "the second VIP after reload",
        Duration::from_secs(10),
        || async { has(&vip2).then_some(()) },
    )
    .await;
    assert_eq!(
        keepalived_pid(&base),
        Some(pid),
        "a reload keeps the process"
    );
    // Start on a running daemon is a reload.
    let again = client.put(bind, "/1.0/vrrp/START", "").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json()["details"], "keepalived reloaded");
    assert_eq!(keepalived_pid(&base), Some(pid));

    // keepalived killed (its whole process group, SIGKILL): the agent's supervisor starts
    // it again, and it holds the VIP again.
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill keepalived");
    eventually("keepalived restarted", Duration::from_secs(15), || async {
        keepalived_pid(&base).filter(|p| *p != pid)
    })
    .await;
    eventually(
        "the VIP after the restart",
        Duration::from_secs(10),
        || async { has(&vip).then_some(()) },
    )
    .await;

    // The check script: HAProxy stopped, keepalived gives up the VIP; started again, it
    // takes it back.
    let stop_lb = client
        .put(bind, &format!("/1.0/loadbalancer/{lb}/stop"), "")
        .await;
    assert_eq!(stop_lb.status, StatusCode::ACCEPTED);
    eventually(
        "the VIP released without HAProxy",
        Duration::from_secs(15),
        || async { (!has(&vip) && !has(&vip2)).then_some(()) },
    )
    .await;
    let details = client.get(bind, "/1.0/details").await.json();
    assert_eq!(details["vip_held"], false, "{details}");
    let start_lb = client
        .put(bind, &format!("/1.0/loadbalancer/{lb}/start"), "")
        .await;
    assert_eq!(start_lb.status, StatusCode::ACCEPTED);
    eventually(
        "the VIP back with HAProxy",
        Duration::from_secs(15),
        || async { has(&vip).then_some(()) },
    )
    .await;

    // Stop: the process exits, the VIPs go, and with keepalived configured but dead the
    // amphora sends no heartbeat.
    let stop = client.put(bind, "/1.0/vrrp/stop", "").await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{:?}", stop.body);
    assert_eq!(stop.json()["details"], "keepalived stopped");
    assert!(keepalived_pid(&base).is_none());
    eventually(
        "the VIPs gone after stop",
        Duration::from_secs(10),
        || async { (!has(&vip) && !has(&vip2)).then_some(()) },
    )
    .await;
    // Drain what was sent before the stop, then nothing for ten intervals.
    let quiet_from = Instant::now();
    while next_heartbeat(&hm, Duration::from_millis(600))
        .await
        .is_some()
    {
        assert!(
            quiet_from.elapsed() < Duration::from_secs(5),
            "heartbeats go on with keepalived dead"
        );
    }
    assert!(
        next_heartbeat(&hm, Duration::from_secs(2)).await.is_none(),
        "a heartbeat was sent with keepalived configured but dead"
    );
    let stopped_again = client.put(bind, "/1.0/vrrp/stop", "").await;
    assert_eq!(
        stopped_again.json()["details"],
        "keepalived was not running"
    );
}

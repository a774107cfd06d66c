//! The local CA and the mTLS agent client against a small mTLS agent served on 127.0.0.1.

use std::convert::Infallible;
use std::future::ready;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use octavia_drivers::certs::{self, CertificateAuthority, DEFAULT_CERT_VALIDITY};
use octavia_drivers::network::{HostRoute, MemberNetworkConfig, PortAddress};
use octavia_drivers::{
    AgentClient, AgentClientConfig, AmphoraDriver, AmphoraNetworkConfig, FaultOwner, VrrpAction,
};
use octavia_model::{now, Amphora, AmphoraId, LoadBalancerId, ProvisioningStatus, Topology};
use octavia_test_support::eventually;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;
use tokio::net::TcpListener;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn amphora(id: AmphoraId) -> Amphora {
    Amphora {
        lb_network_ip: Some("127.0.0.1".into()),
        ..Amphora::new(id, None, ProvisioningStatus::PendingCreate, now())
    }
}

fn der_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn roots(pem: &str) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in der_certs(pem) {
        roots.add(c).unwrap();
    }
    Arc::new(roots)
}

// ---------------------------------------------------------------------------------------------
// A small mTLS agent.

const DROP: u8 = 0;
const NOT_READY: u8 = 1;
const READY: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct TestAgent {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// TCP connections accepted.
    accepted: Arc<AtomicUsize>,
    /// TLS handshakes the agent refused or that failed.
    handshake_failures: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestAgent {
    /// An agent serving `server_pem` (cert + key) and accepting clients signed by
    /// `client_ca_pem`, in `mode`.
    async fn start(server_pem: &str, client_ca_pem: &str, mode: u8) -> TestAgent {
        let (cert_pem, key) = certs::split_cert_and_key(server_pem).unwrap();
        let key = rustls_pemfile::private_key(&mut key.expose().as_bytes())
            .unwrap()
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(client_ca_pem),
            provider(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(der_certs(&cert_pem), key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(mode));
        let accepted = Arc::new(AtomicUsize::new(0));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (mode, accepted, failures, seen) = (
                mode.clone(),
                accepted.clone(),
                handshake_failures.clone(),
                seen.clone(),
            );
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if mode.load(Ordering::SeqCst) == DROP {
                        drop(tcp);
                        continue;
                    }
                    let (acceptor, mode, failures, seen) = (
                        acceptor.clone(),
                        mode.clone(),
                        failures.clone(),
                        seen.clone(),
                    );
                    tokio::spawn(async move {
                        let tls = match acceptor.accept(tcp).await {
                            Ok(tls) => tls,
                            Err(_) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        };
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, mode.clone(), seen.clone())
                        });
                        if hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await
                            .is_err()
                        {
                            // With TLS 1.3 a refused client certificate surfaces here.
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            }
        });
        TestAgent {
            addr,
            mode,
            accepted,
            handshake_failures,
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn ok_json(status: u16) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        json!({"message": "OK"}).to_string(),
    )
}

async fn handle(
    req: Request<Incoming>,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        content_type,
        body: body.clone(),
    });
    if mode.load(Ordering::SeqCst) == NOT_READY {
        return Ok(respond(404, "text/html", "<h1>Not Found</h1>".into()));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match (method.as_str(), segments.as_slice()) {
        ("GET", ["1.0", "info"]) => respond(
            200,
            "application/json",
            json!({
                "hostname": "amphora-test",
                "haproxy_version": "2.6.12",
                "api_version": "1.0",
                "keepalived_version": null,
                "ipvsadm_version": null
            })
            .to_string(),
        ),
        ("PUT", ["1.0", "loadbalancer", _, _, "haproxy"]) => {
            if String::from_utf8_lossy(&body).contains("INVALID") {
                respond(
                    400,
                    "application/json",
                    json!({"message": "Invalid request", "details": "[ALERT] parsing failed"})
                        .to_string(),
                )
            } else {
                ok_json(202)
            }
        }
        ("PUT", ["1.0", "loadbalancer", _, "reload"]) => ok_json(202),
        ("DELETE", ["1.0", "listeners", _]) => ok_json(200),
        ("POST", ["1.0", "plug", "vip", _]) => ok_json(202),
        ("POST", ["1.0", "plug", "network"]) => ok_json(202),
        ("PUT", ["1.0", "config"]) => ok_json(202),
        ("PUT", ["1.0", "certificate"]) => ok_json(202),
        ("GET", ["1.0", "interface", "203.0.113.5"]) => respond(
            200,
            "application/json",
            json!({"message": "OK", "interface": "eth1"}).to_string(),
        ),
        ("PUT", ["1.0", "vrrp", "upload"]) => {
            if String::from_utf8_lossy(&body).contains("INVALID") {
                respond(
                    400,
                    "application/json",
                    json!({"message": "Invalid request", "details": "keepalived -t failed"})
                        .to_string(),
                )
            } else {
                ok_json(200)
            }
        }
        ("PUT", ["1.0", "vrrp", "start" | "stop" | "reload"]) => ok_json(202),
        _ => respond(
            404,
            "application/json",
            json!({"error": "not found", "http_code": 404}).to_string(),
        ),
    };
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

struct Setup {
    _dir: tempfile::TempDir,
    ca: CertificateAuthority,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::init(dir.path().join("ca")).unwrap();
    Setup { _dir: dir, ca }
}

fn client(ca: &CertificateAuthority, port: u16) -> AgentClient {
    let mut config = AgentClientConfig::from_ca(ca);
    config.port = port;
    config.max_retries = 2;
    config.retry_interval = Duration::from_millis(20);
    config.connect_timeout = Duration::from_secs(2);
    config.read_timeout = Duration::from_secs(5);
    AgentClient::new(config).unwrap()
}

async fn agent_for(ca: &CertificateAuthority, id: AmphoraId, mode: u8) -> TestAgent {
    let cert = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
    TestAgent::start(cert.server_pem().expose(), &ca.client_ca_pem(), mode).await
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// Certificate authority.

#[test]
fn ca_init_creates_private_files_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca");
    let first = CertificateAuthority::init(&path).unwrap();
    assert_eq!(mode_of(&path), 0o700);
    for key in [
        certs::SERVER_CA_KEY_FILE,
        certs::CLIENT_CA_KEY_FILE,
        certs::CONTROLLER_CERT_FILE,
    ] {
        assert_eq!(mode_of(&path.join(key)), 0o600, "{key}");
    }
    for cert in [certs::SERVER_CA_CERT_FILE, certs::CLIENT_CA_CERT_FILE] {
        assert_eq!(mode_of(&path.join(cert)), 0o644, "{cert}");
    }
    // Two separate roots.
    assert_ne!(&first.server_ca_pem(), &first.client_ca_pem());

    let second = CertificateAuthority::init(&path).unwrap();
    assert_eq!(first.server_ca_pem(), second.server_ca_pem());
    assert_eq!(first.client_ca_pem(), second.client_ca_pem());
    assert_eq!(first.controller_identity(), second.controller_identity());

    // A certificate issued after reloading still chains to the original server CA.
    let id = AmphoraId::new();
    let cert = second
        .issue_amphora_cert(id, DEFAULT_CERT_VALIDITY)
        .unwrap();
    verify_server(&first.server_ca_pem(), &cert.cert_pem, &id.to_string()).unwrap();

    // Secrets stay out of Debug output.
    let dbg = format!("{first:?} {:?} {cert:?}", first.controller_identity());
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
}

#[test]
fn ca_init_refuses_incomplete_or_broken_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca");
    CertificateAuthority::init(&path).unwrap();

    // Half-written: one file missing.
    let key = path.join(certs::CLIENT_CA_KEY_FILE);
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(
        err.contains("incomplete") && err.contains("missing: client_ca.key"),
        "{err}"
    );
    std::fs::write(&key, &saved).unwrap();
    CertificateAuthority::init(&path).unwrap();

    // Unparsable certificate.
    let cert = path.join(certs::SERVER_CA_CERT_FILE);
    let saved = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(err.contains("server_ca.pem"), "{err}");
    // Empty (interrupted write).
    std::fs::write(&cert, "").unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(
        err.contains("server_ca.pem") && err.contains("empty"),
        "{err}"
    );
    std::fs::write(&cert, &saved).unwrap();

    // Unreadable: a directory where the key should be.
    let key = path.join(certs::SERVER_CA_KEY_FILE);
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(
        err.contains("cannot read") && err.contains("server_ca.key"),
        "{err}"
    );
    std::fs::remove_dir(&key).unwrap();

    // A key that does not belong to the certificate.
    let other = tempfile::tempdir().unwrap();
    CertificateAuthority::init(other.path()).unwrap();
    std::fs::copy(other.path().join(certs::SERVER_CA_KEY_FILE), &key).unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(err.contains("matches no certificate"), "{err}");
    std::fs::write(&key, &saved).unwrap();

    // The client CA key swapped for another one.
    let client_key = path.join(certs::CLIENT_CA_KEY_FILE);
    let saved_client_key = std::fs::read(&client_key).unwrap();
    std::fs::copy(other.path().join(certs::CLIENT_CA_KEY_FILE), &client_key).unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(
        err.contains("client_ca.key") && err.contains("matches no certificate"),
        "{err}"
    );
    std::fs::write(&client_key, &saved_client_key).unwrap();
    CertificateAuthority::init(&path).unwrap();

    // A controller certificate from another client CA.
    std::fs::copy(
        other.path().join(certs::CONTROLLER_CERT_FILE),
        path.join(certs::CONTROLLER_CERT_FILE),
    )
    .unwrap();
    let err = CertificateAuthority::init(&path).unwrap_err().to_string();
    assert!(err.contains("not signed by the client CA"), "{err}");
}

fn verify_server(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
            .build()
            .unwrap();
    let certs = der_certs(cert_pem);
    verifier
        .verify_server_cert(
            &certs[0],
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn verify_client(ca_pem: &str, cert_pem: &str) -> Result<(), rustls::Error> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider())
            .build()
            .unwrap();
    let certs = der_certs(cert_pem);
    verifier
        .verify_client_cert(&certs[0], &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn amphora_certificate_names_the_amphora_and_chains_to_the_server_ca() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let before = chrono::Utc::now().naive_utc();
    let cert = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();

    let der = der_certs(&cert.cert_pem).remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn: Vec<_> = parsed
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, vec![id.to_string()]);
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    let dns: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(dns, vec![id.to_string()]);
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!parsed.is_ca());

    // Thirty days of validity; expiry readable back from the PEM.
    let days = (cert.expires_at - before).num_seconds();
    assert!((2_592_000 - 60..=2_592_000 + 60).contains(&days), "{days}");
    assert_eq!(
        certs::cert_expiration(&cert.cert_pem).unwrap(),
        cert.expires_at
    );
    let short = ca
        .issue_amphora_cert(id, Duration::from_secs(3600))
        .unwrap();
    assert!(short.expires_at < cert.expires_at);
    assert!(ca.issue_amphora_cert(id, Duration::ZERO).is_err());

    // Verifies as the amphora's server certificate, for its id only, against the server CA only.
    verify_server(&ca.server_ca_pem(), &cert.cert_pem, &id.to_string()).unwrap();
    assert!(verify_server(
        &ca.server_ca_pem(),
        &cert.cert_pem,
        &AmphoraId::new().to_string()
    )
    .is_err());
    assert!(verify_server(&ca.client_ca_pem(), &cert.cert_pem, &id.to_string()).is_err());

    // The controller certificate is a client certificate of the client CA; an amphora
    // certificate is not accepted as a client by agents (separate CAs).
    let controller = &ca.controller_identity().cert_pem;
    verify_client(&ca.client_ca_pem(), controller).unwrap();
    let der = der_certs(controller).remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn: Vec<_> = parsed
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, vec!["OctaviaController"]);
    assert!(verify_client(&ca.client_ca_pem(), &cert.cert_pem).is_err());
}

#[test]
fn boot_bundle_holds_the_config_drive_files() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let conf = "[health_manager]\nheartbeat_key = \"s3cret\"\n";
    let cert = ca.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
    let bundle = ca.boot_bundle(&cert, conf);
    let files = bundle.files();
    let names: Vec<_> = files.iter().map(|f| (f.name, f.mode)).collect();
    assert_eq!(
        names,
        vec![
            ("server.pem", 0o600),
            ("client_ca.pem", 0o644),
            ("amphora-agent.conf", 0o600)
        ]
    );
    let (cert_pem, _key) = certs::split_cert_and_key(files[0].contents).unwrap();
    verify_server(&ca.server_ca_pem(), &cert_pem, &id.to_string()).unwrap();
    assert_eq!(
        certs::cert_expiration(&cert_pem).unwrap(),
        bundle.cert_expires_at
    );
    assert_eq!(files[1].contents, &ca.client_ca_pem());
    assert_eq!(files[2].contents, conf);
    let dbg = format!("{bundle:?} {files:?}");
    assert!(
        !dbg.contains("s3cret") && !dbg.contains("PRIVATE KEY"),
        "{dbg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Agent client.

#[tokio::test]
async fn calls_use_the_paths_and_bodies_of_the_agent_api() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let agent = agent_for(&ca, id, READY).await;
    let client = client(&ca, agent.addr.port());
    let amp = amphora(id);
    let lb = LoadBalancerId::new();

    let info = client
        .wait_for_connectivity(&amp, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(info.hostname, "amphora-test");
    assert_eq!(info.api_version, "1.0");
    assert_eq!(info.haproxy_version.as_deref(), Some("2.6.12"));

    let cfg = "global\n    daemon\n";
    client.upload_config(&amp, lb, cfg).await.unwrap();
    client.reload(&amp, lb).await.unwrap();
    client.remove_config(&amp, lb).await.unwrap();
    let vip_config = AmphoraNetworkConfig {
        subnet_cidr: "203.0.113.0/24".into(),
        gateway: Some("203.0.113.1".into()),
        mac_address: "fa:16:3e:00:00:01".into(),
        mtu: Some(1450),
        vrrp_ip: Some("203.0.113.5".into()),
        host_routes: vec![HostRoute {
            destination: "198.51.100.0/24".into(),
            nexthop: "203.0.113.254".into(),
        }],
    };
    client
        .plug_vip(&amp, "203.0.113.10", &vip_config, Topology::ActiveStandby)
        .await
        .unwrap();
    let member_config = MemberNetworkConfig {
        mac_address: "fa:16:3e:00:00:02".into(),
        addresses: vec![PortAddress {
            ip_address: "10.1.2.3".into(),
            subnet_cidr: "10.1.2.0/24".into(),
            gateway: Some("10.1.2.1".into()),
            host_routes: vec![HostRoute {
                destination: "10.9.0.0/16".into(),
                nexthop: "10.1.2.254".into(),
            }],
        }],
        mtu: Some(1400),
    };
    client.plug_network(&amp, &member_config).await.unwrap();
    let agent_conf = "[amphora_agent]\namphora_id = \"x\"\n";
    client.update_agent_config(&amp, agent_conf).await.unwrap();
    let renewed = ca.issue_amphora_cert(id, Duration::from_secs(600)).unwrap();
    client
        .upload_server_certificate(&amp, &renewed)
        .await
        .unwrap();
    assert_eq!(
        client.interface_of(&amp, "203.0.113.5").await.unwrap(),
        "eth1"
    );
    let vrrp_conf = "vrrp_instance x {\n}\n";
    client.upload_vrrp_config(&amp, vrrp_conf).await.unwrap();
    client.vrrp_action(&amp, VrrpAction::Start).await.unwrap();
    client.vrrp_action(&amp, VrrpAction::Stop).await.unwrap();
    let refused = client
        .upload_vrrp_config(&amp, "INVALID")
        .await
        .unwrap_err();
    assert!(!refused.is_retryable());
    assert_eq!(refused.owner(), FaultOwner::Agent);
    assert!(
        refused.to_string().contains("keepalived -t failed"),
        "{refused}"
    );
    let missing = client.interface_of(&amp, "203.0.113.99").await.unwrap_err();
    assert_eq!(missing.owner(), FaultOwner::Agent);

    let seen = agent.seen();
    let calls: Vec<(&str, String)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET", "/1.0/info".to_string()),
            ("PUT", format!("/1.0/loadbalancer/{id}/{lb}/haproxy")),
            ("PUT", format!("/1.0/loadbalancer/{lb}/reload")),
            ("DELETE", format!("/1.0/listeners/{lb}")),
            ("POST", "/1.0/plug/vip/203.0.113.10".to_string()),
            ("POST", "/1.0/plug/network".to_string()),
            ("PUT", "/1.0/config".to_string()),
            ("PUT", "/1.0/certificate".to_string()),
            ("GET", "/1.0/interface/203.0.113.5".to_string()),
            ("PUT", "/1.0/vrrp/upload".to_string()),
            ("PUT", "/1.0/vrrp/start".to_string()),
            ("PUT", "/1.0/vrrp/stop".to_string()),
            ("PUT", "/1.0/vrrp/upload".to_string()),
            ("GET", "/1.0/interface/203.0.113.99".to_string()),
        ]
    );
    assert_eq!(seen[9].body, vrrp_conf.as_bytes());
    assert_eq!(seen[1].body, cfg.as_bytes());
    assert!(seen[2].body.is_empty() && seen[3].body.is_empty());
    assert_eq!(
        seen[4].json(),
        json!({
            "subnet_cidr": "203.0.113.0/24",
            "gateway": "203.0.113.1",
            "mac_address": "fa:16:3e:00:00:01",
            "mtu": 1450,
            "vrrp_ip": "203.0.113.5",
            "host_routes": [{"nexthop": "203.0.113.254", "destination": "198.51.100.0/24"}],
            "additional_vips": [],
            "is_sriov": false,
            "topology": "ACTIVE_STANDBY"
        })
    );
    assert_eq!(seen[4].content_type.as_deref(), Some("application/json"));
    let body = seen[5].json();
    assert_eq!(body["mac_address"], "fa:16:3e:00:00:02");
    assert_eq!(body["mtu"], 1400);
    assert_eq!(
        body["fixed_ips"],
        json!([{
            "ip_address": "10.1.2.3",
            "subnet_cidr": "10.1.2.0/24",
            "host_routes": [{"nexthop": "10.1.2.254", "destination": "10.9.0.0/16"}],
            "gateway": "10.1.2.1",
        }])
    );
    assert_eq!(seen[6].body, agent_conf.as_bytes());
    // The new certificate followed by its key, as the agent's `server.pem`.
    assert_eq!(seen[7].body, renewed.server_pem().expose().as_bytes());
}

#[tokio::test]
async fn agent_errors_map_to_driver_errors() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let agent = agent_for(&ca, id, READY).await;
    let client = client(&ca, agent.addr.port());
    let amp = amphora(id);

    // Invalid configuration: the agent's 400 with HAProxy's words, not retried.
    let err = client
        .upload_config(&amp, LoadBalancerId::new(), "INVALID")
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.owner(), FaultOwner::Agent);
    assert!(err.to_string().contains("[ALERT] parsing failed"), "{err}");
    assert_eq!(agent.seen().len(), 1);

    // No address: our fault, nothing sent.
    let mut no_ip = amphora(id);
    no_ip.lb_network_ip = None;
    let err = client
        .reload(&no_ip, LoadBalancerId::new())
        .await
        .unwrap_err();
    assert_eq!(err.owner(), FaultOwner::Ours);

    // A member-network address that is not an IP: refused before anything is sent.
    let bad = MemberNetworkConfig {
        mac_address: "fa:16:3e:00:00:03".into(),
        addresses: vec![PortAddress {
            ip_address: "not-an-ip".into(),
            subnet_cidr: "10.0.0.0/24".into(),
            gateway: None,
            host_routes: Vec::new(),
        }],
        mtu: None,
    };
    let err = client.plug_network(&amp, &bad).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("not-an-ip"), "{err}");
    assert_eq!(agent.seen().len(), 1);

    // An agent that is not ready yet (plain 404): retried, then a retryable error.
    agent.mode.store(NOT_READY, Ordering::SeqCst);
    let err = client
        .reload(&amp, LoadBalancerId::new())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert_eq!(agent.seen().len(), 1 + 3);

    // Connections dropped: bounded retries, retryable. (A fresh client: the first one
    // holds a kept-alive connection the agent would still serve.)
    let client = self::client(&ca, agent.addr.port());
    agent.mode.store(DROP, Ordering::SeqCst);
    let before = agent.accepted.load(Ordering::SeqCst);
    let err = client
        .reload(&amp, LoadBalancerId::new())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.owner(), FaultOwner::Agent);
    assert_eq!(agent.accepted.load(Ordering::SeqCst) - before, 3);
}

#[tokio::test]
async fn agent_with_another_amphoras_certificate_is_refused() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    // The address answers with a valid certificate of the same CA, but for another amphora.
    let agent = agent_for(&ca, AmphoraId::new(), READY).await;
    let client = client(&ca, agent.addr.port());

    let err = client
        .reload(&amphora(id), LoadBalancerId::new())
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.owner(), FaultOwner::Agent);
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(agent.seen().is_empty(), "a request reached the wrong agent");

    // Waiting for it keeps refusing until the deadline, and says why.
    let err = client
        .wait_for_connectivity(&amphora(id), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(agent.seen().is_empty());
}

#[tokio::test]
async fn agent_certificate_from_another_ca_is_refused() {
    let Setup { ca, .. } = setup();
    let Setup { ca: rogue, .. } = setup();
    let id = AmphoraId::new();
    // Right name, wrong CA (the agent itself trusts our client CA).
    let cert = rogue.issue_amphora_cert(id, DEFAULT_CERT_VALIDITY).unwrap();
    let agent = TestAgent::start(cert.server_pem().expose(), &ca.client_ca_pem(), READY).await;
    let client = client(&ca, agent.addr.port());

    let err = client
        .update_agent_config(&amphora(id), "x")
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(agent.seen().is_empty());
}

#[tokio::test]
async fn agent_refuses_a_client_without_certificate() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let agent = agent_for(&ca, id, READY).await;

    // Same trust and server name as the agent client, but no client certificate.
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&ca.server_ca_pem()))
        .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve(&id.to_string(), agent.addr)
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://{id}:{}/1.0/info", agent.addr.port());
    assert!(anonymous.get(&url).send().await.is_err());
    eventually(
        "the agent to refuse the handshake",
        Duration::from_secs(10),
        || ready((agent.handshake_failures.load(Ordering::SeqCst) >= 1).then_some(())),
    )
    .await;
    assert!(agent.seen().is_empty());

    // The agent client, which presents the controller certificate, is served.
    let info = client(&ca, agent.addr.port())
        .wait_for_connectivity(&amphora(id), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(info.hostname, "amphora-test");
    assert_eq!(agent.seen().len(), 1);
}

#[tokio::test]
async fn wait_for_connectivity_returns_once_a_late_agent_comes_up() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    // First the amphora drops connections (booting), then its agent answers 404s without
    // routes (starting), then it is up.
    let agent = agent_for(&ca, id, DROP).await;
    let client = Arc::new(client(&ca, agent.addr.port()));
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            let started = Instant::now();
            let result = client
                .wait_for_connectivity(&amphora(id), Duration::from_secs(60))
                .await;
            (result, started.elapsed())
        }
    });
    eventually("connection attempts", Duration::from_secs(10), || {
        ready((agent.accepted.load(Ordering::SeqCst) >= 2).then_some(()))
    })
    .await;
    assert!(!waiting.is_finished());
    agent.mode.store(NOT_READY, Ordering::SeqCst);
    eventually(
        "requests to the starting agent",
        Duration::from_secs(10),
        || ready((agent.seen().len() >= 2).then_some(())),
    )
    .await;
    assert!(!waiting.is_finished());
    agent.mode.store(READY, Ordering::SeqCst);
    let (result, elapsed) = waiting.await.unwrap();
    let info = result.unwrap();
    assert_eq!(info.api_version, "1.0");
    // Backoff is short: well under Octavia's fixed 5 s polls once the agent is up.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}

#[tokio::test]
async fn wait_for_connectivity_times_out_with_a_clear_error() {
    let Setup { ca, .. } = setup();
    let id = AmphoraId::new();
    let agent = agent_for(&ca, id, DROP).await;
    let client = client(&ca, agent.addr.port());
    let started = Instant::now();
    let err = client
        .wait_for_connectivity(&amphora(id), Duration::from_secs(1))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_retryable());
    assert_eq!(err.owner(), FaultOwner::Agent);
    let text = err.to_string();
    assert!(
        text.contains(&format!("agent of amphora {id}"))
            && text.contains("did not answer within 1000 ms"),
        "{text}"
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // It polled repeatedly, not once.
    assert!(agent.accepted.load(Ordering::SeqCst) >= 3);
}

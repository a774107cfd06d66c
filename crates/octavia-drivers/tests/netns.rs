//! The `netns` compute and network drivers against the real kernel: namespaces, veths, bridges,
//! processes and TCP through the management network. Needs root and iproute2: under `CI=true`
//! their absence fails the tests, elsewhere the tests say they were skipped.
//!
//! Each test uses its own namespace prefix, bridge names and address ranges (10.213.N.0/24),
//! and a guard removes everything with those names, also when the test fails. Traffic only
//! goes to addresses inside namespaces the test created.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use octavia_drivers::netns::{
    AgentSettings, FixedImage, ManagementNetwork, NetworkSpec, ResolvedImage,
};
use octavia_drivers::{
    AmphoraCert, BuildRequest, CertificateAuthority, ComputeDriver, ComputeStatus, NetnsCompute,
    NetnsComputeSettings, NetnsNetwork, NetworkDriver, NetworkLookup, Secret, VipRequest,
    DEFAULT_CERT_VALIDITY,
};
use octavia_model::{now, Amphora, AmphoraId, LoadBalancerId, ProvisioningStatus, Vip};

const HELPER_ENV: &str = "NETNS_TEST_HELPER_LISTEN";
const HELPER_PORT: u16 = 7654;

/// Stand-in agent: listens inside the amphora namespace and greets every connection. Only
/// runs when started by the stand-in script (which sets the variable).
#[test]
#[ignore = "helper process started inside a namespace by the tests below"]
fn netns_listener_helper() {
    let Ok(addr) = std::env::var(HELPER_ENV) else {
        return;
    };
    let listener = TcpListener::bind(addr.as_str()).expect("helper binds");
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(b"amphora-standin\n");
    }
}

fn ip(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .1
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn link_exists(netns: Option<&str>, name: &str) -> bool {
    match netns {
        Some(ns) => ip(&["-n", ns, "link", "show", "dev", name]).0,
        None => ip(&["link", "show", "dev", name]).0,
    }
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next())
                .unwrap_or("Z");
            state != "Z" && state != "X"
        })
        .unwrap_or(false)
}

fn rand_hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_string()
}

/// Removes every namespace with the test's prefix (after killing its processes), every bridge
/// the test named (after removing its ports), and the state directory.
struct Cleanup {
    prefix: String,
    bridges: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cleanup {
    fn new(bridge_count: usize) -> Cleanup {
        let tag = rand_hex(6);
        Cleanup {
            prefix: format!("t{tag}-"),
            bridges: (0..bridge_count).map(|i| format!("tb{tag}{i}")).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn our_namespaces(&self) -> Vec<String> {
        namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&self.prefix))
            .collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in self.our_namespaces() {
            for pid in ip(&["netns", "pids", &ns]).1.lines() {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
            let _ = ip(&["netns", "del", &ns]);
        }
        for br in &self.bridges {
            let ports = ip(&["-o", "link", "show", "master", br]).1;
            for line in ports.lines() {
                if let Some(name) = line.split(':').nth(1) {
                    let name = name.trim().split('@').next().unwrap_or("");
                    let _ = ip(&["link", "del", "dev", name]);
                }
            }
            let _ = ip(&["link", "del", "dev", br]);
        }
    }
}

/// An executable stand-in for the agent: checks its config file exists, then runs `body`.
fn standin(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("standin-agent.sh");
    let script = format!("#!/bin/sh\n[ \"$1\" = --config ] && [ -f \"$2\" ] || exit 3\n{body}\n");
    std::fs::write(&path, script).expect("write stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn listener_standin(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    standin(
        dir,
        &format!(
            "export {HELPER_ENV}=0.0.0.0:{HELPER_PORT}\nexec {} --ignored --exact netns_listener_helper --nocapture",
            exe.display()
        ),
    )
}

fn sleep_standin(dir: &Path) -> PathBuf {
    standin(dir, "exec sleep 600")
}

fn compute(cleanup: &Cleanup, net: u8, agent: &Path, hosts: &[&str]) -> NetnsCompute {
    let ca = CertificateAuthority::init(cleanup.path().join("ca")).expect("CA");
    let settings = NetnsComputeSettings {
        state_dir: cleanup.path().join("compute"),
        netns_prefix: cleanup.prefix.clone(),
        management: ManagementNetwork {
            bridge: cleanup.bridges[0].clone(),
            cidr: format!("10.213.{net}.0/24").parse().expect("cidr"),
            host_address: Ipv4Addr::new(10, 213, net, 1),
        },
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        // Every host in zone az1, which `build_request` asks for.
        host_zones: hosts
            .iter()
            .map(|h| (h.to_string(), "az1".to_string()))
            .collect(),
        agent: AgentSettings {
            controller_ip_port_list: vec![format!("10.213.{net}.1:5555")],
            heartbeat_interval: std::time::Duration::from_secs(3),
            heartbeat_key: Secret::new("test-heartbeat-key"),
            haproxy_cmd: "/usr/sbin/haproxy".into(),
            bind_port: 9443,
        },
        images: Arc::new(FixedImage(ResolvedImage {
            image_id: "standin-image".into(),
            agent_path: agent.to_path_buf(),
        })),
    };
    NetnsCompute::new(settings, Arc::new(ca)).expect("driver")
}

/// A certificate for `amphora_id` from a CA kept in memory for the whole test binary (the
/// stand-in agents never serve it).
fn server_certificate(amphora_id: AmphoraId) -> AmphoraCert {
    static CA: std::sync::OnceLock<CertificateAuthority> = std::sync::OnceLock::new();
    let ca = CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        CertificateAuthority::init(dir.path().join("ca")).expect("CA")
    });
    ca.issue_amphora_cert(amphora_id, DEFAULT_CERT_VALIDITY)
        .expect("certificate")
}

fn build_request(amphora_id: AmphoraId) -> BuildRequest {
    BuildRequest {
        server_certificate: server_certificate(amphora_id),
        amphora_id,
        image_id: None,
        image_tag: None,
        flavor: None,
        availability_zone: Some("az1".into()),
        management_network: None,
        anti_affinity_peers: Vec::new(),
        anti_affinity: Default::default(),
        heartbeat_key: None,
    }
}

fn amphora(id: AmphoraId, compute_id: &str) -> Amphora {
    Amphora {
        compute_id: Some(compute_id.into()),
        ..Amphora::new(id, None, ProvisioningStatus::PendingCreate, now())
    }
}

/// Connect to the stand-in in the namespace until it greets us or the deadline passes.
fn greeting(addr: SocketAddr, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    loop {
        let attempt = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).and_then(|s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            Ok(line)
        });
        match attempt {
            Ok(line) if !line.is_empty() => return line,
            _ if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("no greeting from {addr}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_reach_and_delete_an_amphora() {
    if !octavia_test_support::require::netns("the netns driver tests") {
        return;
    }
    let cleanup = Cleanup::new(1);
    let agent = listener_standin(cleanup.path());
    let driver = compute(&cleanup, 41, &agent, &["host-a", "host-b"]);
    let amp = AmphoraId::new();

    let compute_id = driver.build(&build_request(amp)).await.expect("build");
    assert_eq!(compute_id, driver.compute_id_of(amp));
    assert!(compute_id.starts_with(&cleanup.prefix));
    assert!(namespaces().contains(&compute_id));

    let inst = driver.instance(&compute_id).await.expect("instance");
    assert_eq!(inst.status, ComputeStatus::Active, "{inst:?}");
    assert_eq!(inst.host.as_deref(), Some("host-a"));
    assert_eq!(inst.image_id.as_deref(), Some("standin-image"));
    assert_eq!(inst.availability_zone.as_deref(), Some("az1"));
    let lb_ip: Ipv4Addr = inst.lb_network_ip.clone().unwrap().parse().unwrap();
    assert_eq!(lb_ip, Ipv4Addr::new(10, 213, 41, 2));
    assert_eq!(
        driver.host(&compute_id).await.unwrap().as_deref(),
        Some("host-a")
    );

    // The veth: eth0 inside with the address, the host end on the management bridge.
    let record = driver.record(&compute_id).unwrap().expect("record");
    let (ok, addrs) = ip(&["-n", &compute_id, "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(ok && addrs.contains("10.213.41.2/24"), "{addrs}");
    let (_, lo) = ip(&["-n", &compute_id, "link", "show", "dev", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let (_, ports) = ip(&["-o", "link", "show", "master", &cleanup.bridges[0]]);
    assert!(ports.contains(&record.mgmt_veth), "{ports}");

    // Boot bundle written (secret files 0600), agent config names the amphora.
    let dir = driver.instance_dir(&compute_id);
    for f in ["server.pem", "client_ca.pem", "amphora-agent.conf"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let mode = std::fs::metadata(dir.join("server.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let conf = std::fs::read_to_string(dir.join("amphora-agent.conf")).unwrap();
    let parsed = amphora_agent::config::AgentConfig::parse(&conf).expect("the agent accepts it");
    assert_eq!(parsed.amphora_agent.amphora_id, amp.to_string());
    // The agent sees its own directory at AMPHORA_ROOT (a bind mount in its mount namespace
    // only) and runs the image's binary installed there.
    let root = Path::new(octavia_drivers::netns::AMPHORA_ROOT);
    assert_eq!(
        parsed.amphora_agent.agent_server_cert,
        root.join("server.pem")
    );
    assert_eq!(
        parsed.amphora_agent.agent_server_ca,
        root.join("client_ca.pem")
    );
    assert!(dir.join("bin/amphora-agent").is_file());
    assert!(
        !root.join("amphora-agent.conf").exists(),
        "the bind mount leaked into the host's mount namespace"
    );
    assert_eq!(
        parsed.health_manager.controller_ip_port_list,
        vec!["10.213.41.1:5555".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        parsed.health_manager.heartbeat_interval,
        Duration::from_secs(3)
    );
    assert_eq!(
        parsed
            .health_manager
            .heartbeat_key
            .as_ref()
            .map(|k| k.expose()),
        Some("test-heartbeat-key")
    );
    assert_eq!(parsed.haproxy_amphora.base_path, root);
    let pid_file: u32 = std::fs::read_to_string(dir.join("agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(Some(pid_file), record.agent_pid);
    assert!(pid_alive(pid_file));
    let (_, pids) = ip(&["netns", "pids", &compute_id]);
    assert!(
        pids.lines().any(|l| l.trim() == pid_file.to_string()),
        "{pids}"
    );

    // Host -> namespace over the management bridge.
    let line = tokio::task::spawn_blocking(move || {
        greeting(
            SocketAddr::from((lb_ip, HELPER_PORT)),
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    assert_eq!(line, "amphora-standin\n");

    // A second amphora is placed on the less loaded host and gets the next address.
    let amp2 = AmphoraId::new();
    let id2 = driver.build(&build_request(amp2)).await.expect("build 2");
    let inst2 = driver.instance(&id2).await.unwrap();
    assert_eq!(inst2.host.as_deref(), Some("host-b"));
    assert_eq!(inst2.lb_network_ip.as_deref(), Some("10.213.41.3"));

    // A zone no host is in, or a management network the driver does not have: the build
    // fails naming it, and creates nothing.
    let amp3 = AmphoraId::new();
    let elsewhere = BuildRequest {
        availability_zone: Some("az2".into()),
        ..build_request(amp3)
    };
    let err = driver.build(&elsewhere).await.unwrap_err();
    assert!(err.to_string().contains("availability zone az2"), "{err}");
    let other_net = BuildRequest {
        management_network: Some("some-other-net".into()),
        ..build_request(amp3)
    };
    let err = driver.build(&other_net).await.unwrap_err();
    assert!(err.to_string().contains("some-other-net"), "{err}");
    assert!(!namespaces().contains(&driver.compute_id_of(amp3)));

    assert!(driver.delete_management_network().is_err());

    // Delete: nothing remains; deleting again is fine.
    driver.delete(&compute_id).await.expect("delete");
    assert!(!namespaces().contains(&compute_id));
    assert!(!link_exists(None, &record.mgmt_veth));
    assert!(!pid_alive(pid_file));
    assert!(!dir.exists());
    assert_eq!(
        driver.status(&compute_id).await.unwrap(),
        ComputeStatus::Deleted
    );
    driver.delete(&compute_id).await.expect("delete again");
    driver.delete(&id2).await.expect("delete 2");
    assert!(cleanup.our_namespaces().is_empty());
    let (_, ports) = ip(&["-o", "link", "show", "master", &cleanup.bridges[0]]);
    assert!(ports.trim().is_empty(), "{ports}");
    driver.delete_management_network().expect("delete bridge");
    assert!(!link_exists(None, &cleanup.bridges[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_driver_adopts_what_exists() {
    if !octavia_test_support::require::netns("the netns driver tests") {
        return;
    }
    let cleanup = Cleanup::new(1);
    let agent = sleep_standin(cleanup.path());
    let amp = AmphoraId::new();
    let broken = AmphoraId::new();
    let (compute_id, pid, broken_id) = {
        let driver = compute(&cleanup, 42, &agent, &["h1"]);
        let id = driver.build(&build_request(amp)).await.expect("build");
        let broken_id = driver.build(&build_request(broken)).await.expect("build");
        let pid = driver.record(&id).unwrap().unwrap().agent_pid.unwrap();
        (id, pid, broken_id)
    };
    // Simulate losses while no controller runs: one namespace vanishes, one leaks.
    for p in ip(&["netns", "pids", &broken_id]).1.lines() {
        let _ = Command::new("kill").args(["-KILL", p.trim()]).status();
    }
    assert!(ip(&["netns", "del", &broken_id]).0);
    let orphan = format!("{}orphan", cleanup.prefix);
    assert!(ip(&["netns", "add", &orphan]).0);

    let driver = compute(&cleanup, 42, &agent, &["h1"]);
    let report = driver.reconcile().await.expect("reconcile");
    assert_eq!(report.adopted.len(), 1, "{report:?}");
    assert_eq!(report.adopted[0].compute_id, compute_id);
    assert_eq!(report.adopted[0].status, ComputeStatus::Active);
    assert_eq!(
        report.adopted[0].lb_network_ip.as_deref(),
        Some("10.213.42.2")
    );
    assert_eq!(report.orphan_namespaces, vec![orphan.clone()]);
    assert_eq!(report.stale_records, vec![broken_id.clone()]);
    assert_eq!(
        driver.status(&broken_id).await.unwrap(),
        ComputeStatus::Error
    );
    assert_eq!(driver.status(&orphan).await.unwrap(), ComputeStatus::Error);

    // Building the adopted amphora again changes nothing: same namespace, same agent.
    assert_eq!(driver.build(&build_request(amp)).await.unwrap(), compute_id);
    assert_eq!(
        driver.record(&compute_id).unwrap().unwrap().agent_pid,
        Some(pid)
    );
    let (_, pids) = ip(&["netns", "pids", &compute_id]);
    assert_eq!(pids.lines().count(), 1, "{pids}");

    // An agent that died is restarted in place.
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        driver.status(&compute_id).await.unwrap(),
        ComputeStatus::Error
    );
    assert!(driver.restart_agent(&compute_id).await.unwrap());
    assert_eq!(
        driver.status(&compute_id).await.unwrap(),
        ComputeStatus::Active
    );
    assert!(!driver.restart_agent(&compute_id).await.unwrap());

    for id in [&compute_id, &broken_id, &orphan] {
        driver.delete(id).await.expect("delete");
    }
    assert!(cleanup.our_namespaces().is_empty());
    let report = driver.reconcile().await.unwrap();
    assert!(report.adopted.is_empty() && report.stale_records.is_empty());
    assert!(report.orphan_namespaces.is_empty());
}

fn vip_request(lb: LoadBalancerId, subnet_id: &str, address: Option<&str>) -> VipRequest {
    VipRequest {
        load_balancer_id: lb,
        project_id: "p".into(),
        requested: Vip {
            ip_address: address.map(str::to_string),
            port_id: None,
            subnet_id: Some(subnet_id.into()),
            network_id: None,
            qos_policy_id: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_allocates_distinct_addresses_releases_and_persists() {
    if !octavia_test_support::require::netns("the netns driver tests") {
        return;
    }
    let cleanup = Cleanup::new(1);
    let state = cleanup.path().join("network");
    let driver = NetnsNetwork::new(&state).unwrap();
    let net = driver
        .create_network(&NetworkSpec {
            name: "tenant".into(),
            bridge: Some(cleanup.bridges[0].clone()),
            cidr: "10.213.43.0/29".into(),
            gateway: Some("10.213.43.1".into()),
        })
        .expect("create network");
    let (_, addrs) = ip(&["-o", "-4", "addr", "show", "dev", &cleanup.bridges[0]]);
    assert!(addrs.contains("10.213.43.1/29"), "{addrs}");
    assert!(driver
        .create_network(&NetworkSpec {
            name: "tenant".into(),
            bridge: None,
            cidr: "10.213.44.0/24".into(),
            gateway: None,
        })
        .is_err());
    assert_eq!(driver.list_networks().unwrap(), vec![net.clone()]);

    let lbs: Vec<LoadBalancerId> = (0..3).map(|_| LoadBalancerId::new()).collect();
    let mut vips = Vec::new();
    for lb in &lbs {
        vips.push(
            driver
                .allocate_vip(&vip_request(*lb, &net.subnet_id, None))
                .await
                .unwrap(),
        );
    }
    let addresses: Vec<_> = vips.iter().map(|v| v.ip_address.clone().unwrap()).collect();
    assert_eq!(addresses, ["10.213.43.2", "10.213.43.3", "10.213.43.4"]);
    assert_eq!(vips[0].network_id.as_deref(), Some(net.id.as_str()));
    // Idempotent per load balancer.
    let again = driver
        .allocate_vip(&vip_request(lbs[0], &net.subnet_id, None))
        .await
        .unwrap();
    assert_eq!(again, vips[0]);
    // A requested address, and the same one again for someone else is refused.
    let lb4 = LoadBalancerId::new();
    let v4 = driver
        .allocate_vip(&vip_request(lb4, &net.subnet_id, Some("10.213.43.6")))
        .await
        .unwrap();
    assert_eq!(v4.ip_address.as_deref(), Some("10.213.43.6"));
    let err = driver
        .allocate_vip(&vip_request(
            LoadBalancerId::new(),
            &net.subnet_id,
            Some("10.213.43.6"),
        ))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(driver
        .allocate_vip(&vip_request(
            LoadBalancerId::new(),
            &net.subnet_id,
            Some("10.213.99.6")
        ))
        .await
        .is_err());

    // Release, then the address is handed out again.
    driver.deallocate_vip(lbs[1], &vips[1]).await.unwrap();
    driver.deallocate_vip(lbs[1], &vips[1]).await.unwrap();
    let lb5 = LoadBalancerId::new();
    let v5 = driver
        .allocate_vip(&vip_request(lb5, &net.subnet_id, None))
        .await
        .unwrap();
    assert_eq!(v5.ip_address.as_deref(), Some("10.213.43.3"));

    // A new driver on the same state sees every allocation; the /29 is now full.
    drop(driver);
    let driver = NetnsNetwork::new(&state).unwrap();
    assert_eq!(driver.ports().unwrap().len(), 4);
    let reserved = driver.reserve_address("tenant", "member server").unwrap();
    assert_eq!(reserved.ip_address, "10.213.43.5");
    assert!(driver.reserve_address("tenant", "one too many").is_err());
    let subnet = driver.find_subnet(&net.subnet_id).await.unwrap().unwrap();
    assert_eq!(subnet.cidr, "10.213.43.0/29");
    assert_eq!(subnet.gateway_ip.as_deref(), Some("10.213.43.1"));
    assert_eq!(subnet.network_id, net.id);
    let network = NetworkLookup::find_network(&driver, &net.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(network.subnet_ids, vec![net.subnet_id.clone()]);
    assert!(driver
        .find_subnet("no-such-subnet")
        .await
        .unwrap()
        .is_none());
    assert!(NetworkLookup::find_network(&driver, "no-such-network")
        .await
        .unwrap()
        .is_none());
    assert!(driver.find_port("no-such-port").await.unwrap().is_none());
    // Every port of this driver is bound to something: none can be handed over as a VIP.
    let port = driver.find_port(&reserved.id).await.unwrap().unwrap();
    assert_eq!(port.network_id, net.id);
    assert_eq!(port.fixed_ips[0].ip_address, "10.213.43.5");
    assert_eq!(port.device_id.as_deref(), Some("reserved (member server)"));
    let vip_port = v5.port_id.clone().unwrap();
    let port = driver.find_port(&vip_port).await.unwrap().unwrap();
    assert_eq!(port.device_id, Some(format!("loadbalancer-{lb5}")));
    // Releasing what was never allocated changes nothing.
    driver
        .deallocate_vip(LoadBalancerId::new(), &Vip::default())
        .await
        .unwrap();
    assert_eq!(driver.ports().unwrap().len(), 5);

    // The network cannot go while addresses are allocated; afterwards its bridge goes too.
    assert!(driver.delete_network("tenant").is_err());
    for (lb, vip) in [
        (lbs[0], &vips[0]),
        (lbs[2], &vips[2]),
        (lb4, &v4),
        (lb5, &v5),
    ] {
        driver.deallocate_vip(lb, vip).await.unwrap();
    }
    assert!(driver.release_address(&reserved.id).unwrap());
    assert!(!driver.release_address(&reserved.id).unwrap());
    assert!(driver.delete_network("tenant").unwrap());
    assert!(!driver.delete_network("tenant").unwrap());
    assert!(!link_exists(None, &cleanup.bridges[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plug_vip_and_member_networks_into_an_amphora() {
    if !octavia_test_support::require::netns("the netns driver tests") {
        return;
    }
    let cleanup = Cleanup::new(3);
    let agent = sleep_standin(cleanup.path());
    let compute = compute(&cleanup, 45, &agent, &["h1"]);
    let network = NetnsNetwork::new(cleanup.path().join("network")).unwrap();
    let vip_net = network
        .create_network(&NetworkSpec {
            name: "vipnet".into(),
            bridge: Some(cleanup.bridges[1].clone()),
            cidr: "10.213.46.0/24".into(),
            gateway: Some("10.213.46.1".into()),
        })
        .unwrap();
    let member_net = network
        .create_network(&NetworkSpec {
            name: "members".into(),
            bridge: Some(cleanup.bridges[2].clone()),
            cidr: "10.213.47.0/24".into(),
            gateway: None,
        })
        .unwrap();

    let amp_id = AmphoraId::new();
    let compute_id = compute.build(&build_request(amp_id)).await.unwrap();
    let amp = amphora(amp_id, &compute_id);
    let lb = LoadBalancerId::new();
    let vip = network
        .allocate_vip(&vip_request(lb, &vip_net.subnet_id, None))
        .await
        .unwrap();

    let plug = network.plug_vip(&amp, &vip).await.expect("plug vip");
    assert_eq!(plug.ha_ip, "10.213.46.2");
    assert_eq!(plug.vrrp_ip, "10.213.46.3");
    assert_eq!(Some(plug.ha_port_id.as_str()), vip.port_id.as_deref());
    let config = network.network_config(&amp, &vip).await.unwrap();
    assert_eq!(config.subnet_cidr, "10.213.46.0/24");
    assert_eq!(config.vrrp_ip.as_deref(), Some("10.213.46.3"));
    let (_, inside) = ip(&["-n", &compute_id, "-o", "link", "show"]);
    let vip_line = inside
        .lines()
        .find(|l| l.contains(&config.mac_address))
        .unwrap_or_else(|| panic!("no interface with {} in {inside}", config.mac_address));
    assert!(vip_line.contains("eth1"), "{vip_line}");
    let port = network
        .ports()
        .unwrap()
        .into_iter()
        .find(|p| p.id == plug.vrrp_port_id)
        .unwrap();
    let host_if = port.host_ifname.clone().unwrap();
    let (_, on_bridge) = ip(&["-o", "link", "show", "master", &cleanup.bridges[1]]);
    assert!(on_bridge.contains(&host_if), "{on_bridge}");
    // Plugging again returns the same port.
    assert_eq!(network.plug_vip(&amp, &vip).await.unwrap(), plug);

    let iface = network
        .plug_network(&compute_id, &member_net.id)
        .await
        .unwrap();
    assert_eq!(iface.fixed_ips[0].ip_address, "10.213.47.1");
    assert_eq!(iface.compute_id, compute_id);
    let (_, inside) = ip(&["-n", &compute_id, "-o", "link", "show"]);
    assert!(inside.contains(&iface.mac_address), "{inside}");
    let plugged = network.plugged_networks(&compute_id).await.unwrap();
    assert_eq!(plugged.len(), 2);

    network
        .unplug_network(&compute_id, &member_net.id)
        .await
        .unwrap();
    network
        .unplug_network(&compute_id, &member_net.id)
        .await
        .unwrap();
    let (_, inside) = ip(&["-n", &compute_id, "-o", "link", "show"]);
    assert!(!inside.contains(&iface.mac_address), "{inside}");
    // The port is found by its kind: an incomplete VIP (a failed allocation) unplugs too,
    // and unplugging again, or an amphora without an instance, is nothing to do.
    network.unplug_vip(&amp, &Vip::default()).await.unwrap();
    assert!(!link_exists(None, &host_if));
    network.unplug_vip(&amp, &vip).await.unwrap();
    let unbuilt = Amphora {
        compute_id: None,
        ..amp.clone()
    };
    network.unplug_vip(&unbuilt, &vip).await.unwrap();
    assert!(network
        .plugged_networks(&compute_id)
        .await
        .unwrap()
        .is_empty());
    assert!(network.network_config(&amp, &vip).await.is_err());

    compute.delete(&compute_id).await.unwrap();
    network.deallocate_vip(lb, &vip).await.unwrap();
    assert!(network.delete_network("vipnet").unwrap());
    assert!(network.delete_network("members").unwrap());
    assert!(cleanup.our_namespaces().is_empty());
    for br in &cleanup.bridges[1..] {
        assert!(!link_exists(None, br));
    }
}

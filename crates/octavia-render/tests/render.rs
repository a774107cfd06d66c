//! Golden-file tests of the haproxy.cfg renderer; every golden config also passes `haproxy -c`.
//!
//! `UPDATE_GOLDEN=1 cargo nextest run -p octavia-render` rewrites `tests/golden/*.cfg`.
//! The `haproxy -c` check needs HAProxy: under `CI=true` its absence fails the tests,
//! elsewhere they skip that check with a printed reason. `HAPROXY_BIN` overrides the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use octavia_model::*;
use octavia_render::{render_haproxy, RenderError, RenderInput, RenderSettings, Subject};
use octavia_test_support::{fixtures, require};

// ---------------------------------------------------------------------------------------
// Fixtures: readable, fixed ids so the golden files are stable.

fn id<T: FromStr>(prefix: u32, n: u64) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("{prefix:08x}-0000-4000-8000-{n:012x}")
        .parse()
        .expect("fixture id")
}

const LB: u32 = 0x1b;
const LS: u32 = 0x15;
const PL: u32 = 0x9001;
const MB: u32 = 0x3e3b;
const HM: u32 = 0x4e;
const PO: u32 = 0x7001;
const RU: u32 = 0x7e;

fn lb_id() -> LoadBalancerId {
    id(LB, 1)
}

fn load_balancer() -> LoadBalancer {
    LoadBalancer {
        id: lb_id(),
        project_id: "e3cd678b11784734bc366148aa37580e".into(),
        name: Some("lb".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        vip: Vip::default(),
        ..fixtures::load_balancer("", Topology::Single)
    }
}

fn listener(n: u64, protocol: ListenerProtocol, port: i32, pool: Option<u64>) -> Listener {
    Listener {
        id: id(LS, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        default_pool_id: pool.map(|p| id(PL, p)),
        ..fixtures::listener(lb_id(), protocol, port)
    }
}

fn pool(n: u64, protocol: PoolProtocol, algorithm: LbAlgorithm) -> Pool {
    Pool {
        id: id(PL, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        lb_algorithm: algorithm,
        ..fixtures::pool(lb_id(), protocol)
    }
}

fn member(n: u64, pool: u64, address: &str, port: i32) -> Member {
    Member {
        id: id(MB, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        ..fixtures::member(id(PL, pool), address, port)
    }
}

fn monitor(n: u64, pool: u64, kind: HealthMonitorType) -> HealthMonitor {
    HealthMonitor {
        id: id(HM, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        ..fixtures::health_monitor(id(PL, pool), kind)
    }
}

fn policy(n: u64, listener: u64, position: i32, action: L7PolicyAction) -> L7Policy {
    L7Policy {
        id: id(PO, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        action,
        ..fixtures::l7policy(id(LS, listener), position, None)
    }
}

fn rule(
    n: u64,
    policy: u64,
    kind: L7RuleType,
    compare: L7RuleCompareType,
    key: Option<&str>,
    value: &str,
) -> L7Rule {
    L7Rule {
        id: id(RU, n),
        project_id: "p".into(),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        key: key.map(str::to_string),
        ..fixtures::l7rule(id(PO, policy), kind, compare, value)
    }
}

/// One load balancer's worth of objects.
struct Scenario {
    lb: LoadBalancer,
    listeners: Vec<Listener>,
    pools: Vec<Pool>,
    members: Vec<Member>,
    monitors: Vec<HealthMonitor>,
    policies: Vec<L7Policy>,
    rules: Vec<L7Rule>,
    vip: String,
    settings: RenderSettings,
    /// Substrings of the only `[WARNING]` lines `haproxy -c` may print for this scenario.
    allowed_warnings: Vec<&'static str>,
}

impl Scenario {
    fn new() -> Self {
        Self {
            lb: load_balancer(),
            listeners: vec![],
            pools: vec![],
            members: vec![],
            monitors: vec![],
            policies: vec![],
            rules: vec![],
            vip: "203.0.113.10".into(),
            settings: RenderSettings::default(),
            allowed_warnings: vec![],
        }
    }

    fn render_with(&self, settings: &RenderSettings) -> Result<String, RenderError> {
        let input = RenderInput {
            load_balancer: &self.lb,
            listeners: &self.listeners,
            pools: &self.pools,
            members: &self.members,
            health_monitors: &self.monitors,
            l7policies: &self.policies,
            l7rules: &self.rules,
            vip_address: &self.vip,
        };
        render_haproxy(&input, settings)
    }

    fn render(&self) -> Result<String, RenderError> {
        self.render_with(&self.settings)
    }
}

// ---------------------------------------------------------------------------------------
// Golden comparison and `haproxy -c`.

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.cfg"))
}

/// Render the scenario into a scratch directory laid out as the agent keeps it and run
/// `haproxy -c` on it; any warning or alert fails the test.
fn haproxy_check(name: &str, scenario: &Scenario) {
    let Some(bin) = require::haproxy(&format!("the haproxy -c check of {name}")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().to_str().expect("utf-8 temp path").to_string();
    let lb_dir = dir.path().join(scenario.lb.id.to_string());
    std::fs::create_dir_all(&lb_dir).expect("lb dir");
    // What `show servers state` writes for no servers: the version line and the header.
    std::fs::write(
        lb_dir.join("servers-state"),
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
         srv_iweight srv_time_since_last_change srv_check_status srv_check_result \
         srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id \
         srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
         srv_agent_addr srv_agent_port\n",
    )
    .expect("server state file");
    let settings = RenderSettings {
        base_path: base.clone(),
        log_target: format!("{base}/log.sock"),
        ping_wrapper_path: format!("{base}/ping-wrapper.sh"),
        ..scenario.settings.clone()
    };
    let text = scenario
        .render_with(&settings)
        .expect("render for haproxy -c");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, &text).expect("write config");
    let output = Command::new(&bin)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("run haproxy -c");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "haproxy -c refused golden {name} ({}):\n{report}\n--- config ---\n{text}",
        output.status
    );
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("[ALERT]") || l.contains("[WARNING]"))
        .filter(|l| {
            !(l.contains("[WARNING]") && scenario.allowed_warnings.iter().any(|w| l.contains(w)))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "haproxy -c warned about golden {name}: {unexpected:?}\n{report}\n--- config ---\n{text}"
    );
}

/// Compare with (or, under `UPDATE_GOLDEN=1`, rewrite) the golden file, then `haproxy -c`.
fn golden(name: &str, scenario: &Scenario) {
    let text = scenario.render().expect("render");
    assert_eq!(
        scenario.render().expect("render again"),
        text,
        "rendering is not deterministic"
    );
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &text).expect("write golden file");
    } else {
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        assert!(
            want == text,
            "{name} differs from {} (UPDATE_GOLDEN=1 rewrites it)\n--- want ---\n{want}\n--- got ---\n{text}",
            path.display()
        );
    }
    haproxy_check(name, scenario);
}

// ---------------------------------------------------------------------------------------
// Scenarios.

fn http_basic() -> Scenario {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Http, 80, Some(1)));
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.members.push(member(1, 1, "10.0.0.11", 8080));
    s.members.push(member(2, 1, "10.0.0.12", 8080));
    let mut hm = monitor(1, 1, HealthMonitorType::Http);
    hm.url_path = Some("/healthz".into());
    hm.http_version = Some(1.1);
    hm.domain_name = Some("www.example.com".into());
    hm.expected_codes = Some("200-204,301".into());
    hm.http_method = Some(HttpMethod::Head);
    s.monitors.push(hm);
    s
}

#[test]
fn golden_http_basic() {
    golden("http_basic", &http_basic());
}

/// A PROMETHEUS listener beside an HTTP one: HAProxy's exporter on the amphora's loopback,
/// the listener's requests sent to the agent's metrics proxy.
#[test]
fn golden_prometheus() {
    let mut s = http_basic();
    s.listeners
        .push(listener(2, ListenerProtocol::Prometheus, 9100, None));
    golden("prometheus", &s);
}

#[test]
fn golden_tcp() {
    let mut s = Scenario::new();
    let mut l = listener(1, ListenerProtocol::Tcp, 5432, Some(1));
    l.timeout_tcp_inspect = 1500;
    s.listeners.push(l);
    s.pools
        .push(pool(1, PoolProtocol::Tcp, LbAlgorithm::LeastConnections));
    s.members.push(member(1, 1, "10.0.0.11", 5432));
    s.members.push(member(2, 1, "10.0.0.12", 5432));
    s.monitors.push(monitor(1, 1, HealthMonitorType::Tcp));
    golden("tcp", &s);
}

#[test]
fn golden_https_passthrough() {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Https, 443, Some(1)));
    s.pools
        .push(pool(1, PoolProtocol::Https, LbAlgorithm::SourceIp));
    s.members.push(member(1, 1, "10.0.0.11", 443));
    s.monitors.push(monitor(1, 1, HealthMonitorType::TlsHello));
    // A second pass-through listener forwarding to a TCP pool with an HTTPS monitor.
    s.listeners
        .push(listener(2, ListenerProtocol::Https, 8443, Some(2)));
    s.pools
        .push(pool(2, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    s.members.push(member(2, 2, "10.0.0.12", 443));
    let mut hm = monitor(2, 2, HealthMonitorType::Https);
    hm.url_path = Some("/status".into());
    s.monitors.push(hm);
    golden("https_passthrough", &s);
}

#[test]
fn golden_algorithms() {
    let mut s = Scenario::new();
    for (n, alg) in [
        (1, LbAlgorithm::RoundRobin),
        (2, LbAlgorithm::LeastConnections),
        (3, LbAlgorithm::SourceIp),
    ] {
        s.listeners.push(listener(
            n,
            ListenerProtocol::Http,
            8000 + n as i32,
            Some(n),
        ));
        s.pools.push(pool(n, PoolProtocol::Http, alg));
        s.members.push(member(n, n, "10.0.0.11", 80));
    }
    golden("algorithms", &s);
}

#[test]
fn golden_persistence() {
    let mut s = Scenario::new();
    let kinds = [
        (1, SessionPersistenceType::SourceIp, None),
        (2, SessionPersistenceType::HttpCookie, None),
        (3, SessionPersistenceType::AppCookie, Some("JSESSIONID")),
    ];
    for (n, kind, cookie) in kinds {
        s.listeners.push(listener(
            n,
            ListenerProtocol::Http,
            8000 + n as i32,
            Some(n),
        ));
        let mut p = pool(n, PoolProtocol::Http, LbAlgorithm::RoundRobin);
        p.session_persistence = Some(SessionPersistence {
            persistence_type: kind,
            cookie_name: cookie.map(str::to_string),
            persistence_timeout: None,
            persistence_granularity: None,
        });
        s.pools.push(p);
        s.members.push(member(2 * n, n, "10.0.0.11", 80));
        s.members.push(member(2 * n + 1, n, "10.0.0.12", 80));
    }
    // On a TCP listener, SOURCE_IP works and cookie persistence is left out.
    for (n, kind) in [
        (4, SessionPersistenceType::SourceIp),
        (5, SessionPersistenceType::HttpCookie),
    ] {
        s.listeners
            .push(listener(n, ListenerProtocol::Tcp, 9000 + n as i32, Some(n)));
        let mut p = pool(n, PoolProtocol::Tcp, LbAlgorithm::RoundRobin);
        p.session_persistence = Some(SessionPersistence {
            persistence_type: kind,
            cookie_name: None,
            persistence_timeout: None,
            persistence_granularity: None,
        });
        s.pools.push(p);
        s.members.push(member(2 * n, n, "10.0.0.13", 80));
    }
    golden("persistence", &s);
}

#[test]
fn golden_health_monitors() {
    let mut s = Scenario::new();
    let kinds = [
        (
            1,
            ListenerProtocol::Http,
            PoolProtocol::Http,
            HealthMonitorType::Http,
        ),
        (
            2,
            ListenerProtocol::Tcp,
            PoolProtocol::Tcp,
            HealthMonitorType::Https,
        ),
        (
            3,
            ListenerProtocol::Tcp,
            PoolProtocol::Tcp,
            HealthMonitorType::Tcp,
        ),
        (
            4,
            ListenerProtocol::Tcp,
            PoolProtocol::Tcp,
            HealthMonitorType::TlsHello,
        ),
        (
            5,
            ListenerProtocol::Tcp,
            PoolProtocol::Tcp,
            HealthMonitorType::Ping,
        ),
        (
            6,
            ListenerProtocol::Http,
            PoolProtocol::Http,
            HealthMonitorType::Http,
        ),
    ];
    for (n, lp, pp, kind) in kinds {
        s.listeners.push(listener(n, lp, 8000 + n as i32, Some(n)));
        s.pools.push(pool(n, pp, LbAlgorithm::RoundRobin));
        let mut m = member(n, n, "10.0.0.11", 80);
        m.monitor_port = Some(8081);
        s.members.push(m);
        let mut hm = monitor(n, n, kind);
        hm.delay = 10;
        hm.timeout = 4;
        hm.rise_threshold = 1;
        hm.fall_threshold = 10;
        s.monitors.push(hm);
    }
    // HTTP/1.0 with a method, path and a list of codes.
    let hm = &mut s.monitors[5];
    hm.http_version = Some(1.0);
    hm.http_method = Some(HttpMethod::Post);
    hm.url_path = Some("/check?full=1".into());
    hm.expected_codes = Some("200,202".into());
    hm.domain_name = None;
    golden("health_monitors", &s);
}

#[test]
fn golden_members() {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Tcp, 80, Some(1)));
    s.pools
        .push(pool(1, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    s.monitors.push(monitor(1, 1, HealthMonitorType::Tcp));
    let mut m = member(1, 1, "10.0.0.11", 80);
    m.weight = 0;
    s.members.push(m);
    let mut m = member(2, 1, "10.0.0.12", 80);
    m.weight = 256;
    m.monitor_address = Some("10.0.1.12".into());
    m.monitor_port = Some(9090);
    s.members.push(m);
    let mut m = member(3, 1, "10.0.0.13", 80);
    m.backup = true;
    s.members.push(m);
    let mut m = member(4, 1, "10.0.0.14", 80);
    m.enabled = false;
    s.members.push(m);
    let mut m = member(5, 1, "2001:db8::15", 8080);
    m.weight = 7;
    m.monitor_address = Some("2001:db8:1::15".into());
    s.members.push(m);
    let mut m = member(6, 1, "10.0.0.16", 80);
    m.provisioning_status = ProvisioningStatus::PendingDelete;
    s.members.push(m);
    // Members are ordered by id, whatever the input order.
    s.members.reverse();
    // A pool without a monitor: no check options, even with a monitor address.
    s.listeners
        .push(listener(2, ListenerProtocol::Tcp, 81, Some(2)));
    s.pools
        .push(pool(2, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    let mut m = member(7, 2, "10.0.0.17", 80);
    m.monitor_address = Some("10.0.1.17".into());
    m.backup = true;
    m.enabled = false;
    s.members.push(m);
    golden("members", &s);
}

#[test]
fn golden_timeouts_and_limits() {
    let mut s = Scenario::new();
    let mut l = listener(1, ListenerProtocol::Http, 80, Some(1));
    l.connection_limit = 1234;
    l.timeout_client_data = 1000;
    l.timeout_member_connect = 2000;
    l.timeout_member_data = 3000;
    l.timeout_tcp_inspect = 4000;
    s.listeners.push(l);
    let mut l = listener(2, ListenerProtocol::Tcp, 81, Some(2));
    l.connection_limit = 10;
    l.timeout_client_data = 0;
    s.listeners.push(l);
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.pools
        .push(pool(2, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    s.members.push(member(1, 1, "10.0.0.11", 80));
    s.members.push(member(2, 2, "10.0.0.11", 81));
    s.settings.default_connection_limit = 40000;
    // `timeout client 0` means no timeout, as in Octavia; HAProxy warns about it.
    s.allowed_warnings =
        vec!["missing timeouts for frontend '00000015-0000-4000-8000-000000000002'"];
    golden("timeouts_and_limits", &s);
}

#[test]
fn golden_insert_headers() {
    let mut s = http_basic();
    let headers = &mut s.listeners[0].insert_headers;
    for name in [
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "X-Forwarded-IP",
        "X-Client-IP",
        "X-Real-IP",
    ] {
        headers.insert(name.into(), "true".into());
    }
    // A second listener asks only for X-Forwarded-For ("True") and turns the port off.
    s.listeners
        .push(listener(2, ListenerProtocol::Http, 8080, Some(1)));
    let headers = &mut s.listeners[1].insert_headers;
    headers.insert("X-Forwarded-For".into(), "True".into());
    headers.insert("X-Forwarded-Port".into(), "false".into());
    // Headers never go to a TCP listener's backends.
    let mut l = listener(3, ListenerProtocol::Tcp, 9000, Some(1));
    l.insert_headers
        .insert("X-Forwarded-For".into(), "true".into());
    s.listeners.push(l);
    golden("insert_headers", &s);
}

#[test]
fn golden_allowed_cidrs() {
    let mut s = Scenario::new();
    let mut l = listener(1, ListenerProtocol::Http, 80, Some(1));
    l.allowed_cidrs = vec![
        "192.0.2.0/24".into(),
        "10.0.0.0/8".into(),
        "2001:db8::/32".into(),
        "198.51.100.7".into(),
        "10.0.0.0/8".into(),
    ];
    s.listeners.push(l);
    let mut l = listener(2, ListenerProtocol::Tcp, 22, Some(2));
    l.allowed_cidrs = vec!["0.0.0.0/0".into()];
    s.listeners.push(l);
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.pools
        .push(pool(2, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    s.members.push(member(1, 1, "10.0.0.11", 80));
    s.members.push(member(2, 2, "10.0.0.11", 22));
    golden("allowed_cidrs", &s);
}

/// Every rule type with every compare type it accepts, alternating `invert`.
fn l7_rule_matrix() -> Vec<(
    L7RuleType,
    L7RuleCompareType,
    Option<&'static str>,
    &'static str,
)> {
    use L7RuleCompareType as C;
    use L7RuleType as T;
    let all = [
        C::Regex,
        C::StartsWith,
        C::EndsWith,
        C::Contains,
        C::EqualTo,
    ];
    let mut out = Vec::new();
    for c in all {
        let v = if c == C::Regex {
            "^www\\.example\\.(com|org)$"
        } else {
            "www.example.com"
        };
        out.push((T::HostName, c, None, v));
        let v = if c == C::Regex {
            "^/api/v[12]/"
        } else {
            "/api"
        };
        out.push((T::Path, c, None, v));
        let v = if c == C::Regex {
            "^Bearer [a-z]+$"
        } else {
            "Bearer abc"
        };
        out.push((T::Header, c, Some("Authorization"), v));
        out.push((T::Cookie, c, Some("session"), "abc123"));
        out.push((T::SslDnField, c, Some("CN"), "client.example.com"));
    }
    out.push((T::FileType, C::EqualTo, None, "jpg"));
    out.push((T::FileType, C::Regex, None, "\\.(png|gif)$"));
    out.push((T::SslConnHasCert, C::EqualTo, None, "true"));
    out.push((T::SslVerifyResult, C::EqualTo, None, "0"));
    out
}

#[test]
fn golden_l7_rules() {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Http, 80, Some(1)));
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.pools
        .push(pool(2, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.members.push(member(1, 1, "10.0.0.11", 80));
    s.members.push(member(2, 2, "10.0.0.12", 80));
    for (n, (kind, compare, key, value)) in l7_rule_matrix().into_iter().enumerate() {
        let n = n as u64 + 1;
        let mut p = policy(n, 1, n as i32, L7PolicyAction::RedirectToPool);
        p.redirect_pool_id = Some(id(PL, 2));
        s.policies.push(p);
        let mut r = rule(n, n, kind, compare, key, value);
        // Every other rule is inverted.
        r.invert = n & 1 == 0;
        s.rules.push(r);
    }
    golden("l7_rules", &s);
}

#[test]
fn golden_l7_actions() {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Http, 80, Some(1)));
    for n in 1..=3 {
        s.pools
            .push(pool(n, PoolProtocol::Http, LbAlgorithm::RoundRobin));
        s.members.push(member(n, n, "10.0.0.11", 80 + n as i32));
    }
    s.pools[2].enabled = false;
    let path = |n, value| {
        rule(
            n,
            n,
            L7RuleType::Path,
            L7RuleCompareType::StartsWith,
            None,
            value,
        )
    };
    // Written in reverse position order on purpose: positions decide, not input order.
    let mut p = policy(1, 1, 6, L7PolicyAction::RedirectToPool);
    p.redirect_pool_id = Some(id(PL, 2));
    s.policies.push(p);
    s.rules.push(path(1, "/app"));
    let mut p = policy(2, 1, 5, L7PolicyAction::RedirectPrefix);
    p.redirect_prefix = Some("https://www.example.com".into());
    s.policies.push(p);
    s.rules.push(path(2, "/secure"));
    let mut p = policy(3, 1, 4, L7PolicyAction::RedirectToUrl);
    p.redirect_url = Some("https://example.com/moved#top".into());
    p.redirect_http_code = Some(301);
    s.policies.push(p);
    s.rules.push(path(3, "/old"));
    s.policies.push(policy(4, 1, 3, L7PolicyAction::Reject));
    s.rules.push(path(4, "/admin"));
    // Two rules in one policy: both must hold.
    s.rules.push(rule(
        5,
        4,
        L7RuleType::Header,
        L7RuleCompareType::EqualTo,
        Some("X-Internal"),
        "no",
    ));
    // A redirect to a disabled pool, a policy without rules, a disabled policy: all left out.
    let mut p = policy(6, 1, 2, L7PolicyAction::RedirectToPool);
    p.redirect_pool_id = Some(id(PL, 3));
    s.policies.push(p);
    s.rules.push(path(6, "/disabled-pool"));
    s.policies.push(policy(7, 1, 1, L7PolicyAction::Reject));
    let mut p = policy(8, 1, 7, L7PolicyAction::Reject);
    p.enabled = false;
    s.policies.push(p);
    s.rules.push(path(8, "/disabled-policy"));
    // A policy whose only rule is disabled is left out too.
    s.policies.push(policy(9, 1, 8, L7PolicyAction::Reject));
    let mut r = path(9, "/disabled-rule");
    r.enabled = false;
    s.rules.push(r);
    golden("l7_actions", &s);
}

#[test]
fn golden_l7_escaping() {
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Http, 80, Some(1)));
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    s.members.push(member(1, 1, "10.0.0.11", 80));
    let values: [(L7RuleCompareType, &str); 5] = [
        (L7RuleCompareType::Regex, "^/a b/\\d+#x$"),
        (L7RuleCompareType::Contains, "it's \"quoted\""),
        (L7RuleCompareType::EqualTo, "-i"),
        (L7RuleCompareType::StartsWith, "$HOME\\dir"),
        (L7RuleCompareType::EndsWith, "%[src]"),
    ];
    for (n, (compare, value)) in values.into_iter().enumerate() {
        let n = n as u64 + 1;
        s.policies
            .push(policy(n, 1, n as i32, L7PolicyAction::Reject));
        s.rules.push(rule(
            n,
            n,
            L7RuleType::Header,
            compare,
            Some("X-Test"),
            value,
        ));
    }
    golden("l7_escaping", &s);
}

#[test]
fn golden_disabled_objects() {
    let mut s = http_basic();
    // A disabled listener (even of a protocol we cannot render) is left out.
    let mut l = listener(2, ListenerProtocol::Http, 81, Some(1));
    l.enabled = false;
    s.listeners.push(l);
    let mut l = listener(3, ListenerProtocol::Udp, 53, None);
    l.enabled = false;
    s.listeners.push(l);
    // A listener whose default pool is disabled has no default_backend.
    s.listeners
        .push(listener(4, ListenerProtocol::Tcp, 82, Some(2)));
    let mut p = pool(2, PoolProtocol::Tcp, LbAlgorithm::RoundRobin);
    p.enabled = false;
    s.pools.push(p);
    s.members.push(member(3, 2, "10.0.0.13", 80));
    // A disabled monitor means no checks; a disabled member is rendered `disabled`.
    s.listeners
        .push(listener(5, ListenerProtocol::Tcp, 83, Some(3)));
    s.pools
        .push(pool(3, PoolProtocol::Tcp, LbAlgorithm::RoundRobin));
    let mut hm = monitor(3, 3, HealthMonitorType::Tcp);
    hm.enabled = false;
    s.monitors.push(hm);
    let mut m = member(4, 3, "10.0.0.14", 80);
    m.enabled = false;
    s.members.push(m);
    golden("disabled_objects", &s);
}

#[test]
fn golden_disabled_load_balancer() {
    let mut s = http_basic();
    s.lb.enabled = false;
    golden("disabled_load_balancer", &s);
}

#[test]
fn golden_pending_delete() {
    let mut s = http_basic();
    let pd = ProvisioningStatus::PendingDelete;
    // Listener 2 and its pool are going away.
    let mut l = listener(2, ListenerProtocol::Http, 81, Some(2));
    l.provisioning_status = pd;
    s.listeners.push(l);
    let mut p = pool(2, PoolProtocol::Http, LbAlgorithm::RoundRobin);
    p.provisioning_status = pd;
    s.pools.push(p);
    // Listener 3's default pool is going away: no default_backend.
    s.listeners
        .push(listener(3, ListenerProtocol::Http, 82, Some(2)));
    // Member 3 and the monitor of pool 1 are going away.
    let mut m = member(3, 1, "10.0.0.13", 8080);
    m.provisioning_status = pd;
    s.members.push(m);
    s.monitors[0].provisioning_status = pd;
    // A policy going away, and a policy whose only rule is going away.
    let mut p = policy(1, 1, 1, L7PolicyAction::Reject);
    p.provisioning_status = pd;
    s.policies.push(p);
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/x",
    ));
    s.policies.push(policy(2, 1, 2, L7PolicyAction::Reject));
    let mut r = rule(
        2,
        2,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/y",
    );
    r.provisioning_status = pd;
    s.rules.push(r);
    golden("pending_delete", &s);
}

#[test]
fn golden_logging_off_ipv6_vip() {
    let mut s = http_basic();
    s.vip = "2001:db8::10".into();
    s.settings.connection_logging = false;
    s.settings.user = None;
    s.settings.group = None;
    golden("logging_off_ipv6_vip", &s);
}

#[test]
fn golden_proxy_and_tls_pools() {
    let mut s = Scenario::new();
    let kinds = [
        (1, ListenerProtocol::Http, PoolProtocol::Proxy),
        (2, ListenerProtocol::Http, PoolProtocol::ProxyV2),
        (3, ListenerProtocol::Tcp, PoolProtocol::Proxy),
        (4, ListenerProtocol::Tcp, PoolProtocol::ProxyV2),
        (5, ListenerProtocol::Tcp, PoolProtocol::Http),
        (6, ListenerProtocol::Http, PoolProtocol::Http),
    ];
    for (n, lp, pp) in kinds {
        s.listeners.push(listener(n, lp, 8000 + n as i32, Some(n)));
        s.pools.push(pool(n, pp, LbAlgorithm::RoundRobin));
        s.members.push(member(n, n, "10.0.0.11", 80));
    }
    let p = &mut s.pools[5];
    p.tls_enabled = true;
    p.tls_ciphers = Some("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384".into());
    p.tls_versions = vec!["TLSv1.2".into(), "TLSv1.3".into()];
    p.alpn_protocols = vec!["h2".into(), "http/1.1".into()];
    s.monitors.push(monitor(6, 6, HealthMonitorType::Http));
    golden("proxy_and_tls_pools", &s);
}

// ---------------------------------------------------------------------------------------
// Behaviour beyond the golden files.

#[test]
fn output_does_not_depend_on_input_order() {
    let mut s = Scenario::new();
    for n in 1..=3 {
        s.listeners
            .push(listener(n, ListenerProtocol::Http, 90 - n as i32, Some(n)));
        s.pools
            .push(pool(n, PoolProtocol::Http, LbAlgorithm::RoundRobin));
        for m in 0..3 {
            s.members
                .push(member(n * 10 + m, n, "10.0.0.11", 80 + m as i32));
        }
        let mut p = policy(n, n, 1, L7PolicyAction::Reject);
        p.position = 4 - n as i32;
        s.policies.push(p);
        s.rules.push(rule(
            n,
            n,
            L7RuleType::Path,
            L7RuleCompareType::EqualTo,
            None,
            "/a",
        ));
        s.rules.push(rule(
            n + 10,
            n,
            L7RuleType::Path,
            L7RuleCompareType::EqualTo,
            None,
            "/b",
        ));
    }
    s.listeners[0].allowed_cidrs = vec!["10.0.0.0/8".into(), "192.0.2.0/24".into()];
    let first = s.render().unwrap();
    s.listeners.reverse();
    s.pools.reverse();
    s.members.reverse();
    s.policies.reverse();
    s.rules.reverse();
    s.listeners[2].allowed_cidrs.reverse();
    assert_eq!(s.render().unwrap(), first);
    // Listeners come out by port: listener 3 (port 87) first.
    let l3 = first
        .find(&format!("frontend {}", id::<ListenerId>(LS, 3)))
        .unwrap();
    let l1 = first
        .find(&format!("frontend {}", id::<ListenerId>(LS, 1)))
        .unwrap();
    assert!(l3 < l1);
}

#[test]
fn objects_of_other_load_balancers_are_ignored() {
    let mut s = http_basic();
    let mut other = listener(9, ListenerProtocol::Http, 80, Some(1));
    other.load_balancer_id = id(LB, 2);
    s.listeners.push(other);
    let text = s.render().unwrap();
    assert!(!text.contains(&id::<ListenerId>(LS, 9).to_string()));
    assert_eq!(text, http_basic().render().unwrap());
}

#[test]
fn global_maxconn_sums_listeners_and_caps() {
    let maxconn = |limits: &[i32]| {
        let mut s = Scenario::new();
        for (n, limit) in limits.iter().enumerate() {
            let mut l = listener(n as u64 + 1, ListenerProtocol::Tcp, 80 + n as i32, None);
            l.connection_limit = *limit;
            s.listeners.push(l);
        }
        let text = s.render().unwrap();
        let global = text.split("defaults").next().unwrap().to_string();
        global
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxconn "))
            .unwrap()
            .to_string()
    };
    assert_eq!(maxconn(&[100, 200]), "300");
    assert_eq!(maxconn(&[-1, 10]), "50010");
    assert_eq!(maxconn(&[]), "1000000");
    assert_eq!(maxconn(&[600_000, 600_000]), "1000000");
    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Tcp, 80, None));
    s.settings.max_global_maxconn = 9000;
    assert!(s.render().unwrap().contains("\n    maxconn 9000\n"));
}

#[test]
fn stats_socket_and_state_file_follow_base_path() {
    let mut s = http_basic();
    s.settings.base_path = "/srv/amp/".into();
    let text = s.render().unwrap();
    let lb = lb_id();
    assert!(text.contains(&format!(
        "    stats socket /srv/amp/{lb}.sock mode 0666 level admin expose-fd listeners\n"
    )));
    assert!(text.contains(&format!(
        "    server-state-file /srv/amp/{lb}/servers-state\n"
    )));
    assert_eq!(
        octavia_render::stats_socket_path(&s.settings, &lb),
        format!("/srv/amp/{lb}.sock")
    );
    assert!(!text.contains("daemon"));
}

fn expect_err(s: &Scenario, want: impl Fn(&RenderError) -> bool, needle: &str) {
    let err = s.render().expect_err("render should fail");
    assert!(want(&err), "unexpected error kind: {err:?}");
    assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
}

#[test]
fn unsupported_listener_protocols_are_refused() {
    for protocol in [
        ListenerProtocol::TerminatedHttps,
        ListenerProtocol::Udp,
        ListenerProtocol::Sctp,
    ] {
        let mut s = Scenario::new();
        s.listeners.push(listener(1, protocol, 443, None));
        expect_err(
            &s,
            |e| matches!(e, RenderError::Unsupported { .. }),
            protocol.as_str(),
        );
        let err = s.render().unwrap_err();
        assert_eq!(
            err.subject(),
            Subject::Object(ObjectKind::Listener, id::<ListenerId>(LS, 1).uuid()),
            "{err}"
        );
        // The same listener on a disabled load balancer renders nothing and is fine.
        s.lb.enabled = false;
        s.render().unwrap();
    }
}

#[test]
fn invalid_inputs_are_refused_with_the_object_named() {
    let unsupported = |e: &RenderError| matches!(e, RenderError::Unsupported { .. });
    let invalid = |e: &RenderError| matches!(e, RenderError::InvalidValue { .. });
    let inconsistent = |e: &RenderError| matches!(e, RenderError::Inconsistent { .. });

    let mut s = http_basic();
    s.pools[0].lb_algorithm = LbAlgorithm::SourceIpPort;
    expect_err(&s, unsupported, "SOURCE_IP_PORT");

    let mut s = http_basic();
    s.pools[0].tls_enabled = true;
    s.pools[0].ca_tls_certificate_id = Some("ca".into());
    expect_err(&s, unsupported, "certificates");

    let mut s = http_basic();
    s.monitors[0].expected_codes = Some("2xx".into());
    expect_err(&s, invalid, "expected_codes");

    let mut s = http_basic();
    s.monitors[0].delay = 0;
    expect_err(&s, unsupported, "delay");

    let mut s = http_basic();
    s.monitors[0].monitor_type = HealthMonitorType::UdpConnect;
    expect_err(&s, unsupported, "UDP-CONNECT");

    let mut s = http_basic();
    s.members[0].ip_address = "backend.example.com".into();
    expect_err(&s, invalid, "ip_address");

    let mut s = http_basic();
    s.members[0].weight = 257;
    expect_err(&s, invalid, "weight");

    let mut s = http_basic();
    s.vip = "not-an-ip".into();
    expect_err(&s, invalid, "vip_address");

    let mut s = http_basic();
    s.listeners[0].allowed_cidrs = vec!["10.0.0.0/33".into()];
    expect_err(&s, invalid, "allowed_cidrs");

    let mut s = http_basic();
    s.listeners[0].default_pool_id = Some(id(PL, 99));
    expect_err(&s, inconsistent, &id::<PoolId>(PL, 99).to_string());

    let mut s = http_basic();
    s.pools[0].protocol = PoolProtocol::Tcp;
    expect_err(&s, inconsistent, "cannot use");

    let mut s = http_basic();
    s.policies.push(policy(1, 1, 1, L7PolicyAction::Reject));
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/a\nb",
    ));
    expect_err(&s, invalid, "control character");

    let mut s = http_basic();
    s.policies.push(policy(1, 1, 1, L7PolicyAction::Reject));
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Header,
        L7RuleCompareType::EqualTo,
        Some("X(y)"),
        "v",
    ));
    expect_err(&s, invalid, "key");

    let mut s = http_basic();
    let mut p = policy(1, 1, 1, L7PolicyAction::RedirectToUrl);
    p.redirect_url = Some("https://example.com".into());
    p.redirect_http_code = Some(200);
    s.policies.push(p);
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/a",
    ));
    expect_err(&s, invalid, "redirect_http_code");

    let mut s = Scenario::new();
    s.listeners
        .push(listener(1, ListenerProtocol::Tcp, 80, None));
    s.policies.push(policy(1, 1, 1, L7PolicyAction::Reject));
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/a",
    ));
    expect_err(&s, unsupported, "do not support L7 policies");
}

/// Every refusal names the object to blame (the flow leaves out an object in ERROR that the
/// renderer refuses, and fails the job for anything else).
#[test]
fn refusals_name_the_object_to_blame() {
    let blame = |s: &Scenario| s.render().expect_err("render should fail").subject();
    let object = |kind: ObjectKind, uuid: uuid::Uuid| Subject::Object(kind, uuid);

    let mut s = http_basic();
    s.members[1].ip_address = "backend.example.com".into();
    assert_eq!(
        blame(&s),
        object(ObjectKind::Member, s.members[1].id.uuid())
    );

    let mut s = http_basic();
    s.monitors[0].expected_codes = Some("2xx".into());
    assert_eq!(
        blame(&s),
        object(ObjectKind::HealthMonitor, s.monitors[0].id.uuid())
    );

    let mut s = http_basic();
    s.pools[0].lb_algorithm = LbAlgorithm::SourceIpPort;
    assert_eq!(blame(&s), object(ObjectKind::Pool, s.pools[0].id.uuid()));

    let mut s = http_basic();
    s.listeners[0].allowed_cidrs = vec!["10.0.0.0/33".into()];
    assert_eq!(
        blame(&s),
        object(ObjectKind::Listener, s.listeners[0].id.uuid())
    );

    let mut s = http_basic();
    s.vip = "not-an-ip".into();
    assert_eq!(blame(&s), object(ObjectKind::LoadBalancer, s.lb.id.uuid()));

    let mut s = http_basic();
    let mut p = policy(1, 1, 1, L7PolicyAction::RedirectToUrl);
    p.redirect_url = Some("https://example.com".into());
    p.redirect_http_code = Some(200);
    s.policies.push(p);
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Path,
        L7RuleCompareType::EqualTo,
        None,
        "/a",
    ));
    assert_eq!(
        blame(&s),
        object(ObjectKind::L7Policy, s.policies[0].id.uuid())
    );

    let mut s = http_basic();
    s.policies.push(policy(1, 1, 1, L7PolicyAction::Reject));
    s.rules.push(rule(
        1,
        1,
        L7RuleType::Header,
        L7RuleCompareType::EqualTo,
        Some("X(y)"),
        "v",
    ));
    assert_eq!(blame(&s), object(ObjectKind::L7Rule, s.rules[0].id.uuid()));

    let mut s = http_basic();
    s.settings.log_target = String::new();
    assert_eq!(blame(&s), Subject::Settings);
}

// ---------------------------------------------------------------------------------------
// Escaped L7 values mean what they say: run HAProxy on loopback and send requests.

/// Kills and reaps the HAProxy it holds, also when the test fails.
struct RunningHaproxy(std::process::Child);

impl Drop for RunningHaproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Send one HTTP/1.0 request with header `X-Test: <value>`; returns the status code.
fn status_for(port: u16, value: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET / HTTP/1.0\r\nX-Test: {value}\r\n\r\n").expect("send");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in reply {reply:?}"))
}

#[test]
fn escaped_l7_values_match_literally_in_haproxy() {
    let Some(bin) = require::haproxy("the escaped L7 values test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().to_str().expect("utf-8 temp path").to_string();
    std::fs::create_dir_all(dir.path().join(lb_id().to_string())).expect("lb dir");
    let (listen, closed) = (free_loopback_port(), free_loopback_port());

    let mut s = Scenario::new();
    s.vip = "127.0.0.1".into();
    s.listeners.push(listener(
        1,
        ListenerProtocol::Http,
        i32::from(listen),
        Some(1),
    ));
    s.pools
        .push(pool(1, PoolProtocol::Http, LbAlgorithm::RoundRobin));
    // The only member is disabled: unmatched requests get 503 at once, denied ones 403.
    let mut m = member(1, 1, "127.0.0.1", i32::from(closed));
    m.enabled = false;
    s.members.push(m);
    let values: [(L7RuleCompareType, &str); 5] = [
        (L7RuleCompareType::Regex, "^/a b/\\d+#x$"),
        (L7RuleCompareType::Contains, "it's \"quoted\""),
        (L7RuleCompareType::EqualTo, "-i"),
        (L7RuleCompareType::StartsWith, "$HOME\\dir"),
        (L7RuleCompareType::EndsWith, "%[src]"),
    ];
    for (n, (compare, value)) in values.into_iter().enumerate() {
        let n = n as u64 + 1;
        s.policies
            .push(policy(n, 1, n as i32, L7PolicyAction::Reject));
        s.rules.push(rule(
            n,
            n,
            L7RuleType::Header,
            compare,
            Some("X-Test"),
            value,
        ));
    }
    let settings = RenderSettings {
        base_path: base.clone(),
        log_target: format!("{base}/log.sock"),
        // Stay far below any open-file limit of the test machine.
        max_global_maxconn: 1000,
        user: None,
        group: None,
        ..RenderSettings::default()
    };
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, s.render_with(&settings).expect("render")).expect("write config");
    let _haproxy = RunningHaproxy(
        Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(std::fs::File::create(dir.path().join("out.log")).expect("log file"))
            .stderr(std::fs::File::create(dir.path().join("err.log")).expect("log file"))
            .spawn()
            .expect("start haproxy"),
    );
    let logs = || {
        std::fs::read_to_string(dir.path().join("out.log")).unwrap_or_default()
            + &std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "haproxy did not listen on 127.0.0.1:{listen} within 10 s:\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let cases: &[(&str, u16)] = &[
        ("/a b/12#x", 403),
        ("/a b/x#x", 503),
        ("say it's \"quoted\" now", 403),
        ("its quoted", 503),
        ("-i", 403),
        ("-I", 503),
        ("$HOME\\dir/sub", 403),
        ("/home/dir", 503),
        ("value %[src]", 403),
        ("value 127.0.0.1", 503),
    ];
    for (value, want) in cases {
        assert_eq!(status_for(listen, value), *want, "X-Test: {value}");
    }
}

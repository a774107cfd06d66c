//! The combined haproxy.cfg of one load balancer: global, defaults, frontends and backends.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use amphora_proto::agent::{PROMETHEUS_EXPORTER_ADDR, PROMETHEUS_PROXY_ADDR};
use octavia_model::{
    HealthMonitor, HealthMonitorType, L7Policy, L7PolicyAction, L7Rule, L7RuleCompareType,
    L7RuleType, LbAlgorithm, Listener, ListenerId, ListenerProtocol, LoadBalancer, LoadBalancerId,
    Member, ObjectKind, Pool, PoolId, PoolProtocol, ProvisioningStatus, SessionPersistenceType,
};

use crate::escape::{check_fetch_name, escape_word};
use crate::expected_codes::rstatus_pattern;
use crate::log_format::frontend_log_format;
use crate::{support, RenderError, RenderSettings, Subject};

/// The backend every PROMETHEUS listener sends its requests to: the agent's metrics proxy.
const PROMETHEUS_BACKEND: &str = "prometheus-exporter-internal";

fn listener_subject(l: &Listener) -> Subject {
    Subject::Object(ObjectKind::Listener, l.id.uuid())
}
fn pool_subject(p: &Pool) -> Subject {
    Subject::Object(ObjectKind::Pool, p.id.uuid())
}
fn member_subject(m: &Member) -> Subject {
    Subject::Object(ObjectKind::Member, m.id.uuid())
}
fn monitor_subject(hm: &HealthMonitor) -> Subject {
    Subject::Object(ObjectKind::HealthMonitor, hm.id.uuid())
}
fn policy_subject(p: &L7Policy) -> Subject {
    Subject::Object(ObjectKind::L7Policy, p.id.uuid())
}
fn rule_subject(r: &L7Rule) -> Subject {
    Subject::Object(ObjectKind::L7Rule, r.id.uuid())
}

/// Everything one load balancer's configuration is made of.
///
/// The slices may hold more than this load balancer's objects (they are matched by their
/// parent ids) and may be in any order.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub load_balancer: &'a LoadBalancer,
    pub listeners: &'a [Listener],
    pub pools: &'a [Pool],
    pub members: &'a [Member],
    pub health_monitors: &'a [HealthMonitor],
    pub l7policies: &'a [L7Policy],
    pub l7rules: &'a [L7Rule],
    /// The address the frontends bind to.
    pub vip_address: &'a str,
}

/// The HAProxy backend name of `pool` as used by `listener`: `<pool_id>:<listener_id>`
/// (the heartbeat reports pools under this name).
pub fn backend_name(pool: &PoolId, listener: &ListenerId) -> String {
    format!("{pool}:{listener}")
}

/// The stats socket of a load balancer's HAProxy: `<base_path>/<lb_id>.sock`.
pub fn stats_socket_path(settings: &RenderSettings, lb: &LoadBalancerId) -> String {
    format!("{}/{lb}.sock", settings.base_path.trim_end_matches('/'))
}

/// Render the haproxy.cfg of `input.load_balancer` (reference §11.1; deviations in the
/// crate documentation).
pub fn render_haproxy(
    input: &RenderInput,
    settings: &RenderSettings,
) -> Result<String, RenderError> {
    let plan = Plan::build(input)?;
    let mut out = String::new();
    write_global(&mut out, input, settings, &plan)?;
    for frontend in &plan.frontends {
        write_frontend(&mut out, input, settings, frontend)?;
        for pool in &frontend.backends {
            write_backend(&mut out, input, settings, frontend.listener, pool)?;
        }
    }
    Ok(out)
}

/// Whether an object still takes part in the configuration.
fn live(status: ProvisioningStatus) -> bool {
    !matches!(
        status,
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted
    )
}

/// What gets rendered, decided before any text is written.
struct Plan<'a> {
    frontends: Vec<FrontendPlan<'a>>,
}

struct FrontendPlan<'a> {
    listener: &'a Listener,
    http: bool,
    /// A PROMETHEUS listener: its requests go to the agent's metrics proxy.
    prometheus: bool,
    default_pool: Option<&'a Pool>,
    /// Policies with at least one enabled rule, by position.
    policies: Vec<(&'a L7Policy, Vec<&'a L7Rule>)>,
    /// Every enabled pool this listener sends traffic to, default pool first.
    backends: Vec<&'a Pool>,
}

impl<'a> Plan<'a> {
    fn build(input: &RenderInput<'a>) -> Result<Self, RenderError> {
        let lb = input.load_balancer;
        if !lb.enabled {
            return Ok(Self {
                frontends: Vec::new(),
            });
        }
        let mut listeners: Vec<&Listener> = input
            .listeners
            .iter()
            .filter(|l| l.load_balancer_id == lb.id && l.enabled && live(l.provisioning_status))
            .collect();
        listeners.sort_by_key(|l| (l.protocol_port, l.id));
        let mut frontends = Vec::with_capacity(listeners.len());
        for listener in listeners {
            frontends.push(FrontendPlan::build(input, listener)?);
        }
        Ok(Self { frontends })
    }

    fn serves_prometheus(&self) -> bool {
        self.frontends.iter().any(|f| f.prometheus)
    }

    fn uses_external_check(&self, input: &RenderInput) -> bool {
        self.frontends.iter().any(|f| {
            f.backends.iter().any(|p| {
                health_monitor_of(input, p)
                    .is_some_and(|hm| hm.monitor_type == HealthMonitorType::Ping)
            })
        })
    }
}

impl<'a> FrontendPlan<'a> {
    fn build(input: &RenderInput<'a>, listener: &'a Listener) -> Result<Self, RenderError> {
        let subject = listener_subject(listener);
        support::listener(listener).map_err(|reason| RenderError::unsupported(subject, reason))?;
        let prometheus = listener.protocol == ListenerProtocol::Prometheus;
        let http = matches!(
            listener.protocol,
            ListenerProtocol::Http | ListenerProtocol::Prometheus
        );
        if prometheus {
            // Its requests all go to the metrics proxy: a pool or a policy would never serve.
            let has_policies = input
                .l7policies
                .iter()
                .any(|p| p.listener_id == listener.id && live(p.provisioning_status));
            if listener.default_pool_id.is_some() || has_policies {
                return Err(RenderError::inconsistent(
                    subject,
                    "a PROMETHEUS listener cannot have a default pool or L7 policies",
                ));
            }
            return Ok(Self {
                listener,
                http,
                prometheus,
                default_pool: None,
                policies: Vec::new(),
                backends: Vec::new(),
            });
        }
        let default_pool = match listener.default_pool_id {
            Some(id) => usable_pool(input, listener, id, "default pool")?,
            None => None,
        };

        let mut policies: Vec<&L7Policy> = input
            .l7policies
            .iter()
            .filter(|p| p.listener_id == listener.id && p.enabled && live(p.provisioning_status))
            .collect();
        policies.sort_by_key(|p| (p.position, p.id));
        let mut rendered = Vec::new();
        let mut redirect_pools = Vec::new();
        for policy in policies {
            let mut rules: Vec<&L7Rule> = input
                .l7rules
                .iter()
                .filter(|r| r.l7policy_id == policy.id && r.enabled && live(r.provisioning_status))
                .collect();
            if rules.is_empty() {
                continue;
            }
            rules.sort_by_key(|r| r.id);
            if policy.action == L7PolicyAction::RedirectToPool {
                let pool_id = policy.redirect_pool_id.ok_or_else(|| {
                    RenderError::invalid(
                        policy_subject(policy),
                        "redirect_pool_id",
                        "REDIRECT_TO_POOL needs a pool",
                    )
                })?;
                match usable_pool(input, listener, pool_id, "redirect pool")? {
                    Some(pool) => redirect_pools.push(pool),
                    // Octavia leaves out a redirect to a disabled pool.
                    None => continue,
                }
            }
            rendered.push((policy, rules));
        }
        if let Some((policy, _)) = rendered.first() {
            support::l7policy(listener.protocol)
                .map_err(|reason| RenderError::unsupported(policy_subject(policy), reason))?;
        }

        let mut backends: Vec<&Pool> = Vec::new();
        for pool in default_pool.into_iter().chain(redirect_pools) {
            if !backends.iter().any(|p| p.id == pool.id) {
                backends.push(pool);
            }
        }
        Ok(Self {
            listener,
            http,
            prometheus,
            default_pool,
            policies: rendered,
            backends,
        })
    }
}

/// The pool `id` if it is in the input, enabled and not being deleted; refuses a pool the
/// listener may not use.
fn usable_pool<'a>(
    input: &RenderInput<'a>,
    listener: &Listener,
    id: PoolId,
    role: &str,
) -> Result<Option<&'a Pool>, RenderError> {
    let pool = input.pools.iter().find(|p| p.id == id).ok_or_else(|| {
        RenderError::inconsistent(
            listener_subject(listener),
            format!("{role} {id} is not in the input"),
        )
    })?;
    if !pool.enabled || !live(pool.provisioning_status) {
        return Ok(None);
    }
    if !listener
        .protocol
        .allowed_pool_protocols()
        .contains(&pool.protocol)
    {
        return Err(RenderError::inconsistent(
            listener_subject(listener),
            format!(
                "a {} listener cannot use {} pool {}",
                listener.protocol, pool.protocol, pool.id
            ),
        ));
    }
    Ok(Some(pool))
}

/// The enabled, live health monitor of `pool`, if any (the lowest id if several).
fn health_monitor_of<'a>(input: &RenderInput<'a>, pool: &Pool) -> Option<&'a HealthMonitor> {
    input
        .health_monitors
        .iter()
        .filter(|hm| hm.pool_id == pool.id && hm.enabled && live(hm.provisioning_status))
        .min_by_key(|hm| hm.id)
}

/// Append one indented line.
fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str("    ");
    out.push_str(text.as_ref());
    out.push('\n');
}

/// A listener's effective connection limit.
fn connection_limit(listener: &Listener, settings: &RenderSettings) -> i32 {
    if listener.connection_limit > -1 {
        listener.connection_limit
    } else {
        settings.default_connection_limit
    }
}

fn non_negative(value: i32, object: Subject, field: &'static str) -> Result<i32, RenderError> {
    if value < 0 {
        return Err(RenderError::invalid(
            object,
            field,
            format!("{value} is negative"),
        ));
    }
    Ok(value)
}

fn port(value: i32, object: Subject, field: &'static str) -> Result<i32, RenderError> {
    if !(1..=65535).contains(&value) {
        return Err(RenderError::invalid(
            object,
            field,
            format!("{value} is not a port (1-65535)"),
        ));
    }
    Ok(value)
}

fn ip(value: &str, object: Subject, field: &'static str) -> Result<IpAddr, RenderError> {
    value
        .trim()
        .parse()
        .map_err(|_| RenderError::invalid(object, field, format!("'{value}' is not an IP address")))
}

/// `address:port`, with IPv6 addresses in brackets.
fn socket_text(addr: IpAddr, port: i32) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn write_global(
    out: &mut String,
    input: &RenderInput,
    settings: &RenderSettings,
    plan: &Plan,
) -> Result<(), RenderError> {
    let lb = input.load_balancer;
    let base = settings.base_path.trim_end_matches('/');
    let base_word =
        |suffix: String, field| escape_word(&format!("{base}/{suffix}"), Subject::Settings, field);
    let total: i64 = plan
        .frontends
        .iter()
        .map(|f| i64::from(connection_limit(f.listener, settings)))
        .sum();
    let cap = settings.max_global_maxconn.max(1);
    let maxconn = if total > 0 && total <= cap {
        total
    } else {
        cap
    };

    let _ = writeln!(out, "# Configuration for loadbalancer {}", lb.id);
    out.push_str(
        "# Rendered by octavia-rs; the amphora agent replaces this file on every change.\n",
    );
    out.push_str("global\n");
    if let Some(user) = &settings.user {
        line(
            out,
            format!("user {}", escape_word(user, Subject::Settings, "user")?),
        );
    }
    if let Some(group) = &settings.group {
        line(
            out,
            format!("group {}", escape_word(group, Subject::Settings, "group")?),
        );
    }
    let target = escape_word(&settings.log_target, Subject::Settings, "log_target")?;
    line(
        out,
        format!("log {target} local{}", settings.user_log_facility),
    );
    line(
        out,
        format!(
            "log {target} local{} notice",
            settings.administrative_log_facility
        ),
    );
    line(
        out,
        format!(
            "stats socket {} mode 0666 level admin expose-fd listeners",
            base_word(format!("{}.sock", lb.id), "base_path")?
        ),
    );
    line(
        out,
        format!(
            "server-state-file {}",
            base_word(format!("{}/servers-state", lb.id), "base_path")?
        ),
    );
    line(out, format!("maxconn {maxconn}"));
    if plan.uses_external_check(input) {
        line(out, "external-check");
        line(out, "insecure-fork-wanted");
    }
    out.push('\n');

    out.push_str("defaults\n");
    line(
        out,
        if settings.connection_logging {
            "log global"
        } else {
            "no log"
        },
    );
    for l in [
        "retries 3",
        "option redispatch",
        "option splice-request",
        "option splice-response",
        "option http-keep-alive",
    ] {
        line(out, l);
    }
    if plan.serves_prometheus() {
        write_prometheus_exporter(out);
    }
    Ok(())
}

/// HAProxy's own exporter on the amphora's loopback, and the backend of PROMETHEUS
/// listeners: the agent's metrics proxy, which reads that exporter and renames its metrics
/// (reference §12.2).
fn write_prometheus_exporter(out: &mut String) {
    out.push_str("\nfrontend prometheus-exporter-internal-endpoint\n");
    for l in [
        format!("bind {PROMETHEUS_EXPORTER_ADDR}"),
        "mode http".to_string(),
        "no log".to_string(),
        "http-request use-service prometheus-exporter if { path /metrics }".to_string(),
        "http-request reject".to_string(),
        "timeout http-request 5s".to_string(),
        "timeout client 5s".to_string(),
    ] {
        line(out, l);
    }
    let _ = write!(out, "\nbackend {PROMETHEUS_BACKEND}\n");
    for l in [
        "mode http".to_string(),
        "no log".to_string(),
        "balance first".to_string(),
        "timeout connect 5s".to_string(),
        "timeout server 5s".to_string(),
        format!("server prometheus-internal {PROMETHEUS_PROXY_ADDR}"),
    ] {
        line(out, l);
    }
}

fn write_frontend(
    out: &mut String,
    input: &RenderInput,
    settings: &RenderSettings,
    plan: &FrontendPlan,
) -> Result<(), RenderError> {
    let listener = plan.listener;
    let object = listener_subject(listener);
    let vip = ip(
        input.vip_address,
        Subject::Object(ObjectKind::LoadBalancer, input.load_balancer.id.uuid()),
        "vip_address",
    )?;
    let listen_port = port(listener.protocol_port, object, "protocol_port")?;

    let _ = write!(out, "\nfrontend {}\n", listener.id);
    line(
        out,
        format!("maxconn {}", connection_limit(listener, settings)),
    );
    line(out, format!("bind {}", socket_text(vip, listen_port)));
    line(out, if plan.http { "mode http" } else { "mode tcp" });

    if !listener.allowed_cidrs.is_empty() {
        let mut cidrs = BTreeSet::new();
        for cidr in &listener.allowed_cidrs {
            cidrs.insert(parse_cidr(cidr, object)?);
        }
        let list: Vec<String> = cidrs.into_iter().map(|(a, p)| format!("{a}/{p}")).collect();
        line(
            out,
            format!(
                "tcp-request connection reject if !{{ src {} }}",
                list.join(" ")
            ),
        );
    }

    write_l7(out, plan)?;

    if let Some(pool) = plan.default_pool {
        line(
            out,
            format!("default_backend {}", backend_name(&pool.id, &listener.id)),
        );
    }
    if plan.prometheus {
        line(out, format!("default_backend {PROMETHEUS_BACKEND}"));
    }
    line(
        out,
        format!(
            "timeout client {}",
            non_negative(listener.timeout_client_data, object, "timeout_client_data")?
        ),
    );
    let inspect = non_negative(listener.timeout_tcp_inspect, object, "timeout_tcp_inspect")?;
    if inspect > 0 {
        line(out, format!("tcp-request inspect-delay {inspect}"));
    }
    if settings.connection_logging {
        let lb = input.load_balancer;
        let format = frontend_log_format(
            &settings.user_log_format,
            &lb.project_id,
            &lb.id.to_string(),
            plan.http,
            false,
        )?;
        line(out, format!("log-format {format}"));
    }
    Ok(())
}

/// `address/prefix` of an `allowed_cidrs` entry (a bare address is a host route).
fn parse_cidr(text: &str, object: Subject) -> Result<(IpAddr, u8), RenderError> {
    let bad = || {
        RenderError::invalid(
            object,
            "allowed_cidrs",
            format!("'{text}' is not an address/prefix"),
        )
    };
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text.trim(), None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
        None => max,
    };
    if prefix > max {
        return Err(bad());
    }
    Ok((addr, prefix))
}

/// The ACLs and actions of the listener's L7 policies.
fn write_l7(out: &mut String, plan: &FrontendPlan) -> Result<(), RenderError> {
    let mut conditions = Vec::with_capacity(plan.policies.len());
    for (_, rules) in &plan.policies {
        let mut terms = Vec::with_capacity(rules.len());
        for rule in rules {
            line(out, format!("acl {} {}", rule.id, acl_criterion(rule)?));
            terms.push(format!("{}{}", if rule.invert { "!" } else { "" }, rule.id));
        }
        conditions.push(terms.join(" "));
    }
    let listener_id = plan.listener.id;
    // HAProxy runs http-request rules, then redirects, then use_backend: write them so.
    for ((policy, _), cond) in plan.policies.iter().zip(&conditions) {
        if policy.action == L7PolicyAction::Reject {
            line(out, format!("http-request deny if {cond}"));
        }
    }
    for ((policy, _), cond) in plan.policies.iter().zip(&conditions) {
        let object = policy_subject(policy);
        let (kind, field, target) = match policy.action {
            L7PolicyAction::RedirectToUrl => ("location", "redirect_url", &policy.redirect_url),
            L7PolicyAction::RedirectPrefix => {
                ("prefix", "redirect_prefix", &policy.redirect_prefix)
            }
            _ => continue,
        };
        let target = target
            .as_deref()
            .ok_or_else(|| RenderError::invalid(object, field, "is missing"))?;
        let code = policy.redirect_http_code.unwrap_or(302);
        if ![301, 302, 303, 307, 308].contains(&code) {
            return Err(RenderError::invalid(
                object,
                "redirect_http_code",
                format!("{code} is not one of 301, 302, 303, 307, 308"),
            ));
        }
        line(
            out,
            format!(
                "redirect code {code} {kind} {} if {cond}",
                escape_word(target, object, field)?
            ),
        );
    }
    for ((policy, _), cond) in plan.policies.iter().zip(&conditions) {
        if let (L7PolicyAction::RedirectToPool, Some(pool)) =
            (policy.action, policy.redirect_pool_id)
        {
            line(
                out,
                format!(
                    "use_backend {} if {cond}",
                    backend_name(&pool, &listener_id)
                ),
            );
        }
    }
    Ok(())
}

/// The part of an `acl` line after its name: fetch, flags and pattern.
fn acl_criterion(rule: &L7Rule) -> Result<String, RenderError> {
    let object = rule_subject(rule);
    let key = || -> Result<&str, RenderError> {
        let key = rule
            .key
            .as_deref()
            .ok_or_else(|| RenderError::invalid(object, "key", "is missing"))?;
        check_fetch_name(key, object, "key")?;
        Ok(key)
    };
    let matcher = match rule.compare_type {
        L7RuleCompareType::Regex => "-m reg",
        L7RuleCompareType::StartsWith => "-m beg",
        L7RuleCompareType::EndsWith => "-m end",
        L7RuleCompareType::Contains => "-m sub",
        L7RuleCompareType::EqualTo => "-m str",
    };
    let pattern = || -> Result<String, RenderError> {
        let word = escape_word(&rule.value, object, "value")?;
        Ok(if rule.value.starts_with('-') {
            format!("-- {word}")
        } else {
            word
        })
    };
    Ok(match rule.rule_type {
        L7RuleType::HostName => format!("req.hdr(host) -i {matcher} {}", pattern()?),
        L7RuleType::Path => format!("path {matcher} {}", pattern()?),
        L7RuleType::FileType => match rule.compare_type {
            // `path_end` already compares the end of the path.
            L7RuleCompareType::EqualTo => format!("path_end {}", pattern()?),
            L7RuleCompareType::Regex => format!("path_end {matcher} {}", pattern()?),
            other => {
                return Err(RenderError::invalid(
                    object,
                    "compare_type",
                    format!("FILE_TYPE rules compare with REGEX or EQUAL_TO, not {other}"),
                ))
            }
        },
        L7RuleType::Header => format!("req.hdr({}) {matcher} {}", key()?, pattern()?),
        L7RuleType::Cookie => format!("req.cook({}) {matcher} {}", key()?, pattern()?),
        L7RuleType::SslConnHasCert => "ssl_c_used".to_string(),
        L7RuleType::SslVerifyResult => {
            let n: u32 = rule.value.trim().parse().map_err(|_| {
                RenderError::invalid(
                    object,
                    "value",
                    format!("'{}' is not a non-negative integer", rule.value),
                )
            })?;
            format!("ssl_c_verify eq {n}")
        }
        L7RuleType::SslDnField => {
            format!("ssl_c_s_dn({}) {matcher} {}", key()?, pattern()?)
        }
    })
}

/// The backend mode of `pool` behind `listener`: PROXY pools follow the listener.
fn backend_is_http(pool: &Pool, listener: &Listener) -> bool {
    match pool.protocol {
        PoolProtocol::Http => true,
        PoolProtocol::Proxy | PoolProtocol::ProxyV2 => listener.protocol == ListenerProtocol::Http,
        _ => false,
    }
}

fn write_backend(
    out: &mut String,
    input: &RenderInput,
    settings: &RenderSettings,
    listener: &Listener,
    pool: &Pool,
) -> Result<(), RenderError> {
    let object = pool_subject(pool);
    support::pool(pool).map_err(|reason| RenderError::unsupported(object, reason))?;
    let http = backend_is_http(pool, listener);
    let hm = health_monitor_of(input, pool);

    let _ = write!(out, "\nbackend {}\n", backend_name(&pool.id, &listener.id));
    line(out, if http { "mode http" } else { "mode tcp" });
    if pool.protocol == PoolProtocol::Http {
        line(out, "http-reuse safe");
    }
    if http {
        // Beyond Octavia: a member that dies in the middle of a request (connection closed
        // with no or half a response) costs the client nothing when the request is idempotent:
        // HAProxy sends it again (to another member on the last retry, `option redispatch`).
        line(out, "retry-on conn-failure empty-response junk-response");
        line(
            out,
            "http-request disable-l7-retry if !{ method GET HEAD OPTIONS PUT DELETE TRACE }",
        );
    }
    line(
        out,
        match pool.lb_algorithm {
            LbAlgorithm::RoundRobin => "balance roundrobin",
            LbAlgorithm::LeastConnections => "balance leastconn",
            LbAlgorithm::SourceIp => "balance source",
            LbAlgorithm::SourceIpPort => {
                return Err(RenderError::unsupported(
                    object,
                    "Amphora provider does not support SOURCE_IP_PORT algorithm.",
                ))
            }
        },
    );

    let persistence = pool
        .session_persistence
        .as_ref()
        .map(|p| p.persistence_type);
    let stick_size = || {
        escape_word(
            &settings.haproxy_stick_size,
            Subject::Settings,
            "haproxy_stick_size",
        )
    };
    match persistence {
        Some(SessionPersistenceType::SourceIp) => {
            line(out, format!("stick-table type ipv6 size {}", stick_size()?));
            line(out, "stick on src");
        }
        Some(SessionPersistenceType::AppCookie) if http => {
            let name = pool
                .session_persistence
                .as_ref()
                .and_then(|p| p.cookie_name.as_deref())
                .ok_or_else(|| {
                    RenderError::invalid(object, "cookie_name", "APP_COOKIE needs a cookie name")
                })?;
            check_fetch_name(name, object, "cookie_name")?;
            line(
                out,
                format!("stick-table type string len 64 size {}", stick_size()?),
            );
            line(out, format!("stick store-response res.cook({name})"));
            line(out, format!("stick match req.cook({name})"));
        }
        Some(SessionPersistenceType::HttpCookie) if http => {
            line(out, "cookie SRV insert indirect nocache");
        }
        _ => {}
    }
    let cookie_servers = http && persistence == Some(SessionPersistenceType::HttpCookie);

    if let Some(hm) = hm {
        write_health_monitor(out, settings, hm)?;
    }
    if http && listener.protocol == ListenerProtocol::Http {
        write_insert_headers(out, listener);
    }
    line(
        out,
        format!("fullconn {}", connection_limit(listener, settings)),
    );
    line(out, "option allbackups");
    let lobject = listener_subject(listener);
    line(
        out,
        format!(
            "timeout connect {}",
            non_negative(
                listener.timeout_member_connect,
                lobject,
                "timeout_member_connect"
            )?
        ),
    );
    line(
        out,
        format!(
            "timeout server {}",
            non_negative(listener.timeout_member_data, lobject, "timeout_member_data")?
        ),
    );

    let tls = pool_tls_options(pool)?;
    let mut members: Vec<&Member> = input
        .members
        .iter()
        .filter(|m| m.pool_id == pool.id && live(m.provisioning_status))
        .collect();
    members.sort_by_key(|m| m.id);
    for member in members {
        line(out, server_line(member, pool, hm, cookie_servers, &tls)?);
    }
    Ok(())
}

fn write_health_monitor(
    out: &mut String,
    settings: &RenderSettings,
    hm: &HealthMonitor,
) -> Result<(), RenderError> {
    let object = monitor_subject(hm);
    support::health_monitor(hm).map_err(|reason| RenderError::unsupported(object, reason))?;
    line(out, "load-server-state-from-file global");
    line(
        out,
        format!(
            "timeout check {}s",
            non_negative(hm.timeout, object, "timeout")?
        ),
    );
    match hm.monitor_type {
        HealthMonitorType::Http | HealthMonitorType::Https => {
            let method = hm.http_method.map_or("GET", |m| m.as_str());
            let path = escape_word(hm.url_path.as_deref().unwrap_or("/"), object, "url_path")?;
            let version = match hm.http_version {
                None => None,
                Some(v) if (v - 1.0).abs() < 1e-9 => Some("1.0"),
                Some(v) if (v - 1.1).abs() < 1e-9 => Some("1.1"),
                Some(v) => {
                    return Err(RenderError::invalid(
                        object,
                        "http_version",
                        format!("{v} is not 1.0 or 1.1"),
                    ))
                }
            };
            match version {
                Some(v) => line(out, format!("option httpchk {method} {path} HTTP/{v}")),
                None => line(out, format!("option httpchk {method} {path}")),
            }
            if let (Some("1.1"), Some(domain)) = (version, hm.domain_name.as_deref()) {
                line(
                    out,
                    format!(
                        "http-check send hdr Host {}",
                        escape_word(domain, object, "domain_name")?
                    ),
                );
            }
            line(
                out,
                format!(
                    "http-check expect rstatus {}",
                    rstatus_pattern(hm.expected_codes.as_deref(), object)?
                ),
            );
        }
        HealthMonitorType::Ping => {
            line(out, "option external-check");
            line(
                out,
                format!(
                    "external-check command {}",
                    escape_word(
                        &settings.ping_wrapper_path,
                        Subject::Settings,
                        "ping_wrapper_path"
                    )?
                ),
            );
        }
        HealthMonitorType::TlsHello => line(out, "option ssl-hello-chk"),
        HealthMonitorType::Tcp => {}
        // Refused by `support::health_monitor` above.
        HealthMonitorType::UdpConnect | HealthMonitorType::Sctp => {}
    }
    Ok(())
}

/// Header insertion of an HTTP listener, written into its HTTP-mode backends.
fn write_insert_headers(out: &mut String, listener: &Listener) {
    let enabled = |name: &str| {
        listener
            .insert_headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case("true"))
    };
    if enabled("X-Forwarded-For") {
        line(out, "option forwardfor");
    }
    if enabled("X-Forwarded-Port") {
        line(out, "http-request set-header X-Forwarded-Port %[dst_port]");
    }
    if enabled("X-Forwarded-Proto") {
        line(out, "http-request set-header X-Forwarded-Proto http");
    }
    for name in ["X-Forwarded-IP", "X-Client-IP", "X-Real-IP"] {
        if enabled(name) {
            line(out, format!("http-request set-header {name} %[src]"));
        }
    }
}

/// The TLS options of every server of a re-encrypting pool (empty when `tls_enabled` is off).
fn pool_tls_options(pool: &Pool) -> Result<String, RenderError> {
    if !pool.tls_enabled {
        return Ok(String::new());
    }
    // Certificates are refused by `support::pool` before this is reached.
    let object = pool_subject(pool);
    let mut opts = String::from(" ssl verify none");
    if let Some(ciphers) = pool.tls_ciphers.as_deref().filter(|c| !c.is_empty()) {
        let _ = write!(
            opts,
            " ciphers {}",
            escape_word(ciphers, object, "tls_ciphers")?
        );
    }
    if !pool.tls_versions.is_empty() {
        for (version, flag) in [
            ("SSLv3", "no-sslv3"),
            ("TLSv1", "no-tlsv10"),
            ("TLSv1.1", "no-tlsv11"),
            ("TLSv1.2", "no-tlsv12"),
            ("TLSv1.3", "no-tlsv13"),
        ] {
            if !pool.tls_versions.iter().any(|v| v == version) {
                let _ = write!(opts, " {flag}");
            }
        }
    }
    if !pool.alpn_protocols.is_empty() {
        let list = pool.alpn_protocols.join(",");
        let _ = write!(
            opts,
            " alpn {}",
            escape_word(&list, object, "alpn_protocols")?
        );
    }
    Ok(opts)
}

fn server_line(
    member: &Member,
    pool: &Pool,
    hm: Option<&HealthMonitor>,
    cookie: bool,
    tls: &str,
) -> Result<String, RenderError> {
    let object = member_subject(member);
    let addr = ip(&member.ip_address, object, "ip_address")?;
    let member_port = port(member.protocol_port, object, "protocol_port")?;
    if !(0..=256).contains(&member.weight) {
        return Err(RenderError::invalid(
            object,
            "weight",
            format!("{} is outside 0-256", member.weight),
        ));
    }
    let mut text = format!(
        "server {} {} weight {}",
        member.id,
        socket_text(addr, member_port),
        member.weight
    );
    if let Some(hm) = hm {
        let hobject = monitor_subject(hm);
        if hm.delay < 1 {
            return Err(RenderError::invalid(
                hobject,
                "delay",
                format!(
                    "{} is below HAProxy's minimum check interval of 1 second",
                    hm.delay
                ),
            ));
        }
        for (value, field) in [
            (hm.fall_threshold, "fall_threshold"),
            (hm.rise_threshold, "rise_threshold"),
        ] {
            if value < 1 {
                return Err(RenderError::invalid(
                    hobject,
                    field,
                    format!("{value} is below 1"),
                ));
            }
        }
        text.push_str(" check");
        if hm.monitor_type == HealthMonitorType::Https {
            text.push_str(" check-ssl verify none");
        }
        let _ = write!(
            text,
            " inter {}s fall {} rise {}",
            hm.delay, hm.fall_threshold, hm.rise_threshold
        );
        if let Some(monitor) = member.monitor_address.as_deref() {
            let _ = match ip(monitor, object, "monitor_address")? {
                IpAddr::V4(a) => write!(text, " addr {a}"),
                IpAddr::V6(a) => write!(text, " addr [{a}]"),
            };
        }
        if let Some(p) = member.monitor_port {
            let _ = write!(text, " port {}", port(p, object, "monitor_port")?);
        }
    }
    if cookie {
        let _ = write!(text, " cookie {}", member.id);
    }
    match pool.protocol {
        PoolProtocol::Proxy => text.push_str(" send-proxy"),
        PoolProtocol::ProxyV2 => text.push_str(" send-proxy-v2"),
        _ => {}
    }
    text.push_str(tls);
    if member.backup {
        text.push_str(" backup");
    }
    if !member.enabled {
        text.push_str(" disabled");
    }
    Ok(text)
}

//! The TOML configuration file: Octavia's section and option names, parsed only here.
//!
//! Every option has a doc line and a named default. `octavia config sample` prints the
//! sample generated from this schema (doc lines become comments); a test keeps
//! `etc/octavia.sample.toml` equal to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Options of Octavia's `[DEFAULT]` section.
    #[serde(rename = "DEFAULT")]
    pub default: DefaultSection,
    /// The REST API.
    pub api_settings: ApiSettingsSection,
    /// The store.
    pub database: DatabaseSection,
    /// Flow execution in workers.
    pub controller_worker: ControllerWorkerSection,
    /// The job queue and its workers.
    pub task_flow: TaskFlowSection,
    /// Health manager options that already shape the queue.
    pub health_manager: HealthManagerSection,
    /// The housekeeper: purges of old rows and amphora certificate renewal.
    pub house_keeping: HouseKeepingSection,
    /// Defaults for what is rendered into amphorae.
    pub haproxy_amphora: HaproxyAmphoraSection,
    /// keepalived between the amphorae of ACTIVE_STANDBY load balancers.
    pub keepalived_vrrp: KeepalivedVrrpSection,
    /// Where the compute service places amphorae (Octavia's `[nova]` options that apply).
    pub nova: NovaSection,
    /// Networking rules the API enforces.
    pub networking: NetworkingSection,
    /// Per-project quota defaults.
    pub quotas: QuotasSection,
    /// The local certificate authority (controller <-> agent mutual TLS).
    pub certificates: CertificatesSection,
    /// The `netns` compute and network drivers (amphorae as network namespaces).
    pub netns: NetnsSection,
    /// How the API validates Keystone tokens (with `api_settings.auth_strategy = "keystone"`).
    pub keystone_authtoken: KeystoneAuthtokenSection,
    /// The API's policy (Octavia's default rules, overridable from a file).
    pub oslo_policy: OsloPolicySection,
    /// Where the daemons without an API serve their Prometheus metrics.
    pub metrics: MetricsSection,
}

/// `[metrics]` (ours): the Prometheus endpoint (`GET /metrics`) of the daemons that do not
/// serve the API. The API and the all-in-one serve theirs at the API's `/metrics`. Each
/// daemon has its own port so that all of them can run on one host; 0 turns one off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address the endpoints listen on (loopback by default: scrape locally or open it).
    pub bind_host: String,
    /// Port of `octavia-worker`'s endpoint.
    pub worker_port: u16,
    /// Port of `octavia-health-manager`'s endpoint.
    pub health_manager_port: u16,
    /// Port of `octavia-housekeeping`'s endpoint.
    pub housekeeping_port: u16,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            worker_port: 9127,
            health_manager_port: 9128,
            housekeeping_port: 9129,
        }
    }
}

/// `auth_strategy` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategy {
    /// No authentication, for local use and tests: the project from `X-Project-Id`, the
    /// roles from `X-Roles` (none named: the project's member; no headers at all: the local
    /// admin). Refused on a non-loopback `bind_host` unless `noauth_allow_remote = true`.
    Noauth,
    /// Keystone tokens (`X-Auth-Token`), validated as `[keystone_authtoken]` says.
    Keystone,
}

/// `[DEFAULT]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultSection {
    /// This host's name in the control plane (default: the machine's hostname). Workers own
    /// job leases as `<host>-<pid>`.
    pub host: Option<String>,
}

/// `[api_settings]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettingsSection {
    /// Address the API listens on.
    pub bind_host: String,
    /// Port the API listens on.
    pub bind_port: u16,
    /// How requests are authenticated: "noauth" or "keystone".
    pub auth_strategy: AuthStrategy,
    /// Serve noauth on a non-loopback `bind_host` (anyone who can reach the port is then
    /// any project and any role). Off: such a configuration is refused at start.
    pub noauth_allow_remote: bool,
    /// The most objects one list page returns.
    pub pagination_max_limit: u32,
    /// Base URL used in pagination links (default: the request's own host).
    pub api_base_uri: Option<String>,
    /// Whether TERMINATED_HTTPS listeners may be created.
    pub allow_tls_terminated_listeners: bool,
    /// Whether PING health monitors may be created.
    pub allow_ping_health_monitors: bool,
    /// Whether PROMETHEUS listeners may be created.
    pub allow_prometheus_listeners: bool,
    /// Smallest `delay` (seconds) of a UDP-CONNECT health monitor.
    pub udp_connect_min_interval_health_monitor: i32,
    /// Provider used when a load balancer names none.
    pub default_provider_driver: String,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_request_body_size: usize,
}

impl Default for ApiSettingsSection {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            bind_port: 9876,
            auth_strategy: AuthStrategy::Noauth,
            noauth_allow_remote: false,
            pagination_max_limit: 1000,
            api_base_uri: None,
            allow_tls_terminated_listeners: true,
            allow_ping_health_monitors: true,
            allow_prometheus_listeners: true,
            udp_connect_min_interval_health_monitor: 3,
            default_provider_driver: "amphora".into(),
            max_request_body_size: 114_688,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://PATH` (embedded, created if missing) or `postgres://USER:PASS@HOST/DB`.
    pub connection: String,
    /// Connections kept open per process (SQLite: read connections, plus one for writes).
    pub max_pool_size: u32,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            connection: "sqlite:///var/lib/octavia/octavia.db".into(),
            max_pool_size: 10,
        }
    }
}

/// `loadbalancer_topology` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TopologyChoice {
    /// One amphora per load balancer.
    Single,
    /// Two amphorae with VRRP.
    ActiveStandby,
}

/// `[controller_worker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerWorkerSection {
    /// Topology of new load balancers: "SINGLE" or "ACTIVE_STANDBY".
    pub loadbalancer_topology: TopologyChoice,
    /// Compute driver: "netns" (amphorae as network namespaces) or "noop" (API tests).
    pub compute_driver: String,
    /// Network driver: "netns" (tenant networks as bridges) or "noop".
    pub network_driver: String,
    /// Amphora driver: "agent" (the mTLS client of amphora-agent) or "noop".
    pub amphora_driver: String,
    /// Tag selecting the amphora image: the newest image carrying it boots new amphorae.
    pub amp_image_tag: String,
    /// A fixed amphora image id (overrides amp_image_tag).
    pub amp_image_id: Option<String>,
    /// How long a new amphora instance may take to become active.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub amp_boot_timeout: Duration,
}

impl Default for ControllerWorkerSection {
    fn default() -> Self {
        Self {
            loadbalancer_topology: TopologyChoice::Single,
            compute_driver: "noop".into(),
            network_driver: "noop".into(),
            amphora_driver: "noop".into(),
            amp_image_tag: "amphora".into(),
            amp_image_id: None,
            amp_boot_timeout: Duration::from_secs(300),
        }
    }
}

impl ControllerWorkerSection {
    /// Whether the real drivers (netns compute and network, agent client) are configured.
    pub fn real_drivers(&self) -> bool {
        self.compute_driver == "netns"
    }
}

/// `[task_flow]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TaskFlowSection {
    /// Flows one worker process runs at once.
    pub max_workers: u32,
    /// Lease on a claimed job; a job whose worker died is resumed by another after this.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub jobboard_expiration_time: Duration,
    /// How often an idle worker looks for jobs other processes queued.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
    /// Most tenant jobs running at once across all workers (0 = no cap).
    pub tenant_max_running: u32,
    /// Most operator-requested jobs (failovers, rotations) running at once across all workers.
    pub operator_max_running: u32,
}

impl Default for TaskFlowSection {
    fn default() -> Self {
        Self {
            max_workers: 5,
            jobboard_expiration_time: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            tenant_max_running: 0,
            operator_max_running: 2,
        }
    }
}

/// A secret option: parsed from a string, shown as `***` by `config check` and in logs.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// `[keystone_authtoken]` (keystonemiddleware's option names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneAuthtokenSection {
    /// Public identity endpoint clients are sent to in `WWW-Authenticate` (default: auth_url).
    pub www_authenticate_uri: Option<String>,
    /// Identity endpoint tokens are validated against, e.g. "http://keystone:5000/v3".
    pub auth_url: Option<String>,
    /// `password` is the only auth type: the service user's credentials follow.
    pub auth_type: String,
    /// The service user that validates tokens (needs the `service` or `admin` role).
    pub username: String,
    /// The service user's password.
    pub password: Option<SecretString>,
    /// The service user's project.
    pub project_name: String,
    /// Domain of the service user.
    pub user_domain_name: String,
    /// Domain of the service user's project.
    pub project_domain_name: String,
    /// How long a token validation is reused; never past the token's own expiry.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub token_cache_time: Duration,
    /// Time to wait for a connection to Keystone (then 503 to the client).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub http_connect_timeout: Duration,
    /// Time to wait for Keystone's whole answer (then 503 to the client).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub http_request_timeout: Duration,
    /// PEM bundle of the CAs of an https Keystone (default: the system's CA bundle).
    pub cafile: Option<String>,
}

impl Default for KeystoneAuthtokenSection {
    fn default() -> Self {
        Self {
            www_authenticate_uri: None,
            auth_url: None,
            auth_type: "password".into(),
            username: "octavia".into(),
            password: None,
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            token_cache_time: Duration::from_secs(300),
            http_connect_timeout: Duration::from_secs(3),
            http_request_timeout: Duration::from_secs(10),
            cafile: None,
        }
    }
}

/// `[oslo_policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OsloPolicySection {
    /// YAML file of rule overrides (Octavia's rule names and check strings), re-read when it
    /// changes; a change that does not parse is logged and the rules in force stay.
    pub policy_file: Option<String>,
    /// Require Keystone's default roles only. Off (as Octavia documents): the deprecated
    /// `load-balancer_*` roles also pass the rules they used to.
    pub enforce_new_defaults: bool,
}

/// `[health_manager]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthManagerSection {
    /// Address the heartbeat receiver listens on (UDP).
    pub bind_ip: String,
    /// Port the heartbeat receiver listens on (UDP).
    pub bind_port: u16,
    /// Key that signs heartbeats (HMAC-SHA256). Without it the receiver does not run. Once
    /// `octavia heartbeat-key rotate` stored keys in the database, those rule: this one is
    /// only the starting key.
    pub heartbeat_key: Option<SecretString>,
    /// Keys still accepted after a rotation, newest first (amphorae not yet reconfigured).
    pub heartbeat_previous_keys: Vec<SecretString>,
    /// How often amphorae send a heartbeat; one that waited longer (and at least 5 s) in the
    /// health manager before being written does not count.
    /// Default 1 s (Octavia: 10 s): with `heartbeat_timeout` 3 s and `health_check_interval`
    /// 500 ms a dead amphora is detected 2 to 3.5 s after its last heartbeat, and a SINGLE
    /// load balancer serves again within about 6 s. The heartbeats of a few thousand
    /// amphorae a second are a small load for the receiver (see the README's figures).
    /// Octavia's slow values (10 s, 60 s, 3 s) stay valid.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub heartbeat_interval: Duration,
    /// Most automatic failovers running at once across all workers.
    pub failover_threads: u32,
    /// Where amphorae send heartbeats ("ip:port"); empty = the management bridge address of
    /// `[netns]` with `bind_port`.
    pub controller_ip_port_list: Vec<String>,
    /// An amphora whose newest heartbeat is older than this is stale and failed over.
    /// Default 3 s (Octavia: 60 s): three heartbeat intervals, so two heartbeats lost or
    /// late in a row fail nothing over; with several health managers (round robin), one
    /// dead receiver makes a gap of two intervals, still inside it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub heartbeat_timeout: Duration,
    /// Time between two checks for stale amphorae (default 500 ms; Octavia: 3 s).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub health_check_interval: Duration,
    /// Circuit breaker: when at least this many amphorae are stale at once, none is failed
    /// over; they go FAILOVER_STOPPED until their heartbeats resume. Unset: disabled.
    /// Choose it above the number of amphorae the busiest host runs (`octavia amphora list
    /// --host HOST`), plus a margin: losing one host of several is then failed over, while a
    /// fault that silences many hosts at once (the management network, the health managers'
    /// own host) stops failovers that would only make things worse. For example with 3
    /// hosts of at most 40 amphorae each, 60.
    pub failover_threshold: Option<u32>,
}

impl Default for HealthManagerSection {
    fn default() -> Self {
        Self {
            bind_ip: "127.0.0.1".into(),
            bind_port: 5555,
            heartbeat_key: None,
            heartbeat_previous_keys: Vec::new(),
            heartbeat_interval: Duration::from_secs(1),
            failover_threads: 10,
            controller_ip_port_list: Vec::new(),
            heartbeat_timeout: Duration::from_secs(3),
            health_check_interval: Duration::from_millis(500),
            failover_threshold: None,
        }
    }
}

/// `[house_keeping]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HouseKeepingSection {
    /// Time between two cleanup passes (purges of DELETED rows and finished jobs).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cleanup_interval: Duration,
    /// A DELETED amphora row is purged this long after its last update (once no heartbeat
    /// newer than that is recorded for it).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub amphora_expiry_age: Duration,
    /// A DELETED load balancer row is purged this long after its last update.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub load_balancer_expiry_age: Duration,
    /// A finished (DONE or FAILED) job row is purged this long after it finished; ours, not
    /// Octavia's (whose job board drops finished jobs at once). Default 3 days: long enough
    /// to look into a failed job after a weekend, short enough that the job table stays
    /// small.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub job_expiry_age: Duration,
    /// Time between two looks for amphora certificates due for renewal.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cert_interval: Duration,
    /// An amphora certificate expiring within this much time is renewed; it must be
    /// shorter than `[certificates] cert_validity_time`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cert_expiry_buffer: Duration,
    /// Most renewals one housekeeper queues per `cert_interval` (the worker runs them as
    /// operator jobs).
    pub cert_rotate_threads: u32,
    /// READY amphorae kept built ahead of need, per compute zone where the hosts have
    /// zones (`[netns] host_zones`), else in all; a load balancer create or failover takes
    /// one that fits instead of building. 0: no spare pool (a smaller size deletes the
    /// surplus). Changes on SIGHUP. Octavia removed its spare pool in Xena; ours honours
    /// anti-affinity.
    pub spare_amphora_pool_size: u32,
    /// Time between two looks at the spare pool (also: at once after SIGHUP changes it).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub spare_check_interval: Duration,
}

impl Default for HouseKeepingSection {
    fn default() -> Self {
        Self {
            cleanup_interval: Duration::from_secs(30),
            amphora_expiry_age: Duration::from_secs(7 * 86_400),
            load_balancer_expiry_age: Duration::from_secs(7 * 86_400),
            job_expiry_age: Duration::from_secs(3 * 86_400),
            cert_interval: Duration::from_secs(3600),
            cert_expiry_buffer: Duration::from_secs(14 * 86_400),
            cert_rotate_threads: 10,
            spare_amphora_pool_size: 0,
            spare_check_interval: Duration::from_secs(30),
        }
    }
}

/// `[haproxy_amphora]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HaproxyAmphoraSection {
    /// Default listener client inactivity timeout, milliseconds.
    pub timeout_client_data: i32,
    /// Default member connect timeout, milliseconds.
    pub timeout_member_connect: i32,
    /// Default member inactivity timeout, milliseconds.
    pub timeout_member_data: i32,
    /// Default time to wait for TCP content inspection, milliseconds.
    pub timeout_tcp_inspect: i32,
    /// Connection limit rendered for listeners whose limit is -1.
    pub default_connection_limit: i32,
    /// Port of the amphora agent's HTTPS API.
    pub bind_port: u16,
    /// The HAProxy binary inside amphorae.
    pub haproxy_cmd: String,
    /// How long the controller waits for the agent of a new amphora
    /// (Octavia: connection_max_retries x connection_retry_interval).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub agent_connect_timeout: Duration,
    /// Connect timeout of one request to an agent.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub rest_request_conn_timeout: Duration,
    /// Read timeout of one request to an agent.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub rest_request_read_timeout: Duration,
    /// Whether HAProxy logs every connection (the `log-format` of each frontend).
    pub connection_logging: bool,
    /// Most amphora builds (load balancer creates and failovers) running at once across all
    /// workers; a free slot goes to automatic failovers first, then tenant creates, then
    /// operator failovers. -1: no limit.
    pub build_rate_limit: i32,
}

impl Default for HaproxyAmphoraSection {
    fn default() -> Self {
        Self {
            timeout_client_data: 50_000,
            timeout_member_connect: 5_000,
            timeout_member_data: 50_000,
            timeout_tcp_inspect: 0,
            default_connection_limit: 50_000,
            bind_port: 9443,
            haproxy_cmd: "/usr/sbin/haproxy".into(),
            agent_connect_timeout: Duration::from_secs(600),
            rest_request_conn_timeout: Duration::from_secs(10),
            rest_request_read_timeout: Duration::from_secs(60),
            connection_logging: true,
            build_rate_limit: -1,
        }
    }
}

/// `anti_affinity_policy` choices (Nova's server group policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AntiAffinityPolicy {
    /// Hard: the two amphorae of an ACTIVE_STANDBY load balancer never share a host; with
    /// too few hosts the build fails and the load balancer goes ERROR, saying so.
    #[serde(rename = "anti-affinity")]
    AntiAffinity,
    /// Soft: different hosts when there are enough, the same host rather than no amphora.
    #[serde(rename = "soft-anti-affinity")]
    SoftAntiAffinity,
}

/// `[nova]`: placement of amphorae.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NovaSection {
    /// Keep the amphorae of an ACTIVE_STANDBY load balancer (and their replacements) on
    /// different hosts. On by default here (Octavia's default is off): a pair on one host
    /// does not survive losing that host.
    pub enable_anti_affinity: bool,
    /// "anti-affinity" (hard, the default) or "soft-anti-affinity".
    pub anti_affinity_policy: AntiAffinityPolicy,
}

impl Default for NovaSection {
    fn default() -> Self {
        Self {
            enable_anti_affinity: true,
            anti_affinity_policy: AntiAffinityPolicy::AntiAffinity,
        }
    }
}

/// `[keepalived_vrrp]`: the VRRP of ACTIVE_STANDBY load balancers (Octavia's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KeepalivedVrrpSection {
    /// VRRP advertisement interval: whole hundredths of a second from "10ms" to "40s 950ms"
    /// (VRRPv3). The standby takes the VIP after about three silent intervals.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub vrrp_advert_int: Duration,
    /// Seconds between two runs of the check script (is HAProxy serving?).
    pub vrrp_check_interval: u32,
    /// Failed checks before an amphora gives up the VIP.
    pub vrrp_fail_count: u32,
    /// Successful checks before a failed amphora may hold the VIP again.
    pub vrrp_success_count: u32,
    /// Seconds between the gratuitous ARPs of the amphora holding the VIP.
    pub vrrp_garp_refresh_interval: u32,
    /// Gratuitous ARPs sent at each refresh.
    pub vrrp_garp_refresh_count: u32,
}

impl Default for KeepalivedVrrpSection {
    fn default() -> Self {
        Self {
            vrrp_advert_int: Duration::from_secs(1),
            vrrp_check_interval: 5,
            vrrp_fail_count: 2,
            vrrp_success_count: 2,
            vrrp_garp_refresh_interval: 5,
            vrrp_garp_refresh_count: 2,
        }
    }
}

/// `[networking]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkingSection {
    /// Addresses that may never be members.
    pub reserved_ips: Vec<String>,
}

impl Default for NetworkingSection {
    fn default() -> Self {
        Self {
            reserved_ips: vec!["169.254.169.254".into()],
        }
    }
}

/// `[quotas]`: limits for projects without their own quota (-1 = unlimited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasSection {
    /// Load balancers per project.
    pub default_load_balancer_quota: i64,
    /// Listeners per project.
    pub default_listener_quota: i64,
    /// Members per project.
    pub default_member_quota: i64,
    /// Pools per project.
    pub default_pool_quota: i64,
    /// Health monitors per project.
    pub default_health_monitor_quota: i64,
    /// L7 policies per project.
    pub default_l7policy_quota: i64,
    /// L7 rules per project.
    pub default_l7rule_quota: i64,
}

impl Default for QuotasSection {
    fn default() -> Self {
        Self {
            default_load_balancer_quota: -1,
            default_listener_quota: -1,
            default_member_quota: -1,
            default_pool_quota: -1,
            default_health_monitor_quota: -1,
            default_l7policy_quota: -1,
            default_l7rule_quota: -1,
        }
    }
}

/// `[certificates]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CertificatesSection {
    /// Directory of the local CA (server CA, client CA, controller certificate); created on
    /// first start or by `octavia certs init`.
    pub ca_dir: String,
    /// How long an amphora's server certificate is valid (at build and at each renewal).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cert_validity_time: Duration,
}

impl Default for CertificatesSection {
    fn default() -> Self {
        Self {
            ca_dir: "/var/lib/octavia/certs".into(),
            cert_validity_time: Duration::from_secs(2_592_000),
        }
    }
}

/// `[netns]`: amphorae as network namespaces on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NetnsSection {
    /// Directory of the drivers' state (one directory per amphora, the tenant networks file).
    pub state_dir: String,
    /// Directory of registered amphora images (`octavia image register`).
    pub image_dir: String,
    /// Prefix of amphora namespace names.
    pub netns_prefix: String,
    /// The management bridge (at most 15 characters).
    pub management_bridge: String,
    /// CIDR of the management network amphorae get their lb_network_ip from.
    pub management_cidr: String,
    /// The controller's address on the management bridge (inside management_cidr).
    pub management_host_address: String,
    /// Names of the hypervisor hosts amphorae are placed on.
    pub hosts: Vec<String>,
    /// The availability zone of each host that has one, e.g. `{ "host-1" = "az1" }`. A load
    /// balancer whose availability zone profile sets `compute_zone` gets its amphorae only on
    /// hosts of that zone (none there: its create fails, naming the zone); one without gets
    /// them on any host. Hosts not listed belong to no zone.
    pub host_zones: BTreeMap<String, String>,
}

impl Default for NetnsSection {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/octavia/netns".into(),
            image_dir: "/var/lib/octavia/images".into(),
            netns_prefix: "amp-".into(),
            management_bridge: "octmgmt0".into(),
            management_cidr: "172.31.0.0/24".into(),
            management_host_address: "172.31.0.1".into(),
            hosts: vec!["host-1".into()],
            host_zones: BTreeMap::new(),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid option {option}: {reason}")]
    Invalid {
        option: &'static str,
        reason: String,
    },
}

impl Config {
    /// Read and validate a configuration file.
    /// The options (`section.option`) whose values differ from `other`'s, sorted. Secrets are
    /// compared too, and named, never shown.
    pub fn changed_options(&self, other: &Config) -> Vec<String> {
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(other).unwrap_or_default(),
        );
        let mut out = std::collections::BTreeSet::new();
        let empty = serde_json::Map::new();
        let sections = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let (sa, sb) = (sections(&a), sections(&b));
        for name in sa.keys().chain(sb.keys()) {
            let (x, y) = (
                sa.get(name).and_then(|v| v.as_object()).unwrap_or(&empty),
                sb.get(name).and_then(|v| v.as_object()).unwrap_or(&empty),
            );
            for key in x.keys().chain(y.keys()) {
                if x.get(key) != y.get(key) {
                    out.insert(format!("{name}.{key}"));
                }
            }
        }
        // Serialized as "***": compared here.
        if self.keystone_authtoken.password != other.keystone_authtoken.password {
            out.insert("keystone_authtoken.password".into());
        }
        if self.health_manager.heartbeat_key != other.health_manager.heartbeat_key {
            out.insert("health_manager.heartbeat_key".into());
        }
        if self.health_manager.heartbeat_previous_keys
            != other.health_manager.heartbeat_previous_keys
        {
            out.insert("health_manager.heartbeat_previous_keys".into());
        }
        out.into_iter().collect()
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Authentication that can work, and noauth only where it is safe.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.api_settings;
        match a.auth_strategy {
            AuthStrategy::Noauth => {
                let loopback = a
                    .bind_host
                    .parse::<std::net::IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(a.bind_host == "localhost");
                if !loopback && !a.noauth_allow_remote {
                    return Err(ConfigError::Invalid {
                        option: "api_settings.auth_strategy",
                        reason: format!(
                            "noauth on bind_host '{}' would let anyone who reaches it act as \
                             any project and role; use auth_strategy = \"keystone\", bind a \
                             loopback address, or set api_settings.noauth_allow_remote = true",
                            a.bind_host
                        ),
                    });
                }
            }
            AuthStrategy::Keystone => {
                let k = &self.keystone_authtoken;
                if k.auth_url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    return Err(ConfigError::Invalid {
                        option: "keystone_authtoken.auth_url",
                        reason: "required with auth_strategy = \"keystone\"".into(),
                    });
                }
                if k.auth_type != "password" {
                    return Err(ConfigError::Invalid {
                        option: "keystone_authtoken.auth_type",
                        reason: format!("'{}' is not supported; use \"password\"", k.auth_type),
                    });
                }
                if k.password.is_none() {
                    return Err(ConfigError::Invalid {
                        option: "keystone_authtoken.password",
                        reason: "the service user's password is required".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(host) = &self.default.host {
            if host.trim().is_empty() || host.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid {
                    option: "DEFAULT.host",
                    reason: format!("'{host}' is not a host name"),
                });
            }
        }
        let conn = &self.database.connection;
        if !(conn.starts_with("sqlite:")
            || conn.starts_with("postgres://")
            || conn.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                option: "database.connection",
                reason: format!("'{conn}' is neither sqlite://PATH nor postgres://..."),
            });
        }
        if self.database.max_pool_size == 0 {
            return Err(ConfigError::Invalid {
                option: "database.max_pool_size",
                reason: "must be at least 1".into(),
            });
        }
        if self.task_flow.max_workers == 0 {
            return Err(ConfigError::Invalid {
                option: "task_flow.max_workers",
                reason: "must be at least 1".into(),
            });
        }
        if self.task_flow.jobboard_expiration_time < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                option: "task_flow.jobboard_expiration_time",
                reason: "must be at least 1s".into(),
            });
        }
        let k = &self.keepalived_vrrp;
        let advert = k.vrrp_advert_int;
        if !advert.subsec_nanos().is_multiple_of(10_000_000)
            || advert < Duration::from_millis(10)
            || advert > Duration::from_millis(40_950)
        {
            return Err(ConfigError::Invalid {
                option: "keepalived_vrrp.vrrp_advert_int",
                reason: format!(
                    "{advert:?} is not whole hundredths of a second from 10ms to 40s 950ms \
                     (VRRPv3)"
                ),
            });
        }
        for (option, value) in [
            ("keepalived_vrrp.vrrp_check_interval", k.vrrp_check_interval),
            ("keepalived_vrrp.vrrp_fail_count", k.vrrp_fail_count),
            ("keepalived_vrrp.vrrp_success_count", k.vrrp_success_count),
            (
                "keepalived_vrrp.vrrp_garp_refresh_count",
                k.vrrp_garp_refresh_count,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    option,
                    reason: "must be at least 1".into(),
                });
            }
        }
        let c = &self.controller_worker;
        let real = c.real_drivers();
        for (option, value, want) in [
            (
                "controller_worker.compute_driver",
                &c.compute_driver,
                "netns",
            ),
            (
                "controller_worker.network_driver",
                &c.network_driver,
                "netns",
            ),
            (
                "controller_worker.amphora_driver",
                &c.amphora_driver,
                "agent",
            ),
        ] {
            if value != "noop" && value != want {
                return Err(ConfigError::Invalid {
                    option,
                    reason: format!("unknown driver '{value}': choose \"{want}\" or \"noop\""),
                });
            }
            if (value == want) != real {
                return Err(ConfigError::Invalid {
                    option,
                    reason: format!(
                        "'{value}' cannot be combined with the other drivers: use \
                         compute_driver = \"netns\", network_driver = \"netns\", \
                         amphora_driver = \"agent\" together, or \"noop\" for all three"
                    ),
                });
            }
        }
        if real && self.health_manager.heartbeat_key.is_none() {
            return Err(ConfigError::Invalid {
                option: "health_manager.heartbeat_key",
                reason: "the netns drivers need it: amphorae sign their heartbeats with it".into(),
            });
        }
        let n = &self.netns;
        let cidr: Option<(std::net::Ipv4Addr, u8)> = n
            .management_cidr
            .split_once('/')
            .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok().filter(|p| *p <= 30)?)));
        let Some((net, prefix)) = cidr else {
            return Err(ConfigError::Invalid {
                option: "netns.management_cidr",
                reason: format!(
                    "'{}' is not an IPv4 CIDR with prefix <= 30",
                    n.management_cidr
                ),
            });
        };
        let host: std::net::Ipv4Addr =
            n.management_host_address
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    option: "netns.management_host_address",
                    reason: format!("'{}' is not an IPv4 address", n.management_host_address),
                })?;
        let mask = u32::MAX << (32 - prefix);
        if u32::from(host) & mask != u32::from(net) & mask {
            return Err(ConfigError::Invalid {
                option: "netns.management_host_address",
                reason: format!("{host} is not inside {}", n.management_cidr),
            });
        }
        if n.management_bridge.is_empty() || n.management_bridge.len() > 15 {
            return Err(ConfigError::Invalid {
                option: "netns.management_bridge",
                reason: "must be 1 to 15 characters".into(),
            });
        }
        if n.hosts.is_empty() {
            return Err(ConfigError::Invalid {
                option: "netns.hosts",
                reason: "name at least one host".into(),
            });
        }
        for (host, zone) in &n.host_zones {
            if !n.hosts.contains(host) {
                return Err(ConfigError::Invalid {
                    option: "netns.host_zones",
                    reason: format!("'{host}' is not one of netns.hosts"),
                });
            }
            if zone.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    option: "netns.host_zones",
                    reason: format!("host '{host}' has an empty zone"),
                });
            }
        }
        let hm = &self.health_manager;
        if real
            && hm.controller_ip_port_list.is_empty()
            && hm.bind_ip != "0.0.0.0"
            && hm.bind_ip != n.management_host_address
        {
            return Err(ConfigError::Invalid {
                option: "health_manager.bind_ip",
                reason: format!(
                    "amphorae send heartbeats to {}:{} (netns.management_host_address) but the \
                     receiver listens on {}: set bind_ip to \"0.0.0.0\" or that address, or \
                     list the receivers in controller_ip_port_list",
                    n.management_host_address, hm.bind_port, hm.bind_ip
                ),
            });
        }
        if hm.heartbeat_timeout <= hm.heartbeat_interval {
            return Err(ConfigError::Invalid {
                option: "health_manager.heartbeat_timeout",
                reason: format!(
                    "{:?} is not longer than heartbeat_interval ({:?}): every amphora would \
                     look stale between two heartbeats",
                    hm.heartbeat_timeout, hm.heartbeat_interval
                ),
            });
        }
        let hk = &self.house_keeping;
        for (option, interval) in [
            ("house_keeping.cleanup_interval", hk.cleanup_interval),
            ("house_keeping.cert_interval", hk.cert_interval),
            (
                "certificates.cert_validity_time",
                self.certificates.cert_validity_time,
            ),
        ] {
            if interval.is_zero() {
                return Err(ConfigError::Invalid {
                    option,
                    reason: "must be longer than zero".into(),
                });
            }
        }
        if hk.cert_rotate_threads == 0 {
            return Err(ConfigError::Invalid {
                option: "house_keeping.cert_rotate_threads",
                reason: "must be at least 1".into(),
            });
        }
        if let Err(e) = octavia_model::housekeeping::renewal_period(
            self.certificates.cert_validity_time,
            hk.cert_expiry_buffer,
        ) {
            return Err(ConfigError::Invalid {
                option: "house_keeping.cert_expiry_buffer",
                reason: e.to_string(),
            });
        }
        if hm.health_check_interval.is_zero() {
            return Err(ConfigError::Invalid {
                option: "health_manager.health_check_interval",
                reason: "must be longer than zero".into(),
            });
        }
        for hp in &self.health_manager.controller_ip_port_list {
            if hp.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    option: "health_manager.controller_ip_port_list",
                    reason: format!("'{hp}' is not ip:port"),
                });
            }
        }
        if self
            .health_manager
            .bind_ip
            .parse::<std::net::IpAddr>()
            .is_err()
        {
            return Err(ConfigError::Invalid {
                option: "health_manager.bind_ip",
                reason: format!("'{}' is not an IP address", self.health_manager.bind_ip),
            });
        }
        if self.health_manager.heartbeat_interval < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                option: "health_manager.heartbeat_interval",
                reason: "must be at least 100ms".into(),
            });
        }
        self.validate_auth()?;
        if self.api_settings.pagination_max_limit == 0 {
            return Err(ConfigError::Invalid {
                option: "api_settings.pagination_max_limit",
                reason: "must be at least 1".into(),
            });
        }
        for ip in &self.networking.reserved_ips {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    option: "networking.reserved_ips",
                    reason: format!("'{ip}' is not an IP address"),
                });
            }
        }
        for (option, v) in [
            (
                "quotas.default_load_balancer_quota",
                self.quotas.default_load_balancer_quota,
            ),
            (
                "quotas.default_listener_quota",
                self.quotas.default_listener_quota,
            ),
            (
                "quotas.default_member_quota",
                self.quotas.default_member_quota,
            ),
            ("quotas.default_pool_quota", self.quotas.default_pool_quota),
            (
                "quotas.default_health_monitor_quota",
                self.quotas.default_health_monitor_quota,
            ),
            (
                "quotas.default_l7policy_quota",
                self.quotas.default_l7policy_quota,
            ),
            (
                "quotas.default_l7rule_quota",
                self.quotas.default_l7rule_quota,
            ),
        ] {
            if !(-1..=2_000_000_000).contains(&v) {
                return Err(ConfigError::Invalid {
                    option,
                    reason: format!("{v} is outside -1..2000000000"),
                });
            }
        }
        Ok(())
    }

    /// The sample configuration generated from this schema: every option, commented
    /// with its doc line, set to its default.
    pub fn sample() -> String {
        let schema = serde_json::to_value(schemars::schema_for!(Config)).expect("schema is JSON");
        let defaults = serde_json::to_value(Config::default()).expect("config is JSON");
        let mut out = String::from(
            "# octavia-rs sample configuration, generated by `octavia config sample`.\n\
             # Every option is shown with its default. Section and option names follow Octavia's.\n",
        );
        let defs = &schema["$defs"];
        let sections = schema["properties"].as_object().expect("sections");
        for (section, sprop) in sections {
            let def = resolve(sprop, defs);
            out.push('\n');
            if let Some(d) = sprop.get("description").or_else(|| def.get("description")) {
                out.push_str(&format!("# {}\n", d.as_str().unwrap_or_default()));
            }
            out.push_str(&format!("[{section}]\n"));
            let fields = def["properties"].as_object().expect("fields");
            for (field, fprop) in fields {
                if let Some(d) = fprop.get("description") {
                    for line in d.as_str().unwrap_or_default().lines() {
                        out.push_str(&format!("# {line}\n"));
                    }
                }
                let value = &defaults[section][field];
                if value.is_null() {
                    out.push_str(&format!("# {field} =\n"));
                } else if value.is_object() {
                    // A map option stays inside its section: an inline table.
                    out.push_str(&format!("{field} = {}\n", json_to_toml(value)));
                } else {
                    let mut t = toml::Table::new();
                    t.insert(field.clone(), json_to_toml(value));
                    out.push_str(&toml::to_string(&t).expect("toml value"));
                }
            }
        }
        out
    }
}

fn resolve<'a>(prop: &'a serde_json::Value, defs: &'a serde_json::Value) -> &'a serde_json::Value {
    let reference = prop
        .get("$ref")
        .or_else(|| prop.get("allOf").and_then(|a| a[0].get("$ref")));
    match reference.and_then(|r| r.as_str()) {
        Some(r) => &defs[r.trim_start_matches("#/$defs/")],
        None => prop,
    }
}

fn json_to_toml(v: &serde_json::Value) -> toml::Value {
    match v {
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        serde_json::Value::Array(a) => toml::Value::Array(a.iter().map(json_to_toml).collect()),
        serde_json::Value::Object(o) => toml::Value::Table(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_toml(v)))
                .collect(),
        ),
        serde_json::Value::Null => toml::Value::String(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_options_names_each_change_and_secrets_without_their_value() {
        let a = Config::parse("[health_manager]\nheartbeat_key = \"old\"\n").unwrap();
        let b = Config::parse(
            "[health_manager]\nheartbeat_key = \"new\"\nfailover_threshold = 5\n\n\
             [api_settings]\nbind_port = 9999\n",
        )
        .unwrap();
        assert!(a.changed_options(&a).is_empty());
        let changed = a.changed_options(&b);
        assert_eq!(
            changed,
            [
                "api_settings.bind_port",
                "health_manager.failover_threshold",
                "health_manager.heartbeat_key"
            ]
        );
        assert!(!format!("{changed:?}").contains("new"));
    }

    #[test]
    fn checked_in_sample_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/octavia.sample.toml");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == Config::sample(),
            "etc/octavia.sample.toml is stale: run `cargo run -p octavia --bin octavia -- config sample > etc/octavia.sample.toml`"
        );
    }

    #[test]
    fn heartbeat_keys_never_show() {
        let c = Config::parse("[health_manager]\nheartbeat_key = \"s3cret-key\"\n").unwrap();
        assert_eq!(
            c.health_manager.heartbeat_key.as_ref().unwrap().0,
            "s3cret-key"
        );
        let shown = toml::to_string(&c).unwrap();
        assert!(
            !shown.contains("s3cret-key") && shown.contains("***"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("s3cret-key"));
    }

    #[test]
    fn sample_parses_to_the_defaults() {
        assert_eq!(Config::parse(&Config::sample()).unwrap(), Config::default());
    }

    #[test]
    fn noauth_stays_on_loopback_unless_the_operator_says_otherwise() {
        assert!(Config::parse("[api_settings]\nbind_host = \"::1\"\n").is_ok());
        let err = Config::parse("[api_settings]\nbind_host = \"0.0.0.0\"\n").unwrap_err();
        assert!(
            err.to_string().contains("api_settings.auth_strategy"),
            "{err}"
        );
        assert!(err.to_string().contains("noauth_allow_remote"), "{err}");
        let ok = "[api_settings]\nbind_host = \"0.0.0.0\"\nnoauth_allow_remote = true\n";
        assert!(Config::parse(ok).is_ok());
        // Keystone needs where and as whom to validate tokens.
        let ks = "[api_settings]\nbind_host = \"0.0.0.0\"\nauth_strategy = \"keystone\"\n";
        let err = Config::parse(ks).unwrap_err();
        assert!(
            err.to_string().contains("keystone_authtoken.auth_url"),
            "{err}"
        );
        let with_url = format!("{ks}[keystone_authtoken]\nauth_url = \"http://ks:5000/v3\"\n");
        let err = Config::parse(&with_url).unwrap_err();
        assert!(
            err.to_string().contains("keystone_authtoken.password"),
            "{err}"
        );
        let c = Config::parse(&format!("{with_url}password = \"s3cret\"\n")).unwrap();
        assert_eq!(
            c.keystone_authtoken.token_cache_time,
            Duration::from_secs(300)
        );
        assert!(!format!("{:?}", c.keystone_authtoken).contains("s3cret"));
    }

    #[test]
    fn unknown_options_and_bad_values_are_refused_with_their_name() {
        let err = Config::parse("[api_settings]\nbind_prot = 1\n").unwrap_err();
        assert!(err.to_string().contains("bind_prot"), "{err}");
        let err = Config::parse("[database]\nconnection = \"mysql://x\"\n").unwrap_err();
        assert!(err.to_string().contains("database.connection"), "{err}");
        let err = Config::parse("[DEFAULT]\nhost = \"\"\n").unwrap_err();
        assert!(err.to_string().contains("DEFAULT.host"), "{err}");
        let c = Config::parse("[DEFAULT]\nhost = \"ctl-1\"\n").unwrap();
        assert_eq!(c.default.host.as_deref(), Some("ctl-1"));
        let err = Config::parse("[task_flow]\njobboard_expiration_time = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string().contains("jobboard_expiration_time"),
            "{err}"
        );
        let err = Config::parse("[networking]\nreserved_ips = [\"1.2.3\"]\n").unwrap_err();
        assert!(err.to_string().contains("reserved_ips"), "{err}");
        let err = Config::parse("[health_manager]\nbind_ip = \"localhost\"\n").unwrap_err();
        assert!(err.to_string().contains("health_manager.bind_ip"), "{err}");
        let err = Config::parse("[netns]\nhosts = [\"h1\"]\nhost_zones = { h2 = \"az1\" }\n")
            .unwrap_err();
        assert!(err.to_string().contains("netns.host_zones"), "{err}");
        let zoned =
            Config::parse("[netns]\nhosts = [\"h1\", \"h2\"]\nhost_zones = { h2 = \"az1\" }\n")
                .unwrap();
        assert_eq!(
            zoned.netns.host_zones.get("h2").map(String::as_str),
            Some("az1")
        );
        for bad in ["\"5ms\"", "\"15ms\"", "\"41s\""] {
            let err = Config::parse(&format!("[keepalived_vrrp]\nvrrp_advert_int = {bad}\n"))
                .unwrap_err();
            assert!(
                err.to_string().contains("keepalived_vrrp.vrrp_advert_int"),
                "{bad}: {err}"
            );
        }
        let err = Config::parse("[keepalived_vrrp]\nvrrp_fail_count = 0\n").unwrap_err();
        assert!(
            err.to_string().contains("keepalived_vrrp.vrrp_fail_count"),
            "{err}"
        );
        let fast = Config::parse("[keepalived_vrrp]\nvrrp_advert_int = \"200ms\"\n").unwrap();
        assert_eq!(
            fast.keepalived_vrrp.vrrp_advert_int,
            Duration::from_millis(200)
        );
        let ok = Config::parse("[task_flow]\njobboard_expiration_time = \"5s\"\n").unwrap();
        assert_eq!(
            ok.task_flow.jobboard_expiration_time,
            Duration::from_secs(5)
        );
    }
}

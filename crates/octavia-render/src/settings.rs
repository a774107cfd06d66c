//! Operator settings the renderer needs (Octavia's `[haproxy_amphora]` and log options).

/// Octavia's default `[haproxy_amphora] user_log_format`; `{{ project_id }}` and `{{ lb_id }}`
/// are replaced by the load balancer's project and id when rendering.
pub const DEFAULT_USER_LOG_FORMAT: &str = "{{ project_id }} {{ lb_id }} %f %ci %cp %t %{+Q}r %ST %B %U %[ssl_c_verify] %{+Q}[ssl_c_s_dn] %b %s %Tt %tsc";

/// How to render; a plain struct filled by the binary from its configuration.
/// `Default` gives Octavia's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSettings {
    /// Where the agent keeps per-load-balancer files (`[haproxy_amphora] base_path`).
    /// The stats socket is `<base_path>/<lb_id>.sock`, the server-state file
    /// `<base_path>/<lb_id>/servers-state`.
    pub base_path: String,
    /// Whether connections are logged (`[haproxy_amphora] connection_logging`); when off the
    /// defaults section says `no log` and frontends carry no `log-format`.
    pub connection_logging: bool,
    /// Per-connection log format (`[haproxy_amphora] user_log_format`), with the literal
    /// placeholders `{{ project_id }}` and `{{ lb_id }}`, which the renderer substitutes.
    pub user_log_format: String,
    /// `maxconn` of listeners whose `connection_limit` is -1
    /// (`[haproxy_amphora] default_connection_limit`).
    pub default_connection_limit: i32,
    /// Upper bound of the global `maxconn` (the sum of the listeners' limits); Octavia's
    /// `HAPROXY_MAX_MAXCONN` is 1 000 000. HAProxy refuses to start when it cannot raise its
    /// open-file limit to about `2 × maxconn`, so an agent under a lower hard `RLIMIT_NOFILE`
    /// must lower this (roughly `(nofile - 1000) / 2`).
    pub max_global_maxconn: i64,
    /// Size of the stick tables of SOURCE_IP/APP_COOKIE persistence (`haproxy_stick_size`).
    pub haproxy_stick_size: String,
    /// The `external-check command` of PING health monitors; must exist in the amphora and
    /// be executable by `user`.
    pub ping_wrapper_path: String,
    /// Where HAProxy sends its logs (`log <target> ...` in `global`): a unix datagram socket
    /// path or `host:port` of a syslog receiver. Octavia's amphorae use rsyslog's socket.
    pub log_target: String,
    /// Syslog facility number of connection logs, `local<N>` (`[amphora_agent] user_log_facility`).
    pub user_log_facility: u8,
    /// Syslog facility number of HAProxy's own (notice and above) logs,
    /// `local<N>` (`[amphora_agent] administrative_log_facility`).
    pub administrative_log_facility: u8,
    /// `user` the HAProxy workers drop to (`None`: no `user` line, they keep the starting user).
    pub user: Option<String>,
    /// `group` the HAProxy workers drop to (`None`: no `group` line).
    pub group: Option<String>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            base_path: "/var/lib/octavia".to_string(),
            connection_logging: true,
            user_log_format: DEFAULT_USER_LOG_FORMAT.to_string(),
            default_connection_limit: 50_000,
            max_global_maxconn: 1_000_000,
            haproxy_stick_size: "10k".to_string(),
            ping_wrapper_path: "/var/lib/octavia/ping-wrapper.sh".to_string(),
            log_target: "/run/rsyslog/octavia/log".to_string(),
            user_log_facility: 0,
            administrative_log_facility: 1,
            user: Some("nobody".to_string()),
            // Debian's group for `nobody` (Octavia injects the distribution's group at boot).
            group: Some("nogroup".to_string()),
        }
    }
}

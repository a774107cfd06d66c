//! Operator settings the renderer needs (Octavia's `[haproxy_amphora]` and log options).

/// Octavia's default `[haproxy_amphora] user_log_format`; `{{ project_id }}` and `{{ lb_id }}`
/// are replaced by the load balancer's project and id when rendering.
pub const DEFAULT_USER_LOG_FORMAT: &str = "{{ project_id }} {{ lb_id }} %f %ci %cp %t %{+Q}r %ST %B %U %[ssl_c_verify] %{+Q}[ssl_c_s_dn] %b %s %Tt %tsc";

/// Octavia's `HAPROXY_MAX_MAXCONN`: the largest global `maxconn` ever rendered.
pub const HAPROXY_MAX_MAXCONN: i64 = 1_000_000;

/// Descriptors HAProxy needs besides those of its connections and pipes (listeners, stats
/// socket, pollers, wake-up pipes, log sockets, health checks in flight), with a margin.
const FD_RESERVE: u64 = 1_000;

/// The largest global `maxconn` HAProxy can start with under an open-file limit of `nofile`
/// (the amphora's hard `RLIMIT_NOFILE`), for [`RenderSettings::max_global_maxconn`].
///
/// HAProxy needs two descriptors per connection plus two per splice pipe, and with the
/// rendered `option splice-request`/`splice-response` it reserves `maxconn / 4` pipes:
/// about `2.5 × maxconn` descriptors (HAProxy 2.6 asks for 125 031 at `maxconn 50000`,
/// 22 531 at 9000). With the default strict limits it refuses to start when it cannot raise
/// its limit that far ("Cannot raise FD limit"). The result is between 1 and
/// [`HAPROXY_MAX_MAXCONN`].
pub fn max_global_maxconn_for_fd_limit(nofile: u64) -> i64 {
    let usable = nofile.saturating_sub(FD_RESERVE);
    let maxconn = usable.saturating_mul(2) / 5;
    i64::try_from(maxconn)
        .unwrap_or(HAPROXY_MAX_MAXCONN)
        .clamp(1, HAPROXY_MAX_MAXCONN)
}

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
    /// open-file limit to about `2.5 × maxconn`, so amphorae under a lower hard
    /// `RLIMIT_NOFILE` need [`max_global_maxconn_for_fd_limit`] of that limit here.
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
            max_global_maxconn: HAPROXY_MAX_MAXCONN,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxconn_fits_the_descriptor_limit() {
        for (nofile, maxconn) in [
            (0, 1),
            (1_000, 1),
            (1_024, 9),
            (20_000, 7_600),
            (1_048_576, 419_030),
            (2_600_000, 1_000_000),
            (u64::MAX, 1_000_000),
        ] {
            assert_eq!(max_global_maxconn_for_fd_limit(nofile), maxconn, "{nofile}");
        }
        // What HAProxy 2.6 asks for (2 per connection, 2 per pipe, maxconn / 4 pipes, ~31
        // more) stays within the limit.
        for nofile in [4_096_u64, 20_000, 65_536, 1_048_576] {
            let m = max_global_maxconn_for_fd_limit(nofile) as u64;
            assert!(2 * m + 2 * (m / 4) + 31 <= nofile, "{nofile}: {m}");
        }
    }
}

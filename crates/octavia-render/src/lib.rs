//! Pure rendering of the load-balancing model into the text HAProxy and keepalived run in an
//! amphora.
//!
//! [`render_keepalived`] writes the VRRP configuration of one amphora of an ACTIVE_STANDBY load
//! balancer (reference §11.2; its differences from Octavia are on the function). Its golden
//! files are checked by the real `keepalived -t`.
//!
//! [`render_haproxy`] turns one load balancer and its children into the single combined
//! `haproxy.cfg` that the amphora agent starts in master-worker mode (`haproxy -W`, seamless
//! reloads with `-x <stats socket>`). The crate does no I/O: the same input gives the same
//! bytes, and the result is golden-file tested and checked with the real `haproxy -c`.
//!
//! The specification is reference §11.1 (Octavia's Jinja templates). Where this renderer
//! differs on purpose:
//!
//! * **Process.** No `daemon` line (the agent runs HAProxy in the foreground with `-W`), no
//!   `peers` section (SINGLE topology only so far; stick tables are not synchronised between
//!   amphorae), no `nbthread`/`cpu-map` tuning and no `tune.ssl.cachesize`. The stats socket is
//!   `level admin` with `expose-fd listeners` (the agent uses the runtime API for member
//!   weight/state and passes the listening sockets to the new process on reload).
//! * **Protocols.** HTTP, TCP, HTTPS (TLS pass-through, `mode tcp`) and PROMETHEUS listeners
//!   are rendered; a PROMETHEUS listener's requests go to the agent's metrics proxy, which reads
//!   HAProxy's own exporter on the amphora's loopback (the addresses are
//!   `amphora_proto::agent::PROMETHEUS_*`). TERMINATED_HTTPS (certificates) and UDP/SCTP
//!   (keepalived LVS) are refused with [`RenderError::Unsupported`]. Pools with `tls_enabled`
//!   re-encrypt with `ssl verify none`; a pool with client/CA/CRL certificates is refused
//!   likewise. What is refused is decided by [`support`], which the API applies too.
//! * **`allowed_cidrs`** are enforced in HAProxy (there are no security groups):
//!   `tcp-request connection reject if !{ src <cidrs> }`.
//! * **L7 order.** HAProxy evaluates `http-request` rules, then `redirect` rules, then
//!   `use_backend`, whatever the order in the file. So policies are written in that order —
//!   every REJECT, then every REDIRECT_TO_URL/REDIRECT_PREFIX, then every REDIRECT_TO_POOL,
//!   each group by position — which is the precedence Octavia documents for L7 policies.
//!   A policy without enabled rules is not rendered; a redirect always carries its code
//!   (302 when unset). A value starting with `-` is preceded by `--` so HAProxy cannot read
//!   it as a flag.
//! * **Health checks.** `http-check expect rstatus` gets an anchored regex (`^(200|202)$`).
//!   A monitor `delay` below one second is refused (HAProxy rejects `inter 0`).
//! * **insert_headers.** Besides X-Forwarded-For/-Port/-Proto, `X-Forwarded-IP`,
//!   `X-Client-IP` and `X-Real-IP` set to `true` are filled with the client address.
//!   Headers only apply to HTTP-mode backends; other names are ignored (the API refuses them).
//! * **Cookie persistence** (HTTP_COOKIE, APP_COOKIE) needs HTTP; on a TCP-mode backend it is
//!   left out (HAProxy would ignore it with a warning).
//! * **Log format.** HTTP-only variables become `-` in TCP frontends; `%[ssl_c_*]` samples
//!   become `-` without TLS termination; a `%` in the project or load balancer id is doubled.
//!   HAProxy logs to [`RenderSettings::log_target`] (Octavia: rsyslog's socket).
//! * **Ordering.** Listeners by port then id, backends in the order their listener uses them
//!   (default pool first), members and rules by id, L7 policies by position then id,
//!   `allowed_cidrs` sorted: the output does not depend on the order of the input slices.
//!
//! The agent must keep `<base_path>/<lb_id>/`; before each reload it dumps
//! `show servers state` into `<base_path>/<lb_id>/servers-state` (read by backends that have a
//! health monitor, so members keep their check state across reloads).

mod error;
mod escape;
mod expected_codes;
mod haproxy;
mod keepalived;
mod log_format;
mod settings;
pub mod support;

pub use error::{RenderError, Subject};
pub use escape::escape_word;
pub use expected_codes::parse_expected_codes;
pub use haproxy::{backend_name, render_haproxy, stats_socket_path, RenderInput};
pub use keepalived::{
    keepalived_check_script_path, render_keepalived, render_keepalived_takeover, vrrp_priority,
    KeepalivedInput, KeepalivedSettings, VrrpHostRoute, VrrpVip, BACKUP_PRIORITY, MASTER_PRIORITY,
    TAKEOVER_PRIORITY,
};
pub use settings::{
    max_global_maxconn_for_fd_limit, RenderSettings, DEFAULT_USER_LOG_FORMAT, HAPROXY_MAX_MAXCONN,
};

//! The metrics proxy of PROMETHEUS listeners (Octavia's `prometheus-proxy`): serves HAProxy's
//! built-in Prometheus exporter renamed to Octavia's `octavia_*` families, plus this amphora's
//! CPU and memory gauges.
//!
//! The listener's frontend sends every request to the backend `prometheus-exporter-internal`,
//! whose one server is this proxy ([`PROMETHEUS_PROXY_ADDR`] by default). The proxy reads the
//! exporter that the rendered configuration serves on an internal frontend
//! ([`PROMETHEUS_EXPORTER_ADDR`] by default), rewrites it ([`rewrite`]) and answers
//! `text/plain; version=0.0.4`, or 502 when the exporter cannot be read. `GET /metrics` and
//! `GET /` answer the same (Octavia answers every path; a scraper asks for one of these two);
//! other paths get 404, other methods 405.
//!
//! [`PROMETHEUS_PROXY_ADDR`]: amphora_proto::agent::PROMETHEUS_PROXY_ADDR
//! [`PROMETHEUS_EXPORTER_ADDR`]: amphora_proto::agent::PROMETHEUS_EXPORTER_ADDR

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::config::AgentConfig;
use crate::haproxy::HaproxyManager;
use crate::usage::{self, CpuHistory, Usage};

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Longest time reading the exporter may take (Prometheus' default scrape timeout).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest exporter answer read (thousands of members make a few MiB).
const MAX_EXPORTER_BODY: usize = 64 * 1024 * 1024;

/// Family names the proxy adds itself; an exporter family renamed to one of them is dropped.
const OWN_FAMILIES: [&str; 2] = ["octavia_loadbalancer_cpu", "octavia_loadbalancer_memory"];

/// Lines mentioning this are the exporter's own frontend and backend; they are dropped.
const EXPORTER_MARK: &str = "prometheus-exporter";

/// How one scope of HAProxy's metric families maps to Octavia's names.
struct Scope {
    /// Prefix of HAProxy's family names.
    from: &'static str,
    /// The prefix that replaces it.
    to: &'static str,
    /// Label names renamed in the samples (`from`, `to`).
    labels: &'static [(&'static str, &'static str)],
}

/// The renaming rules, most specific first.
///
/// Octavia's proxy keeps a whitelist of the families it knew (HAProxy 2.x), and drops the
/// rest; these rules rename every family of a scope instead, so families a newer HAProxy adds
/// are served too, under a name that follows the same pattern. Families of other HAProxy
/// scopes (`haproxy_sticktable_*`, ...) have no Octavia object and are dropped; lines that
/// are not HAProxy's (`haproxy_` prefix) pass untouched. Label values stay as HAProxy has
/// them: a pool is named by its backend, `<pool_id>:<listener_id>`; HELP texts are HAProxy's.
const SCOPES: &[Scope] = &[
    Scope {
        from: "haproxy_process_pool_",
        to: "octavia_memory_pool_",
        labels: &[],
    },
    Scope {
        from: "haproxy_process_",
        to: "octavia_loadbalancer_",
        labels: &[],
    },
    Scope {
        from: "haproxy_frontend_",
        to: "octavia_listener_",
        labels: &[("proxy", "listener")],
    },
    Scope {
        from: "haproxy_backend_",
        to: "octavia_pool_",
        labels: &[("proxy", "pool")],
    },
    Scope {
        from: "haproxy_server_",
        to: "octavia_member_",
        labels: &[("proxy", "pool"), ("server", "member")],
    },
];

/// What becomes of one metric family.
enum Verdict {
    /// Not HAProxy's: the line passes untouched.
    Keep,
    /// HAProxy's without an Octavia name: the line is dropped.
    Drop,
    /// Renamed, with label names to rename in samples.
    Rename {
        name: String,
        labels: &'static [(&'static str, &'static str)],
    },
}

fn judge(family: &str) -> Verdict {
    if !family.starts_with("haproxy_") {
        return Verdict::Keep;
    }
    for scope in SCOPES {
        if let Some(rest) = family.strip_prefix(scope.from) {
            let name = format!("{}{rest}", scope.to);
            if rest.is_empty() || OWN_FAMILIES.contains(&name.as_str()) {
                return Verdict::Drop;
            }
            return Verdict::Rename {
                name,
                labels: scope.labels,
            };
        }
    }
    Verdict::Drop
}

/// Rewrites the exporter's text: drops the lines of the exporter's own frontend and backend,
/// renames HAProxy's families (in `# HELP`, `# TYPE` and sample lines) and their labels
/// (see [`SCOPES`]). A sample line whose labels cannot be parsed is dropped rather than
/// served half renamed.
pub fn rewrite(exporter_text: &str) -> String {
    let mut out = String::with_capacity(exporter_text.len());
    for line in exporter_text.lines() {
        if let Some(line) = rewrite_line(line) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn rewrite_line(line: &str) -> Option<Cow<'_, str>> {
    if line.contains(EXPORTER_MARK) {
        return None;
    }
    for keyword in ["HELP", "TYPE"] {
        let Some(rest) = line
            .strip_prefix("# ")
            .and_then(|rest| rest.strip_prefix(keyword))
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            continue;
        };
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (family, after) = rest.split_at(end);
        return match judge(family) {
            Verdict::Keep => Some(Cow::Borrowed(line)),
            Verdict::Drop => None,
            Verdict::Rename { name, .. } => Some(Cow::Owned(format!("# {keyword} {name}{after}"))),
        };
    }
    if line.starts_with('#') || line.trim().is_empty() {
        return Some(Cow::Borrowed(line));
    }
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let (family, after) = line.split_at(end);
    match judge(family) {
        Verdict::Keep => Some(Cow::Borrowed(line)),
        Verdict::Drop => None,
        Verdict::Rename { mut name, labels } => {
            match after.strip_prefix('{') {
                Some(inside) => {
                    let (renamed, rest) = rename_labels(inside, labels)?;
                    name.push('{');
                    name.push_str(&renamed);
                    name.push('}');
                    name.push_str(rest);
                }
                None => name.push_str(after),
            }
            Some(Cow::Owned(name))
        }
    }
}

/// Renames label names in a label set; `inside` starts right after `{`. Returns the label
/// pairs (without braces) and what follows the closing `}`; `None` when the set is malformed.
/// Values are copied as they are (escapes included), so a value that reads like a label
/// (`"proxy=x"`) is never touched.
fn rename_labels<'a>(inside: &'a str, renames: &[(&str, &str)]) -> Option<(String, &'a str)> {
    let mut out = String::with_capacity(inside.len() + 16);
    let mut rest = inside.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((out, after));
        }
        let (name, after_name) = rest.split_once('=')?;
        let name = name.trim();
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        let name = renames
            .iter()
            .find(|(from, _)| *from == name)
            .map_or(name, |(_, to)| to);
        let value = after_name.trim_start().strip_prefix('"')?;
        // The closing quote: the first '"' not escaped by a backslash. Both are ASCII, so
        // the index is a char boundary.
        let bytes = value.as_bytes();
        let mut i = 0;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let _ = write!(out, "{name}=\"{}\"", value.get(..i)?);
        rest = value.get(i + 1..)?.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            out.push(',');
            rest = after.trim_start();
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// The gauges the proxy adds: CPU and memory of this amphora, in percent with one decimal
/// (as Octavia prints them). Memory is left out when it could not be measured.
pub fn usage_gauges(usage: &Usage) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "# HELP octavia_loadbalancer_cpu Load balancer CPU utilization (percentage).\n\
         # TYPE octavia_loadbalancer_cpu gauge\n\
         octavia_loadbalancer_cpu {:.1}\n",
        usage.cpu_percent
    );
    if let Some(memory) = usage.memory_percent {
        let _ = write!(
            out,
            "# HELP octavia_loadbalancer_memory Load balancer memory utilization (percentage).\n\
             # TYPE octavia_loadbalancer_memory gauge\n\
             octavia_loadbalancer_memory {memory:.1}\n"
        );
    }
    out
}

/// Where the exporter is read: an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterUrl {
    text: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl ExporterUrl {
    /// Parses `http://host[:port][/path]` (port 80 by default, path `/` by default).
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: hyper::Uri = text
            .parse()
            .map_err(|e| format!("invalid url {text:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("invalid url {text:?}: want http://host:port/path"));
        }
        let authority = uri
            .authority()
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
            .ok_or_else(|| format!("invalid url {text:?}: want http://host:port/path"))?;
        Ok(Self {
            text: text.to_owned(),
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    /// Reads the exporter: its text on `200 OK`, otherwise why not.
    async fn fetch(&self) -> Result<String, String> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let connection = tokio::spawn(connection);
        let result = async {
            let request = hyper::Request::get(self.path.as_str())
                .header(header::HOST, self.authority.as_str())
                .header(header::ACCEPT, "text/plain")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("answered {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_EXPORTER_BODY)
                .collect()
                .await
                .map_err(|e| format!("read: {e}"))?
                .to_bytes();
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        .await;
        connection.abort();
        result
    }
}

impl fmt::Display for ExporterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The proxy's state.
#[derive(Debug)]
struct MetricsProxy {
    exporter: ExporterUrl,
    haproxy: Arc<HaproxyManager>,
    cpu: Mutex<CpuHistory>,
}

impl MetricsProxy {
    /// CPU and memory of this amphora's processes: every HAProxy and the agent.
    async fn usage(self: &Arc<Self>) -> Usage {
        let proxy = self.clone();
        let measured = tokio::task::spawn_blocking(move || {
            let mut pids = proxy.haproxy.pids();
            pids.extend(i32::try_from(std::process::id()).ok());
            let mut history = match proxy.cpu.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            usage::sample(&pids, &mut history)
        })
        .await;
        measured.unwrap_or(Usage {
            cpu_percent: 0.0,
            memory_percent: None,
        })
    }
}

/// The proxy's router: `GET /metrics` and `GET /`.
fn router(proxy: Arc<MetricsProxy>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(metrics))
        .with_state(proxy)
}

async fn metrics(State(proxy): State<Arc<MetricsProxy>>) -> Response {
    let text = match tokio::time::timeout(FETCH_TIMEOUT, proxy.exporter.fetch()).await {
        Ok(Ok(text)) => text,
        Ok(Err(error)) => return bad_gateway(&proxy.exporter, &error),
        Err(_) => return bad_gateway(&proxy.exporter, "timed out"),
    };
    let usage = proxy.usage().await;
    let mut body = usage_gauges(&usage);
    body.push_str(&rewrite(&text));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn bad_gateway(exporter: &ExporterUrl, error: &str) -> Response {
    tracing::warn!(url = %exporter, %error, "cannot read the haproxy prometheus exporter");
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "cannot read the haproxy prometheus exporter\n",
    )
        .into_response()
}

/// Binds and serves the proxy as the configuration says. Returns its address and task, or
/// `None` when it is disabled or cannot bind (logged: the agent's API and HAProxy do not
/// depend on it; PROMETHEUS listeners then answer 503 until the agent restarts).
pub async fn spawn(
    config: &AgentConfig,
    haproxy: Arc<HaproxyManager>,
) -> Option<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bind = match config.prometheus_proxy_addr() {
        Ok(Some(bind)) => bind,
        Ok(None) => {
            tracing::info!("prometheus metrics proxy disabled");
            return None;
        }
        Err(error) => {
            tracing::error!(%error, "prometheus metrics proxy not started");
            return None;
        }
    };
    let exporter = match ExporterUrl::parse(&config.amphora_agent.prometheus_exporter_url) {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(%error, "prometheus metrics proxy not started");
            return None;
        }
    };
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%bind, %error, "cannot bind the prometheus metrics proxy; \
                            PROMETHEUS listeners will answer 503");
            return None;
        }
    };
    let local_addr = listener.local_addr().unwrap_or(bind);
    tracing::info!(%local_addr, exporter = %exporter, "prometheus metrics proxy listening");
    let app = router(Arc::new(MetricsProxy {
        exporter,
        haproxy,
        cpu: Mutex::new(CpuHistory::default()),
    }));
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "prometheus metrics proxy stopped");
        }
    });
    Some((local_addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_table() {
        // (what, exporter line, served line or None when dropped)
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "process help",
                "# HELP haproxy_process_nbthread Number of started threads (global.nbthread)",
                Some("# HELP octavia_loadbalancer_nbthread Number of started threads (global.nbthread)"),
            ),
            (
                "process type",
                "# TYPE haproxy_process_current_connections gauge",
                Some("# TYPE octavia_loadbalancer_current_connections gauge"),
            ),
            (
                "process sample",
                "haproxy_process_current_connections 3",
                Some("octavia_loadbalancer_current_connections 3"),
            ),
            (
                "memory pools",
                "haproxy_process_pool_allocated_bytes 1048576",
                Some("octavia_memory_pool_allocated_bytes 1048576"),
            ),
            (
                "memory pool type",
                "# TYPE haproxy_process_pool_failures_total counter",
                Some("# TYPE octavia_memory_pool_failures_total counter"),
            ),
            (
                "frontend: proxy becomes listener, other labels stay",
                "haproxy_frontend_http_responses_total{proxy=\"l1\",code=\"2xx\"} 7",
                Some("octavia_listener_http_responses_total{listener=\"l1\",code=\"2xx\"} 7"),
            ),
            (
                "frontend help",
                "# HELP haproxy_frontend_status Current status of the service.",
                Some("# HELP octavia_listener_status Current status of the service."),
            ),
            (
                "backend: proxy becomes pool, the value stays <pool>:<listener>",
                "haproxy_backend_status{proxy=\"p1:l1\",state=\"UP\"} 1",
                Some("octavia_pool_status{pool=\"p1:l1\",state=\"UP\"} 1"),
            ),
            (
                "server: proxy becomes pool, server becomes member",
                "haproxy_server_status{proxy=\"p1:l1\",server=\"m1\",state=\"DOWN\"} 0",
                Some("octavia_member_status{pool=\"p1:l1\",member=\"m1\",state=\"DOWN\"} 0"),
            ),
            (
                "server type",
                "# TYPE haproxy_server_weight gauge",
                Some("# TYPE octavia_member_weight gauge"),
            ),
            (
                "a value that reads like a label is not touched; escapes are kept",
                "haproxy_server_weight{proxy=\"proxy=\\\"x\\\",server=y\",server=\"s\"} 1 1700000000000",
                Some("octavia_member_weight{pool=\"proxy=\\\"x\\\",server=y\",member=\"s\"} 1 1700000000000"),
            ),
            (
                "the exporter's own frontend",
                "haproxy_frontend_status{proxy=\"prometheus-exporter-internal-endpoint\",state=\"UP\"} 1",
                None,
            ),
            (
                "the exporter's own backend",
                "haproxy_backend_status{proxy=\"prometheus-exporter-internal\",state=\"UP\"} 1",
                None,
            ),
            (
                "the exporter's own server",
                "haproxy_server_status{proxy=\"prometheus-exporter-internal\",server=\"prometheus-exporter-internal-server\",state=\"UP\"} 1",
                None,
            ),
            (
                "a scope without an Octavia object",
                "haproxy_sticktable_size{name=\"p1:l1\"} 100",
                None,
            ),
            (
                "its help",
                "# HELP haproxy_sticktable_size Stick table size.",
                None,
            ),
            (
                "a family that would shadow the proxy's own gauge",
                "haproxy_process_cpu 12",
                None,
            ),
            ("a bare scope prefix", "haproxy_server_ 1", None),
            (
                "malformed labels are dropped, not served half renamed",
                "haproxy_server_weight{proxy=\"p1\",server} 1",
                None,
            ),
            ("unterminated value", "haproxy_server_weight{proxy=\"p1} 1", None),
            (
                "not HAProxy's: untouched",
                "process_start_time_seconds{proxy=\"x\"} 1.7e9",
                Some("process_start_time_seconds{proxy=\"x\"} 1.7e9"),
            ),
            (
                "a comment: untouched",
                "# scraped from haproxy_frontend_status",
                Some("# scraped from haproxy_frontend_status"),
            ),
            (
                "an unknown TYPE of another family: untouched",
                "# TYPE go_goroutines gauge",
                Some("# TYPE go_goroutines gauge"),
            ),
            ("an empty line", "", Some("")),
        ];
        for (what, input, expected) in cases {
            let got = rewrite_line(input);
            assert_eq!(got.as_deref(), *expected, "{what}: {input}");
        }
    }

    #[test]
    fn rewrite_keeps_line_order_and_drops_whole_lines() {
        let exporter = "# HELP haproxy_frontend_status Current status of the service.\n\
                        # TYPE haproxy_frontend_status gauge\n\
                        haproxy_frontend_status{proxy=\"prometheus-exporter-internal-endpoint\",state=\"UP\"} 1\n\
                        haproxy_frontend_status{proxy=\"l1\",state=\"UP\"} 1\r\n";
        assert_eq!(
            rewrite(exporter),
            "# HELP octavia_listener_status Current status of the service.\n\
             # TYPE octavia_listener_status gauge\n\
             octavia_listener_status{listener=\"l1\",state=\"UP\"} 1\n"
        );
        assert_eq!(rewrite(""), "");
    }

    #[test]
    fn usage_gauges_have_one_decimal() {
        let text = usage_gauges(&Usage {
            cpu_percent: 12.345,
            memory_percent: Some(0.04),
        });
        assert_eq!(
            text,
            "# HELP octavia_loadbalancer_cpu Load balancer CPU utilization (percentage).\n\
             # TYPE octavia_loadbalancer_cpu gauge\n\
             octavia_loadbalancer_cpu 12.3\n\
             # HELP octavia_loadbalancer_memory Load balancer memory utilization (percentage).\n\
             # TYPE octavia_loadbalancer_memory gauge\n\
             octavia_loadbalancer_memory 0.0\n"
        );
        let without_memory = usage_gauges(&Usage {
            cpu_percent: 0.0,
            memory_percent: None,
        });
        assert!(!without_memory.contains("memory"), "{without_memory}");
    }

    #[test]
    fn exporter_urls() {
        let url = ExporterUrl::parse("http://127.0.0.1:9101/metrics").expect("valid");
        assert_eq!(
            (
                url.host.as_str(),
                url.port,
                url.authority.as_str(),
                url.path.as_str()
            ),
            ("127.0.0.1", 9101, "127.0.0.1:9101", "/metrics")
        );
        let url = ExporterUrl::parse("http://[::1]/m?x=1").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 80, "/m?x=1")
        );
        let url = ExporterUrl::parse("http://localhost:1").expect("valid");
        assert_eq!(url.path, "/");
        for bad in [
            "",
            "/metrics",
            "127.0.0.1:9101",
            "https://127.0.0.1/metrics",
            "http://user@127.0.0.1/metrics",
        ] {
            assert!(ExporterUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

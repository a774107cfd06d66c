//! What the amphora provider serves: the rules the renderer holds the model to, shared with
//! the API, which refuses with Octavia's provider-unsupported error (501) every request they
//! reject. So nothing the renderer refuses is ever accepted and then left in ERROR.
//!
//! Each function answers `Err(reason)` with a reason a tenant can read; the API prefixes
//! Octavia's "Provider '<name>' does not support a requested option: ".

use octavia_model::{
    HealthMonitor, HealthMonitorType, L7Rule, L7RuleType, LbAlgorithm, Listener, ListenerProtocol,
    Pool, PoolProtocol, SessionPersistenceType,
};

/// Characters HAProxy accepts in a header or cookie name inside a fetch argument
/// (`req.hdr(<name>)`, `req.cook(<name>)`, `ssl_c_s_dn(<name>)`) besides letters and digits:
/// the HTTP token characters without those that end or split a fetch argument or a word.
const FETCH_NAME_EXTRA: &str = "!$%&*+.^_|~-";

/// Why `name` cannot be used in a fetch argument, if it cannot.
pub fn fetch_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || FETCH_NAME_EXTRA.contains(*c)))
        .map(|c| format!("'{name}' contains {c:?}, which is not allowed in a name"))
}

/// The listener protocols the amphora provider serves.
pub const LISTENER_PROTOCOLS: [ListenerProtocol; 4] = [
    ListenerProtocol::Http,
    ListenerProtocol::Https,
    ListenerProtocol::Tcp,
    ListenerProtocol::Prometheus,
];

/// Listener protocols the amphora provider serves (Octavia's wording). TERMINATED_HTTPS
/// needs a certificate store and UDP/SCTP keepalived LVS, neither built yet.
pub fn listener(listener: &Listener) -> Result<(), String> {
    if LISTENER_PROTOCOLS.contains(&listener.protocol) {
        return Ok(());
    }
    let supported: Vec<&str> = LISTENER_PROTOCOLS.iter().map(|p| p.as_str()).collect();
    Err(format!(
        "Amphora provider does not support {} protocol. Supported: {}",
        listener.protocol,
        supported.join(", ")
    ))
}

/// Pool protocols, algorithms, persistence and backend TLS the amphora provider serves.
pub fn pool(pool: &Pool) -> Result<(), String> {
    if let p @ (PoolProtocol::Udp | PoolProtocol::Sctp) = pool.protocol {
        return Err(format!(
            "Amphora provider does not support {p} pools (keepalived LVS is not built yet)."
        ));
    }
    if pool.lb_algorithm == LbAlgorithm::SourceIpPort {
        return Err("Amphora provider does not support SOURCE_IP_PORT algorithm.".to_string());
    }
    if pool.tls_enabled
        && (pool.tls_certificate_id.is_some()
            || pool.ca_tls_certificate_id.is_some()
            || pool.crl_container_id.is_some())
    {
        return Err(
            "Amphora provider does not support backend re-encryption with client, CA or \
             CRL certificates (the certificate store is not built yet)."
                .to_string(),
        );
    }
    if let Some(sp) = &pool.session_persistence {
        if sp.persistence_type == SessionPersistenceType::AppCookie {
            if let Some(problem) = sp.cookie_name.as_deref().and_then(fetch_name_problem) {
                return Err(format!("APP_COOKIE cookie_name {problem}"));
            }
        }
    }
    Ok(())
}

/// Health monitor types and intervals the amphora provider serves (HAProxy checks).
pub fn health_monitor(hm: &HealthMonitor) -> Result<(), String> {
    if let t @ (HealthMonitorType::UdpConnect | HealthMonitorType::Sctp) = hm.monitor_type {
        return Err(format!(
            "Amphora provider does not support {t} health monitors (they check UDP and SCTP \
             pools, which are not built yet)."
        ));
    }
    if hm.delay < 1 {
        return Err(format!(
            "Amphora provider does not support a health monitor delay of {} (HAProxy checks at \
             most once a second).",
            hm.delay
        ));
    }
    Ok(())
}

/// Listeners that take L7 policies with the amphora provider.
pub fn l7policy(listener_protocol: ListenerProtocol) -> Result<(), String> {
    match listener_protocol {
        ListenerProtocol::Http => Ok(()),
        other => Err(format!(
            "{other} protocol listeners do not support L7 policies"
        )),
    }
}

/// L7 rule keys HAProxy can match on.
pub fn l7rule(rule: &L7Rule) -> Result<(), String> {
    match rule.rule_type {
        L7RuleType::Header | L7RuleType::Cookie | L7RuleType::SslDnField => {
            match rule.key.as_deref().and_then(fetch_name_problem) {
                Some(problem) => Err(format!("{} rule key {problem}", rule.rule_type)),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_names() {
        for ok in ["X-Forwarded-For", "a.b", "x_y~z", "A!$%&*+^|"] {
            assert_eq!(fetch_name_problem(ok), None, "{ok}");
        }
        for bad in ["", "a b", "x(y)", "a#b", "it's", "a`b", "a,b", "a\"b"] {
            assert!(fetch_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn l7_policies_need_http() {
        use ListenerProtocol as L;
        for p in [
            L::Tcp,
            L::Https,
            L::Prometheus,
            L::TerminatedHttps,
            L::Udp,
            L::Sctp,
        ] {
            assert!(l7policy(p).is_err(), "{p}");
        }
        assert!(l7policy(L::Http).is_ok());
    }
}

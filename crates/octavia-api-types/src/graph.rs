//! Single-call create (reference §1.5): the `listeners` and `pools` of a load balancer
//! POST read into the tree the store writes, and the full graph a 201 answers with.
//!
//! Pools are named: a listener's `default_pool` or a policy's `redirect_pool` either
//! carries a whole pool (hoisted to the top-level pools) or only its name (a reference to
//! one of them). Every object is then read as the body of its own POST, with the parent's
//! id filled in, and judged by that POST's rules.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use octavia_model::{
    HealthMonitor, L7Policy, L7PolicyGraph, L7Rule, Listener, ListenerGraph, ListenerProtocol,
    LoadBalancer, LoadBalancerGraph, LoadBalancerTree, Member, Pool, PoolGraph, PoolId,
    PoolProtocol,
};

use crate::health_monitor::{check_against_pool, HealthMonitorPost, HealthMonitorResponse};
use crate::l7policy::{L7PolicyPost, L7PolicyResponse};
use crate::l7rule::{L7RulePost, L7RuleResponse};
use crate::listener::{check_pool_compatible, ListenerPost, ListenerResponse};
use crate::load_balancer::LoadBalancerResponse;
use crate::member::{MemberPost, MemberResponse};
use crate::pool::{PoolPost, PoolResponse};
use crate::{decode_body, TypesError, ValidationSettings};

/// The keys a pool object may carry and still be a mere reference by name (Octavia counts
/// the two defaults its type layer fills in).
const REFERENCE_KEYS: &[&str] = &["name", "admin_state_up", "tls_enabled"];

/// `at.field` for an error inside the object at `at`.
fn within(at: &str, e: TypesError) -> TypesError {
    let field = |f: &str| format!("{at}.{f}");
    match e {
        TypesError::Invalid { field: f, message } => TypesError::Invalid {
            field: field(&f),
            message,
        },
        TypesError::NotImplemented { field: f, message } => TypesError::NotImplemented {
            field: field(&f),
            message,
        },
    }
}

fn object(v: &Value, at: &str) -> Result<Map<String, Value>, TypesError> {
    v.as_object()
        .cloned()
        .ok_or_else(|| TypesError::invalid(at, "expected an object"))
}

/// The non-null value of `key`, taken out of `m`.
fn take(m: &mut Map<String, Value>, key: &str) -> Option<Value> {
    m.remove(key).filter(|v| !v.is_null())
}

/// The list under `key`, taken out of `m` (absent or null: empty).
fn take_list(m: &mut Map<String, Value>, key: &str, at: &str) -> Result<Vec<Value>, TypesError> {
    match take(m, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(v)) => Ok(v),
        Some(_) => Err(TypesError::invalid(
            format!("{at}.{key}"),
            "expected a list",
        )),
    }
}

/// Read `m` as the POST body `T` of its kind: the keys its parent gives (`parents`) may
/// not be in it, `given` fills them in.
fn decode<T: DeserializeOwned>(
    mut m: Map<String, Value>,
    at: &str,
    parents: &[&str],
    given: &[(&str, String)],
) -> Result<T, TypesError> {
    if let Some(k) = parents.iter().find(|k| m.contains_key(**k)) {
        return Err(TypesError::invalid(
            format!("{at}.{k}"),
            "not allowed in a single-call create: the object's parent gives it",
        ));
    }
    for (k, v) in given {
        m.insert(k.to_string(), Value::String(v.clone()));
    }
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| TypesError::invalid(at, e.to_string()))?;
    decode_body(&bytes).map_err(|e| within(at, e))
}

const PROJECT: [&str; 2] = ["project_id", "tenant_id"];

/// A pool object in a listener or policy: hoisted into `specs` when it is a whole pool;
/// its name either way.
fn pool_ref(
    v: Value,
    at: String,
    specs: &mut Vec<(String, Map<String, Value>)>,
) -> Result<String, TypesError> {
    let m = object(&v, &at)?;
    let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(TypesError::invalid(
            format!("{at}.name"),
            "Pools must be named when creating a fully populated loadbalancer.",
        ));
    }
    let name = name.to_string();
    if m.keys().any(|k| !REFERENCE_KEYS.contains(&k.as_str())) {
        specs.push((at, m));
    }
    Ok(name)
}

/// One listener of the request, its pool references as names.
struct ListenerRequest {
    at: String,
    body: Map<String, Value>,
    default_pool: Option<String>,
    policies: Vec<PolicyRequest>,
}

struct PolicyRequest {
    at: String,
    body: Map<String, Value>,
    redirect_pool: Option<String>,
    rules: Vec<Value>,
}

/// The pools a create names, by name: id and protocol.
type PoolIndex = BTreeMap<String, (PoolId, PoolProtocol)>;

/// The tree `listeners` and `pools` (the lists of a load balancer POST) ask to create
/// under `lb`: 400 for what Octavia refuses (unnamed, duplicate or missing pools, a pool
/// without protocol or algorithm, any object its own POST would refuse, a listener whose
/// pools speak another protocol), 501 for what is not implemented. What needs the store
/// (quotas, port clashes, duplicate members) is the store's to check.
pub fn build(
    listeners: &[Value],
    pools: &[Value],
    lb: &LoadBalancer,
    settings: &ValidationSettings,
) -> Result<LoadBalancerGraph, TypesError> {
    let mut specs = pools
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("pools[{i}]");
            object(v, &at).map(|m| (at, m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut requests = Vec::new();
    let mut referenced = Vec::new();
    for (i, v) in listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        let mut body = object(v, &at)?;
        let default_pool = take(&mut body, "default_pool")
            .map(|p| pool_ref(p, format!("{at}.default_pool"), &mut specs))
            .transpose()?;
        let mut policies = Vec::new();
        for (j, p) in take_list(&mut body, "l7policies", &at)?.iter().enumerate() {
            let p_at = format!("{at}.l7policies[{j}]");
            let mut p_body = object(p, &p_at)?;
            let redirect_pool = take(&mut p_body, "redirect_pool")
                .map(|p| pool_ref(p, format!("{p_at}.redirect_pool"), &mut specs))
                .transpose()?;
            let rules = take_list(&mut p_body, "rules", &p_at)?;
            referenced.extend(redirect_pool.clone());
            policies.push(PolicyRequest {
                at: p_at,
                body: p_body,
                redirect_pool,
                rules,
            });
        }
        referenced.extend(default_pool.clone());
        requests.push(ListenerRequest {
            at,
            body,
            default_pool,
            policies,
        });
    }

    let names: Vec<Option<&str>> = specs
        .iter()
        .map(|(_, m)| m.get("name").and_then(Value::as_str))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(TypesError::invalid(
                "pools",
                "Pool names must be unique when creating a fully populated loadbalancer.",
            ));
        }
    }
    if let Some(missing) = referenced
        .iter()
        .find(|r| !names.contains(&Some(r.as_str())))
    {
        return Err(TypesError::invalid(
            "pools",
            format!("Pool '{missing}' was referenced but no full definition was found."),
        ));
    }

    let mut index = PoolIndex::new();
    let mut graph = LoadBalancerGraph::default();
    for (at, spec) in specs {
        let p = pool(spec, &at, lb, settings)?;
        if let Some(name) = &p.pool.name {
            index.insert(name.clone(), (p.pool.id, p.pool.protocol));
        }
        graph.pools.push(p);
    }
    for r in requests {
        graph.listeners.push(listener(r, &index, lb, settings)?);
    }
    Ok(graph)
}

/// One pool with its monitor and members.
fn pool(
    mut spec: Map<String, Value>,
    at: &str,
    lb: &LoadBalancer,
    settings: &ValidationSettings,
) -> Result<PoolGraph, TypesError> {
    for attr in ["protocol", "lb_algorithm"] {
        if spec.get(attr).is_none_or(Value::is_null) {
            let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
            return Err(TypesError::invalid(
                format!("{at}.{attr}"),
                format!("Pool definition for '{name}' missing required attribute: {attr}"),
            ));
        }
    }
    let hm = take(&mut spec, "healthmonitor");
    let members = take_list(&mut spec, "members", at)?;
    let parents = ["loadbalancer_id", "listener_id", "project_id", "tenant_id"];
    let given = [("loadbalancer_id", lb.id.to_string())];
    let post: PoolPost = decode(spec, at, &parents, &given)?;
    post.validate().map_err(|e| within(at, e))?;
    let pool = post.into_model(lb.project_id.clone(), lb.id);

    let health_monitor = hm
        .map(|v| health_monitor(v, &format!("{at}.healthmonitor"), &pool, settings))
        .transpose()?;
    let members = members
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let m_at = format!("{at}.members[{i}]");
            member(v, &m_at, &pool, health_monitor.is_some(), settings)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PoolGraph {
        pool,
        health_monitor,
        members,
    })
}

fn health_monitor(
    v: Value,
    at: &str,
    pool: &Pool,
    settings: &ValidationSettings,
) -> Result<HealthMonitor, TypesError> {
    let parents = ["pool_id", "project_id", "tenant_id"];
    let post: HealthMonitorPost = decode(
        object(&v, at)?,
        at,
        &parents,
        &[("pool_id", pool.id.to_string())],
    )?;
    post.validate(settings).map_err(|e| within(at, e))?;
    check_against_pool(post.monitor_type, post.delay, pool.protocol, settings)
        .map_err(|e| within(at, e))?;
    Ok(post.into_model(pool.project_id.clone(), pool.id))
}

fn member(
    v: &Value,
    at: &str,
    pool: &Pool,
    pool_has_monitor: bool,
    settings: &ValidationSettings,
) -> Result<Member, TypesError> {
    let post: MemberPost = decode(object(v, at)?, at, &PROJECT, &[])?;
    post.validate(settings).map_err(|e| within(at, e))?;
    Ok(post.into_model(pool.project_id.clone(), pool.id, pool_has_monitor))
}

/// The pool `name` refers to, which a listener of `protocol` must be able to send to.
fn target(
    index: &PoolIndex,
    name: &str,
    protocol: ListenerProtocol,
    at: &str,
) -> Result<PoolId, TypesError> {
    let (id, pool_protocol) = index.get(name).copied().ok_or_else(|| {
        TypesError::invalid(at, format!("Missing details for Pool object: {name}"))
    })?;
    check_pool_compatible(at, protocol, pool_protocol)?;
    Ok(id)
}

fn listener(
    r: ListenerRequest,
    index: &PoolIndex,
    lb: &LoadBalancer,
    settings: &ValidationSettings,
) -> Result<ListenerGraph, TypesError> {
    let at = &r.at;
    let parents = ["loadbalancer_id", "project_id", "tenant_id"];
    let given = [("loadbalancer_id", lb.id.to_string())];
    let post: ListenerPost = decode(r.body, at, &parents, &given)?;
    post.validate(settings).map_err(|e| within(at, e))?;
    let mut listener = post.into_model(lb.project_id.clone(), lb.id, settings);
    let prometheus = listener.protocol == ListenerProtocol::Prometheus;
    if prometheus && (r.default_pool.is_some() || !r.policies.is_empty()) {
        return Err(TypesError::invalid(
            at.clone(),
            "PROMETHEUS listeners cannot have a default pool or L7 policies",
        ));
    }
    if let Some(name) = &r.default_pool {
        let field = format!("{at}.default_pool");
        listener.default_pool_id = Some(target(index, name, listener.protocol, &field)?);
    }
    let l7policies = r
        .policies
        .into_iter()
        .map(|p| policy(p, index, &listener))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ListenerGraph {
        listener,
        l7policies,
    })
}

fn policy(
    p: PolicyRequest,
    index: &PoolIndex,
    listener: &Listener,
) -> Result<L7PolicyGraph, TypesError> {
    let at = &p.at;
    let mut given = vec![("listener_id", listener.id.to_string())];
    if let Some(name) = &p.redirect_pool {
        let field = format!("{at}.redirect_pool");
        let id = target(index, name, listener.protocol, &field)?;
        given.push(("redirect_pool_id", id.to_string()));
    }
    let parents = ["listener_id", "redirect_pool_id", "project_id", "tenant_id"];
    let post: L7PolicyPost = decode(p.body, at, &parents, &given)?;
    post.validate().map_err(|e| within(at, e))?;
    let policy = post
        .into_model(listener.project_id.clone(), listener.id)
        .map_err(|e| within(at, e))?;
    let rules = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, v)| rule(v, &format!("{at}.rules[{i}]"), &policy))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(L7PolicyGraph { policy, rules })
}

fn rule(v: &Value, at: &str, policy: &L7Policy) -> Result<L7Rule, TypesError> {
    let post: L7RulePost = decode(object(v, at)?, at, &PROJECT, &[])?;
    post.validate().map_err(|e| within(at, e))?;
    Ok(post.into_model(policy.project_id.clone(), policy.id))
}

/// `response` as a JSON object, without the keys `drop` and with `set`.
fn reshaped(
    response: impl Serialize,
    drop: &[&str],
    set: Vec<(&str, Value)>,
) -> serde_json::Result<Value> {
    let mut v = serde_json::to_value(response)?;
    if let Some(m) = v.as_object_mut() {
        for k in drop {
            m.remove(*k);
        }
        for (k, x) in set {
            m.insert(k.to_string(), x);
        }
    }
    Ok(v)
}

fn list(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// Octavia's `LoadBalancerFullResponse`, the answer to a single-call create: the load
/// balancer with its listeners and pools as whole objects instead of ids, the listeners'
/// L7 policies (with their rules) and the pools' members and health monitor too. Octavia
/// leaves the back references out of the nested objects (a listener's or pool's
/// `loadbalancers`, a monitor's `pools`), and a pool carries its `healthmonitor` in place
/// of `healthmonitor_id`, only when it has one.
pub fn full_response(t: &LoadBalancerTree) -> serde_json::Result<Value> {
    let rule = |r: &L7Rule| serde_json::to_value(L7RuleResponse::from(r));
    let policy = |p: &L7Policy| -> serde_json::Result<Value> {
        let rules = t
            .l7rules
            .iter()
            .filter(|r| r.l7policy_id == p.id)
            .map(rule)
            .collect::<Result<_, _>>()?;
        reshaped(L7PolicyResponse::from(p), &[], vec![("rules", list(rules))])
    };
    let listener = |l: &Listener| -> serde_json::Result<Value> {
        let policies = t
            .l7policies
            .iter()
            .filter(|p| p.listener_id == l.id)
            .map(policy)
            .collect::<Result<_, _>>()?;
        reshaped(
            ListenerResponse::from(l),
            &["loadbalancers"],
            vec![("l7policies", list(policies))],
        )
    };
    let pool = |p: &Pool| -> serde_json::Result<Value> {
        let members = t
            .members
            .iter()
            .filter(|m| m.pool_id == p.id)
            .map(|m| serde_json::to_value(MemberResponse::from(m)))
            .collect::<Result<_, _>>()?;
        let mut set = vec![("members", list(members))];
        if let Some(h) = t.health_monitors.iter().find(|h| h.pool_id == p.id) {
            set.push((
                "healthmonitor",
                reshaped(HealthMonitorResponse::from(h), &["pools"], vec![])?,
            ));
        }
        reshaped(
            PoolResponse::from(p),
            &["loadbalancers", "healthmonitor_id"],
            set,
        )
    };
    let listeners = t.listeners.iter().map(listener).collect::<Result<_, _>>()?;
    let pools = t.pools.iter().map(pool).collect::<Result<_, _>>()?;
    reshaped(
        LoadBalancerResponse::from(&t.load_balancer),
        &[],
        vec![("listeners", list(listeners)), ("pools", list(pools))],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_balancer::LoadBalancerPostBody;
    use octavia_model::{ObjectKind, OperatingStatus, Topology};
    use serde_json::json;

    fn lb() -> LoadBalancer {
        let body: LoadBalancerPostBody = decode_body(
            br#"{"loadbalancer":{"vip_subnet_id":"11111111-1111-1111-1111-111111111111"}}"#,
        )
        .unwrap();
        body.loadbalancer.into_model("p1".into(), Topology::Single)
    }

    fn build_json(listeners: Value, pools: Value) -> Result<LoadBalancerGraph, TypesError> {
        let list = |v: Value| v.as_array().cloned().unwrap_or_default();
        build(
            &list(listeners),
            &list(pools),
            &lb(),
            &ValidationSettings::default(),
        )
    }

    fn http_pool(name: &str) -> Value {
        json!({"name": name, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"})
    }

    #[test]
    fn pools_are_hoisted_and_references_resolved() {
        let mut inline = http_pool("inline");
        inline["members"] = json!([{"address": "10.0.0.1", "protocol_port": 80}]);
        let mut top = http_pool("top");
        top["healthmonitor"] = json!({"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2});
        top["members"] = json!([{"address": "10.0.0.2", "protocol_port": 80}]);
        let g = build_json(
            json!([
                {"protocol": "HTTP", "protocol_port": 80, "default_pool": inline,
                 "l7policies": [{"action": "REDIRECT_TO_POOL", "redirect_pool": {"name": "top"},
                                 "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"}]}]},
                {"protocol": "HTTP", "protocol_port": 81, "default_pool": {"name": "top", "admin_state_up": true}}
            ]),
            json!([top]),
        )
        .unwrap();
        let names: Vec<_> = g
            .pools
            .iter()
            .map(|p| p.pool.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["top", "inline"],
            "top-level pools first, hoisted ones after"
        );
        let (top, inline) = (&g.pools[0], &g.pools[1]);
        assert_eq!(
            g.listeners[0].listener.default_pool_id,
            Some(inline.pool.id)
        );
        assert_eq!(g.listeners[1].listener.default_pool_id, Some(top.pool.id));
        let policy = &g.listeners[0].l7policies[0];
        assert_eq!(policy.policy.redirect_pool_id, Some(top.pool.id));
        assert_eq!(policy.policy.listener_id, g.listeners[0].listener.id);
        assert_eq!(policy.rules[0].l7policy_id, policy.policy.id);
        // Members of a monitored pool start OFFLINE, others NO_MONITOR.
        assert_eq!(top.members[0].operating_status, OperatingStatus::Offline);
        assert_eq!(
            inline.members[0].operating_status,
            OperatingStatus::NoMonitor
        );
        assert_eq!(top.health_monitor.as_ref().unwrap().pool_id, top.pool.id);
        for p in &g.pools {
            assert_eq!(p.pool.load_balancer_id, lb_id_of(&g));
            assert_eq!(p.pool.project_id, "p1");
        }
        assert_eq!(g.count(ObjectKind::Pool), 2);
        assert_eq!(g.count(ObjectKind::Member), 2);
        assert_eq!(g.count(ObjectKind::HealthMonitor), 1);
        assert_eq!(g.count(ObjectKind::Listener), 2);
        assert_eq!(g.count(ObjectKind::L7Policy), 1);
        assert_eq!(g.count(ObjectKind::L7Rule), 1);
    }

    #[test]
    fn null_lists_and_objects_are_absent() {
        let mut pool = http_pool("p");
        pool["members"] = Value::Null;
        pool["healthmonitor"] = Value::Null;
        let g = build_json(
            json!([
                {"protocol": "HTTP", "protocol_port": 80, "default_pool": null, "l7policies": null},
                {"protocol": "HTTP", "protocol_port": 81, "default_pool": {"name": "p"},
                 "l7policies": [{"action": "REJECT", "redirect_pool": null, "rules": null}]}
            ]),
            json!([pool]),
        )
        .unwrap();
        assert_eq!(g.listeners[0].listener.default_pool_id, None);
        assert!(g.listeners[0].l7policies.is_empty());
        assert_eq!(
            g.listeners[1].listener.default_pool_id,
            Some(g.pools[0].pool.id)
        );
        let policy = &g.listeners[1].l7policies[0];
        assert_eq!(policy.policy.redirect_pool_id, None);
        assert!(policy.rules.is_empty());
        assert!(g.pools[0].members.is_empty());
        assert!(g.pools[0].health_monitor.is_none());

        // A null where an object or a list must be is refused, naming where it is.
        for (listeners, pools, field) in [
            (json!([null]), json!([]), "listeners[0]"),
            (json!([]), json!([null]), "pools[0]"),
            (
                json!([]),
                json!([{"name": "p", "protocol": null, "lb_algorithm": "ROUND_ROBIN"}]),
                "pools[0].protocol",
            ),
            (
                json!([{"protocol": "HTTP", "protocol_port": 80, "l7policies": [null]}]),
                json!([]),
                "listeners[0].l7policies[0]",
            ),
            (
                json!([{"protocol": "HTTP", "protocol_port": 80, "l7policies": {}}]),
                json!([]),
                "listeners[0].l7policies",
            ),
            (
                json!([]),
                json!([{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [null]}]),
                "pools[0].members[0]",
            ),
            // A redirect to a pool needs the pool: a null one is no pool.
            (
                json!([{"protocol": "HTTP", "protocol_port": 80,
                     "l7policies": [{"action": "REDIRECT_TO_POOL", "redirect_pool": null}]}]),
                json!([]),
                "listeners[0].l7policies[0].redirect_pool_id",
            ),
        ] {
            let what = format!("{listeners} {pools}");
            let e = build_json(listeners, pools).expect_err(&what);
            assert_eq!(e.field(), field, "{what}: {e}");
        }
    }

    fn lb_id_of(g: &LoadBalancerGraph) -> octavia_model::LoadBalancerId {
        g.listeners[0].listener.load_balancer_id
    }

    #[test]
    fn refusals_name_the_object_and_field() {
        let listener = |extra: Value| {
            let mut l = json!({"protocol": "HTTP", "protocol_port": 80});
            for (k, v) in extra.as_object().unwrap() {
                l[k] = v.clone();
            }
            l
        };
        let no_protocol = json!({"name": "p", "lb_algorithm": "ROUND_ROBIN"});
        // (listeners, pools, field, text in the message, 501?)
        let cases: Vec<(Value, Value, &str, &str, bool)> = vec![
            (
                json!([listener(json!({"default_pool": {"protocol": "HTTP"}}))]),
                json!([]),
                "listeners[0].default_pool.name",
                "must be named",
                false,
            ),
            (
                json!([listener(json!({"default_pool": {"name": "nope"}}))]),
                json!([http_pool("p")]),
                "pools",
                "Pool 'nope' was referenced but no full definition was found.",
                false,
            ),
            (
                json!([]),
                json!([http_pool("p"), http_pool("p")]),
                "pools",
                "Pool names must be unique",
                false,
            ),
            (
                json!([listener(json!({"default_pool": http_pool("p")}))]),
                json!([http_pool("p")]),
                "pools",
                "Pool names must be unique",
                false,
            ),
            (
                json!([]),
                json!([no_protocol]),
                "pools[0].protocol",
                "Pool definition for 'p' missing required attribute: protocol",
                false,
            ),
            (
                json!([listener(
                    json!({"default_pool": {"name": "p", "description": "d"}})
                )]),
                json!([]),
                "listeners[0].default_pool.protocol",
                "missing required attribute: protocol",
                false,
            ),
            (
                json!([listener(
                    json!({"protocol": "TCP", "default_pool": {"name": "p"}})
                )]),
                json!([{"name": "p", "protocol": "UDP", "lb_algorithm": "ROUND_ROBIN"}]),
                "listeners[0].default_pool",
                "The pool protocol 'UDP' is invalid while the listener protocol is 'TCP'",
                false,
            ),
            (
                json!([listener(
                    json!({"l7policies": [{"action": "REDIRECT_TO_POOL", "redirect_pool": {"name": "p"}}]})
                )]),
                json!([{"name": "p", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}]),
                "listeners[0].l7policies[0].redirect_pool",
                "is invalid while the listener protocol is 'HTTP'",
                false,
            ),
            (
                json!([listener(
                    json!({"protocol": "PROMETHEUS", "default_pool": {"name": "p"}})
                )]),
                json!([http_pool("p")]),
                "listeners[0]",
                "PROMETHEUS",
                false,
            ),
            (
                json!([listener(
                    json!({"loadbalancer_id": "11111111-1111-1111-1111-111111111111"})
                )]),
                json!([]),
                "listeners[0].loadbalancer_id",
                "parent",
                false,
            ),
            (
                json!([listener(json!({"protocol_port": 0}))]),
                json!([]),
                "listeners[0].protocol_port",
                "",
                false,
            ),
            (
                json!([listener(json!({"bogus": 1}))]),
                json!([]),
                "listeners[0].bogus",
                "",
                false,
            ),
            (
                json!([]),
                json!([{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                "members": [{"address": "169.254.169.254", "protocol_port": 80}]}]),
                "pools[0].members[0].address",
                "reserved",
                false,
            ),
            (
                json!([]),
                json!([{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                "healthmonitor": {"type": "UDP-CONNECT", "delay": 5, "timeout": 3, "max_retries": 2}}]),
                "pools[0].healthmonitor.type",
                "UDP",
                false,
            ),
            (
                json!([]),
                json!([{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                "healthmonitor": {"pool_id": "11111111-1111-1111-1111-111111111111",
                                                  "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2}}]),
                "pools[0].healthmonitor.pool_id",
                "parent",
                false,
            ),
            (
                json!([listener(json!({"l7policies": [{"action": "REJECT",
                "rules": [{"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "local host"}]}]}))]),
                json!([]),
                "listeners[0].l7policies[0].rules[0].value",
                "whitespace",
                false,
            ),
            (
                json!([listener(
                    json!({"l7policies": [{"action": "REDIRECT_TO_POOL",
                "redirect_pool_id": "11111111-1111-1111-1111-111111111111"}]})
                )]),
                json!([]),
                "listeners[0].l7policies[0].redirect_pool_id",
                "parent",
                false,
            ),
            (
                json!([listener(json!({"default_tls_container_ref": "x"}))]),
                json!([]),
                "listeners[0].default_tls_container_ref",
                "",
                true,
            ),
        ];
        for (listeners, pools, field, text, not_implemented) in cases {
            let what = format!("{listeners} {pools}");
            match build_json(listeners, pools) {
                Ok(_) => panic!("{what}: accepted"),
                Err(e) => {
                    assert_eq!(e.field(), field, "{what}: {e}");
                    assert!(e.to_string().contains(text), "{what}: {e}");
                    assert_eq!(
                        matches!(e, TypesError::NotImplemented { .. }),
                        not_implemented,
                        "{what}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn full_response_expands_children_as_octavia_does() {
        let mut pool = http_pool("p");
        pool["healthmonitor"] = json!({"type": "TCP", "delay": 5, "timeout": 3, "max_retries": 2});
        pool["members"] = json!([{"address": "10.0.0.1", "protocol_port": 80}]);
        let bare = http_pool("bare");
        let g = build_json(
            json!([{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "p"},
                    "l7policies": [{"action": "REJECT",
                        "rules": [{"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}]}]}]),
            json!([pool, bare]),
        )
        .unwrap();
        let mut t = LoadBalancerTree {
            load_balancer: lb(),
            listeners: g.listeners.iter().map(|l| l.listener.clone()).collect(),
            pools: g.pools.iter().map(|p| p.pool.clone()).collect(),
            members: g.pools.iter().flat_map(|p| p.members.clone()).collect(),
            health_monitors: g
                .pools
                .iter()
                .filter_map(|p| p.health_monitor.clone())
                .collect(),
            l7policies: g.listeners[0]
                .l7policies
                .iter()
                .map(|p| p.policy.clone())
                .collect(),
            l7rules: g.listeners[0].l7policies[0].rules.clone(),
        };
        t.load_balancer.listener_ids = t.listeners.iter().map(|l| l.id).collect();
        t.load_balancer.pool_ids = t.pools.iter().map(|p| p.id).collect();
        let v = full_response(&t).unwrap();
        let (listeners, pools) = (&t.listeners, &t.pools);
        let l = &v["listeners"][0];
        assert_eq!(l["id"], listeners[0].id.to_string());
        assert_eq!(l["default_pool_id"], pools[0].id.to_string());
        assert!(l.get("loadbalancers").is_none(), "{l}");
        assert_eq!(l["l7policies"][0]["action"], "REJECT");
        assert_eq!(l["l7policies"][0]["rules"][0]["value"], "/x");
        let (p, b) = (&v["pools"][0], &v["pools"][1]);
        assert_eq!(p["members"][0]["address"], "10.0.0.1");
        assert_eq!(p["members"][0]["operating_status"], "OFFLINE");
        assert_eq!(p["healthmonitor"]["type"], "TCP");
        assert!(p["healthmonitor"].get("pools").is_none(), "{p}");
        for pool in [p, b] {
            assert!(pool.get("loadbalancers").is_none(), "{pool}");
            assert!(pool.get("healthmonitor_id").is_none(), "{pool}");
        }
        assert!(b.get("healthmonitor").is_none(), "{b}");
        assert_eq!(b["members"], json!([]));
        assert_eq!(v["provisioning_status"], "PENDING_CREATE");
        assert_eq!(v["tenant_id"], "p1");
    }
}

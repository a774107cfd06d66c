//! Who may do what: Octavia's default policy as a table of persona × route → allowed or
//! denied, run by the API suite (noauth headers naming the same roles) and by the end-to-end
//! suite (real Keystone tokens). Expectations come from Octavia's policy documentation and
//! `octavia/policies/`, not from our engine: the engine is what is under test.

use serde_json::{json, Value};

/// The project that owns every object the table addresses (noauth's name for it).
pub const OWNER: &str = "rbac-owner";
/// A second tenant project.
pub const OTHER: &str = "rbac-other";
/// The operators' project.
pub const OPS: &str = "rbac-ops";

/// The project a persona's token is scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Home {
    /// The project that owns the objects.
    Owner,
    /// Another tenant's project.
    Other,
    /// The operators' project.
    Ops,
}

impl Home {
    pub const ALL: [Home; 3] = [Home::Owner, Home::Other, Home::Ops];

    /// The noauth name of the project ([`OWNER`], [`OTHER`], [`OPS`]).
    pub fn noauth_name(self) -> &'static str {
        match self {
            Home::Owner => OWNER,
            Home::Other => OTHER,
            Home::Ops => OPS,
        }
    }
}

/// One kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    /// `admin` (Keystone implies `member` and `reader`), in the operators' project.
    Admin,
    /// `member` of the owning project.
    Member,
    /// `reader` of the owning project.
    Reader,
    /// `member` of another project.
    OtherMember,
    /// A role unrelated to load balancing on the owning project (Keystone scopes a token only
    /// to a project the user has some role on).
    NoRole,
    /// Octavia's deprecated roles (work while `enforce_new_defaults` is off, the default).
    LbGlobalObserver,
    LbQuotaAdmin,
    LbMember,
    LbObserver,
    LbAdmin,
}

impl Persona {
    pub const ALL: [Persona; 10] = [
        Persona::Admin,
        Persona::Member,
        Persona::Reader,
        Persona::OtherMember,
        Persona::NoRole,
        Persona::LbGlobalObserver,
        Persona::LbQuotaAdmin,
        Persona::LbMember,
        Persona::LbObserver,
        Persona::LbAdmin,
    ];

    /// The roles a token of this persona carries (implied roles included, as Keystone
    /// expands them).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Persona::Admin => &["admin", "member", "reader"],
            Persona::Member | Persona::OtherMember => &["member", "reader"],
            Persona::Reader => &["reader"],
            Persona::NoRole => &["heat_stack_user"],
            Persona::LbGlobalObserver => &["load-balancer_global_observer"],
            Persona::LbQuotaAdmin => &["load-balancer_quota_admin"],
            Persona::LbMember => &["load-balancer_member"],
            Persona::LbObserver => &["load-balancer_observer"],
            Persona::LbAdmin => &["load-balancer_admin"],
        }
    }

    /// The roles to grant in Keystone (it adds the implied ones itself).
    pub fn granted_roles(self) -> &'static [&'static str] {
        match self {
            Persona::Admin => &["admin"],
            Persona::Member | Persona::OtherMember => &["member"],
            p => p.roles(),
        }
    }

    /// The project the persona's token is scoped to.
    pub fn home(self) -> Home {
        match self {
            Persona::Admin
            | Persona::LbGlobalObserver
            | Persona::LbQuotaAdmin
            | Persona::LbAdmin => Home::Ops,
            Persona::OtherMember => Home::Other,
            _ => Home::Owner,
        }
    }

    /// Whether the persona passes `access` on an object of [`OWNER`].
    pub fn may(self, access: Access) -> bool {
        use Persona::*;
        let admin = matches!(self, Admin | LbAdmin);
        let global = admin || self == LbGlobalObserver;
        let owner_read = matches!(self, Member | Reader | LbMember | LbObserver);
        let owner_write = matches!(self, Member | LbMember);
        // Read on the caller's own project (lists, providers, flavors).
        let own_read = global || owner_read || self == OtherMember;
        match access {
            Access::Read => global || owner_read,
            Access::Write => admin || owner_write,
            Access::Admin => admin,
            Access::List | Access::OwnRead => own_read,
            Access::QuotaRead => global || owner_read || self == LbQuotaAdmin,
            Access::QuotaWrite => admin || self == LbQuotaAdmin,
            Access::QuotaList => own_read || self == LbQuotaAdmin,
        }
    }
}

/// What a route asks of the caller (the `load-balancer:*` rule behind its policy name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `load-balancer:read` on the object's project.
    Read,
    /// `load-balancer:write` on the object's project.
    Write,
    /// `load-balancer:admin`.
    Admin,
    /// A listing: `get_all-global`, else `get_all` on the caller's own project.
    List,
    /// `load-balancer:read` on the caller's own project (providers, flavors, zones).
    OwnRead,
    /// `load-balancer:read-quota` on the project named.
    QuotaRead,
    /// `load-balancer:write-quota`.
    QuotaWrite,
    /// The quota listing (`read-quota-global`, else `read-quota` on the caller's own project).
    QuotaList,
}

/// The ids of the objects of [`OWNER`] the table addresses.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub load_balancer: String,
    pub listener: String,
    pub pool: String,
    pub member: String,
    pub health_monitor: String,
    pub l7policy: String,
    pub l7rule: String,
    pub amphora: String,
    /// The operator's catalogue (no project): a flavor, its profile, an availability zone
    /// (by name) and its profile.
    pub flavor: String,
    pub flavor_profile: String,
    pub availability_zone: String,
    pub availability_zone_profile: String,
}

/// A kind of object a `DELETE` case needs made fresh for it (a delete that is allowed
/// removes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
    /// Records of the catalogue, made by an admin (unused, so an allowed delete succeeds).
    Flavor,
    FlavorProfile,
    AvailabilityZone,
    AvailabilityZoneProfile,
}

/// One request of the table. In `path`, `{fresh}` stands for the id a [`Fresh`] maker
/// returns (for members and rules: `{parent}/{child}` ids joined into the path by the maker).
#[derive(Debug, Clone)]
pub struct Case {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
    pub access: Access,
    pub fresh: Option<Fresh>,
}

impl Case {
    fn new(method: &'static str, path: String, body: Option<Value>, access: Access) -> Self {
        Case {
            method,
            path,
            body,
            access,
            fresh: None,
        }
    }
}

/// Every route of the API with a request that, once authorized, changes nothing it should
/// not (write bodies that fail validation after the policy check, deletes of fresh objects).
/// `owner` is the id of the project that owns the objects of `ids`.
pub fn cases(ids: &Ids, owner: &str) -> Vec<Case> {
    use Access::*;
    let too_long = "x".repeat(300);
    let rename = |key: &str| Some(json!({ key: {"name": too_long} }));
    let lbaas = "/v2/lbaas";
    let mut v = vec![];
    let mut top = |collection: &str, key: &str, id: &str, post: Value, fresh: Fresh| {
        v.push(Case::new(
            "GET",
            format!("{lbaas}/{collection}"),
            None,
            List,
        ));
        v.push(Case::new(
            "POST",
            format!("{lbaas}/{collection}"),
            Some(post),
            Write,
        ));
        v.push(Case::new(
            "GET",
            format!("{lbaas}/{collection}/{id}"),
            None,
            Read,
        ));
        v.push(Case::new(
            "PUT",
            format!("{lbaas}/{collection}/{id}"),
            rename(key),
            Write,
        ));
        v.push(Case {
            fresh: Some(fresh),
            ..Case::new(
                "DELETE",
                format!("{lbaas}/{collection}/{{fresh}}"),
                None,
                Write,
            )
        });
    };
    top(
        "loadbalancers",
        "loadbalancer",
        &ids.load_balancer,
        json!({"loadbalancer": {"project_id": owner, "name": too_long}}),
        Fresh::LoadBalancer,
    );
    top(
        "listeners",
        "listener",
        &ids.listener,
        json!({"listener": {"loadbalancer_id": ids.load_balancer, "protocol": "HTTP", "protocol_port": 81, "name": too_long}}),
        Fresh::Listener,
    );
    top(
        "pools",
        "pool",
        &ids.pool,
        json!({"pool": {"loadbalancer_id": ids.load_balancer, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "name": too_long}}),
        Fresh::Pool,
    );
    top(
        "healthmonitors",
        "healthmonitor",
        &ids.health_monitor,
        json!({"healthmonitor": {"pool_id": ids.pool, "type": "HTTP", "delay": 5, "timeout": 5, "max_retries": 3, "name": too_long}}),
        Fresh::HealthMonitor,
    );
    top(
        "l7policies",
        "l7policy",
        &ids.l7policy,
        json!({"l7policy": {"listener_id": ids.listener, "action": "REJECT", "name": too_long}}),
        Fresh::L7Policy,
    );
    // A single-call create asks the load balancer's rule alone, for the body's project.
    v.push(Case::new(
        "POST",
        format!("{lbaas}/loadbalancers"),
        Some(
            json!({"loadbalancer": {"project_id": owner, "name": too_long,
            "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}}),
        ),
        Write,
    ));
    let lb = &ids.load_balancer;
    v.push(Case::new(
        "GET",
        format!("{lbaas}/loadbalancers/{lb}/stats"),
        None,
        Read,
    ));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/loadbalancers/{lb}/status"),
        None,
        Read,
    ));
    v.push(Case::new(
        "PUT",
        format!("{lbaas}/loadbalancers/{lb}/failover"),
        None,
        Admin,
    ));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/listeners/{}/stats", ids.listener),
        None,
        Read,
    ));
    // Members and L7 rules, under their parents.
    let members = format!("{lbaas}/pools/{}/members", ids.pool);
    v.push(Case::new("GET", members.clone(), None, Read));
    v.push(Case::new(
        "POST",
        members.clone(),
        Some(json!({"member": {"address": "192.0.2.10", "protocol_port": 80, "name": too_long}})),
        Write,
    ));
    v.push(Case::new(
        "GET",
        format!("{members}/{}", ids.member),
        None,
        Read,
    ));
    v.push(Case::new(
        "PUT",
        format!("{members}/{}", ids.member),
        rename("member"),
        Write,
    ));
    v.push(Case {
        fresh: Some(Fresh::Member),
        ..Case::new("DELETE", format!("{members}/{{fresh}}"), None, Write)
    });
    v.push(Case::new(
        "PUT",
        members.clone(),
        Some(json!({"members": [
            {"address": "192.0.2.10", "protocol_port": 80},
            {"address": "192.0.2.10", "protocol_port": 80},
        ]})),
        Write,
    ));
    let rules = format!("{lbaas}/l7policies/{}/rules", ids.l7policy);
    v.push(Case::new("GET", rules.clone(), None, Read));
    v.push(Case::new(
        "POST",
        rules.clone(),
        Some(json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a\nb"}})),
        Write,
    ));
    v.push(Case::new(
        "GET",
        format!("{rules}/{}", ids.l7rule),
        None,
        Read,
    ));
    v.push(Case::new(
        "PUT",
        format!("{rules}/{}", ids.l7rule),
        Some(json!({"rule": {"value": "/a\nb"}})),
        Write,
    ));
    v.push(Case {
        fresh: Some(Fresh::L7Rule),
        ..Case::new("DELETE", format!("{rules}/{{fresh}}"), None, Write)
    });
    // Quotas.
    v.push(Case::new("GET", format!("{lbaas}/quotas"), None, QuotaList));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/quotas/{owner}"),
        None,
        QuotaRead,
    ));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/quotas/{owner}/default"),
        None,
        QuotaRead,
    ));
    v.push(Case::new(
        "PUT",
        format!("{lbaas}/quotas/{owner}"),
        Some(json!({"quota": {"member": -2}})),
        QuotaWrite,
    ));
    v.push(Case::new(
        "DELETE",
        format!("{lbaas}/quotas/{owner}"),
        None,
        QuotaWrite,
    ));
    // Providers.
    v.push(Case::new(
        "GET",
        format!("{lbaas}/providers"),
        None,
        OwnRead,
    ));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/providers/amphora/flavor_capabilities"),
        None,
        Admin,
    ));
    v.push(Case::new(
        "GET",
        format!("{lbaas}/providers/amphora/availability_zone_capabilities"),
        None,
        Admin,
    ));
    // The operator's catalogue: flavors and availability zones are read by anyone with a
    // role on their own project, written by admins; their profiles are admin-only
    // (octavia/policies/flavor.py, flavor_profile.py, availability_zone.py,
    // availability_zone_profile.py).
    let mut catalogue =
        |collection: &str, id: &str, read: Access, post: Value, put: Value, fresh: Fresh| {
            let one = format!("{lbaas}/{collection}/{id}");
            v.push(Case::new(
                "GET",
                format!("{lbaas}/{collection}"),
                None,
                read,
            ));
            v.push(Case::new(
                "POST",
                format!("{lbaas}/{collection}"),
                Some(post),
                Admin,
            ));
            v.push(Case::new("GET", one.clone(), None, read));
            v.push(Case::new("PUT", one, Some(put), Admin));
            v.push(Case {
                fresh: Some(fresh),
                ..Case::new(
                    "DELETE",
                    format!("{lbaas}/{collection}/{{fresh}}"),
                    None,
                    Admin,
                )
            });
        };
    catalogue(
        "flavors",
        &ids.flavor,
        OwnRead,
        json!({"flavor": {"name": too_long, "flavor_profile_id": ids.flavor_profile}}),
        json!({"flavor": {"name": too_long}}),
        Fresh::Flavor,
    );
    catalogue(
        "flavorprofiles",
        &ids.flavor_profile,
        Admin,
        json!({"flavorprofile": {"name": too_long, "provider_name": "amphora", "flavor_data": "{}"}}),
        json!({"flavorprofile": {"name": too_long}}),
        Fresh::FlavorProfile,
    );
    catalogue(
        "availabilityzones",
        &ids.availability_zone,
        OwnRead,
        json!({"availability_zone": {"name": too_long, "availability_zone_profile_id": ids.availability_zone_profile}}),
        json!({"availability_zone": {"description": too_long}}),
        Fresh::AvailabilityZone,
    );
    catalogue(
        "availabilityzoneprofiles",
        &ids.availability_zone_profile,
        Admin,
        json!({"availability_zone_profile": {"name": too_long, "provider_name": "amphora", "availability_zone_data": "{}"}}),
        json!({"availability_zone_profile": {"name": too_long}}),
        Fresh::AvailabilityZoneProfile,
    );
    // Amphorae (admin).
    let amp = format!("/v2/octavia/amphorae/{}", ids.amphora);
    v.push(Case::new("GET", "/v2/octavia/amphorae".into(), None, Admin));
    v.push(Case::new("GET", amp.clone(), None, Admin));
    v.push(Case::new("PUT", format!("{amp}/config"), None, Admin));
    v.push(Case::new("PUT", format!("{amp}/failover"), None, Admin));
    v.push(Case::new("GET", format!("{amp}/stats"), None, Admin));
    v.push(Case::new("DELETE", amp.clone(), None, Admin));
    v
}

/// What a request's status says about the policy: 403 is a refusal; any other answer but
/// 401 and 5xx means the policy let the request through (the request may still be refused
/// for its content, 400/404/409, as the table's bodies intend).
pub fn verdict(status: u16) -> Result<bool, String> {
    match status {
        403 => Ok(false),
        401 | 500.. => Err(format!("status {status} says nothing about the policy")),
        _ => Ok(true),
    }
}

/// What the table runs through: the API suite's in-process router with noauth headers, or
/// the end-to-end suite's real server with Keystone tokens.
#[allow(async_fn_in_trait)]
pub trait Driver {
    /// `method path` (with a JSON `body`) as `persona`: the status and the JSON answer
    /// (`null` when empty or not JSON).
    async fn call(
        &self,
        persona: Persona,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value);
    /// Returns once every job the requests so far queued has finished.
    async fn settle(&self);
}

/// The owner's member creates `{key: body}` at `path`; its id, once its job has finished.
async fn make<D: Driver>(d: &D, path: &str, key: &str, body: Value) -> String {
    let (status, answer) = d
        .call(Persona::Member, "POST", path, Some(json!({ key: body })))
        .await;
    assert_eq!(status, 201, "POST {path}: {answer}");
    d.settle().await;
    answer[key]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("POST {path}: no id in {answer}"))
        .to_string()
}

/// The admin creates `{key: body}` at `path` (a record of the operator's catalogue, written
/// at once); the value of its `id_field` (`id`, or `name` for an availability zone).
async fn admin_make<D: Driver>(
    d: &D,
    path: &str,
    key: &str,
    body: Value,
    id_field: &str,
) -> String {
    let (status, answer) = d
        .call(Persona::Admin, "POST", path, Some(json!({ key: body })))
        .await;
    assert_eq!(status, 201, "POST {path}: {answer}");
    answer[key][id_field]
        .as_str()
        .unwrap_or_else(|| panic!("POST {path}: no {id_field} in {answer}"))
        .to_string()
}

async fn flavor_profile<D: Driver>(d: &D, n: u32) -> String {
    admin_make(
        d,
        "/v2/lbaas/flavorprofiles",
        "flavorprofile",
        json!({"name": format!("rbac-fp{n}"), "provider_name": "amphora", "flavor_data": "{}"}),
        "id",
    )
    .await
}

async fn zone_profile<D: Driver>(d: &D, n: u32) -> String {
    admin_make(
        d,
        "/v2/lbaas/availabilityzoneprofiles",
        "availability_zone_profile",
        json!({"name": format!("rbac-azp{n}"), "provider_name": "amphora",
               "availability_zone_data": "{}"}),
        "id",
    )
    .await
}

async fn flavor<D: Driver>(d: &D, name: &str, profile: &str) -> String {
    admin_make(
        d,
        "/v2/lbaas/flavors",
        "flavor",
        json!({"name": name, "flavor_profile_id": profile}),
        "id",
    )
    .await
}

async fn zone<D: Driver>(d: &D, name: &str, profile: &str) -> String {
    admin_make(
        d,
        "/v2/lbaas/availabilityzones",
        "availability_zone",
        json!({"name": name, "availability_zone_profile_id": profile}),
        "name",
    )
    .await
}

/// The owner's tree, made by its member: a load balancer on `subnet` with a listener, a
/// pool, a member, a health monitor, an L7 policy and rule, and the amphora the flow built;
/// and the operator's catalogue, made by the admin: a flavor, an availability zone and their
/// profiles.
pub async fn tree<D: Driver>(d: &D, subnet: &str) -> Ids {
    let lb = make(
        d,
        "/v2/lbaas/loadbalancers",
        "loadbalancer",
        json!({"vip_subnet_id": subnet}),
    )
    .await;
    let listener = make(
        d,
        "/v2/lbaas/listeners",
        "listener",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}),
    )
    .await;
    let pool = make(
        d,
        "/v2/lbaas/pools",
        "pool",
        json!({"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
    )
    .await;
    let member = make(
        d,
        &format!("/v2/lbaas/pools/{pool}/members"),
        "member",
        json!({"address": "10.0.0.20", "protocol_port": 80}),
    )
    .await;
    let health_monitor = make(
        d,
        "/v2/lbaas/healthmonitors",
        "healthmonitor",
        json!({"pool_id": pool, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2}),
    )
    .await;
    let l7policy = make(
        d,
        "/v2/lbaas/l7policies",
        "l7policy",
        json!({"listener_id": listener, "action": "REJECT"}),
    )
    .await;
    let l7rule = make(
        d,
        &format!("/v2/lbaas/l7policies/{l7policy}/rules"),
        "rule",
        json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/x"}),
    )
    .await;
    let path = format!("/v2/octavia/amphorae?load_balancer_id={lb}");
    let (status, amps) = d.call(Persona::Admin, "GET", &path, None).await;
    assert_eq!(status, 200, "GET {path}: {amps}");
    let amphora = amps["amphorae"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the load balancer's amphora: {amps}"))
        .to_string();
    let flavor_profile = flavor_profile(d, 0).await;
    let availability_zone_profile = zone_profile(d, 0).await;
    Ids {
        flavor: flavor(d, "rbac-flavor", &flavor_profile).await,
        availability_zone: zone(d, "rbac-zone", &availability_zone_profile).await,
        flavor_profile,
        availability_zone_profile,
        load_balancer: lb,
        listener,
        pool,
        member,
        health_monitor,
        l7policy,
        l7rule,
        amphora,
    }
}

/// What a run of the table found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests sent.
    pub tried: usize,
    /// One line per answer that is not the policy's.
    pub failures: Vec<String>,
}

/// Every case of [`cases`] as every [`Persona`] through `d`, against the tree of [`tree`]
/// (owned by the project `owner`); objects a `DELETE` case removes are made fresh for it.
pub async fn run<D: Driver>(d: &D, ids: &Ids, owner: &str, subnet: &str) -> Outcome {
    let mut out = Outcome::default();
    let members = format!("/v2/lbaas/pools/{}/members", ids.pool);
    let rules = format!("/v2/lbaas/l7policies/{}/rules", ids.l7policy);
    let mut port = 1000;
    for case in cases(ids, owner) {
        for persona in Persona::ALL {
            let path = match case.fresh {
                None => case.path.clone(),
                Some(kind) => {
                    port += 1;
                    let id = fresh(d, kind, ids, subnet, &members, &rules, port).await;
                    case.path.replace("{fresh}", &id)
                }
            };
            let (status, body) = d.call(persona, case.method, &path, case.body.clone()).await;
            out.tried += 1;
            let expected = persona.may(case.access);
            match verdict(status) {
                Ok(allowed) if allowed == expected => {}
                Ok(_) => out.failures.push(format!(
                    "{persona:?} {} {path}: {status} (expected {})",
                    case.method,
                    if expected { "allowed" } else { "403" }
                )),
                Err(e) => out
                    .failures
                    .push(format!("{persona:?} {} {path}: {e}: {body}", case.method)),
            }
            d.settle().await;
        }
    }
    out
}

/// A new object of `kind` in the owner's tree, for one `DELETE` case.
async fn fresh<D: Driver>(
    d: &D,
    kind: Fresh,
    ids: &Ids,
    subnet: &str,
    members: &str,
    rules: &str,
    port: u32,
) -> String {
    let lb = &ids.load_balancer;
    let pool = || {
        make(
            d,
            "/v2/lbaas/pools",
            "pool",
            json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
        )
    };
    match kind {
        Fresh::LoadBalancer => {
            make(
                d,
                "/v2/lbaas/loadbalancers",
                "loadbalancer",
                json!({"vip_subnet_id": subnet}),
            )
            .await
        }
        Fresh::Listener => {
            make(
                d,
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": port}),
            )
            .await
        }
        Fresh::Pool => pool().await,
        Fresh::HealthMonitor => {
            let p = pool().await;
            make(
                d,
                "/v2/lbaas/healthmonitors",
                "healthmonitor",
                json!({"pool_id": p, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 2}),
            )
            .await
        }
        Fresh::L7Policy => {
            make(
                d,
                "/v2/lbaas/l7policies",
                "l7policy",
                json!({"listener_id": ids.listener, "action": "REJECT"}),
            )
            .await
        }
        Fresh::Member => {
            make(
                d,
                members,
                "member",
                json!({"address": "10.0.1.1", "protocol_port": port}),
            )
            .await
        }
        Fresh::L7Rule => {
            make(
                d,
                rules,
                "rule",
                json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": format!("/{port}")}),
            )
            .await
        }
        Fresh::Flavor => flavor(d, &format!("rbac-flavor{port}"), &ids.flavor_profile).await,
        Fresh::FlavorProfile => flavor_profile(d, port).await,
        Fresh::AvailabilityZone => {
            zone(
                d,
                &format!("rbac-zone{port}"),
                &ids.availability_zone_profile,
            )
            .await
        }
        Fresh::AvailabilityZoneProfile => zone_profile(d, port).await,
    }
}

//! End-to-end tests of the v2 API: the router driven in-process against a real store
//! on every engine of `octavia_test_support::engines()`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use octavia_api::{router, ApiContext, ApiSettings, AuthStrategy};
use octavia_db::{ClassCaps, Store};
use octavia_flows::{
    AbortHandle, Engine as FlowEngine, Failpoints, FlowOutcome, FlowSettings, JobRunner,
    RetryPolicy,
};
use octavia_test_support::{engines, TestStore};
use serde_json::{json, Value};
use tower::ServiceExt;

const SUBNET: &str = "11111111-2222-3333-4444-555555555555";

struct Api {
    router: Router,
    ts: TestStore,
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Api {
    async fn new(engine: octavia_db::Engine) -> Api {
        Self::with_network(engine, octavia_drivers::Drivers::noop().0.network).await
    }

    /// An API whose VIP checks ask `network`.
    async fn with_network(
        engine: octavia_db::Engine,
        network: Arc<dyn octavia_drivers::NetworkLookup>,
    ) -> Api {
        let ts = TestStore::new(engine).await;
        let settings = ApiSettings {
            pagination_max_limit: 50,
            ..Default::default()
        };
        let router = router(ApiContext {
            store: ts.store.clone(),
            settings,
            metrics_render: Some(Arc::new(|| "octavia_test_metric 1\n".to_string())),
            network: Some(network),
        })
        .expect("router builds with noauth");
        Api { router, ts }
    }

    fn store(&self) -> &Store {
        &self.ts.store
    }

    async fn raw(&self, req: Request<Body>) -> Reply {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    async fn call_as(
        &self,
        project: &str,
        roles: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "api.test:9876")
            .header("x-project-id", project);
        if !roles.is_empty() {
            b = b.header("x-roles", roles);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("valid request");
        self.raw(req).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as("p1", "", method, path, body).await
    }

    /// Run every queued job through its real flow with the noop drivers, as a worker
    /// would; each must succeed (a job without a flow, or a step that fails, fails the test).
    async fn settle_all(&self) {
        for (job, outcome) in self.run_jobs(Failpoints::none()).await {
            assert_eq!(
                outcome,
                FlowOutcome::Succeeded,
                "job {} ({}) did not succeed",
                job.id,
                job.spec
            );
        }
    }

    /// Run every queued job through its real flow with the noop drivers and `failpoints`
    /// armed; what each job came to.
    async fn run_jobs(&self, failpoints: Failpoints) -> Vec<(octavia_db::ClaimedJob, FlowOutcome)> {
        let (drivers, _) = octavia_drivers::Drivers::noop();
        let runner = JobRunner {
            store: self.store().clone(),
            drivers,
            engine: FlowEngine::new(failpoints, RetryPolicy::default()),
            settings: FlowSettings {
                amp_boot_poll: Duration::from_millis(5),
                ..FlowSettings::default()
            },
            worker_id: "api-test".into(),
        };
        let mut done = Vec::new();
        while let Some(job) = self
            .store()
            .claim_job("api-test", Duration::from_secs(60), &ClassCaps::default())
            .await
            .expect("claim")
        {
            let (_abort, abort) = AbortHandle::new();
            let outcome = runner.run(&job, abort).await.expect("run job");
            done.push((job, outcome));
        }
        done
    }

    async fn job_total(&self) -> i64 {
        self.store()
            .job_counts()
            .await
            .expect("job counts")
            .iter()
            .map(|c| c.3)
            .sum()
    }

    /// Object counts visible to an admin plus the job count: "the store is unchanged".
    async fn snapshot(&self) -> Vec<i64> {
        let mut v = vec![self.job_total().await];
        for path in [
            "/v2/lbaas/loadbalancers",
            "/v2/lbaas/listeners",
            "/v2/lbaas/pools",
            "/v2/lbaas/healthmonitors",
            "/v2/lbaas/l7policies",
        ] {
            let r = self
                .call_as("admin", "admin", Method::GET, path, None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            let key = path.rsplit('/').next().unwrap_or_default();
            v.push(r.body[key].as_array().map(|a| a.len() as i64).unwrap_or(-1));
        }
        v
    }

    async fn create_lb(&self, name: &str, tags: &[&str]) -> String {
        let r = self
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(
                    json!({"loadbalancer": {"name": name, "vip_subnet_id": SUBNET, "tags": tags}}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["loadbalancer"]["id"]
            .as_str()
            .expect("lb id")
            .to_string()
    }
}

impl Api {
    /// POST `body` under `key` to `path` (201 expected), run the job, return the new id.
    async fn create_child(&self, path: &str, key: &str, body: Value) -> String {
        let r = self
            .call(Method::POST, path, Some(json!({ key: body })))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.body);
        self.settle_all().await;
        r.body[key]["id"].as_str().expect("new id").to_string()
    }

    /// An ACTIVE load balancer with an HTTP listener on port 80 and its ROUND_ROBIN pool:
    /// (load balancer, listener, pool) ids.
    async fn lb_listener_pool(&self, name: &str) -> (String, String, String) {
        let lb = self.create_lb(name, &[]).await;
        self.settle_all().await;
        let listener = self
            .create_child(
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}),
            )
            .await;
        let pool = self
            .create_child(
                "/v2/lbaas/pools",
                "pool",
                json!({"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
            )
            .await;
        (lb, listener, pool)
    }

    /// An ACTIVE tree of every kind: load balancer, HTTP listener, pool, one member, an HTTP
    /// health monitor, a REJECT policy and a PATH rule.
    async fn full_tree(&self, name: &str) -> Tree {
        let (lb, listener, pool) = self.lb_listener_pool(name).await;
        let members = format!("/v2/lbaas/pools/{pool}/members");
        let member = self
            .create_child(
                &members,
                "member",
                json!({"address": "10.0.0.20", "protocol_port": 80}),
            )
            .await;
        let hm = self
            .create_child(
                "/v2/lbaas/healthmonitors",
                "healthmonitor",
                json!({"pool_id": pool, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2}),
            )
            .await;
        let policy = self
            .create_child(
                "/v2/lbaas/l7policies",
                "l7policy",
                json!({"listener_id": listener, "action": "REJECT"}),
            )
            .await;
        let rules = format!("/v2/lbaas/l7policies/{policy}/rules");
        let rule = self
            .create_child(
                &rules,
                "rule",
                json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/x"}),
            )
            .await;
        Tree {
            lb,
            listener,
            pool,
            members,
            member,
            hm,
            policy,
            rules,
            rule,
        }
    }

    /// `(address, protocol_port, weight, provisioning_status)` of every member of `pool`.
    async fn members_of(&self, pool: &str) -> Vec<(String, i64, i64, String)> {
        let r = self
            .call(
                Method::GET,
                &format!("/v2/lbaas/pools/{pool}/members"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut v: Vec<_> = r.body["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                (
                    m["address"].as_str().unwrap_or_default().to_string(),
                    m["protocol_port"].as_i64().unwrap_or_default(),
                    m["weight"].as_i64().unwrap_or_default(),
                    m["provisioning_status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// The ids (and member/rule collection paths) of [`Api::full_tree`].
struct Tree {
    lb: String,
    listener: String,
    pool: String,
    members: String,
    member: String,
    hm: String,
    policy: String,
    rules: String,
    rule: String,
}

fn fault_names(r: &Reply, needle: &str) {
    assert_eq!(
        r.body["faultcode"],
        if r.status.is_server_error() {
            "Server"
        } else {
            "Client"
        },
        "{}",
        r.body
    );
    assert!(r.body["debuginfo"].is_null(), "{}", r.body);
    let s = r.body["faultstring"].as_str().unwrap_or_default();
    assert!(s.contains(needle), "fault '{s}' should name '{needle}'");
}

#[tokio::test]
async fn versions_mounts_accept_and_metrics() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let r = api.call(Method::GET, "/", None).await;
        assert_eq!(r.status, StatusCode::OK);
        let versions = r.body["versions"].as_array().expect("versions");
        assert_eq!(versions.last().unwrap()["status"], "CURRENT");
        assert_eq!(versions[0]["links"][0]["href"], "http://api.test:9876/v2");
        assert!(r
            .headers
            .get("x-openstack-request-id")
            .is_some_and(|v| v.to_str().unwrap().starts_with("req-")));

        for p in ["/v2", "/v2.0", "/v2/lbaas", "/v2.0/lbaas/"] {
            let r = api.call(Method::GET, p, None).await;
            assert_eq!(
                (r.status, r.body.clone()),
                (StatusCode::OK, json!("v2")),
                "{p}"
            );
        }
        for p in [
            "/v2/lbaas/loadbalancers",
            "/v2/loadbalancers",
            "/v2.0/lbaas/loadbalancers.json",
            "/v2.0/loadbalancers",
        ] {
            let r = api.call(Method::GET, p, None).await;
            assert_eq!(r.status, StatusCode::OK, "{p}");
            assert!(
                r.body["loadbalancers"].is_array() && r.body["loadbalancers_links"].is_array(),
                "{p}"
            );
        }
        // Accept rule: 406 with its own body.
        let req = Request::get("/v2/lbaas/loadbalancers")
            .header("accept", "application/xml")
            .body(Body::empty())
            .unwrap();
        let r = api.raw(req).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(r.body["errors"][0]["status"], 406);
        assert!(r.body["errors"][0]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req-"));
        // Unknown path: fault body 404.
        let r = api.call(Method::GET, "/v2/lbaas/bogus", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        fault_names(&r, "could not be found");
        // Metrics.
        let r = api.call(Method::GET, "/metrics", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.as_str().unwrap().contains("octavia_test_metric"));
        // Providers.
        let r = api.call(Method::GET, "/v2/lbaas/providers", None).await;
        let names: Vec<&str> = r.body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["amphora", "octavia"]);
        assert!(r.body.get("providers_links").is_none());
        // Capabilities are the admin's (Octavia's default policy).
        for (kind, key) in [
            ("flavor_capabilities", "flavor_capabilities"),
            (
                "availability_zone_capabilities",
                "availability_zone_capabilities",
            ),
        ] {
            let path = format!("/v2/lbaas/providers/amphora/{kind}");
            let r = api.call(Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
            let r = api.call_as("ops", "admin", Method::GET, &path, None).await;
            assert!(r.body[key].is_array(), "{path}: {}", r.body);
        }
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::GET,
                "/v2/lbaas/providers/f5/flavor_capabilities",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn keystone_without_an_auth_url_is_refused_at_build() {
    let ts = TestStore::new(octavia_db::Engine::Sqlite).await;
    let Err(err) = router(ApiContext {
        store: ts.store.clone(),
        settings: ApiSettings {
            auth_strategy: AuthStrategy::Keystone,
            ..Default::default()
        },
        metrics_render: None,
        network: None,
    }) else {
        panic!("keystone without an auth_url must be refused");
    };
    assert!(err.to_string().contains("auth_url"), "{err}");
}

#[tokio::test]
async fn object_graph_lifecycle_and_status_codes() {
    for engine in engines() {
        let api = Api::new(engine).await;
        // Create: 201, PENDING_CREATE/OFFLINE, tenant_id mirrors project_id, NULL name → "".
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "admin_state_up": null}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let lb = &r.body["loadbalancer"];
        assert_eq!(lb["provisioning_status"], "PENDING_CREATE");
        assert_eq!(lb["operating_status"], "OFFLINE");
        assert_eq!(lb["project_id"], "p1");
        assert_eq!(lb["tenant_id"], "p1");
        assert_eq!(lb["name"], "");
        assert_eq!(lb["admin_state_up"], false);
        assert_eq!(lb["provider"], "amphora");
        let lb_id = lb["id"].as_str().unwrap().to_string();
        let lb_path = format!("/v2/lbaas/loadbalancers/{lb_id}");

        // Pending LB: updates and child creates conflict.
        let r = api
            .call(
                Method::PUT,
                &lb_path,
                Some(json!({"loadbalancer": {"name": "x"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = api
            .call(Method::POST, "/v2/lbaas/listeners", Some(json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 80}})))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        api.settle_all().await;
        let r = api.call(Method::GET, &lb_path, None).await;
        assert_eq!(r.body["loadbalancer"]["provisioning_status"], "ACTIVE");

        // PUT 200.
        let r = api
            .call(
                Method::PUT,
                &lb_path,
                Some(json!({"loadbalancer": {"name": "web", "admin_state_up": true}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["loadbalancer"]["name"], "web");
        api.settle_all().await;

        // Listener, pool (via listener), member, health monitor, l7 policy + rule.
        let r = api
            .call(Method::POST, "/v2/lbaas/listeners", Some(json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 80, "tenant_id": "p1"}})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let l = &r.body["listener"];
        assert_eq!(l["timeout_client_data"], 50000);
        assert_eq!(l["connection_limit"], -1);
        assert_eq!(l["loadbalancers"][0]["id"], lb_id.as_str());
        let listener_id = l["id"].as_str().unwrap().to_string();
        api.settle_all().await;

        // Duplicate port on the same LB → 409.
        let r = api
            .call(Method::POST, "/v2/lbaas/listeners", Some(json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": 80}})))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        // Incompatible pool protocol for the listener → 400.
        let r = api
            .call(Method::POST, "/v2/lbaas/pools", Some(json!({"pool": {"listener_id": listener_id, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}})))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        fault_names(&r, "protocol");
        let r = api
            .call(Method::POST, "/v2/lbaas/pools", Some(json!({"pool": {"listener_id": listener_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let pool_id = r.body["pool"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/listeners/{listener_id}"),
                None,
            )
            .await;
        assert_eq!(r.body["listener"]["default_pool_id"], pool_id.as_str());

        let members = format!("/v2/lbaas/pools/{pool_id}/members");
        let r = api
            .call(
                Method::POST,
                &members,
                Some(json!({"member": {"address": "10.0.0.10", "protocol_port": 8080}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["member"]["operating_status"], "NO_MONITOR");
        assert_eq!(r.body["member"]["weight"], 1);
        let member_id = r.body["member"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api
            .call(
                Method::POST,
                &members,
                Some(json!({"member": {"address": "10.0.0.10", "protocol_port": 8080}})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CONFLICT,
            "duplicate member: {}",
            r.body
        );

        let r = api
            .call(Method::POST, "/v2/lbaas/healthmonitors", Some(json!({"healthmonitor": {"pool_id": pool_id, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2}})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let hm = &r.body["healthmonitor"];
        assert_eq!(
            (
                hm["max_retries"].clone(),
                hm["max_retries_down"].clone(),
                hm["url_path"].clone()
            ),
            (json!(2), json!(3), json!("/"))
        );
        let hm_id = hm["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api
            .call(Method::GET, "/v2/lbaas/healthmonitors?max_retries=2", None)
            .await;
        assert_eq!(
            r.body["healthmonitors"].as_array().unwrap().len(),
            1,
            "{}",
            r.body
        );
        let r = api
            .call(Method::GET, "/v2/lbaas/healthmonitors?max_retries=9", None)
            .await;
        assert_eq!(
            r.body["healthmonitors"].as_array().unwrap().len(),
            0,
            "{}",
            r.body
        );

        let r = api
            .call(Method::POST, "/v2/lbaas/l7policies", Some(json!({"l7policy": {"listener_id": listener_id, "action": "REDIRECT_TO_URL", "redirect_url": "http://example.com/"}})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["l7policy"]["redirect_http_code"], 302);
        let policy_id = r.body["l7policy"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let rules = format!("/v2/lbaas/l7policies/{policy_id}/rules");
        let r = api.call(Method::POST, &rules, Some(json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let rule_id = r.body["rule"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api.call(Method::GET, &rules, None).await;
        assert_eq!(r.body["rules"][0]["id"], rule_id.as_str());
        assert!(r.body["rules_links"].is_array());
        let r = api
            .call(
                Method::PUT,
                &format!("{rules}/{rule_id}"),
                Some(json!({"rule": {"value": "/v2"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["rule"]["value"], "/v2");
        api.settle_all().await;

        // Batch members: 202; replaces the set unless additive_only.
        let r = api
            .call(
                Method::PUT,
                &members,
                Some(json!({"members": [{"address": "10.0.0.11", "protocol_port": 8080}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        api.settle_all().await;
        let r = api.call(Method::GET, &members, None).await;
        let addrs: Vec<&str> = r.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["address"].as_str().unwrap())
            .collect();
        assert_eq!(addrs, ["10.0.0.11"], "old member removed");
        let r = api
            .call(Method::GET, &format!("{members}/{member_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        fault_names(&r, &format!("Member {member_id} not found."));
        let r = api
            .call(
                Method::PUT,
                &format!("{members}?additive_only=true"),
                Some(json!({"members": [{"address": "10.0.0.12", "protocol_port": 8080}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        api.settle_all().await;
        let r = api.call(Method::GET, &members, None).await;
        assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
        // New members under a monitored pool start OFFLINE.
        assert!(r.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["operating_status"] == "OFFLINE"));

        // Status tree and stats.
        let r = api
            .call(Method::GET, &format!("{lb_path}/status"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let tree = &r.body["statuses"]["loadbalancer"];
        assert_eq!(tree["id"], lb_id.as_str());
        assert_eq!(tree["listeners"][0]["pools"][0]["id"], pool_id.as_str());
        assert_eq!(
            tree["listeners"][0]["pools"][0]["health_monitor"]["id"],
            hm_id.as_str()
        );
        assert_eq!(
            tree["listeners"][0]["pools"][0]["members"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let r = api
            .call(Method::GET, &format!("{lb_path}/statuses"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = api
            .call(Method::GET, &format!("{lb_path}/stats"), None)
            .await;
        assert_eq!(r.body["stats"]["bytes_in"], 0, "{}", r.body);
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/listeners/{listener_id}/stats"),
                None,
            )
            .await;
        assert_eq!(r.body["stats"]["total_connections"], 0, "{}", r.body);

        // Another project cannot see or change it.
        let r = api.call_as("p2", "", Method::GET, &lb_path, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = api
            .call_as("p2", "", Method::GET, "/v2/lbaas/loadbalancers", None)
            .await;
        assert_eq!(r.body["loadbalancers"].as_array().unwrap().len(), 0);
        // project_id on POST by a non-admin must be their own.
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "project_id": "p2"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Delete: children without cascade → 400; child deletes 204; cascade 204.
        let r = api.call(Method::DELETE, &lb_path, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let r = api
            .call(Method::DELETE, &format!("{rules}/{rule_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        api.settle_all().await;
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2/lbaas/healthmonitors/{hm_id}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        api.settle_all().await;
        let r = api
            .call(Method::DELETE, &format!("{lb_path}?cascade=true"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        api.settle_all().await;
        let r = api.call(Method::GET, &lb_path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        fault_names(&r, &format!("Load Balancer {lb_id} not found."));
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let lb_id = api.create_lb("lb", &[]).await;
        api.settle_all().await;
        let r = api
            .call(Method::POST, "/v2/lbaas/listeners", Some(json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 80}})))
            .await;
        let listener_id = r.body["listener"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api
            .call(Method::POST, "/v2/lbaas/pools", Some(json!({"pool": {"loadbalancer_id": lb_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})))
            .await;
        let pool_id = r.body["pool"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let members = format!("/v2/lbaas/pools/{pool_id}/members");
        let before = api.snapshot().await;

        // (method, path, body, expected status, text the fault must contain)
        let big = "x".repeat(200_000);
        let cases: Vec<(Method, String, String, StatusCode, &str)> = vec![
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "FTP", "protocol_port": 81}}).to_string(), StatusCode::BAD_REQUEST, "protocol"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 0}}).to_string(), StatusCode::BAD_REQUEST, "protocol_port"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 65536}}).to_string(), StatusCode::BAD_REQUEST, "protocol_port"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 81, "bogus": 1}}).to_string(), StatusCode::BAD_REQUEST, "bogus"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "UDP", "protocol_port": 81}}).to_string(), StatusCode::NOT_IMPLEMENTED, "protocol"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS", "protocol_port": 443}}).to_string(), StatusCode::NOT_IMPLEMENTED, "protocol"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 81, "timeout_client_data": 2073600001_i64}}).to_string(), StatusCode::BAD_REQUEST, "timeout_client_data"),
            (Method::POST, "/v2/lbaas/pools".into(), json!({"pool": {"loadbalancer_id": lb_id, "protocol": "HTTP", "lb_algorithm": "SOURCE_IP_PORT"}}).to_string(), StatusCode::NOT_IMPLEMENTED, "SOURCE_IP_PORT"),
            (Method::POST, "/v2/lbaas/pools".into(), json!({"pool": {"loadbalancer_id": lb_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "APP_COOKIE"}}}).to_string(), StatusCode::BAD_REQUEST, "cookie_name"),
            (Method::POST, members.clone(), json!({"member": {"address": "10.0.0.1", "protocol_port": 80, "weight": 257}}).to_string(), StatusCode::BAD_REQUEST, "weight"),
            (Method::POST, members.clone(), json!({"member": {"address": "169.254.169.254", "protocol_port": 80}}).to_string(), StatusCode::BAD_REQUEST, "address"),
            (Method::POST, members.clone(), json!({"member": {"address": "not-an-ip", "protocol_port": 80}}).to_string(), StatusCode::BAD_REQUEST, "address"),
            (Method::PUT, members.clone(), json!({"members": [{"address": "10.0.0.1", "protocol_port": 80}, {"address": "10.0.0.1", "protocol_port": 80}]}).to_string(), StatusCode::BAD_REQUEST, "members[1]"),
            (Method::POST, "/v2/lbaas/healthmonitors".into(), json!({"healthmonitor": {"pool_id": pool_id, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 11}}).to_string(), StatusCode::BAD_REQUEST, "max_retries"),
            (Method::POST, "/v2/lbaas/healthmonitors".into(), json!({"healthmonitor": {"pool_id": pool_id, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3, "url_path": "/"}}).to_string(), StatusCode::BAD_REQUEST, "url_path"),
            (Method::POST, "/v2/lbaas/l7policies".into(), json!({"l7policy": {"listener_id": listener_id, "action": "REDIRECT_TO_POOL"}}).to_string(), StatusCode::BAD_REQUEST, "redirect_pool_id"),
            (Method::POST, "/v2/lbaas/loadbalancers".into(), json!({"loadbalancer": {"vip_subnet_id": SUBNET, "name": "n".repeat(256)}}).to_string(), StatusCode::BAD_REQUEST, "name"),
            (Method::POST, "/v2/lbaas/loadbalancers".into(), "{\"loadbalancer\": {".into(), StatusCode::BAD_REQUEST, "body"),
            (Method::POST, "/v2/lbaas/loadbalancers".into(), json!({"loadbalancer": {"name": big}}).to_string(), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
            (Method::PUT, format!("/v2/lbaas/loadbalancers/{lb_id}"), json!({"loadbalancer": {"provider": "x"}}).to_string(), StatusCode::BAD_REQUEST, "provider"),
            (Method::POST, "/v2/lbaas/listeners".into(), json!({"listener": {"loadbalancer_id": "00000000-0000-0000-0000-000000000000", "protocol": "HTTP", "protocol_port": 82}}).to_string(), StatusCode::NOT_FOUND, "00000000-0000-0000-0000-000000000000 not found"),
        ];
        for (method, path, body, status, needle) in cases {
            let req = Request::builder()
                .method(method.clone())
                .uri(&path)
                .header("x-project-id", "p1")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let r = api.raw(req).await;
            assert_eq!(
                r.status,
                status,
                "{method} {path} {}: {}",
                &body[..body.len().min(120)],
                r.body
            );
            fault_names(&r, needle);
        }
        // Wrong Content-Type → 415 (WSME's "Unknown mimetype").
        let req = Request::post("/v2/lbaas/loadbalancers")
            .header("x-project-id", "p1")
            .header("content-type", "text/plain")
            .body(Body::from(
                json!({"loadbalancer": {"vip_subnet_id": SUBNET}}).to_string(),
            ))
            .unwrap();
        let r = api.raw(req).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        fault_names(&r, "text/plain");
        // Listing errors: unknown filter key, bad value, bad marker, bad sort, bad limit.
        for (q, needle) in [
            ("?colour=blue", "colour"),
            ("?protocol_port=abc", "protocol_port"),
            ("?marker=00000000-0000-0000-0000-000000000000", "marker"),
            ("?sort=nope:asc", "nope"),
            ("?sort=name:sideways", "sideways"),
            ("?limit=ten", "ten"),
        ] {
            let r = api
                .call(Method::GET, &format!("/v2/lbaas/listeners{q}"), None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
            fault_names(&r, needle);
        }
        assert_eq!(
            api.snapshot().await,
            before,
            "refused requests changed the store"
        );
    }
}

#[tokio::test]
async fn listing_pagination_sorting_fields_and_tags() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let a = api.create_lb("alpha", &["blue", "prod"]).await;
        let b = api.create_lb("bravo", &["blue"]).await;
        let c = api.create_lb("charlie", &["red"]).await;
        api.settle_all().await;
        let names = |r: &Reply| -> Vec<String> {
            r.body["loadbalancers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["name"].as_str().unwrap_or("?").to_string())
                .collect()
        };

        let r = api
            .call(Method::GET, "/v2/lbaas/loadbalancers?sort=name:desc", None)
            .await;
        assert_eq!(names(&r), ["charlie", "bravo", "alpha"]);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?sort_key=name&sort_dir=asc",
                None,
            )
            .await;
        assert_eq!(names(&r), ["alpha", "bravo", "charlie"]);

        // Page 1 of 2: a next link carrying limit and marker; no previous link.
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?limit=2&sort=name:asc",
                None,
            )
            .await;
        assert_eq!(names(&r), ["alpha", "bravo"]);
        let links = r.body["loadbalancers_links"].as_array().unwrap().clone();
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0]["rel"], "next");
        let href = links[0]["href"].as_str().unwrap();
        assert!(
            href.starts_with("http://api.test:9876/v2/lbaas/loadbalancers?"),
            "{href}"
        );
        assert!(
            href.contains(&format!("marker={b}")) && href.contains("limit=2"),
            "{href}"
        );
        let next = href.trim_start_matches("http://api.test:9876");
        let r = api.call(Method::GET, next, None).await;
        assert_eq!(names(&r), ["charlie"]);
        let links = r.body["loadbalancers_links"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "previous");
        assert!(links[0]["href"]
            .as_str()
            .unwrap()
            .contains(&format!("marker={c}")));

        // fields, filters, tags.
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?fields=id&fields=name",
                None,
            )
            .await;
        let first = r.body["loadbalancers"][0].as_object().unwrap();
        assert_eq!(first.len(), 2, "{first:?}");
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/loadbalancers/{a}?fields=name"),
                None,
            )
            .await;
        assert_eq!(r.body, json!({"loadbalancer": {"name": "alpha"}}));
        let r = api
            .call(Method::GET, "/v2/lbaas/loadbalancers?name=bravo", None)
            .await;
        assert_eq!(names(&r), ["bravo"]);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?admin_state_up=true&sort=name",
                None,
            )
            .await;
        assert_eq!(names(&r).len(), 3);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?tags=blue&sort=name",
                None,
            )
            .await;
        assert_eq!(names(&r), ["alpha", "bravo"]);
        let r = api
            .call(Method::GET, "/v2/lbaas/loadbalancers?tags=blue,prod", None)
            .await;
        assert_eq!(names(&r), ["alpha"]);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?tags-any=prod&tags-any=red&sort=name",
                None,
            )
            .await;
        assert_eq!(names(&r), ["alpha", "charlie"]);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?not-tags-any=blue",
                None,
            )
            .await;
        assert_eq!(names(&r), ["charlie"]);
        let r = api
            .call(
                Method::GET,
                "/v2/lbaas/loadbalancers?not-tags=blue,prod&sort=name",
                None,
            )
            .await;
        assert_eq!(names(&r), ["bravo", "charlie"]);

        // Project scoping: admins see everything, others only their own.
        let r = api
            .call_as("p9", "", Method::GET, "/v2/lbaas/loadbalancers", None)
            .await;
        assert_eq!(names(&r).len(), 0);
        let r = api
            .call_as(
                "p9",
                "admin",
                Method::GET,
                "/v2/lbaas/loadbalancers?project_id=p1",
                None,
            )
            .await;
        assert_eq!(names(&r).len(), 3);
        let _ = (a, b, c);
    }
}

#[tokio::test]
async fn admin_apis_and_quotas() {
    for engine in engines() {
        let api = Api::new(engine).await;
        // Amphora API is admin-only.
        let r = api.call(Method::GET, "/v2/octavia/amphorae", None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        fault_names(&r, "Policy does not allow");
        let r = api
            .call_as("ops", "admin", Method::GET, "/v2/octavia/amphorae", None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body["amphorae"].is_array() && r.body["amphorae_links"].is_array());
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::GET,
                "/v2/octavia/amphorae/00000000-0000-0000-0000-000000000001",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        // Quotas: defaults, writes admin-only (202), list only non-default rows.
        let r = api.call(Method::GET, "/v2/lbaas/quotas/p1", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["quota"]["loadbalancer"], -1);
        let r = api
            .call(
                Method::PUT,
                "/v2/lbaas/quotas/p1",
                Some(json!({"quota": {"loadbalancer": 1}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::PUT,
                "/v2/lbaas/quotas/p1",
                Some(json!({"quota": {"loadbalancer": 1, "member": -2}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        fault_names(&r, "member");
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::PUT,
                "/v2/lbaas/quotas/p1",
                Some(json!({"quota": {"loadbalancer": 1}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["quota"]["loadbalancer"], 1);
        assert_eq!(r.body["quota"]["pool"], -1);
        let r = api
            .call_as("ops", "admin", Method::GET, "/v2/lbaas/quotas", None)
            .await;
        let rows = r.body["quotas"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0]["project_id"].clone(), rows[0]["tenant_id"].clone()),
            (json!("p1"), json!("p1"))
        );
        assert!(r.body["quotas_links"].is_array());
        for p in ["/v2/lbaas/quotas/defaults", "/v2/lbaas/quotas/p1/default"] {
            let r = api.call(Method::GET, p, None).await;
            assert_eq!(r.body["quota"]["loadbalancer"], -1, "{p}");
        }
        // Quota met → 403.
        api.create_lb("one", &[]).await;
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        fault_names(&r, "Quota");
        let r = api
            .call_as("ops", "admin", Method::DELETE, "/v2/lbaas/quotas/p1", None)
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let r = api.call(Method::GET, "/v2/lbaas/quotas/p1", None).await;
        assert_eq!(r.body["quota"]["loadbalancer"], -1);
        let r = api.call(Method::GET, "/v2/lbaas/quotas/p2", None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
}

/// `PUT /pools/{id}/members` replaces the pool's members in one job that really runs
/// (regression: the job used to find no flow and left every member in ERROR).
#[tokio::test]
async fn member_batch_update_runs_one_job_that_replaces_members() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let (lb, _, pool) = api.lb_listener_pool("batch").await;
        let members = format!("/v2/lbaas/pools/{pool}/members");
        for address in ["10.0.0.11", "10.0.0.12"] {
            api.create_child(
                &members,
                "member",
                json!({"address": address, "protocol_port": 8080}),
            )
            .await;
        }
        let jobs_before = api.job_total().await;

        // Two members replaced by one new one: one job, every member ACTIVE after it.
        let r = api
            .call(
                Method::PUT,
                &members,
                Some(json!({"members": [{"address": "10.0.0.13", "protocol_port": 8080}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(api.job_total().await, jobs_before + 1);
        api.settle_all().await;
        assert_eq!(
            api.members_of(&pool).await,
            vec![("10.0.0.13".into(), 8080, 1, "ACTIVE".into())]
        );
        let r = api
            .call(Method::GET, &format!("/v2/lbaas/pools/{pool}"), None)
            .await;
        assert_eq!(
            r.body["pool"]["provisioning_status"], "ACTIVE",
            "{}",
            r.body
        );
        let r = api
            .call(Method::GET, &format!("/v2/lbaas/loadbalancers/{lb}"), None)
            .await;
        assert_eq!(
            r.body["loadbalancer"]["provisioning_status"], "ACTIVE",
            "{}",
            r.body
        );

        // additive_only: listed members are updated (matched by address and port) or
        // created, the others stay.
        let r = api
            .call(
                Method::PUT,
                &format!("{members}?additive_only=true"),
                Some(json!({"members": [
                    {"address": "10.0.0.13", "protocol_port": 8080, "weight": 5},
                    {"address": "10.0.0.14", "protocol_port": 8080}
                ]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        api.settle_all().await;
        assert_eq!(
            api.members_of(&pool).await,
            vec![
                ("10.0.0.13".into(), 8080, 5, "ACTIVE".into()),
                ("10.0.0.14".into(), 8080, 1, "ACTIVE".into())
            ]
        );

        // The same member twice in one request: 400, nothing queued.
        let jobs_before = api.job_total().await;
        let r = api
            .call(
                Method::PUT,
                &members,
                Some(json!({"members": [
                    {"address": "10.0.0.15", "protocol_port": 80},
                    {"address": "10.0.0.15", "protocol_port": 80}
                ]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(api.job_total().await, jobs_before);

        // A batch that changes nothing: 202 and no job.
        let r = api
            .call(
                Method::PUT,
                &format!("{members}?additive_only=true"),
                Some(json!({"members": [{"address": "10.0.0.14", "protocol_port": 8080}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(api.job_total().await, jobs_before);
    }
}

const SUBNET_B6: &str = "22222222-0000-0000-0000-0000000000b6";
const SUBNET_B4: &str = "22222222-0000-0000-0000-0000000000b4";
const NET_A: &str = "33333333-0000-0000-0000-00000000000a";
const NET_B: &str = "33333333-0000-0000-0000-00000000000b";
const NET_EMPTY: &str = "33333333-0000-0000-0000-0000000000ee";
const PORT_FREE: &str = "44444444-0000-0000-0000-0000000000f1";
const PORT_USED: &str = "44444444-0000-0000-0000-0000000000f2";
const NOWHERE: &str = "55555555-0000-0000-0000-000000000000";

/// A network service that knows a few objects (the noop one knows every id).
struct KnownNetworks;

#[async_trait::async_trait]
impl octavia_drivers::NetworkLookup for KnownNetworks {
    async fn find_subnet(
        &self,
        id: &str,
    ) -> octavia_drivers::Result<Option<octavia_drivers::Subnet>> {
        let subnet = |network: &str, cidr: &str| octavia_drivers::Subnet {
            id: id.to_string(),
            network_id: network.to_string(),
            cidr: cidr.to_string(),
            gateway_ip: None,
        };
        Ok(match id {
            SUBNET => Some(subnet(NET_A, "10.0.0.0/24")),
            SUBNET_B6 => Some(subnet(NET_B, "2001:db8::/64")),
            SUBNET_B4 => Some(subnet(NET_B, "10.1.0.0/24")),
            _ => None,
        })
    }

    async fn find_network(
        &self,
        id: &str,
    ) -> octavia_drivers::Result<Option<octavia_drivers::Network>> {
        let subnets: &[&str] = match id {
            NET_A => &[SUBNET],
            NET_B => &[SUBNET_B6, SUBNET_B4],
            NET_EMPTY => &[],
            _ => return Ok(None),
        };
        Ok(Some(octavia_drivers::Network {
            id: id.to_string(),
            subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
        }))
    }

    async fn find_port(&self, id: &str) -> octavia_drivers::Result<Option<octavia_drivers::Port>> {
        let port = |device: Option<&str>| octavia_drivers::Port {
            id: id.to_string(),
            network_id: NET_A.into(),
            fixed_ips: vec![octavia_drivers::FixedIp {
                subnet_id: SUBNET.into(),
                ip_address: "10.0.0.77".into(),
            }],
            device_id: device.map(String::from),
        };
        Ok(match id {
            PORT_FREE => Some(port(None)),
            PORT_USED => Some(port(Some("server-1"))),
            _ => None,
        })
    }
}

/// The VIP is checked against the network service at POST, as Octavia does: what does not
/// exist, or cannot hold the VIP, is a 400 and nothing is written; what is valid is completed
/// (regression: an unknown subnet used to be accepted, and the load balancer went ERROR).
#[tokio::test]
async fn vip_is_checked_against_the_network_service() {
    for engine in engines() {
        let api = Api::with_network(engine, Arc::new(KnownNetworks)).await;
        let before = api.snapshot().await;
        for (vip, fault) in [
            (
                json!({"vip_subnet_id": NOWHERE}),
                format!("Subnet {NOWHERE} not found."),
            ),
            (
                json!({"vip_network_id": NOWHERE}),
                format!("Network {NOWHERE} not found."),
            ),
            (
                json!({"vip_port_id": NOWHERE}),
                format!("Port {NOWHERE} not found."),
            ),
            (
                json!({"vip_port_id": PORT_USED}),
                "already used by device server-1".to_string(),
            ),
            (
                json!({"vip_network_id": NET_B, "vip_subnet_id": SUBNET}),
                format!("Subnet {SUBNET} not found."),
            ),
            (
                json!({"vip_subnet_id": SUBNET, "vip_address": "10.9.9.9"}),
                "is not within subnet".to_string(),
            ),
            (
                json!({"vip_network_id": NET_A, "vip_address": "10.9.9.9"}),
                "does not contain a subnet for VIP address".to_string(),
            ),
            (
                json!({"vip_network_id": NET_EMPTY}),
                "does not contain a subnet".to_string(),
            ),
            (
                json!({"vip_port_id": PORT_FREE, "vip_address": "10.0.0.78"}),
                "not found on the specified VIP port".to_string(),
            ),
        ] {
            let mut body = vip.clone();
            body["name"] = json!("bad-vip");
            let r = api
                .call(
                    Method::POST,
                    "/v2/lbaas/loadbalancers",
                    Some(json!({ "loadbalancer": body })),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{vip}: {}", r.body);
            fault_names(&r, &fault);
            assert_eq!(api.snapshot().await, before, "{vip} changed the store");
        }

        // Valid requests are completed as Octavia completes them.
        for (vip, network, subnet, address) in [
            (json!({"vip_subnet_id": SUBNET}), NET_A, SUBNET, None),
            // A network alone: its first IPv4 subnet.
            (json!({"vip_network_id": NET_B}), NET_B, SUBNET_B4, None),
            (
                json!({"vip_network_id": NET_B, "vip_address": "2001:db8::5"}),
                NET_B,
                SUBNET_B6,
                Some("2001:db8::5"),
            ),
            // A free port: its network, subnet and address.
            (
                json!({"vip_port_id": PORT_FREE}),
                NET_A,
                SUBNET,
                Some("10.0.0.77"),
            ),
        ] {
            let r = api
                .call(
                    Method::POST,
                    "/v2/lbaas/loadbalancers",
                    Some(json!({ "loadbalancer": vip })),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{vip}: {}", r.body);
            let lb = &r.body["loadbalancer"];
            assert_eq!(lb["vip_network_id"], network, "{vip}");
            assert_eq!(lb["vip_subnet_id"], subnet, "{vip}");
            if let Some(address) = address {
                assert_eq!(lb["vip_address"], address, "{vip}");
            }
        }
    }
}

/// Ownership and policy are checked before the body is judged: a caller who does not own the
/// load balancer gets 403 for a body its owner would get 400/501 for (regression: the
/// stranger used to learn the body's validation error, e.g. 501 for SOURCE_IP_PORT).
#[tokio::test]
async fn writes_check_ownership_before_the_body() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let Tree {
            lb,
            listener,
            pool,
            members,
            member,
            hm,
            policy,
            rules,
            rule,
        } = api.full_tree("owned").await;
        let before = api.snapshot().await;
        let long = "x".repeat(300);
        for (method, path, body, owner_status) in [
            (
                Method::PUT,
                format!("/v2/lbaas/loadbalancers/{lb}"),
                json!({"loadbalancer": {"name": long}}),
                400,
            ),
            (
                Method::POST,
                "/v2/lbaas/listeners".to_string(),
                json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP",
                                    "protocol_port": 81, "connection_limit": -5}}),
                400,
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/listeners/{listener}"),
                json!({"listener": {"connection_limit": -5}}),
                400,
            ),
            (
                Method::POST,
                "/v2/lbaas/pools".to_string(),
                json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP",
                                "lb_algorithm": "SOURCE_IP_PORT"}}),
                501,
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/pools/{pool}"),
                json!({"pool": {"lb_algorithm": "SOURCE_IP_PORT"}}),
                501,
            ),
            (
                Method::POST,
                members.clone(),
                json!({"member": {"address": "not-an-ip", "protocol_port": 80}}),
                400,
            ),
            (
                Method::PUT,
                format!("{members}/{member}"),
                json!({"member": {"weight": 1000}}),
                400,
            ),
            (
                Method::PUT,
                members.clone(),
                json!({"members": [{"address": "not-an-ip", "protocol_port": 80}]}),
                400,
            ),
            (
                Method::POST,
                "/v2/lbaas/healthmonitors".to_string(),
                json!({"healthmonitor": {"pool_id": pool, "type": "HTTP", "delay": -1,
                                         "timeout": 3, "max_retries": 2}}),
                400,
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/healthmonitors/{hm}"),
                json!({"healthmonitor": {"max_retries": 99}}),
                400,
            ),
            (
                Method::POST,
                "/v2/lbaas/l7policies".to_string(),
                json!({"l7policy": {"listener_id": listener, "action": "REDIRECT_TO_URL"}}),
                400,
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/l7policies/{policy}"),
                json!({"l7policy": {"action": "REDIRECT_TO_URL"}}),
                400,
            ),
            (
                Method::POST,
                rules.clone(),
                json!({"rule": {"type": "HEADER", "compare_type": "EQUAL_TO", "value": "v"}}),
                400,
            ),
            (
                Method::PUT,
                format!("{rules}/{rule}"),
                json!({"rule": {"type": "HEADER"}}),
                400,
            ),
        ] {
            let stranger = api
                .call_as("p2", "member", method.clone(), &path, Some(body.clone()))
                .await;
            assert_eq!(
                stranger.status,
                StatusCode::FORBIDDEN,
                "{method} {path} by another project: {}",
                stranger.body
            );
            fault_names(&stranger, "Policy does not allow");
            // The owner is told what is wrong with the body.
            let owner = api.call(method.clone(), &path, Some(body)).await;
            assert_eq!(
                owner.status.as_u16(),
                owner_status,
                "{method} {path} by its owner: {}",
                owner.body
            );
            assert_eq!(
                api.snapshot().await,
                before,
                "{method} {path} changed the store"
            );
        }
    }
}

/// `allowed_cidrs` must share an IP version with a VIP, on create and on update, as Octavia
/// answers (regression: an IPv6 CIDR on an IPv4-only load balancer was accepted).
#[tokio::test]
async fn allowed_cidrs_must_match_a_vip_ip_version() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let lb = api.create_lb("cidrs", &[]).await;
        api.settle_all().await;
        let r = api
            .call(Method::GET, &format!("/v2/lbaas/loadbalancers/{lb}"), None)
            .await;
        let vip = r.body["loadbalancer"]["vip_address"]
            .as_str()
            .expect("vip")
            .to_string();
        assert!(vip.parse::<std::net::Ipv4Addr>().is_ok(), "{vip}");
        let before = api.snapshot().await;
        for cidrs in [json!(["2001:db8::/32"]), json!(["10.0.0.0/8", "::/0"])] {
            let r = api
                .call(
                    Method::POST,
                    "/v2/lbaas/listeners",
                    Some(
                        json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP",
                                             "protocol_port": 22, "allowed_cidrs": cidrs}}),
                    ),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cidrs}: {}", r.body);
            fault_names(
                &r,
                &format!("IP version incompatible with all VIPs ['{vip}'] IP version."),
            );
            assert_eq!(api.snapshot().await, before);
        }
        let listener = api
            .create_child(
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 22,
                       "allowed_cidrs": ["10.0.0.0/8"]}),
            )
            .await;
        let path = format!("/v2/lbaas/listeners/{listener}");
        let r = api
            .call(
                Method::PUT,
                &path,
                Some(json!({"listener": {"allowed_cidrs": ["::/0"]}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        fault_names(&r, "CIDR ::/0 IP version incompatible");
        let r = api
            .call(
                Method::PUT,
                &path,
                Some(json!({"listener": {"allowed_cidrs": ["0.0.0.0/0"]}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["listener"]["allowed_cidrs"], json!(["0.0.0.0/0"]));
        api.settle_all().await;
    }
}

/// What the amphora data plane cannot serve is refused at the API with Octavia's
/// provider-unsupported error (501), never accepted and then left in ERROR; PROMETHEUS
/// listeners are served (regression: they were accepted and went ERROR in their job).
#[tokio::test]
async fn what_the_data_plane_cannot_serve_is_refused_with_501() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let Tree {
            lb,
            pool,
            hm,
            rules,
            rule,
            ..
        } = api.full_tree("support").await;
        let tcp = api
            .create_child(
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 5432}),
            )
            .await;
        let before = api.snapshot().await;
        for (method, path, body, reason) in [
            (
                Method::POST,
                "/v2/lbaas/listeners".to_string(),
                json!({"listener": {"loadbalancer_id": lb, "protocol": "UDP", "protocol_port": 53}}),
                "Amphora provider does not support UDP protocol.",
            ),
            (
                Method::POST,
                "/v2/lbaas/listeners".to_string(),
                json!({"listener": {"loadbalancer_id": lb, "protocol": "SCTP", "protocol_port": 99}}),
                "Amphora provider does not support SCTP protocol.",
            ),
            (
                Method::POST,
                "/v2/lbaas/pools".to_string(),
                json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP",
                                "lb_algorithm": "SOURCE_IP_PORT"}}),
                "Amphora provider does not support SOURCE_IP_PORT algorithm.",
            ),
            (
                Method::POST,
                "/v2/lbaas/pools".to_string(),
                json!({"pool": {"loadbalancer_id": lb, "protocol": "UDP",
                                "lb_algorithm": "ROUND_ROBIN"}}),
                "does not support UDP pools",
            ),
            (
                Method::POST,
                "/v2/lbaas/pools".to_string(),
                json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP",
                                "lb_algorithm": "ROUND_ROBIN",
                                "session_persistence": {"type": "APP_COOKIE",
                                                        "cookie_name": "a(b"}}}),
                "APP_COOKIE cookie_name",
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/pools/{pool}"),
                json!({"pool": {"lb_algorithm": "SOURCE_IP_PORT"}}),
                "SOURCE_IP_PORT",
            ),
            (
                Method::PUT,
                format!("/v2/lbaas/healthmonitors/{hm}"),
                json!({"healthmonitor": {"delay": 0}}),
                "health monitor delay of 0",
            ),
            (
                Method::POST,
                "/v2/lbaas/l7policies".to_string(),
                json!({"l7policy": {"listener_id": tcp, "action": "REJECT"}}),
                "TCP protocol listeners do not support L7 policies",
            ),
            (
                Method::POST,
                rules.clone(),
                json!({"rule": {"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X#y",
                                "value": "v"}}),
                "HEADER rule key 'X#y'",
            ),
            (
                Method::PUT,
                format!("{rules}/{rule}"),
                json!({"rule": {"type": "COOKIE", "key": "it's"}}),
                "COOKIE rule key",
            ),
        ] {
            let r = api.call(method.clone(), &path, Some(body)).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_IMPLEMENTED,
                "{method} {path}: {}",
                r.body
            );
            fault_names(
                &r,
                "Provider 'amphora' does not support a requested option: ",
            );
            fault_names(&r, reason);
            assert_eq!(
                api.snapshot().await,
                before,
                "{method} {path} changed the store"
            );
        }

        // PROMETHEUS listeners are served: accepted, and their job renders and succeeds.
        let prometheus = api
            .create_child(
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "PROMETHEUS", "protocol_port": 9100}),
            )
            .await;
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/listeners/{prometheus}"),
                None,
            )
            .await;
        assert_eq!(
            r.body["listener"]["provisioning_status"], "ACTIVE",
            "{}",
            r.body
        );
        // Not with a pool.
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/pools",
                Some(
                    json!({"pool": {"listener_id": prometheus, "protocol": "HTTP",
                                     "lb_algorithm": "ROUND_ROBIN"}}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
}

/// The table's requests through the in-process router, each persona named by noauth
/// headers (its home project and roles).
impl octavia_test_support::rbac::Driver for Api {
    async fn call(
        &self,
        persona: octavia_test_support::rbac::Persona,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self
            .call_as(
                persona.home().noauth_name(),
                &persona.roles().join(","),
                method.parse().expect("an HTTP method"),
                path,
                body,
            )
            .await;
        (r.status.as_u16(), r.body)
    }

    async fn settle(&self) {
        self.settle_all().await;
    }
}

/// Octavia's default policy, route by route and persona by persona (the table of
/// `octavia_test_support::rbac`), with noauth headers naming each persona's roles; the
/// end-to-end suite runs the same table with real Keystone tokens.
#[tokio::test]
async fn every_route_answers_each_role_as_octavias_default_policy() {
    use octavia_test_support::rbac;
    for engine in engines() {
        let api = Api::new(engine).await;
        let ids = rbac::tree(&api, SUBNET).await;
        let lb = ids.load_balancer.clone();
        let rbac::Outcome { tried, failures } = rbac::run(&api, &ids, rbac::OWNER, SUBNET).await;
        assert!(
            failures.is_empty(),
            "{} of {tried} wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(
            tried > 700,
            "the table covers every route ({tried} requests)"
        );

        // Listings are scoped: another project's member sees none of the owner's.
        let r = api
            .call_as(
                rbac::OTHER,
                "member,reader",
                Method::GET,
                "/v2/lbaas/loadbalancers",
                None,
            )
            .await;
        assert!(
            r.body["loadbalancers"].as_array().unwrap().is_empty(),
            "{}",
            r.body
        );
        let r = api
            .call_as(
                rbac::OPS,
                "load-balancer_global_observer",
                Method::GET,
                "/v2/lbaas/loadbalancers",
                None,
            )
            .await;
        assert!(r.body["loadbalancers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == json!(lb)));
        // A reader's POST is refused and stores nothing.
        let before = api.snapshot().await;
        let r = api
            .call_as(
                rbac::OWNER,
                "reader",
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(api.snapshot().await, before);
    }
}

/// A stand-in Keystone for the middleware's failure modes (the real one is exercised by the
/// end-to-end suite): issues service tokens, validates a few known user tokens, counts calls.
mod fake_keystone {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use serde_json::json;

    #[derive(Default)]
    pub struct Counts {
        pub issued: AtomicUsize,
        pub validated: AtomicUsize,
        /// Answer 503 to everything (a connection kept alive may outlive the listener).
        pub down: std::sync::atomic::AtomicBool,
    }

    fn expiry(minutes: i64) -> String {
        (chrono::Utc::now() + chrono::TimeDelta::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    }

    pub async fn start() -> (String, Arc<Counts>, tokio::task::JoinHandle<()>) {
        let counts = Arc::new(Counts::default());
        let c1 = counts.clone();
        let c2 = counts.clone();
        let app = Router::new().route(
            "/v3/auth/tokens",
            get(move |h: HeaderMap| {
                let c = c2.clone();
                async move {
                    if c.down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    c.validated.fetch_add(1, Ordering::SeqCst);
                    let service = h.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // The first service token is "revoked" at once: the client must renew.
                    if service != "svc-2" {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let subject = h.get("x-subject-token").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let (project, roles, minutes) = match subject {
                        "member-token" => ("kp1", vec!["member", "reader"], 60),
                        "reader-token" => ("kp1", vec!["reader"], 60),
                        "stale-token" => ("kp1", vec!["member", "reader"], -1),
                        _ => return StatusCode::NOT_FOUND.into_response(),
                    };
                    let roles: Vec<_> = roles.iter().map(|r| json!({"id": r, "name": r})).collect();
                    axum::Json(json!({"token": {
                        "expires_at": expiry(minutes),
                        "roles": roles,
                        "project": {"id": project, "name": project, "domain": {"id": "default"}},
                        "user": {"id": format!("user-{subject}"), "name": "u", "domain": {"id": "default"}},
                    }}))
                    .into_response()
                }
            })
            .post(move || {
                let c = c1.clone();
                async move {
                    let n = c.issued.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut r: Response =
                        (StatusCode::CREATED, axum::Json(json!({"token": {"expires_at": expiry(60)}})))
                            .into_response();
                    r.headers_mut().insert("x-subject-token", format!("svc-{n}").parse().unwrap());
                    r
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v3", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, counts, task)
    }
}

#[tokio::test]
async fn keystone_tokens_are_validated_cached_and_survive_an_outage() {
    use std::sync::atomic::Ordering;
    let (url, counts, keystone) = fake_keystone::start().await;
    let ts = TestStore::new(octavia_db::Engine::Sqlite).await;
    let app = router(ApiContext {
        store: ts.store.clone(),
        settings: ApiSettings {
            auth_strategy: AuthStrategy::Keystone,
            keystone: octavia_api::auth::KeystoneSettings {
                auth_url: url.clone(),
                www_authenticate_uri: "https://keystone.example/v3".into(),
                password: "secret".into(),
                http_connect_timeout: Duration::from_secs(2),
                http_request_timeout: Duration::from_secs(3),
                ..Default::default()
            },
            ..Default::default()
        },
        metrics_render: None,
        network: None,
    })
    .unwrap();
    let call =
        |token: Option<&'static str>, method: Method, path: &'static str, body: Option<Value>| {
            let app = app.clone();
            async move {
                let mut b = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "api.test")
                    // Headers noauth would trust are ignored under Keystone.
                    .header("x-project-id", "spoofed")
                    .header("x-roles", "admin");
                if let Some(t) = token {
                    b = b.header("x-auth-token", t);
                }
                let req = match body {
                    Some(v) => b
                        .header("content-type", "application/json")
                        .body(Body::from(v.to_string())),
                    None => b.body(Body::empty()),
                }
                .unwrap();
                let resp = app.oneshot(req).await.unwrap();
                let status = resp.status();
                let headers = resp.headers().clone();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (
                    status,
                    headers,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                )
            }
        };
    // The version document is open; everything else needs a token.
    assert_eq!(call(None, Method::GET, "/", None).await.0, StatusCode::OK);
    let (status, headers, body) = call(None, Method::GET, "/v2/lbaas/loadbalancers", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Keystone uri=\"https://keystone.example/v3\""
    );
    assert_eq!(body["faultcode"], "Client", "{body}");
    // An unknown token: 401, and asked once however often it is retried.
    for _ in 0..3 {
        let (status, headers, _) =
            call(Some("forged"), Method::GET, "/v2/lbaas/loadbalancers", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key("www-authenticate"));
    }
    // The first service token was refused and renewed: two issued.
    assert_eq!(counts.issued.load(Ordering::SeqCst), 2);
    let validations = counts.validated.load(Ordering::SeqCst);
    assert_eq!(
        validations, 2,
        "one refusal of the old service token, one answer"
    );
    // A member's token: its project, not the spoofed header; validated once for many calls.
    let (status, _, body) = call(
        Some("member-token"),
        Method::POST,
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["loadbalancer"]["project_id"], "kp1");
    for _ in 0..5 {
        let (status, _, body) = call(
            Some("member-token"),
            Method::GET,
            "/v2/lbaas/loadbalancers",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["loadbalancers"].as_array().unwrap().len(), 1);
    }
    assert_eq!(counts.validated.load(Ordering::SeqCst), validations + 1);
    // The reader reads but does not write; the spoofed admin role counts for nothing.
    let (status, _, _) = call(
        Some("reader-token"),
        Method::GET,
        "/v2/lbaas/loadbalancers",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        Some("reader-token"),
        Method::GET,
        "/v2/octavia/amphorae",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token past its expiry is never cached.
    let before = counts.validated.load(Ordering::SeqCst);
    for _ in 0..2 {
        call(
            Some("stale-token"),
            Method::GET,
            "/v2/lbaas/loadbalancers",
            None,
        )
        .await;
    }
    assert_eq!(counts.validated.load(Ordering::SeqCst), before + 2);
    // Keystone goes away: cached tokens keep working, a new one gets 503 at once.
    counts.down.store(true, Ordering::SeqCst);
    keystone.abort();
    let _ = keystone.await;
    let (status, _, _) = call(
        Some("member-token"),
        Method::GET,
        "/v2/lbaas/loadbalancers",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (status, _, body) = call(
        Some("never-seen"),
        Method::GET,
        "/v2/lbaas/loadbalancers",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["faultcode"], "Server");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );
}

/// A single-call create body: listener `http` (port 80) with pool `web` as its default pool
/// (named; the whole pool is in `pools`, with two members and an HTTP monitor) and an L7
/// policy sending `/api` paths to pool `api`; listener `alt` (port 81) with pool `api` as its
/// default pool, given whole inline (one member, no monitor).
fn graph_body(name: &str) -> Value {
    json!({"loadbalancer": {
        "name": name,
        "vip_subnet_id": SUBNET,
        "listeners": [
            {"name": "http", "protocol": "HTTP", "protocol_port": 80,
             "default_pool": {"name": "web"},
             "l7policies": [{"name": "to-api", "action": "REDIRECT_TO_POOL",
                             "redirect_pool": {"name": "api"},
                             "rules": [
                                 {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"},
                                 {"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-Api", "value": "1"}
                             ]}]},
            {"name": "alt", "protocol": "HTTP", "protocol_port": 81,
             "default_pool": {"name": "api", "protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS",
                              "members": [{"address": "10.0.0.3", "protocol_port": 8080}]}}
        ],
        "pools": [
            {"name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
             "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                               "url_path": "/health"},
             "members": [{"address": "10.0.0.1", "protocol_port": 80},
                         {"address": "10.0.0.2", "protocol_port": 80, "weight": 5}]}
        ]
    }})
}

fn named<'a>(items: &'a Value, name: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no '{name}' in {items}"))
}

fn ids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

impl Api {
    /// The provisioning status of every object of a single-call tree `lb` (the 201 body's
    /// `loadbalancer`), as the API shows them now, with the URL of each.
    async fn tree_statuses(&self, lb: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (url, key) in tree_objects(lb) {
            let r = self.call(Method::GET, &url, None).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
            let status = r.body[key]["provisioning_status"]
                .as_str()
                .unwrap_or_default();
            out.push((url, status.to_string()));
        }
        out
    }
}

/// The URL and envelope key of every object of a single-call tree `lb` (the 201 body's
/// `loadbalancer`), the load balancer first.
fn tree_objects(lb: &Value) -> Vec<(String, &'static str)> {
    let lbaas = "/v2/lbaas";
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    let mut out = vec![(format!("{lbaas}/loadbalancers/{}", id(lb)), "loadbalancer")];
    for l in lb["listeners"].as_array().unwrap() {
        out.push((format!("{lbaas}/listeners/{}", id(l)), "listener"));
        for p in l["l7policies"].as_array().unwrap() {
            let policy = format!("{lbaas}/l7policies/{}", id(p));
            for r in ids_of(&p["rules"]) {
                out.push((format!("{policy}/rules/{r}"), "rule"));
            }
            out.push((policy, "l7policy"));
        }
    }
    for p in lb["pools"].as_array().unwrap() {
        let pool = format!("{lbaas}/pools/{}", id(p));
        for m in ids_of(&p["members"]) {
            out.push((format!("{pool}/members/{m}"), "member"));
        }
        if let Some(h) = p["healthmonitor"]["id"].as_str() {
            out.push((format!("{lbaas}/healthmonitors/{h}"), "healthmonitor"));
        }
        out.push((pool, "pool"));
    }
    out
}

#[tokio::test]
async fn single_call_create_builds_the_whole_tree_with_one_job() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let jobs_before = api.job_total().await;
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(graph_body("graph")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(
            api.job_total().await,
            jobs_before + 1,
            "one job for the tree"
        );
        let lb = &r.body["loadbalancer"];

        // The full graph: listeners and pools as whole objects, their children too.
        assert_eq!(lb["name"], "graph");
        assert_eq!(lb["provisioning_status"], "PENDING_CREATE");
        let (web, api_pool) = (named(&lb["pools"], "web"), named(&lb["pools"], "api"));
        let (http, alt) = (
            named(&lb["listeners"], "http"),
            named(&lb["listeners"], "alt"),
        );
        assert_eq!(lb["pools"].as_array().unwrap().len(), 2);
        assert_eq!(lb["listeners"].as_array().unwrap().len(), 2);
        assert_eq!(http["default_pool_id"], web["id"]);
        assert_eq!(alt["default_pool_id"], api_pool["id"]);
        assert_eq!(http["protocol_port"], 80);
        assert!(http.get("loadbalancers").is_none(), "{http}");
        let policy = &http["l7policies"][0];
        assert_eq!(policy["name"], "to-api");
        assert_eq!(policy["redirect_pool_id"], api_pool["id"]);
        assert_eq!(policy["listener_id"], http["id"]);
        assert_eq!(policy["position"], 1);
        assert_eq!(policy["rules"].as_array().unwrap().len(), 2);
        assert_eq!(policy["rules"][1]["key"], "X-Api");
        assert_eq!(alt["l7policies"], json!([]));
        assert_eq!(web["healthmonitor"]["url_path"], "/health");
        assert!(web.get("healthmonitor_id").is_none(), "{web}");
        assert!(api_pool.get("healthmonitor").is_none(), "{api_pool}");
        assert_eq!(api_pool["lb_algorithm"], "LEAST_CONNECTIONS");
        assert_eq!(web["members"].as_array().unwrap().len(), 2);
        let mut addresses: Vec<&str> = web["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["address"].as_str().unwrap())
            .collect();
        addresses.sort();
        assert_eq!(addresses, ["10.0.0.1", "10.0.0.2"]);
        // Members of the monitored pool wait OFFLINE for their first check; the others
        // have no monitor.
        for m in web["members"].as_array().unwrap() {
            assert_eq!(m["operating_status"], "OFFLINE", "{m}");
        }
        assert_eq!(api_pool["members"][0]["operating_status"], "NO_MONITOR");
        let mut listeners_of_api: Vec<String> = ids_of(&api_pool["listeners"]);
        listeners_of_api.sort();
        let mut both = vec![
            http["id"].as_str().unwrap().to_string(),
            alt["id"].as_str().unwrap().to_string(),
        ];
        both.sort();
        assert_eq!(
            listeners_of_api, both,
            "default pool of one, redirect target of the other"
        );
        let before = api.tree_statuses(lb).await;
        assert_eq!(before.len(), 12, "{before:?}");
        for (what, status) in &before {
            assert_eq!(status, "PENDING_CREATE", "{what}");
        }
        // The load balancer is locked while its job runs.
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/listeners",
                Some(
                    json!({"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP",
                                         "protocol_port": 90}}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        // One job settles everything.
        let done = api.run_jobs(Failpoints::none()).await;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0.spec.kind(), "create_load_balancer");
        assert_eq!(done[0].1, FlowOutcome::Succeeded);
        for (what, status) in api.tree_statuses(lb).await {
            assert_eq!(status, "ACTIVE", "{what}");
        }
        let lb_id = lb["id"].as_str().unwrap();
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/loadbalancers/{lb_id}/status"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let tree = &r.body["statuses"]["loadbalancer"];
        assert_eq!(tree["provisioning_status"], "ACTIVE");
        let http_node = named(&tree["listeners"], "http");
        let mut pools: Vec<&str> = http_node["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        pools.sort();
        assert_eq!(pools, ["api", "web"], "{tree}");
        let alt_node = named(&tree["listeners"], "alt");
        assert_eq!(alt_node["pools"].as_array().unwrap().len(), 1);
        let web_node = named(&http_node["pools"], "web");
        assert_eq!(web_node["provisioning_status"], "ACTIVE");
        assert_eq!(web_node["health_monitor"]["provisioning_status"], "ACTIVE");
        assert_eq!(web_node["health_monitor"]["operating_status"], "ONLINE");
        let members = web_node["members"].as_array().unwrap();
        assert_eq!(members.len(), 2);
        for m in members {
            assert_eq!(m["provisioning_status"], "ACTIVE", "{m}");
            assert_eq!(m["operating_status"], "OFFLINE", "{m}");
        }
        let api_node = named(&alt_node["pools"], "api");
        assert_eq!(api_node["members"][0]["operating_status"], "NO_MONITOR");
        assert!(api_node["health_monitor"].is_null(), "{api_node}");

        // A cascade delete takes the whole tree and the amphora away, with one job.
        let amphorae = format!("/v2/octavia/amphorae?loadbalancer_id={lb_id}");
        let admin = |path: String| {
            let api = &api;
            async move { api.call_as("ops", "admin", Method::GET, &path, None).await }
        };
        let r = admin(amphorae.clone()).await;
        assert_eq!(
            r.body["amphorae"].as_array().map(Vec::len),
            Some(1),
            "{}",
            r.body
        );
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        for (what, status) in api.tree_statuses(lb).await {
            assert_eq!(status, "PENDING_DELETE", "{what}");
        }
        let done = api.run_jobs(Failpoints::none()).await;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0.spec.kind(), "delete_load_balancer");
        assert_eq!(done[0].1, FlowOutcome::Succeeded);
        for (url, _) in tree_objects(lb) {
            let r = api.call(Method::GET, &url, None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{url}: {}", r.body);
        }
        let r = admin(amphorae).await;
        assert_eq!(r.body["amphorae"], json!([]), "{}", r.body);

        // A plain create still answers with ids only.
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "listeners": [], "pools": []}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["loadbalancer"]["listeners"], json!([]));
        assert_eq!(r.body["loadbalancer"]["pools"], json!([]));
        api.settle_all().await;
    }
}

#[tokio::test]
async fn single_call_create_refusals_store_nothing() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let before = api.snapshot().await;
        let set = |path: &str, v: Value| {
            let mut b = graph_body("refused");
            let mut at = &mut b["loadbalancer"];
            let parts: Vec<&str> = path.split('/').collect();
            for p in &parts[..parts.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            let last = parts[parts.len() - 1];
            match (last.parse::<usize>(), at.as_array_mut()) {
                (Ok(i), Some(a)) if i == a.len() => a.push(v),
                (Ok(i), _) => at[i] = v,
                (Err(_), _) => at[last] = v,
            }
            b
        };
        let web = || graph_body("x")["loadbalancer"]["pools"][0].clone();
        let duplicate_member = json!({"address": "10.0.0.1", "protocol_port": 80});
        // (body, status, text the fault must contain)
        let cases: Vec<(Value, StatusCode, &str)> = vec![
            (
                set("listeners/0/default_pool", json!({"name": "nowhere"})),
                StatusCode::BAD_REQUEST,
                "Pool 'nowhere' was referenced but no full definition was found.",
            ),
            (
                set("pools/1", web()),
                StatusCode::BAD_REQUEST,
                "Pool names must be unique",
            ),
            (
                set("pools/0/protocol", Value::Null),
                StatusCode::BAD_REQUEST,
                "Pool definition for 'web' missing required attribute: protocol",
            ),
            (
                set("listeners/1/default_pool", json!({"name": "api"})),
                StatusCode::BAD_REQUEST,
                "Pool 'api' was referenced",
            ),
            (
                set(
                    "listeners/0/default_pool",
                    json!({"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
                ),
                StatusCode::BAD_REQUEST,
                "Pools must be named",
            ),
            (
                set("listeners/1/default_pool/protocol", json!("TCP")),
                StatusCode::BAD_REQUEST,
                "The pool protocol 'TCP' is invalid while the listener protocol is 'HTTP'",
            ),
            (
                set("listeners/1/protocol", json!("UDP")),
                StatusCode::BAD_REQUEST,
                "listener protocol is 'UDP'",
            ),
            (
                set("listeners/0/protocol", json!("TCP")),
                StatusCode::NOT_IMPLEMENTED,
                "TCP protocol listeners do not support L7 policies",
            ),
            (
                set("pools/0/lb_algorithm", json!("SOURCE_IP_PORT")),
                StatusCode::NOT_IMPLEMENTED,
                "SOURCE_IP_PORT",
            ),
            (
                set("listeners/1/protocol_port", json!(80)),
                StatusCode::CONFLICT,
                "protocol_port 80",
            ),
            (
                set("pools/0/members/1", duplicate_member),
                StatusCode::CONFLICT,
                "already using ip 10.0.0.1",
            ),
            (
                set("pools/0/members/1/address", json!("169.254.169.254")),
                StatusCode::BAD_REQUEST,
                "pools[0].members[1].address",
            ),
            (
                set(
                    "listeners/0/l7policies/0/rules/0/value",
                    json!("not a path"),
                ),
                StatusCode::BAD_REQUEST,
                "rules[0].value",
            ),
            (
                set(
                    "listeners/0/l7policies/0/listener_id",
                    json!("00000000-0000-0000-0000-000000000000"),
                ),
                StatusCode::BAD_REQUEST,
                "l7policies[0].listener_id",
            ),
            (
                set("pools/0/healthmonitor/type", json!("UDP-CONNECT")),
                StatusCode::BAD_REQUEST,
                "pools[0].healthmonitor.url_path",
            ),
        ];
        for (body, status, needle) in cases {
            let r = api
                .call(Method::POST, "/v2/lbaas/loadbalancers", Some(body.clone()))
                .await;
            assert_eq!(r.status, status, "{body}: {}", r.body);
            fault_names(&r, needle);
            assert_eq!(api.snapshot().await, before, "{body} changed the store");
        }

        // Quotas are checked for the whole tree at once: the graph holds 2 pools,
        // 2 listeners, 3 members, 1 monitor, 1 L7 policy and 2 rules.
        for (quota, resource) in [
            (json!({"pool": 1}), "pool"),
            (json!({"listener": 1}), "listener"),
            (json!({"member": 2}), "member"),
            (json!({"healthmonitor": 0}), "health_monitor"),
            (json!({"loadbalancer": 0}), "load_balancer"),
            (json!({"l7policy": 0}), "l7policy"),
            (json!({"l7rule": 1}), "l7rule"),
        ] {
            let path = "/v2/lbaas/quotas/p1";
            let r = api
                .call_as(
                    "ops",
                    "admin",
                    Method::PUT,
                    path,
                    Some(json!({"quota": quota})),
                )
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            let r = api
                .call(
                    Method::POST,
                    "/v2/lbaas/loadbalancers",
                    Some(graph_body("over")),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{quota}: {}", r.body);
            fault_names(&r, &format!("Quota has been met for resources: {resource}"));
            assert_eq!(api.snapshot().await, before, "{quota} changed the store");
            let r = api
                .call_as("ops", "admin", Method::DELETE, path, None)
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        }
        // A quota the tree fits in exactly lets it through.
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::PUT,
                "/v2/lbaas/quotas/p1",
                Some(
                    json!({"quota": {"l7policy": 1, "l7rule": 2, "pool": 2, "member": 3,
                                      "listener": 2, "healthmonitor": 1, "loadbalancer": 1}}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(graph_body("fits")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        api.settle_all().await;
    }
}

#[tokio::test]
async fn single_call_create_whose_job_fails_leaves_the_tree_in_error() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(graph_body("doomed")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let lb = &r.body["loadbalancer"];
        let fp = Failpoints::parse("create_load_balancer/update_amphorae=error").unwrap();
        let done = api.run_jobs(fp).await;
        assert_eq!(done.len(), 1);
        assert!(
            matches!(&done[0].1, FlowOutcome::Reverted { step, .. } if step == "update_amphorae"),
            "{:?}",
            done[0].1
        );
        let statuses = api.tree_statuses(lb).await;
        assert_eq!(statuses.len(), 12);
        for (what, status) in statuses {
            assert_eq!(status, "ERROR", "{what}");
        }
        // A tree in ERROR is deleted with its load balancer.
        let lb_id = lb["id"].as_str().unwrap();
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        api.settle_all().await;
        let r = api
            .call(
                Method::GET,
                &format!("/v2/lbaas/loadbalancers/{lb_id}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
}

#[tokio::test]
async fn amphora_stats_list_each_listener_the_amphora_reported() {
    use octavia_db::HeartbeatRecord;
    use octavia_model::health::HealthReport;
    use octavia_model::{AmphoraId, ListenerId, ListenerStatistics};

    for engine in engines() {
        let api = Api::new(engine).await;
        let r = api
            .call(
                Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(graph_body("counted")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let lb = r.body["loadbalancer"].clone();
        let lb_id = lb["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::GET,
                &format!("/v2/octavia/amphorae?loadbalancer_id={lb_id}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let amp = r.body["amphorae"][0]["id"]
            .as_str()
            .expect("amphora")
            .to_string();
        let stats_path = format!("/v2/octavia/amphorae/{amp}/stats");

        // No heartbeat has brought statistics yet: 404, as Octavia.
        let r = api
            .call_as("ops", "admin", Method::GET, &stats_path, None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        fault_names(&r, &format!("Amphora stats for {amp} not found."));

        // Two heartbeats with counters (deltas, v3) for both listeners.
        let listeners: Vec<ListenerId> = ids_of(&lb["listeners"])
            .iter()
            .map(|l| l.parse().unwrap())
            .collect();
        let amphora_id: AmphoraId = amp.parse().unwrap();
        let beat = |n: i64| HeartbeatRecord {
            amphora_id,
            received_at: octavia_model::now(),
            refresh_health: true,
            report: HealthReport {
                listeners: listeners.iter().map(|l| (*l, "OPEN".to_string())).collect(),
                reported_listener_count: listeners.len(),
                ..Default::default()
            },
            stats: listeners
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let i = i as i64 + 1;
                    (
                        *l,
                        ListenerStatistics {
                            bytes_in: 100 * i * n,
                            bytes_out: 200 * i * n,
                            active_connections: i * n,
                            total_connections: 10 * i * n,
                            request_errors: i,
                        },
                    )
                })
                .collect(),
            stats_are_deltas: true,
            vip_held: None,
            heartbeat_key_id: None,
        };
        api.store().record_heartbeats(&[beat(1)]).await.unwrap();
        api.store().record_heartbeats(&[beat(2)]).await.unwrap();

        let r = api
            .call_as("ops", "admin", Method::GET, &stats_path, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut rows = r.body["amphora_stats"].as_array().unwrap().clone();
        rows.sort_by_key(|row| row["bytes_in"].as_i64());
        let mut want = Vec::new();
        for (i, l) in listeners.iter().enumerate() {
            let i = i as i64 + 1;
            // Deltas add up; active connections are the latest value.
            want.push(json!({
                "id": amp, "loadbalancer_id": lb_id, "listener_id": l.to_string(),
                "active_connections": 2 * i, "bytes_in": 300 * i, "bytes_out": 600 * i,
                "request_errors": 2 * i, "total_connections": 30 * i
            }));
        }
        assert_eq!(rows, want);

        // Admin only; an unknown amphora is a 404 too.
        let r = api.call(Method::GET, &stats_path, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let unknown = "/v2/octavia/amphorae/00000000-0000-0000-0000-000000000000/stats";
        let r = api
            .call_as("ops", "admin", Method::GET, unknown, None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        let r = api
            .call_as(
                "ops",
                "admin",
                Method::GET,
                "/v2/octavia/amphorae/bogus/stats",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
}

// ------------------------------------------------------------------ flavors and zones

impl Api {
    /// A call as the operator (admin role).
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as("admin", "admin", method, path, body).await
    }

    /// POST as the operator (201 expected); the new record under `key`.
    async fn admin_create(&self, path: &str, key: &str, body: Value) -> Value {
        let r = self
            .admin(Method::POST, path, Some(json!({ key: body })))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.body);
        r.body[key].clone()
    }

    /// POST a load balancer as the tenant with `extra` fields; the reply.
    async fn post_lb(&self, extra: Value) -> Reply {
        let mut lb = json!({"name": "lb", "vip_subnet_id": SUBNET});
        if let (Some(lb), Some(extra)) = (lb.as_object_mut(), extra.as_object()) {
            lb.extend(extra.clone());
        }
        self.call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({ "loadbalancer": lb })),
        )
        .await
    }

    /// The amphorae of load balancer `lb` as the admin API shows them, by role.
    async fn amphorae_of(&self, lb: &str) -> Vec<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/v2/octavia/amphorae?loadbalancer_id={lb}&sort=role"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["amphorae"].as_array().expect("amphorae").clone()
    }

    /// DELETE the load balancer and run its job.
    async fn delete_lb(&self, lb: &str) {
        let r = self
            .call(
                Method::DELETE,
                &format!("/v2/lbaas/loadbalancers/{lb}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        self.settle_all().await;
    }
}

fn faultstring(r: &Reply) -> &str {
    r.body["faultstring"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn flavors_and_flavor_profiles() {
    const PROFILES: &str = "/v2/lbaas/flavorprofiles";
    const FLAVORS: &str = "/v2/lbaas/flavors";
    let data = r#"{"loadbalancer_topology": "ACTIVE_STANDBY", "compute_flavor": "m1.amp", "amp_image_tag": "gold"}"#;
    for engine in engines() {
        let api = Api::new(engine).await;

        // Profiles: admin only, the settings checked against the provider.
        let body = json!({"flavorprofile": {"name": "ha", "provider_name": "amphora", "flavor_data": data}});
        let r = api.call(Method::POST, PROFILES, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        for (fields, status, fault) in [
            (
                json!({"name": "x", "provider_name": "amphora", "flavor_data": "{bad"}),
                StatusCode::BAD_REQUEST,
                "{bad is not a valid option for flavor_data".to_string(),
            ),
            (
                json!({"name": "x", "provider_name": "amphora", "flavor_data": r#"{"sriov_vip": true}"#}),
                StatusCode::NOT_IMPLEMENTED,
                "Provider 'amphora' does not support a requested option: Additional \
                 properties are not allowed ('sriov_vip' was unexpected)"
                    .to_string(),
            ),
            (
                json!({"name": "x", "provider_name": "amphora",
                       "flavor_data": r#"{"loadbalancer_topology": "TRIPLE"}"#}),
                StatusCode::NOT_IMPLEMENTED,
                "Provider 'amphora' does not support a requested option: loadbalancer_topology \
                 'TRIPLE' is not one of ['SINGLE', 'ACTIVE_STANDBY']"
                    .to_string(),
            ),
            (
                json!({"name": "x", "provider_name": "f5", "flavor_data": "{}"}),
                StatusCode::BAD_REQUEST,
                "Provider 'f5' is not enabled.".to_string(),
            ),
            (
                json!({"provider_name": "amphora", "flavor_data": "{}"}),
                StatusCode::BAD_REQUEST,
                "Invalid input for field/attribute name. Value: 'None'. Mandatory field missing."
                    .to_string(),
            ),
            (
                json!({"name": "x", "provider_name": "amphora", "flavor_data": "x".repeat(4097)}),
                StatusCode::BAD_REQUEST,
                "Invalid input for field/attribute flavor_data.".to_string(),
            ),
        ] {
            let r = api
                .admin(
                    Method::POST,
                    PROFILES,
                    Some(json!({ "flavorprofile": fields })),
                )
                .await;
            assert_eq!(r.status, status, "{fields}: {}", r.body);
            assert!(faultstring(&r).starts_with(&fault), "{}", r.body);
        }
        let profile = api
            .admin_create(PROFILES, "flavorprofile", body["flavorprofile"].clone())
            .await;
        let pid = profile["id"].as_str().unwrap().to_string();
        assert_eq!(profile["name"], "ha");
        assert_eq!(profile["provider_name"], "amphora");
        assert_eq!(profile["flavor_data"], data);
        let r = api.admin(Method::GET, "/v2/flavorprofiles", None).await;
        assert_eq!(r.body["flavorprofiles"][0]["id"], pid.as_str());
        assert!(r.body["flavorprofile_links"].is_array(), "{}", r.body);
        let r = api.call(Method::GET, PROFILES, None).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "profiles are the operator's"
        );
        let r = api
            .admin(
                Method::GET,
                &format!("/v2.0/lbaas/flavorprofiles/{pid}.json?fields=name"),
                None,
            )
            .await;
        assert_eq!(r.body, json!({"flavorprofile": {"name": "ha"}}));
        for missing in [NOWHERE, "not-a-uuid"] {
            let r = api
                .admin(Method::GET, &format!("{PROFILES}/{missing}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND);
            assert_eq!(
                faultstring(&r),
                format!("Flavor Profile {missing} not found.")
            );
        }

        // Flavors: written by the operator, read by tenants.
        let r = api
            .admin(
                Method::POST,
                FLAVORS,
                Some(json!({"flavor": {"name": "gold", "flavor_profile_id": NOWHERE}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(
            faultstring(&r),
            format!("Flavor Profile {NOWHERE} not found.")
        );
        let flavor = api
            .admin_create(
                FLAVORS,
                "flavor",
                json!({"name": "gold", "flavor_profile_id": pid}),
            )
            .await;
        let fid = flavor["id"].as_str().unwrap().to_string();
        assert_eq!(
            flavor,
            json!({"id": fid, "name": "gold", "description": "", "enabled": true, "flavor_profile_id": pid})
        );
        let r = api
            .admin(
                Method::POST,
                FLAVORS,
                Some(json!({"flavor": {"name": "gold", "flavor_profile_id": pid}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(faultstring(&r), "A flavor of gold already exists.");
        let r = api
            .call(
                Method::POST,
                FLAVORS,
                Some(json!({"flavor": {"name": "x", "flavor_profile_id": pid}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = api.call(Method::GET, FLAVORS, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["flavors"][0]["id"], fid.as_str());
        assert!(r.body["flavors_links"].is_array());
        let r = api
            .call(Method::GET, &format!("{FLAVORS}?project_id=p1"), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "flavors belong to no project"
        );
        let r = api
            .call(Method::GET, &format!("{FLAVORS}/{NOWHERE}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(faultstring(&r), format!("Flavor {NOWHERE} not found."));
        let r = api
            .admin(
                Method::PUT,
                &format!("{FLAVORS}/{fid}"),
                Some(json!({"flavor": {"description": "HA", "enabled": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            (
                &r.body["flavor"]["description"],
                &r.body["flavor"]["enabled"]
            ),
            (&json!("HA"), &json!(false))
        );

        // A profile in use keeps its settings and stays.
        let r = api
            .admin(
                Method::PUT,
                &format!("{PROFILES}/{pid}"),
                Some(json!({"flavorprofile": {"flavor_data": "{}"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(
            faultstring(&r),
            format!("Flavor profile {pid} is in use and cannot be modified.")
        );
        let r = api
            .admin(
                Method::PUT,
                &format!("{PROFILES}/{pid}"),
                Some(json!({"flavorprofile": {"name": "ha2"}})),
            )
            .await;
        assert_eq!(
            (r.status, &r.body["flavorprofile"]["name"]),
            (StatusCode::OK, &json!("ha2"))
        );
        let r = api
            .admin(Method::DELETE, &format!("{PROFILES}/{pid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);

        // A load balancer of the flavor: refused while it is disabled, unknown, or of
        // another provider; else its provider and topology come from the flavor.
        let before = api.snapshot().await;
        for (extra, fault) in [
            (
                json!({"flavor_id": fid}),
                format!("The selected flavor is not allowed in this deployment: {fid}"),
            ),
            (
                json!({"flavor_id": NOWHERE}),
                "Validation failure: Invalid flavor_id.".to_string(),
            ),
        ] {
            let r = api.post_lb(extra).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
            assert_eq!(faultstring(&r), fault);
        }
        let r = api
            .admin(
                Method::PUT,
                &format!("{FLAVORS}/{fid}"),
                Some(json!({"flavor": {"enabled": true}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = api
            .post_lb(json!({"flavor_id": fid, "provider": "octavia"}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(
            faultstring(&r),
            format!("Flavor '{fid}' is not compatible with provider 'octavia'")
        );
        assert_eq!(
            api.snapshot().await,
            before,
            "refused creates change nothing"
        );

        let r = api.post_lb(json!({"flavor_id": fid})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let lb = r.body["loadbalancer"]["id"].as_str().unwrap().to_string();
        assert_eq!(r.body["loadbalancer"]["flavor_id"], fid.as_str());
        assert_eq!(r.body["loadbalancer"]["provider"], "amphora");
        api.settle_all().await;
        let amps = api.amphorae_of(&lb).await;
        let roles: Vec<&str> = amps
            .iter()
            .map(|a| a["role"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(roles, ["BACKUP", "MASTER"], "the flavor's topology");
        for a in &amps {
            assert_eq!(a["compute_flavor"], "m1.amp", "{a}");
        }
        // A load balancer without a flavor: the configuration's topology and flavor.
        let r = api.post_lb(json!({})).await;
        let plain = r.body["loadbalancer"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let amps = api.amphorae_of(&plain).await;
        assert_eq!(amps.len(), 1);
        assert_eq!(
            (&amps[0]["role"], &amps[0]["compute_flavor"]),
            (&json!("STANDALONE"), &Value::Null)
        );

        // In use by a live load balancer: the flavor stays; once it is deleted, it goes.
        let r = api
            .admin(Method::DELETE, &format!("{FLAVORS}/{fid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            faultstring(&r),
            format!("Flavor {fid} is in use and cannot be modified.")
        );
        api.delete_lb(&lb).await;
        let r = api
            .call(Method::DELETE, &format!("{FLAVORS}/{fid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = api
            .admin(Method::DELETE, &format!("{FLAVORS}/{fid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .admin(Method::DELETE, &format!("{FLAVORS}/{fid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = api
            .admin(Method::DELETE, &format!("{PROFILES}/{pid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = api
            .admin(Method::GET, &format!("{PROFILES}/{pid}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn availability_zones_and_their_profiles() {
    const PROFILES: &str = "/v2/lbaas/availabilityzoneprofiles";
    const ZONES: &str = "/v2/lbaas/availabilityzones";
    for engine in engines() {
        let api = Api::with_network(engine, Arc::new(KnownNetworks)).await;
        let profile = |data: String| json!({"name": "zp", "provider_name": "amphora", "availability_zone_data": data});
        for (data, status, fault) in [
            ("nope", StatusCode::BAD_REQUEST, "nope is not a valid option for availability_zone_data"),
            (r#"{"volume_zone": "v"}"#, StatusCode::NOT_IMPLEMENTED,
             "Provider 'amphora' does not support a requested option: Additional properties are not allowed ('volume_zone' was unexpected)"),
            (r#"{"valid_vip_networks": "x"}"#, StatusCode::NOT_IMPLEMENTED,
             "Provider 'amphora' does not support a requested option: valid_vip_networks 'x' is not of type 'array'"),
        ] {
            let r = api
                .admin(Method::POST, PROFILES, Some(json!({"availability_zone_profile": profile(data.into())})))
                .await;
            assert_eq!(r.status, status, "{data}: {}", r.body);
            assert_eq!(faultstring(&r), fault);
        }
        let r = api
            .call(
                Method::POST,
                PROFILES,
                Some(json!({"availability_zone_profile": profile("{}".into())})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let east = api
            .admin_create(
                PROFILES,
                "availability_zone_profile",
                profile(format!(
                    r#"{{"compute_zone": "east", "valid_vip_networks": ["{NET_A}"]}}"#
                )),
            )
            .await;
        let east_id = east["id"].as_str().unwrap().to_string();
        let west = api
            .admin_create(
                PROFILES,
                "availability_zone_profile",
                profile(format!(
                    r#"{{"compute_zone": "west", "valid_vip_networks": ["{NET_B}"]}}"#
                )),
            )
            .await;
        let west_id = west["id"].as_str().unwrap().to_string();
        let r = api.admin(Method::GET, PROFILES, None).await;
        assert_eq!(
            r.body["availability_zone_profiles"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert!(
            r.body["availability_zone_profile_links"].is_array(),
            "{}",
            r.body
        );

        // Zones: keyed by name.
        let az1 = api
            .admin_create(
                ZONES,
                "availability_zone",
                json!({"name": "az1", "availability_zone_profile_id": east_id}),
            )
            .await;
        assert_eq!(
            az1,
            json!({"name": "az1", "description": "", "enabled": true, "availability_zone_profile_id": east_id})
        );
        api.admin_create(
            ZONES,
            "availability_zone",
            json!({"name": "az-b", "availability_zone_profile_id": west_id}),
        )
        .await;
        let r = api
            .admin(Method::POST, ZONES, Some(json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": east_id}})))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            faultstring(&r),
            "A availability zone of az1 already exists."
        );
        let r = api.call(Method::GET, &format!("{ZONES}/az1"), None).await;
        assert_eq!(
            (r.status, &r.body["availability_zone"]["name"]),
            (StatusCode::OK, &json!("az1"))
        );
        let r = api
            .call(Method::GET, &format!("{ZONES}/nowhere"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(faultstring(&r), "Availability Zone nowhere not found.");
        let r = api
            .call(Method::GET, &format!("{ZONES}?limit=1"), None)
            .await;
        assert_eq!(
            r.body["availability_zones"][0]["name"], "az-b",
            "{}",
            r.body
        );
        let next = r.body["availability_zones_links"][0]["href"]
            .as_str()
            .unwrap_or_default();
        assert!(next.contains("marker=az-b"), "{next}");
        let r = api
            .call(Method::GET, &format!("{ZONES}?limit=1&marker=az-b"), None)
            .await;
        assert_eq!(r.body["availability_zones"][0]["name"], "az1", "{}", r.body);
        let r = api
            .call(
                Method::PUT,
                &format!("{ZONES}/az1"),
                Some(json!({"availability_zone": {"enabled": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // A load balancer in a zone: the zone must exist, be enabled, and allow the VIP's
        // network (SUBNET is on NET_A).
        let r = api
            .admin(
                Method::PUT,
                &format!("{ZONES}/az1"),
                Some(json!({"availability_zone": {"enabled": false, "description": "east"}})),
            )
            .await;
        assert_eq!(
            (r.status, &r.body["availability_zone"]["description"]),
            (StatusCode::OK, &json!("east"))
        );
        let before = api.snapshot().await;
        for (zone, fault) in [
            ("az1", "The selected availability_zone is not allowed in this deployment: az1"),
            ("nowhere", "Validation failure: Invalid availability zone."),
            ("az-b", "Validation failure: Supplied VIP network_id is not allowed by the configuration of this deployment."),
        ] {
            let r = api.post_lb(json!({"availability_zone": zone})).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{zone}: {}", r.body);
            assert_eq!(faultstring(&r), fault);
        }
        assert_eq!(
            api.snapshot().await,
            before,
            "refused creates change nothing"
        );
        api.admin(
            Method::PUT,
            &format!("{ZONES}/az1"),
            Some(json!({"availability_zone": {"enabled": true}})),
        )
        .await;
        let r = api.post_lb(json!({"availability_zone": "az1"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["loadbalancer"]["availability_zone"], "az1");
        let lb = r.body["loadbalancer"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let amps = api.amphorae_of(&lb).await;
        assert_eq!(amps.len(), 1);
        assert_eq!(amps[0]["cached_zone"], "east", "the zone's compute_zone");

        // In use: the zone stays, its profile keeps its settings.
        let r = api
            .admin(Method::DELETE, &format!("{ZONES}/az1"), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            faultstring(&r),
            "Availability Zone az1 is in use and cannot be modified."
        );
        let r = api
            .admin(
                Method::PUT,
                &format!("{PROFILES}/{east_id}"),
                Some(json!({"availability_zone_profile": {"availability_zone_data": "{}"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            faultstring(&r),
            format!("Availability Zone Profile {east_id} is in use and cannot be modified.")
        );
        let r = api
            .admin(Method::DELETE, &format!("{PROFILES}/{east_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);

        api.delete_lb(&lb).await;
        for zone in ["az1", "az-b"] {
            let r = api
                .admin(Method::DELETE, &format!("{ZONES}/{zone}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        }
        let r = api.admin(Method::GET, &format!("{ZONES}/az1"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        for id in [&east_id, &west_id] {
            let r = api
                .admin(Method::DELETE, &format!("{PROFILES}/{id}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        }
    }
}

/// A single-call create goes through the same flavor checks as a plain one: the flavor's
/// topology builds the tree's amphorae, and a disabled flavor refuses the whole tree.
#[tokio::test]
async fn a_single_call_create_takes_its_flavor() {
    for engine in engines() {
        let api = Api::new(engine).await;
        let fp = api
            .admin_create(
                "/v2/lbaas/flavorprofiles",
                "flavorprofile",
                json!({"name": "ha", "provider_name": "amphora",
                       "flavor_data": r#"{"loadbalancer_topology": "ACTIVE_STANDBY"}"#}),
            )
            .await;
        let flavor = api
            .admin_create(
                "/v2/lbaas/flavors",
                "flavor",
                json!({"name": "ha", "flavor_profile_id": fp["id"]}),
            )
            .await;
        let tree = json!({"flavor_id": flavor["id"],
                          "listeners": [{"protocol": "HTTP", "protocol_port": 80}]});
        let r = api.post_lb(tree.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["loadbalancer"]["flavor_id"], flavor["id"]);
        assert_eq!(
            r.body["loadbalancer"]["listeners"].as_array().map(Vec::len),
            Some(1)
        );
        let lb = r.body["loadbalancer"]["id"].as_str().unwrap().to_string();
        api.settle_all().await;
        let amps = api.amphorae_of(&lb).await;
        let roles: Vec<&str> = amps
            .iter()
            .map(|a| a["role"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(roles, ["BACKUP", "MASTER"], "the flavor's topology");

        let fid = flavor["id"].as_str().unwrap();
        let r = api
            .admin(
                Method::PUT,
                &format!("/v2/lbaas/flavors/{fid}"),
                Some(json!({"flavor": {"enabled": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let before = api.snapshot().await;
        let r = api.post_lb(tree).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(
            faultstring(&r).contains("not allowed in this deployment"),
            "{}",
            r.body
        );
        assert_eq!(
            api.snapshot().await,
            before,
            "nothing of the tree is stored"
        );
    }
}

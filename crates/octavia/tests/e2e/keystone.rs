//! The all-in-one behind the run's real Keystone (scripts/test.sh starts it; see
//! `octavia_test_support::keystone`): tokens validated as the service user, Octavia's default
//! policy route by route with real tokens, and the real clients (the `openstack` CLI and
//! openstacksdk) finding the API through Keystone's catalog.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use octavia_test_support::eventually;
use octavia_test_support::keystone::{openstack_python, unique, Keystone};
use octavia_test_support::rbac::{self, Driver, Home, Persona};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{free_port, wait_api, Proc};

/// A subnet the noop network driver knows (any id is one of its subnets).
const SUBNET: &str = "7d5f0b8e-2a43-4d1c-9c6e-5b1f3e2a9d44";

/// An all-in-one with `auth_strategy = "keystone"` on loopback, noop drivers, SQLite.
struct Aio {
    base: String,
    proc: Proc,
    /// Holds `policy.yaml`, `[oslo_policy] policy_file`.
    dir: tempfile::TempDir,
}

impl Aio {
    async fn start(ks: &Keystone) -> Aio {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let service = ks.service_user();
        let config = format!(
            r#"[api_settings]
bind_host = "127.0.0.1"
bind_port = {port}
auth_strategy = "keystone"

[database]
connection = "sqlite://{db}/octavia.db"

[task_flow]
poll_interval = "50ms"

[oslo_policy]
policy_file = "{policy}"

[keystone_authtoken]
auth_url = "{v3}"
username = "{user}"
password = "{password}"
project_name = "{project}"
"#,
            db = dir.path().display(),
            policy = dir.path().join("policy.yaml").display(),
            v3 = ks.v3(),
            user = service.name,
            password = service.password,
            project = service.project,
        );
        // The operator's overrides: none yet (a file of comments, as oslo's sample generator
        // writes one).
        std::fs::write(
            dir.path().join("policy.yaml"),
            "# \"os_load-balancer_api:loadbalancer:post\": \"rule:load-balancer:write\"\n",
        )
        .unwrap();
        let path = dir.path().join("aio.toml");
        std::fs::write(&path, config).unwrap();
        let proc = Proc::start("all-in-one", env!("CARGO_BIN_EXE_octavia"), &path, &[]);
        let base = format!("http://127.0.0.1:{port}");
        wait_api(&base).await;
        Aio { base, proc, dir }
    }
}

/// One Keystone user per persona, in its home project (three projects in all), with a token.
struct People {
    projects: Vec<(Home, String)>,
    users: Vec<(Persona, String, String)>,
}

impl People {
    async fn create(ks: &Keystone) -> People {
        let mut projects = Vec::new();
        for home in Home::ALL {
            let id = ks.create_project(&unique(home.noauth_name())).await;
            projects.push((home, id));
        }
        let mut users = Vec::new();
        for persona in Persona::ALL {
            let project = projects.iter().find(|(h, _)| *h == persona.home()).unwrap();
            let password = unique("pw");
            let name = unique(&format!("{persona:?}").to_lowercase());
            let user = ks.create_user(&name, &password, &project.1).await;
            for role in persona.granted_roles() {
                let role = ks.ensure_role(role).await;
                ks.grant(&user, &project.1, &role).await;
            }
            let token = ks
                .token(&user, &password, &project.1)
                .await
                .unwrap_or_else(|r| panic!("token of {persona:?}: {r:?}"));
            users.push((persona, user, token.id));
        }
        People { projects, users }
    }

    fn project(&self, home: Home) -> &str {
        &self.projects.iter().find(|(h, _)| *h == home).unwrap().1
    }

    fn token(&self, persona: Persona) -> &str {
        &self.users.iter().find(|(p, ..)| *p == persona).unwrap().2
    }

    async fn delete(self, ks: &Keystone) {
        for (_, user, _) in self.users {
            ks.delete_user(&user).await;
        }
        for (_, project) in self.projects {
            ks.delete_project(&project).await;
        }
    }
}

/// The rbac table's requests with each persona's real token.
struct TokenDriver<'a> {
    http: reqwest::Client,
    base: &'a str,
    people: &'a People,
}

impl TokenDriver<'_> {
    async fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Driver for TokenDriver<'_> {
    async fn call(
        &self,
        persona: Persona,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.send(Some(self.people.token(persona)), method, path, body)
            .await
    }

    /// Every load balancer out of `PENDING_*` (an admin's listing sees all of them).
    async fn settle(&self) {
        let token = self.people.token(Persona::Admin);
        eventually(
            "every load balancer to leave PENDING_*",
            Duration::from_secs(30),
            || async {
                let (status, body) = self
                    .send(Some(token), "GET", "/v2/lbaas/loadbalancers", None)
                    .await;
                assert_eq!(status, 200, "{body}");
                let pending = body["loadbalancers"].as_array().unwrap().iter().any(|lb| {
                    lb["provisioning_status"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("PENDING_"))
                });
                (!pending).then_some(())
            },
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_keystone_role_as_octavias_default_policy() {
    let Some(ks) =
        Keystone::from_env("every_route_answers_each_keystone_role_as_octavias_default_policy")
    else {
        return;
    };
    let aio = Aio::start(&ks).await;
    let people = People::create(&ks).await;
    let d = TokenDriver {
        http: reqwest::Client::new(),
        base: &aio.base,
        people: &people,
    };

    // Without a valid token: 401 with where to get one; the version documents stay open.
    for token in [None, Some("not-a-token")] {
        let resp = d
            .http
            .get(format!("{}/v2/lbaas/loadbalancers", aio.base))
            .header("X-Auth-Token", token.unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(challenge, format!("Keystone uri=\"{}\"", ks.v3()));
    }
    for open in ["/", "/v2"] {
        assert_eq!(d.send(None, "GET", open, None).await.0, 200, "{open}");
    }

    let ids = rbac::tree(&d, SUBNET).await;
    let owner = people.project(Home::Owner).to_string();
    let outcome = rbac::run(&d, &ids, &owner, SUBNET).await;
    assert!(
        outcome.failures.is_empty(),
        "{} of {} wrong:\n{}\nall-in-one log:\n{}",
        outcome.failures.len(),
        outcome.tried,
        outcome.failures.join("\n"),
        aio.proc.log()
    );
    assert!(
        outcome.tried > 400,
        "the table covers every route ({})",
        outcome.tried
    );

    // Listings are scoped to the token's project; the global observer sees every project.
    let (_, other) = d
        .call(Persona::OtherMember, "GET", "/v2/lbaas/loadbalancers", None)
        .await;
    assert_eq!(other["loadbalancers"], json!([]), "{other}");
    let (_, global) = d
        .call(
            Persona::LbGlobalObserver,
            "GET",
            "/v2/lbaas/loadbalancers",
            None,
        )
        .await;
    assert!(
        global["loadbalancers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|lb| lb["id"] == json!(ids.load_balancer) && lb["project_id"] == json!(owner)),
        "{global}"
    );
    // A reader's create is refused and stores nothing.
    let (before, _) = d
        .call(Persona::Admin, "GET", "/v2/lbaas/loadbalancers", None)
        .await;
    let (status, body) = d
        .call(
            Persona::Reader,
            "POST",
            "/v2/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {"vip_subnet_id": SUBNET, "name": "by-a-reader"}})),
        )
        .await;
    assert_eq!((before, status), (200, 403), "{body}");
    let (_, all) = d
        .call(
            Persona::Admin,
            "GET",
            "/v2/lbaas/loadbalancers?name=by-a-reader",
            None,
        )
        .await;
    assert_eq!(all["loadbalancers"], json!([]), "{all}");

    // The operator lets readers create: the running API re-reads its policy file.
    std::fs::write(
        aio.dir.path().join("policy.yaml"),
        "\"os_load-balancer_api:loadbalancer:post\": \"rule:load-balancer:read\"\n",
    )
    .unwrap();
    let create = json!({"loadbalancer": {"vip_subnet_id": SUBNET, "name": "by-a-reader"}});
    let made = eventually(
        "the reader's create allowed by the changed policy file",
        Duration::from_secs(10),
        || async {
            let (status, body) = d
                .call(
                    Persona::Reader,
                    "POST",
                    "/v2/lbaas/loadbalancers",
                    Some(create.clone()),
                )
                .await;
            match status {
                201 => Some(body),
                403 => None,
                _ => panic!("{status}: {body}"),
            }
        },
    )
    .await;
    assert_eq!(made["loadbalancer"]["project_id"], json!(owner), "{made}");
    d.settle().await;
    // Other rules keep their defaults: a reader still cannot delete.
    let path = format!(
        "/v2/lbaas/loadbalancers/{}",
        made["loadbalancer"]["id"].as_str().unwrap()
    );
    assert_eq!(d.call(Persona::Reader, "DELETE", &path, None).await.0, 403);

    people.delete(&ks).await;
}

/// `openstack`/python with the catalog's credentials of one user.
struct Client<'a> {
    ks: &'a Keystone,
    region: &'a str,
    /// The user's id.
    user: &'a str,
    password: &'a str,
    project: &'a str,
}

impl Client<'_> {
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OS_AUTH_URL", self.ks.v3())
            .env("OS_AUTH_TYPE", "password")
            .env("OS_IDENTITY_API_VERSION", "3")
            .env("OS_USER_ID", self.user)
            .env("OS_PASSWORD", self.password)
            .env("OS_PROJECT_ID", self.project)
            .env("OS_REGION_NAME", self.region)
            .env("OS_INTERFACE", "public");
        cmd
    }

    /// `openstack loadbalancer ARGS`; the output, whatever the exit status.
    fn cli(&self, exe: &Path, args: &[&str]) -> Output {
        self.command(exe)
            .arg("loadbalancer")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
    }

    /// `openstack loadbalancer ARGS -f json`, which must succeed.
    fn cli_json(&self, exe: &Path, args: &[&str]) -> Value {
        let out = self.cli(exe, &[args, &["-f", "json"]].concat());
        json_of(&format!("openstack loadbalancer {}", args.join(" ")), &out)
    }

    /// `sdk_tree.py MODE` with LB_ID; its JSON line.
    fn sdk(&self, python: &Path, mode: &str, lb: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/scripts/sdk_tree.py");
        let out = self
            .command(python)
            .arg(script)
            .arg(mode)
            .env("SUBNET_ID", SUBNET)
            .env("LB_ID", lb)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        json_of(&format!("sdk_tree.py {mode}"), &out)
    }
}

fn json_of(what: &str, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stdout}"))
}

/// A refusal by the API: non-zero exit, and the status in what the client printed.
fn assert_refused(what: &str, out: &Output, statuses: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && statuses.iter().any(|s| stderr.contains(s)),
        "{what} must be refused with {statuses:?} ({}):\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openstack_cli_and_sdk_find_the_api_in_the_catalog_and_keep_to_their_roles() {
    let test = "openstack_cli_and_sdk_find_the_api_in_the_catalog_and_keep_to_their_roles";
    let Some(ks) = Keystone::from_env(test) else {
        return;
    };
    let Some(python) = openstack_python(test) else {
        return;
    };
    let exe = python.with_file_name("openstack");
    assert!(
        exe.exists(),
        "{} next to the python with openstacksdk",
        exe.display()
    );
    let aio = Aio::start(&ks).await;
    // The CLI looks the VIP subnet up in the `network` service: the all-in-one's stand-in.
    let catalog = ks
        .create_services(&[("load-balancer", &aio.base), ("network", &aio.base)])
        .await;

    let project = ks.create_project(&unique("tenant")).await;
    let mut users = Vec::new();
    for role in ["member", "reader"] {
        let password = unique("pw");
        let user = ks.create_user(&unique(role), &password, &project).await;
        let role_id = ks.ensure_role(role).await;
        ks.grant(&user, &project, &role_id).await;
        users.push((user, password));
    }
    let outsider = ks.tenant(&["member"]).await;
    let client = |i: usize| Client {
        ks: &ks,
        region: &catalog.region,
        user: &users[i].0,
        password: &users[i].1,
        project: &project,
    };
    let (member, reader) = (client(0), client(1));
    let other = Client {
        ks: &ks,
        region: &catalog.region,
        user: &outsider.user_id,
        password: &outsider.password,
        project: &outsider.project_id,
    };

    let (exe2, python2, project2) = (&exe, &python, &project);
    tokio::task::block_in_place(|| {
        // The CLI: a member builds a tree, a reader reads it, an outsider is refused.
        let lb = member.cli_json(
            exe2,
            &[
                "create",
                "--name",
                "cli-lb",
                "--vip-subnet-id",
                SUBNET,
                "--wait",
            ],
        );
        assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
        assert_eq!(lb["project_id"], json!(project2), "{lb}");
        let lb_id = lb["id"].as_str().unwrap().to_string();
        member.cli_json(
            exe2,
            &[
                "listener",
                "create",
                "--name",
                "cli-l",
                "--protocol",
                "HTTP",
                "--protocol-port",
                "80",
                "--wait",
                &lb_id,
            ],
        );
        member.cli_json(
            exe2,
            &[
                "pool",
                "create",
                "--name",
                "cli-p",
                "--listener",
                "cli-l",
                "--protocol",
                "HTTP",
                "--lb-algorithm",
                "ROUND_ROBIN",
                "--wait",
            ],
        );
        member.cli_json(
            exe2,
            &[
                "member",
                "create",
                "--name",
                "cli-m",
                "--address",
                "192.0.2.10",
                "--protocol-port",
                "8080",
                "--wait",
                "cli-p",
            ],
        );
        member.cli_json(
            exe2,
            &[
                "healthmonitor",
                "create",
                "--name",
                "cli-hm",
                "--delay",
                "5",
                "--timeout",
                "3",
                "--max-retries",
                "3",
                "--type",
                "HTTP",
                "--wait",
                "cli-p",
            ],
        );
        let shown = reader.cli_json(exe2, &["show", &lb_id]);
        assert_eq!(shown["provisioning_status"], "ACTIVE", "{shown}");
        let members = reader.cli_json(exe2, &["member", "list", "cli-p"]);
        assert_eq!(members[0]["name"], "cli-m", "{members}");
        let refused = reader.cli(
            exe2,
            &[
                "listener",
                "create",
                "--protocol",
                "TCP",
                "--protocol-port",
                "81",
                &lb_id,
            ],
        );
        assert_refused("a reader's listener create", &refused, &["403"]);
        let refused = other.cli(exe2, &["show", &lb_id]);
        assert_refused(
            "another project's show",
            &refused,
            &["403", "404", "Unable to locate"],
        );
        let listed = other.cli_json(exe2, &["list"]);
        assert_eq!(listed, json!([]), "another project lists nothing");
        let out = member.cli(exe2, &["delete", "--cascade", "--wait", &lb_id]);
        assert!(
            out.status.success(),
            "cascade delete: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(member.cli_json(exe2, &["list"]), json!([]));

        // openstacksdk: the same as a script of a tenant would.
        let made = member.sdk(python2, "member", "");
        let lb_id = made["load_balancer"].as_str().unwrap().to_string();
        assert_eq!(made["project"], json!(project2), "{made}");
        assert_eq!(
            reader.sdk(python2, "reader", &lb_id),
            json!({"refused": 403})
        );
        let refused = other.sdk(python2, "outsider", &lb_id);
        assert!(
            [403, 404].contains(&refused["refused"].as_u64().unwrap()),
            "{refused}"
        );
        assert_eq!(
            member.sdk(python2, "delete", &lb_id),
            json!({"deleted": lb_id})
        );
    });

    outsider.delete(&ks).await;
    for (user, _) in users {
        ks.delete_user(&user).await;
    }
    ks.delete_project(&project).await;
    catalog.delete(&ks).await;
}

//! The real OpenStack client drives the all-in-one over HTTP in noauth mode.
//!
//! `OCTAVIA_TEST_OPENSTACK` names the `openstack` executable of a venv with
//! python-openstackclient and python-octaviaclient (scripts/test.sh installs it). Under
//! `CI=true` its absence fails the test; elsewhere the test says it was skipped.

use std::process::Command;

use serde_json::Value;

use crate::support::{free_port, wait_api, write_config, Proc};

struct Cli {
    exe: String,
    endpoint: String,
}

impl Cli {
    /// Run `openstack ARGS`, assert exit 0, return stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.exe)
            .args(args)
            .env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.endpoint)
            .env_remove("OS_CLOUD")
            .output()
            .unwrap_or_else(|e| panic!("run openstack: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "openstack {} failed ({}):\nstdout: {stdout}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Run `openstack ARGS`, assert it fails, return stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = Command::new(&self.exe)
            .args(args)
            .env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.endpoint)
            .env_remove("OS_CLOUD")
            .output()
            .unwrap_or_else(|e| panic!("run openstack: {e}"));
        assert!(
            !out.status.success(),
            "openstack {} succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Run with `-f json` and parse.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.run(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("openstack {args:?}: bad JSON {e}: {out}"))
    }

    /// `show` an object and return its provisioning status.
    fn status(&self, args: &[&str]) -> String {
        self.json(args)["provisioning_status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn openstack_cli_drives_every_resource_to_active() {
    let Ok(exe) = std::env::var("OCTAVIA_TEST_OPENSTACK") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must set OCTAVIA_TEST_OPENSTACK (scripts/test.sh does)"
        );
        eprintln!("skipped: OCTAVIA_TEST_OPENSTACK is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}/octavia.db", dir.path().display());
    let cfg = write_config(
        dir.path(),
        "aio",
        &db,
        port,
        "[task_flow]\npoll_interval = \"100ms\"\n",
    );
    let _aio = Proc::start("all-in-one", env!("CARGO_BIN_EXE_octavia"), &cfg, &[]);
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_api(&endpoint).await;
    let cli = Cli { exe, endpoint };
    let subnet = "7d5f0b8e-2a43-4d1c-9c6e-5b1f3e2a9d44";

    tokio::task::spawn_blocking(move || {
        // Load balancer.
        let lb = cli.json(&[
            "loadbalancer", "create", "--name", "lb1", "--vip-subnet-id", subnet, "--project",
            "cli-project", "--wait",
        ]);
        assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
        assert!(names(&cli.json(&["loadbalancer", "list"])).contains(&"lb1".to_string()));
        cli.run(&["loadbalancer", "set", "--description", "managed by the CLI", "--wait", "lb1"]);
        let lb = cli.json(&["loadbalancer", "show", "lb1"]);
        assert_eq!(lb["description"], "managed by the CLI");
        assert_eq!(lb["provisioning_status"], "ACTIVE");

        // Listener.
        cli.run(&[
            "loadbalancer", "listener", "create", "--name", "l1", "--protocol", "HTTP",
            "--protocol-port", "80", "--wait", "lb1",
        ]);
        assert!(names(&cli.json(&["loadbalancer", "listener", "list"])).contains(&"l1".to_string()));
        cli.run(&["loadbalancer", "listener", "set", "--connection-limit", "1000", "--wait", "l1"]);
        let l = cli.json(&["loadbalancer", "listener", "show", "l1"]);
        assert_eq!(l["connection_limit"], 1000);
        assert_eq!(l["provisioning_status"], "ACTIVE");

        // Pool.
        cli.run(&[
            "loadbalancer", "pool", "create", "--name", "p1", "--listener", "l1", "--protocol",
            "HTTP", "--lb-algorithm", "ROUND_ROBIN", "--wait",
        ]);
        assert!(names(&cli.json(&["loadbalancer", "pool", "list"])).contains(&"p1".to_string()));
        cli.run(&["loadbalancer", "pool", "set", "--lb-algorithm", "LEAST_CONNECTIONS", "--wait", "p1"]);
        let p = cli.json(&["loadbalancer", "pool", "show", "p1"]);
        assert_eq!(p["lb_algorithm"], "LEAST_CONNECTIONS");
        assert_eq!(p["provisioning_status"], "ACTIVE");

        // Member.
        cli.run(&[
            "loadbalancer", "member", "create", "--name", "m1", "--address", "192.0.2.10",
            "--protocol-port", "8080", "--wait", "p1",
        ]);
        assert!(names(&cli.json(&["loadbalancer", "member", "list", "p1"])).contains(&"m1".to_string()));
        cli.run(&["loadbalancer", "member", "set", "--weight", "5", "--wait", "p1", "m1"]);
        let m = cli.json(&["loadbalancer", "member", "show", "p1", "m1"]);
        assert_eq!(m["weight"], 5);
        assert_eq!(m["provisioning_status"], "ACTIVE");

        // Health monitor.
        cli.run(&[
            "loadbalancer", "healthmonitor", "create", "--name", "hm1", "--delay", "5",
            "--timeout", "3", "--max-retries", "3", "--type", "HTTP", "--url-path", "/healthz",
            "--wait", "p1",
        ]);
        assert!(names(&cli.json(&["loadbalancer", "healthmonitor", "list"])).contains(&"hm1".to_string()));
        cli.run(&["loadbalancer", "healthmonitor", "set", "--delay", "7", "--wait", "hm1"]);
        let hm = cli.json(&["loadbalancer", "healthmonitor", "show", "hm1"]);
        assert_eq!(hm["delay"], 7);
        assert_eq!(hm["provisioning_status"], "ACTIVE");

        // L7 policy and rule.
        cli.run(&[
            "loadbalancer", "l7policy", "create", "--name", "pol1", "--action", "REJECT",
            "--wait", "l1",
        ]);
        assert!(names(&cli.json(&["loadbalancer", "l7policy", "list"])).contains(&"pol1".to_string()));
        cli.run(&["loadbalancer", "l7policy", "set", "--description", "deny /admin", "--wait", "pol1"]);
        assert_eq!(cli.status(&["loadbalancer", "l7policy", "show", "pol1"]), "ACTIVE");
        let rule = cli.json(&[
            "loadbalancer", "l7rule", "create", "--type", "PATH", "--compare-type", "STARTS_WITH",
            "--value", "/admin", "--wait", "pol1",
        ]);
        let rule_id = rule["id"].as_str().expect("rule id").to_string();
        let rules = cli.json(&["loadbalancer", "l7rule", "list", "pol1"]);
        assert_eq!(rules.as_array().map(Vec::len), Some(1));
        cli.run(&["loadbalancer", "l7rule", "set", "--value", "/private", "--wait", "pol1", &rule_id]);
        let rule = cli.json(&["loadbalancer", "l7rule", "show", "pol1", &rule_id]);
        assert_eq!(rule["value"], "/private");
        assert_eq!(rule["provisioning_status"], "ACTIVE");

        // Status tree.
        // `status show` prints the tree as JSON and takes no -f.
        let out = cli.run(&["loadbalancer", "status", "show", "lb1"]);
        let tree: Value = serde_json::from_str(&out).expect("status tree is JSON");
        let tree_lb = &tree["loadbalancer"];
        assert_eq!(tree_lb["provisioning_status"], "ACTIVE", "{tree}");
        assert_eq!(tree_lb["listeners"][0]["pools"][0]["members"][0]["provisioning_status"], "ACTIVE");

        // The operator's catalogue: flavor and availability zone profiles, a flavor and a
        // zone, and a load balancer that uses both.
        let caps = cli.run(&["loadbalancer", "provider", "capability", "list", "amphora"]);
        for key in ["loadbalancer_topology", "amp_image_tag", "compute_zone", "valid_vip_networks"] {
            assert!(caps.contains(key), "{key} in {caps}");
        }
        cli.run(&[
            "loadbalancer", "flavorprofile", "create", "--name", "fp1", "--provider", "amphora",
            "--flavor-data", r#"{"loadbalancer_topology": "SINGLE", "compute_flavor": "m1.amp"}"#,
        ]);
        let err = cli.fails(&[
            "loadbalancer", "flavorprofile", "create", "--name", "bad", "--provider", "amphora",
            "--flavor-data", r#"{"sriov_vip": true}"#,
        ]);
        assert!(err.contains("does not support a requested option"), "{err}");
        let gold = cli.json(&[
            "loadbalancer", "flavor", "create", "--name", "gold", "--flavorprofile", "fp1",
            "--description", "one amphora", "--enable",
        ]);
        assert_eq!(gold["enabled"], true, "{gold}");
        assert!(names(&cli.json(&["loadbalancer", "flavor", "list"])).contains(&"gold".to_string()));
        cli.run(&[
            "loadbalancer", "availabilityzoneprofile", "create", "--name", "azp1", "--provider",
            "amphora", "--availability-zone-data", r#"{"compute_zone": "nova"}"#,
        ]);
        cli.run(&[
            "loadbalancer", "availabilityzone", "create", "--name", "az1",
            "--availabilityzoneprofile", "azp1",
        ]);
        cli.run(&["loadbalancer", "availabilityzone", "set", "--description", "east", "az1"]);
        let az = cli.json(&["loadbalancer", "availabilityzone", "show", "az1"]);
        assert_eq!(az["description"], "east", "{az}");
        let lb2 = cli.json(&[
            "loadbalancer", "create", "--name", "lb-gold", "--vip-subnet-id", subnet,
            "--flavor", "gold", "--availability-zone", "az1", "--project", "cli-project", "--wait",
        ]);
        assert_eq!(lb2["provisioning_status"], "ACTIVE", "{lb2}");
        assert_eq!(lb2["flavor_id"], gold["id"], "{lb2}");
        assert_eq!(lb2["availability_zone"], "az1", "{lb2}");
        // In use: neither the flavor nor the zone can go; a disabled flavor takes no new
        // load balancer.
        let err = cli.fails(&["loadbalancer", "flavor", "delete", "gold"]);
        assert!(err.contains("in use"), "{err}");
        let err = cli.fails(&["loadbalancer", "availabilityzone", "delete", "az1"]);
        assert!(err.contains("in use"), "{err}");
        cli.run(&["loadbalancer", "flavor", "set", "--disable", "gold"]);
        let err = cli.fails(&[
            "loadbalancer", "create", "--name", "lb-refused", "--vip-subnet-id", subnet,
            "--flavor", "gold", "--project", "cli-project",
        ]);
        assert!(err.contains("not allowed in this deployment"), "{err}");
        cli.run(&["loadbalancer", "delete", "--wait", "lb-gold"]);
        cli.run(&["loadbalancer", "flavor", "delete", "gold"]);
        cli.run(&["loadbalancer", "flavorprofile", "delete", "fp1"]);
        cli.run(&["loadbalancer", "availabilityzone", "delete", "az1"]);
        cli.run(&["loadbalancer", "availabilityzoneprofile", "delete", "azp1"]);
        assert!(cli.json(&["loadbalancer", "flavor", "list"]).as_array().is_some_and(Vec::is_empty));

        // Quota.
        cli.run(&["loadbalancer", "quota", "set", "--loadbalancer", "10", "cli-project"]);
        let q = cli.json(&["loadbalancer", "quota", "show", "cli-project"]);
        assert_eq!(q["load_balancer"], 10, "{q}");
        assert!(cli.run(&["loadbalancer", "quota", "list"]).contains("cli-project"));
        cli.run(&["loadbalancer", "quota", "reset", "cli-project"]);

        // Deletes, leaf first, then the load balancer itself.
        cli.run(&["loadbalancer", "l7rule", "delete", "--wait", "pol1", &rule_id]);
        cli.run(&["loadbalancer", "l7policy", "delete", "--wait", "pol1"]);
        cli.run(&["loadbalancer", "healthmonitor", "delete", "--wait", "hm1"]);
        cli.run(&["loadbalancer", "member", "delete", "--wait", "p1", "m1"]);
        cli.run(&["loadbalancer", "pool", "delete", "--wait", "p1"]);
        cli.run(&["loadbalancer", "listener", "delete", "--wait", "l1"]);
        cli.run(&["loadbalancer", "delete", "--wait", "lb1"]);
        assert!(!names(&cli.json(&["loadbalancer", "list"])).contains(&"lb1".to_string()));
    })
    .await
    .expect("CLI scenario");
}

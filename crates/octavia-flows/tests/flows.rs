//! Flows against a real store (SQLite, and PostgreSQL when configured) with noop drivers:
//! step order, reverse-order reverts, statuses afterwards, and the driver calls made.

use std::process::Command;
use std::time::Duration;

use octavia_db::{ClaimedJob, ClassCaps, JobRecord, ListQuery, Store};
use octavia_drivers::{CallLog, Drivers};
use octavia_flows::{
    AbortHandle, Engine, Failpoints, FlowOutcome, FlowSettings, JobRunner, RetryPolicy,
};
use octavia_model::*;
use octavia_render::RenderSettings;
use octavia_test_support::fixtures::{
    health_monitor, l7policy, l7rule, listener, load_balancer, member, pool, PROJECT,
};
use octavia_test_support::{engines, TestStore};

/// A worker in miniature: claims the next job and runs it to its end.
struct Harness {
    store: Store,
    drivers: Drivers,
    log: CallLog,
    failpoints: Failpoints,
    render: RenderSettings,
    /// The `[controller_worker]` options the flows see (the rest are the test's).
    settings: FlowSettings,
}

impl Harness {
    fn new(store: &Store) -> Self {
        let (drivers, log) = Drivers::noop();
        Self {
            store: store.clone(),
            drivers,
            log,
            failpoints: Failpoints::none(),
            render: RenderSettings::default(),
            settings: FlowSettings::default(),
        }
    }

    async fn run_next(&self) -> (ClaimedJob, FlowOutcome) {
        let job = self
            .store
            .claim_job("flow-test", Duration::from_secs(30), &ClassCaps::default())
            .await
            .unwrap()
            .expect("a job is queued");
        let runner = JobRunner {
            store: self.store.clone(),
            drivers: self.drivers.clone(),
            engine: Engine::new(
                self.failpoints.clone(),
                RetryPolicy {
                    max_attempts: 2,
                    initial_delay: Duration::from_millis(5),
                    increment: Duration::from_millis(5),
                    max_delay: Duration::from_millis(10),
                },
            ),
            settings: FlowSettings {
                amp_boot_poll: Duration::from_millis(10),
                render: self.render.clone(),
                ..self.settings.clone()
            },
            worker_id: "flow-test".into(),
        };
        let (_handle, abort) = AbortHandle::new();
        let outcome = runner.run(&job, abort).await.unwrap();
        (job, outcome)
    }

    async fn job(&self, id: JobId) -> JobRecord {
        self.store.get_job(id).await.unwrap().expect("job exists")
    }

    async fn amphorae(&self, lb: LoadBalancerId) -> Vec<Amphora> {
        let mut amps: Vec<Amphora> = self
            .store
            .list_amphorae(&ListQuery::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.load_balancer_id == Some(lb))
            .collect();
        amps.sort_by_key(|a| a.created_at);
        amps
    }

    async fn lb_status(&self, id: LoadBalancerId) -> ProvisioningStatus {
        self.store
            .get_load_balancer(id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status
    }

    /// Create a load balancer and run its create job to success.
    async fn active_lb(&self) -> LoadBalancerId {
        let (lb, _) = self
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();
        let (_, out) = self.run_next().await;
        assert_eq!(out, FlowOutcome::Succeeded);
        lb.id
    }
}

/// `ops` contains `expected` as a subsequence (in this order).
fn assert_in_order(ops: &[&str], expected: &[&str]) {
    let mut it = ops.iter();
    for e in expected {
        assert!(
            it.any(|o| o == e),
            "{e} missing or out of order; calls were {ops:?}"
        );
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn load_balancer_create_builds_an_amphora_in_step_order() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let (lb, job_id) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();

        let (job, out) = h.run_next().await;
        assert_eq!(job.id, job_id);
        assert_eq!(out, FlowOutcome::Succeeded, "{engine:?}");

        let rec = h.job(job_id).await;
        assert_eq!(rec.state, JobState::Done);
        assert_eq!(
            rec.completed_steps,
            strings(&[
                "allocate_vip",
                "build_amphora",
                "wait_for_agent",
                "plug_vip",
                "plug_member_networks",
                "update_amphorae",
                "configure_vrrp"
            ])
        );
        assert!(rec.reverted_steps.is_empty());
        assert_eq!(h.lb_status(lb.id).await, ProvisioningStatus::Active);

        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps.len(), 1, "{amps:?}");
        let amp = &amps[0];
        assert_eq!(amp.status, ProvisioningStatus::Allocated);
        assert_eq!(amp.role, Some(AmphoraRole::Standalone));
        assert!(amp.compute_id.is_some());
        assert!(amp.lb_network_ip.is_some());
        assert!(amp.ha_ip.is_some() && amp.vrrp_ip.is_some() && amp.ha_port_id.is_some());

        assert_in_order(
            &h.log.ops(),
            &[
                "network.allocate_vip",
                "compute.build",
                "amphora.wait_for_connectivity",
                "network.plug_vip",
                "amphora.plug_vip",
                // No listener yet: the amphora is told to serve nothing.
                "amphora.remove_config",
            ],
        );
        let agent_calls = h.log.calls_for(&amp.id.to_string());
        assert!(agent_calls.iter().any(|c| c.op == "amphora.plug_vip"
            && Some(c.detail.clone()) == amp.ha_ip.as_ref().map(|ip| format!("{ip} SINGLE"))));
        assert_eq!(
            h.log.count("amphora.upload_vrrp_config"),
            0,
            "SINGLE has no keepalived"
        );
        assert_eq!(h.log.count("amphora.vrrp_action"), 0);
    }
}

#[tokio::test]
async fn active_standby_builds_master_and_backup() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let (lb, _) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::ActiveStandby))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let mut roles: Vec<_> = h
            .amphorae(lb.id)
            .await
            .iter()
            .map(|a| (a.role, a.vrrp_priority, a.status))
            .collect();
        roles.sort_by_key(|r| r.1);
        assert_eq!(
            roles,
            [
                (
                    Some(AmphoraRole::Backup),
                    Some(90),
                    ProvisioningStatus::Allocated
                ),
                (
                    Some(AmphoraRole::Master),
                    Some(100),
                    ProvisioningStatus::Allocated
                )
            ]
        );
        assert_eq!(h.log.count("compute.build"), 2);
    }
}

/// The keepalived configuration uploaded to `amp` (the last upload).
fn vrrp_config_of(log: &CallLog, amp: &Amphora) -> String {
    log.calls_for(&amp.id.to_string())
        .into_iter()
        .rfind(|c| c.op == "amphora.upload_vrrp_config")
        .unwrap_or_else(|| panic!("no keepalived configuration uploaded to {}", amp.id))
        .detail
}

/// The text between `unicast_peer {` and its `}`.
fn unicast_peers(config: &str) -> Vec<String> {
    let start = config.find("unicast_peer {").expect("unicast_peer block") + 14;
    let end = start + config[start..].find('}').expect("end of unicast_peer");
    config[start..end]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn active_standby_create_configures_and_starts_keepalived_on_both() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let (lb, _) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::ActiveStandby))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded, "{engine:?}");
        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps.len(), 2, "{amps:?}");
        let master = amps
            .iter()
            .find(|a| a.role == Some(AmphoraRole::Master))
            .expect("a MASTER");
        let backup = amps
            .iter()
            .find(|a| a.role == Some(AmphoraRole::Backup))
            .expect("a BACKUP");
        for (amp, priority) in [(master, 100), (backup, 90)] {
            assert_eq!(amp.vrrp_priority, Some(priority), "{amp:?}");
            assert_eq!(amp.vrrp_id, Some(1));
            assert_eq!(amp.vrrp_interface.as_deref(), Some("eth1"));
            assert!(amp.vrrp_ip.is_some() && amp.vrrp_port_id.is_some());
        }
        assert_ne!(master.vrrp_ip, backup.vrrp_ip);
        let vip = ts
            .store
            .get_load_balancer(lb.id)
            .await
            .unwrap()
            .unwrap()
            .vip
            .ip_address
            .expect("vip allocated");

        // Each amphora: the VIP plugged for keepalived, HAProxy configured (no listener yet:
        // nothing to serve), then its interface looked up, keepalived configured and started.
        for amp in [master, backup] {
            let calls = h.log.calls_for(&amp.id.to_string());
            let ops: Vec<&str> = calls.iter().map(|c| c.op).collect();
            assert_in_order(
                &ops,
                &[
                    "amphora.plug_vip",
                    "amphora.remove_config",
                    "amphora.interface_of",
                    "amphora.upload_vrrp_config",
                    "amphora.vrrp_action",
                ],
            );
            let plug = calls.iter().find(|c| c.op == "amphora.plug_vip").unwrap();
            assert_eq!(plug.detail, format!("{vip} ACTIVE_STANDBY"));
            let lookup = calls
                .iter()
                .find(|c| c.op == "amphora.interface_of")
                .unwrap();
            assert_eq!(Some(&lookup.detail), amp.vrrp_ip.as_ref());
            let actions: Vec<&str> = calls
                .iter()
                .filter(|c| c.op == "amphora.vrrp_action")
                .map(|c| c.detail.as_str())
                .collect();
            assert_eq!(actions, ["start"]);
        }
        // Both are configured before either serves: HAProxy everywhere, then keepalived,
        // MASTER first.
        let all = h.log.calls();
        let last_haproxy = all
            .iter()
            .rposition(|c| c.op == "amphora.remove_config")
            .unwrap();
        let first_vrrp = all
            .iter()
            .position(|c| c.op == "amphora.upload_vrrp_config")
            .unwrap();
        assert!(last_haproxy < first_vrrp, "{:?}", h.log.ops());
        assert_eq!(all[first_vrrp].subject, master.id.to_string());

        // Each configuration: its own role's priority, its vrrp_ip as source, the other
        // amphora as its one unicast peer, the VIP held by keepalived on eth1.
        for (amp, peer, priority) in [(master, backup, 100), (backup, master, 90)] {
            let config = vrrp_config_of(&h.log, amp);
            assert!(
                config.contains(&format!("priority {priority}\n")),
                "{config}"
            );
            assert!(config.contains("interface eth1\n"), "{config}");
            assert!(config.contains("virtual_router_id 1\n"), "{config}");
            assert!(config.contains("nopreempt"), "{config}");
            let own = amp.vrrp_ip.clone().unwrap();
            assert!(
                config.contains(&format!("unicast_src_ip {own}\n")),
                "{config}"
            );
            assert_eq!(unicast_peers(&config), [peer.vrrp_ip.clone().unwrap()]);
            let vips_at = config
                .find("virtual_ipaddress {")
                .expect("virtual_ipaddress");
            assert!(config[vips_at..].contains(&vip), "{config}");
        }
        assert_eq!(h.log.count("amphora.upload_vrrp_config"), 2);
    }
}

/// An ACTIVE_STANDBY failover configures the replacement and the survivor as each other's
/// peers; when a later step fails, keepalived is stopped again on the replacement (the
/// configuration step reverted before the build's revert deletes it).
#[tokio::test]
async fn active_standby_failover_repeers_keepalived_and_reverts_by_stopping_it() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let (lb, _) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::ActiveStandby))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let amps = h.amphorae(lb.id).await;
        let master = amps
            .iter()
            .find(|a| a.role == Some(AmphoraRole::Master))
            .unwrap()
            .clone();
        let backup = amps
            .iter()
            .find(|a| a.role == Some(AmphoraRole::Backup))
            .unwrap()
            .clone();

        h.log.clear();
        ts.store
            .failover_amphora(master.id, JobClass::Failover)
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded, "{engine:?}");
        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps.len(), 2, "{amps:?}");
        let new_master = amps
            .iter()
            .find(|a| a.id != backup.id)
            .expect("a replacement")
            .clone();
        // The old MASTER still answered (noop drivers): before it was stopped, the survivor
        // took the VIP over with its takeover configuration, then got its own back. It is
        // the MASTER now; the replacement, built to fill the MASTER's place (priority 100),
        // waits behind `nopreempt` and is recorded BACKUP.
        let survivor = amps.iter().find(|a| a.id == backup.id).expect("survivor");
        assert_eq!(survivor.role, Some(AmphoraRole::Master), "{engine:?}");
        assert_eq!(new_master.role, Some(AmphoraRole::Backup), "{engine:?}");
        assert_eq!(new_master.vrrp_priority, Some(100));
        let uploads: Vec<String> = h
            .log
            .calls_for(&backup.id.to_string())
            .into_iter()
            .filter(|c| c.op == "amphora.upload_vrrp_config")
            .map(|c| c.detail)
            .collect();
        let takeover = uploads
            .iter()
            .position(|c| c.contains("    priority 250\n") && !c.contains("nopreempt"))
            .expect("the survivor got a takeover configuration");
        assert!(
            uploads[takeover + 1..]
                .iter()
                .any(|c| c.contains("    priority 90\n") && c.contains("nopreempt")),
            "the survivor's ordinary configuration came back after the takeover"
        );
        assert_eq!(
            unicast_peers(&vrrp_config_of(&h.log, &backup)),
            [new_master.vrrp_ip.clone().unwrap()],
            "the survivor's peer is the replacement"
        );
        assert_eq!(
            unicast_peers(&vrrp_config_of(&h.log, &new_master)),
            [backup.vrrp_ip.clone().unwrap()]
        );
        assert!(
            h.log
                .calls_for(&master.id.to_string())
                .iter()
                .all(|c| c.op != "amphora.upload_vrrp_config"),
            "the failed amphora gets nothing"
        );

        // The next failover fails after keepalived was configured: it is stopped on the
        // replacement, not on the survivor.
        h.log.clear();
        h.failpoints.set(
            "failover_amphora",
            "delete_old_amphorae",
            octavia_flows::FailAction::Error,
        );
        let job_id = ts
            .store
            .failover_amphora(backup.id, JobClass::Failover)
            .await
            .unwrap();
        let (_, out) = h.run_next().await;
        assert!(
            matches!(&out, FlowOutcome::Reverted { step, .. } if step == "delete_old_amphorae"),
            "{out:?}"
        );
        let rec = h.job(job_id).await;
        assert_eq!(
            rec.reverted_steps,
            strings(&[
                "configure_vrrp",
                "update_amphorae",
                "plug_vip",
                "wait_for_agent",
                "build_amphora"
            ])
        );
        let stops: Vec<String> = h
            .log
            .calls()
            .into_iter()
            .filter(|c| c.op == "amphora.vrrp_action" && c.detail == "stop")
            .map(|c| c.subject)
            .collect();
        // First the amphora being replaced gives up the VIP (before its replacement starts
        // keepalived), then the revert stops the replacement; never the survivor.
        assert_eq!(stops.len(), 2, "{:?}", h.log.calls());
        assert_eq!(stops[0], backup.id.to_string());
        assert_ne!(stops[1], backup.id.to_string());
        assert_ne!(stops[1], new_master.id.to_string());
        let calls = h.log.calls();
        let stop_at = calls
            .iter()
            .rposition(|c| c.op == "amphora.vrrp_action" && c.detail == "stop")
            .unwrap();
        let released_at = calls
            .iter()
            .position(|c| c.op == "amphora.vrrp_action" && c.detail == "stop")
            .unwrap();
        let replacement_started = calls
            .iter()
            .position(|c| {
                c.op == "amphora.vrrp_action" && c.detail == "start" && c.subject == stops[1]
            })
            .expect("the replacement's keepalived started");
        assert!(released_at < replacement_started, "{:?}", h.log.ops());
        let deleted_at = calls
            .iter()
            .rposition(|c| c.op == "compute.delete")
            .unwrap_or_else(|| panic!("the build reverted: {:?}", h.log.ops()));
        assert!(stop_at < deleted_at, "{:?}", h.log.ops());
    }
}

/// A flavor and an availability zone (with their profiles) whose settings are `flavor_data`
/// and `zone_data`; their id and name.
async fn flavor_and_zone(s: &Store, flavor_data: &str, zone_data: &str) -> (FlavorId, String) {
    let fp = s
        .create_flavor_profile(&FlavorProfile {
            id: FlavorProfileId::new(),
            name: "fp".into(),
            provider_name: "amphora".into(),
            flavor_data: flavor_data.into(),
        })
        .await
        .unwrap();
    let flavor = s
        .create_flavor(&Flavor {
            id: FlavorId::new(),
            name: "gold".into(),
            description: None,
            enabled: true,
            flavor_profile_id: fp.id,
        })
        .await
        .unwrap();
    let zp = s
        .create_availability_zone_profile(&AvailabilityZoneProfile {
            id: AvailabilityZoneProfileId::new(),
            name: "zp".into(),
            provider_name: "amphora".into(),
            availability_zone_data: zone_data.into(),
        })
        .await
        .unwrap();
    let zone = s
        .create_availability_zone(&AvailabilityZone {
            name: "az1".into(),
            description: None,
            enabled: true,
            availability_zone_profile_id: zp.id,
        })
        .await
        .unwrap();
    (flavor.id, zone.name)
}

#[tokio::test]
async fn flavor_and_zone_settings_reach_the_build_and_the_amphorae() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let mut h = Harness::new(&ts.store);
        h.settings.amp_flavor = Some("config-flavor".into());
        let (flavor, zone) = flavor_and_zone(
            &ts.store,
            r#"{"loadbalancer_topology": "ACTIVE_STANDBY", "compute_flavor": "m1.amp",
                "amp_image_tag": "gold"}"#,
            r#"{"compute_zone": "east", "management_network": "mgmt-east"}"#,
        )
        .await;
        // The API writes the flavor's topology on the row; the flows build what it says.
        let lb = LoadBalancer {
            flavor_id: Some(flavor.to_string()),
            availability_zone: Some(zone),
            ..load_balancer(PROJECT, Topology::ActiveStandby)
        };
        let (lb, _) = ts.store.create_load_balancer(&lb).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded, "{engine:?}");

        let builds = h.log.build_requests();
        assert_eq!(builds.len(), 2, "{builds:?}");
        for b in &builds {
            assert_eq!(b.image_id, None);
            assert_eq!(
                b.image_tag.as_deref(),
                Some("gold"),
                "the flavor's tag wins"
            );
            assert_eq!(b.flavor.as_deref(), Some("m1.amp"), "the flavor's wins");
            assert_eq!(b.availability_zone.as_deref(), Some("east"));
            assert_eq!(b.management_network.as_deref(), Some("mgmt-east"));
        }
        assert!(builds[0].anti_affinity_peers.is_empty());
        assert_eq!(
            builds[1].anti_affinity_peers.len(),
            1,
            "the backup avoids the master"
        );
        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps.len(), 2);
        for a in &amps {
            assert_eq!(a.compute_flavor.as_deref(), Some("m1.amp"));
            assert_eq!(a.cached_zone.as_deref(), Some("east"));
        }

        // A failover builds the replacement the same way (the health manager's job knows
        // nothing of flavors).
        assert_eq!(h.lb_status(lb.id).await, ProvisioningStatus::Active);
        h.log.clear();
        ts.store
            .failover_amphora(amps[0].id, JobClass::Failover)
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let builds = h.log.build_requests();
        assert_eq!(builds.len(), 1);
        assert_eq!(
            (builds[0].image_tag.as_deref(), builds[0].flavor.as_deref()),
            (Some("gold"), Some("m1.amp"))
        );
        assert_eq!(builds[0].availability_zone.as_deref(), Some("east"));
    }
}

#[tokio::test]
async fn configuration_fills_what_the_flavor_leaves_unset() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let mut h = Harness::new(&ts.store);
        h.settings.amp_flavor = Some("config-flavor".into());
        h.settings.amp_image_id = Some("pinned-image".into());
        let (flavor, zone) = flavor_and_zone(&ts.store, r#"{"amp_image_tag": "gold"}"#, "{}").await;
        let lb = LoadBalancer {
            flavor_id: Some(flavor.to_string()),
            availability_zone: Some(zone),
            ..load_balancer(PROJECT, Topology::Single)
        };
        let (lb, _) = ts.store.create_load_balancer(&lb).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let builds = h.log.build_requests();
        assert_eq!(builds.len(), 1);
        let b = &builds[0];
        assert_eq!(
            b.image_id.as_deref(),
            Some("pinned-image"),
            "amp_image_id still wins"
        );
        assert_eq!(b.flavor.as_deref(), Some("config-flavor"));
        assert_eq!(
            (
                b.availability_zone.as_deref(),
                b.management_network.as_deref()
            ),
            (None, None)
        );
        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps[0].compute_flavor.as_deref(), Some("config-flavor"));
        assert_eq!(amps[0].cached_zone, None);
    }
}

#[tokio::test]
async fn load_balancer_create_failure_reverts_in_reverse_order() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        h.failpoints.set(
            "create_load_balancer",
            "plug_vip",
            octavia_flows::FailAction::Error,
        );
        let (lb, job_id) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();

        let (_, out) = h.run_next().await;
        assert!(
            matches!(&out, FlowOutcome::Reverted { step, .. } if step == "plug_vip"),
            "{out:?}"
        );
        let rec = h.job(job_id).await;
        assert_eq!(rec.state, JobState::Failed);
        assert_eq!(
            rec.completed_steps,
            strings(&["allocate_vip", "build_amphora", "wait_for_agent"])
        );
        assert_eq!(
            rec.reverted_steps,
            strings(&["wait_for_agent", "build_amphora", "allocate_vip"])
        );
        assert!(rec.error.unwrap().contains("plug_vip"));
        assert_eq!(h.lb_status(lb.id).await, ProvisioningStatus::Error);

        let amps = h.amphorae(lb.id).await;
        assert_eq!(amps.len(), 1);
        assert_eq!(amps[0].status, ProvisioningStatus::Error);
        let compute_id = amps[0].compute_id.clone().unwrap();
        assert!(h
            .log
            .calls()
            .iter()
            .any(|c| c.op == "compute.delete" && c.subject == compute_id));
        assert_in_order(
            &h.log.ops(),
            &["compute.build", "compute.delete", "network.deallocate_vip"],
        );
        assert_eq!(h.log.count("network.plug_vip"), 0);
    }
}

/// A load balancer whose create failed is deleted without asking for a VIP: reading the VIP
/// never allocates one, and releasing or unplugging nothing is nothing to do (regression: the
/// delete used to allocate the VIP it was about to release, and failed as the create had).
#[tokio::test]
async fn load_balancer_whose_create_failed_is_deleted_without_allocating() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        for failing_step in ["allocate_vip", "update_amphorae"] {
            let h = Harness::new(&ts.store);
            h.failpoints.set(
                "create_load_balancer",
                failing_step,
                octavia_flows::FailAction::Error,
            );
            let (lb, _) = ts
                .store
                .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
                .await
                .unwrap();
            let (_, out) = h.run_next().await;
            assert!(
                matches!(&out, FlowOutcome::Reverted { step, .. } if step == failing_step),
                "{out:?}"
            );
            assert_eq!(h.lb_status(lb.id).await, ProvisioningStatus::Error);

            h.log.clear();
            let job = ts.store.delete_load_balancer(lb.id, false).await.unwrap();
            assert_eq!(
                h.run_next().await.1,
                FlowOutcome::Succeeded,
                "{failing_step}"
            );
            assert_eq!(h.job(job).await.state, JobState::Done);
            assert_eq!(h.log.count("network.allocate_vip"), 0, "{:?}", h.log.ops());
            assert_eq!(h.log.count("network.deallocate_vip"), 1);
            assert!(ts.store.get_load_balancer(lb.id).await.unwrap().is_none());
            // The amphora the failed create reverted is deleted with its load balancer
            // (DELETED rows are not listed).
            assert!(h.amphorae(lb.id).await.is_empty());
        }
    }
}

#[tokio::test]
async fn child_objects_push_configuration_and_settle() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        let amp = h.amphorae(lb_id).await.remove(0);

        let (l, _) = ts
            .store
            .create_listener(&listener(lb_id, ListenerProtocol::Http, 80))
            .await
            .unwrap();
        let (job, out) = h.run_next().await;
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(job.spec.kind(), "create_listener");
        assert_eq!(
            h.job(job.id).await.completed_steps,
            strings(&["update_amphorae"])
        );
        let l = ts.store.get_listener(l.id).await.unwrap().unwrap();
        assert_eq!(l.provisioning_status, ProvisioningStatus::Active);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);

        let (p, _) = ts
            .store
            .create_pool(&pool(lb_id, PoolProtocol::Http), Some(l.id))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);

        h.log.clear();
        let (m, job_id) = ts
            .store
            .create_member(&Member {
                subnet_id: Some("member-subnet".into()),
                ..member(p.id, "10.1.1.5", 8080)
            })
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert_eq!(
            h.job(job_id).await.completed_steps,
            strings(&["plug_member_networks", "update_amphorae"])
        );
        let m = ts.store.get_member(m.id).await.unwrap().unwrap();
        assert_eq!(m.provisioning_status, ProvisioningStatus::Active);
        // The member's network was plugged into the amphora, then the configuration
        // naming listener, pool and member was uploaded and HAProxy reloaded.
        assert_in_order(
            &h.log.ops(),
            &[
                "network.plug_network",
                "amphora.plug_network",
                "amphora.upload_config",
                "amphora.reload",
            ],
        );
        let upload = h
            .log
            .calls_for(&amp.id.to_string())
            .into_iter()
            .find(|c| c.op == "amphora.upload_config")
            .unwrap();
        let cfg = &upload.detail;
        let vip = ts
            .store
            .get_load_balancer(lb_id)
            .await
            .unwrap()
            .unwrap()
            .vip
            .ip_address
            .expect("vip address stored");
        for needle in [
            format!("# Configuration for loadbalancer {lb_id}\n"),
            format!("\nfrontend {}\n", l.id),
            format!("    bind {vip}:80\n"),
            format!("    default_backend {}:{}\n", p.id, l.id),
            format!("\nbackend {}:{}\n", p.id, l.id),
            format!("    server {} 10.1.1.5:8080 weight 1\n", m.id),
        ] {
            assert!(cfg.contains(&needle), "{needle:?} not in\n{cfg}");
        }

        // Deleting the member pushes a configuration without it.
        h.log.clear();
        ts.store.delete_member(m.id).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let upload = h
            .log
            .calls()
            .into_iter()
            .find(|c| c.op == "amphora.upload_config")
            .unwrap();
        let cfg = &upload.detail;
        assert!(!cfg.contains(&m.id.to_string()), "{cfg}");
        assert!(!cfg.contains("10.1.1.5"), "{cfg}");
        assert!(!cfg.contains("\n    server "), "{cfg}");
        assert!(
            cfg.contains(&format!("\nbackend {}:{}\n", p.id, l.id)),
            "{cfg}"
        );
        assert!(ts.store.get_member(m.id).await.unwrap().is_none());
        assert_eq!(h.log.count("network.unplug_network"), 1);

        // Deleting the listener's default pool pushes the listener without a backend.
        h.log.clear();
        ts.store.delete_pool(p.id).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let upload = h
            .log
            .calls()
            .into_iter()
            .find(|c| c.op == "amphora.upload_config")
            .unwrap();
        let cfg = &upload.detail;
        assert!(cfg.contains(&format!("\nfrontend {}\n", l.id)), "{cfg}");
        assert!(!cfg.contains(&p.id.to_string()), "{cfg}");
        assert!(!cfg.contains("backend"), "{cfg}");
    }
}

#[tokio::test]
async fn child_failure_marks_object_error_and_parents_active() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        let (l, _) = ts
            .store
            .create_listener(&listener(lb_id, ListenerProtocol::Http, 80))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let (p, _) = ts
            .store
            .create_pool(&pool(lb_id, PoolProtocol::Http), Some(l.id))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);

        h.failpoints.set(
            "create_member",
            "update_amphorae",
            octavia_flows::FailAction::Error,
        );
        let (m, job_id) = ts
            .store
            .create_member(&member(p.id, "10.1.1.6", 8080))
            .await
            .unwrap();
        let (_, out) = h.run_next().await;
        assert!(matches!(&out, FlowOutcome::Reverted { step, .. } if step == "update_amphorae"));
        let rec = h.job(job_id).await;
        assert_eq!(rec.state, JobState::Failed);
        assert_eq!(rec.reverted_steps, strings(&["plug_member_networks"]));

        let m = ts.store.get_member(m.id).await.unwrap().unwrap();
        assert_eq!(m.provisioning_status, ProvisioningStatus::Error);
        let p = ts.store.get_pool(p.id).await.unwrap().unwrap();
        assert_eq!(p.provisioning_status, ProvisioningStatus::Active);
        let l = ts.store.get_listener(l.id).await.unwrap().unwrap();
        assert_eq!(l.provisioning_status, ProvisioningStatus::Active);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);
    }
}

#[tokio::test]
async fn cascade_delete_removes_configuration_vip_and_amphorae() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        let (l, _) = ts
            .store
            .create_listener(&listener(lb_id, ListenerProtocol::Http, 80))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let amp = h.amphorae(lb_id).await.remove(0);

        h.log.clear();
        let job_id = ts.store.delete_load_balancer(lb_id, true).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert_eq!(
            h.job(job_id).await.completed_steps,
            strings(&[
                "remove_listeners",
                "unplug_vip",
                "deallocate_vip",
                "delete_amphorae"
            ])
        );
        // The VIP is read from the store: a delete never asks for one.
        assert_eq!(
            h.log.ops(),
            [
                "amphora.remove_config",
                "network.unplug_vip",
                "network.deallocate_vip",
                "compute.delete"
            ]
        );
        // Soft-deleted (DELETED) rows are invisible to the store's readers.
        assert!(ts.store.get_load_balancer(lb_id).await.unwrap().is_none());
        assert!(ts.store.get_listener(l.id).await.unwrap().is_none());
        assert!(ts.store.get_amphora(amp.id).await.unwrap().is_none());
        assert!(h
            .log
            .calls()
            .iter()
            .any(|c| c.op == "compute.delete" && Some(&c.subject) == amp.compute_id.as_ref()));
    }
}

#[tokio::test]
async fn load_balancer_failover_replaces_the_amphora() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        let old = h.amphorae(lb_id).await.remove(0);

        let job_id = ts
            .store
            .enqueue_job(&NewJob {
                class: JobClass::Failover,
                spec: JobSpec {
                    action: Action::Failover,
                    target_kind: ObjectKind::LoadBalancer,
                    target_id: lb_id.uuid(),
                    locks: LockSet {
                        load_balancer_id: Some(lb_id),
                        ..LockSet::default()
                    },
                    cascade: false,
                    members: None,
                    amphora_id: None,
                    rotation: None,
                },
            })
            .await
            .unwrap();
        let (job, out) = h.run_next().await;
        assert_eq!(job.id, job_id);
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(
            h.job(job_id).await.completed_steps,
            strings(&[
                "replace_standby_pair",
                "build_amphora",
                "wait_for_agent",
                "plug_vip",
                "update_amphorae",
                "configure_vrrp",
                "delete_old_amphorae"
            ])
        );
        // The old amphora is DELETED (invisible to readers); the new one serves.
        assert!(ts.store.get_amphora(old.id).await.unwrap().is_none());
        let amps = h.amphorae(lb_id).await;
        assert_eq!(amps.len(), 1, "{amps:?}");
        let new = &amps[0];
        assert_ne!(new.id, old.id);
        assert_eq!(new.status, ProvisioningStatus::Allocated);
        assert_eq!(new.role, Some(AmphoraRole::Standalone));
        assert_eq!(new.ha_ip, old.ha_ip, "the replacement holds the same vip");
        assert!(h
            .log
            .calls()
            .iter()
            .any(|c| c.op == "compute.delete" && Some(&c.subject) == old.compute_id.as_ref()));
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);
    }
}

/// A build records the expiry of the certificate the instance boots with; a renewal job
/// issues a new one, installs it on the agent and records its expiry, releasing the
/// housekeeper's claim. A renewal that fails leaves the amphora serving, released, and due
/// again.
#[tokio::test]
async fn certificate_renewal_installs_a_new_certificate_and_records_its_expiry() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        let amp = h.amphorae(lb_id).await.remove(0);
        let booted_with = h.log.build_requests()[0].server_certificate.expires_at;
        assert_eq!(amp.cert_expiration, Some(booted_with));

        // Every certificate is due inside a 60-day buffer (they last 30 days).
        let far = octavia_model::housekeeping::HousekeepingPolicy {
            amphora_expiry_age: Duration::ZERO,
            load_balancer_expiry_age: Duration::ZERO,
            job_expiry_age: Duration::ZERO,
            cert_expiry_buffer: Duration::from_secs(60 * 86_400),
        }
        .renew_expiring_before(now());
        let claimed = ts.store.claim_certificate_renewals(far, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].0, amp.id);
        h.log.clear();
        let (job, out) = h.run_next().await;
        assert_eq!(job.id, claimed[0].1);
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(
            h.job(job.id).await.completed_steps,
            strings(&["rotate_certificate"])
        );
        assert_eq!(
            h.log.ops(),
            ["certificates.issue", "amphora.upload_server_certificate"]
        );
        let uploaded = h.log.calls()[1].detail.clone();
        let renewed = ts.store.get_amphora(amp.id).await.unwrap().unwrap();
        assert_eq!(
            renewed.cert_expiration.map(|e| e.to_string()),
            Some(uploaded)
        );
        assert!(renewed.cert_expiration >= amp.cert_expiration);
        assert!(!renewed.cert_busy);
        assert_eq!(renewed.status, ProvisioningStatus::Allocated);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);

        h.failpoints.set(
            "rotate_certificate_amphora",
            "rotate_certificate",
            octavia_flows::FailAction::Error,
        );
        let claimed = ts.store.claim_certificate_renewals(far, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let (_, out) = h.run_next().await;
        assert!(matches!(out, FlowOutcome::Reverted { .. }), "{out:?}");
        assert_eq!(h.job(claimed[0].1).await.state, JobState::Failed);
        let after = ts.store.get_amphora(amp.id).await.unwrap().unwrap();
        assert_eq!(after.status, ProvisioningStatus::Allocated);
        assert!(!after.cert_busy);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);
        let again = ts.store.claim_certificate_renewals(far, 10).await.unwrap();
        assert_eq!(again.len(), 1, "due again after a failed renewal");
    }
}

fn http_monitor(pool: PoolId) -> HealthMonitor {
    HealthMonitor {
        url_path: Some("/healthz".into()),
        expected_codes: Some("200,202".into()),
        http_version: Some(1.1),
        domain_name: Some("www.example.com".into()),
        ..health_monitor(pool, HealthMonitorType::Http)
    }
}

#[tokio::test]
async fn pushed_configuration_is_accepted_by_haproxy() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().display().to_string();
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let mut h = Harness::new(&ts.store);
        // Paths inside the test's directory, so `haproxy -c` finds nothing of the host's.
        h.render = RenderSettings {
            base_path: base.clone(),
            log_target: format!("{base}/log.sock"),
            user: None,
            group: None,
            ..RenderSettings::default()
        };
        let lb_id = h.active_lb().await;
        let (l, _) = ts
            .store
            .create_listener(&listener(lb_id, ListenerProtocol::Http, 8080))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let (p, _) = ts
            .store
            .create_pool(&pool(lb_id, PoolProtocol::Http), Some(l.id))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let mut members = Vec::new();
        for ip in ["10.1.1.5", "10.1.1.6"] {
            let (m, _) = ts
                .store
                .create_member(&member(p.id, ip, 8080))
                .await
                .unwrap();
            assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
            members.push(m);
        }
        h.log.clear();
        let (hm, _) = ts
            .store
            .create_health_monitor(&http_monitor(p.id))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        let hm = ts.store.get_health_monitor(hm.id).await.unwrap().unwrap();
        assert_eq!(hm.provisioning_status, ProvisioningStatus::Active);

        let uploads: Vec<_> = h
            .log
            .calls()
            .into_iter()
            .filter(|c| c.op == "amphora.upload_config")
            .collect();
        assert_eq!(uploads.len(), 1, "{uploads:?}");
        let cfg = &uploads[0].detail;
        for needle in [
            format!("\nfrontend {}\n", l.id),
            "    mode http\n".to_string(),
            "    option httpchk GET /healthz HTTP/1.1\n".to_string(),
            "    http-check expect rstatus ^(200|202)$\n".to_string(),
            format!(
                "    server {} 10.1.1.5:8080 weight 1 check inter 5s fall 3 rise 2\n",
                members[0].id
            ),
            format!(
                "    server {} 10.1.1.6:8080 weight 1 check inter 5s fall 3 rise 2\n",
                members[1].id
            ),
        ] {
            assert!(cfg.contains(&needle), "{needle:?} not in\n{cfg}");
        }

        let Some(haproxy) =
            octavia_test_support::require::haproxy("the haproxy -c check of pushed configurations")
        else {
            continue;
        };
        let path = tmp.path().join(format!("{lb_id}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let out = Command::new(haproxy)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("run haproxy -c");
        assert!(
            out.status.success(),
            "haproxy -c refused the pushed configuration:\n{}{}\n{cfg}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
/// A child the renderer refuses goes ERROR without a retry, and does not wedge its load
/// balancer: later jobs (another listener, a failover, its own delete) leave it out of the
/// configuration and succeed (regression: every later job of the load balancer failed).
async fn unrenderable_listener_goes_error_without_wedging_its_load_balancer() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb_id = h.active_lb().await;
        h.log.clear();
        let (l, job_id) = ts
            .store
            .create_listener(&Listener {
                protocol: ListenerProtocol::Udp,
                ..listener(lb_id, ListenerProtocol::Http, 53)
            })
            .await
            .unwrap();
        let (_, out) = h.run_next().await;
        assert!(
            matches!(&out, FlowOutcome::Reverted { step, .. } if step == "update_amphorae"),
            "{out:?}"
        );
        let rec = h.job(job_id).await;
        assert_eq!(rec.state, JobState::Failed);
        let error = rec.error.unwrap();
        assert!(
            error.contains(&format!(
                "render haproxy configuration of load balancer {lb_id}: unsupported: listener {}",
                l.id
            )),
            "{error}"
        );
        // Nothing reached the amphora.
        assert_eq!(h.log.count("amphora.upload_config"), 0);
        assert_eq!(h.log.count("amphora.reload"), 0);
        let l = ts.store.get_listener(l.id).await.unwrap().unwrap();
        assert_eq!(l.provisioning_status, ProvisioningStatus::Error);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);

        // Later jobs of the load balancer leave the ERROR listener out and succeed.
        h.log.clear();
        let (http, _) = ts
            .store
            .create_listener(&listener(lb_id, ListenerProtocol::Http, 80))
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert_eq!(h.log.count("amphora.upload_config"), 1);
        let job = ts
            .store
            .failover_load_balancer(lb_id, JobClass::Operator)
            .await
            .unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert_eq!(h.job(job).await.state, JobState::Done);
        let l = ts.store.get_listener(l.id).await.unwrap().unwrap();
        assert_eq!(l.provisioning_status, ProvisioningStatus::Error);

        // Deleting it always works; then deleting the last listener removes the configuration.
        h.log.clear();
        ts.store.delete_listener(l.id).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert!(ts.store.get_listener(l.id).await.unwrap().is_none());
        ts.store.delete_listener(http.id).await.unwrap();
        assert_eq!(h.run_next().await.1, FlowOutcome::Succeeded);
        assert_eq!(h.log.count("amphora.remove_config"), 1);
        assert_eq!(h.lb_status(lb_id).await, ProvisioningStatus::Active);
    }
}

/// A single-call tree under `lb`, as the API resolves one: listener HTTP 80 whose default
/// pool `web` has an HTTP monitor and two members on a member subnet, and an L7 policy
/// sending `/api` paths to pool `api` (one member on the same subnet).
fn single_call_graph(lb: LoadBalancerId) -> LoadBalancerGraph {
    let on_subnet = |m: Member| Member {
        subnet_id: Some("member-subnet".into()),
        ..m
    };
    let web = pool(lb, PoolProtocol::Http);
    let api = pool(lb, PoolProtocol::Http);
    let monitored = |ip: &str| Member {
        operating_status: OperatingStatus::Offline,
        ..on_subnet(member(web.id, ip, 8080))
    };
    let l = Listener {
        default_pool_id: Some(web.id),
        ..listener(lb, ListenerProtocol::Http, 80)
    };
    let policy = l7policy(l.id, 1, Some(api.id));
    let rule = l7rule(
        policy.id,
        L7RuleType::Path,
        L7RuleCompareType::StartsWith,
        "/api",
    );
    LoadBalancerGraph {
        pools: vec![
            PoolGraph {
                health_monitor: Some(health_monitor(web.id, HealthMonitorType::Http)),
                members: vec![monitored("10.1.1.5"), monitored("10.1.1.6")],
                pool: web,
            },
            PoolGraph {
                health_monitor: None,
                members: vec![on_subnet(member(api.id, "10.1.1.7", 8080))],
                pool: api,
            },
        ],
        listeners: vec![ListenerGraph {
            listener: l,
            l7policies: vec![L7PolicyGraph {
                policy,
                rules: vec![rule],
            }],
        }],
    }
}

/// Every provisioning status of the stored tree of `lb`, with what each object is.
async fn tree_statuses(store: &Store, lb: LoadBalancerId) -> Vec<(String, ProvisioningStatus)> {
    let t = store.load_balancer_tree(lb).await.unwrap().expect("tree");
    let mut out = vec![(
        format!("load balancer {lb}"),
        t.load_balancer.provisioning_status,
    )];
    let named = |kind: &str, id: String, s: ProvisioningStatus| (format!("{kind} {id}"), s);
    out.extend(
        t.listeners
            .iter()
            .map(|x| named("listener", x.id.to_string(), x.provisioning_status)),
    );
    out.extend(
        t.pools
            .iter()
            .map(|x| named("pool", x.id.to_string(), x.provisioning_status)),
    );
    out.extend(
        t.members
            .iter()
            .map(|x| named("member", x.id.to_string(), x.provisioning_status)),
    );
    out.extend(
        t.health_monitors
            .iter()
            .map(|x| named("health monitor", x.id.to_string(), x.provisioning_status)),
    );
    out.extend(
        t.l7policies
            .iter()
            .map(|x| named("l7 policy", x.id.to_string(), x.provisioning_status)),
    );
    out.extend(
        t.l7rules
            .iter()
            .map(|x| named("l7 rule", x.id.to_string(), x.provisioning_status)),
    );
    out
}

#[tokio::test]
async fn single_call_tree_is_built_by_one_create_job() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        let lb = load_balancer(PROJECT, Topology::Single);
        let g = single_call_graph(lb.id);
        let (tree, job_id) = ts.store.create_load_balancer_graph(&lb, &g).await.unwrap();
        let before = tree_statuses(&ts.store, lb.id).await;
        assert_eq!(before.len(), 10, "{before:?}");
        assert!(
            before
                .iter()
                .all(|(_, s)| *s == ProvisioningStatus::PendingCreate),
            "{before:?}"
        );
        assert_eq!(tree.members.len(), 3);

        let (job, out) = h.run_next().await;
        assert_eq!(job.id, job_id);
        assert_eq!(out, FlowOutcome::Succeeded, "{engine:?}");
        assert_eq!(
            h.job(job_id).await.completed_steps,
            strings(&[
                "allocate_vip",
                "build_amphora",
                "wait_for_agent",
                "plug_vip",
                "plug_member_networks",
                "update_amphorae",
                "configure_vrrp"
            ])
        );
        // One job settled everything; nothing else was queued.
        let next = ts
            .store
            .claim_job("flow-test", Duration::from_secs(30), &ClassCaps::default())
            .await
            .unwrap();
        assert!(next.is_none(), "{next:?}");
        for (what, status) in tree_statuses(&ts.store, lb.id).await {
            assert_eq!(status, ProvisioningStatus::Active, "{what}");
        }

        // The members' network is plugged once, before the one configuration that sends
        // traffic to them.
        assert_in_order(
            &h.log.ops(),
            &[
                "network.allocate_vip",
                "compute.build",
                "amphora.wait_for_connectivity",
                "network.plug_vip",
                "amphora.plug_vip",
                "network.plug_network",
                "amphora.plug_network",
                "amphora.upload_config",
            ],
        );
        assert_eq!(h.log.count("network.plug_network"), 1);
        assert_eq!(h.log.count("amphora.upload_config"), 1);
        assert_eq!(h.log.count("amphora.remove_config"), 0);
        let cfg = h
            .log
            .calls()
            .into_iter()
            .find(|c| c.op == "amphora.upload_config")
            .unwrap()
            .detail;
        let (web, api) = (&g.pools[0], &g.pools[1]);
        let l = &g.listeners[0].listener;
        let rule = &g.listeners[0].l7policies[0].rules[0];
        let mut needles = vec![
            format!("\nfrontend {}\n", l.id),
            format!("    default_backend {}:{}\n", web.pool.id, l.id),
            format!("    acl {} path -m beg /api\n", rule.id),
            format!("    use_backend {}:{} if {}\n", api.pool.id, l.id, rule.id),
            format!("\nbackend {}:{}\n", web.pool.id, l.id),
            format!("\nbackend {}:{}\n", api.pool.id, l.id),
            "    option httpchk GET /\n".to_string(),
        ];
        // The monitored pool's members are checked, the other pool's are not.
        for m in &web.members {
            let ip = &m.ip_address;
            needles.push(format!(
                "    server {} {ip}:8080 weight 1 check inter 5s",
                m.id
            ));
        }
        for m in &api.members {
            let ip = &m.ip_address;
            needles.push(format!("    server {} {ip}:8080 weight 1\n", m.id));
        }
        for needle in needles {
            assert!(cfg.contains(&needle), "{needle:?} not in\n{cfg}");
        }
    }
}

#[tokio::test]
async fn single_call_tree_whose_create_fails_reverts_and_goes_error() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let h = Harness::new(&ts.store);
        h.failpoints.set(
            "create_load_balancer",
            "update_amphorae",
            octavia_flows::FailAction::Error,
        );
        let lb = load_balancer(PROJECT, Topology::Single);
        let (_, job_id) = ts
            .store
            .create_load_balancer_graph(&lb, &single_call_graph(lb.id))
            .await
            .unwrap();
        let (_, out) = h.run_next().await;
        assert!(
            matches!(&out, FlowOutcome::Reverted { step, .. } if step == "update_amphorae"),
            "{out:?}"
        );
        assert_eq!(
            h.job(job_id).await.reverted_steps,
            strings(&[
                "plug_member_networks",
                "plug_vip",
                "wait_for_agent",
                "build_amphora",
                "allocate_vip"
            ])
        );
        let statuses = tree_statuses(&ts.store, lb.id).await;
        assert_eq!(statuses.len(), 10);
        for (what, status) in statuses {
            assert_eq!(status, ProvisioningStatus::Error, "{what}");
        }
        assert_eq!(h.log.count("amphora.upload_config"), 0);
        assert_in_order(
            &h.log.ops(),
            &[
                "network.unplug_vip",
                "compute.delete",
                "network.deallocate_vip",
            ],
        );
    }
}

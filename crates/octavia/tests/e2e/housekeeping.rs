//! Housekeeping: amphora certificates renewed again and again under traffic, without a
//! failover or a lost agent connection; the `octavia-housekeeping` binary purging old rows,
//! two of them on one database.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use octavia_db::Engine;
use octavia_model::{now, Amphora, AmphoraId, ProvisioningStatus};
use octavia_test_support::{engines, eventually, TestStore};
use serde_json::Value;

use crate::lab::{can_run, Lab, Traffic};
use crate::support::{free_port, write_config, Proc};

/// The one amphora of `lb` as the admin API shows it.
async fn amphora_of(lab: &Lab, lb: &str) -> Value {
    let v = lab
        .call(
            reqwest::Method::GET,
            &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
            None,
            200,
        )
        .await;
    let amps = v["amphorae"].as_array().cloned().unwrap_or_default();
    assert_eq!(amps.len(), 1, "one amphora: {v}");
    amps[0].clone()
}

fn expiry(amp: &Value) -> NaiveDateTime {
    let s = amp["cert_expiration"]
        .as_str()
        .unwrap_or_else(|| panic!("cert_expiration recorded: {amp}"));
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("API time format")
}

/// The end of validity of the certificate the agent at `ip` serves now, read by `openssl
/// s_client` presenting the controller's client certificate (the agent requires one).
fn served_expiry(lab: &Lab, ip: &str) -> NaiveDateTime {
    let certs = lab.dir.path().join("certs");
    let client = certs.join("client.pem");
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{ip}:9443"), "-cert"])
        .arg(&client)
        .arg("-key")
        .arg(&client)
        .arg("-CAfile")
        .arg(certs.join("server_ca.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-enddate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    std::io::Write::write_all(x509.stdin.as_mut().expect("stdin"), &out.stdout)
        .expect("feed openssl x509");
    let end = x509.wait_with_output().expect("openssl x509");
    let text = String::from_utf8_lossy(&end.stdout);
    let date = text
        .trim()
        .strip_prefix("notAfter=")
        .unwrap_or_else(|| panic!("no certificate served by {ip}: {text}"));
    NaiveDateTime::parse_from_str(date, "%b %e %H:%M:%S %Y GMT").expect("openssl date format")
}

/// Amphora certificates of 40 s, renewed once less than 30 s are left: a renewal about
/// every 10 s. Over four renewals, the recorded expiry moves forward each time and is the
/// one the agent serves; the amphora is never failed over (same id, ALLOCATED, heartbeats
/// keep its member ONLINE); requests through the VIP never fail; and once the certificate
/// it was built with has expired, the controller still configures the amphora through its
/// agent (a listener added goes ACTIVE and serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amphora_certificates_renew_repeatedly_without_losing_the_amphora() {
    if !can_run() {
        return;
    }
    let lab = Lab::with_certificates(
        "hkcert",
        20,
        1,
        "cert_validity_time = \"40s\"",
        "[house_keeping]\ncert_expiry_buffer = \"30s\"\ncert_interval = \"1s\"\n",
    )
    .await;
    let (lb, vip) = lab.create_lb("hk-certs").await;
    let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
    lab.add_members(&lb, &pool, 0..1).await;
    let first = amphora_of(&lab, &lb).await;
    let amp_id = first["id"].as_str().expect("amphora id").to_string();
    let ip = first["lb_network_ip"]
        .as_str()
        .expect("address")
        .to_string();
    let built_with = expiry(&first);

    let seen = Arc::new(Mutex::new(BTreeSet::from([built_with])));
    let requests = Arc::new(Mutex::new(0usize));
    let traffic = Arc::new(Traffic::new(&vip, 80, "/"));
    let lab = Arc::new(lab);
    eventually(
        "four renewals, and the certificate the amphora was built with expired",
        Duration::from_secs(120),
        || {
            let (lab, lb, amp_id, seen, requests, traffic) = (
                lab.clone(),
                lb.clone(),
                amp_id.clone(),
                seen.clone(),
                requests.clone(),
                traffic.clone(),
            );
            async move {
                let tally = traffic.run(5).await;
                assert_eq!(tally.failed, 0, "requests failed: {:?}", tally.errors);
                *requests.lock().unwrap() += tally.ok;
                let amp = amphora_of(&lab, &lb).await;
                assert_eq!(amp["id"], amp_id, "the amphora was replaced\n{}", lab.log());
                assert_eq!(amp["status"], "ALLOCATED", "{amp}");
                let recorded = expiry(&amp);
                let mut seen = seen.lock().unwrap();
                let newest = *seen.iter().next_back().expect("one expiry");
                assert!(
                    recorded >= newest,
                    "expiry went back: {recorded} < {newest}"
                );
                seen.insert(recorded);
                (seen.len() >= 5 && now() > built_with + chrono::Duration::seconds(2)).then_some(())
            }
        },
    )
    .await;
    let renewals = seen.lock().unwrap().len() - 1;
    let requests = *requests.lock().unwrap();

    // The agent serves the certificate whose expiry is recorded (it may have been renewed
    // once more between the two reads).
    let recorded = expiry(&amphora_of(&lab, &lb).await);
    let served = served_expiry(&lab, &ip);
    assert!(
        served > built_with,
        "served {served}, built with {built_with}"
    );
    assert!(served >= recorded, "served {served}, recorded {recorded}");

    // The agent API works with the renewed certificate: a new listener is pushed and serves.
    let (_, pool2) = lab.http_listener_and_pool(&lb, 8080).await;
    lab.add_members(&lb, &pool2, 0..1).await;
    let tally = Traffic::new(&vip, 8080, "/").run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    // Heartbeats went on: they bring the listeners' and the load balancer's health (the new
    // listener's with the next heartbeat).
    let all_online = |tree: &Value| {
        let lb_tree = &tree["statuses"]["loadbalancer"];
        let listeners = lb_tree["listeners"].as_array().cloned().unwrap_or_default();
        lb_tree["operating_status"] == "ONLINE"
            && listeners.len() == 2
            && listeners.iter().all(|l| l["operating_status"] == "ONLINE")
    };
    eventually(
        "the load balancer and both listeners ONLINE",
        Duration::from_secs(10),
        || {
            let (lab, lb) = (lab.clone(), lb.clone());
            async move { all_online(&lab.status(&lb).await).then_some(()) }
        },
    )
    .await;
    lab.assert_no_failover_queued().await;
    println!(
        "{renewals} renewals of amphora {amp_id} ({} expiries seen), {requests} requests \
         through the VIP, none failed",
        renewals + 1
    );
    lab.delete_cascade(&lb).await;
}

async fn purge_with_two_housekeepers(engine: Engine) {
    let ts = TestStore::new(engine).await;
    let store = ts.store.clone();
    let old = now() - chrono::Duration::days(10);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let a = Amphora {
            updated_at: Some(old),
            ..Amphora::new(AmphoraId::new(), None, ProvisioningStatus::Deleted, old)
        };
        store.save_amphora(&a).await.expect("save amphora");
        ids.push(a.id);
    }
    let live = Amphora {
        updated_at: Some(old),
        ..Amphora::new(AmphoraId::new(), None, ProvisioningStatus::Ready, old)
    };
    store.save_amphora(&live).await.expect("save amphora");

    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[house_keeping]\ncleanup_interval = \"200ms\"\namphora_expiry_age = \"1day\"\n";
    let procs: Vec<Proc> = ["hk1", "hk2"]
        .into_iter()
        .map(|name| {
            let cfg = write_config(dir.path(), name, &ts.url, free_port(), extra);
            Proc::start(name, env!("CARGO_BIN_EXE_octavia-housekeeping"), &cfg, &[])
        })
        .collect();
    eventually(
        "the DELETED amphorae purged",
        Duration::from_secs(20),
        || {
            let (store, ids) = (store.clone(), ids.clone());
            async move {
                for id in ids {
                    if store.get_amphora_any(id).await.ok()?.is_some() {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    assert!(store.get_amphora_any(live.id).await.unwrap().is_some());
    // Each row was deleted by one of them: the purge counts they log add up to 20 (the
    // line is written once the pass ends, after the rows are gone).
    let logged = || -> (u64, String) {
        let logs: Vec<String> = ["hk1", "hk2"]
            .iter()
            .map(|name| {
                std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
            })
            .collect();
        let purged = logs
            .iter()
            .flat_map(|log| log.lines())
            .filter(|l| l.contains("purged expired rows"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("amphorae="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum();
        (purged, logs.join("\n"))
    };
    eventually("the purges logged", Duration::from_secs(10), || {
        std::future::ready((logged().0 >= 20).then_some(()))
    })
    .await;
    let (purged, logs) = logged();
    assert_eq!(purged, 20, "each row purged once:\n{logs}");
    drop(procs);
}

/// Two `octavia-housekeeping` processes on one database: the DELETED amphorae older than
/// `amphora_expiry_age` are purged, each by one of them; a live one stays.
#[tokio::test(flavor = "multi_thread")]
async fn housekeepers_purge_old_rows_once() {
    for engine in engines() {
        purge_with_two_housekeepers(engine).await;
    }
}

#[test]
fn housekeeper_refuses_a_renewal_buffer_as_long_as_the_validity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        "bad",
        &format!("sqlite://{}/db.sqlite", dir.path().display()),
        free_port(),
        "[certificates]\ncert_validity_time = \"10days\"\n[house_keeping]\ncert_expiry_buffer = \"14days\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_octavia-housekeeping"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run octavia-housekeeping");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cert_expiry_buffer"), "{err}");
}

//! The receiver's key ring: the configuration's keys (`heartbeat_key`, the bootstrap, and
//! `heartbeat_previous_keys`) combined with the keys stored in the database by
//! `octavia heartbeat-key rotate`, re-read every refresh interval. Each refresh that finds a
//! different ring hands it to the receiver at once, and the health manager writes which
//! stored keys it accepts (`Store::record_heartbeat_key_ring`), so a rotation can wait until
//! every health manager accepts the new key before any amphora signs with it.

use std::time::{Duration, Instant};

use octavia_db::{HeartbeatKey, HeartbeatKeyState, Store};
use tokio::sync::watch;

use crate::Secret;

/// One key the receiver accepts, with its stored id (`None`: a key of the configuration
/// only). The first key of a ring is the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingKey {
    pub id: Option<i64>,
    pub secret: Secret,
}

/// Where the receiver reads the stored keys, and under which name it reports its ring.
#[derive(Debug, Clone)]
pub struct StoredKeys {
    /// This health manager's name in `heartbeat_key_ring` (`<host>-<pid>`).
    pub name: String,
    /// Time between two reads of the stored keys.
    pub refresh: Duration,
}

/// Least time between two writes of an unchanged ring (the write also says "alive").
pub const RING_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// A health manager whose ring was written less than this ago counts as running.
pub const RING_SEEN_WITHIN: Duration = Duration::from_secs(30);

/// The ring a receiver accepts: with a CURRENT stored key, the stored CURRENT and PREVIOUS
/// keys and then the configuration's `heartbeat_previous_keys` (its `heartbeat_key` was
/// only the bootstrap: a rotation stored it and retires it like any other); without one,
/// the configuration's keys as they are. A secret listed twice is kept once, with its
/// stored id.
pub fn effective_ring(config: &[Secret], stored: &[HeartbeatKey]) -> Vec<RingKey> {
    let mut stored: Vec<&HeartbeatKey> = stored
        .iter()
        .filter(|k| k.state != HeartbeatKeyState::Retired)
        .collect();
    stored.sort_by_key(|k| (k.state != HeartbeatKeyState::Current, -k.id));
    let has_current = stored
        .first()
        .is_some_and(|k| k.state == HeartbeatKeyState::Current);
    let mut ring: Vec<RingKey> = Vec::new();
    let config_keys: &[Secret] = if has_current {
        for k in &stored {
            ring.push(RingKey {
                id: Some(k.id),
                secret: Secret::new(k.secret()),
            });
        }
        config.get(1..).unwrap_or(&[])
    } else {
        config
    };
    for k in config_keys {
        if !ring.iter().any(|r| r.secret == *k) {
            ring.push(RingKey {
                id: None,
                secret: k.clone(),
            });
        }
    }
    ring
}

/// The stored ids of a ring, newest first.
pub fn stored_ids(ring: &[RingKey]) -> Vec<i64> {
    let mut ids: Vec<i64> = ring.iter().filter_map(|k| k.id).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Keep `out` up to date (until the receiver aborts it): the configuration's keys from
/// `config` (when it changes), the stored ones every `stored.refresh` (when given).
pub(crate) async fn run_refresh(
    store: Store,
    mut config: Option<watch::Receiver<Vec<Secret>>>,
    mut config_keys: Vec<Secret>,
    stored: Option<StoredKeys>,
    out: watch::Sender<Vec<RingKey>>,
) {
    let mut last_stored: Vec<HeartbeatKey> = Vec::new();
    let mut reported: Option<(Vec<i64>, Instant)> = None;
    loop {
        if let Some(s) = &stored {
            match store.accepted_heartbeat_keys().await {
                Ok(keys) => last_stored = keys,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the stored heartbeat keys; keeping the ring as it is")
                }
            }
            let ring = effective_ring(&config_keys, &last_stored);
            publish(&out, ring.clone());
            let ids = stored_ids(&ring);
            let due = match &reported {
                Some((prev, at)) => *prev != ids || at.elapsed() >= RING_REPORT_INTERVAL,
                None => true,
            };
            if due {
                match store.record_heartbeat_key_ring(&s.name, &ids).await {
                    Ok(()) => reported = Some((ids, Instant::now())),
                    Err(error) => {
                        tracing::warn!(%error, "cannot record the heartbeat keys this health manager accepts")
                    }
                }
            }
        } else {
            publish(&out, effective_ring(&config_keys, &last_stored));
        }
        let refresh = stored
            .as_ref()
            .map_or(Duration::from_secs(3600), |s| s.refresh);
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            changed = async {
                match config.as_mut() {
                    Some(c) => c.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                match config.as_mut() {
                    Some(c) if changed => {
                        let new = c.borrow_and_update().clone();
                        if !new.is_empty() {
                            config_keys = new;
                        }
                    }
                    _ => config = None,
                }
            }
        }
    }
}

fn publish(out: &watch::Sender<Vec<RingKey>>, ring: Vec<RingKey>) {
    out.send_if_modified(|cur| {
        if *cur == ring || ring.is_empty() {
            return false;
        }
        let ids: Vec<String> = ring
            .iter()
            .map(|k| k.id.map_or("config".to_string(), |i| i.to_string()))
            .collect();
        tracing::info!(keys = ?ids, "heartbeat key ring replaced (current key first)");
        *cur = ring;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, secret: &str, state: HeartbeatKeyState) -> HeartbeatKey {
        HeartbeatKey::new(id, secret, state, octavia_model::now())
    }

    fn secrets(ring: &[RingKey]) -> Vec<(Option<i64>, &str)> {
        ring.iter().map(|k| (k.id, k.secret.expose())).collect()
    }

    #[test]
    fn configuration_keys_rule_until_a_key_is_stored() {
        let config = [Secret::new("boot"), Secret::new("older")];
        assert_eq!(
            secrets(&effective_ring(&config, &[])),
            [(None, "boot"), (None, "older")]
        );
    }

    #[test]
    fn stored_current_and_previous_replace_the_bootstrap_key() {
        let config = [Secret::new("boot"), Secret::new("older")];
        let keys = [
            stored(1, "boot", HeartbeatKeyState::Previous),
            stored(2, "new", HeartbeatKeyState::Current),
        ];
        assert_eq!(
            secrets(&effective_ring(&config, &keys)),
            [(Some(2), "new"), (Some(1), "boot"), (None, "older")]
        );
        // Once retired, the bootstrap key is accepted no more, although the file names it.
        let keys = [
            stored(1, "boot", HeartbeatKeyState::Retired),
            stored(2, "new", HeartbeatKeyState::Current),
        ];
        assert_eq!(
            secrets(&effective_ring(&config, &keys)),
            [(Some(2), "new"), (None, "older")]
        );
        assert_eq!(stored_ids(&effective_ring(&config, &keys)), [2]);
    }

    #[test]
    fn a_secret_listed_twice_keeps_its_stored_id() {
        let config = [Secret::new("boot"), Secret::new("new")];
        let keys = [stored(2, "new", HeartbeatKeyState::Current)];
        assert_eq!(secrets(&effective_ring(&config, &keys)), [(Some(2), "new")]);
    }
}

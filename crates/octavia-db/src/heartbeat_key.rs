//! The heartbeat key ring (`octavia heartbeat-key rotate`, migration 0007): the keys every
//! health manager accepts and every worker writes into new amphorae, and what each health
//! manager and each amphora uses now.
//!
//! `heartbeat_key` holds at most one CURRENT key and at most one PREVIOUS key (unique
//! partial indexes: a second rotation cannot start while one is in progress, whichever
//! process tries); a rotation is in progress while a PREVIOUS key exists. The command that
//! drives it holds a lease on the CURRENT row (`rotation_owner`, `rotation_seen_at`), so a
//! second command running at the same time is refused and a command that died is replaced
//! once its lease is old. Health managers write the keys they accept to
//! `heartbeat_key_ring` at each refresh; the health batch writes which key verified each
//! amphora's newest heartbeat (`amphora_health.heartbeat_key_id`).

use std::time::Duration;

use octavia_model::*;

use crate::db::{args, Conn};
use crate::rows::parse;
use crate::{DbError, JobRecord, Result, Store};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeartbeatKeyState {
    /// Signs new amphorae's heartbeats; accepted.
    Current,
    /// The key a rotation replaces: still accepted until every amphora reported with the
    /// current one.
    Previous,
    /// Accepted by no one.
    Retired,
}

impl HeartbeatKeyState {
    /// The `state` column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "CURRENT",
            Self::Previous => "PREVIOUS",
            Self::Retired => "RETIRED",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "CURRENT" => Ok(Self::Current),
            "PREVIOUS" => Ok(Self::Previous),
            "RETIRED" => Ok(Self::Retired),
            other => Err(crate::db::corrupt("heartbeat key state", other)),
        }
    }
}

/// One key of the ring. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct HeartbeatKey {
    /// The key's generation: 1, 2, ... in the order keys were added.
    pub id: i64,
    secret: String,
    pub state: HeartbeatKeyState,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// The `octavia heartbeat-key rotate` driving the rotation to this key, and when it
    /// last said so.
    pub rotation_owner: Option<String>,
    pub rotation_seen_at: Option<Timestamp>,
}

impl HeartbeatKey {
    /// A key as a row holds it (no retirement, no rotation lease), for code that computes
    /// with rings, and its tests.
    pub fn new(id: i64, secret: &str, state: HeartbeatKeyState, created_at: Timestamp) -> Self {
        Self {
            id,
            secret: secret.to_string(),
            state,
            created_at,
            retired_at: None,
            rotation_owner: None,
            rotation_seen_at: None,
        }
    }

    /// The secret, for the code that signs or verifies with it; never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatKey")
            .field("id", &self.id)
            .field("secret", &"***")
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("rotation_owner", &self.rotation_owner)
            .finish()
    }
}

/// What one health manager accepts now, as it last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeartbeatKeyRing {
    /// The health manager (`<host>-<pid>`).
    pub health_manager: String,
    /// The ids of the stored keys it accepts, newest first (keys of its configuration
    /// only are not listed).
    pub accepted: Vec<i64>,
    pub seen_at: Timestamp,
}

/// A live amphora and the key its newest verified heartbeat was signed with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AmphoraKeyReport {
    pub amphora_id: AmphoraId,
    pub status: ProvisioningStatus,
    /// `None`: no heartbeat yet, or signed with a key of the configuration only.
    pub heartbeat_key_id: Option<i64>,
    pub last_update: Option<Timestamp>,
}

type KeyRow = (
    i64,
    String,
    String,
    Timestamp,
    Option<Timestamp>,
    Option<String>,
    Option<Timestamp>,
);

const KEY_COLUMNS: &str =
    "id, secret, state, created_at, retired_at, rotation_owner, rotation_seen_at";

fn key(r: KeyRow) -> Result<HeartbeatKey> {
    Ok(HeartbeatKey {
        id: r.0,
        secret: r.1,
        state: HeartbeatKeyState::parse(&r.2)?,
        created_at: r.3,
        retired_at: r.4,
        rotation_owner: r.5,
        rotation_seen_at: r.6,
    })
}

/// The keys matching `cond`, newest first; with `lock`, the rows are locked for the rest of
/// the transaction (PostgreSQL; SQLite's write transaction holds the database).
async fn keys_in(c: &mut Conn<'_>, cond: &str, lock: bool) -> Result<Vec<HeartbeatKey>> {
    let lock = if lock { c.for_update() } else { "" };
    let rows: Vec<KeyRow> = c
        .fetch_all(
            &format!("SELECT {KEY_COLUMNS} FROM heartbeat_key WHERE {cond} ORDER BY id DESC{lock}"),
            vec![],
        )
        .await?;
    rows.into_iter().map(key).collect()
}

async fn insert_key(
    c: &mut Conn<'_>,
    secret: &str,
    owner: Option<&str>,
    t: Timestamp,
) -> Result<i64> {
    let next = c
        .count("SELECT COALESCE(MAX(id), 0) + 1 FROM heartbeat_key", vec![])
        .await?;
    c.execute(
        "INSERT INTO heartbeat_key (id, secret, state, created_at, rotation_owner, \
         rotation_seen_at) VALUES ($1, $2, 'CURRENT', $3, $4, $5)",
        args![next, secret, t, owner.map(str::to_string), owner.map(|_| t)],
    )
    .await?;
    Ok(next)
}

/// Whether a rotation lease taken at `seen_at` is still held at `t`.
fn lease_held(seen_at: Option<Timestamp>, t: Timestamp, lease: Duration) -> bool {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    seen_at.is_some_and(|s| t - s < lease)
}

impl Store {
    /// Every stored key, newest first.
    pub async fn heartbeat_keys(&self) -> Result<Vec<HeartbeatKey>> {
        let mut h = self.pool.acquire().await?;
        keys_in(&mut h.conn(), "1 = 1", false).await
    }

    /// The keys accepted now (CURRENT, then PREVIOUS); empty when the configuration's
    /// key is still the current one.
    pub async fn accepted_heartbeat_keys(&self) -> Result<Vec<HeartbeatKey>> {
        let mut h = self.pool.acquire().await?;
        let mut keys = keys_in(&mut h.conn(), "state <> 'RETIRED'", false).await?;
        keys.sort_by_key(|k| (k.state != HeartbeatKeyState::Current, -k.id));
        Ok(keys)
    }

    /// The CURRENT key, if the ring has one (else the configuration's key is current).
    pub async fn current_heartbeat_key(&self) -> Result<Option<HeartbeatKey>> {
        let mut h = self.pool.acquire().await?;
        Ok(keys_in(&mut h.conn(), "state = 'CURRENT'", false)
            .await?
            .pop())
    }

    /// Start a rotation to `new_secret`, driven by `owner`: the CURRENT key becomes
    /// PREVIOUS and `new_secret` the CURRENT one, in one transaction. When the ring is
    /// empty, `bootstrap` (the configuration's key, which the amphorae use now) is stored
    /// first as the key being replaced. Refused (Conflict) while a rotation is in progress,
    /// and (Invalid) when the new key is the current one. Returns the new key.
    pub async fn begin_heartbeat_key_rotation(
        &self,
        bootstrap: &str,
        new_secret: &str,
        owner: &str,
    ) -> Result<HeartbeatKey> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let t = now();
        let live = keys_in(&mut c, "state <> 'RETIRED'", true).await?;
        if let Some(p) = live.iter().find(|k| k.state == HeartbeatKeyState::Previous) {
            return Err(DbError::Conflict(format!(
                "a heartbeat key rotation is in progress (key {} replaces key {}): run \
                 `octavia heartbeat-key rotate` without a new key to resume it",
                live.iter()
                    .find(|k| k.state == HeartbeatKeyState::Current)
                    .map_or(0, |k| k.id),
                p.id
            )));
        }
        let current = live
            .iter()
            .find(|k| k.state == HeartbeatKeyState::Current)
            .map(|k| k.secret.clone());
        let old = current.as_deref().unwrap_or(bootstrap);
        if old == new_secret {
            return Err(DbError::Invalid(
                "the new heartbeat key is the current one; give another key".into(),
            ));
        }
        if current.is_none() {
            insert_key(&mut c, bootstrap, None, t).await?;
        }
        c.execute(
            "UPDATE heartbeat_key SET state = 'PREVIOUS', rotation_owner = NULL, \
             rotation_seen_at = NULL WHERE state = 'CURRENT'",
            vec![],
        )
        .await?;
        let id = insert_key(&mut c, new_secret, Some(owner), t).await?;
        let new = keys_in(&mut c, &format!("id = {id}"), false).await?.pop();
        tx.commit().await?;
        new.ok_or_else(|| crate::db::corrupt("heartbeat key", "inserted key not found"))
    }

    /// Take (or renew) the lease on the rotation in progress for `owner`. `Ok(None)`: no
    /// rotation is in progress. Conflict: another command holds it (renewed less than
    /// `lease` ago), named with its age.
    pub async fn claim_heartbeat_key_rotation(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<HeartbeatKey>> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let t = now();
        let live = keys_in(&mut c, "state <> 'RETIRED'", true).await?;
        let current = live.iter().find(|k| k.state == HeartbeatKeyState::Current);
        let rotating = live.iter().any(|k| k.state == HeartbeatKeyState::Previous);
        let Some(current) = current.filter(|_| rotating) else {
            return Ok(None);
        };
        if let Some(other) = current.rotation_owner.as_deref() {
            if other != owner && lease_held(current.rotation_seen_at, t, lease) {
                let age = current
                    .rotation_seen_at
                    .map_or(0, |s| (t - s).num_seconds());
                return Err(DbError::Conflict(format!(
                    "another `octavia heartbeat-key rotate` ({other}, last seen {age} s ago) \
                     drives the rotation to key {}; wait for it to end, or stop it and run \
                     this again to resume",
                    current.id
                )));
            }
        }
        c.execute(
            "UPDATE heartbeat_key SET rotation_owner = $1, rotation_seen_at = $2 WHERE id = $3",
            args![owner, t, current.id],
        )
        .await?;
        let mut key = current.clone();
        key.rotation_owner = Some(owner.to_string());
        key.rotation_seen_at = Some(t);
        tx.commit().await?;
        Ok(Some(key))
    }

    /// Give up `owner`'s lease on the rotation (Ctrl-C): another command may resume it at
    /// once.
    pub async fn release_heartbeat_key_rotation(&self, owner: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(
                "UPDATE heartbeat_key SET rotation_owner = NULL, rotation_seen_at = NULL \
                 WHERE rotation_owner = $1",
                args![owner],
            )
            .await?;
        tx.commit().await
    }

    /// End the rotation to key `current`: the PREVIOUS key is RETIRED (health managers drop
    /// it at their next refresh) and the lease released. Returns the retired key's id
    /// (`None`: nothing to retire, or `current` is not the CURRENT key any more).
    pub async fn retire_previous_heartbeat_key(&self, current: i64) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let live = keys_in(&mut c, "state <> 'RETIRED'", true).await?;
        if !live
            .iter()
            .any(|k| k.id == current && k.state == HeartbeatKeyState::Current)
        {
            return Ok(None);
        }
        let Some(prev) = live
            .iter()
            .find(|k| k.state == HeartbeatKeyState::Previous)
            .map(|k| k.id)
        else {
            return Ok(None);
        };
        c.execute(
            "UPDATE heartbeat_key SET state = 'RETIRED', retired_at = $1 WHERE id = $2",
            args![now(), prev],
        )
        .await?;
        c.execute(
            "UPDATE heartbeat_key SET rotation_owner = NULL, rotation_seen_at = NULL \
             WHERE id = $1",
            args![current],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(prev))
    }

    /// Record that `health_manager` accepts the stored keys `accepted` (newest first) now;
    /// the rows of health managers silent for a day (stopped, restarted under a new pid)
    /// go.
    pub async fn record_heartbeat_key_ring(
        &self,
        health_manager: &str,
        accepted: &[i64],
    ) -> Result<()> {
        let list: Vec<String> = accepted.iter().map(i64::to_string).collect();
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(
                "INSERT INTO heartbeat_key_ring (health_manager, newest_key, accepted, seen_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (health_manager) DO UPDATE SET \
                 newest_key = excluded.newest_key, accepted = excluded.accepted, \
                 seen_at = excluded.seen_at",
                args![
                    health_manager,
                    accepted.iter().copied().max(),
                    list.join(","),
                    now()
                ],
            )
            .await?;
        tx.conn()
            .execute(
                "DELETE FROM heartbeat_key_ring WHERE seen_at < $1",
                args![now() - chrono::Duration::days(1)],
            )
            .await?;
        tx.commit().await
    }

    /// The health managers that wrote their ring less than `within` ago, by name.
    pub async fn heartbeat_key_rings(&self, within: Duration) -> Result<Vec<HeartbeatKeyRing>> {
        let since = now() - chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
        let mut h = self.pool.acquire().await?;
        let rows: Vec<(String, String, Timestamp)> = h
            .conn()
            .fetch_all(
                "SELECT health_manager, accepted, seen_at FROM heartbeat_key_ring \
                 WHERE seen_at >= $1 ORDER BY health_manager",
                args![since],
            )
            .await?;
        rows.into_iter()
            .map(|(hm, accepted, seen_at)| {
                let accepted = accepted
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| parse::<i64>("heartbeat key id", s))
                    .collect::<Result<Vec<_>>>()?;
                Ok(HeartbeatKeyRing {
                    health_manager: hm,
                    accepted,
                    seen_at,
                })
            })
            .collect()
    }

    /// Every live amphora (ALLOCATED, and READY spares) with the key of its newest verified
    /// heartbeat, by id.
    pub async fn amphora_heartbeat_keys(&self) -> Result<Vec<AmphoraKeyReport>> {
        let mut h = self.pool.acquire().await?;
        let rows: Vec<(String, String, Option<i64>, Option<Timestamp>)> = h
            .conn()
            .fetch_all(
                "SELECT a.id, a.status, h.heartbeat_key_id, h.last_update FROM amphora a \
                 LEFT JOIN amphora_health h ON h.amphora_id = a.id \
                 WHERE a.status IN ('ALLOCATED', 'READY') ORDER BY a.id",
                vec![],
            )
            .await?;
        rows.into_iter()
            .map(|(id, status, key, last_update)| {
                Ok(AmphoraKeyReport {
                    amphora_id: parse("amphora id", &id)?,
                    status: parse("amphora status", &status)?,
                    heartbeat_key_id: key,
                    last_update,
                })
            })
            .collect()
    }

    /// The agent configuration pushes (`update_amphora` jobs) queued at or after `since`,
    /// oldest first: a heartbeat key rotation's progress.
    pub async fn agent_config_jobs_since(&self, since: Timestamp) -> Result<Vec<JobRecord>> {
        let kind = JobSpec::kind_of(Action::Update, ObjectKind::Amphora);
        self.jobs_where("kind = $1 AND created_at >= $2", args![kind, since])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_only_while_fresh() {
        let t = now();
        let lease = Duration::from_secs(30);
        assert!(lease_held(Some(t - chrono::Duration::seconds(5)), t, lease));
        assert!(!lease_held(
            Some(t - chrono::Duration::seconds(31)),
            t,
            lease
        ));
        assert!(!lease_held(None, t, lease));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = HeartbeatKey {
            id: 1,
            secret: "s3cret-key".into(),
            state: HeartbeatKeyState::Current,
            created_at: now(),
            retired_at: None,
            rotation_owner: None,
            rotation_seen_at: None,
        };
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}

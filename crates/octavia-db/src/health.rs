//! Heartbeat ingestion: `amphora_health`, listener statistics and operating statuses for a
//! batch of heartbeats, in one transaction (reference §2.5, §5.3, §5.4).
//!
//! Every statement takes the whole batch as one array parameter (a JSON array read with
//! `json_each` on SQLite, `UNNEST` of typed arrays on PostgreSQL), so a batch costs a fixed
//! number of statements whatever its size, and every statement text is prepared once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::db::{corrupt, Native as Exec};
use crate::rows::parse;
use crate::schema::Table;
use crate::{DbError, Result, Store};
use octavia_model::health::{
    apply_changes, heartbeat_status, listener_count, HealthReport, LbHealthView, LbState,
    ListenerCount, ListenerState, MemberState, PoolState,
};
use octavia_model::*;

/// One decoded heartbeat, ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRecord {
    /// The reporting amphora.
    pub amphora_id: AmphoraId,
    /// When the packet was received (written as `amphora_health.last_update`).
    pub received_at: Timestamp,
    /// False when the heartbeat waited longer than the heartbeat interval before being
    /// processed ("processed too slowly"): statuses and stats are applied, the health
    /// timestamp is not refreshed.
    pub refresh_health: bool,
    /// Listener, pool and member statuses as reported.
    pub report: HealthReport,
    /// Per-listener counters as reported (`bytes_in` = rx, `bytes_out` = tx, ...).
    pub stats: Vec<(ListenerId, ListenerStatistics)>,
    /// True for v3+ messages: counters are deltas to add; otherwise absolute values.
    pub stats_are_deltas: bool,
    /// Whether the amphora holds its keepalived VIP now (`None`: no keepalived, or an
    /// amphora that does not say). Not written by the batch; see `Store::record_vip_holder`.
    pub vip_held: Option<bool>,
    /// The stored key (`heartbeat_key.id`) that verified it; `None`: a key of the
    /// configuration only. Written as `amphora_health.heartbeat_key_id` with the health
    /// timestamp.
    pub heartbeat_key_id: Option<i64>,
}

/// A heartbeat whose listener count disagrees with the database (no health refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerCountMismatch {
    pub amphora_id: AmphoraId,
    pub load_balancer_id: LoadBalancerId,
    pub expected: usize,
    pub reported: usize,
}

/// What a batch did; the caller logs and counts the exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// Amphorae whose `amphora_health` row was inserted or refreshed.
    pub refreshed: usize,
    /// Amphorae with no row or a DELETED row (nothing written for them).
    pub unknown_amphorae: Vec<AmphoraId>,
    /// Amphorae that exist but belong to no (live) load balancer (nothing written for them).
    pub without_load_balancer: Vec<AmphoraId>,
    /// Listener-count mismatches (statuses applied, health not refreshed).
    pub listener_count_mismatches: Vec<ListenerCountMismatch>,
    /// Status texts no rule knows, with the amphora that sent them.
    pub unknown_values: Vec<(AmphoraId, String)>,
    /// Number of operating-status values written (objects whose status changed).
    pub status_writes: usize,
    /// Number of `listener_statistics` rows inserted or updated.
    pub stats_rows: usize,
}

/// An `amphora_health` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmphoraHealth {
    pub amphora_id: AmphoraId,
    pub last_update: Timestamp,
    pub busy: bool,
}

/// One load balancer of a fleet seeded by [`Store::seed_heartbeat_fleet`] (tests, benchmarks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    pub amphora_id: AmphoraId,
    pub load_balancer_id: LoadBalancerId,
    pub listener_id: ListenerId,
    pub pool_id: PoolId,
    pub member_id: MemberId,
}

/// SQLite renders timestamps as sqlx does, so rows written through JSON read back.
fn sqlite_ts(t: &Timestamp) -> String {
    t.format("%F %T%.f").to_string()
}

fn clamp(v: i64) -> i64 {
    v.max(0)
}

/// Accumulated counters for one `(listener, amphora)` row within a batch.
#[derive(Debug, Clone, Default)]
struct StatsAcc {
    absolute: bool,
    v: ListenerStatistics,
}

impl StatsAcc {
    fn add(&mut self, s: &ListenerStatistics, deltas: bool) {
        if !deltas {
            self.absolute = true;
            self.v = s.clone();
            return;
        }
        self.v.bytes_in = self.v.bytes_in.saturating_add(clamp(s.bytes_in));
        self.v.bytes_out = self.v.bytes_out.saturating_add(clamp(s.bytes_out));
        self.v.total_connections = self
            .v
            .total_connections
            .saturating_add(clamp(s.total_connections));
        self.v.request_errors = self
            .v
            .request_errors
            .saturating_add(clamp(s.request_errors));
        self.v.active_connections = clamp(s.active_connections);
    }
}

/// The read side of a batch, in one statement. `{ids}` is the amphora id set; `{agg}`,
/// `{arr}`, `{obj}` are the engine's JSON functions; `{c0}`/`{c1}` wrap PostgreSQL's
/// `json_agg` (NULL for no rows) in a COALESCE, and on SQLite in `json()` so the scalar
/// subquery's text is embedded as JSON, not as a string.
const SNAPSHOT_SQL: &str = "\
WITH a AS MATERIALIZED (SELECT id, load_balancer_id, status FROM amphora WHERE id IN {ids}), \
b AS MATERIALIZED (SELECT id, enabled, provisioning_status, operating_status FROM load_balancer \
  WHERE id IN (SELECT load_balancer_id FROM a WHERE status <> 'DELETED') \
  AND provisioning_status <> 'DELETED') \
SELECT {obj}(\
 'a', {c0}(SELECT {agg}({arr}(id, load_balancer_id, status)) FROM a){c1}, \
 'b', {c0}(SELECT {agg}({arr}(id, enabled, provisioning_status, operating_status)) FROM b){c1}, \
 'l', {c0}(SELECT {agg}({arr}(x.id, x.load_balancer_id, x.enabled, x.operating_status)) \
   FROM listener x WHERE x.load_balancer_id IN (SELECT id FROM b)){c1}, \
 'p', {c0}(SELECT {agg}({arr}(x.id, x.load_balancer_id, x.operating_status)) \
   FROM pool x WHERE x.load_balancer_id IN (SELECT id FROM b)){c1}, \
 'm', {c0}(SELECT {agg}({arr}(m.id, m.pool_id, m.operating_status)) FROM member m \
   WHERE m.pool_id IN (SELECT x.id FROM pool x WHERE x.load_balancer_id IN (SELECT id FROM b))){c1}\
){text}";

/// A JSON boolean (PostgreSQL) or 0/1 (SQLite).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(untagged)]
enum JsonBool {
    Bool(bool),
    Int(i64),
    #[default]
    Null,
}

impl JsonBool {
    fn get(self) -> bool {
        match self {
            JsonBool::Bool(b) => b,
            JsonBool::Int(i) => i != 0,
            JsonBool::Null => false,
        }
    }
}

/// What [`SNAPSHOT_SQL`] returns: amphorae, load balancers, listeners, pools, members.
#[derive(Debug, Default, serde::Deserialize)]
struct Snapshot {
    a: Vec<(String, Option<String>, String)>,
    b: Vec<(String, JsonBool, String, String)>,
    l: Vec<(String, String, JsonBool, String)>,
    p: Vec<(String, String, String)>,
    m: Vec<(String, String, String)>,
}

/// The engine-specific batch statements.
impl Exec<'_> {
    /// Everything the status rules need for the amphorae `ids`, read in one statement that
    /// returns one JSON document (one row, so the driver's per-row cost is paid once).
    async fn snapshot(&mut self, ids: &[String]) -> Result<Snapshot> {
        if ids.is_empty() {
            return Ok(Snapshot::default());
        }
        let text: String = match self {
            Exec::Sqlite(c) => {
                let json = serde_json::to_string(ids).map_err(|e| corrupt("id list", e))?;
                let q = SNAPSHOT_SQL
                    .replace("{ids}", "(SELECT value FROM json_each($1))")
                    .replace("{agg}", "json_group_array")
                    .replace("{arr}", "json_array")
                    .replace("{obj}", "json_object")
                    .replace("{c0}", "json(")
                    .replace("{c1}", ")")
                    .replace("{text}", "");
                sqlx::query_scalar(&q)
                    .bind(json)
                    .fetch_one(&mut **c)
                    .await?
            }
            Exec::Postgres(c) => {
                let q = SNAPSHOT_SQL
                    .replace("{ids}", "(SELECT unnest($1::text[]))")
                    .replace("{agg}", "json_agg")
                    .replace("{arr}", "json_build_array")
                    .replace("{obj}", "json_build_object")
                    .replace("{c0}", "COALESCE(")
                    .replace("{c1}", ", '[]'::json)")
                    .replace("{text}", "::text");
                sqlx::query_scalar(&q).bind(ids).fetch_one(&mut **c).await?
            }
        };
        serde_json::from_str(&text).map_err(|e| corrupt("heartbeat snapshot", e))
    }

    /// `UPDATE <table of kind> SET operating_status = status WHERE id IN ids`.
    async fn set_status(&mut self, kind: ObjectKind, status: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let table = kind.table();
        match self {
            Exec::Sqlite(c) => {
                let q = format!(
                    "UPDATE {table} SET operating_status = $1 WHERE id IN \
                     (SELECT value FROM json_each($2))"
                );
                let json = serde_json::to_string(ids).map_err(|e| corrupt("id list", e))?;
                sqlx::query(&q)
                    .bind(status)
                    .bind(json)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(DbError::from)
            }
            Exec::Postgres(c) => {
                let q =
                    format!("UPDATE {table} SET operating_status = $1 WHERE id = ANY($2::text[])");
                sqlx::query(&q)
                    .bind(status)
                    .bind(ids)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(DbError::from)
            }
        }
    }

    /// Upsert `amphora_health` rows (`busy` kept on existing rows, false on new ones; the
    /// key of the newer heartbeat wins).
    async fn upsert_health(&mut self, rows: &[(String, Timestamp, Option<i64>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Exec::Sqlite(c) => {
                let json: Vec<(&str, String, Option<i64>)> = rows
                    .iter()
                    .map(|(a, t, k)| (a.as_str(), sqlite_ts(t), *k))
                    .collect();
                let json = serde_json::to_string(&json).map_err(|e| corrupt("health rows", e))?;
                sqlx::query(
                    "INSERT INTO amphora_health (amphora_id, last_update, busy, heartbeat_key_id) \
                     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 0, \
                     json_extract(value, '$[2]') FROM json_each($1) WHERE true \
                     ON CONFLICT (amphora_id) DO UPDATE SET heartbeat_key_id = CASE WHEN \
                     excluded.last_update >= amphora_health.last_update THEN \
                     excluded.heartbeat_key_id ELSE amphora_health.heartbeat_key_id END, \
                     last_update = max(amphora_health.last_update, excluded.last_update)",
                )
                .bind(json)
                .execute(&mut **c)
                .await?;
            }
            Exec::Postgres(c) => {
                let ids: Vec<&str> = rows.iter().map(|(a, _, _)| a.as_str()).collect();
                let ts: Vec<Timestamp> = rows.iter().map(|(_, t, _)| *t).collect();
                let keys: Vec<Option<i64>> = rows.iter().map(|(_, _, k)| *k).collect();
                sqlx::query(
                    "INSERT INTO amphora_health (amphora_id, last_update, busy, heartbeat_key_id) \
                     SELECT a, t, FALSE, k FROM UNNEST($1::text[], $2::timestamp[], $3::int8[]) \
                     AS u(a, t, k) ON CONFLICT (amphora_id) DO UPDATE SET heartbeat_key_id = \
                     CASE WHEN EXCLUDED.last_update >= amphora_health.last_update THEN \
                     EXCLUDED.heartbeat_key_id ELSE amphora_health.heartbeat_key_id END, \
                     last_update = GREATEST(amphora_health.last_update, EXCLUDED.last_update)",
                )
                .bind(ids)
                .bind(ts)
                .bind(keys)
                .execute(&mut **c)
                .await?;
            }
        }
        Ok(())
    }

    /// Upsert `listener_statistics`: add the counters (`deltas`) or overwrite them.
    async fn upsert_stats(
        &mut self,
        rows: &[(String, String, ListenerStatistics)],
        deltas: bool,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let set = if deltas {
            "bytes_in = listener_statistics.bytes_in + excluded.bytes_in, \
             bytes_out = listener_statistics.bytes_out + excluded.bytes_out, \
             active_connections = excluded.active_connections, \
             total_connections = listener_statistics.total_connections + excluded.total_connections, \
             request_errors = listener_statistics.request_errors + excluded.request_errors"
        } else {
            "bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, \
             active_connections = excluded.active_connections, \
             total_connections = excluded.total_connections, \
             request_errors = excluded.request_errors"
        };
        let cols = "listener_id, amphora_id, bytes_in, bytes_out, active_connections, \
                    total_connections, request_errors";
        match self {
            Exec::Sqlite(c) => {
                let json: Vec<(&str, &str, i64, i64, i64, i64, i64)> = rows
                    .iter()
                    .map(|(l, a, s)| {
                        (
                            l.as_str(),
                            a.as_str(),
                            s.bytes_in,
                            s.bytes_out,
                            s.active_connections,
                            s.total_connections,
                            s.request_errors,
                        )
                    })
                    .collect();
                let json = serde_json::to_string(&json).map_err(|e| corrupt("stats rows", e))?;
                let q = format!(
                    "INSERT INTO listener_statistics ({cols}) SELECT json_extract(value, '$[0]'), \
                     json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                     json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
                     json_extract(value, '$[5]'), json_extract(value, '$[6]') \
                     FROM json_each($1) WHERE true \
                     ON CONFLICT (listener_id, amphora_id) DO UPDATE SET {set}"
                );
                sqlx::query(&q).bind(json).execute(&mut **c).await?;
            }
            Exec::Postgres(c) => {
                let col = |f: fn(&ListenerStatistics) -> i64| -> Vec<i64> {
                    rows.iter().map(|(_, _, s)| f(s)).collect()
                };
                let q = format!(
                    "INSERT INTO listener_statistics ({cols}) SELECT * FROM UNNEST($1::text[], \
                     $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) \
                     ON CONFLICT (listener_id, amphora_id) DO UPDATE SET {set}"
                );
                sqlx::query(&q)
                    .bind(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
                    .bind(col(|s| s.bytes_in))
                    .bind(col(|s| s.bytes_out))
                    .bind(col(|s| s.active_connections))
                    .bind(col(|s| s.total_connections))
                    .bind(col(|s| s.request_errors))
                    .execute(&mut **c)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Applies a batch of heartbeats in one transaction: upserts `amphora_health` (unless the
    /// listener count disagrees or the record says it was processed too slowly), accumulates
    /// listener statistics, and writes the operating statuses of reference §2.5 that changed.
    /// Several records of one amphora in a batch are applied in order (stats add up; the
    /// last report's statuses win). Unknown amphorae are reported, not written.
    pub async fn record_heartbeats(&self, batch: &[HeartbeatRecord]) -> Result<HeartbeatOutcome> {
        let mut out = HeartbeatOutcome::default();
        if batch.is_empty() {
            return Ok(out);
        }
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        // The batch statements bind arrays: the engine's own connection runs them.
        let mut ex = c.native();

        // 1. Amphorae → load balancers.
        let amp_ids: Vec<String> = batch
            .iter()
            .map(|r| r.amphora_id.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let snap = ex.snapshot(&amp_ids).await?;
        let mut amp_lb: HashMap<AmphoraId, Option<LoadBalancerId>> = HashMap::new();
        // Amphorae without a load balancer that are READY or being built: the spare
        // pool's, watched like any other (not zombies).
        let mut spares: BTreeSet<AmphoraId> = BTreeSet::new();
        for (id, lb, status) in snap.a {
            if status == ProvisioningStatus::Deleted.as_str() {
                continue;
            }
            let lb = lb
                .map(|l| parse("amphora load balancer id", &l))
                .transpose()?;
            let id = parse("amphora id", &id)?;
            let spare_states = [
                ProvisioningStatus::Ready,
                ProvisioningStatus::PendingCreate,
                ProvisioningStatus::Booting,
            ];
            if lb.is_none() && spare_states.iter().any(|s| s.as_str() == status) {
                spares.insert(id);
            }
            amp_lb.insert(id, lb);
        }
        let mut views: BTreeMap<LoadBalancerId, LbHealthView> = BTreeMap::new();
        for (id, enabled, prov, oper) in snap.b {
            let id: LoadBalancerId = parse("load balancer id", &id)?;
            views.insert(
                id,
                LbHealthView {
                    load_balancer: LbState {
                        id,
                        enabled: enabled.get(),
                        provisioning_status: parse("provisioning status", &prov)?,
                        operating_status: parse("operating status", &oper)?,
                    },
                    listeners: Vec::new(),
                    pools: Vec::new(),
                    members: Vec::new(),
                },
            );
        }
        for (id, lb, enabled, oper) in snap.l {
            if let Some(v) = views.get_mut(&parse::<LoadBalancerId>("listener lb id", &lb)?) {
                v.listeners.push(ListenerState {
                    id: parse("listener id", &id)?,
                    enabled: enabled.get(),
                    operating_status: parse("operating status", &oper)?,
                });
            }
        }
        let mut pool_lb: HashMap<PoolId, LoadBalancerId> = HashMap::new();
        for (id, lb, oper) in snap.p {
            let lb: LoadBalancerId = parse("pool lb id", &lb)?;
            let id: PoolId = parse("pool id", &id)?;
            if let Some(v) = views.get_mut(&lb) {
                pool_lb.insert(id, lb);
                v.pools.push(PoolState {
                    id,
                    operating_status: parse("operating status", &oper)?,
                });
            }
        }
        for (id, pool, oper) in snap.m {
            let pool: PoolId = parse("member pool id", &pool)?;
            if let Some(v) = pool_lb.get(&pool).and_then(|lb| views.get_mut(lb)) {
                v.members.push(MemberState {
                    id: parse("member id", &id)?,
                    pool_id: pool,
                    operating_status: parse("operating status", &oper)?,
                });
            }
        }
        let original = views.clone();

        // 3. Apply every record to the in-memory views; collect health and stats rows.
        let mut health: BTreeMap<String, (Timestamp, Option<i64>)> = BTreeMap::new();
        let mut stats: BTreeMap<(String, String), StatsAcc> = BTreeMap::new();
        let mut reported_unknown: BTreeSet<AmphoraId> = BTreeSet::new();
        // The newest heartbeat of an amphora sets its health row, with the key it was
        // signed with.
        let refresh = |health: &mut BTreeMap<String, (Timestamp, Option<i64>)>,
                       rec: &HeartbeatRecord| {
            if rec.refresh_health {
                let e = health
                    .entry(rec.amphora_id.to_string())
                    .or_insert((rec.received_at, rec.heartbeat_key_id));
                if rec.received_at >= e.0 {
                    *e = (rec.received_at, rec.heartbeat_key_id);
                }
            }
        };
        for rec in batch {
            let lb_id = match amp_lb.get(&rec.amphora_id) {
                None => {
                    if reported_unknown.insert(rec.amphora_id) {
                        out.unknown_amphorae.push(rec.amphora_id);
                    }
                    continue;
                }
                Some(lb) => *lb,
            };
            let Some(view) = lb_id.and_then(|lb| views.get_mut(&lb)) else {
                if spares.contains(&rec.amphora_id) {
                    // A spare's heartbeat only says it lives: its health row is what the
                    // sweep watches (a silent spare is replaced) and what a build asks
                    // before it takes one (and, keyed, what a heartbeat key rotation
                    // waits for).
                    refresh(&mut health, rec);
                    continue;
                }
                if reported_unknown.insert(rec.amphora_id) {
                    out.without_load_balancer.push(rec.amphora_id);
                }
                continue;
            };
            let amp = rec.amphora_id.to_string();
            match listener_count(view, &rec.report) {
                ListenerCount::Ok => refresh(&mut health, rec),
                ListenerCount::Mismatch { expected, reported } => {
                    out.listener_count_mismatches.push(ListenerCountMismatch {
                        amphora_id: rec.amphora_id,
                        load_balancer_id: view.load_balancer.id,
                        expected,
                        reported,
                    });
                }
            }
            let changes = heartbeat_status(view, &rec.report);
            out.unknown_values.extend(
                changes
                    .unknown_values
                    .iter()
                    .map(|v| (rec.amphora_id, v.clone())),
            );
            apply_changes(view, &changes);
            for (listener, s) in &rec.stats {
                if !view.listeners.iter().any(|l| l.id == *listener) {
                    continue;
                }
                stats
                    .entry((listener.to_string(), amp.clone()))
                    .or_default()
                    .add(s, rec.stats_are_deltas);
            }
        }

        // 4. Writes: health, stats, then statuses that differ from what was read (LB last).
        let health_rows: Vec<(String, Timestamp, Option<i64>)> =
            health.into_iter().map(|(a, (t, k))| (a, t, k)).collect();
        ex.upsert_health(&health_rows).await?;
        out.refreshed = health_rows.len();
        let (mut delta_rows, mut abs_rows) = (Vec::new(), Vec::new());
        for ((l, a), acc) in stats {
            if acc.absolute {
                abs_rows.push((l, a, acc.v));
            } else {
                delta_rows.push((l, a, acc.v));
            }
        }
        ex.upsert_stats(&delta_rows, true).await?;
        ex.upsert_stats(&abs_rows, false).await?;
        out.stats_rows = delta_rows.len() + abs_rows.len();

        let mut writes: [BTreeMap<&'static str, Vec<String>>; 4] = Default::default();
        for (lb, now) in &views {
            let Some(before) = original.get(lb) else {
                continue;
            };
            for (m, old) in now.members.iter().zip(&before.members) {
                if m.operating_status != old.operating_status {
                    writes[0]
                        .entry(m.operating_status.as_str())
                        .or_default()
                        .push(m.id.to_string());
                }
            }
            for (p, old) in now.pools.iter().zip(&before.pools) {
                if p.operating_status != old.operating_status {
                    writes[1]
                        .entry(p.operating_status.as_str())
                        .or_default()
                        .push(p.id.to_string());
                }
            }
            for (l, old) in now.listeners.iter().zip(&before.listeners) {
                if l.operating_status != old.operating_status {
                    writes[2]
                        .entry(l.operating_status.as_str())
                        .or_default()
                        .push(l.id.to_string());
                }
            }
            if now.load_balancer.operating_status != before.load_balancer.operating_status {
                writes[3]
                    .entry(now.load_balancer.operating_status.as_str())
                    .or_default()
                    .push(lb.to_string());
            }
        }
        let kinds = [
            ObjectKind::Member,
            ObjectKind::Pool,
            ObjectKind::Listener,
            ObjectKind::LoadBalancer,
        ];
        for (kind, by_status) in kinds.into_iter().zip(writes.iter_mut()) {
            for (status, ids) in by_status.iter_mut() {
                ids.sort();
                out.status_writes +=
                    usize::try_from(ex.set_status(kind, status, ids).await?).unwrap_or(usize::MAX);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The `amphora_health` row of an amphora, if any.
    pub async fn get_amphora_health(&self, id: AmphoraId) -> Result<Option<AmphoraHealth>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let row: Option<(String, Timestamp, bool)> = c
            .fetch_optional(
                "SELECT amphora_id, last_update, busy FROM amphora_health WHERE amphora_id = $1",
                crate::db::args![crate::db::id(id)],
            )
            .await?;
        row.map(|(a, last_update, busy)| {
            Ok(AmphoraHealth {
                amphora_id: parse("amphora id", &a)?,
                last_update,
                busy,
            })
        })
        .transpose()
    }

    /// Inserts `n` ACTIVE/ONLINE load balancers, each with one ALLOCATED STANDALONE amphora,
    /// one listener, one pool (the listener's default) and one member, in one transaction,
    /// bypassing jobs. For benchmarks and heartbeat tests only: nothing in the control plane
    /// calls it.
    pub async fn seed_heartbeat_fleet(
        &self,
        n: usize,
        project_id: &str,
    ) -> Result<Vec<FleetMember>> {
        use crate::db::{args, id as sid};
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let mut out = Vec::with_capacity(n);
        let t = now();
        for i in 0..n {
            let f = FleetMember {
                amphora_id: AmphoraId::new(),
                load_balancer_id: LoadBalancerId::new(),
                listener_id: ListenerId::new(),
                pool_id: PoolId::new(),
                member_id: MemberId::new(),
            };
            c.execute(
                "INSERT INTO load_balancer (id, project_id, name, provisioning_status, \
                 operating_status, enabled, topology, provider, created_at) \
                 VALUES ($1, $2, $3, 'ACTIVE', 'ONLINE', $4, 'SINGLE', 'amphora', $5)",
                args![
                    sid(f.load_balancer_id),
                    project_id,
                    format!("lb-{i}"),
                    true,
                    t
                ],
            )
            .await?;
            c.execute(
                "INSERT INTO vip (load_balancer_id, ip_address) VALUES ($1, $2)",
                args![
                    sid(f.load_balancer_id),
                    format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
                ],
            )
            .await?;
            c.execute(
                "INSERT INTO pool (id, project_id, load_balancer_id, provisioning_status, \
                 operating_status, enabled, protocol, lb_algorithm, created_at) \
                 VALUES ($1, $2, $3, 'ACTIVE', 'ONLINE', $4, 'HTTP', 'ROUND_ROBIN', $5)",
                args![sid(f.pool_id), project_id, sid(f.load_balancer_id), true, t],
            )
            .await?;
            c.execute(
                "INSERT INTO listener (id, project_id, load_balancer_id, provisioning_status, \
                 operating_status, enabled, protocol, protocol_port, connection_limit, \
                 default_pool_id, timeout_client_data, timeout_member_connect, \
                 timeout_member_data, timeout_tcp_inspect, created_at) \
                 VALUES ($1, $2, $3, 'ACTIVE', 'ONLINE', $4, 'HTTP', 80, -1, $5, 50000, 5000, \
                 50000, 0, $6)",
                args![
                    sid(f.listener_id),
                    project_id,
                    sid(f.load_balancer_id),
                    true,
                    sid(f.pool_id),
                    t
                ],
            )
            .await?;
            c.execute(
                "INSERT INTO member (id, project_id, pool_id, provisioning_status, \
                 operating_status, enabled, ip_address, protocol_port, weight, created_at) \
                 VALUES ($1, $2, $3, 'ACTIVE', 'ONLINE', $4, '192.0.2.10', 80, 1, $5)",
                args![sid(f.member_id), project_id, sid(f.pool_id), true, t],
            )
            .await?;
            c.execute(
                "INSERT INTO amphora (id, load_balancer_id, compute_id, role, status, \
                 created_at) VALUES ($1, $2, $3, 'STANDALONE', 'ALLOCATED', $4)",
                args![
                    sid(f.amphora_id),
                    sid(f.load_balancer_id),
                    format!("compute-{i}"),
                    t
                ],
            )
            .await?;
            out.push(f);
        }
        tx.commit().await?;
        Ok(out)
    }
}

//! From a decoded heartbeat message to the store's [`HeartbeatRecord`]: ids parsed (entries
//! whose id is not a UUID are dropped), pool keys normalised, counters mapped to columns.

use amphora_proto::heartbeat::{HeartbeatMessage, ListenerStats};
use octavia_db::HeartbeatRecord;
use octavia_model::health::{HealthReport, PoolReport};
use octavia_model::{AmphoraId, ListenerStatistics, Timestamp};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `rx` → `bytes_in`, `tx` → `bytes_out`, `conns` → `active_connections`, `totconns` →
/// `total_connections`, `ereq` → `request_errors`.
pub fn statistics(s: &ListenerStats) -> ListenerStatistics {
    ListenerStatistics {
        bytes_in: to_i64(s.rx),
        bytes_out: to_i64(s.tx),
        active_connections: to_i64(s.conns),
        total_connections: to_i64(s.totconns),
        request_errors: to_i64(s.ereq),
    }
}

/// The health report of a message.
pub fn health_report(msg: &HeartbeatMessage) -> HealthReport {
    let mut r = HealthReport {
        reported_listener_count: msg.listeners.len(),
        ..Default::default()
    };
    for (id, l) in &msg.listeners {
        if let Ok(id) = id.parse() {
            r.listeners.insert(id, l.status.clone());
        }
    }
    for (pool_id, p) in msg.pools_by_id() {
        let Ok(pool_id) = pool_id.parse() else {
            continue;
        };
        let members = p
            .members
            .iter()
            .filter_map(|(m, s)| m.parse().ok().map(|m| (m, s.clone())))
            .collect();
        r.pools.insert(
            pool_id,
            PoolReport {
                status: p.status.clone(),
                members,
            },
        );
    }
    r
}

/// The store record of a message; `None` when the amphora id is not a UUID (no such
/// amphora can exist).
pub fn record(msg: &HeartbeatMessage, received_at: Timestamp) -> Option<HeartbeatRecord> {
    let amphora_id: AmphoraId = msg.id.parse().ok()?;
    let stats = msg
        .listeners
        .iter()
        .filter_map(|(id, l)| id.parse().ok().map(|id| (id, statistics(&l.stats))))
        .collect();
    Some(HeartbeatRecord {
        amphora_id,
        received_at,
        refresh_health: true,
        report: health_report(msg),
        stats,
        stats_are_deltas: msg.stats_are_deltas(),
        vip_held: msg.vip_held,
        heartbeat_key_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amphora_proto::heartbeat::{ListenerReport, PoolReport as WirePool};
    use octavia_model::{ListenerId, MemberId, PoolId};

    #[test]
    fn message_to_record() {
        let (amp, l1, p1, m1) = (
            AmphoraId::new(),
            ListenerId::new(),
            PoolId::new(),
            MemberId::new(),
        );
        let mut msg = HeartbeatMessage {
            id: amp.to_string(),
            seq: 1,
            ver: 3,
            ..Default::default()
        };
        msg.listeners.insert(
            l1.to_string(),
            ListenerReport {
                status: "OPEN".into(),
                stats: ListenerStats {
                    tx: 1,
                    rx: 2,
                    conns: 3,
                    totconns: 4,
                    ereq: u64::MAX,
                },
                ..Default::default()
            },
        );
        msg.listeners
            .insert("not-a-uuid".into(), ListenerReport::default());
        let mut pool = WirePool {
            status: "UP".into(),
            ..Default::default()
        };
        pool.members.insert(m1.to_string(), "DRAIN".into());
        pool.members.insert("junk".into(), "UP".into());
        msg.pools.insert(format!("{p1}:{l1}"), pool);

        let rec = record(&msg, octavia_model::now()).expect("valid amphora id");
        assert_eq!(rec.amphora_id, amp);
        assert!(rec.stats_are_deltas);
        assert_eq!(rec.report.reported_listener_count, 2);
        assert_eq!(rec.report.listeners.len(), 1);
        assert_eq!(rec.report.pools[&p1].members.len(), 1);
        assert_eq!(rec.report.pools[&p1].members[&m1], "DRAIN");
        let (id, s) = &rec.stats[0];
        assert_eq!(*id, l1);
        assert_eq!(
            (
                s.bytes_in,
                s.bytes_out,
                s.active_connections,
                s.total_connections,
                s.request_errors
            ),
            (2, 1, 3, 4, i64::MAX)
        );

        msg.id = "nope".into();
        assert!(record(&msg, octavia_model::now()).is_none());
        msg.id = amp.to_string();
        msg.ver = 0;
        assert!(!record(&msg, octavia_model::now()).unwrap().stats_are_deltas);
    }
}

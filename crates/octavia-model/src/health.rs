//! Operating status from a heartbeat (reference §2.5 and the listener-count rule of §5.3): pure.
//!
//! The store reads a [`LbHealthView`] of the load balancer hosting the reporting amphora, this
//! module computes the [`StatusChanges`] (only values that differ), the store writes them.

use std::collections::BTreeMap;

use crate::{ListenerId, LoadBalancerId, MemberId, OperatingStatus, PoolId, ProvisioningStatus};

/// The load balancer row as the status rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbState {
    pub id: LoadBalancerId,
    pub enabled: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
}

/// A listener row as the status rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    pub id: ListenerId,
    pub enabled: bool,
    pub operating_status: OperatingStatus,
}

/// A pool row as the status rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolState {
    pub id: PoolId,
    pub operating_status: OperatingStatus,
}

/// A member row as the status rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub id: MemberId,
    pub pool_id: PoolId,
    pub operating_status: OperatingStatus,
}

/// Current database state of one load balancer and everything whose status a heartbeat sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbHealthView {
    pub load_balancer: LbState,
    pub listeners: Vec<ListenerState>,
    pub pools: Vec<PoolState>,
    pub members: Vec<MemberState>,
}

/// One pool as reported: its status text and its members' status texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// `UP`, `DOWN`, ...
    pub status: String,
    /// Member → `UP`, `UP 1/3`, `DOWN`, `DRAIN`, `MAINT`, `no check`, `RESTARTING`, ...
    pub members: BTreeMap<MemberId, String>,
}

/// What a heartbeat says about health, with ids parsed (entries with unparsable ids dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// Listener → status text (`OPEN`, `FULL`, ...).
    pub listeners: BTreeMap<ListenerId, String>,
    /// Number of listener entries in the message (the count rule uses the raw count).
    pub reported_listener_count: usize,
    /// Pool (listener suffix stripped) → report.
    pub pools: BTreeMap<PoolId, PoolReport>,
}

/// Operating statuses to write: only those that differ from the view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusChanges {
    pub load_balancer: Option<OperatingStatus>,
    pub listeners: Vec<(ListenerId, OperatingStatus)>,
    pub pools: Vec<(PoolId, OperatingStatus)>,
    pub members: Vec<(MemberId, OperatingStatus)>,
    /// Status texts that no rule knows (logged by the caller; the object is left as is).
    pub unknown_values: Vec<String>,
}

impl StatusChanges {
    /// True when nothing has to be written.
    pub fn is_empty(&self) -> bool {
        self.load_balancer.is_none()
            && self.listeners.is_empty()
            && self.pools.is_empty()
            && self.members.is_empty()
    }
}

/// Result of the listener-count rule (reference §5.3 step 3–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerCount {
    /// Counts agree, or the LB is PENDING_* / disabled so the count is ignored.
    Ok,
    /// Counts disagree: the health timestamp must not be refreshed.
    Mismatch { expected: usize, reported: usize },
}

/// The listener-count rule: expected = enabled listeners, ignored while the LB is `PENDING_*`
/// or disabled.
pub fn listener_count(view: &LbHealthView, report: &HealthReport) -> ListenerCount {
    let lb = &view.load_balancer;
    if lb.provisioning_status.is_pending() || !lb.enabled {
        return ListenerCount::Ok;
    }
    let expected = view.listeners.iter().filter(|l| l.enabled).count();
    if expected == report.reported_listener_count {
        ListenerCount::Ok
    } else {
        ListenerCount::Mismatch {
            expected,
            reported: report.reported_listener_count,
        }
    }
}

fn has_prefix_ci(value: &str, prefix: &str) -> bool {
    value.len() >= prefix.len()
        && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// What a member status text means: `Some(status)` to write, `None` to keep the current value.
fn member_status(text: &str) -> Result<Option<OperatingStatus>, ()> {
    let t = text.trim();
    if has_prefix_ci(t, "UP") {
        Ok(Some(OperatingStatus::Online))
    } else if has_prefix_ci(t, "DOWN") {
        Ok(Some(OperatingStatus::Error))
    } else if t.eq_ignore_ascii_case("DRAIN") {
        Ok(Some(OperatingStatus::Draining))
    } else if t.eq_ignore_ascii_case("MAINT") {
        Ok(Some(OperatingStatus::Offline))
    } else if t.eq_ignore_ascii_case("no check") {
        Ok(Some(OperatingStatus::NoMonitor))
    } else if t.eq_ignore_ascii_case("RESTARTING") {
        Ok(None)
    } else {
        Err(())
    }
}

/// Computes the operating statuses a heartbeat implies for the LB hosting the amphora
/// (reference §2.5) and returns those that differ from `view`.
pub fn heartbeat_status(view: &LbHealthView, report: &HealthReport) -> StatusChanges {
    use OperatingStatus as S;
    let mut out = StatusChanges::default();
    let lb = &view.load_balancer;
    let mut lb_status = if lb.enabled { S::Online } else { S::Offline };

    for listener in &view.listeners {
        let new = match report.listeners.get(&listener.id) {
            None => {
                if listener.enabled && lb.provisioning_status == ProvisioningStatus::Active {
                    Some(S::Error)
                } else {
                    Some(S::Offline)
                }
            }
            Some(text) if text.eq_ignore_ascii_case("OPEN") => Some(S::Online),
            Some(text) if text.eq_ignore_ascii_case("FULL") => {
                if lb_status == S::Online {
                    lb_status = S::Degraded;
                }
                Some(S::Degraded)
            }
            Some(text) => {
                out.unknown_values
                    .push(format!("listener {}: {text}", listener.id));
                None
            }
        };
        if let Some(new) = new.filter(|n| *n != listener.operating_status) {
            out.listeners.push((listener.id, new));
        }
    }

    let mut members_by_pool: BTreeMap<PoolId, Vec<&MemberState>> = BTreeMap::new();
    for m in &view.members {
        members_by_pool.entry(m.pool_id).or_default().push(m);
    }

    for pool in &view.pools {
        let Some(reported) = report.pools.get(&pool.id) else {
            if pool.operating_status != S::Offline {
                out.pools.push((pool.id, S::Offline));
            }
            continue;
        };
        let mut pool_status = if reported.status.eq_ignore_ascii_case("UP") {
            Some(S::Online)
        } else if reported.status.eq_ignore_ascii_case("DOWN") {
            lb_status = S::Error;
            Some(S::Error)
        } else {
            out.unknown_values
                .push(format!("pool {}: {}", pool.id, reported.status));
            None
        };
        for member in members_by_pool.get(&pool.id).into_iter().flatten() {
            let new = match reported.members.get(&member.id) {
                None if member.operating_status == S::NoMonitor => None,
                None => Some(S::Offline),
                Some(text) => match member_status(text) {
                    Ok(Some(S::Error)) => {
                        if pool_status == Some(S::Online) {
                            pool_status = Some(S::Degraded);
                        }
                        if lb_status == S::Online {
                            lb_status = S::Degraded;
                        }
                        Some(S::Error)
                    }
                    Ok(v) => v,
                    Err(()) => {
                        out.unknown_values
                            .push(format!("member {}: {text}", member.id));
                        None
                    }
                },
            };
            if let Some(new) = new.filter(|n| *n != member.operating_status) {
                out.members.push((member.id, new));
            }
        }
        if let Some(new) = pool_status.filter(|n| *n != pool.operating_status) {
            out.pools.push((pool.id, new));
        }
    }

    if lb_status != lb.operating_status {
        out.load_balancer = Some(lb_status);
    }
    out
}

/// Applies `changes` to `view` so a second heartbeat for the same LB in one batch (the other
/// amphora of an ACTIVE_STANDBY pair) compares against what is about to be written.
pub fn apply_changes(view: &mut LbHealthView, changes: &StatusChanges) {
    if let Some(s) = changes.load_balancer {
        view.load_balancer.operating_status = s;
    }
    for (id, s) in &changes.listeners {
        if let Some(l) = view.listeners.iter_mut().find(|l| l.id == *id) {
            l.operating_status = *s;
        }
    }
    for (id, s) in &changes.pools {
        if let Some(p) = view.pools.iter_mut().find(|p| p.id == *id) {
            p.operating_status = *s;
        }
    }
    for (id, s) in &changes.members {
        if let Some(m) = view.members.iter_mut().find(|m| m.id == *id) {
            m.operating_status = *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OperatingStatus as S;

    struct Fixture {
        view: LbHealthView,
        l1: ListenerId,
        l2: ListenerId,
        p1: PoolId,
        p2: PoolId,
        m1: MemberId,
        m2: MemberId,
        m3: MemberId,
    }

    /// LB (ACTIVE, enabled, ONLINE) with listeners l1, l2 (ONLINE), pools p1 {m1, m2} and
    /// p2 {m3}, everything ONLINE.
    fn fixture() -> Fixture {
        let (l1, l2, p1, p2) = (
            ListenerId::new(),
            ListenerId::new(),
            PoolId::new(),
            PoolId::new(),
        );
        let (m1, m2, m3) = (MemberId::new(), MemberId::new(), MemberId::new());
        let member = |id, pool_id| MemberState {
            id,
            pool_id,
            operating_status: S::Online,
        };
        Fixture {
            view: LbHealthView {
                load_balancer: LbState {
                    id: LoadBalancerId::new(),
                    enabled: true,
                    provisioning_status: ProvisioningStatus::Active,
                    operating_status: S::Online,
                },
                listeners: [l1, l2]
                    .into_iter()
                    .map(|id| ListenerState {
                        id,
                        enabled: true,
                        operating_status: S::Online,
                    })
                    .collect(),
                pools: [p1, p2]
                    .into_iter()
                    .map(|id| PoolState {
                        id,
                        operating_status: S::Online,
                    })
                    .collect(),
                members: vec![member(m1, p1), member(m2, p1), member(m3, p2)],
            },
            l1,
            l2,
            p1,
            p2,
            m1,
            m2,
            m3,
        }
    }

    /// A report where everything is healthy.
    fn healthy(f: &Fixture) -> HealthReport {
        let mut r = HealthReport::default();
        r.listeners.insert(f.l1, "OPEN".into());
        r.listeners.insert(f.l2, "OPEN".into());
        r.reported_listener_count = 2;
        let pool = |members: &[MemberId]| PoolReport {
            status: "UP".into(),
            members: members.iter().map(|m| (*m, "UP".to_string())).collect(),
        };
        r.pools.insert(f.p1, pool(&[f.m1, f.m2]));
        r.pools.insert(f.p2, pool(&[f.m3]));
        r
    }

    type Edit = fn(&mut Fixture, &mut HealthReport);
    type Want = fn(&Fixture) -> StatusChanges;

    #[test]
    fn status_rules_table() {
        // (name, edit of fixture/report, expected changes built from the fixture)
        let cases: Vec<(&str, Edit, Want)> = vec![
            (
                "all healthy: nothing to write",
                |_, _| {},
                |_| StatusChanges::default(),
            ),
            (
                "member DOWN: member ERROR, pool and LB DEGRADED",
                |f, r| {
                    r.pools
                        .get_mut(&f.p1)
                        .unwrap()
                        .members
                        .insert(f.m1, "DOWN".into());
                },
                |f| StatusChanges {
                    load_balancer: Some(S::Degraded),
                    pools: vec![(f.p1, S::Degraded)],
                    members: vec![(f.m1, S::Error)],
                    ..Default::default()
                },
            ),
            (
                "pool DOWN: pool ERROR, LB ERROR",
                |f, r| r.pools.get_mut(&f.p2).unwrap().status = "DOWN".into(),
                |f| StatusChanges {
                    load_balancer: Some(S::Error),
                    pools: vec![(f.p2, S::Error)],
                    ..Default::default()
                },
            ),
            (
                "pool DOWN wins over a degraded member in another pool",
                |f, r| {
                    r.pools
                        .get_mut(&f.p1)
                        .unwrap()
                        .members
                        .insert(f.m2, "DOWN 2/3".into());
                    r.pools.get_mut(&f.p2).unwrap().status = "DOWN".into();
                },
                |f| StatusChanges {
                    load_balancer: Some(S::Error),
                    pools: vec![(f.p1, S::Degraded), (f.p2, S::Error)],
                    members: vec![(f.m2, S::Error)],
                    ..Default::default()
                },
            ),
            (
                "listener missing: ERROR (enabled, LB ACTIVE)",
                |f, r| {
                    r.listeners.remove(&f.l2);
                },
                |f| StatusChanges {
                    listeners: vec![(f.l2, S::Error)],
                    ..Default::default()
                },
            ),
            (
                "listener missing while LB PENDING_UPDATE: OFFLINE",
                |f, r| {
                    f.view.load_balancer.provisioning_status = ProvisioningStatus::PendingUpdate;
                    r.listeners.remove(&f.l2);
                },
                |f| StatusChanges {
                    listeners: vec![(f.l2, S::Offline)],
                    ..Default::default()
                },
            ),
            (
                "listener FULL: listener and LB DEGRADED",
                |f, r| {
                    r.listeners.insert(f.l1, "FULL".into());
                },
                |f| StatusChanges {
                    load_balancer: Some(S::Degraded),
                    listeners: vec![(f.l1, S::Degraded)],
                    ..Default::default()
                },
            ),
            (
                "DRAIN, MAINT, no check, UP 1/3",
                |f, r| {
                    let p1 = r.pools.get_mut(&f.p1).unwrap();
                    p1.members.insert(f.m1, "DRAIN".into());
                    p1.members.insert(f.m2, "MAINT".into());
                    r.pools
                        .get_mut(&f.p2)
                        .unwrap()
                        .members
                        .insert(f.m3, "no check".into());
                },
                |f| StatusChanges {
                    members: vec![
                        (f.m1, S::Draining),
                        (f.m2, S::Offline),
                        (f.m3, S::NoMonitor),
                    ],
                    ..Default::default()
                },
            ),
            (
                "RESTARTING and unknown values keep the current status",
                |f, r| {
                    f.view.members[0].operating_status = S::Error;
                    let p1 = r.pools.get_mut(&f.p1).unwrap();
                    p1.members.insert(f.m1, "RESTARTING".into());
                    p1.members.insert(f.m2, "WEIRD".into());
                    r.listeners.insert(f.l1, "STRANGE".into());
                },
                |_| StatusChanges {
                    unknown_values: vec!["listener".into(), "member".into()],
                    ..Default::default()
                },
            ),
            (
                "member missing: OFFLINE unless NO_MONITOR",
                |f, r| {
                    f.view.members[1].operating_status = S::NoMonitor;
                    let p1 = r.pools.get_mut(&f.p1).unwrap();
                    p1.members.clear();
                },
                |f| StatusChanges {
                    members: vec![(f.m1, S::Offline)],
                    ..Default::default()
                },
            ),
            (
                "pool missing from report: OFFLINE, members untouched",
                |f, r| {
                    r.pools.remove(&f.p2);
                },
                |f| StatusChanges {
                    pools: vec![(f.p2, S::Offline)],
                    ..Default::default()
                },
            ),
            (
                "disabled LB starts OFFLINE",
                |f, _| f.view.load_balancer.enabled = false,
                |_| StatusChanges {
                    load_balancer: Some(S::Offline),
                    ..Default::default()
                },
            ),
            (
                "recovery from ERROR is written",
                |f, _| {
                    f.view.load_balancer.operating_status = S::Error;
                    f.view.pools[1].operating_status = S::Error;
                    f.view.members[2].operating_status = S::Error;
                },
                |f| StatusChanges {
                    load_balancer: Some(S::Online),
                    pools: vec![(f.p2, S::Online)],
                    members: vec![(f.m3, S::Online)],
                    ..Default::default()
                },
            ),
        ];
        for (name, edit, want) in cases {
            let mut f = fixture();
            let mut r = healthy(&f);
            edit(&mut f, &mut r);
            let mut got = heartbeat_status(&f.view, &r);
            let want = want(&f);
            // Unknown values are compared by kind only (the text carries ids).
            got.unknown_values = got
                .unknown_values
                .iter()
                .map(|v| v.split(' ').next().unwrap_or_default().to_string())
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn applying_changes_makes_the_same_report_a_no_op() {
        let mut f = fixture();
        let mut r = healthy(&f);
        r.pools
            .get_mut(&f.p1)
            .unwrap()
            .members
            .insert(f.m1, "DOWN".into());
        r.listeners.remove(&f.l2);
        let changes = heartbeat_status(&f.view, &r);
        assert!(!changes.is_empty());
        apply_changes(&mut f.view, &changes);
        assert!(heartbeat_status(&f.view, &r).is_empty());
    }

    #[test]
    fn listener_count_rule() {
        let mut f = fixture();
        let mut r = healthy(&f);
        assert_eq!(listener_count(&f.view, &r), ListenerCount::Ok);
        r.reported_listener_count = 1;
        assert_eq!(
            listener_count(&f.view, &r),
            ListenerCount::Mismatch {
                expected: 2,
                reported: 1
            }
        );
        f.view.listeners[1].enabled = false;
        assert_eq!(listener_count(&f.view, &r), ListenerCount::Ok);
        r.reported_listener_count = 0;
        f.view.load_balancer.provisioning_status = ProvisioningStatus::PendingUpdate;
        assert_eq!(listener_count(&f.view, &r), ListenerCount::Ok);
        f.view.load_balancer.provisioning_status = ProvisioningStatus::Active;
        f.view.load_balancer.enabled = false;
        assert_eq!(listener_count(&f.view, &r), ListenerCount::Ok);
    }
}

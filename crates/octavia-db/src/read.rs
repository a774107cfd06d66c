//! Reads: one query for the rows plus one for the derived fields of the whole batch.

use octavia_model::*;

use crate::db::{args, id, Arg, Conn};
use crate::list::list_rows;
use crate::rows::*;
use crate::{ListQuery, LoadBalancerTree, Result};

async fn fill_tags_members(c: &mut Conn<'_>, v: &mut [Member]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = tags_of(c, &ids).await?;
    for (x, i) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, i, "t");
    }
    Ok(())
}

async fn fill_tags_hms(c: &mut Conn<'_>, v: &mut [HealthMonitor]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = tags_of(c, &ids).await?;
    for (x, i) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, i, "t");
    }
    Ok(())
}

async fn fill_tags_rules(c: &mut Conn<'_>, v: &mut [L7Rule]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = tags_of(c, &ids).await?;
    for (x, i) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, i, "t");
    }
    Ok(())
}

/// Load balancers matching `cond` (alias `x`), derived fields included: one query.
pub(crate) async fn lbs(c: &mut Conn<'_>, cond: &str, args: Vec<Arg>) -> Result<Vec<LoadBalancer>> {
    let sql = format!("SELECT {LB_SELECT} FROM {LB_FROM} WHERE {cond}");
    let rows: Vec<LbRow> = c.fetch_all(&sql, args).await?;
    rows.into_iter().map(LbRow::into_model).collect()
}

/// One page of load balancers, derived fields included: one query.
pub(crate) async fn list_lbs(
    c: &mut Conn<'_>,
    q: &ListQuery,
    extra: Vec<(&'static str, Arg)>,
) -> Result<Vec<LoadBalancer>> {
    let src = source(Some(ObjectKind::LoadBalancer));
    let rows: Vec<LbRow> = list_rows(c, &src, q, extra).await?;
    rows.into_iter().map(LbRow::into_model).collect()
}

async fn no_fill(_c: &mut Conn<'_>, _v: &mut [Amphora]) -> Result<()> {
    Ok(())
}

macro_rules! loaders {
    ($load:ident, $list:ident, $model:ty, $row:ty, $select:expr, $from:expr, $kind:expr, $fill:path) => {
        /// Rows matching `cond` (alias `x`), derived fields filled.
        pub(crate) async fn $load(
            c: &mut Conn<'_>,
            cond: &str,
            args: Vec<Arg>,
        ) -> Result<Vec<$model>> {
            let sql = format!("SELECT {} FROM {} WHERE {}", $select, $from, cond);
            let rows: Vec<$row> = c.fetch_all(&sql, args).await?;
            let mut v = rows
                .into_iter()
                .map(|r| r.into_model())
                .collect::<Result<Vec<$model>>>()?;
            $fill(c, &mut v).await?;
            Ok(v)
        }

        /// One page of a list query, derived fields filled.
        pub(crate) async fn $list(
            c: &mut Conn<'_>,
            q: &ListQuery,
            extra: Vec<(&'static str, Arg)>,
        ) -> Result<Vec<$model>> {
            let rows: Vec<$row> = list_rows(c, &source(Some($kind)), q, extra).await?;
            let mut v = rows
                .into_iter()
                .map(|r| r.into_model())
                .collect::<Result<Vec<$model>>>()?;
            $fill(c, &mut v).await?;
            Ok(v)
        }
    };
}

loaders!(
    listeners,
    list_listeners,
    Listener,
    ListenerRow,
    LISTENER_SELECT,
    "listener x",
    ObjectKind::Listener,
    fill_listeners
);
loaders!(
    pools,
    list_pools,
    Pool,
    PoolRow,
    POOL_SELECT,
    POOL_FROM,
    ObjectKind::Pool,
    fill_pools
);
loaders!(
    members,
    list_members,
    Member,
    MemberRow,
    MEMBER_SELECT,
    "member x",
    ObjectKind::Member,
    fill_tags_members
);
loaders!(
    hms,
    list_hms,
    HealthMonitor,
    HmRow,
    HM_SELECT,
    "health_monitor x",
    ObjectKind::HealthMonitor,
    fill_tags_hms
);
loaders!(
    l7policies,
    list_l7policies,
    L7Policy,
    L7PolicyRow,
    L7POLICY_SELECT,
    "l7policy x",
    ObjectKind::L7Policy,
    fill_l7policies
);
loaders!(
    l7rules,
    list_l7rules,
    L7Rule,
    L7RuleRow,
    L7RULE_SELECT,
    "l7rule x",
    ObjectKind::L7Rule,
    fill_tags_rules
);
loaders!(
    amphorae,
    list_amphorae,
    Amphora,
    AmphoraRow,
    AMPHORA_SELECT,
    "amphora x",
    ObjectKind::Amphora,
    no_fill
);

/// The load balancer (unless DELETED) and everything below it.
pub(crate) async fn tree(c: &mut Conn<'_>, lb: LoadBalancerId) -> Result<Option<LoadBalancerTree>> {
    let lbid = lb.to_string();
    let Some(load_balancer) = lbs(
        c,
        "x.id = $1 AND x.provisioning_status <> 'DELETED'",
        args![&lbid],
    )
    .await?
    .into_iter()
    .next() else {
        return Ok(None);
    };
    let by_age = " ORDER BY x.created_at, x.id";
    let listeners = listeners(c, &format!("x.load_balancer_id = $1{by_age}"), args![&lbid]).await?;
    let pools = pools(c, &format!("x.load_balancer_id = $1{by_age}"), args![&lbid]).await?;
    let in_pools = "x.pool_id IN (SELECT id FROM pool WHERE load_balancer_id = $1)";
    let members = members(c, &format!("{in_pools}{by_age}"), args![&lbid]).await?;
    let health_monitors = hms(c, &format!("{in_pools}{by_age}"), args![&lbid]).await?;
    let l7policies = l7policies(
        c,
        "x.listener_id IN (SELECT id FROM listener WHERE load_balancer_id = $1) \
         ORDER BY x.listener_id, x.position, x.id",
        args![&lbid],
    )
    .await?;
    let l7rules = l7rules(
        c,
        &format!(
            "x.l7policy_id IN (SELECT p.id FROM l7policy p JOIN listener l ON \
             l.id = p.listener_id WHERE l.load_balancer_id = $1){by_age}"
        ),
        args![&lbid],
    )
    .await?;
    Ok(Some(LoadBalancerTree {
        load_balancer,
        listeners,
        pools,
        members,
        health_monitors,
        l7policies,
        l7rules,
    }))
}

/// Summed listener statistics over listeners matching `cond` (alias `l`); active
/// connections count only from ALLOCATED amphorae.
pub(crate) async fn stats(
    c: &mut Conn<'_>,
    cond: &str,
    key: impl std::fmt::Display,
) -> Result<ListenerStatistics> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(s.bytes_in), 0) AS BIGINT), \
         CAST(COALESCE(SUM(s.bytes_out), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN a.status = 'ALLOCATED' THEN s.active_connections \
         ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(s.total_connections), 0) AS BIGINT), \
         CAST(COALESCE(SUM(s.request_errors), 0) AS BIGINT) \
         FROM listener_statistics s JOIN listener l ON l.id = s.listener_id \
         LEFT JOIN amphora a ON a.id = s.amphora_id WHERE {cond}"
    );
    let row: Option<(i64, i64, i64, i64, i64)> = c.fetch_optional(&sql, args![id(key)]).await?;
    let (bytes_in, bytes_out, active_connections, total_connections, request_errors) =
        row.unwrap_or_default();
    Ok(ListenerStatistics {
        bytes_in,
        bytes_out,
        active_connections,
        total_connections,
        request_errors,
    })
}

/// Upsert an amphora row with every column as given.
pub(crate) async fn save_amphora(c: &mut Conn<'_>, a: &Amphora) -> Result<()> {
    c.execute(
        "INSERT INTO amphora (id, load_balancer_id, compute_id, lb_network_ip, vrrp_ip, ha_ip, \
         vrrp_port_id, ha_port_id, cert_expiration, cert_busy, role, status, vrrp_interface, \
         vrrp_id, vrrp_priority, cached_zone, image_id, compute_flavor, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20) ON CONFLICT (id) DO UPDATE SET load_balancer_id = $2, compute_id = $3, \
         lb_network_ip = $4, vrrp_ip = $5, ha_ip = $6, vrrp_port_id = $7, ha_port_id = $8, \
         cert_expiration = $9, cert_busy = $10, role = $11, status = $12, vrrp_interface = $13, \
         vrrp_id = $14, vrrp_priority = $15, cached_zone = $16, image_id = $17, \
         compute_flavor = $18, created_at = $19, updated_at = $20",
        vec![
            id(a.id),
            crate::db::opt_id(a.load_balancer_id),
            Arg::from(&a.compute_id),
            Arg::from(&a.lb_network_ip),
            Arg::from(&a.vrrp_ip),
            Arg::from(&a.ha_ip),
            Arg::from(&a.vrrp_port_id),
            Arg::from(&a.ha_port_id),
            Arg::from(a.cert_expiration),
            Arg::from(a.cert_busy),
            Arg::from(a.role.map(|r| r.as_str().to_string())),
            Arg::from(a.status.as_str()),
            Arg::from(&a.vrrp_interface),
            Arg::from(a.vrrp_id),
            Arg::from(a.vrrp_priority),
            Arg::from(&a.cached_zone),
            Arg::from(&a.image_id),
            Arg::from(&a.compute_flavor),
            Arg::from(a.created_at),
            Arg::from(a.updated_at),
        ],
    )
    .await?;
    Ok(())
}

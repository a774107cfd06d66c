//! Reads: one query for the rows plus one for the derived fields of the whole batch, and
//! the generic reads every resource shares (by id, a page, the children of a parent, a
//! write read back).

use std::fmt::Display;
use std::future::Future;

use octavia_model::*;

use crate::db::{args, id, id as sid, AnyRow, Arg, Conn};
use crate::list::list_rows;
use crate::rows::*;
use crate::schema::Table;
use crate::{DbError, ListQuery, LoadBalancerTree, Result, Store};

/// A kind of object the store reads: its row type, and how a page of rows becomes model
/// objects with their derived fields.
pub(crate) trait Load: Sized + Send {
    /// The kind (where it is read from: [`source`]; not-found messages).
    const KIND: ObjectKind;
    /// The row a query returns.
    type Row: AnyRow;

    /// The model object of one row (its own columns).
    fn from_row(row: Self::Row) -> Result<Self>;

    /// Fill the derived fields the rows do not carry (tags, child ids), for a whole page in
    /// one query.
    fn fill(c: &mut Conn<'_>, v: &mut [Self]) -> impl Future<Output = Result<()>> + Send;

    /// Objects matching `cond` (alias `x`), derived fields filled.
    fn load(
        c: &mut Conn<'_>,
        cond: &str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        async move {
            let src = source(Self::KIND);
            let sql = format!("SELECT {} FROM {} WHERE {cond}", src.select, src.from);
            let rows: Vec<Self::Row> = c.fetch_all(&sql, args).await?;
            Self::from_rows(c, rows).await
        }
    }

    /// One page of a list query (`extra`: `column = value` conditions on the main table),
    /// derived fields filled.
    fn list(
        c: &mut Conn<'_>,
        q: &ListQuery,
        extra: Vec<(&'static str, Arg)>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        async move {
            let rows: Vec<Self::Row> = list_rows(c, &source(Self::KIND), q, extra).await?;
            Self::from_rows(c, rows).await
        }
    }

    /// The model objects of `rows`, derived fields filled.
    fn from_rows(
        c: &mut Conn<'_>,
        rows: Vec<Self::Row>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        async move {
            let mut v = rows
                .into_iter()
                .map(Self::from_row)
                .collect::<Result<Vec<Self>>>()?;
            Self::fill(c, &mut v).await?;
            Ok(v)
        }
    }
}

/// The condition of a read by id (`$1`): live rows only.
pub(crate) fn by_id(kind: ObjectKind) -> String {
    match kind.live() {
        Some(live) => format!("x.id = $1 AND {live}"),
        None => "x.id = $1".to_string(),
    }
}

/// The tags of `v`, the only derived field of members, health monitors and L7 rules.
async fn fill_tags<T>(
    c: &mut Conn<'_>,
    v: &mut [T],
    id: impl Fn(&T) -> String,
    tags: impl Fn(&mut T) -> &mut Vec<String>,
) -> Result<()> {
    let ids: Vec<String> = v.iter().map(id).collect();
    let ch = tags_of(c, &ids).await?;
    for (x, i) in v.iter_mut().zip(ids.iter()) {
        *tags(x) = pick(&ch, i, "t");
    }
    Ok(())
}

async fn fill_tags_members(c: &mut Conn<'_>, v: &mut [Member]) -> Result<()> {
    fill_tags(c, v, |x| x.id.to_string(), |x| &mut x.tags).await
}

async fn fill_tags_hms(c: &mut Conn<'_>, v: &mut [HealthMonitor]) -> Result<()> {
    fill_tags(c, v, |x| x.id.to_string(), |x| &mut x.tags).await
}

async fn fill_tags_rules(c: &mut Conn<'_>, v: &mut [L7Rule]) -> Result<()> {
    fill_tags(c, v, |x| x.id.to_string(), |x| &mut x.tags).await
}

/// Nothing to fill: load balancers carry their derived fields on the row (migration 0002),
/// amphorae have none.
async fn no_fill<T>(_c: &mut Conn<'_>, _v: &mut [T]) -> Result<()> {
    Ok(())
}

/// `Load` of each model type: `Model: Row, fill;`.
macro_rules! load {
    ($($model:ident: $row:ty, $fill:path;)*) => {$(
        impl Load for $model {
            const KIND: ObjectKind = ObjectKind::$model;
            type Row = $row;

            fn from_row(row: $row) -> Result<$model> {
                row.into_model()
            }

            async fn fill(c: &mut Conn<'_>, v: &mut [$model]) -> Result<()> {
                $fill(c, v).await
            }
        }
    )*};
}

load! {
    LoadBalancer: LbRow, no_fill;
    Listener: ListenerRow, fill_listeners;
    Pool: PoolRow, fill_pools;
    Member: MemberRow, fill_tags_members;
    HealthMonitor: HmRow, fill_tags_hms;
    L7Policy: L7PolicyRow, fill_l7policies;
    L7Rule: L7RuleRow, fill_tags_rules;
    Amphora: AmphoraRow, no_fill;
}

impl Store {
    /// The object `id` of kind `T` (live rows only).
    pub(crate) async fn get<T: Load>(&self, id: impl Display) -> Result<Option<T>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let v = T::load(&mut c, &by_id(T::KIND), args![sid(id)]).await?;
        Ok(v.into_iter().next())
    }

    /// One page of objects of kind `T`.
    pub(crate) async fn list<T: Load>(&self, q: &ListQuery) -> Result<Vec<T>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        T::list(&mut c, q, vec![]).await
    }

    /// One page of the children of `parent` (of `parent_kind`; NotFound unless it exists):
    /// objects of kind `T` whose parent column names it.
    pub(crate) async fn list_children<T: Load>(
        &self,
        parent_kind: ObjectKind,
        parent: impl Display,
        q: &ListQuery,
    ) -> Result<Vec<T>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        ensure_exists(&mut c, parent_kind, &parent).await?;
        let column = T::KIND
            .parent_column()
            .ok_or_else(|| DbError::Internal(format!("{} has no parent", T::KIND.as_str())))?;
        T::list(&mut c, q, vec![(column, sid(parent))]).await
    }

    /// What a write just stored: `id` read back with the job that will settle it.
    pub(crate) async fn read_back<T: Load>(
        &self,
        id: impl Display,
        job: JobId,
    ) -> Result<(T, JobId)> {
        match self.get::<T>(&id).await? {
            Some(v) => Ok((v, job)),
            None => Err(DbError::not_found(T::KIND, id)),
        }
    }
}

/// NotFound unless the live object `id` of `kind` exists.
pub(crate) async fn ensure_exists(
    c: &mut Conn<'_>,
    kind: ObjectKind,
    id: impl Display,
) -> Result<()> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} x WHERE {}",
        kind.table(),
        by_id(kind)
    );
    if c.count(&sql, args![sid(&id)]).await? == 0 {
        return Err(DbError::not_found(kind, id));
    }
    Ok(())
}

/// The load balancer (unless DELETED) and everything below it.
pub(crate) async fn tree(c: &mut Conn<'_>, lb: LoadBalancerId) -> Result<Option<LoadBalancerTree>> {
    let lbid = lb.to_string();
    let Some(load_balancer) = LoadBalancer::load(c, &by_id(ObjectKind::LoadBalancer), args![&lbid])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let by_age = " ORDER BY x.created_at, x.id";
    let on_lb = format!("x.load_balancer_id = $1{by_age}");
    let listeners = Listener::load(c, &on_lb, args![&lbid]).await?;
    let pools = Pool::load(c, &on_lb, args![&lbid]).await?;
    let in_pools = "x.pool_id IN (SELECT id FROM pool WHERE load_balancer_id = $1)";
    let members = Member::load(c, &format!("{in_pools}{by_age}"), args![&lbid]).await?;
    let health_monitors =
        HealthMonitor::load(c, &format!("{in_pools}{by_age}"), args![&lbid]).await?;
    let l7policies = L7Policy::load(
        c,
        "x.listener_id IN (SELECT id FROM listener WHERE load_balancer_id = $1) \
         ORDER BY x.listener_id, x.position, x.id",
        args![&lbid],
    )
    .await?;
    let l7rules = L7Rule::load(
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

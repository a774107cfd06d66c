//! SQL for list queries: validated filters, tag filters, sort keys and keyset pagination.
//!
//! Only column names from the catalogue ([`crate::columns`]) ever reach SQL text; every
//! value is a bind argument.

use chrono::NaiveDateTime;

use crate::db::{Arg, Conn};
use crate::query::{Column, ColumnType, FilterValue, ListQuery, SortDir};
use crate::{DbError, Result};

/// Where a listable kind lives and how its rows are selected (alias `x` is the main table).
pub(crate) struct Source {
    /// Main table (for the marker check).
    pub table: &'static str,
    /// `FROM` clause (without the keyword).
    pub from: &'static str,
    /// Select list.
    pub select: &'static str,
    pub columns: &'static [Column],
    /// Whether the kind has tags.
    pub tags: bool,
    /// Always-on condition (e.g. not DELETED).
    pub base_where: Option<&'static str>,
    /// Keys appended to every sort (ascending) when absent.
    pub default_sort: &'static [&'static str],
    /// How [`ListQuery::project_id`] restricts rows; `{}` is the placeholder. `None`: the
    /// kind belongs to no project (the operator's catalogue).
    pub project_cond: Option<&'static str>,
    /// The column a marker names (the primary key: `id`, or `name` for availability zones).
    pub key: &'static str,
}

/// Accumulates bind arguments and hands out their placeholders.
#[derive(Default)]
pub(crate) struct Binds {
    pub args: Vec<Arg>,
}

impl Binds {
    pub(crate) fn push(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
}

fn col_expr(src: &Source, name: &str) -> String {
    match name.strip_prefix("vip_") {
        Some(rest) if src.table == "load_balancer" => {
            let c = if rest == "address" {
                "ip_address"
            } else {
                rest
            };
            format!("v.{c}")
        }
        _ => format!("x.{name}"),
    }
}

fn find_col(src: &Source, name: &str) -> Option<Column> {
    src.columns.iter().copied().find(|c| c.name == name)
}

/// The expression a column sorts and pages by: NULL-free, same order on both engines.
fn sort_expr(c: &Conn<'_>, col: Column, e: &str) -> String {
    match col.ty {
        ColumnType::Text => c.text_sort_key(e),
        ColumnType::Int => format!("CAST(COALESCE({e}, -2147483648) AS BIGINT)"),
        ColumnType::Bool => format!("COALESCE({e}, FALSE)"),
        ColumnType::Timestamp => format!("COALESCE({e}, '0001-01-01 00:00:00')"),
    }
}

fn parse_ts(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim().trim_end_matches('Z');
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

fn coerce(col: Column, v: &FilterValue) -> Result<Arg> {
    let bad = || DbError::Invalid(format!("invalid value for filter {}", col.name));
    Ok(match (col.ty, v) {
        (ColumnType::Text, FilterValue::Text(s)) => Arg::Text(Some(s.clone())),
        (ColumnType::Text, FilterValue::Int(n)) => Arg::Text(Some(n.to_string())),
        (ColumnType::Text, FilterValue::Bool(b)) => Arg::Text(Some(b.to_string())),
        (ColumnType::Int, FilterValue::Int(n)) => Arg::I64(Some(*n)),
        (ColumnType::Int, FilterValue::Text(s)) => {
            Arg::I64(Some(s.trim().parse().map_err(|_| bad())?))
        }
        (ColumnType::Bool, FilterValue::Bool(b)) => Arg::Bool(Some(*b)),
        (ColumnType::Bool, FilterValue::Text(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Arg::Bool(Some(true)),
            "false" | "0" | "no" | "off" => Arg::Bool(Some(false)),
            _ => return Err(bad()),
        },
        (ColumnType::Timestamp, FilterValue::Text(s)) => {
            Arg::Ts(Some(parse_ts(s).ok_or_else(bad)?))
        }
        _ => return Err(bad()),
    })
}

fn in_list(b: &mut Binds, vals: &[String]) -> String {
    vals.iter()
        .map(|v| b.push(Arg::Text(Some(v.clone()))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run a list query over `src`; `extra` adds `column = value` conditions on the main table
/// (parent ids).
pub(crate) async fn list_rows<R: crate::db::AnyRow>(
    c: &mut Conn<'_>,
    src: &Source,
    q: &ListQuery,
    extra: Vec<(&'static str, Arg)>,
) -> Result<Vec<R>> {
    let mut b = Binds::default();
    let mut conds: Vec<String> = Vec::new();
    if let Some(w) = src.base_where {
        conds.push(w.to_string());
    }
    for (column, a) in extra {
        let p = b.push(a);
        conds.push(format!("x.{column} = {p}"));
    }
    if let Some(p) = &q.project_id {
        let cond = src
            .project_cond
            .ok_or_else(|| DbError::Internal(format!("{} rows belong to no project", src.table)))?;
        let ph = b.push(Arg::Text(Some(p.clone())));
        conds.push(cond.replace("{}", &ph));
    }
    for f in &q.filters {
        let col = find_col(src, &f.column).ok_or_else(|| {
            DbError::Invalid(format!(
                "One or more arguments are either duplicate or invalid: {}",
                f.column
            ))
        })?;
        let arg = coerce(col, &f.value)?;
        let ph = b.push(arg);
        conds.push(format!("{} = {ph}", col_expr(src, col.name)));
    }
    let t = &q.tags;
    if !(t.all.is_empty() && t.any.is_empty() && t.not_all.is_empty() && t.not_any.is_empty()) {
        if !src.tags {
            return Err(DbError::Invalid(
                "tag filters are not supported here".into(),
            ));
        }
        let has = |b: &mut Binds, tag: &String| {
            let ph = b.push(Arg::Text(Some(tag.clone())));
            format!("EXISTS (SELECT 1 FROM tags tg WHERE tg.resource_id = x.id AND tg.tag = {ph})")
        };
        for tag in &t.all {
            let e = has(&mut b, tag);
            conds.push(e);
        }
        if !t.any.is_empty() {
            let l = in_list(&mut b, &t.any);
            conds.push(format!(
                "EXISTS (SELECT 1 FROM tags tg WHERE tg.resource_id = x.id AND tg.tag IN ({l}))"
            ));
        }
        if !t.not_all.is_empty() {
            let parts: Vec<String> = t.not_all.iter().map(|tag| has(&mut b, tag)).collect();
            conds.push(format!("NOT ({})", parts.join(" AND ")));
        }
        if !t.not_any.is_empty() {
            let l = in_list(&mut b, &t.not_any);
            conds.push(format!(
                "NOT EXISTS (SELECT 1 FROM tags tg WHERE tg.resource_id = x.id AND tg.tag IN ({l}))"
            ));
        }
    }

    // Sort keys: validated, defaults appended, direction flipped for page_reverse.
    let mut keys: Vec<(Column, SortDir)> = Vec::new();
    for (name, dir) in &q.sort {
        let col = find_col(src, name)
            .ok_or_else(|| DbError::Invalid(format!("Invalid sort key: {name}")))?;
        keys.push((col, *dir));
    }
    for d in src.default_sort {
        if !keys.iter().any(|(c, _)| c.name == *d) {
            let col = find_col(src, d)
                .ok_or_else(|| DbError::Internal(format!("sort default {d} not in catalogue")))?;
            keys.push((col, SortDir::Asc));
        }
    }
    let flip = |d: SortDir| match (d, q.page_reverse) {
        (d, false) => d,
        (SortDir::Asc, true) => SortDir::Desc,
        (SortDir::Desc, true) => SortDir::Asc,
    };
    let exprs: Vec<(String, String, SortDir)> = keys
        .iter()
        .map(|(col, d)| {
            let raw = col_expr(src, col.name);
            (sort_expr(c, *col, &raw), raw, flip(*d))
        })
        .collect();

    let mut from = src.from.to_string();
    if let Some(m) = &q.marker {
        let ph = b.push(Arg::Text(Some(m.clone())));
        let found = c
            .count(
                &format!("SELECT COUNT(*) FROM {} WHERE {} = $1", src.table, src.key),
                vec![Arg::Text(Some(m.clone()))],
            )
            .await?;
        if found == 0 {
            return Err(DbError::Invalid("Invalid marker".into()));
        }
        let sel: Vec<String> = exprs
            .iter()
            .enumerate()
            .map(|(i, (_, raw, _))| {
                let col = keys[i].0;
                format!("{} AS m{i}", sort_expr(c, col, raw))
            })
            .collect();
        from = format!(
            "{from} CROSS JOIN (SELECT {} FROM {} WHERE x.{} = {ph}) mk",
            sel.join(", "),
            src.from,
            src.key
        );
        let mut ors = Vec::new();
        for i in 0..exprs.len() {
            let mut ands: Vec<String> = (0..i)
                .map(|j| format!("{} = mk.m{j}", exprs[j].0))
                .collect();
            let op = if exprs[i].2 == SortDir::Asc { ">" } else { "<" };
            ands.push(format!("{} {op} mk.m{i}", exprs[i].0));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        conds.push(format!("({})", ors.join(" OR ")));
    }
    let order: Vec<String> = exprs
        .iter()
        .map(|(e, _, d)| format!("{e} {}", if *d == SortDir::Asc { "ASC" } else { "DESC" }))
        .collect();
    let mut sql = format!("SELECT {} FROM {from}", src.select);
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    if let Some(l) = q.limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    let mut rows: Vec<R> = c.fetch_all(&sql, b.args).await?;
    if q.page_reverse {
        rows.reverse();
    }
    Ok(rows)
}

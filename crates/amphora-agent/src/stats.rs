//! HAProxy statistics: `show stat` over a load balancer's stats socket, turned into the
//! listener and pool reports of the v3 heartbeat.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use amphora_proto::heartbeat::{CounterDeltas, ListenerReport, ListenerStats, PoolReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{AgentError, Result};

/// Longest time one `show stat` may take.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of `show stat` (the columns the heartbeat needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    /// Proxy name (listener id, `<pool_id>:<listener_id>`).
    pub pxname: String,
    /// `FRONTEND`, `BACKEND` or the server name (member id).
    pub svname: String,
    /// Status column.
    pub status: String,
    /// Server weight.
    pub weight: Option<u64>,
    /// Current sessions.
    pub scur: u64,
    /// Total sessions.
    pub stot: u64,
    /// Bytes in.
    pub bin: u64,
    /// Bytes out.
    pub bout: u64,
    /// Request errors.
    pub ereq: u64,
}

/// Runs `show stat` on the socket and returns the raw CSV.
pub async fn show_stat(socket: &Path) -> Result<String> {
    show(socket, "show stat").await
}

/// Runs one runtime API command on the socket and returns its answer.
pub async fn show(socket: &Path, command: &str) -> Result<String> {
    let io = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(STATS_TIMEOUT, io).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(AgentError::io("query stats socket", socket, e)),
        Err(_) => Err(AgentError::io(
            "query stats socket",
            socket,
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        )),
    }
}

/// Parses the CSV of `show stat`.
pub fn parse_show_stat(csv: &str) -> Vec<StatRow> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix('#')) else {
        return Vec::new();
    };
    let columns: BTreeMap<&str, usize> = header
        .trim()
        .split(',')
        .enumerate()
        .map(|(i, name)| (name.trim(), i))
        .collect();
    let (Some(&px), Some(&sv), Some(&st)) = (
        columns.get("pxname"),
        columns.get("svname"),
        columns.get("status"),
    ) else {
        return Vec::new();
    };
    lines
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let text = |i: usize| cells.get(i).map(|s| s.trim().to_owned());
            let num = |name: &str| {
                columns
                    .get(name)
                    .and_then(|&i| cells.get(i))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            Some(StatRow {
                pxname: text(px)?,
                svname: text(sv)?,
                status: text(st)?,
                weight: num("weight"),
                scur: num("scur").unwrap_or(0),
                stot: num("stot").unwrap_or(0),
                bin: num("bin").unwrap_or(0),
                bout: num("bout").unwrap_or(0),
                ereq: num("ereq").unwrap_or(0),
            })
        })
        .collect()
}

/// Adds the rows of one load balancer to the heartbeat's listeners and pools; listener counters
/// are turned into deltas through `deltas`. Proxies named like `prometheus` are left out.
pub fn add_rows(
    rows: &[StatRow],
    deltas: &mut CounterDeltas,
    listeners: &mut BTreeMap<String, ListenerReport>,
    pools: &mut BTreeMap<String, PoolReport>,
) {
    for row in rows.iter().filter(|r| !r.pxname.contains("prometheus")) {
        match row.svname.as_str() {
            "FRONTEND" => {
                let absolute = ListenerStats {
                    tx: row.bout,
                    rx: row.bin,
                    conns: row.scur,
                    totconns: row.stot,
                    ereq: row.ereq,
                };
                listeners.insert(
                    row.pxname.clone(),
                    ListenerReport {
                        status: row.status.clone(),
                        stats: deltas.delta(&row.pxname, absolute),
                        pools: BTreeMap::new(),
                    },
                );
            }
            "BACKEND" => {
                pools.entry(row.pxname.clone()).or_default().status = row.status.clone();
            }
            member => {
                let status = if row.status.starts_with("UP") && row.weight == Some(0) {
                    "DRAIN".to_owned()
                } else {
                    row.status.clone()
                };
                pools
                    .entry(row.pxname.clone())
                    .or_default()
                    .members
                    .insert(member.to_owned(), status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
        l1,FRONTEND,,,2,3,100,10,1000,2000,0,0,1,,,,,OPEN,\n\
        p1:l1,m1,0,0,0,1,,5,500,900,,0,,0,0,0,0,UP,1\n\
        p1:l1,m2,0,0,0,1,,5,500,900,,0,,0,0,0,0,DOWN,1\n\
        p1:l1,m3,0,0,0,1,,5,500,900,,0,,0,0,0,0,UP,0\n\
        p1:l1,m4,0,0,0,1,,5,500,900,,0,,0,0,0,0,no check,1\n\
        p1:l1,BACKEND,0,0,0,1,,10,1000,2000,0,0,,0,0,0,0,UP,2\n\
        prometheus-exporter-internal-endpoint,FRONTEND,,,0,0,100,0,0,0,0,0,0,,,,,OPEN,\n";

    #[test]
    fn rows_become_listener_and_pool_reports_with_deltas() {
        let rows = parse_show_stat(CSV);
        assert_eq!(rows.len(), 7);
        let mut deltas = CounterDeltas::new();
        let (mut listeners, mut pools) = (BTreeMap::new(), BTreeMap::new());
        add_rows(&rows, &mut deltas, &mut listeners, &mut pools);
        assert_eq!(listeners.len(), 1, "prometheus excluded");
        assert_eq!(listeners["l1"].status, "OPEN");
        assert_eq!(listeners["l1"].stats.rx, 1000);
        assert_eq!(pools["p1:l1"].status, "UP");
        let members = &pools["p1:l1"].members;
        assert_eq!(members["m1"], "UP");
        assert_eq!(members["m2"], "DOWN");
        assert_eq!(members["m3"], "DRAIN");
        assert_eq!(members["m4"], "no check");
        // Second heartbeat with 300 more bytes in: only the delta is sent, conns stays absolute.
        let later = CSV.replace(
            "l1,FRONTEND,,,2,3,100,10,1000",
            "l1,FRONTEND,,,2,3,100,12,1300",
        );
        let (mut listeners, mut pools) = (BTreeMap::new(), BTreeMap::new());
        add_rows(
            &parse_show_stat(&later),
            &mut deltas,
            &mut listeners,
            &mut pools,
        );
        assert_eq!(listeners["l1"].stats.rx, 300);
        assert_eq!(listeners["l1"].stats.totconns, 2);
        assert_eq!(listeners["l1"].stats.conns, 2);
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse_show_stat("").is_empty());
        assert!(parse_show_stat("Unknown command\n").is_empty());
    }
}

//! Host figures for `GET /1.0/details`, read from `/proc` and `statvfs`.

use std::collections::BTreeMap;
use std::path::Path;

use amphora_proto::agent::{CpuTimes, DiskInfo, MemoryInfo, NetworkCounters};

/// The host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Byte counters per interface of this network namespace.
pub fn networks() -> BTreeMap<String, NetworkCounters> {
    std::fs::read_to_string("/proc/net/dev")
        .map(|text| parse_net_dev(&text))
        .unwrap_or_default()
}

fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkCounters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let cols: Vec<u64> = rest
                .split_whitespace()
                .map(|c| c.parse().unwrap_or(0))
                .collect();
            Some((
                name.trim().to_owned(),
                NetworkCounters {
                    network_rx: *cols.first()?,
                    network_tx: *cols.get(8)?,
                },
            ))
        })
        .collect()
}

/// CPU counters and the number of CPUs.
pub fn cpu() -> (CpuTimes, u64) {
    std::fs::read_to_string("/proc/stat")
        .map(|text| parse_stat(&text))
        .unwrap_or_default()
}

fn parse_stat(text: &str) -> (CpuTimes, u64) {
    let mut times = CpuTimes::default();
    let mut count = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => {
                let cols: Vec<u64> = words.map(|c| c.parse().unwrap_or(0)).collect();
                let col = |i: usize| cols.get(i).copied().unwrap_or(0);
                times = CpuTimes {
                    total: cols.iter().sum(),
                    user: col(0),
                    system: col(2),
                    soft_irq: col(6),
                };
            }
            Some(name) if name.starts_with("cpu") => count += 1,
            _ => {}
        }
    }
    (times, count)
}

/// Memory figures in KiB.
pub fn memory() -> MemoryInfo {
    std::fs::read_to_string("/proc/meminfo")
        .map(|text| parse_meminfo(&text))
        .unwrap_or_default()
}

fn parse_meminfo(text: &str) -> MemoryInfo {
    let values: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            Some((key, rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    let get = |k: &str| values.get(k).copied().unwrap_or(0);
    MemoryInfo {
        total: get("MemTotal"),
        free: get("MemFree"),
        buffers: get("Buffers"),
        cached: get("Cached"),
        swap_used: get("SwapTotal").saturating_sub(get("SwapFree")),
        shared: get("Shmem"),
        slab: get("Slab"),
    }
}

/// Load averages.
pub fn load() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Disk usage of the file system holding `path`.
pub fn disk(path: &Path) -> DiskInfo {
    match rustix::fs::statvfs(path) {
        Ok(st) => DiskInfo {
            used: st.f_blocks.saturating_sub(st.f_bfree) * st.f_frsize,
            available: st.f_bavail * st.f_frsize,
        },
        Err(_) => DiskInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n  \
                   lo: 100 2 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n";
        let nets = parse_net_dev(dev);
        assert_eq!(nets["lo"].network_rx, 100);
        assert_eq!(nets["lo"].network_tx, 300);
        let (cpu, count) =
            parse_stat("cpu  10 1 20 100 5 0 3 0 0 0\ncpu0 5 0 10 50 2 0 1 0 0 0\ncpu1 5 1 10 50 3 0 2 0 0 0\nintr 1\n");
        assert_eq!(
            (cpu.total, cpu.user, cpu.system, cpu.soft_irq, count),
            (139, 10, 20, 3, 2)
        );
        let mem = parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 400 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n",
        );
        assert_eq!((mem.total, mem.free, mem.swap_used), (1000, 400, 30));
    }
}

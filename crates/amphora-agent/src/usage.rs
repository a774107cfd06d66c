//! CPU and memory used by this amphora, for the `octavia_loadbalancer_cpu` and
//! `octavia_loadbalancer_memory` gauges of the metrics proxy.
//!
//! Octavia reports the amphora VM's utilisation. Our amphorae are network namespaces on a
//! shared host, so the host's figures would say nothing about one amphora; what is this
//! amphora's own is its processes: every HAProxy master and worker the agent runs, and the
//! agent itself. CPU is their CPU time (`utime + stime` of `/proc/<pid>/stat`) over wall time,
//! as a percent of the CPUs the agent may use; memory is their proportional set size
//! (`Pss` of `/proc/<pid>/smaps_rollup`, so the pages a master shares with its workers count
//! once; `VmRSS` where it cannot be read) as a percent of the host's `MemTotal`.
//!
//! The arithmetic ([`cpu_percent`], [`memory_percent`], [`CpuHistory`]) is pure; [`sample`]
//! reads `/proc`.

use std::time::Duration;

/// Shortest window a CPU figure is computed over when an older sample exists: a second
/// scraper right after the first would otherwise get a figure over a few milliseconds,
/// which the clock tick (10 ms) makes meaningless.
pub const MIN_CPU_WINDOW: Duration = Duration::from_secs(1);

/// CPU time of one process at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCpu {
    /// The process id.
    pub pid: i32,
    /// When it started, in clock ticks since boot (tells a reused pid from the old process).
    pub start_ticks: u64,
    /// `utime + stime`, in clock ticks (all its threads).
    pub cpu_ticks: u64,
}

/// The CPU times of the amphora's processes at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuSample {
    /// Seconds since boot (`/proc/uptime`), the clock of `start_ticks`.
    pub at_secs: f64,
    /// The processes.
    pub processes: Vec<ProcessCpu>,
}

/// CPU use between `previous` and `now`, as a percent of `cpus` CPUs (0 to 100).
///
/// A process in both samples contributes the ticks it used in between. A process missing
/// from `previous` (a worker started by a reload, or every process when there is no previous
/// sample) contributes its average rate over the part of its life inside the window:
/// `ticks / max(lifetime, window)` — all its ticks when it started within the window, its
/// lifetime average otherwise. A process gone by `now` contributes nothing (its last ticks
/// are lost; they are at most one window's worth).
pub fn cpu_percent(
    previous: Option<&CpuSample>,
    now: &CpuSample,
    ticks_per_second: u64,
    cpus: usize,
) -> f64 {
    if ticks_per_second == 0 || cpus == 0 {
        return 0.0;
    }
    let hz = ticks_per_second as f64;
    let window = previous.map_or(0.0, |p| now.at_secs - p.at_secs);
    let mut cpu_seconds_per_second = 0.0;
    for process in &now.processes {
        let earlier = previous.and_then(|p| {
            p.processes
                .iter()
                .find(|q| q.pid == process.pid && q.start_ticks == process.start_ticks)
        });
        let rate = match earlier {
            Some(earlier) if window > 0.0 => {
                process.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / hz / window
            }
            Some(_) => 0.0,
            None => {
                let lifetime = now.at_secs - process.start_ticks as f64 / hz;
                let span = lifetime.max(window);
                if span > 0.0 {
                    process.cpu_ticks as f64 / hz / span
                } else {
                    0.0
                }
            }
        };
        cpu_seconds_per_second += rate;
    }
    clamp_percent(cpu_seconds_per_second * 100.0 / cpus as f64)
}

/// `used_kib` as a percent of `total_kib` (0 to 100; 0 when the total is unknown).
pub fn memory_percent(used_kib: u64, total_kib: u64) -> f64 {
    if total_kib == 0 {
        return 0.0;
    }
    clamp_percent(used_kib as f64 * 100.0 / total_kib as f64)
}

fn clamp_percent(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// The last two samples kept between scrapes.
#[derive(Debug, Default)]
pub struct CpuHistory {
    last: Option<CpuSample>,
    before_last: Option<CpuSample>,
}

impl CpuHistory {
    /// The sample to measure from at `now_secs`: the last one if it is at least
    /// [`MIN_CPU_WINDOW`] old, else the one before it (if any).
    pub fn reference(&self, now_secs: f64) -> Option<&CpuSample> {
        match &self.last {
            Some(last) if now_secs - last.at_secs >= MIN_CPU_WINDOW.as_secs_f64() => Some(last),
            Some(last) => self.before_last.as_ref().or(Some(last)),
            None => None,
        }
    }

    /// Keeps `sample` as the last one, unless the last one is younger than
    /// [`MIN_CPU_WINDOW`] (then the history stays as it is).
    pub fn record(&mut self, sample: CpuSample) {
        let replace = match &self.last {
            Some(last) => sample.at_secs - last.at_secs >= MIN_CPU_WINDOW.as_secs_f64(),
            None => true,
        };
        if replace {
            self.before_last = self.last.replace(sample);
        }
    }
}

/// What one scrape measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// CPU percent since the reference sample.
    pub cpu_percent: f64,
    /// Memory percent of `MemTotal`, when `/proc/meminfo` could be read.
    pub memory_percent: Option<f64>,
}

/// Reads `/proc` for `pids` (the processes that vanished meanwhile are skipped), computes the
/// figures against `history` and records the new sample in it.
pub fn sample(pids: &[i32], history: &mut CpuHistory) -> Usage {
    let at_secs = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| parse_uptime(&text))
        .unwrap_or(0.0);
    let mut processes = Vec::with_capacity(pids.len());
    let mut used_kib = 0;
    for &pid in pids {
        let Some((cpu_ticks, start_ticks)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            continue;
        };
        processes.push(ProcessCpu {
            pid,
            start_ticks,
            cpu_ticks,
        });
        used_kib += process_memory_kib(pid).unwrap_or(0);
    }
    let now = CpuSample { at_secs, processes };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ticks_per_second = rustix::param::clock_ticks_per_second();
    let cpu = cpu_percent(history.reference(at_secs), &now, ticks_per_second, cpus);
    history.record(now);
    let total_kib = crate::host::memory().total;
    Usage {
        cpu_percent: cpu,
        memory_percent: (total_kib > 0).then(|| memory_percent(used_kib, total_kib)),
    }
}

/// A process's proportional set size in KiB, or its resident set size when
/// `smaps_rollup` cannot be read.
fn process_memory_kib(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| kib_field(&text, "Pss"))
        .or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|text| kib_field(&text, "VmRSS"))
        })
}

/// `(utime + stime, starttime)` from `/proc/<pid>/stat`, in clock ticks.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    // The fields follow the parenthesised command name, which may contain spaces and ')':
    // field 3 (state) is the first after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)?.checked_add(field(15)?)?, field(22)?))
}

/// The value of a `Name:   123 kB` line.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Seconds since boot, the first figure of `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, start_ticks: u64, cpu_ticks: u64) -> ProcessCpu {
        ProcessCpu {
            pid,
            start_ticks,
            cpu_ticks,
        }
    }

    fn at(at_secs: f64, processes: Vec<ProcessCpu>) -> CpuSample {
        CpuSample { at_secs, processes }
    }

    #[test]
    fn cpu_percent_table() {
        // (what, previous, now, cpus, expected percent)
        let cases: Vec<(&str, Option<CpuSample>, CpuSample, usize, f64)> = vec![
            (
                "one process, half a cpu over 10 s",
                Some(at(1000.0, vec![process(7, 100, 1000)])),
                at(1010.0, vec![process(7, 100, 1500)]),
                1,
                50.0,
            ),
            (
                "the same on two cpus is a quarter of the capacity",
                Some(at(1000.0, vec![process(7, 100, 1000)])),
                at(1010.0, vec![process(7, 100, 1500)]),
                2,
                25.0,
            ),
            (
                "two processes add up",
                Some(at(1000.0, vec![process(7, 100, 0), process(8, 100, 0)])),
                at(1010.0, vec![process(7, 100, 200), process(8, 100, 300)]),
                1,
                50.0,
            ),
            (
                "no previous sample: the lifetime average (200 s of life, 50 s of cpu)",
                None,
                at(1000.0, vec![process(7, 80_000, 5000)]),
                1,
                25.0,
            ),
            (
                "a worker born within the window: all its ticks count over the window",
                Some(at(1000.0, vec![])),
                at(1010.0, vec![process(9, 100_500, 300)]),
                1,
                30.0,
            ),
            (
                "a process older than the window but unseen: its lifetime average",
                Some(at(1000.0, vec![])),
                at(1010.0, vec![process(9, 81_000, 10_000)]),
                1,
                50.0,
            ),
            (
                "a reused pid is a new process",
                Some(at(1000.0, vec![process(7, 100, 90_000)])),
                at(1010.0, vec![process(7, 100_500, 100)]),
                1,
                10.0,
            ),
            (
                "a gone process counts nothing, a counter never goes back",
                Some(at(1000.0, vec![process(7, 100, 900), process(8, 100, 5)])),
                at(1010.0, vec![process(8, 100, 3)]),
                1,
                0.0,
            ),
            (
                "more than the capacity is clamped",
                Some(at(1000.0, vec![process(7, 100, 0)])),
                at(1001.0, vec![process(7, 100, 400)]),
                2,
                100.0,
            ),
            (
                "no time passed",
                Some(at(1000.0, vec![process(7, 100, 0)])),
                at(1000.0, vec![process(7, 100, 50)]),
                1,
                0.0,
            ),
            (
                "no cpus known",
                None,
                at(1000.0, vec![process(7, 100, 50)]),
                0,
                0.0,
            ),
        ];
        for (what, previous, now, cpus, expected) in cases {
            let got = cpu_percent(previous.as_ref(), &now, 100, cpus);
            assert!((got - expected).abs() < 1e-9, "{what}: {got} != {expected}");
        }
    }

    #[test]
    fn memory_percent_table() {
        for (used, total, expected) in [
            (0, 1000, 0.0),
            (250, 1000, 25.0),
            (1000, 1000, 100.0),
            (3000, 1000, 100.0),
            (5, 0, 0.0),
        ] {
            assert_eq!(memory_percent(used, total), expected, "{used}/{total}");
        }
    }

    #[test]
    fn history_keeps_windows_of_at_least_a_second() {
        let mut history = CpuHistory::default();
        assert_eq!(history.reference(10.0), None);
        history.record(at(10.0, vec![]));
        // A scrape right after: measured from that sample (the only one), not recorded.
        assert_eq!(history.reference(10.2).map(|s| s.at_secs), Some(10.0));
        history.record(at(10.2, vec![]));
        assert_eq!(history.reference(25.0).map(|s| s.at_secs), Some(10.0));
        history.record(at(25.0, vec![]));
        // A second scraper 10 ms after the first is measured from the sample before.
        assert_eq!(history.reference(25.01).map(|s| s.at_secs), Some(10.0));
        history.record(at(25.01, vec![]));
        assert_eq!(history.reference(40.0).map(|s| s.at_secs), Some(25.0));
    }

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (haproxy (x) y) S 1 4242 4242 0 -1 4194560 2 0 0 0 \
                    120 30 0 0 20 0 1 0 98765 1000 200 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((150, 98765)));
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1024 kB\n\
                      Pss_Anon:  512 kB\n";
        assert_eq!(kib_field(rollup, "Pss"), Some(1024));
        assert_eq!(kib_field("VmRSS:\t  3000 kB\n", "VmRSS"), Some(3000));
        assert_eq!(kib_field("VmHWM: 1 kB\n", "VmRSS"), None);
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345.67));
        assert_eq!(parse_uptime(""), None);
    }
}

//! Reading another process's memory and CPU time, and the machine's, from `/proc`.

use anyhow::Context;

/// Clock ticks per second of `/proc/*/stat` (USER_HZ: 100 on every Linux port that matters).
const TICKS_PER_S: f64 = 100.0;

/// One look at a process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// The highest resident set size so far (VmHWM), KiB.
    pub hwm_kib: u64,
    /// User + system CPU time of all its threads, seconds.
    pub cpu_s: f64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
///
/// # Errors
/// The process is gone, or the files are not as Linux writes them.
pub(crate) fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count from after it.
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu = ticks(14).zip(ticks(15)).context("malformed /proc/PID/stat")?;
    Ok(ProcSample {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu_s: (cpu.0 + cpu.1) as f64 / TICKS_PER_S,
    })
}

/// The machine's CPU time (busy, total) in seconds, from the first line of `/proc/stat`.
pub(crate) fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are fields 4 and 5.
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(((total - idle) as f64 / TICKS_PER_S, total as f64 / TICKS_PER_S))
}

/// This process's own CPU time, seconds.
pub(crate) fn own_cpu_s() -> f64 {
    sample(std::process::id()).map_or(0.0, |s| s.cpu_s)
}

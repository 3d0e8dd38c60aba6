//! CPU time and memory of a process, from `/proc`.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat`.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User plus system CPU seconds of process `pid` (all its threads), from the
/// `utime` and `stime` fields of `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces; fields
    // after the last ')' start with field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 and stime field 15 (1-based), i.e. indexes 11 and 12 here.
    let utime: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((utime + stime) as f64 / clock_ticks())
}

/// CPU seconds (user + system) used so far by this process, with microsecond
/// resolution (`getrusage(RUSAGE_SELF)`).
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`, ...).
pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            return v.split_whitespace().next().and_then(|n| n.parse().ok()).ok_or_else(|| anyhow!("{path}: bad {field} line '{line}'"));
        }
    }
    Err(anyhow!("{path}: no {field}"))
}

/// Number of threads of `pid`.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(Path::new(&format!("/proc/{pid}/task"))).map(|d| d.count()).unwrap_or(0)
}

/// CPU seconds all CPUs spent busy (user, nice, system, irq, softirq, steal)
/// since boot, from the first line of `/proc/stat`.
pub fn system_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().filter(|l| l.starts_with("cpu ")).ok_or_else(|| anyhow!("/proc/stat: no cpu line"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0usize, 1, 2, 5, 6, 7].iter().map(|&i| v.get(i).copied().unwrap_or(0)).sum();
    Ok(busy as f64 / clock_ticks())
}

/// Processes that compile or link (another build competing for the CPU):
/// `(pid, name)` of every process whose name is one of `names`.
pub fn processes_named(names: &[&str]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            let comm = comm.trim();
            if names.contains(&comm) {
                out.push((pid, comm.to_string()));
            }
        }
    }
    out
}

/// Every descendant of `pid` (children, their children, ...).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // Field 4 (ppid) is the second after the ')' that ends the name.
            if let Some(ppid) = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)).and_then(|x| x.parse::<u32>().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(q) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == q && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Counts a process's system calls and context switches with `perf stat`
/// between [`PerfStat::start`] and [`PerfStat::finish`].
pub struct PerfStat {
    child: std::process::Child,
    out: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct PerfCounts {
    pub syscalls: u64,
    pub context_switches: u64,
}

impl PerfStat {
    pub fn start(pid: u32) -> Result<Self> {
        let out = std::env::temp_dir().join(format!("bench-perf-stat-{}-{pid}.csv", std::process::id()));
        let child = std::process::Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter,context-switches", "-p", &pid.to_string(), "-o"])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting `perf stat` (Debian: linux-perf)")?;
        Ok(Self { child, out })
    }

    pub fn finish(mut self) -> Result<PerfCounts> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        self.child.wait()?;
        let text = std::fs::read_to_string(&self.out).with_context(|| format!("reading {}", self.out.display()))?;
        let _ = std::fs::remove_file(&self.out);
        let count = |event: &str| -> u64 {
            text.lines().filter(|l| l.contains(event)).filter_map(|l| l.split(',').next().and_then(|v| v.trim().parse::<u64>().ok())).sum()
        };
        Ok(PerfCounts { syscalls: count("raw_syscalls:sys_enter"), context_switches: count("context-switches") })
    }
}

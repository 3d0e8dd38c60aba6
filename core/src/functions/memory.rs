//! Enforcing `MemorySize` (docs/functions.md): a memory cgroup per instance where the core
//! can make one (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), else a
//! watcher that stops an instance whose private memory goes over its limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::process::{Exit, WorkerProcess};

/// How often the memory watcher looks at a worker.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// How memory limits are enforced on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryControl {
    /// cgroup v2, under this directory.
    CgroupV2(PathBuf),
    /// cgroup v1 memory controller, under this directory.
    CgroupV1(PathBuf),
    /// Private memory of each worker checked periodically.
    Watcher,
}

impl MemoryControl {
    pub fn describe(&self) -> String {
        match self {
            MemoryControl::CgroupV2(p) => format!("cgroup v2 memory.max ({})", p.display()),
            MemoryControl::CgroupV1(p) => format!("cgroup v1 memory.limit_in_bytes ({})", p.display()),
            MemoryControl::Watcher => "watching each worker's private memory (no writable memory cgroup)".to_string(),
        }
    }

    /// Picks the mechanism: a `ggcore-<pid>` cgroup directory where one can be
    /// made, else the watcher.
    pub fn detect() -> Self {
        let name = format!("ggcore-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup");
        if v2.join("cgroup.controllers").exists() {
            // v2: a child of our own cgroup, with the memory controller enabled.
            if let Some(own) = own_cgroup_v2() {
                let base = v2.join(own.trim_start_matches('/')).join(&name);
                let parent = base.parent().map(Path::to_path_buf).unwrap_or_else(|| v2.to_path_buf());
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
                if std::fs::create_dir_all(&base).is_ok() && std::fs::write(base.join("cgroup.subtree_control"), "+memory").is_ok() {
                    return MemoryControl::CgroupV2(base);
                }
                let _ = std::fs::remove_dir(&base);
            }
        }
        let v1 = Path::new("/sys/fs/cgroup/memory");
        if v1.join("memory.limit_in_bytes").exists() {
            let base = v1.join(&name);
            if std::fs::create_dir_all(&base).is_ok() && base.join("memory.limit_in_bytes").exists() {
                return MemoryControl::CgroupV1(base);
            }
        }
        MemoryControl::Watcher
    }

    /// Makes the cgroup of one instance with its limit (none: unlimited until
    /// [`MemoryControl::set_limit`]); returns the file a process writes its
    /// pid into to join.
    pub fn create(&self, name: &str, limit_bytes: Option<u64>) -> Option<PathBuf> {
        let dir = match self {
            MemoryControl::CgroupV2(base) | MemoryControl::CgroupV1(base) => base.join(name),
            MemoryControl::Watcher => return None,
        };
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the instance's memory cgroup");
            return None;
        }
        if let Some(limit) = limit_bytes {
            self.set_limit(name, limit);
        }
        if matches!(self, MemoryControl::CgroupV2(_)) {
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        }
        Some(dir.join("cgroup.procs"))
    }

    /// Sets the limit of an existing instance cgroup (a spare being assigned).
    pub fn set_limit(&self, name: &str, limit_bytes: u64) -> bool {
        let file = match self {
            MemoryControl::CgroupV2(base) => base.join(name).join("memory.max"),
            MemoryControl::CgroupV1(base) => base.join(name).join("memory.limit_in_bytes"),
            MemoryControl::Watcher => return true,
        };
        match std::fs::write(&file, limit_bytes.to_string()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot set the instance's memory limit");
                false
            }
        }
    }

    /// Whether the kernel killed something in this instance's cgroup for memory.
    pub fn oom_killed(&self, name: &str) -> bool {
        match self {
            MemoryControl::CgroupV2(base) => read_counter(&base.join(name).join("memory.events"), "oom_kill") > 0,
            MemoryControl::CgroupV1(base) => {
                read_counter(&base.join(name).join("memory.oom_control"), "oom_kill") > 0
                    || std::fs::read_to_string(base.join(name).join("memory.failcnt"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                        > 0
            }
            MemoryControl::Watcher => false,
        }
    }

    /// Removes an instance's cgroup (after its process ended). One try, as
    /// this runs on the event loop: a cgroup still busy for a moment is
    /// left for [`MemoryControl::cleanup`] at shutdown.
    pub fn remove(&self, name: &str) {
        if name.is_empty() {
            return;
        }
        if let MemoryControl::CgroupV1(base) | MemoryControl::CgroupV2(base) = self {
            let dir = base.join(name);
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // A process the worker started (a runtime's child, such as
                // node) can outlive the worker by a few milliseconds: try
                // again off the event loop.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    let _ = std::thread::Builder::new().name("ggcore-cgroup-rm".into()).spawn(move || remove_cgroup(&dir));
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "memory cgroup not removed yet"),
            }
        }
    }

    /// Removes every cgroup this core made, and its own directory (at
    /// shutdown, once every worker has ended). Blocking: a busy cgroup is
    /// tried again for up to a second.
    pub fn cleanup(&self) {
        if let MemoryControl::CgroupV1(base) | MemoryControl::CgroupV2(base) = self {
            if let Ok(entries) = std::fs::read_dir(base) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        remove_cgroup(&e.path());
                    }
                }
            }
            remove_cgroup(base);
        }
    }
}

/// Removes a cgroup directory. A process that has just ended may keep it
/// busy for a moment, so a busy cgroup is tried again for up to a second;
/// one that stays busy is logged and left.
fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a memory cgroup");
                return;
            }
        }
    }
    tracing::warn!(dir = %dir.display(), "a memory cgroup stayed busy (a process is still in it); left in place");
}

fn own_cgroup_v2() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

fn read_counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// The watcher (no memory cgroup): checks a worker's private memory every
/// [`WATCH_INTERVAL`] until it ends, and kills it when it is over `limit`
/// bytes. The task is registered with `tracker` and ends with the worker.
pub(crate) fn watch(process: Arc<WorkerProcess>, limit: u64, exit: Arc<Exit>, tracker: &tokio_util::task::TaskTracker) {
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = exit.dead.cancelled() => return,
                _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            if private_bytes(process.pid()).is_some_and(|b| b > limit) {
                exit.killing_for("memory");
                process.kill();
                return;
            }
        }
    });
}

/// The memory a worker is charged with (bytes): its own private memory (what
/// it does not share with the zygote), plus the dirty private memory and swap
/// of every process it started (a runtime such as Node.js runs the function
/// in a child process). A child's clean private pages are its program's text
/// and read-only data, which the kernel can drop and read again: not counted,
/// or a `node` child (30 MB of text) would be over the default 16 MB at once.
pub fn private_bytes(pid: u32) -> Option<u64> {
    let mut total = smaps_kb(pid, &["Private_Clean:", "Private_Dirty:", "Swap:"])?;
    let mut todo = children(pid);
    let mut seen = 0;
    while let Some(child) = todo.pop() {
        // Bounded: a fork bomb is the cgroup's problem, not the watcher's.
        seen += 1;
        if seen > 1024 {
            break;
        }
        total += smaps_kb(child, &["Private_Dirty:", "Swap:"]).unwrap_or(0);
        todo.extend(children(child));
    }
    Some(total * 1024)
}

/// The sum (kB) of the `keys` lines of a process's smaps_rollup.
fn smaps_kb(pid: u32, keys: &[&str]) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mut kb = 0u64;
    for l in text.lines() {
        if let Some(rest) = keys.iter().find_map(|k| l.strip_prefix(k)) {
            kb += rest.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
        }
    }
    Some(kb)
}

/// The children of every thread of a process.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_private_memory() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("memory.events");
        std::fs::write(&f, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(read_counter(&f, "oom_kill"), 2);
        assert_eq!(read_counter(&f, "nothing"), 0);
        assert!(private_bytes(std::process::id()).unwrap() > 0);
    }

    /// A child's dirty memory counts towards its parent's: a child that fills
    /// 64 MB in a child raises what is charged to this process by about that.
    #[test]
    fn children_memory_is_counted() {
        let me = std::process::id();
        let before = private_bytes(me).unwrap();
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import sys, time; b = b'x' * (64 << 20); sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(children(me).contains(&child.id()));
        let during = private_bytes(me).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(during >= before + (60 << 20), "before {before}, with the child {during}");
    }
}

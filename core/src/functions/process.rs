//! A worker process seen from the core: how it ended, why, and the one way
//! the core stops it.
//!
//! The core never signals a worker by its number alone: a pid is free for
//! reuse as soon as the process is reaped, and a signal sent after that could
//! reach an unrelated process. A forked worker is signalled through the
//! pidfd its zygote opened before it could reap it; a worker the core
//! spawned is signalled by the one task that owns its `Child` and reaps it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::memory::MemoryControl;

/// How the worker process ends and what it ended with.
pub struct Exit {
    pub(crate) dead: CancellationToken,
    status: Mutex<Option<i32>>,
    /// Set when the core killed it (timeout, memory watcher).
    killed_for: Mutex<Option<&'static str>>,
}

impl Exit {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { dead: CancellationToken::new(), status: Mutex::new(None), killed_for: Mutex::new(None) })
    }

    /// The process ended with `status` (exit code, or minus the signal).
    pub fn record(&self, status: i32) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        self.dead.cancel();
    }

    /// Notes why the core is about to kill the process.
    pub fn killing_for(&self, why: &'static str) {
        *self.killed_for.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    fn status(&self) -> Option<i32> {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A worker process the core may kill.
pub(crate) struct WorkerProcess {
    pid: u32,
    handle: Handle,
}

enum Handle {
    /// A child of a zygote: the pidfd the zygote sent with `Forked`.
    Pidfd(OwnedFd),
    /// A child of the core: wakes the task that owns (and reaps) it, which
    /// cancels `ended` once it has.
    Child { kill: Arc<Notify>, ended: CancellationToken },
}

impl WorkerProcess {
    /// A zygote's child, known by the pidfd the zygote opened for it.
    pub(crate) fn forked(pid: u32, pidfd: OwnedFd) -> Arc<Self> {
        Arc::new(Self { pid, handle: Handle::Pidfd(pidfd) })
    }

    /// A child the core spawned: a task (registered with `tracker`) waits
    /// for it, records its status in `exit`, and kills it on request. It is
    /// the only code that touches the `Child`, so a kill never follows the
    /// reaping.
    pub(crate) fn spawned(mut child: tokio::process::Child, exit: Arc<Exit>, tracker: &TaskTracker) -> Arc<Self> {
        let pid = child.id().unwrap_or(0);
        let kill = Arc::new(Notify::new());
        let requested = kill.clone();
        let ended = CancellationToken::new();
        let reaped = ended.clone();
        tracker.spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let status = loop {
                tokio::select! {
                    s = child.wait() => break s,
                    _ = requested.notified() => {
                        let _ = child.start_kill();
                    }
                }
            };
            let status = match status {
                Ok(s) => s.code().unwrap_or_else(|| -s.signal().unwrap_or(9)),
                Err(_) => -9,
            };
            exit.record(status);
            reaped.cancel();
        });
        Arc::new(Self { pid, handle: Handle::Child { kill, ended } })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the process (SIGKILL); nothing happens when it has ended.
    pub(crate) fn kill(&self) {
        match &self.handle {
            Handle::Pidfd(fd) => {
                let _ = ggcore_ipc::pidfd::send_signal(fd.as_fd(), libc::SIGKILL);
            }
            Handle::Child { kill, .. } => kill.notify_one(),
        }
    }

    /// Waits until the process has ended (its memory cgroup is then empty).
    pub(crate) async fn ended(&self) {
        match &self.handle {
            // A pidfd is readable once its process has ended.
            Handle::Pidfd(fd) => {
                let watched = fd.try_clone().and_then(|fd| {
                    // SAFETY: the AsyncFd owns this duplicate, which stays open
                    // (naming the same pidfd) until the AsyncFd is dropped.
                    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                        .map_err(std::io::Error::from)
                });
                match watched {
                    Ok(watched) => {
                        let _ = watched.readable().await;
                    }
                    // Cannot watch it: poll whether it still takes signals.
                    Err(_) => {
                        while ggcore_ipc::pidfd::send_signal(fd.as_fd(), 0).is_ok() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
            Handle::Child { ended, .. } => ended.cancelled().await,
        }
    }

    /// Kills the process and waits (up to `within`) until it has ended;
    /// whether it did.
    pub(crate) async fn kill_and_wait(&self, within: Duration) -> bool {
        self.kill();
        tokio::time::timeout(within, self.ended()).await.is_ok()
    }
}

/// Says why a worker ended: out of memory, timeout, signal or exit code.
pub(crate) async fn death_reason(memory: &MemoryControl, cg_name: &str, exit: &Exit, fallback: &str) -> String {
    // The exit status may arrive just after the connection closes.
    for _ in 0..20 {
        if exit.status().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_for = *exit.killed_for.lock().unwrap_or_else(|p| p.into_inner());
    if killed_for == Some("memory") || memory.oom_killed(cg_name) {
        return "Function ran out of memory (over its MemorySize); the instance was stopped".to_string();
    }
    match exit.status() {
        Some(code) if code >= 0 => format!("Function process exited with code {code}"),
        Some(sig) => format!("Function process was killed by signal {}", -sig),
        None => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sleep");
        c.arg("60").kill_on_drop(true);
        c
    }

    /// A spawned worker is killed by the task that reaps it; once it has
    /// ended, killing it again does nothing (there is no pid left to signal).
    #[tokio::test]
    async fn a_spawned_worker_is_killed_and_reaped_by_one_task() {
        let tracker = TaskTracker::new();
        let exit = Exit::new();
        let p = WorkerProcess::spawned(sleeper().spawn().unwrap(), exit.clone(), &tracker);
        assert!(p.pid() > 0);
        assert!(p.kill_and_wait(Duration::from_secs(10)).await);
        assert!(exit.dead.is_cancelled());
        assert_eq!(exit.status(), Some(-libc::SIGKILL));
        p.kill();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await.unwrap();
    }

    /// A forked worker is killed through its pidfd; after it was reaped the
    /// pidfd still names it, so a later kill reaches nothing else.
    #[tokio::test]
    async fn a_forked_worker_is_killed_through_its_pidfd() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let p = WorkerProcess::forked(child.id(), ggcore_ipc::pidfd::open(child.id()).unwrap());
        // Ended (a zombie) is seen through the pidfd before anyone reaps it.
        assert!(p.kill_and_wait(Duration::from_secs(10)).await);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        p.kill();
        tokio::time::timeout(Duration::from_secs(10), p.ended()).await.unwrap();
        let Handle::Pidfd(fd) = &p.handle else { panic!("not a pidfd") };
        let err = ggcore_ipc::pidfd::send_signal(fd.as_fd(), 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}

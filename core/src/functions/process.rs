//! A worker process seen from the core: how it ended, why, and the one way
//! the core stops it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

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

pub(crate) fn kill(pid: u32) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
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

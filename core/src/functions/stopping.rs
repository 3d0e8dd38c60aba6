//! Stopping: single workers (a discarded spare, a failed start), and every
//! function when the core stops, in this order: no new instances (running
//! work goes on for the grace period), then every instance and spare, then
//! the zygotes (which reap their children until then); the memory cgroups
//! are removed last, once every process in them has ended (see
//! `crate::shutdown` for the whole order).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::process::WorkerProcess;
use super::slot::FunctionSlot;
use super::zygote::Zygote;
use super::{lock, FunctionManager};

/// How long a killed process may take to end before the core moves on.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// How long the instances may take to stop (asked, then killed).
const INSTANCES_STOP_WITHIN: Duration = Duration::from_secs(5);
/// How long the function manager's remaining tasks (output forwarders,
/// process watchers) may take to end once every process has.
const TASKS_END_WITHIN: Duration = Duration::from_secs(2);

impl FunctionManager {
    /// Kills a worker that will not be used, and removes its memory cgroup
    /// once it has ended (a cgroup with a live process cannot be removed).
    pub(crate) async fn discard(&self, process: Arc<WorkerProcess>, cg_name: String) {
        if !process.kill_and_wait(KILL_WAIT).await {
            tracing::warn!(pid = process.pid(), "a worker did not end after SIGKILL");
        }
        self.memory.remove(&cg_name);
    }

    /// The core begins to stop: no new instances, spares or zygotes, and the
    /// worker socket stops accepting. Running and queued work goes on.
    pub fn begin_draining(&self) {
        self.draining.cancel();
    }

    fn all_slots(&self) -> Vec<Arc<FunctionSlot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Invocations running, plus those queued for a function with an
    /// instance ready to take them (queued work nothing can run is not
    /// waited for).
    pub fn in_flight(&self) -> usize {
        self.all_slots()
            .iter()
            .map(|s| {
                let instances = s.instance_list();
                let busy = instances.iter().filter(|i| i.state == "busy").count();
                let ready = instances.iter().any(|i| i.state == "busy" || i.state == "idle");
                busy + if ready { s.queue_len() } else { 0 }
            })
            .sum()
    }

    /// Waits until no work is in flight, or until `deadline`; returns how
    /// much still is.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> usize {
        loop {
            let left = self.in_flight();
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50).min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
        }
    }

    /// Stops every function: queued work is answered with an error, running
    /// invocations are ended, every instance, spare and zygote process is
    /// stopped and waited for, then the memory cgroups are removed.
    pub async fn stop_all(&self) {
        self.draining.cancel();
        self.stopping.cancel();
        let slots = self.all_slots();
        for s in &slots {
            s.removed.cancel();
            s.fail_queued("the core is stopping");
        }
        // Instances: each asks its worker to stop, kills it if it must, and
        // waits until it has ended.
        let stopped = tokio::time::timeout(INSTANCES_STOP_WITHIN, async {
            while slots.iter().any(|s| s.alive.load(Ordering::Relaxed) > 0) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if stopped.is_err() {
            tracing::warn!("some function instances did not stop in time");
        }
        self.drop_spares().await;
        // The zygotes last: until now they reaped their children.
        let zygotes: Vec<Arc<Zygote>> =
            lock(&self.zygotes).values().filter_map(|cell| cell.get().and_then(|z| z.as_ref().ok()).cloned()).collect();
        for z in &zygotes {
            z.stop(KILL_WAIT).await;
        }
        self.tracker.close();
        if tokio::time::timeout(TASKS_END_WITHIN, self.tracker.wait()).await.is_err() {
            tracing::warn!(tasks = self.tracker.len(), "some function tasks did not end in time");
        }
    }

    /// Removes every memory cgroup this core made (after [`Self::stop_all`]:
    /// every worker has ended), off the event loop.
    pub async fn cleanup(&self) {
        let memory = self.memory.clone();
        if tokio::task::spawn_blocking(move || memory.cleanup()).await.is_err() {
            tracing::warn!("removing the memory cgroups failed");
        }
    }
}

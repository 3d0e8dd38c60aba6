//! One function instance, seen from the core: start its worker, wait until
//! the function is ready, feed it work (a few invocations ahead), enforce the
//! deadline of each invocation from the outside (the instance is killed when
//! it runs over), and stop it.
//!
//! The parts live beside this module: `worker.rs` starts the process,
//! `conn.rs` serves its IPC connection, `pipeline.rs` tracks the invocations
//! sent to it, `process.rs` knows how it ended, `memory.rs` watches its memory.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ggcore_ipc::Down;
use tokio::io::AsyncWriteExt;

use super::conn::{self, Conn, ReadyRx};
use super::hold;
use super::memory::MemoryControl;
use super::pipeline::{died, end_running, outcome_result, pipeline_depth, send_invoke, Sent};
use super::process::{death_reason, Exit, WorkerProcess};
use super::slot::{FunctionSlot, InstanceStatus};
use super::worker::{start_worker, StartedWorker};
use super::FunctionManager;
use crate::group::Lifecycle;

/// Module-level code must finish within this long (plus the function's Timeout).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// On-demand instances stop after this long without work.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A worker asked to stop is killed if it has not ended after this long.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a killed worker may take to end before the core moves on.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Why an instance ended.
#[derive(Debug)]
pub enum Ended {
    /// No work for the idle timeout (on-demand).
    Idle,
    /// The function left the group, or the core is stopping.
    Removed,
    /// The instance never started: the reason.
    StartFailed(String),
    /// The instance died or was killed: the reason.
    Died(String),
}

fn now_unix() -> u64 {
    crate::deploy::now_unix()
}

/// Counts an instance as starting (from the moment it is decided) until it is
/// ready or gone, so that scaling decisions see it at once.
pub struct Starting {
    slot: Arc<FunctionSlot>,
    counted: bool,
}

impl Starting {
    pub fn new(slot: &Arc<FunctionSlot>) -> Self {
        slot.starting.fetch_add(1, Ordering::Relaxed);
        Self { slot: slot.clone(), counted: true }
    }

    fn done(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.slot.starting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.done();
    }
}

/// How waiting for the running invocation ended.
enum Waited {
    /// Its outcome; `None` when the worker ended first.
    Answer(Option<ggcore_ipc::Outcome>),
    /// Its deadline passed.
    TimedOut,
    /// The core is stopping (its grace period is over).
    Stopping,
}

/// A started instance: what the serving loop works with.
struct Running {
    mgr: Arc<FunctionManager>,
    slot: Arc<FunctionSlot>,
    id: u64,
    pid: u32,
    process: Arc<WorkerProcess>,
    cg_name: String,
    exit: Arc<Exit>,
    conn: Arc<Conn>,
}

/// Runs one instance from start to end. The caller counts it in `alive`.
pub async fn run(mgr: Arc<FunctionManager>, slot: Arc<FunctionSlot>, mut starting: Starting) -> Ended {
    let id = slot.next_instance_id();
    let limit = slot.def.memory_kb * 1024;
    slot.set_instance(InstanceStatus { id, pid: 0, state: "starting", started_unix: now_unix(), invocations: 0 });
    let started = match start_worker(&mgr, &slot, id, limit).await {
        Ok(s) => s,
        Err(reason) => {
            slot.remove_instance(id);
            return Ended::StartFailed(reason);
        }
    };
    let StartedWorker { process, conn, cg_name, exit, direct, spec } = started;
    let pid = process.pid();
    slot.set_instance(InstanceStatus { id, pid, state: "starting", started_unix: now_unix(), invocations: 0 });
    let (rd, mut wr) = conn.stream.into_split();
    if direct && wr.write_all(&ggcore_ipc::encode(&Down::Start { spec })).await.is_err() {
        slot.remove_instance(id);
        mgr.discard(process, cg_name).await;
        return Ended::StartFailed("the worker closed its connection".into());
    }
    let (conn, ready) = conn::open(&mgr, &slot, pid, rd, wr, &exit);
    let instance = Running { mgr, slot, id, pid, process, cg_name, exit, conn };
    if let Err(reason) = instance.wait_ready(ready).await {
        instance.end().await;
        return Ended::StartFailed(reason);
    }
    instance.slot.stats.instances_started.fetch_add(1, Ordering::Relaxed);
    starting.done();
    if matches!(*instance.mgr.memory, MemoryControl::Watcher) {
        super::memory::watch(instance.process.clone(), limit, instance.exit.clone(), &instance.mgr.tracker);
    }
    let ended = instance.serve().await;
    instance.stop().await;
    ended
}

impl Running {
    /// Waits for the function to be ready (its module-level code ran).
    async fn wait_ready(&self, ready: ReadyRx) -> Result<(), String> {
        let started = Instant::now();
        let start_limit = START_TIMEOUT + self.slot.def.timeout;
        // Err(Some(message)): the worker said why; Err(None): it ended without saying.
        let ready: Result<(), Option<String>> = tokio::select! {
            r = tokio::time::timeout(start_limit, ready) => match r {
                Ok(Ok(r)) => r.map_err(Some),
                Ok(Err(_)) => Err(None),
                Err(_) => Err(Some(format!("the function did not finish starting within {} s", start_limit.as_secs()))),
            },
            _ = self.exit.dead.cancelled() => Err(None),
            _ = self.slot.removed.cancelled() => Err(Some("the function was removed while starting".to_string())),
        };
        match ready {
            Ok(()) => {
                tracing::debug!(function = %self.slot.def.arn, pid = self.pid, ms = started.elapsed().as_millis() as u64, "instance ready");
                Ok(())
            }
            Err(Some(message)) => Err(message),
            Err(None) => Err(death_reason(&self.mgr.memory, &self.cg_name, &self.exit, "the worker ended while starting").await),
        }
    }

    fn set_state(&self, state: &'static str, served: u64) {
        self.slot.set_instance(InstanceStatus { id: self.id, pid: self.pid, state, started_unix: now_unix(), invocations: served });
    }

    /// Feeds the instance work until it ends, is idle too long, or is removed.
    async fn serve(&self) -> Ended {
        let (mgr, slot, exit) = (&self.mgr, &self.slot, &self.exit);
        let idle_timeout = match slot.def.lifecycle {
            Lifecycle::Pinned => None,
            Lifecycle::OnDemand => Some(mgr.idle_timeout),
        };
        let mut served = 0u64;
        let mut next_id = 1u64;
        // Invocations sent to the worker, in order. The worker runs them one at a
        // time in that order, so the first is the one running (since `head_since`)
        // and the others wait in its socket: the next one starts without a round
        // trip through the core.
        let mut sent: VecDeque<Sent> = VecDeque::new();
        let mut head_since = tokio::time::Instant::now();
        // Time the core had held the instance back when the head began.
        let mut held_at_head = self.conn.hold.held();
        loop {
            // With nothing sent, wait for work; the first item starts the pipeline.
            let mut waited = None;
            if sent.is_empty() {
                self.set_state("idle", served);
                let item = tokio::select! {
                    w = slot.next(idle_timeout) => w,
                    _ = exit.dead.cancelled() => return Ended::Died(death_reason(&mgr.memory, &self.cg_name, exit, "the worker ended").await),
                };
                let Some(item) = item else {
                    return if slot.removed.is_cancelled() { Ended::Removed } else { Ended::Idle };
                };
                waited = Some(item);
                head_since = tokio::time::Instant::now();
                held_at_head = self.conn.hold.held();
                self.set_state("busy", served);
            }
            // Fill the pipeline from the queue, without waiting for more work.
            let mut send_failed = None;
            while sent.len() < pipeline_depth(slot) {
                let Some(item) = waited.take().or_else(|| slot.try_next()) else { break };
                if let Err(item) = send_invoke(slot, &self.conn, &mut next_id, item, &mut sent).await {
                    send_failed = Some(item);
                    break;
                }
            }
            if let Some(item) = send_failed {
                // It never reached the worker: another instance runs it. The
                // first of `sent`, if any, is the one that was running.
                slot.give_back(vec![item]);
                return died(mgr, slot, &self.cg_name, exit, &mut sent).await;
            }
            let Some(head) = sent.front_mut() else { continue };
            let outcome = match self.wait_for(head, head_since, held_at_head).await {
                Waited::Answer(outcome) => outcome,
                Waited::TimedOut => {
                    exit.killing_for("timeout");
                    self.process.kill();
                    slot.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    let msg = format!("Task timed out after {:.2} seconds", slot.def.timeout.as_secs_f64());
                    end_running(slot, &mut sent, &msg, "; the instance was stopped");
                    return Ended::Died(msg);
                }
                Waited::Stopping => {
                    self.process.kill();
                    let msg = "the core is stopping: this invocation did not end within the grace period";
                    end_running(slot, &mut sent, msg, "");
                    return Ended::Removed;
                }
            };
            let Some(outcome) = outcome else {
                return died(mgr, slot, &self.cg_name, exit, &mut sent).await;
            };
            let Some(head) = sent.pop_front() else { continue };
            head_since = tokio::time::Instant::now();
            held_at_head = self.conn.hold.held();
            served += 1;
            head.item.answer(outcome_result(slot, outcome, mgr.cfg.max_payload));
        }
    }

    /// Waits for the answer to `head`, the invocation running since `since`
    /// (when the core had held the instance back for `held_at_start`). Its
    /// deadline stands still while the core holds the instance back (its
    /// publishes wait for room in full queues): each start or end of a hold
    /// makes the deadline be read again. A function removed by a deployment
    /// is not waited on: its instance finishes the invocations it was given
    /// (accepted messages run), takes no more, and then stops. Only a core
    /// stopping (after its grace period) ends a running invocation.
    async fn wait_for(&self, head: &mut Sent, since: tokio::time::Instant, held_at_start: Duration) -> Waited {
        let (slot, hold) = (&self.slot, &self.conn.hold);
        let mut holds = hold.changes();
        loop {
            holds.borrow_and_update();
            let deadline = hold::deadline(since, slot.def.timeout, hold, held_at_start);
            tokio::select! {
                // An answer already read wins over the end of the connection after it.
                biased;
                r = &mut head.result => return Waited::Answer(r.ok()),
                _ = until(deadline) => {
                    let now = tokio::time::Instant::now();
                    if hold::deadline(since, slot.def.timeout, hold, held_at_start).is_some_and(|d| d <= now) {
                        return Waited::TimedOut;
                    }
                }
                Ok(()) = holds.changed() => {}
                _ = self.exit.dead.cancelled() => return Waited::Answer(None),
                _ = self.mgr.stopping.cancelled() => return Waited::Stopping,
            }
        }
    }

    /// Stops the worker: asks, then insists; returns once it has ended.
    async fn stop(&self) {
        let _ = self.conn.tx.try_send(ggcore_ipc::encode(&Down::Stop));
        if tokio::time::timeout(STOP_TIMEOUT, self.process.ended()).await.is_err() {
            self.end().await;
            return;
        }
        self.cleanup();
    }

    /// Kills the worker, waits until it has ended, and cleans up after it.
    async fn end(&self) {
        if !self.process.kill_and_wait(KILL_WAIT).await {
            tracing::warn!(function = %self.slot.def.arn, pid = self.pid, "a worker did not end after SIGKILL");
        }
        self.cleanup();
    }

    /// Forgets the instance and removes its memory cgroup (its process has
    /// ended, so the cgroup is empty).
    fn cleanup(&self) {
        self.slot.remove_instance(self.id);
        self.mgr.memory.remove(&self.cg_name);
    }
}

/// Sleeps until `deadline`; forever when there is none.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

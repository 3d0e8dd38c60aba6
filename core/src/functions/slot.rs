//! One deployed function: its work queue, its instances' counts and its counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::group::{Function, Lifecycle};
use crate::plugins::PluginEntry;

/// How an invocation ended, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionFailure {
    /// The function reported an error (its error document is the payload).
    Handled,
    /// The runtime or the core detected a failure (timeout, crash, out of memory).
    Unhandled,
}

#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub payload: Bytes,
    pub failure: Option<FunctionFailure>,
}

impl InvokeResult {
    /// An `Unhandled` failure with `{"errorMessage": message}`.
    pub fn unhandled(message: &str) -> Self {
        let e = ggcore_plugin_abi::FunctionError::new(ggcore_plugin_abi::ErrorKind::Unhandled, message);
        Self { payload: Bytes::from(e.payload.into_vec()), failure: Some(FunctionFailure::Unhandled) }
    }

    /// The `X-Amz-Function-Error` value: `""`, `Handled` or `Unhandled`.
    pub fn function_error(&self) -> &'static str {
        match self.failure {
            None => "",
            Some(FunctionFailure::Handled) => "Handled",
            Some(FunctionFailure::Unhandled) => "Unhandled",
        }
    }
}

/// One queued call.
#[derive(Debug)]
pub struct WorkItem {
    pub invocation_id: String,
    pub event: Bytes,
    /// Client context as JSON text (`{"custom": {...}}`), or empty.
    pub client_context: String,
    /// `Event` invocations have no one waiting for the result.
    pub is_event: bool,
    pub reply: Option<oneshot::Sender<InvokeResult>>,
    pub enqueued: Instant,
}

impl WorkItem {
    pub fn answer(self, result: InvokeResult) {
        if let Some(tx) = self.reply {
            let _ = tx.send(result);
        }
    }
}

/// Counters shown by `ggcore status`.
#[derive(Debug, Default)]
pub struct SlotStats {
    pub invocations: AtomicU64,
    pub succeeded: AtomicU64,
    pub handled_errors: AtomicU64,
    pub unhandled_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub crashes: AtomicU64,
    pub out_of_memory: AtomicU64,
    pub rejected_queue_full: AtomicU64,
    pub instances_started: AtomicU64,
    pub start_failures: AtomicU64,
    /// Routed messages (events) answered with an error without running:
    /// the function could not start, was removed, or the core stopped.
    pub events_not_run: AtomicU64,
}

/// What status shows of one instance.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub id: u64,
    pub pid: u32,
    pub state: &'static str,
    pub started_unix: u64,
    pub invocations: u64,
}

pub struct FunctionSlot {
    pub def: Function,
    pub log: super::logs::FunctionLog,
    /// Hash of the code directory (an unchanged function keeps running on redeploy).
    pub code_hash: String,
    pub plugin: PluginEntry,
    queue: Mutex<Queue>,
    pub capacity: usize,
    work_ready: Notify,
    /// Wakes publishers held back by this function's full queue.
    pub room: std::sync::Arc<Notify>,
    /// Instances waiting for work.
    pub idle: AtomicUsize,
    /// Instances alive (started or starting).
    pub alive: AtomicUsize,
    /// Instances starting (not yet taking work).
    pub starting: AtomicUsize,
    pub max_instances: usize,
    pub stats: SlotStats,
    /// Cancelled when the function leaves the group (instances end).
    pub removed: CancellationToken,
    pub instances: Mutex<Vec<InstanceStatus>>,
    next_instance: AtomicU64,
    /// The new version that took over this function's queue at a redeploy.
    successor: Mutex<Option<std::sync::Arc<FunctionSlot>>>,
}

/// The work queue, and whether a publisher waits for room in it (both
/// under one lock, so that a wake-up cannot slip between the check and the
/// registration).
#[derive(Default)]
struct Queue {
    items: VecDeque<WorkItem>,
    room_wanted: bool,
}

/// What [`FunctionSlot::enqueue_routed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued, with room left.
    Queued,
    /// Queued, and the queue is now at (or over) its capacity: hold the publisher back.
    Full,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data; a panic elsewhere does not make it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FunctionSlot {
    pub fn new(
        def: Function,
        log: super::logs::FunctionLog,
        code_hash: String,
        plugin: PluginEntry,
        capacity: usize,
        max_instances: usize,
    ) -> Self {
        let max_instances = if def.lifecycle == Lifecycle::Pinned { 1 } else { max_instances.max(1) };
        Self {
            def,
            log,
            code_hash,
            plugin,
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            work_ready: Notify::new(),
            room: std::sync::Arc::new(Notify::new()),
            idle: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            starting: AtomicUsize::new(0),
            max_instances,
            stats: SlotStats::default(),
            removed: CancellationToken::new(),
            instances: Mutex::new(Vec::new()),
            next_instance: AtomicU64::new(1),
            successor: Mutex::new(None),
        }
    }

    pub fn next_instance_id(&self) -> u64 {
        self.next_instance.fetch_add(1, Ordering::Relaxed)
    }

    pub fn queue_len(&self) -> usize {
        lock(&self.queue).items.len()
    }

    /// Queues a call; a full queue gives the item back (the caller gets an error).
    pub fn enqueue(&self, item: WorkItem) -> Result<(), WorkItem> {
        {
            let mut q = lock(&self.queue);
            if q.items.len() >= self.capacity {
                return Err(item);
            }
            q.items.push_back(item);
        }
        self.work_ready.notify_one();
        Ok(())
    }

    /// Queues a routed message's invocation. With `hold`, a full queue still
    /// takes it and answers [`Enqueued::Full`]: the publisher waits for room
    /// ([`FunctionSlot::room_or_wait`]) before its next message, so the queue
    /// exceeds its capacity by at most one item per held publisher. Without
    /// it (`AllOrError`), a full queue gives the item back.
    pub fn enqueue_routed(&self, item: WorkItem, hold: bool) -> Result<Enqueued, WorkItem> {
        let full = {
            let mut q = lock(&self.queue);
            if !hold && q.items.len() >= self.capacity {
                return Err(item);
            }
            q.items.push_back(item);
            q.items.len() >= self.capacity
        };
        self.work_ready.notify_one();
        Ok(if full { Enqueued::Full } else { Enqueued::Queued })
    }

    /// Whether the queue has room (or the function is gone: nobody to wait
    /// for); when not, a publisher is registered to be woken through
    /// [`FunctionSlot::room`].
    pub fn room_or_wait(&self) -> bool {
        if self.removed.is_cancelled() {
            return true;
        }
        let mut q = lock(&self.queue);
        let room = q.items.len() < self.capacity;
        if !room {
            q.room_wanted = true;
        }
        room
    }

    /// Takes the front item, waking held-back publishers when that made room.
    fn pop(&self) -> Option<WorkItem> {
        let (item, wake) = {
            let mut q = lock(&self.queue);
            let item = q.items.pop_front();
            let wake = q.room_wanted && q.items.len() < self.capacity;
            if wake {
                q.room_wanted = false;
            }
            (item, wake)
        };
        if wake {
            self.room.notify_waiters();
        }
        item
    }

    /// Takes every queued item, waking held-back publishers.
    fn take_all(&self) -> Vec<WorkItem> {
        let items: Vec<WorkItem> = {
            let mut q = lock(&self.queue);
            q.room_wanted = false;
            q.items.drain(..).collect()
        };
        self.room.notify_waiters();
        items
    }

    /// Whether another on-demand instance should start: more queued work than
    /// idle and starting instances will take, and room under the limit.
    pub fn wants_instance(&self) -> bool {
        if self.def.lifecycle == Lifecycle::Pinned {
            return false;
        }
        let queued = self.queue_len();
        let idle = self.idle.load(Ordering::Relaxed);
        let starting = self.starting.load(Ordering::Relaxed);
        queued > idle + starting && self.alive.load(Ordering::Relaxed) < self.max_instances
    }

    /// Takes the next call, waiting up to `idle_timeout` (forever when `None`).
    /// Returns `None` when the wait ends without work, or the function is removed.
    pub async fn next(&self, idle_timeout: Option<Duration>) -> Option<WorkItem> {
        loop {
            // A removed function takes no more work: its queue goes to its successor.
            if self.removed.is_cancelled() {
                return None;
            }
            if let Some(w) = self.pop() {
                return Some(w);
            }
            self.idle.fetch_add(1, Ordering::Relaxed);
            let woke = match idle_timeout {
                Some(t) => tokio::select! {
                    _ = self.work_ready.notified() => true,
                    _ = tokio::time::sleep(t) => false,
                    _ = self.removed.cancelled() => false,
                },
                None => tokio::select! {
                    _ = self.work_ready.notified() => true,
                    _ = self.removed.cancelled() => false,
                },
            };
            self.idle.fetch_sub(1, Ordering::Relaxed);
            if !woke {
                // One last look, so that work queued as the timer fired is not stranded.
                if self.removed.is_cancelled() {
                    return None;
                }
                return self.pop();
            }
        }
    }

    /// The next queued call, if one is waiting now (none once removed).
    pub fn try_next(&self) -> Option<WorkItem> {
        if self.removed.is_cancelled() {
            return None;
        }
        self.pop()
    }

    /// Puts calls an instance had taken but not started back at the front of
    /// the queue, in order (the instance died or was stopped). If the
    /// function was removed meanwhile they follow its queue: to the successor,
    /// or answered with an error.
    pub fn give_back(&self, items: Vec<WorkItem>) {
        if items.is_empty() {
            return;
        }
        // They were counted when sent; they are counted again when sent again.
        self.stats.invocations.fetch_sub(items.len() as u64, Ordering::Relaxed);
        {
            let mut q = lock(&self.queue);
            for item in items.into_iter().rev() {
                q.items.push_front(item);
            }
        }
        if self.removed.is_cancelled() {
            self.pass_on_queue("the function was stopped (removed by a deployment, or the core is stopping) before this call started");
        } else {
            self.work_ready.notify_one();
        }
    }

    /// A removed function's queue goes on: to its successor (returned, with
    /// how many calls moved), or, with none, each call is answered `message`.
    pub fn pass_on_queue(&self, message: &str) -> Option<(std::sync::Arc<FunctionSlot>, usize)> {
        match self.successor() {
            Some(next) => {
                let moved = self.hand_over(&next);
                Some((next, moved))
            }
            None => {
                self.fail_queued(message);
                None
            }
        }
    }

    pub fn successor(&self) -> Option<std::sync::Arc<FunctionSlot>> {
        lock(&self.successor).clone()
    }

    /// Records the new version that takes over this removed function's work.
    pub fn set_successor(&self, next: std::sync::Arc<FunctionSlot>) {
        *lock(&self.successor) = Some(next);
    }

    /// Answers every queued call with an Unhandled error. Routed messages
    /// (events nobody waits on) that will not run are counted apart
    /// (`eventsNotRun` in status) and logged, so they are never lost silently.
    pub fn fail_queued(&self, message: &str) -> usize {
        let items = self.take_all();
        let n = items.len();
        let mut events = 0u64;
        for w in items {
            self.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
            if w.reply.is_none() {
                events += 1;
            }
            w.answer(InvokeResult::unhandled(message));
        }
        if events > 0 {
            self.stats.events_not_run.fetch_add(events, Ordering::Relaxed);
            self.log.write(ggcore_plugin_abi::LogLevel::Error, &format!("{events} queued messages were not run: {message}"));
            tracing::warn!(function = %self.def.arn, events, reason = message, "queued messages for the function were not run");
        }
        n
    }

    /// Moves every queued call to `next` (the new version of this function),
    /// in order. None is refused: they were accepted, and the new queue
    /// exceeds its capacity by at most this queue's length (its publishers
    /// are held back until it drains). Returns how many moved.
    pub fn hand_over(&self, next: &FunctionSlot) -> usize {
        let items = self.take_all();
        let moved = items.len();
        for item in items {
            // With `hold` an item is always taken; answer it should that change.
            if let Err(item) = next.enqueue_routed(item, true) {
                item.answer(InvokeResult::unhandled("the new version's work queue refused the call"));
            }
        }
        moved
    }

    pub fn set_instance(&self, status: InstanceStatus) {
        let mut v = lock(&self.instances);
        match v.iter_mut().find(|i| i.id == status.id) {
            Some(i) => *i = status,
            None => v.push(status),
        }
    }

    pub fn remove_instance(&self, id: u64) {
        lock(&self.instances).retain(|i| i.id != id);
    }

    pub fn instance_list(&self) -> Vec<InstanceStatus> {
        lock(&self.instances).clone()
    }
}

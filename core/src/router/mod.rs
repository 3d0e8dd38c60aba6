//! The router: obeys the group's subscription table (SPEC §7).
//!
//! Publishers (device connections, function instances, later the cloud link and
//! the shadow service) call [`Router::route`] on their own task; the table is read
//! through an `ArcSwap`, so routing takes no lock and never waits for another
//! publisher. Each kind of target is a [`Deliver`] implementation attached at
//! start: devices (the MQTT server's sessions), functions, cloud, shadows.

pub mod index;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;

pub use table::{RouteTable, TargetId};

use crate::group::{Endpoint, Group};
use crate::telemetry::RateLimit;

/// Quality of service of a routed message (QoS 2 is routed at QoS 1, SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
}

/// A message on its way through the router. Cloning is cheap (shared buffers).
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: Qos,
}

/// What a target did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the target.
    Accepted,
    /// The target is a device with no granted filter matching the topic.
    NotSubscribed,
    /// Dropped, for the given reason (counted).
    Dropped(&'static str),
    /// The target's queue is full right now; the message waits for room (the
    /// publisher is held back, at either QoS) instead of being dropped.
    Full,
}

/// One kind of target (devices, functions, cloud, shadows).
pub trait Deliver: Send + Sync {
    /// Takes a message for `target`. Must not block: queue it or drop it.
    fn deliver(&self, target: &Endpoint, source: &Endpoint, msg: &Message) -> Delivery;
}

/// Kinds of target, each served by one [`Deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Device = 0,
    Function = 1,
    Cloud = 2,
    Shadow = 3,
}

impl TargetKind {
    fn of(e: &Endpoint) -> Self {
        match e {
            Endpoint::Device(_) => TargetKind::Device,
            Endpoint::Function(_) => TargetKind::Function,
            Endpoint::Cloud => TargetKind::Cloud,
            Endpoint::Shadow => TargetKind::Shadow,
        }
    }
}

/// Counters shown by `ggcore status`.
#[derive(Debug, Default)]
pub struct RouterStats {
    /// Messages offered to the router.
    pub received: AtomicU64,
    /// Messages that no subscription allowed (dropped).
    pub unrouted: AtomicU64,
    /// Copies accepted by targets.
    pub delivered: AtomicU64,
    /// Copies dropped by targets (queue full, target not served, ...).
    pub dropped: AtomicU64,
}

/// The result of routing one message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteOutcome {
    pub targets: usize,
    pub delivered: usize,
    pub dropped: usize,
    /// Targets whose queue was full; their ids are left in
    /// the caller's scratch buffer, to be retried with [`Router::retry`].
    pub blocked: usize,
    /// The table the ids refer to.
    pub generation: u64,
}

/// How long a message waits for room in a full target queue before it
/// is dropped (counted and logged).
pub const BLOCKED_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Router {
    table: ArcSwap<RouteTable>,
    sinks: [OnceLock<Arc<dyn Deliver>>; 4],
    pub stats: RouterStats,
    unrouted_log: RateLimit,
    dropped_log: RateLimit,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    pub fn new() -> Self {
        Self {
            table: ArcSwap::from_pointee(RouteTable::default()),
            sinks: Default::default(),
            stats: RouterStats::default(),
            unrouted_log: RateLimit::per_second(1),
            dropped_log: RateLimit::per_second(1),
        }
    }

    /// Attaches the deliverer for one kind of target (once, at start).
    pub fn attach(&self, kind: TargetKind, sink: Arc<dyn Deliver>) {
        if self.sinks[kind as usize].set(sink).is_err() {
            tracing::error!(?kind, "a deliverer for this target kind is already attached");
        }
    }

    /// The table in force.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Installs the table of `group`; returns it.
    pub fn install(&self, group: Arc<Group>) -> Arc<RouteTable> {
        let generation = self.table.load().generation + 1;
        let table = Arc::new(RouteTable::compile(group, generation));
        self.table.store(table.clone());
        table
    }

    /// Routes `msg` from `source` to every target the table names, once each.
    /// `scratch` is a reusable buffer owned by the caller.
    pub fn route(&self, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>) -> RouteOutcome {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        scratch.clear();
        let table = self.table.load();
        table.route(source, &msg.topic, scratch);
        let mut out = RouteOutcome { targets: scratch.len(), generation: table.generation, ..RouteOutcome::default() };
        if scratch.is_empty() {
            self.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            if self.unrouted_log.allow() {
                tracing::info!(source = %source, topic = %msg.topic, "no subscription routes this message; dropped");
            }
            return out;
        }
        self.deliver_each(&table, source, msg, scratch, &mut out);
        out
    }

    /// Delivers to each target in `scratch`, leaving there the ones that were
    /// full.
    fn deliver_each(&self, table: &RouteTable, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>, out: &mut RouteOutcome) {
        let mut blocked = 0;
        for i in 0..scratch.len() {
            let id = scratch[i];
            let target = table.target(id);
            let result = match self.sinks[TargetKind::of(target) as usize].get() {
                Some(sink) => sink.deliver(target, source, msg),
                None => Delivery::Dropped("target not served by this core"),
            };
            let reason = match result {
                Delivery::Accepted => {
                    out.delivered += 1;
                    continue;
                }
                Delivery::NotSubscribed => continue,
                Delivery::Full => {
                    scratch[blocked] = id;
                    blocked += 1;
                    continue;
                }
                Delivery::Dropped(r) => r,
            };
            out.dropped += 1;
            if self.dropped_log.allow() {
                tracing::warn!(source = %source, target = %target, topic = %msg.topic, reason, "message dropped");
            }
        }
        scratch.truncate(blocked);
        out.blocked = blocked;
        self.stats.delivered.fetch_add(out.delivered as u64, Ordering::Relaxed);
        self.stats.dropped.fetch_add(out.dropped as u64, Ordering::Relaxed);
    }

    /// Retries the blocked targets left in `scratch` by [`Router::route`],
    /// pausing a little longer each time, until they take the message or
    /// [`BLOCKED_LIMIT`] passes (then the rest is dropped and counted). The
    /// caller is held back meanwhile: that is the backpressure a full function
    /// queue puts on a publisher (like TCP's on a slow MQTT subscriber), so
    /// that a burst is slowed down rather than thinned out, at QoS 0 too.
    pub async fn retry(&self, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>, first: RouteOutcome) -> RouteOutcome {
        let mut total = first;
        let deadline = tokio::time::Instant::now() + BLOCKED_LIMIT;
        let mut pause = std::time::Duration::from_micros(200);
        while !scratch.is_empty() {
            let table = self.table.load_full();
            if table.generation != first.generation || tokio::time::Instant::now() >= deadline {
                let n = scratch.len();
                total.dropped += n;
                self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(source = %source, topic = %msg.topic, targets = n, "target queues stayed full (or the group changed); message dropped");
                scratch.clear();
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
            let mut again = RouteOutcome { generation: first.generation, ..RouteOutcome::default() };
            self.deliver_each(&table, source, msg, scratch, &mut again);
            total.delivered += again.delivered;
            total.dropped += again.dropped;
        }
        total.blocked = 0;
        total
    }
}

//! The router: obeys the group's subscription table (docs/mqtt.md, docs/group.md).
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
use tokio::sync::Notify;

pub use table::{RouteTable, TargetId};

use crate::group::{Endpoint, Group};
use crate::telemetry::RateLimit;

/// Quality of service of a routed message (QoS 2 is routed at QoS 1; docs/mqtt.md).
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
    /// Dropped, for the given reason (counted). Only the bounded drops the
    /// contract names end here (an offline persistent session past its bound).
    Dropped(&'static str),
    /// Queued, but the target's queue is now at (or over) its bound: the
    /// publisher must wait for [`Deliver::room`] before it sends more. The
    /// message itself is in the queue and is not lost.
    Full,
    /// Not taken: the target's queue is full and the publisher asked not to
    /// wait (`queueFullPolicy` `AllOrError`). The publisher gets an error.
    Refused,
    /// Taken, but not settled yet (the cloud queue writes it to disk, or
    /// waits for room under `backpressure`): the publisher is acknowledged only
    /// once [`Deliver::room`] with this ticket says it is settled, whatever
    /// its [`WhenFull`].
    Pending(u64),
}

/// What a target does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Take the message and hold the publisher back until there is room
    /// (device publishes, SDK publishes with `BestEffort`).
    Hold,
    /// Refuse it ([`Delivery::Refused`]); the publisher gets an error
    /// (`queueFullPolicy` `AllOrError`).
    Refuse,
}

/// One kind of target (devices, functions, cloud, shadows): a link that takes
/// routed messages. Flow control is the same for every kind: a message is
/// taken, and when the target's queue is at its bound the publisher waits for
/// room before its next message (see docs/mqtt.md, "Flow control").
pub trait Deliver: Send + Sync {
    /// Takes a message for `target`. Must not block.
    fn deliver(&self, target: &Endpoint, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery;

    /// `None` when `target` has room (or is gone: nothing to wait for) and,
    /// for a `ticket` other than 0 (from [`Delivery::Pending`]), the message
    /// of that ticket is settled; otherwise what is notified
    /// (`notify_waiters`) when that may have changed. Registering interest
    /// and reading the state are one step, so a notification between this
    /// call and the wait is not lost as long as the caller enables its
    /// `Notified` before asking again.
    fn room(&self, target: &Endpoint, ticket: u64) -> Option<Arc<Notify>>;
}

/// What a held publisher waits for: room at `target`, and the settling of
/// `ticket` there when it is not 0 (see [`Delivery::Pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub target: Endpoint,
    pub ticket: u64,
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
    pub fn of(e: &Endpoint) -> Self {
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
    /// Copies dropped by targets (an offline session past its bound, a
    /// target not served, ...).
    pub dropped: AtomicU64,
    /// Copies refused by full targets (`AllOrError`).
    pub refused: AtomicU64,
    /// Copies for devices that are offline (QoS 0, or a clean session) or
    /// have no granted filter matching the topic: not kept, as MQTT says.
    pub not_subscribed: AtomicU64,
    /// Times a publisher was held back by a full target.
    pub held: AtomicU64,
}

/// The result of routing one message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteOutcome {
    pub targets: usize,
    pub delivered: usize,
    pub dropped: usize,
    /// Targets that refused the message because their queue was full
    /// ([`WhenFull::Refuse`]).
    pub refused: usize,
    /// Targets that took the message and are now full; their ids are left
    /// in the caller's scratch buffer: wait for room with [`Router::hold`]
    /// before the publisher's next message.
    pub blocked: usize,
    /// The table the ids refer to.
    pub generation: u64,
    /// A target that took the message as [`Delivery::Pending`] (counted in
    /// `blocked` too), with its ticket. Kept as an endpoint: the publisher
    /// waits for it even when the table is replaced meanwhile.
    pub pending: Option<(Endpoint, u64)>,
}

/// A publisher held back longer than this is logged (again every period).
pub const HELD_LOG_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// `scratch` is a reusable buffer owned by the caller; the targets left
    /// full are in it afterwards (`RouteOutcome::blocked` of them).
    pub fn route(&self, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>) -> RouteOutcome {
        self.route_with(source, msg, scratch, WhenFull::Hold)
    }

    /// [`Router::route`] with the publisher's choice for full targets.
    pub fn route_with(&self, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>, when_full: WhenFull) -> RouteOutcome {
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
        let mut blocked = 0;
        let mut not_subscribed = 0u64;
        for i in 0..scratch.len() {
            let id = scratch[i];
            let target = table.target(id);
            let result = match self.sinks[TargetKind::of(target) as usize].get() {
                Some(sink) => sink.deliver(target, source, msg, when_full),
                None => Delivery::Dropped("target not served by this core"),
            };
            let reason = match result {
                Delivery::Accepted => {
                    out.delivered += 1;
                    continue;
                }
                Delivery::NotSubscribed => {
                    not_subscribed += 1;
                    continue;
                }
                // A publisher that does not wait is not held back: its next
                // message to a full queue is refused instead.
                Delivery::Full if when_full == WhenFull::Refuse => {
                    out.delivered += 1;
                    continue;
                }
                Delivery::Full => {
                    out.delivered += 1;
                    scratch[blocked] = id;
                    blocked += 1;
                    continue;
                }
                Delivery::Refused => {
                    out.refused += 1;
                    continue;
                }
                Delivery::Pending(ticket) => {
                    out.delivered += 1;
                    out.pending = Some((target.clone(), ticket));
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
        out.blocked = blocked + usize::from(out.pending.is_some());
        self.stats.delivered.fetch_add(out.delivered as u64, Ordering::Relaxed);
        if out.dropped > 0 {
            self.stats.dropped.fetch_add(out.dropped as u64, Ordering::Relaxed);
        }
        if out.refused > 0 {
            self.stats.refused.fetch_add(out.refused as u64, Ordering::Relaxed);
        }
        if not_subscribed > 0 {
            self.stats.not_subscribed.fetch_add(not_subscribed, Ordering::Relaxed);
        }
        out
    }

    /// What the publisher of a message routed with `outcome` waits for: the
    /// targets [`Router::route`] left full in `scratch`, as endpoints that
    /// stay valid across a redeploy, and the target that has the message
    /// pending (for [`Router::hold`]).
    pub fn full_targets(&self, outcome: &RouteOutcome, scratch: &[TargetId]) -> Vec<Wait> {
        let table = self.table.load();
        let mut waits = Vec::with_capacity(outcome.blocked);
        // Ids of a table replaced since are not waited for: the message is
        // queued already, so there is nothing to hold the publisher for.
        if table.generation == outcome.generation {
            waits.extend(scratch.iter().map(|id| Wait { target: table.target(*id).clone(), ticket: 0 }));
        }
        if let Some((target, ticket)) = &outcome.pending {
            waits.push(Wait { target: target.clone(), ticket: *ticket });
        }
        waits
    }

    /// [`Router::route`], then [`Router::hold`] the publisher for whatever
    /// the message left full or pending (a publisher with no acknowledgement
    /// to withhold: a will, a message from the cloud).
    pub async fn route_held(&self, source: &Endpoint, msg: &Message, scratch: &mut Vec<TargetId>) -> RouteOutcome {
        let outcome = self.route(source, msg, scratch);
        if outcome.blocked > 0 {
            let waits = self.full_targets(&outcome, scratch);
            self.hold(source, &waits).await;
        }
        outcome
    }

    /// Holds the caller (the publisher) until each of `targets` has room
    /// again, or is gone. This is flow control (docs/mqtt.md, "Flow control"): a
    /// device's next packet is not read and its PUBACK waits; an SDK publish
    /// does not return. It ends because every target drains: a device that
    /// acknowledges nothing while full is disconnected after its stall
    /// timeout, and function invocations end by result, timeout or crash.
    pub async fn hold(&self, source: &Endpoint, targets: &[Wait]) {
        if targets.is_empty() {
            return;
        }
        // Waiting for a pending message to settle is not being held back.
        if targets.iter().any(|w| w.ticket == 0) {
            self.stats.held.fetch_add(1, Ordering::Relaxed);
        }
        let began = tokio::time::Instant::now();
        let mut next_log = began + HELD_LOG_AFTER;
        for Wait { target, ticket } in targets {
            let Some(sink) = self.sinks[TargetKind::of(target) as usize].get() else { continue };
            while let Some(room) = sink.room(target, *ticket) {
                let notified = room.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if sink.room(target, *ticket).is_none() {
                    break;
                }
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(next_log) => {
                        tracing::warn!(source = %source, target = %target, held_s = began.elapsed().as_secs(),
                            "publisher held back: the target's queue stays full");
                        next_log += HELD_LOG_AFTER;
                    }
                }
            }
        }
    }
}

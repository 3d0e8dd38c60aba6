//! The store-and-forward queue of messages bound for the cloud (docs/queue.md).
//!
//! Every message routed to `cloud` is appended here, in one order (its
//! sequence number), and leaves only when the cloud acknowledged it, when a
//! newer one evicts it (queue full under drop-oldest), or never (a
//! `backpressure` queue waits instead). With `FileSystem` storage each
//! message is written to the state store's `spool` column family under its
//! sequence number by one committer thread that batches what arrived while it
//! wrote the previous batch (group commit); a publisher is acknowledged once
//! the batch holding its message is written (`fsync` `batch`) or synced
//! (`always`). Payloads are kept in memory as well: the queue is bounded by
//! `maxSizeBytes`, and the link sends from memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::{Fsync, WhenFull};
use crate::store::{Cf, StateStore, StoreError, WriteOp};
use crate::telemetry::RateLimit;

/// How often the write-ahead log is synced under `fsync: batch`.
pub const BATCH_SYNC_EVERY: Duration = Duration::from_millis(100);
/// How long the committer waits before it tries a failed write again.
const RETRY_WRITE_AFTER: Duration = Duration::from_secs(1);
/// Wake-up slots of held publishers (see `Spool::settled`).
const SETTLE_SLOTS: u64 = 64;
/// Deletes of acknowledged messages written at once when this many wait.
pub const DELETES_PER_WRITE: usize = 1024;
/// Version byte of a stored message.
const RECORD_V1: u8 = 1;

/// Where queued messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory only: lost when the core stops (Greengrass's default).
    Memory,
    /// In the state store as well: kept across restarts and crashes.
    FileSystem,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Memory => "Memory",
            Storage::FileSystem => "FileSystem",
        }
    }
}

/// The queue's settings (`ggcore.spooler`, or the group's `GGCloudSpooler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolSettings {
    pub storage: Storage,
    pub max_bytes: u64,
    pub fsync: Fsync,
    pub when_full: WhenFull,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// Who published it (an ARN, for logs).
    pub source: Arc<str>,
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// When it was accepted (ms since the Unix epoch).
    pub enqueued_ms: u64,
    /// Written to the store (or to be, at the next commit).
    pub stored: bool,
}

impl Entry {
    /// What the entry counts against `maxSizeBytes`: its topic and payload.
    pub fn size(&self) -> u64 {
        (self.topic.len() + self.payload.len()) as u64
    }

    /// The stored value: version, time, source, topic, payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(13 + self.source.len() + self.topic.len() + self.payload.len());
        v.push(RECORD_V1);
        v.extend_from_slice(&self.enqueued_ms.to_be_bytes());
        for s in [&self.source, &self.topic] {
            let n = s.len().min(u16::MAX as usize);
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v.extend_from_slice(&s.as_bytes()[..n]);
        }
        v.extend_from_slice(&self.payload);
        v
    }

    /// Reads a stored entry back; `None` when the record is not one.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<Entry> {
        let seq = u64::from_be_bytes(key.try_into().ok()?);
        let (&version, rest) = value.split_first()?;
        if version != RECORD_V1 || rest.len() < 8 {
            return None;
        }
        let (time, mut rest) = rest.split_at(8);
        let mut text = || -> Option<Arc<str>> {
            if rest.len() < 2 {
                return None;
            }
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let s = std::str::from_utf8(rest.get(2..2 + n)?).ok()?;
            rest = &rest[2 + n..];
            Some(Arc::from(s))
        };
        let source = text()?;
        let topic = text()?;
        let enqueued_ms = u64::from_be_bytes(time.try_into().ok()?);
        Some(Entry { seq, source, topic, payload: Bytes::copy_from_slice(rest), enqueued_ms, stored: true })
    }
}

pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What became of an offered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// In the queue, settled (nothing to wait for).
    Settled,
    /// In the queue or waiting for room; the publisher is acknowledged once
    /// [`Spool::settled`] says so for this ticket.
    Pending(u64),
    /// Not taken: no room and the publisher asked not to wait or evict
    /// (`AllOrError`), or the message is larger than the whole queue.
    Refused(&'static str),
    /// Not taken: the core is stopping.
    Closed,
}

/// Counters shown by `ggcore status`.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Messages taken into the queue.
    pub appended: AtomicU64,
    /// Messages evicted to make room (drop-oldest).
    pub dropped: AtomicU64,
    /// Messages refused (no room and `AllOrError`, or larger than the queue).
    pub refused: AtomicU64,
    /// Messages acknowledged by the cloud and removed.
    pub acked: AtomicU64,
    /// Messages found in the store when the core started.
    pub replayed: AtomicU64,
    /// Batches written to the store.
    pub commits: AtomicU64,
}

/// The queue's state, under one lock.
struct Inner {
    settings: SpoolSettings,
    /// Taken messages in sequence order.
    queue: VecDeque<Entry>,
    bytes: u64,
    /// Messages waiting for room (`backpressure`), in order, after `queue`.
    overflow: VecDeque<Entry>,
    next_seq: u64,
    /// The last sequence number moved into `queue`.
    appended: u64,
    /// Every entry up to here was handed to the committer (written, or being written).
    taken: u64,
    /// Every entry up to here is settled: written as `fsync` asks, or gone.
    durable: u64,
    /// Keys to delete in the next commit (acknowledged or evicted after being written).
    deletes: Vec<u64>,
    /// There is a store (and a committer) behind the queue.
    has_store: bool,
    /// The committer waits for work (only then is it worth waking).
    writer_idle: bool,
    closing: bool,
    storage_error: Option<String>,
}

impl Inner {
    fn settled_upto(&self) -> u64 {
        if self.has_store && self.settings.storage == Storage::FileSystem && self.settings.fsync != Fsync::Never {
            self.durable
        } else {
            self.appended
        }
    }

    fn fits(&self, size: u64) -> bool {
        self.bytes + size <= self.settings.max_bytes
    }

    fn index_of(&self, seq: u64) -> Option<usize> {
        let i = self.queue.partition_point(|e| e.seq < seq);
        (self.queue.get(i)?.seq == seq).then_some(i)
    }

    /// Forgets entry `i`; its key is deleted at the next commit if written.
    fn remove_at(&mut self, i: usize) -> Option<Entry> {
        let e = self.queue.remove(i)?;
        self.bytes -= e.size();
        if e.stored && e.seq <= self.taken {
            self.deletes.push(e.seq);
        }
        Some(e)
    }

    fn push(&mut self, mut e: Entry) {
        self.bytes += e.size();
        self.appended = e.seq;
        e.stored = self.has_store && self.settings.storage == Storage::FileSystem;
        self.queue.push_back(e);
    }

    /// Evicts the oldest entries until `size` more bytes fit; how many.
    fn evict_for(&mut self, size: u64) -> (u64, Option<Entry>) {
        let mut evicted = 0u64;
        let mut first = None;
        while !self.fits(size) {
            let Some(e) = self.remove_at(0) else { break };
            evicted += 1;
            first.get_or_insert(e);
        }
        (evicted, first)
    }

    /// Moves waiting messages into the queue while they fit.
    fn admit_overflow(&mut self) {
        while let Some(size) = self.overflow.front().map(Entry::size) {
            if !self.fits(size) {
                break;
            }
            if let Some(e) = self.overflow.pop_front() {
                self.push(e);
            }
        }
    }

    /// Puts are waiting, or enough deletes to write them now.
    fn needs_commit(&self) -> bool {
        self.has_store && (self.appended > self.taken || self.deletes.len() >= DELETES_PER_WRITE)
    }

    /// The writer has something to do now and is waiting: wake it.
    fn wake_writer(&self) -> bool {
        self.writer_idle && self.needs_commit()
    }
}

/// The queue. Shared by the router (appends), the cloud link (sends and
/// acknowledgements), status, and its committer thread.
pub struct Spool {
    inner: Mutex<Inner>,
    /// Wakes the committer.
    work: Condvar,
    /// Notified when tickets settle or room appears (held publishers).
    /// One per ticket modulo [`SETTLE_SLOTS`]: a commit wakes only the
    /// publishers whose tickets it may have settled, not every held one.
    settled: Vec<Arc<Notify>>,
    /// Notified when messages are appended (the link).
    appended: Notify,
    pub stats: SpoolStats,
    drop_log: RateLimit,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Every update below keeps the state consistent at each step.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// Opens the queue: entries found in `store` (a previous run's) come
    /// first, in their order. Starts the committer when there is a store.
    pub fn open(store: Option<Arc<dyn StateStore>>, settings: SpoolSettings) -> Result<Arc<Spool>, StoreError> {
        let mut queue = VecDeque::new();
        let mut bad = 0usize;
        if let Some(s) = &store {
            for (k, v) in s.scan_prefix(Cf::Spool, b"")? {
                match Entry::decode(&k, &v) {
                    Some(e) => queue.push_back(e),
                    None => bad += 1,
                }
            }
        }
        if bad > 0 {
            tracing::error!(records = bad, "queue: records in the state store that are not messages; left in place");
        }
        let last = queue.back().map(|e: &Entry| e.seq).unwrap_or(0);
        let bytes = queue.iter().map(Entry::size).sum();
        let replayed = queue.len() as u64;
        let spool = Arc::new(Spool {
            inner: Mutex::new(Inner {
                settings,
                queue,
                bytes,
                overflow: VecDeque::new(),
                next_seq: last + 1,
                appended: last,
                taken: last,
                durable: last,
                deletes: Vec::new(),
                has_store: store.is_some(),
                writer_idle: false,
                closing: false,
                storage_error: None,
            }),
            work: Condvar::new(),
            settled: (0..SETTLE_SLOTS).map(|_| Arc::new(Notify::new())).collect(),
            appended: Notify::new(),
            stats: SpoolStats::default(),
            drop_log: RateLimit::per_second(1),
            committer: Mutex::new(None),
        });
        spool.stats.replayed.store(replayed, Ordering::Relaxed);
        if replayed > 0 {
            tracing::info!(messages = replayed, bytes, "queue: messages kept from the last run will be sent to the cloud");
        }
        spool.configure(settings);
        if let Some(store) = store {
            // The thread holds the store until the queue closes.
            let me = spool.clone();
            let handle = std::thread::Builder::new()
                .name("ggcore-spool".into())
                .spawn(move || me.commit_loop(store.as_ref()))
                .map_err(|e| StoreError::Db(format!("cannot start the queue's writer thread: {e}")))?;
            *spool.committer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        Ok(spool)
    }

    /// Applies new settings (a deployment): a smaller size evicts the oldest
    /// messages (drop-oldest) or only stops taking new ones (backpressure).
    pub fn configure(&self, settings: SpoolSettings) {
        let mut g = lock(&self.inner);
        let was = g.settings;
        g.settings = settings;
        if was.storage == Storage::Memory && settings.storage == Storage::FileSystem && g.has_store {
            // Messages taken in memory are written too from now on.
            let mut first = None;
            for e in g.queue.iter_mut().filter(|e| !e.stored) {
                e.stored = true;
                first.get_or_insert(e.seq);
            }
            if let Some(first) = first {
                g.taken = g.taken.min(first - 1);
            }
        }
        if settings.when_full == WhenFull::DropOldest {
            let (mut evicted, _) = g.evict_for(0);
            while let Some(e) = g.overflow.pop_front() {
                evicted += g.evict_for(e.size()).0;
                g.push(e);
            }
            if evicted > 0 {
                self.stats.dropped.fetch_add(evicted, Ordering::Relaxed);
                tracing::warn!(messages = evicted, max_bytes = settings.max_bytes, "queue: oldest messages dropped to fit the new size");
            }
        }
        g.admit_overflow();
        if g.settings != was {
            tracing::info!(storage = settings.storage.as_str(), max_bytes = settings.max_bytes, fsync = ?settings.fsync,
                when_full = ?settings.when_full, "queue settings");
        }
        drop(g);
        self.work.notify_one();
        self.notify_all_settled();
        self.appended.notify_one();
    }

    /// Offers a message. `wait` is false for publishers that do not wait for
    /// room (`AllOrError`): they are refused when it does not fit, and
    /// nothing is evicted for them.
    pub fn append(&self, source: &Arc<str>, topic: &Arc<str>, payload: &Bytes, wait: bool) -> Appended {
        let mut g = lock(&self.inner);
        if g.closing {
            return Appended::Closed;
        }
        let size = (topic.len() + payload.len()) as u64;
        if size > g.settings.max_bytes {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Appended::Refused("the message is larger than the whole queue (maxSizeBytes)");
        }
        let room = g.overflow.is_empty() && g.fits(size);
        if !room && !wait {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Appended::Refused("the queue to the cloud is full");
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        let entry = Entry {
            seq,
            source: source.clone(),
            topic: topic.clone(),
            payload: Bytes::copy_from_slice(payload),
            enqueued_ms: now_ms(),
            stored: false,
        };
        self.stats.appended.fetch_add(1, Ordering::Relaxed);
        if !room && g.settings.when_full == WhenFull::Backpressure {
            g.overflow.push_back(entry);
            return Appended::Pending(seq);
        }
        if !room {
            let (evicted, first) = g.evict_for(size);
            self.stats.dropped.fetch_add(evicted, Ordering::Relaxed);
            if let Some(e) = first {
                if self.drop_log.allow() {
                    tracing::warn!(evicted, oldest_source = %e.source, oldest_topic = %e.topic,
                        dropped_total = self.stats.dropped.load(Ordering::Relaxed),
                        "queue to the cloud full: oldest messages dropped to make room (ggcore.spooler.whenFull dropOldest)");
                }
            }
        }
        g.push(entry);
        let settled = g.settled_upto() >= seq;
        let commit = g.wake_writer();
        drop(g);
        if commit {
            self.work.notify_one();
        }
        self.appended.notify_one();
        if settled {
            Appended::Settled
        } else {
            Appended::Pending(seq)
        }
    }

    /// True once the message of `ticket` is settled (or gone).
    pub fn is_settled(&self, ticket: u64) -> bool {
        let g = lock(&self.inner);
        g.settled_upto() >= ticket
    }

    /// What the publisher holding `ticket` waits on.
    pub fn settled_notify(&self, ticket: u64) -> &Arc<Notify> {
        &self.settled[(ticket % SETTLE_SLOTS) as usize]
    }

    /// Wakes the publishers whose tickets are in `from+1..=to`.
    fn notify_settled(&self, from: u64, to: u64) {
        let n = to.saturating_sub(from).min(SETTLE_SLOTS);
        for t in (to + 1 - n)..=to {
            self.settled_notify(t).notify_waiters();
        }
    }

    fn notify_all_settled(&self) {
        self.settled.iter().for_each(|n| n.notify_waiters());
    }

    /// What the link waits on for new messages.
    pub fn appended_notify(&self) -> &Notify {
        &self.appended
    }

    /// Up to `max` queued entries after sequence number `after`, in order.
    pub fn next_after(&self, after: u64, max: usize) -> Vec<Entry> {
        let g = lock(&self.inner);
        let i = g.queue.partition_point(|e| e.seq <= after);
        g.queue.range(i..).take(max).cloned().collect()
    }

    /// The cloud acknowledged `seq`: removes it (nothing if it was evicted).
    pub fn ack(&self, seq: u64) {
        let mut g = lock(&self.inner);
        let Some(i) = g.index_of(seq) else { return };
        g.remove_at(i);
        self.stats.acked.fetch_add(1, Ordering::Relaxed);
        let before = g.appended;
        g.admit_overflow();
        let after = g.appended;
        let commit = g.wake_writer();
        drop(g);
        if commit {
            self.work.notify_one();
        }
        if after > before {
            self.notify_settled(before, after);
            self.appended.notify_one();
        }
    }

    /// Depth, bytes, age of the oldest, and the storage error if any.
    pub fn snapshot(&self) -> SpoolSnapshot {
        let g = lock(&self.inner);
        SpoolSnapshot {
            settings: g.settings,
            messages: g.queue.len(),
            bytes: g.bytes,
            waiting: g.overflow.len(),
            oldest_ms: g.queue.front().or(g.overflow.front()).map(|e| e.enqueued_ms),
            storage_error: g.storage_error.clone(),
        }
    }

    /// Stops taking messages, writes what is not written yet (synced), and
    /// stops the committer. Publishers still waiting stay unacknowledged
    /// (their connections are closed before the queue is).
    pub fn close(&self) {
        {
            let mut g = lock(&self.inner);
            if g.closing {
                return;
            }
            g.closing = true;
        }
        self.work.notify_one();
        let handle = self.committer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("queue: the writer thread panicked");
            }
        }
        let g = lock(&self.inner);
        match &g.storage_error {
            None => tracing::info!(messages = g.queue.len(), bytes = g.bytes, "queue persisted"),
            Some(e) => tracing::error!(messages = g.queue.len(), error = %e, "queue: the last write failed; messages not written are lost"),
        }
    }

    /// The committer: writes appended entries and deletions in batches.
    ///
    /// Puts are written as soon as they arrive (whatever arrived meanwhile
    /// joins the batch). Deletes of acknowledged messages are not urgent — a
    /// delete lost in a crash only sends that message again — so they wait
    /// for the next batch of puts, for [`DELETES_PER_WRITE`] of them, or for
    /// the next tick ([`BATCH_SYNC_EVERY`]), which also syncs the log under
    /// `fsync: batch`.
    fn commit_loop(&self, store: &dyn StateStore) {
        let mut unsynced = false;
        let mut tick = Instant::now() + BATCH_SYNC_EVERY;
        let mut g = lock(&self.inner);
        loop {
            let now = Instant::now();
            let tick_due = now >= tick;
            let flush_deletes = !g.deletes.is_empty() && (tick_due || g.closing);
            if !(g.needs_commit() || flush_deletes) {
                if tick_due {
                    tick = now + BATCH_SYNC_EVERY;
                    if unsynced {
                        drop(g);
                        match store.sync() {
                            Ok(()) => unsynced = false,
                            Err(e) => tracing::warn!(error = %e, "queue: syncing the write-ahead log failed"),
                        }
                        g = lock(&self.inner);
                        continue;
                    }
                }
                if g.closing {
                    break;
                }
                g.writer_idle = true;
                g = if unsynced || !g.deletes.is_empty() {
                    self.work.wait_timeout(g, tick.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0
                } else {
                    self.work.wait(g).unwrap_or_else(|p| p.into_inner())
                };
                g.writer_idle = false;
                continue;
            }
            let from = g.taken;
            let upto = g.appended;
            let start = g.queue.partition_point(|e| e.seq <= from);
            let mut ops: Vec<WriteOp> = g
                .queue
                .range(start..)
                .take_while(|e| e.seq <= upto)
                .filter(|e| e.stored)
                .map(|e| WriteOp::Put(Cf::Spool, key(e.seq).to_vec(), e.encode()))
                .collect();
            let deletes = std::mem::take(&mut g.deletes);
            ops.extend(deletes.iter().map(|s| WriteOp::Delete(Cf::Spool, key(*s).to_vec())));
            g.taken = upto;
            let fsync = g.settings.fsync;
            let closing = g.closing;
            drop(g);
            let result = if ops.is_empty() { Ok(()) } else { store.write(ops, fsync == Fsync::Always || closing) };
            g = lock(&self.inner);
            match result {
                Ok(()) => {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    let was = g.durable;
                    g.durable = g.durable.max(upto);
                    if g.storage_error.take().is_some() {
                        tracing::info!("queue: writing to the state store works again");
                    }
                    unsynced = fsync == Fsync::Batch && !closing;
                    if upto > was {
                        drop(g);
                        self.notify_settled(was, upto);
                        g = lock(&self.inner);
                    }
                }
                Err(e) => {
                    // Nothing is acknowledged that is not written: try again.
                    g.taken = g.taken.min(from);
                    g.deletes.extend(deletes);
                    let message = e.to_string();
                    if g.storage_error.as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, "queue: cannot write to the state store; publishers to the cloud wait until it works again");
                    }
                    g.storage_error = Some(message);
                    if g.closing {
                        break;
                    }
                    // Appends would wake the writer: it waits out the whole pause.
                    let retry_at = Instant::now() + RETRY_WRITE_AFTER;
                    loop {
                        let left = retry_at.saturating_duration_since(Instant::now());
                        if left.is_zero() || g.closing {
                            break;
                        }
                        g = self.work.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0;
                    }
                    drop(g);
                    if let Err(e) = store.recover() {
                        tracing::debug!(error = %e, "queue: the state store does not reopen yet");
                    }
                    g = lock(&self.inner);
                }
            }
        }
        drop(g);
        if unsynced {
            if let Err(e) = store.sync() {
                tracing::warn!(error = %e, "queue: syncing the write-ahead log failed");
            }
        }
    }
}

/// A consistent view of the queue for status.
#[derive(Debug, Clone)]
pub struct SpoolSnapshot {
    pub settings: SpoolSettings,
    pub messages: usize,
    pub bytes: u64,
    /// Messages waiting for room (`backpressure`).
    pub waiting: usize,
    pub oldest_ms: Option<u64>,
    pub storage_error: Option<String>,
}

impl SpoolSnapshot {
    pub fn oldest_age_ms(&self) -> Option<u64> {
        self.oldest_ms.map(|t| now_ms().saturating_sub(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use proptest::prelude::*;

    fn settings(storage: Storage, max_bytes: u64, when_full: WhenFull) -> SpoolSettings {
        SpoolSettings { storage, max_bytes, fsync: Fsync::Batch, when_full }
    }

    fn append(s: &Spool, n: usize, size: usize, wait: bool) -> Appended {
        let topic: Arc<str> = Arc::from(format!("t/{n}").as_str());
        let payload = Bytes::from(vec![b'x'; size.saturating_sub(topic.len())]);
        s.append(&Arc::from("src"), &topic, &payload, wait)
    }

    fn seqs(s: &Spool) -> Vec<u64> {
        s.next_after(0, usize::MAX).iter().map(|e| e.seq).collect()
    }

    fn wait_settled(s: &Spool, ticket: u64) {
        for _ in 0..2000 {
            if s.is_settled(ticket) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("ticket {ticket} never settled");
    }

    #[test]
    fn entries_round_trip_through_their_encoding() {
        let e = Entry {
            seq: 42,
            source: Arc::from("arn:aws:iot:us-east-1:1:thing/a"),
            topic: Arc::from("a/b"),
            payload: Bytes::from_static(b"\0payload\xff"),
            enqueued_ms: 1_700_000_000_000,
            stored: true,
        };
        assert_eq!(Entry::decode(&key(42), &e.encode()), Some(e));
        assert_eq!(Entry::decode(&key(1), b""), None);
        assert_eq!(Entry::decode(&key(1), &[9, 0, 0]), None);
        assert_eq!(Entry::decode(b"short", &[1; 20]), None);
    }

    #[test]
    fn file_system_entries_survive_a_reopen_and_acks_are_deleted() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let s = Spool::open(Some(store.clone()), settings(Storage::FileSystem, 1 << 20, WhenFull::DropOldest)).unwrap();
        let mut last = 0;
        for i in 0..10 {
            match append(&s, i, 100, true) {
                Appended::Pending(t) => last = t,
                other => panic!("{other:?}"),
            }
        }
        wait_settled(&s, last);
        s.ack(1);
        s.ack(2);
        s.close();
        assert_eq!(store.scan_prefix(Cf::Spool, b"").unwrap().len(), 8);
        let s = Spool::open(Some(store.clone()), settings(Storage::FileSystem, 1 << 20, WhenFull::DropOldest)).unwrap();
        assert_eq!(seqs(&s), (3..=10).collect::<Vec<_>>());
        assert_eq!(s.stats.replayed.load(Ordering::Relaxed), 8);
        // New messages continue the sequence.
        assert!(matches!(append(&s, 11, 100, true), Appended::Pending(11)));
        s.close();
    }

    #[test]
    fn memory_storage_writes_nothing_and_settles_at_once() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let s = Spool::open(Some(store.clone()), settings(Storage::Memory, 1 << 20, WhenFull::DropOldest)).unwrap();
        assert_eq!(append(&s, 0, 100, true), Appended::Settled);
        s.close();
        assert!(store.scan_prefix(Cf::Spool, b"").unwrap().is_empty());
    }

    #[test]
    fn all_or_error_is_refused_when_full_and_evicts_nothing() {
        let s = Spool::open(None, settings(Storage::Memory, 1000, WhenFull::DropOldest)).unwrap();
        for i in 0..10 {
            assert_eq!(append(&s, i, 100, true), Appended::Settled);
        }
        assert!(matches!(append(&s, 10, 100, false), Appended::Refused(_)));
        assert_eq!(seqs(&s).len(), 10);
        assert_eq!(s.stats.refused.load(Ordering::Relaxed), 1);
        // A publisher that waits makes room by evicting the oldest.
        assert_eq!(append(&s, 11, 250, true), Appended::Settled);
        assert_eq!(s.stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(seqs(&s).first(), Some(&4));
    }

    #[test]
    fn backpressure_waits_for_room_and_drops_nothing() {
        let s = Spool::open(None, settings(Storage::Memory, 300, WhenFull::Backpressure)).unwrap();
        for i in 0..3 {
            assert_eq!(append(&s, i, 100, true), Appended::Settled);
        }
        let Appended::Pending(t) = append(&s, 3, 100, true) else { panic!("not held") };
        assert!(!s.is_settled(t));
        // Later messages queue behind it, in order.
        let Appended::Pending(t2) = append(&s, 4, 100, true) else { panic!("not held") };
        s.ack(1);
        assert!(s.is_settled(t) && !s.is_settled(t2));
        s.ack(2);
        assert!(s.is_settled(t2));
        assert_eq!(seqs(&s), vec![3, 4, 5]);
        assert_eq!(s.stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_failing_store_holds_publishers_until_it_works_again() {
        let store = Arc::new(crate::store::FlakyStore::failing());
        let s = Spool::open(Some(store.clone()), settings(Storage::FileSystem, 1 << 20, WhenFull::DropOldest)).unwrap();
        let Appended::Pending(t) = append(&s, 0, 100, true) else { panic!("not pending") };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!s.is_settled(t));
        assert!(s.snapshot().storage_error.unwrap().contains("No space left"));
        store.failing.store(false, Ordering::Relaxed);
        wait_settled(&s, t);
        assert_eq!(s.snapshot().storage_error, None);
        s.close();
        assert_eq!(store.inner.scan_prefix(Cf::Spool, b"").unwrap().len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append {
            size: usize,
            wait: bool,
        },
        /// Acknowledges the n-th oldest queued message.
        Ack(usize),
        Reopen,
        Resize(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (10usize..4000, proptest::bool::weighted(0.8)).prop_map(|(size, wait)| Op::Append { size, wait }),
            3 => (0usize..8).prop_map(Op::Ack),
            1 => Just(Op::Reopen),
            1 => (4000u64..20000).prop_map(Op::Resize),
        ]
    }

    /// The queue against a model: a list of (seq, size) with the size bound.
    fn check_against_model(ops: Vec<Op>, when_full: WhenFull) {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let mut max = 10_000u64;
        let mut s = Spool::open(Some(store.clone()), settings(Storage::FileSystem, max, when_full)).unwrap();
        let mut model: VecDeque<(u64, u64)> = VecDeque::new();
        let mut waiting: VecDeque<(u64, u64)> = VecDeque::new();
        let (mut next, mut dropped, mut refused) = (1u64, 0u64, 0u64);
        let fits = |m: &VecDeque<(u64, u64)>, size: u64, max: u64| m.iter().map(|e| e.1).sum::<u64>() + size <= max;
        for op in ops {
            match op {
                Op::Append { size, wait } => {
                    let size = size as u64;
                    let got = append(&s, next as usize, size as usize, wait);
                    let room = waiting.is_empty() && fits(&model, size, max);
                    if size > max || (!room && !wait) {
                        assert!(matches!(got, Appended::Refused(_)), "{got:?}");
                        refused += 1;
                        continue;
                    }
                    if !room && when_full == WhenFull::Backpressure {
                        assert_eq!(got, Appended::Pending(next));
                        waiting.push_back((next, size));
                    } else {
                        while !fits(&model, size, max) {
                            model.pop_front();
                            dropped += 1;
                        }
                        model.push_back((next, size));
                    }
                    next += 1;
                }
                Op::Ack(n) => {
                    if let Some(&(seq, _)) = model.get(n) {
                        s.ack(seq);
                        model.remove(n);
                    }
                }
                Op::Reopen => {
                    s.close();
                    // What was waiting for room was never acknowledged: gone.
                    waiting.clear();
                    s = Spool::open(Some(store.clone()), settings(Storage::FileSystem, max, when_full)).unwrap();
                    assert_eq!(s.stats.replayed.load(Ordering::Relaxed), model.len() as u64);
                    // Sequence numbers go on from the last one kept.
                    next = model.back().map(|e| e.0 + 1).unwrap_or(1);
                    (dropped, refused) = (0, 0);
                }
                Op::Resize(m) => {
                    max = m;
                    s.configure(settings(Storage::FileSystem, max, when_full));
                    if when_full == WhenFull::DropOldest {
                        while !fits(&model, 0, max) {
                            model.pop_front();
                            dropped += 1;
                        }
                    }
                }
            }
            while let Some(&(seq, size)) = waiting.front() {
                if !fits(&model, size, max) {
                    break;
                }
                model.push_back((seq, size));
                waiting.pop_front();
            }
            let snap = s.snapshot();
            let got: Vec<(u64, u64)> = s.next_after(0, usize::MAX).iter().map(|e| (e.seq, e.size())).collect();
            assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
            assert_eq!(snap.bytes, model.iter().map(|e| e.1).sum::<u64>());
            assert_eq!(snap.waiting, waiting.len());
            // Backpressure never evicts: a shrink leaves it over until acks.
            if when_full == WhenFull::DropOldest {
                assert!(snap.bytes <= max, "{} > {max}", snap.bytes);
            }
            assert_eq!(s.stats.dropped.load(Ordering::Relaxed), dropped);
            assert_eq!(s.stats.refused.load(Ordering::Relaxed), refused);
        }
        s.close();
        // What is stored is exactly what is queued.
        let stored: Vec<u64> =
            store.scan_prefix(Cf::Spool, b"").unwrap().iter().map(|(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap())).collect();
        assert_eq!(stored, model.iter().map(|e| e.0).collect::<Vec<_>>());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn drop_oldest_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
            check_against_model(ops, WhenFull::DropOldest);
        }

        #[test]
        fn backpressure_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
            check_against_model(ops, WhenFull::Backpressure);
        }
    }
}

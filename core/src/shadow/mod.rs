//! The local shadow service, `GGShadowService` (docs/shadows.md).
//!
//! Requests arrive as routed messages on `$aws/things/NAME/shadow/get|update|delete`
//! (devices and functions whose subscriptions target `GGShadowService`) and as
//! requests from the SDKs' shadow calls and `ggcore shadow`. One thread
//! serves them in arrival order: it takes whatever is queued, applies it to
//! the documents (document.rs), writes the changed documents in one atomic,
//! synced RocksDB batch (column family `shadows`), and only then answers —
//! on `/accepted`, `/rejected`, `/update/delta` and `/update/documents`,
//! routed with `GGShadowService` as the source, and to the caller of a
//! request. Things with `SyncShadow` are kept in step with the cloud by
//! [`sync`].

pub mod document;
pub mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ggcore_plugin_abi::HostErrorCode;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use crate::group::Endpoint;
use crate::router::{Delivery, Message, Qos, Router, WhenFull};
use crate::services::{CoreService, ReplyFuture, ServiceRequest, SHADOW};
use crate::store::{Cf, StateStore, WriteOp};
use crate::telemetry::RateLimit;
use document::{Rejection, Shadow};

/// The shadow sync's name (as Greengrass's `GGShadowSyncManager`), for its
/// upstream subscriptions.
pub const SHADOW_SYNC: &str = "GGShadowSyncManager";
/// The code of a sync write refused because the shadows were reset since
/// its round began (only the sync sees it).
pub(crate) const RESET_DURING_ROUND: u16 = 410;
/// Requests queued for the service at most before publishers are held back.
pub const MAX_QUEUED: usize = 1024;
/// Requests queued for one thing at most; more are rejected with 429.
pub const MAX_QUEUED_PER_THING: usize = 64;
/// Requests applied together in one write at most.
const MAX_BATCH: usize = 256;
/// Documents kept in memory at most (beyond, the cache starts over).
const MAX_CACHED: usize = 10_000;

/// Key of a thing's document in the `shadows` column family.
pub fn document_key(thing: &str) -> Vec<u8> {
    [b"d/".as_slice(), thing.as_bytes()].concat()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Update,
    Delete,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "get" => Some(Op::Get),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// A shadow request topic: `$aws/things/NAME/shadow/OP`.
pub fn parse_request_topic(topic: &str) -> Option<(&str, Op)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, op) = rest.split_once("/shadow/")?;
    if thing.contains('/') {
        return None;
    }
    Some((thing, Op::parse(op)?))
}

/// Who asked, and where the answer goes.
enum Origin {
    /// A routed message: answered on the reply topics only.
    Routed,
    /// A request (SDK, CLI): answered to the caller too.
    Caller(oneshot::Sender<Vec<u8>>),
    /// The cloud sync applying the cloud's side: answered to it, and not
    /// pushed back to the cloud. Refused (409) when the shadows were cleared
    /// (a reset) since `epoch`, which the round began in ([`RESET_DURING_ROUND`]),
    /// or with 409 when the document is no longer as the round read it
    /// (`version`, and whether it `exists`: a delete keeps the version).
    Sync { epoch: u64, version: u64, exists: bool, tx: oneshot::Sender<Result<Shadow, Rejection>> },
}

struct Job {
    thing: String,
    op: Op,
    payload: Bytes,
    origin: Origin,
    /// Queued past the thing's bound: answered 429.
    overflow: bool,
}

enum Work {
    Job(Job),
    /// Reads a document (the sync's view of the local side), as stored.
    Read(String, oneshot::Sender<Result<Shadow, String>>),
    /// Removes every document (a reset).
    Clear(oneshot::Sender<Result<(), String>>),
    /// Stores the sync's base of a thing (`None`: no shadow on either side),
    /// unless the shadows were cleared since `epoch`.
    SetBase {
        thing: String,
        state: Option<Value>,
        epoch: u64,
        tx: oneshot::Sender<Result<(), String>>,
    },
}

/// Counters shown by `ggcore status`.
#[derive(Debug, Default)]
pub struct ShadowStats {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub too_many: AtomicU64,
    pub commits: AtomicU64,
    pub store_errors: AtomicU64,
    pub ignored: AtomicU64,
}

/// What the service thread and its callers share.
struct Shared {
    router: Arc<Router>,
    store: Arc<dyn StateStore>,
    queued: AtomicUsize,
    per_thing: Mutex<HashMap<String, usize>>,
    room: Arc<Notify>,
    stats: ShadowStats,
    sync: OnceLock<sync::SyncHandle>,
    ignored_log: RateLimit,
    /// Counts clears (resets): what the sync decided before one must not
    /// bring a shadow back.
    epoch: AtomicU64,
}

pub struct ShadowService {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::Sender<Work>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl ShadowService {
    /// Starts the service thread.
    pub fn start(router: Arc<Router>, store: Arc<dyn StateStore>) -> Arc<ShadowService> {
        let (service, rx) = Self::new(router, store);
        service.spawn(rx);
        service
    }

    fn new(router: Arc<Router>, store: Arc<dyn StateStore>) -> (Arc<ShadowService>, mpsc::Receiver<Work>) {
        let shared = Arc::new(Shared {
            router,
            store,
            queued: AtomicUsize::new(0),
            per_thing: Mutex::new(HashMap::new()),
            room: Arc::new(Notify::new()),
            stats: ShadowStats::default(),
            sync: OnceLock::new(),
            ignored_log: RateLimit::per_second(1),
            epoch: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        (Arc::new(ShadowService { shared, tx: Mutex::new(Some(tx)), thread: Mutex::new(None) }), rx)
    }

    fn spawn(&self, rx: mpsc::Receiver<Work>) {
        let s = self.shared.clone();
        match std::thread::Builder::new().name("shadow-service".into()).spawn(move || serve(&s, rx)) {
            Ok(t) => *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(t),
            Err(e) => {
                // Requests then wait for an answer that never comes; the
                // SDK calls time out. Say why once.
                tracing::error!(error = %e, "cannot start the shadow service thread");
            }
        }
    }

    /// Attaches the cloud sync (once, at start).
    pub fn set_sync(&self, handle: sync::SyncHandle) {
        let _ = self.shared.sync.set(handle);
    }

    /// Takes the group in force: which things are synced with the cloud.
    pub fn apply(&self, group: &crate::group::Group) {
        if let Some(sync) = self.shared.sync.get() {
            sync.apply(group);
        }
    }

    fn send(&self, work: Work) -> bool {
        match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(work).is_ok(),
            None => false,
        }
    }

    fn enqueue(&self, thing: &str, op: Op, payload: Bytes, origin: Origin) -> bool {
        let overflow = {
            let mut per = self.shared.per_thing.lock().unwrap_or_else(|p| p.into_inner());
            let n = per.entry(thing.to_string()).or_insert(0);
            *n += 1;
            *n > MAX_QUEUED_PER_THING
        };
        self.shared.queued.fetch_add(1, Relaxed);
        self.shared.stats.requests.fetch_add(1, Relaxed);
        let job = Job { thing: thing.to_string(), op, payload, origin, overflow };
        if self.send(Work::Job(job)) {
            true
        } else {
            self.shared.done(thing);
            false
        }
    }

    /// A request from the SDKs or the CLI: the response document (accepted or rejected).
    pub async fn ask(&self, thing: &str, op: Op, payload: Bytes) -> Result<Vec<u8>, (HostErrorCode, String)> {
        if let Err(r) = document::check_thing_name(thing) {
            return Ok(serde_json::to_vec(&r.document(document::token_of(&payload).as_deref(), now())).unwrap_or_default());
        }
        let (tx, rx) = oneshot::channel();
        if !self.enqueue(thing, op, payload, Origin::Caller(tx)) {
            return Err((HostErrorCode::Unavailable, "the shadow service is stopped".into()));
        }
        rx.await.map_err(|_| (HostErrorCode::Internal, "the shadow service stopped before answering".into()))
    }

    /// Applies an update or delete on behalf of the cloud sync (not pushed
    /// back), if the document is still as the round `read` it.
    pub(crate) async fn apply_from_cloud(
        &self,
        thing: &str,
        op: Op,
        payload: Bytes,
        epoch: u64,
        read: &Shadow,
    ) -> Result<Shadow, Rejection> {
        let (tx, rx) = oneshot::channel();
        let origin = Origin::Sync { epoch, version: read.version, exists: read.exists(), tx };
        if !self.enqueue(thing, op, payload, origin) {
            return Err(Rejection::new(500, "the shadow service is stopped"));
        }
        rx.await.unwrap_or_else(|_| Err(Rejection::new(500, "the shadow service stopped")))
    }

    /// The stored document of `thing` (a default, version 0, when none).
    pub async fn read(&self, thing: &str) -> Result<Shadow, String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Work::Read(thing.to_string(), tx)) {
            return Err("the shadow service is stopped".into());
        }
        rx.await.unwrap_or_else(|_| Err("the shadow service stopped".into()))
    }

    /// The number of clears so far (see [`Work::SetBase`]).
    pub(crate) fn epoch(&self) -> u64 {
        self.shared.epoch.load(Relaxed)
    }

    /// Stores the sync's base for `thing`, unless a clear came after `epoch`.
    pub(crate) async fn set_base(&self, thing: &str, state: Option<Value>, epoch: u64) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Work::SetBase { thing: thing.to_string(), state, epoch, tx }) {
            return Err("the shadow service is stopped".into());
        }
        rx.await.unwrap_or_else(|_| Err("the shadow service stopped".into()))
    }

    /// Removes every document (a reset of the group).
    pub async fn clear(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Work::Clear(tx)) {
            return Err("the shadow service is stopped".into());
        }
        rx.await.unwrap_or_else(|_| Err("the shadow service stopped".into()))
    }

    /// Ends the thread after the work queued so far.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn done(&self, thing: &str) {
        {
            let mut per = self.per_thing.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per.get_mut(thing) {
                *n -= 1;
                if *n == 0 {
                    per.remove(thing);
                }
            }
        }
        if self.queued.fetch_sub(1, Relaxed) == MAX_QUEUED {
            self.room.notify_waiters();
        }
    }

    fn publish(&self, thing: &str, suffix: &str, doc: &Value, scratch: &mut Vec<crate::router::TargetId>) {
        let topic = format!("$aws/things/{thing}/shadow/{suffix}");
        let msg = Message {
            topic: Arc::from(topic.as_str()),
            payload: Bytes::from(serde_json::to_vec(doc).unwrap_or_default()),
            qos: Qos::AtLeastOnce,
        };
        // The service waits for no one: a full device queue holds the message.
        let _ = self.router.route(&Endpoint::Shadow, &msg, scratch);
    }
}

/// An answer decided while applying a batch, sent once the batch is written.
struct Answer {
    job: Job,
    result: Result<Applied, Rejection>,
    token: Option<String>,
}

enum Applied {
    Got(Value),
    Updated(Box<document::Updated>),
    Deleted(Value, Shadow),
}

fn serve(shared: &Shared, rx: mpsc::Receiver<Work>) {
    let mut cache: HashMap<String, Shadow> = HashMap::new();
    let mut scratch = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        if cache.len() > MAX_CACHED {
            cache.clear();
        }
        let mut answers = Vec::new();
        let mut writes: HashMap<String, Shadow> = HashMap::new();
        // Reads are answered after the batch is written: they see only what is stored.
        let mut reads = Vec::new();
        let now = now();
        for work in batch {
            match work {
                Work::Job(job) => {
                    let answer = apply(shared, &mut cache, &mut writes, job, now);
                    answers.push(answer);
                }
                Work::Read(thing, tx) => reads.push((thing, tx)),
                Work::Clear(tx) => {
                    // What was decided before the clear is written and answered first.
                    finish(shared, &mut cache, std::mem::take(&mut writes), std::mem::take(&mut answers), &mut scratch);
                    answer_reads(shared, &mut cache, std::mem::take(&mut reads));
                    cache.clear();
                    shared.epoch.fetch_add(1, Relaxed);
                    let _ = tx.send(clear(shared.store.as_ref()));
                }
                Work::SetBase { thing, state, epoch, tx } => {
                    let r = if epoch == shared.epoch.load(Relaxed) {
                        let doc = serde_json::json!({ "state": state });
                        shared
                            .store
                            .write(vec![WriteOp::Put(Cf::Shadows, sync::base_key(&thing), doc.to_string().into_bytes())], true)
                            .map_err(|e| format!("storing the sync base: {e}"))
                    } else {
                        Ok(())
                    };
                    let _ = tx.send(r);
                }
            }
        }
        finish(shared, &mut cache, writes, answers, &mut scratch);
        answer_reads(shared, &mut cache, reads);
    }
}

fn answer_reads(shared: &Shared, cache: &mut HashMap<String, Shadow>, reads: Vec<(String, oneshot::Sender<Result<Shadow, String>>)>) {
    for (thing, tx) in reads {
        let _ = tx.send(load(shared, cache, &thing));
    }
}

/// The document of `thing` (version 0 when there never was one). A
/// document that cannot be read is an error, never taken for an absent one
/// (an update would start it over at version 1, the sync would delete it in
/// the cloud); it is not cached, so the next request tries again.
fn load(shared: &Shared, cache: &mut HashMap<String, Shadow>, thing: &str) -> Result<Shadow, String> {
    if let Some(s) = cache.get(thing) {
        return Ok(s.clone());
    }
    let s = match shared.store.get(Cf::Shadows, &document_key(thing)) {
        Ok(Some(bytes)) => Shadow::from_bytes(&bytes).map_err(|e| {
            tracing::error!(thing, error = %e, "a stored shadow cannot be read");
            format!("the stored shadow cannot be read ({e})")
        })?,
        Ok(None) => Shadow::default(),
        Err(e) => {
            tracing::error!(thing, error = %e, "reading a shadow failed");
            return Err(format!("reading the shadow failed ({e})"));
        }
    };
    cache.insert(thing.to_string(), s.clone());
    Ok(s)
}

fn apply(shared: &Shared, cache: &mut HashMap<String, Shadow>, writes: &mut HashMap<String, Shadow>, job: Job, now: u64) -> Answer {
    let token = document::token_of(&job.payload);
    if let Origin::Sync { epoch, .. } = &job.origin {
        if *epoch != shared.epoch.load(Relaxed) {
            let r = Rejection::new(RESET_DURING_ROUND, "the shadows were reset during the sync round");
            return Answer { job, result: Err(r), token };
        }
    }
    if job.overflow {
        let r = Rejection::new(429, "Too many requests: the shadow service is still answering earlier requests for this thing");
        return Answer { job, result: Err(r), token };
    }
    let current = match load(shared, cache, &job.thing) {
        Ok(c) => c,
        Err(e) => return Answer { job, result: Err(Rejection::new(500, format!("Internal service failure: {e}"))), token },
    };
    if let Origin::Sync { version, exists, .. } = &job.origin {
        if *version != current.version || *exists != current.exists() {
            return Answer { job, result: Err(Rejection::new(409, "Version conflict")), token };
        }
    }
    let result = match job.op {
        Op::Get => document::parse_token_request(&job.payload).and_then(|t| {
            if current.exists() {
                Ok(Applied::Got(current.get_document(t.as_deref(), now)))
            } else {
                Err(Rejection::not_found(&job.thing))
            }
        }),
        Op::Update => document::parse_update(&job.payload).and_then(|req| current.update(&req, now)).map(|u| {
            cache.insert(job.thing.clone(), u.shadow.clone());
            writes.insert(job.thing.clone(), u.shadow.clone());
            Applied::Updated(Box::new(u))
        }),
        Op::Delete => {
            document::parse_token_request(&job.payload).and_then(|t| current.delete(&job.thing, t.as_deref(), now)).map(|(gone, doc)| {
                cache.insert(job.thing.clone(), gone.clone());
                writes.insert(job.thing.clone(), gone.clone());
                Applied::Deleted(doc, gone)
            })
        }
    };
    Answer { job, result, token }
}

/// Writes the batch's documents, then sends its answers.
fn finish(
    shared: &Shared,
    cache: &mut HashMap<String, Shadow>,
    writes: HashMap<String, Shadow>,
    answers: Vec<Answer>,
    scratch: &mut Vec<crate::router::TargetId>,
) {
    let mut failed = None;
    if !writes.is_empty() {
        let ops = writes.iter().map(|(t, s)| WriteOp::Put(Cf::Shadows, document_key(t), s.to_bytes())).collect();
        match shared.store.write(ops, true) {
            Ok(()) => {
                shared.stats.commits.fetch_add(1, Relaxed);
            }
            Err(e) => {
                shared.stats.store_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "writing shadows failed; the requests are answered 500 and nothing changed");
                for t in writes.keys() {
                    cache.remove(t);
                }
                let _ = shared.store.recover();
                failed = Some(e.to_string());
            }
        }
    }
    let now = now();
    for Answer { job, result, token } in answers {
        // A failed write fails every answer about a thing it held, gets of
        // what it would have stored included.
        let result = match (result, &failed) {
            (Ok(_), Some(e)) if writes.contains_key(&job.thing) => {
                Err(Rejection::new(500, format!("Internal service failure: the shadow could not be stored ({e})")))
            }
            (r, _) => r,
        };
        let thing = job.thing.as_str();
        let op = job.op.as_str();
        let reply = match &result {
            Ok(Applied::Got(doc)) => {
                shared.stats.accepted.fetch_add(1, Relaxed);
                shared.publish(thing, &format!("{op}/accepted"), doc, scratch);
                doc.clone()
            }
            Ok(Applied::Updated(u)) => {
                shared.stats.accepted.fetch_add(1, Relaxed);
                shared.publish(thing, "update/accepted", &u.accepted, scratch);
                shared.publish(thing, "update/documents", &u.documents, scratch);
                if let Some(d) = &u.delta {
                    shared.publish(thing, "update/delta", d, scratch);
                }
                u.accepted.clone()
            }
            Ok(Applied::Deleted(doc, _)) => {
                shared.stats.accepted.fetch_add(1, Relaxed);
                shared.publish(thing, "delete/accepted", doc, scratch);
                doc.clone()
            }
            Err(r) => {
                if r.code == 429 {
                    shared.stats.too_many.fetch_add(1, Relaxed);
                }
                shared.stats.rejected.fetch_add(1, Relaxed);
                let doc = r.document(token.as_deref(), now);
                if matches!(job.origin, Origin::Routed) {
                    shared.publish(thing, &format!("{op}/rejected"), &doc, scratch);
                }
                doc
            }
        };
        // A local change for the sync to take to the cloud (not its own).
        let local_change = matches!(result, Ok(Applied::Updated(_) | Applied::Deleted(..))) && !matches!(job.origin, Origin::Sync { .. });
        // Counted out before the answer goes: whoever has it may ask again at once.
        shared.done(thing);
        match job.origin {
            Origin::Routed => {}
            Origin::Caller(tx) => {
                let _ = tx.send(serde_json::to_vec(&reply).unwrap_or_default());
            }
            Origin::Sync { tx, .. } => {
                let _ = tx.send(result.map(|a| match a {
                    Applied::Updated(u) => u.shadow,
                    Applied::Deleted(_, gone) => gone,
                    Applied::Got(_) => Shadow::default(),
                }));
            }
        }
        if local_change {
            if let Some(sync) = shared.sync.get() {
                sync.local_changed(thing);
            }
        }
    }
}

fn clear(store: &dyn StateStore) -> Result<(), String> {
    let entries = store.scan_prefix(Cf::Shadows, b"").map_err(|e| e.to_string())?;
    let ops = entries.into_iter().map(|(k, _)| WriteOp::Delete(Cf::Shadows, k)).collect::<Vec<_>>();
    if ops.is_empty() {
        return Ok(());
    }
    store.write(ops, true).map_err(|e| e.to_string())
}

impl CoreService for ShadowService {
    fn name(&self) -> &'static str {
        SHADOW
    }

    fn endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint::Shadow)
    }

    fn request(&self, req: ServiceRequest) -> ReplyFuture<'_> {
        Box::pin(async move {
            let Some((thing, op)) = parse_request_topic(&req.subject) else {
                return Err((
                    HostErrorCode::BadRequest,
                    format!("'{}' is not a shadow request topic ($aws/things/NAME/shadow/get|update|delete)", req.subject),
                ));
            };
            self.ask(thing, op, req.payload).await
        })
    }

    fn deliver(&self, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        let Some((thing, op)) = parse_request_topic(&msg.topic) else {
            self.shared.stats.ignored.fetch_add(1, Relaxed);
            if self.shared.ignored_log.allow() {
                tracing::warn!(source = %source, topic = %msg.topic, "GGShadowService: not a shadow request topic ($aws/things/NAME/shadow/get|update|delete); ignored");
            }
            return Delivery::Dropped("not a shadow request topic");
        };
        if let Err(r) = document::check_thing_name(thing) {
            if self.shared.ignored_log.allow() {
                tracing::warn!(source = %source, topic = %msg.topic, "GGShadowService: {r}; ignored");
            }
            self.shared.stats.ignored.fetch_add(1, Relaxed);
            return Delivery::Dropped("bad thing name");
        }
        // A publisher that does not wait is refused rather than queued past the bound.
        if when_full == WhenFull::Refuse && self.shared.queued.load(Relaxed) >= MAX_QUEUED {
            return Delivery::Refused;
        }
        if !self.enqueue(thing, op, msg.payload.clone(), Origin::Routed) {
            return Delivery::Dropped("the shadow service is stopped");
        }
        if self.shared.queued.load(Relaxed) >= MAX_QUEUED {
            Delivery::Full
        } else {
            Delivery::Accepted
        }
    }

    fn room(&self, _ticket: u64) -> Option<Arc<Notify>> {
        (self.shared.queued.load(Relaxed) >= MAX_QUEUED).then(|| self.shared.room.clone())
    }

    fn status(&self) -> Option<Value> {
        let s = &self.shared.stats;
        let mut v = serde_json::json!({
            "queued": self.shared.queued.load(Relaxed),
            "requests": s.requests.load(Relaxed),
            "accepted": s.accepted.load(Relaxed),
            "rejected": s.rejected.load(Relaxed),
            "tooManyRequests": s.too_many.load(Relaxed),
            "ignored": s.ignored.load(Relaxed),
            "commits": s.commits.load(Relaxed),
            "storeErrors": s.store_errors.load(Relaxed),
        });
        if let Some(sync) = self.shared.sync.get() {
            v["sync"] = sync.status();
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests;

//! Cloud sync of the shadows of things with `SyncShadow` (the core's own
//! thing per `CoreDefinition`, and devices), over the cloud link (docs/shadows.md,
//! "Cloud sync").
//!
//! Each synced thing has a *base*: the state both sides last agreed on,
//! stored beside the documents. A thing is reconciled when its local shadow
//! changes, when the cloud says its shadow changed (`/update/documents`,
//! `/delete/accepted` not caused by us), after every (re)connection of the
//! link and at start: the sync asks the cloud for its document (`get`), merges
//! base, local and cloud leaf by leaf (a leaf changed on one side takes that
//! side's value; changed on both, the newer time stamp wins, the core on a
//! tie), applies the result locally and pushes it to the cloud with the
//! cloud's `version` (a conflict there starts the round again), then stores
//! the result as the new base. Nothing accepted on either side is lost across
//! outages and restarts: the local side is durable in RocksDB, the base too,
//! and the cloud keeps its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::document::Shadow;
use super::{Op, ShadowService};
use crate::cloud::Cloud;
use crate::group::Group;
use crate::store::{Cf, StateStore};

/// How long the sync waits for the cloud to answer one request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Wait before a failed round is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Rounds in a row that may meet a version conflict before the thing waits.
const MAX_CONFLICT_ROUNDS: u32 = 5;
/// Prefix of the client tokens of the sync's own requests.
const TOKEN_PREFIX: &str = "ggcore-sync-";

pub(crate) fn base_key(thing: &str) -> Vec<u8> {
    [b"s/".as_slice(), thing.as_bytes()].concat()
}

enum Event {
    Local(String),
    Cloud(String),
    Things(BTreeSet<String>),
}

#[derive(Debug, Default)]
pub struct SyncStats {
    pub rounds: AtomicU64,
    pub pulled: AtomicU64,
    pub pushed: AtomicU64,
    pub conflicts: AtomicU64,
    pub failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    things: Mutex<Vec<String>>,
    pending: AtomicU64,
}

/// Replies the sync waits for, by client token.
type Waiters = Mutex<HashMap<String, oneshot::Sender<(String, Value)>>>;

/// The shadow service's link to the sync task.
pub struct SyncHandle {
    tx: mpsc::UnboundedSender<Event>,
    stats: Arc<SyncStats>,
}

impl SyncHandle {
    /// A local change of `thing` was stored.
    pub fn local_changed(&self, thing: &str) {
        let _ = self.tx.send(Event::Local(thing.to_string()));
    }

    /// The things to sync, from the group in force.
    pub fn apply(&self, group: &Group) {
        let mut things = BTreeSet::new();
        if let Some(c) = group.core.as_ref().filter(|c| c.sync_shadow) {
            things.insert(c.thing.name().to_string());
        }
        things.extend(group.devices.iter().filter(|d| d.sync_shadow).map(|d| d.thing.name().to_string()));
        let _ = self.tx.send(Event::Things(things));
    }

    pub fn status(&self) -> Value {
        let s = &self.stats;
        json!({
            "things": *s.things.lock().unwrap_or_else(|p| p.into_inner()),
            "pending": s.pending.load(Relaxed),
            "rounds": s.rounds.load(Relaxed),
            "pulled": s.pulled.load(Relaxed),
            "pushed": s.pushed.load(Relaxed),
            "conflicts": s.conflicts.load(Relaxed),
            "failures": s.failures.load(Relaxed),
            "lastError": *s.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }
}

/// Starts the sync task and attaches it to the shadow service and the cloud.
pub fn start(shadows: Arc<ShadowService>, cloud: Arc<Cloud>, store: Arc<dyn StateStore>, tracker: &TaskTracker, stop: CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SyncStats::default());
    let waiters: Arc<Waiters> = Arc::default();
    let tap_tx = tx.clone();
    let tap_waiters = waiters.clone();
    cloud.set_tap(Box::new(move |topic, payload| tap(&tap_waiters, &tap_tx, topic, payload)));
    shadows.set_sync(SyncHandle { tx, stats: stats.clone() });
    let task = Sync { shadows, cloud, store, stats, waiters, next_token: 0, stop: stop.clone() };
    tracker.spawn(task.run(rx, stop));
}

/// A message from the cloud: a reply the sync waits for, or news of a
/// change made there. `true` when it was a shadow reply topic.
fn tap(waiters: &Waiters, tx: &mpsc::UnboundedSender<Event>, topic: &str, payload: &Bytes) -> bool {
    let Some(rest) = topic.strip_prefix("$aws/things/") else { return false };
    let Some((thing, suffix)) = rest.split_once("/shadow/") else { return false };
    if !matches!(
        suffix,
        "get/accepted"
            | "get/rejected"
            | "update/accepted"
            | "update/rejected"
            | "update/documents"
            | "delete/accepted"
            | "delete/rejected"
    ) {
        return false;
    }
    let doc: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let token = doc.get("clientToken").and_then(Value::as_str).unwrap_or("");
    if token.starts_with(TOKEN_PREFIX) {
        if !suffix.ends_with("documents") {
            if let Some(w) = waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(token) {
                let _ = w.send((suffix.to_string(), doc));
            }
        }
        return true;
    }
    if matches!(suffix, "update/documents" | "delete/accepted") {
        let _ = tx.send(Event::Cloud(thing.to_string()));
    }
    true
}

struct Sync {
    shadows: Arc<ShadowService>,
    cloud: Arc<Cloud>,
    store: Arc<dyn StateStore>,
    stats: Arc<SyncStats>,
    waiters: Arc<Waiters>,
    next_token: u64,
    /// A stopping core does not wait for the cloud's answers.
    stop: CancellationToken,
}

/// The cloud's document, as `get/accepted` gives it.
struct CloudDoc {
    state: Value,
    metadata: Value,
    version: u64,
    /// Its newest leaf's time stamp (the time of its last change that set a value).
    timestamp: u64,
}

impl CloudDoc {
    /// From a `get/accepted` document.
    fn from_get(doc: &Value) -> CloudDoc {
        let mut state = doc.get("state").cloned().unwrap_or(json!({}));
        if let Some(s) = state.as_object_mut() {
            s.remove("delta");
        }
        let metadata = doc.get("metadata").cloned().unwrap_or(json!({}));
        CloudDoc {
            state,
            // The answer's `timestamp` is when it was sent: the document's
            // own time is its newest leaf's.
            timestamp: newest_timestamp(&metadata).unwrap_or(0),
            metadata,
            version: doc.get("version").and_then(Value::as_u64).unwrap_or(0),
        }
    }
}

/// The newest `timestamp` anywhere in a metadata tree.
fn newest_timestamp(meta: &Value) -> Option<u64> {
    match meta {
        Value::Object(m) => {
            let here = m.get("timestamp").and_then(Value::as_u64);
            m.values().filter_map(newest_timestamp).chain(here).max()
        }
        Value::Array(a) => a.iter().filter_map(newest_timestamp).max(),
        _ => None,
    }
}

/// Why a round did not finish.
enum RoundError {
    /// The cloud's version moved on meanwhile: start again.
    Conflict,
    Failed(String),
}

impl Sync {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>, stop: CancellationToken) {
        let mut things: BTreeSet<String> = BTreeSet::new();
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut retry_at: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        let mut connects = u64::MAX;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(Event::Local(t) | Event::Cloud(t)) => {
                        if things.contains(&t) {
                            dirty.insert(t);
                        }
                    }
                    Some(Event::Things(set)) => {
                        dirty.extend(set.difference(&things).cloned());
                        things = set;
                        dirty.retain(|t| things.contains(t));
                        *self.stats.things.lock().unwrap_or_else(|p| p.into_inner()) = things.iter().cloned().collect();
                        let filters = things.iter().flat_map(|t| {
                            ["+/accepted", "+/rejected", "update/documents"].map(|s| format!("$aws/things/{t}/shadow/{s}"))
                        }).collect();
                        self.cloud.set_service_filters(super::SHADOW_SYNC, filters);
                    }
                    None => break,
                },
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
            // Every (re)connection: reconcile everything (changes on either
            // side while the link was down).
            let now_connects = self.cloud.link.connects.load(Relaxed);
            if now_connects != connects && self.cloud.connected() {
                connects = now_connects;
                dirty.extend(things.iter().cloned());
                retry_at.clear();
            }
            self.stats.pending.store(dirty.len() as u64, Relaxed);
            if !self.cloud.connected() {
                continue;
            }
            let now = tokio::time::Instant::now();
            let ready: Vec<String> = dirty.iter().filter(|t| retry_at.get(*t).is_none_or(|at| *at <= now)).cloned().collect();
            // One epoch per pass: after a reset, no round of this pass writes
            // anything (the reset's new group comes as an event first).
            let epoch = self.shadows.epoch();
            for thing in ready {
                if stop.is_cancelled() || !self.cloud.connected() || self.shadows.epoch() != epoch {
                    break;
                }
                dirty.remove(&thing);
                match self.reconcile(&thing, epoch).await {
                    Ok(()) => {
                        retry_at.remove(&thing);
                    }
                    Err(e) => {
                        self.stats.failures.fetch_add(1, Relaxed);
                        tracing::warn!(thing = %thing, error = %e, "shadow sync: the round did not finish; tried again in {} s", RETRY_AFTER.as_secs());
                        *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{thing}: {e}"));
                        dirty.insert(thing.clone());
                        retry_at.insert(thing, now + RETRY_AFTER);
                    }
                }
            }
            self.stats.pending.store(dirty.len() as u64, Relaxed);
        }
    }

    /// Brings `thing`'s local and cloud shadows in step.
    async fn reconcile(&mut self, thing: &str, epoch: u64) -> Result<(), String> {
        for _ in 0..MAX_CONFLICT_ROUNDS {
            self.stats.rounds.fetch_add(1, Relaxed);
            match self.round(thing, epoch).await {
                Ok(()) => return Ok(()),
                Err(RoundError::Conflict) => continue,
                Err(RoundError::Failed(e)) => return Err(e),
            }
        }
        Err(format!("the cloud's version kept changing ({MAX_CONFLICT_ROUNDS} rounds)"))
    }

    async fn round(&mut self, thing: &str, epoch: u64) -> Result<(), RoundError> {
        let cloud = self.cloud_document(thing).await?;
        let local = self.shadows.read(thing).await.map_err(|e| RoundError::Failed(format!("the local shadow: {e}")))?;
        let base = self.base(thing).map_err(RoundError::Failed)?;
        let local_state = local.exists().then(|| local.state());
        let (merged, conflicts) = merge(base.as_ref(), &local, cloud.as_ref());
        if conflicts > 0 {
            self.stats.conflicts.fetch_add(conflicts, Relaxed);
        }
        // An empty state ({}) is no change a request can carry.
        let changes = |from: Option<&Value>, to: &Value| Some(diff_state(from, to)).filter(|d| d != &json!({}));
        // The cloud first: until it took the result, nothing changes here, so
        // a round that fails or meets a newer cloud version starts again from
        // the same local side (values taken from the cloud and stamped with
        // the core's time would otherwise look like newer local changes).
        let cloud_state = cloud.as_ref().map(|c| c.state.clone());
        let push = match &merged {
            None => cloud.is_some(),
            Some(m) => changes(cloud_state.as_ref(), m).is_some(),
        };
        if push {
            let token = self.token();
            let (suffix, doc) = match (&merged, &cloud) {
                (None, _) => self.ask_cloud(thing, "delete", json!({ "clientToken": token })).await?,
                (Some(m), c) => {
                    let mut req = json!({ "state": diff_state(cloud_state.as_ref(), m), "clientToken": token });
                    if let Some(c) = c {
                        req["version"] = json!(c.version);
                    }
                    self.ask_cloud(thing, "update", req).await?
                }
            };
            match (suffix.as_str(), doc.get("code").and_then(Value::as_u64)) {
                ("update/accepted" | "delete/accepted", _) => {}
                ("delete/rejected", Some(404)) => {}
                (_, Some(409)) => return Err(RoundError::Conflict),
                (s, _) => return Err(RoundError::Failed(format!("the cloud answered {s}: {doc}"))),
            }
            self.stats.pushed.fetch_add(1, Relaxed);
        }
        // Then the local side, as read: a local change made since (an update
        // or a delete) is kept, and what the cloud gave is merged into it with
        // the local change winning; its own event brings the thing round again
        // to push it (against the base the cloud now holds).
        let mut read = local;
        let mut target = merged.clone();
        for attempt in 0.. {
            let read_state = read.exists().then(|| read.state());
            if target == read_state {
                break;
            }
            let r = match &target {
                None => self.shadows.apply_from_cloud(thing, Op::Delete, Bytes::new(), epoch, &read).await,
                Some(t) => match changes(read_state.as_ref(), t) {
                    Some(d) => {
                        let req = json!({ "state": d });
                        self.shadows.apply_from_cloud(thing, Op::Update, Bytes::from(req.to_string()), epoch, &read).await
                    }
                    None => break,
                },
            };
            match r {
                Ok(_) => {
                    self.stats.pulled.fetch_add(1, Relaxed);
                    break;
                }
                Err(e) if e.code == super::RESET_DURING_ROUND => {
                    return Err(RoundError::Failed("the shadows were reset during the round".into()));
                }
                Err(e) if (e.code == 409 || e.code == 404) && attempt < MAX_CONFLICT_ROUNDS => {
                    let now = self.shadows.read(thing).await.map_err(|e| RoundError::Failed(format!("the local shadow: {e}")))?;
                    // Base: what the round read; "cloud": the result, with no
                    // time stamps, so that every local change since wins.
                    let result = merged.as_ref().map(|m| CloudDoc { state: m.clone(), metadata: json!({}), version: 0, timestamp: 0 });
                    target = merge(local_state.as_ref(), &now, result.as_ref()).0;
                    read = now;
                }
                Err(e) => return Err(RoundError::Failed(format!("the local shadow refused the cloud's side: {e}"))),
            }
        }
        self.shadows.set_base(thing, merged, epoch).await.map_err(RoundError::Failed)
    }

    fn token(&mut self) -> String {
        self.next_token += 1;
        format!("{TOKEN_PREFIX}{}-{}", std::process::id(), self.next_token)
    }

    /// The cloud's document of `thing`; `None` when it has none.
    async fn cloud_document(&mut self, thing: &str) -> Result<Option<CloudDoc>, RoundError> {
        let token = self.token();
        let (suffix, doc) = self.ask_cloud(thing, "get", json!({ "clientToken": token })).await?;
        match (suffix.as_str(), doc.get("code").and_then(Value::as_u64)) {
            ("get/accepted", _) => Ok(Some(CloudDoc::from_get(&doc))),
            ("get/rejected", Some(404)) => Ok(None),
            (s, _) => Err(RoundError::Failed(format!("the cloud answered {s}: {doc}"))),
        }
    }

    /// Sends a request on `$aws/things/THING/shadow/OP` through the cloud
    /// queue and waits for the reply carrying its client token.
    async fn ask_cloud(&mut self, thing: &str, op: &str, req: Value) -> Result<(String, Value), RoundError> {
        let token = req.get("clientToken").and_then(Value::as_str).unwrap_or_default().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), tx);
        // Outside the queue, at QoS 0: a request that outlived its round
        // must never reach the cloud later (a stale update or delete).
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        if let Err(why) = self.cloud.send_volatile(format!("$aws/things/{thing}/shadow/{op}"), Bytes::from(req.to_string()), deadline) {
            self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
            return Err(RoundError::Failed(why.into()));
        }
        let answer = tokio::select! {
            r = tokio::time::timeout_at(deadline, rx) => r,
            _ = self.stop.cancelled() => {
                self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
                return Err(RoundError::Failed("the core is stopping".into()));
            }
        };
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
                Err(RoundError::Failed(format!("no answer from the cloud to {op} within {} s", ANSWER_WITHIN.as_secs())))
            }
        }
    }

    /// The state both sides last agreed on (`None`: no shadow on either, or
    /// never synced).
    fn base(&self, thing: &str) -> Result<Option<Value>, String> {
        let Some(bytes) = self.store.get(Cf::Shadows, &base_key(thing)).map_err(|e| format!("reading the sync base: {e}"))? else {
            return Ok(None);
        };
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("the stored sync base is not JSON: {e}"))?;
        Ok(doc.get("state").filter(|s| !s.is_null()).cloned())
    }
}

// ---- the merge ----------------------------------------------------------

type Leaves = BTreeMap<Vec<String>, (Value, u64)>;

/// The leaves (non-object values) of a state section by path, with the time
/// stamp of each from `meta` (`default_ts` where it has none).
fn leaves(section: Option<&Value>, meta: Option<&Value>, default_ts: u64) -> Leaves {
    fn walk(v: &Value, meta: Option<&Value>, path: &mut Vec<String>, default_ts: u64, out: &mut Leaves) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, meta.and_then(|m| m.get(k)), path, default_ts, out);
                    path.pop();
                }
            }
            other => {
                out.insert(path.clone(), (other.clone(), timestamp_of(meta).unwrap_or(default_ts)));
            }
        }
    }
    let mut out = Leaves::new();
    // A section that is not an object (a malformed cloud document) has no leaves.
    if let Some(v @ Value::Object(_)) = section {
        walk(v, meta, &mut Vec::new(), default_ts, &mut out);
    }
    out
}

/// A leaf's time stamp: `{"timestamp": T}`, or the newest of an array's.
fn timestamp_of(meta: Option<&Value>) -> Option<u64> {
    match meta? {
        Value::Object(m) => m.get("timestamp").and_then(Value::as_u64),
        Value::Array(a) => a.iter().filter_map(|m| timestamp_of(Some(m))).max(),
        _ => None,
    }
}

/// Builds a section from leaves; a leaf under another leaf is left out.
fn tree(leaves: &BTreeMap<Vec<String>, Value>) -> Option<Value> {
    if leaves.is_empty() {
        return None;
    }
    let mut root = Map::new();
    'leaf: for (path, v) in leaves {
        let Some((last, parents)) = path.split_last() else { continue };
        let mut at = &mut root;
        for k in parents {
            let next = at.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
            match next {
                Value::Object(m) => at = m,
                _ => continue 'leaf,
            }
        }
        at.insert(last.clone(), v.clone());
    }
    Some(Value::Object(root))
}

/// The merged state (`None`: the shadow is deleted on both sides) and how
/// many leaves changed on both sides (decided by time stamp).
fn merge(base: Option<&Value>, local: &Shadow, cloud: Option<&CloudDoc>) -> (Option<Value>, u64) {
    let local_state = local.exists().then(|| local.state());
    match (local_state, cloud) {
        (None, None) => (None, 0),
        // One side has no shadow: it was deleted there if the other side is
        // what both last agreed on; otherwise a change beats a deletion.
        (Some(l), None) => (if base == Some(&l) { None } else { Some(l) }, 0),
        (None, Some(c)) => (if base == Some(&c.state) { None } else { Some(c.state.clone()) }, 0),
        (Some(l), Some(c)) => {
            let local_meta = local.metadata();
            let mut out = Map::new();
            let mut conflicts = 0;
            for section in ["desired", "reported"] {
                let b = leaves(base.and_then(|b| b.get(section)), None, 0);
                let lv = leaves(l.get(section), local_meta.get(section), local.timestamp);
                let cv = leaves(c.state.get(section), c.metadata.get(section), c.timestamp);
                let mut merged = BTreeMap::new();
                let paths: BTreeSet<&Vec<String>> = b.keys().chain(lv.keys()).chain(cv.keys()).collect();
                for p in paths {
                    let (bv, lvv, cvv) = (b.get(p).map(|x| &x.0), lv.get(p), cv.get(p));
                    let pick = match (lvv, cvv) {
                        (l, c) if l.map(|x| &x.0) == c.map(|x| &x.0) => l,
                        (l, c) if l.map(|x| &x.0) == bv => c,
                        (l, c) if c.map(|x| &x.0) == bv => l,
                        (l, c) => {
                            conflicts += 1;
                            // A deleted leaf carries its document's time.
                            let lt = l.map(|x| x.1).unwrap_or(local.timestamp);
                            let ct = c.map(|x| x.1).unwrap_or(cloud.map(|c| c.timestamp).unwrap_or(0));
                            if ct > lt {
                                c
                            } else {
                                l
                            }
                        }
                    };
                    if let Some((v, _)) = pick {
                        merged.insert(p.clone(), v.clone());
                    }
                }
                if let Some(t) = tree(&merged) {
                    out.insert(section.to_string(), t);
                }
            }
            (Some(Value::Object(out)), conflicts)
        }
    }
}

/// The update request's `state` that turns `from` into `to`: changed leaves
/// set, removed keys `null`, a section gone `null`.
fn diff_state(from: Option<&Value>, to: &Value) -> Value {
    let mut out = Map::new();
    for section in ["desired", "reported"] {
        let f = from.and_then(|f| f.get(section)).and_then(Value::as_object);
        let t = to.get(section).and_then(Value::as_object);
        match (f, t) {
            (None, None) => {}
            (Some(_), None) => {
                out.insert(section.into(), Value::Null);
            }
            (None, Some(t)) => {
                out.insert(section.into(), Value::Object(t.clone()));
            }
            (Some(f), Some(t)) => {
                let d = diff(f, t);
                if !d.is_empty() {
                    out.insert(section.into(), Value::Object(d));
                }
            }
        }
    }
    Value::Object(out)
}

fn diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, t) in to {
        match (from.get(k), t) {
            (Some(f), t) if f == t => {}
            (Some(Value::Object(f)), Value::Object(t)) => {
                let d = diff(f, t);
                if !d.is_empty() {
                    out.insert(k.clone(), Value::Object(d));
                }
            }
            (_, t) => {
                out.insert(k.clone(), t.clone());
            }
        }
    }
    for k in from.keys() {
        if !to.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::document::parse_update;
    use super::*;

    fn shadow(state: Value, now: u64) -> Shadow {
        let req = parse_update(json!({ "state": state }).to_string().as_bytes()).unwrap();
        Shadow::default().update(&req, now).unwrap().shadow
    }

    /// The cloud's document as the sync reads it from `get/accepted`, sent at `sent`.
    fn cloud_at(state: Value, ts: u64, sent: u64) -> CloudDoc {
        let s = shadow(state, ts);
        CloudDoc::from_get(&s.get_document(None, sent))
    }

    fn cloud(state: Value, ts: u64) -> CloudDoc {
        cloud_at(state, ts, ts + 1000)
    }

    #[test]
    fn a_deletion_counts_its_documents_time_not_the_answers() {
        let base = json!({"desired": {"x": 1, "y": 1}});
        // The cloud deleted x at 10 (its newest leaf, y, is from 10); the core
        // changed x at 20: the core's later change stays, although the cloud's
        // answer was sent at 1,010.
        let local = shadow(json!({"desired": {"x": 2, "y": 1}}), 20);
        let c = cloud(json!({"desired": {"y": 1}}), 10);
        assert_eq!(c.timestamp, 10);
        let (m, conflicts) = merge(Some(&base), &local, Some(&c));
        assert_eq!((m.unwrap(), conflicts), (json!({"desired": {"x": 2, "y": 1}}), 1));
        // Deleted locally at 10, changed in the cloud at 20: the cloud's change stays.
        let local = shadow(json!({"desired": {"y": 1}}), 10);
        let c = cloud(json!({"desired": {"x": 3, "y": 1}}), 20);
        assert_eq!(merge(Some(&base), &local, Some(&c)).0.unwrap(), json!({"desired": {"x": 3, "y": 1}}));
    }

    /// What the round writes locally when a local change came in after it
    /// read the local side: the local change wins, the cloud's part stays.
    fn rebased(read: &Value, now: &Shadow, result: Option<Value>) -> Option<Value> {
        let result = result.map(|m| CloudDoc { state: m, metadata: json!({}), version: 0, timestamp: 0 });
        merge(Some(read), now, result.as_ref()).0
    }

    #[test]
    fn a_local_change_during_a_round_is_kept_with_the_clouds_part() {
        let read = json!({"desired": {"x": 1, "y": 1}});
        let result = json!({"desired": {"x": 1, "y": 2}}); // y pulled from the cloud
        let now = shadow(json!({"desired": {"x": 5, "y": 1}}), 1); // x changed locally meanwhile
        assert_eq!(rebased(&read, &now, Some(result.clone())), Some(json!({"desired": {"x": 5, "y": 2}})));
        // The user changed the pulled leaf too: theirs stays.
        let now = shadow(json!({"desired": {"x": 1, "y": 9}}), 1);
        assert_eq!(rebased(&read, &now, Some(result.clone())), Some(json!({"desired": {"x": 1, "y": 9}})));
        // Deleted locally meanwhile: the cloud's change beats the deletion; with
        // nothing from the cloud, the deletion stays.
        let gone = Shadow { version: 3, deleted: true, ..Shadow::default() };
        assert_eq!(rebased(&read, &gone, Some(result)), Some(json!({"desired": {"x": 1, "y": 2}})));
        assert_eq!(rebased(&read, &gone, Some(read.clone())), None);
    }

    #[test]
    fn a_malformed_cloud_document_does_not_stop_the_sync() {
        let local = shadow(json!({"reported": {"a": 1}}), 5);
        for state in [json!({"desired": null}), json!({"desired": 5, "reported": [1]}), json!(7)] {
            let c = CloudDoc::from_get(&json!({"state": state, "metadata": 3, "version": 1}));
            let (m, _) = merge(None, &local, Some(&c));
            assert_eq!(m.unwrap(), json!({"reported": {"a": 1}}), "{state}");
        }
        assert_eq!(tree(&BTreeMap::from([(vec![], json!(1))])), Some(json!({})));
    }

    #[test]
    fn one_sided_changes_win_and_both_sided_ones_go_by_time_stamp() {
        let base = json!({"desired": {"a": 1, "b": 1, "c": 1}, "reported": {"r": 1}});
        // Local changed a (at 10), cloud changed b (at 20); both changed c:
        // the cloud later (30 > 10).
        let local = shadow(json!({"desired": {"a": 2, "b": 1, "c": 2}, "reported": {"r": 1}}), 10);
        let c = cloud(json!({"desired": {"a": 1, "b": 3, "c": 3}, "reported": {"r": 1}}), 30);
        let (m, conflicts) = merge(Some(&base), &local, Some(&c));
        assert_eq!(m.unwrap(), json!({"desired": {"a": 2, "b": 3, "c": 3}, "reported": {"r": 1}}));
        assert_eq!(conflicts, 1);
        // The core wins a tie and a newer local change.
        let local = shadow(json!({"desired": {"a": 1, "b": 1, "c": 9}, "reported": {"r": 1}}), 30);
        let (m, _) = merge(Some(&base), &local, Some(&c));
        assert_eq!(m.unwrap()["desired"]["c"], 9);
    }

    #[test]
    fn deletions_of_keys_and_of_whole_shadows() {
        let base = json!({"reported": {"a": 1, "b": 1}});
        let local = shadow(json!({"reported": {"a": 1}}), 5);
        let c = cloud(json!({"reported": {"a": 1, "b": 1, "n": 1}}), 6);
        let (m, _) = merge(Some(&base), &local, Some(&c));
        assert_eq!(m.unwrap(), json!({"reported": {"a": 1, "n": 1}}), "b deleted locally, n added in the cloud");
        // Deleted in the cloud, unchanged locally: deleted.
        let local = shadow(json!({"reported": {"a": 1, "b": 1}}), 5);
        assert_eq!(merge(Some(&base), &local, None).0, None);
        // Deleted in the cloud, changed locally: the change stays.
        let changed = shadow(json!({"reported": {"a": 2}}), 5);
        assert_eq!(merge(Some(&base), &changed, None).0, Some(json!({"reported": {"a": 2}})));
        // Never synced: whatever exists is taken.
        assert_eq!(merge(None, &Shadow::default(), Some(&c)).0, Some(c.state.clone()));
        assert_eq!(merge(None, &changed, None).0, Some(changed.state()));
    }

    #[test]
    fn a_diff_applied_as_an_update_gives_the_target() {
        let cases = [
            (json!({"desired": {"a": 1, "o": {"x": 1, "y": [1]}}, "reported": {"r": 1}}), json!({"desired": {"o": {"x": 2, "z": true}}})),
            (json!({"reported": {"a": 5}}), json!({"reported": {"a": {"b": 1}}, "desired": {"d": 1}})),
            (json!({"reported": {"a": {"b": 1}}}), json!({"reported": {"a": 5}})),
        ];
        for (from, to) in cases {
            let s = shadow(from.clone(), 1);
            let req = parse_update(json!({ "state": diff_state(Some(&from), &to) }).to_string().as_bytes()).unwrap();
            assert_eq!(s.update(&req, 2).unwrap().shadow.state(), to, "from {from}");
        }
    }
}

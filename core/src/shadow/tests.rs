use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::*;
use crate::store::{FlakyStore, MemoryStore};

fn service(store: Arc<dyn StateStore>) -> Arc<ShadowService> {
    ShadowService::start(Arc::new(Router::new()), store)
}

async fn ask(s: &ShadowService, thing: &str, op: Op, payload: Value) -> Value {
    let bytes = if payload.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(&payload).unwrap()) };
    serde_json::from_slice(&s.ask(thing, op, bytes).await.unwrap()).unwrap()
}

#[test]
fn request_topics() {
    assert_eq!(parse_request_topic("$aws/things/t1/shadow/update"), Some(("t1", Op::Update)));
    assert_eq!(parse_request_topic("$aws/things/t1/shadow/get"), Some(("t1", Op::Get)));
    assert_eq!(parse_request_topic("$aws/things/t1/shadow/update/accepted"), None);
    assert_eq!(parse_request_topic("$aws/things/a/b/shadow/get"), None);
    assert_eq!(parse_request_topic("$aws/things/t/shadow/name/n/get"), None);
    assert_eq!(parse_request_topic("things/t/shadow/get"), None);
}

#[tokio::test]
async fn documents_are_stored_and_served_in_order() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let s = service(store.clone());
    let r = ask(&s, "lamp", Op::Get, json!({"clientToken": "a"})).await;
    assert_eq!((r["code"].clone(), r["clientToken"].clone()), (json!(404), json!("a")));
    let r = ask(&s, "lamp", Op::Update, json!({"state": {"desired": {"on": true}}})).await;
    assert_eq!(r["version"], 1);
    let r = ask(&s, "lamp", Op::Update, json!({"state": {"reported": {"on": false}}, "version": 1})).await;
    assert_eq!(r["version"], 2);
    let r = ask(&s, "lamp", Op::Update, json!({"state": {"reported": {"on": true}}, "version": 1})).await;
    assert_eq!(r["code"], 409);
    let r = ask(&s, "lamp", Op::Get, Value::Null).await;
    assert_eq!(r["state"]["delta"], json!({"on": true}));
    assert_eq!(r["version"], 2);
    // What is stored is what a new service (a restarted core) reads.
    s.stop();
    let again = service(store.clone());
    let r = ask(&again, "lamp", Op::Get, Value::Null).await;
    assert_eq!(r["state"]["reported"], json!({"on": false}));
    let r = ask(&again, "lamp", Op::Delete, Value::Null).await;
    assert_eq!(r["version"], 2);
    assert_eq!(ask(&again, "lamp", Op::Get, Value::Null).await["code"], 404);
    assert_eq!(ask(&again, "lamp", Op::Delete, Value::Null).await["code"], 404);
    let r = ask(&again, "bad/name", Op::Get, Value::Null).await;
    assert_eq!(r["code"], 400);
    again.clear().await.unwrap();
    assert!(store.scan_prefix(Cf::Shadows, b"").unwrap().is_empty());
    assert_eq!(ask(&again, "lamp", Op::Update, json!({"state": {"desired": {"x": 1}}})).await["version"], 1);
}

#[tokio::test]
async fn a_failed_write_answers_500_and_changes_nothing() {
    let store = Arc::new(FlakyStore::failing());
    let s = service(store.clone());
    let r = ask(&s, "t", Op::Update, json!({"state": {"reported": {"a": 1}}, "clientToken": "c"})).await;
    assert_eq!((r["code"].clone(), r["clientToken"].clone()), (json!(500), json!("c")));
    assert_eq!(ask(&s, "t", Op::Get, Value::Null).await["code"], 404, "nothing was stored, nothing is served");
    store.failing.store(false, Ordering::Relaxed);
    assert_eq!(ask(&s, "t", Op::Update, json!({"state": {"reported": {"a": 1}}})).await["version"], 1);
    assert_eq!(s.shared.stats.store_errors.load(Relaxed), 1);
}

#[tokio::test]
async fn requests_over_a_things_bound_are_429() {
    // Queue past the bound before the service thread runs.
    let (s, rx) = ShadowService::new(Arc::new(Router::new()), Arc::new(MemoryStore::default()));
    let mut waits = Vec::new();
    for i in 0..(MAX_QUEUED_PER_THING + 3) {
        let payload = Bytes::from(serde_json::to_vec(&json!({"state": {"reported": {"i": i}}})).unwrap());
        let (tx, rx) = oneshot::channel();
        assert!(s.enqueue("busy", Op::Update, payload, Origin::Caller(tx)));
        waits.push(rx);
    }
    s.spawn(rx);
    let mut codes = Vec::new();
    for rx in waits {
        let doc: Value = serde_json::from_slice(&rx.await.unwrap()).unwrap();
        codes.push(doc.get("code").and_then(Value::as_u64).unwrap_or(200));
    }
    assert!(codes[..MAX_QUEUED_PER_THING].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(codes[MAX_QUEUED_PER_THING..], [429, 429, 429]);
    assert_eq!(s.shared.queued.load(Relaxed), 0);
    assert!(s.shared.per_thing.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_get_in_the_batch_of_a_failed_write_is_500_too() {
    // Both queued before the thread runs: one batch.
    let store = Arc::new(FlakyStore::failing());
    let (s, rx) = ShadowService::new(Arc::new(Router::new()), store.clone());
    let (tx1, rx1) = oneshot::channel();
    let (tx2, rx2) = oneshot::channel();
    let update = Bytes::from(serde_json::to_vec(&json!({"state": {"reported": {"a": 1}}})).unwrap());
    assert!(s.enqueue("t", Op::Update, update, Origin::Caller(tx1)));
    assert!(s.enqueue("t", Op::Get, Bytes::new(), Origin::Caller(tx2)));
    let (read_tx, read_rx) = oneshot::channel();
    assert!(s.send(Work::Read("t".into(), read_tx)));
    s.spawn(rx);
    let first: Value = serde_json::from_slice(&rx1.await.unwrap()).unwrap();
    let second: Value = serde_json::from_slice(&rx2.await.unwrap()).unwrap();
    assert_eq!((first["code"].clone(), second["code"].clone()), (json!(500), json!(500)), "{second}");
    let read = read_rx.await.unwrap().unwrap();
    assert!(!read.exists(), "the sync's read sees only what is stored");
}

#[test]
fn a_full_service_holds_publishers_and_refuses_those_that_do_not_wait() {
    let (s, rx) = ShadowService::new(Arc::new(Router::new()), Arc::new(MemoryStore::default()));
    let device = Endpoint::Device(crate::group::ThingArn::build("r", "a", "dev"));
    let msg =
        |thing: &str| Message { topic: format!("$aws/things/{thing}/shadow/get").into(), payload: Bytes::new(), qos: Qos::AtMostOnce };
    for i in 0..MAX_QUEUED - 1 {
        assert_eq!(s.deliver(&device, &msg(&format!("t{i}")), WhenFull::Hold), Delivery::Accepted);
    }
    assert!(s.room(0).is_none());
    assert_eq!(s.deliver(&device, &msg("last"), WhenFull::Hold), Delivery::Full, "taken; the publisher waits");
    let room = s.room(0).expect("no room");
    assert_eq!(s.deliver(&device, &msg("more"), WhenFull::Refuse), Delivery::Refused, "AllOrError is not queued");
    assert_eq!(s.shared.queued.load(Relaxed), MAX_QUEUED);
    assert!(matches!(s.deliver(&device, &msg("x/y"), WhenFull::Hold), Delivery::Dropped(_)), "not a thing name");
    assert!(matches!(
        s.deliver(&device, &Message { topic: "a/b".into(), payload: Bytes::new(), qos: Qos::AtMostOnce }, WhenFull::Hold),
        Delivery::Dropped(_)
    ));
    let notified = room.notified();
    s.spawn(rx);
    block_on(notified);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.shared.queued.load(Relaxed) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(s.shared.queued.load(Relaxed), 0);
    assert!(s.room(0).is_none());
    assert_eq!(s.shared.stats.ignored.load(Relaxed), 2);
}

/// Waits for a future on this thread (the test has no runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[tokio::test]
async fn the_syncs_writes_hold_only_at_the_version_and_epoch_it_read() {
    let s = service(Arc::new(MemoryStore::default()));
    let update = |v: i64| Bytes::from(serde_json::to_vec(&json!({"state": {"reported": {"v": v}}})).unwrap());
    let epoch = s.epoch();
    let first = s.apply_from_cloud("t", Op::Update, update(1), epoch, &Shadow::default()).await.unwrap();
    assert_eq!(first.version, 1);
    // A local update came in between: the sync's writes as of version 1 are refused.
    assert_eq!(ask(&s, "t", Op::Update, json!({"state": {"reported": {"v": 2}}})).await["version"], 2);
    assert_eq!(s.apply_from_cloud("t", Op::Update, update(3), epoch, &first).await.unwrap_err().code, 409);
    assert_eq!(s.apply_from_cloud("t", Op::Delete, Bytes::new(), epoch, &first).await.unwrap_err().code, 409);
    assert_eq!(ask(&s, "t", Op::Get, Value::Null).await["state"]["reported"]["v"], 2, "the local update stays");
    // A local delete keeps the version: still a change the sync must not write over.
    let second = s.read("t").await.unwrap();
    assert_eq!(ask(&s, "t", Op::Delete, Value::Null).await["version"], 2);
    assert_eq!(s.apply_from_cloud("t", Op::Update, update(5), epoch, &second).await.unwrap_err().code, 409);
    assert_eq!(ask(&s, "t", Op::Get, Value::Null).await["code"], 404, "the local delete stays");
    // A reset since the round began: refused, nothing comes back.
    s.clear().await.unwrap();
    let gone = s.apply_from_cloud("t", Op::Update, update(4), epoch, &Shadow::default()).await.unwrap_err();
    assert_eq!(gone.code, RESET_DURING_ROUND);
    s.set_base("t", Some(json!({"reported": {"v": 4}})), epoch).await.unwrap();
    assert!(s.shared.store.scan_prefix(Cf::Shadows, b"").unwrap().is_empty(), "nothing written after the reset");
    assert_eq!(s.apply_from_cloud("t", Op::Delete, Bytes::new(), s.epoch(), &Shadow::default()).await.unwrap_err().code, 404);
}

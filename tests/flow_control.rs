//! Flow control (docs/mqtt.md, "Flow control"): a burst to a subscriber that
//! is slower than its publishers is slowed, never thinned — at QoS 0 and 1,
//! 1→1, 1→N and N→1, every message arrives, in order per publisher. A
//! subscriber that stops reading is disconnected after the stall timeout,
//! and slows only the publishers that feed it.

use std::time::Duration;

use serde_json::json;

use crate::common::slow::{Pace, SlowSubscriber};
use crate::common::{eventually, Env, Opts, QoS, Root, DEADLINE};

/// Small device queues, so that every burst fills them many times over.
fn root(max_queued: usize, stall_s: u64) -> Root {
    Root::with_config(json!({ "ggcore": { "mqtt": {
        "host": "127.0.0.1", "port": 0, "maxQueuedMessages": max_queued, "stallTimeoutSeconds": stall_s } } }))
}

fn payload(publisher: usize, i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("{publisher}:{i}:").into_bytes();
    p.resize(size.max(p.len()), b'.');
    p
}

/// (publisher, sequence) of a payload made by [`payload`].
fn parse(p: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(p);
    let mut it = text.split(':');
    let a = it.next().and_then(|x| x.parse().ok()).expect("publisher");
    let b = it.next().and_then(|x| x.parse().ok()).expect("sequence");
    (a, b)
}

/// Asserts that `received` holds exactly `per_publisher` messages of each of
/// `publishers`, in order per publisher.
fn assert_complete_in_order(who: &str, received: &[(String, bytes::Bytes)], publishers: usize, per_publisher: usize) {
    let mut next = vec![0usize; publishers];
    for (_, p) in received {
        let (from, seq) = parse(p);
        assert_eq!(seq, next[from], "{who}: message {seq} of publisher {from} arrived where {} was expected", next[from]);
        next[from] += 1;
    }
    assert_eq!(next, vec![per_publisher; publishers], "{who}: messages received per publisher");
}

fn held_back(env: &Env) -> u64 {
    env.root.status()["router"]["heldBack"].as_u64().unwrap_or(0)
}

fn dropped(env: &Env) -> u64 {
    env.root.status()["router"]["dropped"].as_u64().unwrap_or(0)
}

/// Publishes `count` messages as fast as the client takes them.
async fn burst(dev: &mut crate::common::Device, publisher: usize, count: usize, size: usize, qos: QoS) {
    for i in 0..count {
        dev.publish_nowait(&format!("burst/{publisher}"), qos, false, payload(publisher, i, size)).await;
    }
    dev.wait_acked().await;
}

async fn one_to_one(qos: QoS, rounds: usize) {
    let env = Env::start_on(root(20, 30), &["pub", "sub"], &[("pub", "burst/#", "sub")]);
    let (count, size) = if qos == QoS::AtMostOnce { (6000, 1024) } else { (6000, 128) };
    for round in 0..rounds {
        let mut sub = SlowSubscriber::connect(env.core.port, env.creds("sub"), true).await;
        sub.subscribe("burst/#", qos as u8).await;
        let mut publisher = env.connect("pub").await;
        let held_before = held_back(&env);
        let (_, complete) = tokio::join!(burst(&mut publisher, 0, count, size, qos), sub.receive(count, Pace::SLOW));
        assert!(complete, "round {round}: only {} of {count} messages arrived", sub.received.len());
        assert_complete_in_order(&format!("round {round}"), &sub.received, 1, count);
        assert!(held_back(&env) > held_before, "round {round}: the burst never filled the subscriber's queue (the test proved nothing)");
        publisher.disconnect().await;
    }
    assert_eq!(dropped(&env), 0);
    env.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_qos0_burst_to_a_slower_subscriber_arrives_whole_and_in_order() {
    one_to_one(QoS::AtMostOnce, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_qos1_burst_to_a_slower_subscriber_arrives_whole_and_in_order() {
    one_to_one(QoS::AtLeastOnce, 3).await;
}

/// 1→N: one publisher, three subscribers of which one is slow: each gets
/// every message in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_to_several_subscribers_reaches_each_whole() {
    let env = Env::start_on(
        root(20, 30),
        &["pub", "s1", "s2", "s3"],
        &[("pub", "burst/#", "s1"), ("pub", "burst/#", "s2"), ("pub", "burst/#", "s3")],
    );
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let count = 4000;
        let mut subs = Vec::new();
        for s in ["s1", "s2", "s3"] {
            let mut sub = SlowSubscriber::connect(env.core.port, env.creds(s), true).await;
            sub.subscribe("burst/#", qos as u8).await;
            subs.push(sub);
        }
        let mut publisher = env.connect("pub").await;
        let [a, b, c] = &mut subs[..] else { unreachable!() };
        let (_, ra, rb, rc) = tokio::join!(
            burst(&mut publisher, 0, count, 256, qos),
            a.receive(count, Pace::SLOW),
            b.receive(count, Pace::FAST),
            c.receive(count, Pace { chunk: 4096, pause: Duration::from_millis(1) }),
        );
        for (sub, ok) in subs.iter().zip([ra, rb, rc]) {
            assert!(ok, "{qos:?}: {} got only {} of {count}", sub.thing, sub.received.len());
            assert_complete_in_order(&format!("{qos:?} {}", sub.thing), &sub.received, 1, count);
        }
        publisher.disconnect().await;
    }
    assert!(held_back(&env) > 0, "the bursts never filled a queue (the test proved nothing)");
    assert_eq!(dropped(&env), 0);
    env.stop();
}

/// N→1: four publishers to one slow subscriber: everything arrives, in
/// order per publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_from_several_publishers_to_one_slow_subscriber_arrive_whole() {
    let things = ["p0", "p1", "p2", "p3", "sub"];
    let routes: Vec<(&str, &str, &str)> = things[..4].iter().map(|p| (*p, "burst/#", "sub")).collect();
    let env = Env::start_on(root(20, 30), &things, &routes);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let per = 1500;
        let mut sub = SlowSubscriber::connect(env.core.port, env.creds("sub"), true).await;
        sub.subscribe("burst/#", qos as u8).await;
        let mut pubs = Vec::new();
        for p in &things[..4] {
            pubs.push(env.connect(p).await);
        }
        let [p0, p1, p2, p3] = &mut pubs[..] else { unreachable!() };
        let (_, _, _, _, ok) = tokio::join!(
            burst(p0, 0, per, 256, qos),
            burst(p1, 1, per, 256, qos),
            burst(p2, 2, per, 256, qos),
            burst(p3, 3, per, 256, qos),
            sub.receive(4 * per, Pace::SLOW),
        );
        assert!(ok, "{qos:?}: only {} of {} arrived", sub.received.len(), 4 * per);
        assert_complete_in_order(&format!("{qos:?}"), &sub.received, 4, per);
        for p in pubs {
            p.disconnect().await;
        }
    }
    assert!(held_back(&env) > 0, "the bursts never filled the queue (the test proved nothing)");
    assert_eq!(dropped(&env), 0);
    env.stop();
}

/// A device that publishes to itself cannot deadlock against its own full
/// queue: its acknowledgements are read while it is held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_publishing_to_itself_is_not_deadlocked_by_its_own_queue() {
    let env = Env::start_on(root(10, 30), &["echo"], &[("echo", "loop/#", "echo")]);
    let mut echo = env.connect("echo").await;
    echo.sub("loop/#", QoS::AtLeastOnce).await;
    let count = 3000;
    // Publishing and receiving share the device; rumqttc's event loop
    // interleaves them, as a device SDK does.
    let client = echo.client.clone();
    let receive = async {
        let mut got = Vec::new();
        while got.len() < count {
            got.push(echo.recv().await);
        }
        got
    };
    let send = async move {
        for i in 0..count {
            client.publish_bytes("loop/x", QoS::AtLeastOnce, false, payload(0, i, 64).into()).await.expect("publish request");
        }
    };
    let (_, got) = tokio::join!(send, receive);
    let got: Vec<(String, bytes::Bytes)> = got.into_iter().map(|p| (p.topic.clone(), p.payload.clone())).collect();
    assert_complete_in_order("echo", &got, 1, count);
    assert!(held_back(&env) > 0, "the queue never filled (the test proved nothing)");
    env.stop();
}

/// A subscriber that stops reading is disconnected after the stall timeout
/// (its persistent session kept, drops beyond its bound counted); while it is
/// stuck, another publisher's traffic to another subscriber flows; its own
/// publisher is released once it is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_subscriber_is_cut_after_the_stall_timeout_and_slows_no_one_else() {
    let env = Env::start_on(root(20, 8), &["p1", "stuck", "p2", "fine"], &[("p1", "a/#", "stuck"), ("p2", "b/#", "fine")]);
    let mut stuck = SlowSubscriber::connect(env.core.port, env.creds("stuck"), false).await;
    stuck.subscribe("a/#", 1).await;
    let mut fine = env.connect("fine").await;
    fine.sub("b/#", QoS::AtLeastOnce).await;
    let mut p1 = env.connect("p1").await;
    let mut p2 = env.connect("p2").await;

    // p1's burst fills the stuck device's queue (it reads nothing) and is held
    // back. (300 fit in rumqttc's in-flight window plus its request channel,
    // so handing them to the client does not wait for the core.)
    let total = 300;
    for i in 0..total {
        p1.publish_nowait("a/x", QoS::AtLeastOnce, false, payload(1, i, 128)).await;
    }
    eventually("p1 to be held back", DEADLINE, || (held_back(&env) > 0).then_some(())).await;

    // Meanwhile p2 → fine flows: every message arrives while stuck is still connected.
    for i in 0..200 {
        p2.publish_nowait("b/x", QoS::AtLeastOnce, false, payload(2, i, 128)).await;
    }
    p2.wait_acked().await;
    for i in 0..200 {
        let m = fine.recv().await;
        assert_eq!(parse(&m.payload), (2, i));
    }
    assert!(env.root.connected().contains(&"stuck".to_string()), "stuck was cut before fine got p2's messages: it slowed someone else");

    // After the stall timeout: stuck is cut (its session kept), p1 is released.
    env.core.wait_log(&["stuck", "made no progress while its queue was full"]).await;
    p1.wait_acked().await;
    let status = env.root.status();
    assert_eq!(status["broker"]["stalledDevices"], 1);
    let offline = status["devices"]["offline"].as_array().cloned().unwrap_or_default();
    let entry = offline.iter().find(|d| d["thing"] == "stuck").expect("stuck's persistent session is kept");
    let kept = entry["pending"].as_u64().unwrap() as usize;
    let lost = entry["dropped"].as_u64().unwrap() as usize;
    assert!(kept >= 20, "the session keeps its queue (kept {kept})");
    assert_eq!(kept + lost, total, "every message is either kept for the device or counted as dropped while it was offline");
    assert!(stuck.wait_closed(DEADLINE).await);

    // Reconnecting, the device gets what its session kept, in order.
    let mut again = SlowSubscriber::connect(env.core.port, env.creds("stuck"), false).await;
    assert!(again.receive(kept, Pace::FAST).await, "got {} of {kept} kept messages", again.received.len());
    let seqs: Vec<usize> = again.received.iter().map(|(_, p)| parse(p).1).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    env.stop();
}

/// A device that reconnects to its full session (taking over its own stuck
/// connection) and then acknowledges nothing is still cut after the stall
/// timeout, and the publisher its queue held back is released. (Found by the
/// mqtt_session fuzz target: the reconnect restarted nothing, so the device
/// was never cut and the publisher waited for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_that_reconnects_to_its_full_session_and_stalls_is_cut() {
    let env = Env::start_on(root(20, 8), &["p1", "stuck"], &[("p1", "a/#", "stuck")]);
    let mut stuck = SlowSubscriber::connect(env.core.port, env.creds("stuck"), false).await;
    stuck.subscribe("a/#", 1).await;
    let mut p1 = env.connect("p1").await;
    for i in 0..300 {
        p1.publish_nowait("a/x", QoS::AtLeastOnce, false, payload(1, i, 128)).await;
    }
    eventually("p1 to be held back", DEADLINE, || (held_back(&env) > 0).then_some(())).await;

    // The device comes back on a new connection (its full session is kept)
    // and acknowledges nothing there either.
    let mut again = SlowSubscriber::connect(env.core.port, env.creds("stuck"), false).await;
    assert!(stuck.wait_closed(DEADLINE).await, "the older connection is closed by the takeover");
    assert!(again.wait_closed(4 * DEADLINE).await, "the stalled device is cut");
    p1.wait_acked().await;
    assert!(env.root.status()["broker"]["stalledDevices"].as_u64() >= Some(1));
    env.stop();
}

/// An offline persistent session keeps QoS 1 messages up to its bound; the
/// rest is dropped, counted per device and shown in status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_persistent_session_drops_beyond_its_bound_and_counts() {
    let env = Env::start_on(root(20, 30), &["pub", "sleepy"], &[("pub", "n/#", "sleepy")]);
    let mut sleepy = env.connect_with("sleepy", Opts::persistent()).await;
    sleepy.sub("n/#", QoS::AtLeastOnce).await;
    sleepy.disconnect().await;
    let mut publisher = env.connect("pub").await;
    for i in 0..30 {
        publisher.publish_nowait("n/x", QoS::AtLeastOnce, false, payload(0, i, 16)).await;
    }
    publisher.wait_acked().await;
    let status = env.root.status();
    let entry =
        status["devices"]["offline"].as_array().and_then(|l| l.iter().find(|d| d["thing"] == "sleepy").cloned()).expect("offline session");
    assert_eq!((entry["pending"].as_u64(), entry["dropped"].as_u64()), (Some(20), Some(10)));
    assert_eq!(status["devices"]["droppedOffline"], 10);
    env.core.wait_log(&["device offline and its persistent session is full"]).await;
    let mut sleepy = env.connect_with("sleepy", Opts::persistent()).await;
    for i in 0..20 {
        assert_eq!(parse(&sleepy.recv().await.payload), (0, i));
    }
    sleepy.expect_silence().await;
    env.stop();
}

/// A function's burst of SDK publishes to a slower device: every publish
/// returns, every message arrives in order (the function is held back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_functions_burst_to_a_slower_device_arrives_whole_and_in_order() {
    use crate::common::functions::{function_arn, functions_root, with_driver, Driver};
    let root = functions_root(json!({ "ggcore": { "mqtt": { "maxQueuedMessages": 20 } } }));
    let env = Env::start_group(root, &["tester", "sink"], |g| with_driver(g, "tester").route(&function_arn("driver"), "fn/out", "sink"));
    let mut sink = SlowSubscriber::connect(env.core.port, env.creds("sink"), true).await;
    sink.subscribe("fn/out", 1).await;
    let mut driver = Driver::new(env.connect("tester").await).await;
    let n = 3000;
    let (reply, complete) = tokio::join!(
        driver.call(json!({ "op": "publishes", "n": n, "topic": "fn/out", "payload": { "base": 0 } })),
        sink.receive(n, Pace::SLOW),
    );
    assert_eq!((reply["ok"].as_u64(), reply["failed"].as_u64()), (Some(n as u64), Some(0)), "{reply}");
    assert!(complete, "only {} of {n} arrived", sink.received.len());
    for (i, (_, p)) in sink.received.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(p).expect("JSON payload");
        assert_eq!(v["i"], i, "message {i} out of order");
    }
    assert!(held_back(&env) > 0, "the burst never filled the device's queue (the test proved nothing)");
    assert_eq!(dropped(&env), 0);
    env.stop();
}

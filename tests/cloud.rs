//! The cloud link and the store-and-forward queue (docs/queue.md), end to end
//! against Mosquitto as the cloud (TLS, client certificates, persistence on):
//! devices and Python functions publish to `cloud` and the cloud's messages
//! reach devices and functions through the table; cloud outages, SIGTERM and
//! SIGKILL of the core, a full queue under each policy, a broker that refuses
//! the core's certificate and a full state directory lose nothing the core
//! acknowledged. Each test names the guarantee it checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::cloud::{check_source, link_status, num, number, numbered, numbers, queue_status, Cloud, Pki, Publisher, Rng};
use crate::common::functions::{function_arn, with_driver, Driver, Function};
use crate::common::group::CORE_THING;
use crate::common::mqtt::text;
use crate::common::{eventually, Device, Env, Group, QoS, Root, DEADLINE, SETTLE};

/// Waits until the core's cloud link is connected; returns the status part.
async fn wait_connected(root: &Root) -> Value {
    eventually("the cloud link to connect", DEADLINE, || {
        let c = link_status(root);
        (c["state"] == "connected").then_some(c)
    })
    .await
}

/// Waits until the queue is empty (everything acknowledged by the cloud).
async fn wait_drained(root: &Root) -> Value {
    eventually("the queue to drain", DEADLINE * 2, || {
        let q = queue_status(root);
        (num(&q, "messages") == 0 && num(&q, "bytes") == 0).then_some(q)
    })
    .await
}

/// Sends `probe` messages from the cloud on `topic` until `dev` receives one
/// (the core's upstream subscription is in place), then a marker, and reads
/// up to it: afterwards nothing of the probing is left in flight.
async fn wait_route_from_cloud(cloud: &Cloud, dev: &mut Device, topic: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        cloud.publish(topic, "probe");
        if let Some(p) = dev.recv_within(Duration::from_millis(700)).await {
            assert_eq!((p.topic.as_str(), text(&p).as_str()), (topic, "probe"), "unexpected message while probing");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing published by the cloud on {topic} reached {} within {DEADLINE:?}",
            dev.thing
        );
    }
    cloud.publish(topic, "marker");
    loop {
        let p = dev.recv().await;
        assert_eq!(p.topic, topic, "unexpected message while probing");
        if text(&p) == "marker" {
            break;
        }
        assert_eq!(text(&p), "probe");
    }
}

// ---------------------------------------------------------------------------
// 1. Device → cloud, function → cloud.

/// Guarantee: a message routed to `cloud` reaches the cloud broker with its
/// topic and payload unchanged (binary, empty and 64 KiB payloads included),
/// from a device (QoS 1 and 0) and from a Python function's
/// `iot-data.publish`, in order per source; a topic without a `cloud`
/// subscription is not forwarded; the queue is empty afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_and_function_messages_reach_the_cloud_intact() {
    let cloud = Cloud::start().await;
    let driver_arn = function_arn("driver");
    let env = Env::start_group(cloud.root(json!({})), &["sensor", "tester"], |g| {
        with_driver(g, "tester").route("sensor", "up/sensor/#", "cloud").route("sensor", "local/#", "tester").route(
            &driver_arn,
            "up/fn/#",
            "cloud",
        )
    });
    let link = wait_connected(&env.root).await;
    assert_eq!(link["clientId"], CORE_THING, "{link}");
    assert_eq!(link["host"], "localhost", "{link}");
    assert_eq!(link["port"], cloud.broker.port, "{link}");

    let mut big = vec![0u8; 64 * 1024];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let sent: Vec<(&str, Vec<u8>, QoS)> = vec![
        ("up/sensor/text", b"hello cloud".to_vec(), QoS::AtLeastOnce),
        ("up/sensor/bin", vec![0, 1, 2, 0xff, 0xfe, 0x80, 0], QoS::AtLeastOnce),
        ("up/sensor/empty", Vec::new(), QoS::AtLeastOnce),
        ("up/sensor/a/b/c", big.clone(), QoS::AtLeastOnce),
        ("up/sensor/qos0", b"at most once locally".to_vec(), QoS::AtMostOnce),
        ("up/sensor/text", b"second on the same topic".to_vec(), QoS::AtLeastOnce),
    ];
    let mut sensor = env.connect("sensor").await;
    for (topic, payload, qos) in &sent {
        sensor.publish(topic, *qos, payload.clone()).await;
    }
    // Not routed to the cloud: must not arrive (the barrier after it does).
    sensor.publish("local/not-for-the-cloud", QoS::AtLeastOnce, "local only").await;
    sensor.publish("up/sensor/barrier", QoS::AtLeastOnce, "barrier").await;

    let mut driver = Driver::new(env.connect("tester").await).await;
    let r = driver.call(json!({"op": "publish", "topic": "up/fn/text", "payload": "from a function"})).await;
    assert!(r.get("exception").is_none(), "the SDK publish raised: {r}");
    let r = driver.call(json!({"op": "publish", "topic": "up/fn/big", "size": 5000})).await;
    assert!(r.get("exception").is_none(), "the SDK publish raised: {r}");

    cloud.observer.wait_for("up/sensor/barrier", b"barrier").await;
    cloud.observer.wait_for("up/fn/big", &[b'p'; 5000]).await;
    let seen = cloud.observer.messages();
    let mut from_sensor: Vec<(String, Vec<u8>)> = Vec::new();
    for (t, p) in &seen {
        if t.starts_with("up/sensor/") && t != "up/sensor/barrier" && !from_sensor.iter().any(|(t2, p2)| t2 == t && p2 == p) {
            from_sensor.push((t.clone(), p.to_vec()));
        }
    }
    let want: Vec<(String, Vec<u8>)> = sent.iter().map(|(t, p, _)| (t.to_string(), p.clone())).collect();
    assert_eq!(
        from_sensor.len(),
        want.len(),
        "messages of the sensor at the cloud: {:?}",
        from_sensor.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    for (got, want) in from_sensor.iter().zip(&want) {
        assert_eq!(got.0, want.0, "topic (in order)");
        assert!(got.1 == want.1, "payload on {} changed: {} bytes arrived, {} sent", got.0, got.1.len(), want.1.len());
    }
    assert!(seen.iter().any(|(t, p)| t == "up/fn/text" && p.as_ref() == b"from a function"), "the function's publish did not arrive");
    assert!(!seen.iter().any(|(t, _)| t.starts_with("local/")), "a message without a cloud subscription reached the cloud");

    let q = wait_drained(&env.root).await;
    assert!(num(&q, "appended") >= 9, "{q}");
    assert_eq!(num(&q, "dropped"), 0, "{q}");
    let link = link_status(&env.root);
    assert!(num(&link, "acked") >= 9, "{link}");
    env.stop();
}

// ---------------------------------------------------------------------------
// 2. Cloud → device, cloud → function; a redeploy changes the filters.

/// Publishes what it receives (bytes) on `fnout/<subject>`.
const CLOUD_RELAY_PY: &str = r#"
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='fnout/' + context.client_context.custom['subject'], payload=event)
"#;

fn relay() -> Function {
    Function::python("cloudrelay", CLOUD_RELAY_PY).binary()
}

/// Guarantee: a message the cloud publishes on a topic of a `Source: cloud`
/// subscription reaches its target device and invokes its target function
/// (which republishes it to the device), once, payload intact; a topic with
/// no such subscription is not delivered. A redeploy that replaces a cloud
/// filter takes effect live: the new one delivers, the removed one no longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_messages_reach_devices_and_functions_by_the_table() {
    let cloud = Cloud::start().await;
    let relay_arn = relay().arn();
    let env = Env::start_group(cloud.root(json!({})), &["display"], |g| {
        g.function(relay())
            .route("cloud", "down/dev/#", "display")
            .route("cloud", "down/fn/#", &relay_arn)
            .route(&relay_arn, "fnout/#", "display")
    });
    wait_connected(&env.root).await;
    let mut display = env.connect("display").await;
    display.sub("down/dev/#", QoS::AtLeastOnce).await;
    display.sub("fnout/#", QoS::AtLeastOnce).await;
    wait_route_from_cloud(&cloud, &mut display, "down/dev/probe").await;

    cloud.publish("down/dev/a/b", "to the device");
    display.expect("down/dev/a/b", "to the device").await;
    cloud.publish("down/fn/x", "to the function");
    display.expect("fnout/down/fn/x", "to the function").await;
    // No subscription from the cloud on these: not delivered; the barrier
    // after them (same source, order kept) is.
    cloud.publish("nosub/x", "nobody");
    cloud.publish("down/other", "nobody either");
    cloud.publish("down/dev/barrier", "barrier");
    display.expect("down/dev/barrier", "barrier").await;
    display.expect_silence().await;
    let link = link_status(&env.root);
    let subs: BTreeSet<String> = link["subscriptions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert_eq!(subs, BTreeSet::from(["down/dev/#".to_string(), "down/fn/#".to_string()]), "{link}");
    assert!(num(&link, "received") >= 4, "{link}");

    // Redeploy: the device's cloud filter becomes down2/dev/#.
    let g2 = Group::new("e2e").device(env.creds("display")).function(relay()).route("cloud", "down2/dev/#", "display").route(
        "cloud",
        "down/fn/#",
        &relay_arn,
    );
    let g2 = g2.route(&relay_arn, "fnout/#", "display");
    let mut env = env;
    env.redeploy(g2);
    display.sub("down2/dev/#", QoS::AtLeastOnce).await;
    wait_route_from_cloud(&cloud, &mut display, "down2/dev/probe").await;
    eventually("the upstream subscriptions to follow the redeploy", DEADLINE, || {
        let l = link_status(&env.root);
        let subs: Vec<&str> = l["subscriptions"].as_array()?.iter().filter_map(Value::as_str).collect();
        (subs.len() == 2 && subs.contains(&"down2/dev/#") && subs.contains(&"down/fn/#")).then_some(())
    })
    .await;
    cloud.publish("down/dev/old", "removed filter");
    cloud.publish("down2/dev/new", "new filter");
    display.expect("down2/dev/new", "new filter").await;
    cloud.publish("down/fn/again", "function still routed");
    display.expect("fnout/down/fn/again", "function still routed").await;
    display.expect_silence().await;
    env.stop();
}

// ---------------------------------------------------------------------------
// 3. Outage + SIGKILL.

/// Publishes `fn-N` on `up/fn` for N in start..start+count; appends each N
/// whose publish returned to `$RECORD`; reports on `fn/done`.
const NUMBERED_PY: &str = r#"
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    start, count = event['start'], event['count']
    done, error = 0, None
    for n in range(start, start + count):
        try:
            iot.publish(topic='up/fn', payload='fn-%d' % n)
        except Exception as e:
            error = str(e)
            break
        with open(os.environ['RECORD'], 'a') as f:
            f.write('%d\n' % n)
        done += 1
    iot.publish(topic='fn/done', payload=json.dumps({'start': start, 'done': done, 'error': error}))
"#;

/// The numbers the function recorded as returned (complete lines only).
fn recorded(file: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Publishes `PREFIX-N` on `topic` with increasing N (from `next`), a few
/// ms apart, until `stop` or until the connection ends.
async fn stream(p: Arc<Publisher>, topic: &'static str, prefix: &'static str, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if !p.publish(topic, format!("{prefix}-{n}")).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
}

/// Asks the function for batches of 5 until `stop` or until the core is gone
/// (no answer). Numbers are reserved per request even when not all are
/// published.
async fn drive_function(mut tester: Device, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let start = next.fetch_add(5, Ordering::SeqCst);
        tester.publish_nowait("fn/go", QoS::AtLeastOnce, false, json!({"start": start, "count": 5}).to_string()).await;
        loop {
            match tester.recv_within(DEADLINE).await {
                None => return,
                Some(p) if p.topic == "fn/done" => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if v["start"] == start {
                        break;
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// One run: devices d1, d2 and a function publish to the cloud; the cloud
/// goes down at a random moment; the core is SIGKILLed at a random moment
/// of the outage, restarted on the same root, more is published, the cloud
/// comes back.
async fn outage_and_sigkill(run: u32, fsync: Option<&str>) {
    let mut rng = Rng::seeded(&format!("outage and SIGKILL, run {run} (fsync {})", fsync.unwrap_or("default: batch")));
    let before_outage = Duration::from_millis(rng.range(300, 1500));
    let kill_after = Duration::from_millis(rng.range(100, 2500));
    let after_restart = Duration::from_millis(rng.range(200, 1500));
    println!("run {run}: cloud down after {before_outage:?}, SIGKILL {kill_after:?} into the outage, {after_restart:?} of publishing after the restart");

    let mut cloud = Cloud::start().await;
    let record = cloud.dir.join("fn-returned.txt");
    let f = Function::python("numbered", NUMBERED_PY).pinned().timeout(60).run_as(0, 0).env("RECORD", &record.display().to_string());
    let f_arn = f.arn();
    let spooler = fsync.map(|f| json!({"fsync": f})).unwrap_or_else(|| json!({}));
    let mut env = Env::start_group(cloud.root(spooler), &["d1", "d2", "tester"], |g| {
        g.function(f)
            .route("d1", "up/d1", "cloud")
            .route("d2", "up/d2", "cloud")
            .route("tester", "fn/go", &f_arn)
            .route(&f_arn, "up/fn", "cloud")
            .route(&f_arn, "fn/done", "tester")
    });
    wait_connected(&env.root).await;

    let next = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let mut accepted: [Vec<u64>; 2] = [Vec::new(), Vec::new()];

    // The function runs (its first publish, fn-0, is done) before the clock starts.
    let mut tester = env.connect("tester").await;
    tester.sub("fn/done", QoS::AtLeastOnce).await;
    tester.publish("fn/go", QoS::AtLeastOnce, json!({"start": 0, "count": 1}).to_string()).await;
    let done = tester.recv().await;
    assert_eq!(serde_json::from_slice::<Value>(&done.payload).unwrap()["done"], 1, "{}", text(&done));
    let next_fn = Arc::new(AtomicU64::new(1));

    // Phase 1: publishing; the cloud goes down; the core is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let p1 = Arc::new(Publisher::connect(env.core.port, env.creds("d1"), 10).await);
    let p2 = Arc::new(Publisher::connect(env.core.port, env.creds("d2"), 10).await);
    let tasks = vec![
        tokio::spawn(stream(p1.clone(), "up/d1", "d1", next[0].clone(), stop.clone())),
        tokio::spawn(stream(p2.clone(), "up/d2", "d2", next[1].clone(), stop.clone())),
        tokio::spawn(drive_function(tester, next_fn.clone(), stop.clone())),
    ];
    tokio::time::sleep(before_outage).await;
    cloud.down().await;
    let in_outage = Instant::now();
    tokio::time::sleep(kill_after).await;
    let queued_at_kill = queue_status(&env.root);
    let status = env.core.stop_with("-KILL");
    assert_eq!(status.code(), None, "ggcore was meant to die of SIGKILL: {status}");
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = tokio::time::timeout(DEADLINE * 2, t).await.expect("a publishing task did not end after the kill");
    }
    for (i, p) in [&p1, &p2].iter().enumerate() {
        accepted[i].extend(numbers(&format!("d{}", i + 1), &p.acked()));
    }
    println!(
        "run {run}: killed {:?} into the outage; acknowledged so far d1 {} d2 {} fn {}; queue at the kill: {}",
        in_outage.elapsed(),
        accepted[0].len(),
        accepted[1].len(),
        recorded(&record).len(),
        queued_at_kill
    );
    drop((p1, p2));

    // Phase 2: restarted on the same root, still in the outage.
    env.core = env.root.start();
    let q = queue_status(&env.root);
    println!("run {run}: after the restart: {q}");
    assert_eq!(q["fsync"], fsync.unwrap_or("batch"), "{q}");
    let stop = Arc::new(AtomicBool::new(false));
    let p1 = Arc::new(Publisher::connect(env.core.port, env.creds("d1"), 10).await);
    let p2 = Arc::new(Publisher::connect(env.core.port, env.creds("d2"), 10).await);
    let mut tester = env.connect("tester").await;
    tester.sub("fn/done", QoS::AtLeastOnce).await;
    let tasks = vec![
        tokio::spawn(stream(p1.clone(), "up/d1", "d1", next[0].clone(), stop.clone())),
        tokio::spawn(stream(p2.clone(), "up/d2", "d2", next[1].clone(), stop.clone())),
        tokio::spawn(drive_function(tester, next_fn.clone(), stop.clone())),
    ];
    tokio::time::sleep(after_restart).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(DEADLINE * 2, t).await.expect("a publishing task did not end").expect("publishing task");
    }
    for (i, p) in [&p1, &p2].iter().enumerate() {
        p.wait_all_acked(DEADLINE).await;
        accepted[i].extend(numbers(&format!("d{}", i + 1), &p.acked()));
    }
    let fn_accepted = recorded(&record);
    assert!(!accepted[0].is_empty() && !accepted[1].is_empty(), "the devices published nothing (the run proved nothing)");
    assert!(!fn_accepted.is_empty(), "the function published nothing (the run proved nothing)");

    // Phase 3: the cloud comes back.
    cloud.up().await;
    let sources: [(&str, &str, &Vec<u64>); 3] =
        [("up/d1", "d1", &accepted[0]), ("up/d2", "d2", &accepted[1]), ("up/fn", "fn", &fn_accepted)];
    let want: Vec<(String, String, BTreeSet<u64>)> =
        sources.iter().map(|(t, p, a)| (t.to_string(), p.to_string(), a.iter().copied().collect())).collect();
    let observer = &cloud.observer;
    // Until everything accepted arrived; or, when something is missing,
    // until the queue has been empty for a while (nothing more will come).
    let waited = tokio::time::timeout(DEADLINE * 3, async {
        let mut empty_since: Option<Instant> = None;
        loop {
            let done = want.iter().all(|(topic, prefix, acc)| {
                let got: BTreeSet<u64> = numbers(prefix, &observer.payloads(topic)).into_iter().collect();
                acc.is_subset(&got)
            });
            if done {
                return true;
            }
            if num(&queue_status(&env.root), "messages") == 0 {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() > SETTLE * 2 {
                    return false;
                }
            } else {
                empty_since = None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if waited != Ok(true) {
        println!("run {run}: not everything arrived (queue empty or {:?} passed); status: {}", DEADLINE * 3, env.root.status());
    }
    let mut report = Vec::new();
    for (topic, prefix, acc) in sources {
        let arrived = numbers(prefix, &observer.payloads(topic));
        let (distinct, dups) = check_source(&format!("run {run} {prefix}"), &arrived, acc);
        report.push(format!(
            "{prefix}: {} accepted, {distinct} arrived ({} not acknowledged), {dups} duplicates",
            acc.len(),
            distinct - acc.len()
        ));
    }
    let q = wait_drained(&env.root).await;
    let link = link_status(&env.root);
    println!(
        "run {run}: {}; queue replayed {} dropped {}; link resent {} connects {}; observer sessions lost {}",
        report.join("; "),
        num(&q, "replayed"),
        num(&q, "dropped"),
        num(&link, "resent"),
        num(&link, "connects"),
        cloud.observer.sessions_lost()
    );
    assert_eq!(num(&q, "dropped"), 0, "{q}");
    assert_eq!(cloud.observer.sessions_lost(), 0, "the cloud broker lost the observer's session: the run proves nothing");
    env.stop();
}

/// Guarantee: every device message the core acknowledged (PUBACK) and every
/// SDK publish that returned reaches the cloud at least once, first
/// arrivals in order per source, across a cloud outage and a SIGKILL of the
/// core during it (fsync batch, the default). Random timings; the seed is
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_and_sigkill_lose_nothing_run_1() {
    outage_and_sigkill(1, None).await;
}

/// The same guarantee, another random run (fsync batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_and_sigkill_lose_nothing_run_2() {
    outage_and_sigkill(2, Some("batch")).await;
}

/// The same guarantee with fsync always.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_and_sigkill_lose_nothing_fsync_always() {
    outage_and_sigkill(3, Some("always")).await;
}

// ---------------------------------------------------------------------------
// 4. Clean restart during an outage.

/// Guarantee: SIGTERM during a cloud outage exits 0 with the queue made
/// durable; after the restart the queue resumes where it was
/// (`queue.replayed` = what was queued) and everything arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_restart_during_an_outage_keeps_the_queue() {
    let mut cloud = Cloud::start().await;
    let mut env = Env::start_on(cloud.root(json!({})), &["dev"], &[("dev", "up/dev", "cloud")]);
    wait_connected(&env.root).await;
    let mut dev = env.connect("dev").await;
    for n in 0..50 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, format!("dev-{n}")).await;
    }
    dev.wait_acked().await;
    cloud.observer.wait_for("up/dev", b"dev-49").await;
    wait_drained(&env.root).await;

    cloud.down().await;
    for n in 50..150 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, format!("dev-{n}")).await;
    }
    dev.wait_acked().await;
    let q = queue_status(&env.root);
    assert_eq!(num(&q, "messages"), 100, "queued during the outage: {q}");
    drop(dev);
    env.core.stop_ok();

    env.core = env.root.start();
    let q = queue_status(&env.root);
    assert_eq!(num(&q, "replayed"), 100, "replayed after the restart: {q}");
    assert_eq!(num(&q, "messages"), 100, "{q}");
    let mut dev = env.connect("dev").await;
    for n in 150..160 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, format!("dev-{n}")).await;
    }
    dev.wait_acked().await;
    cloud.up().await;
    let (_, dups) = cloud.observer.expect_all("up/dev", "dev", 160, DEADLINE * 2).await;
    println!("duplicates at the cloud: {dups}");
    wait_drained(&env.root).await;
    env.stop();
}

/// Guarantee: a state directory that cannot be written stops the core at
/// start with a clear error and changes nothing: once it is writable again
/// the queue is there, whole, and reaches the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_state_directory_stops_the_start_and_keeps_the_queue() {
    let mut cloud = Cloud::start().await;
    let mut env = Env::start_on(cloud.root(json!({})), &["dev"], &[("dev", "up/dev", "cloud")]);
    wait_connected(&env.root).await;
    cloud.down().await;
    let mut dev = env.connect("dev").await;
    for n in 0..40 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, format!("dev-{n}")).await;
    }
    dev.wait_acked().await;
    drop(dev);
    env.core.stop_ok();

    let state = env.root.path.join("ggc/var/state");
    let Some(ro) = ReadOnly::bind(&state).map_err(|why| println!("SKIPPED: read-only state directory: {why}")).ok() else {
        return;
    };
    let mut child = crate::common::process::ggcore_command()
        .args(["run", "--root"])
        .arg(&env.root.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ggcore");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ggcore") {
            break status;
        }
        if began.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("ggcore kept running on a read-only state directory");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read stderr");
    println!("ggcore on a read-only state directory: {status}; {}", err.lines().last().unwrap_or(""));
    assert!(!status.success(), "ggcore started on a read-only state directory:\n{err}");
    assert!(err.contains("Read-only file system"), "the error does not say why:\n{err}");
    assert!(err.contains("ggc/var/state"), "the error does not say where:\n{err}");
    drop(ro);

    env.core = env.root.start();
    let q = queue_status(&env.root);
    assert_eq!(num(&q, "replayed"), 40, "the queue after the failed start: {q}");
    cloud.up().await;
    cloud.observer.expect_all("up/dev", "dev", 40, DEADLINE * 2).await;
    wait_drained(&env.root).await;
    env.stop();
}

/// Runs `mount ARGS`; `Err` with the reason when this machine does not allow it.
fn mount(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("mount").args(args).output().map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("mount {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A directory bind-mounted read-only onto itself while it lives.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn bind(dir: &Path) -> Result<ReadOnly, String> {
        let d = dir.to_str().ok_or("the directory is not UTF-8")?;
        mount(&["--bind", d, d])?;
        let guard = ReadOnly(dir.to_path_buf());
        mount(&["-o", "remount,ro,bind", d])?;
        Ok(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------
// 5. Queue full.

/// 1,000-byte payloads on a 7-byte topic: 1,007 bytes each in the queue.
const PAYLOAD: usize = 1000;
const SMALL_QUEUE: u64 = 262_144;

/// Guarantee: with `dropOldest` (the default) a full queue evicts the
/// oldest messages: after the outage the cloud gets exactly the newest ones,
/// and `queue.dropped` equals the number missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_full_drop_oldest_keeps_the_newest_and_counts_the_dropped() {
    let mut cloud = Cloud::start().await;
    let env = Env::start_on(cloud.root(json!({"maxSizeBytes": SMALL_QUEUE})), &["dev"], &[("dev", "up/full", "cloud")]);
    wait_connected(&env.root).await;
    cloud.down().await;
    let total = 400u64;
    let mut dev = env.connect("dev").await;
    for n in 0..total {
        dev.publish_nowait("up/full", QoS::AtLeastOnce, false, numbered("full", n, PAYLOAD)).await;
    }
    dev.wait_acked().await;
    let q = queue_status(&env.root);
    let dropped = num(&q, "dropped");
    assert!(dropped > 0, "nothing was dropped: the queue never filled (the test proved nothing): {q}");
    assert!(num(&q, "bytes") <= SMALL_QUEUE, "the queue holds more than maxSizeBytes: {q}");
    assert_eq!(num(&q, "messages") + dropped, total, "{q}");

    cloud.up().await;
    wait_drained(&env.root).await;
    let want: BTreeSet<u64> = (dropped..total).collect();
    cloud
        .observer
        .wait_until("the newest messages", DEADLINE, |m| {
            let got: BTreeSet<u64> = m.iter().filter(|(t, _)| t == "up/full").filter_map(|(_, p)| number("full", p)).collect();
            got.is_superset(&want)
        })
        .await;
    dev.publish("up/full", QoS::AtLeastOnce, numbered("full", total, PAYLOAD)).await;
    cloud.observer.wait_for("up/full", &numbered("full", total, PAYLOAD)).await;
    let arrived = numbers("full", &cloud.observer.payloads("up/full"));
    let got: BTreeSet<u64> = arrived.iter().copied().filter(|n| *n < total).collect();
    assert_eq!(got, want, "the cloud must get exactly the newest {} of {total} (dropped {dropped})", total - dropped);
    check_source("full", &arrived, &want.iter().copied().collect::<Vec<_>>());
    assert_eq!(num(&queue_status(&env.root), "dropped"), dropped, "drops after the outage");
    env.stop();
}

/// Guarantee: an SDK publish with `queueFullPolicy='AllOrException'` into a
/// full queue raises in the function and evicts nothing (counted as
/// `refused`); a `BestEffort` one returns (evicting the oldest); the cloud
/// gets the BestEffort messages and never the refused ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_full_all_or_exception_raises_and_evicts_nothing() {
    let mut cloud = Cloud::start().await;
    let driver_arn = function_arn("driver");
    let env = Env::start_group(cloud.root(json!({"maxSizeBytes": SMALL_QUEUE})), &["dev", "tester"], |g| {
        with_driver(g, "tester").route("dev", "up/full", "cloud").route(&driver_arn, "up/fn", "cloud")
    });
    wait_connected(&env.root).await;
    cloud.down().await;
    let mut dev = env.connect("dev").await;
    for n in 0..300 {
        dev.publish_nowait("up/full", QoS::AtLeastOnce, false, numbered("full", n, PAYLOAD)).await;
    }
    dev.wait_acked().await;
    let before = queue_status(&env.root);
    assert!(num(&before, "dropped") > 0, "the queue is not full: {before}");

    // Bigger than any gap 1,007-byte messages leave.
    let pad = "x".repeat(2000);
    let mut driver = Driver::new(env.connect("tester").await).await;
    let r = driver
        .call(json!({"op": "publishes", "n": 5, "topic": "up/fn", "queueFullPolicy": "AllOrException", "payload": {"pad": pad, "base": 0}}))
        .await;
    assert_eq!((r["ok"].as_u64(), r["failed"].as_u64()), (Some(0), Some(5)), "AllOrException into a full queue must raise: {r}");
    let after = queue_status(&env.root);
    assert_eq!(num(&after, "dropped"), num(&before, "dropped"), "a refused publish evicted messages: {before} -> {after}");
    assert!(num(&after, "refused") >= num(&before, "refused") + 5, "refusals not counted: {before} -> {after}");
    assert_eq!(num(&after, "messages"), num(&before, "messages"), "{before} -> {after}");

    let r = driver
        .call(json!({"op": "publishes", "n": 5, "topic": "up/fn", "queueFullPolicy": "BestEffort", "payload": {"pad": pad, "base": 100}}))
        .await;
    assert_eq!((r["ok"].as_u64(), r["failed"].as_u64()), (Some(5), Some(0)), "BestEffort must return: {r}");
    let after2 = queue_status(&env.root);
    assert!(num(&after2, "dropped") > num(&after, "dropped"), "BestEffort into a full queue evicts the oldest: {after} -> {after2}");

    cloud.up().await;
    wait_drained(&env.root).await;
    cloud.observer.wait_until("the 5 BestEffort publishes", DEADLINE, |m| m.iter().filter(|(t, _)| t == "up/fn").count() >= 5).await;
    dev.publish("up/full", QoS::AtLeastOnce, "barrier").await;
    cloud.observer.wait_for("up/full", b"barrier").await;
    let mut is: Vec<u64> = cloud
        .observer
        .payloads("up/fn")
        .iter()
        .map(|p| serde_json::from_slice::<Value>(p).expect("JSON payload")["i"].as_u64().expect("i"))
        .collect();
    is.dedup();
    assert_eq!(is, vec![100, 101, 102, 103, 104], "the cloud must get the BestEffort messages only, in order");
    env.stop();
}

/// Guarantee: with `whenFull: backpressure` a full queue holds the device's
/// QoS 1 publishes (no PUBACK) instead of dropping anything; when the cloud
/// returns, everything arrives in order and `queue.dropped` stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_full_backpressure_holds_the_publisher_and_loses_nothing() {
    let mut cloud = Cloud::start().await;
    let env = Env::start_on(
        cloud.root(json!({"maxSizeBytes": SMALL_QUEUE, "whenFull": "backpressure"})),
        &["dev"],
        &[("dev", "up/full", "cloud")],
    );
    wait_connected(&env.root).await;
    cloud.down().await;
    let total = 400u64;
    let p = Arc::new(Publisher::connect(env.core.port, env.creds("dev"), 20).await);
    let sender = {
        let p = p.clone();
        tokio::spawn(async move {
            for n in 0..total {
                assert!(p.publish("up/full", numbered("full", n, PAYLOAD)).await, "the connection ended at {n}");
            }
        })
    };
    // The PUBACKs stop coming: the same count over a settle period.
    let held = eventually("the publisher to be held", DEADLINE, || {
        let a = p.acked_count();
        std::thread::sleep(SETTLE);
        (a > 0 && p.acked_count() == a).then_some(a)
    })
    .await;
    let q = queue_status(&env.root);
    println!("held after {held} acknowledged of {} handed over; queue {q}", p.sent());
    assert!((held as u64) < total, "every publish was acknowledged while the cloud was down: nothing held");
    assert!(p.sent() > held, "the publisher had nothing unacknowledged: it was not held");
    assert!(p.closed().is_none(), "the core closed the held publisher: {:?}", p.closed());
    assert_eq!(num(&q, "dropped"), 0, "{q}");
    assert!(num(&q, "bytes") <= SMALL_QUEUE, "{q}");

    cloud.up().await;
    tokio::time::timeout(DEADLINE * 2, sender).await.expect("the publisher stayed held after the cloud returned").expect("sender");
    p.wait_all_acked(DEADLINE * 2).await;
    cloud.observer.expect_all("up/full", "full", total, DEADLINE * 2).await;
    let q = wait_drained(&env.root).await;
    assert_eq!(num(&q, "dropped"), 0, "{q}");
    env.stop();
}

// ---------------------------------------------------------------------------
// 6. A broker that refuses the core's certificate.

/// Guarantee: when the cloud refuses the core's certificate the link says
/// so (`waiting`/`connecting` with a `lastError` that names TLS or the
/// certificate), retries with capped back-off (a bounded number of attempts,
/// not a hot loop), and loses nothing queued: once the broker trusts the
/// certificate's CA, everything arrives in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_certificate_is_reported_retried_gently_and_loses_nothing() {
    let mut cloud = Cloud::start().await;
    let rogue = Pki::new(&cloud.dir.join("rogue"), "rogue-ca");
    let rogue_id = rogue.client("core-rogue", CORE_THING);
    let mut config = cloud.core_config(json!({}));
    config["coreThing"] = cloud.core_thing_with(&rogue_id, 2);
    let env = Env::start_on(Root::with_config(config), &["dev"], &[("dev", "up/dev", "cloud")]);
    let mut dev = env.connect("dev").await;
    for n in 0..20 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, format!("dev-{n}")).await;
    }
    dev.wait_acked().await;

    let link = eventually("the link to report the refusal", DEADLINE, || {
        let l = link_status(&env.root);
        let waiting = l["state"] == "waiting" || l["state"] == "connecting";
        (waiting && l["lastError"].as_str().is_some_and(|e| !e.is_empty()) && num(&l, "reconnects") >= 1).then_some(l)
    })
    .await;
    let error = link["lastError"].as_str().unwrap().to_lowercase();
    println!("lastError with a refused certificate: {}", link["lastError"]);
    assert!(
        ["tls", "certificate", "alert", "handshake"].iter().any(|w| error.contains(w)),
        "lastError does not say the TLS handshake / certificate was refused: {link}"
    );
    assert_eq!(num(&link, "connects"), 0, "{link}");

    // Spaced attempts: over a few seconds with a 2 s cap, a handful (the
    // bound allows for jitter and slow handshakes), never hundreds.
    let (r0, t0) = (num(&link_status(&env.root), "reconnects"), Instant::now());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (r1, secs) = (num(&link_status(&env.root), "reconnects"), t0.elapsed().as_secs_f64());
    let bound = (secs * 2.0).ceil() as u64 + 2;
    println!("{} attempts in {secs:.1} s (cap 2 s; bound {bound})", r1 - r0);
    assert!(r1 - r0 <= bound, "{} connection attempts in {secs:.1} s with a 2 s cap: not backing off", r1 - r0);
    eventually("the link to keep trying", DEADLINE, || (num(&link_status(&env.root), "reconnects") >= r0 + 2).then_some(())).await;
    assert!(cloud.observer.payloads("up/dev").is_empty(), "a message got through a refused connection");
    let q = queue_status(&env.root);
    assert_eq!(num(&q, "messages"), 20, "{q}");

    // The broker learns to trust the core's CA.
    let bundle = cloud.dir.join("both-cas.pem");
    let both = format!("{}{}", std::fs::read_to_string(&cloud.pki.ca).unwrap(), std::fs::read_to_string(&rogue.ca).unwrap());
    std::fs::write(&bundle, both).unwrap();
    cloud.broker.set_client_ca(&bundle);
    cloud.down().await;
    cloud.up().await;
    wait_connected(&env.root).await;
    cloud.observer.wait_until("dev-0..dev-19", DEADLINE * 2, |m| m.iter().filter(|(t, _)| t == "up/dev").count() >= 20).await;
    let all: Vec<u64> = (0..20).collect();
    check_source("dev", &numbers("dev", &cloud.observer.payloads("up/dev")), &all);
    let q = wait_drained(&env.root).await;
    assert_eq!(num(&q, "dropped"), 0, "{q}");
    let link = link_status(&env.root);
    assert!(num(&link, "connects") >= 1, "{link}");
    env.stop();
}

// ---------------------------------------------------------------------------
// 7. A full state directory.

/// A tmpfs mounted for a test; unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` spells it) at `dir`; `Err`
    /// with the reason when this machine does not allow it.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let d = dir.to_str().ok_or("the directory is not UTF-8")?;
        mount(&["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", d])?;
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `file` with it until no space is left; returns
/// the bytes written.
fn fill(file: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(file).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    // Whatever fits of smaller pieces too.
    for size in [4096usize, 512, 1] {
        while f.write(&chunk[..size]).map(|n| n > 0).unwrap_or(false) {
            written += size as u64;
        }
    }
    let _ = f.sync_all();
    written
}

/// Appends to `file` whatever space its file system has left.
fn fill_more(file: &Path) {
    use std::io::Write;
    let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(file) else { return };
    let chunk = [0u8; 4096];
    while f.write(&chunk).map(|n| n > 0).unwrap_or(false) {}
    while f.write(&chunk[..1]).map(|n| n > 0).unwrap_or(false) {}
}

/// The state directory of a test root on a small tmpfs; `None` (with a
/// printed SKIPPED line) when this machine cannot mount one.
fn state_on_tmpfs(test: &str, root: &Root) -> Option<(PathBuf, Tmpfs)> {
    let state = root.path.join("ggc/var/state");
    match Tmpfs::mount(&state, "16m") {
        Ok(m) => Some((state, m)),
        Err(why) => {
            println!("SKIPPED: {test}: {why}");
            None
        }
    }
}

/// How the state directory is broken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// No space left: a filler file takes all of it, and is topped up
    /// whatever the store frees (reopening it may free some).
    Full,
}

/// A broken state directory, and the device that found it broken.
struct StorageFault {
    state: PathBuf,
    kind: Fault,
    keep_full: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// Publishes `dev-N` on `up/dev` from N = 50.
    publisher: Arc<Publisher>,
    sender: tokio::task::JoinHandle<()>,
}

impl StorageFault {
    /// Makes the directory writable again.
    fn repair(&mut self) {
        match self.kind {
            Fault::Full => {
                if let Some((stop, thread)) = self.keep_full.take() {
                    stop.store(true, Ordering::SeqCst);
                    thread.join().expect("the filler thread");
                }
                std::fs::remove_file(self.state.join("filler")).expect("remove the filler");
            }
        }
    }
}

/// Breaks the state directory, then publishes from device `dev` to the
/// cloud until the core reports `queue.storageError` (the store may have
/// had room left in files it had allocated before).
async fn break_storage(env: &Env, state: &Path, kind: Fault) -> StorageFault {
    let keep_full = match kind {
        Fault::Full => {
            let filler = state.join("filler");
            let written = fill(&filler);
            println!("filled the state directory with {written} bytes");
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let thread = std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    fill_more(&filler);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            Some((stop, thread))
        }
    };
    let publisher = Arc::new(Publisher::connect(env.core.port, env.creds("dev"), 20).await);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (p, stop) = (publisher.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 50u64;
            while !stop.load(Ordering::SeqCst) && n < 5000 {
                if !p.publish("up/dev", numbered("dev", n, 200)).await {
                    break;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let q = eventually("queue.storageError", DEADLINE, || {
        let q = queue_status(&env.root);
        q["storageError"].as_str().is_some_and(|e| !e.is_empty()).then_some(q)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    println!("storage error reported: {}", q["storageError"]);
    StorageFault { state: state.to_path_buf(), kind, keep_full, publisher, sender }
}

/// Publishes `dev-0..dev-49` from `dev` and waits for their PUBACKs.
async fn publish_first_50(env: &Env) {
    let mut dev = env.connect("dev").await;
    for n in 0..50 {
        dev.publish_nowait("up/dev", QoS::AtLeastOnce, false, numbered("dev", n, 200)).await;
    }
    dev.wait_acked().await;
    dev.disconnect().await;
}

/// Waits until the held publishes are acknowledged and the error is gone
/// after space was freed.
async fn wait_resumed(env: &Env, fault: &StorageFault) {
    let p = &fault.publisher;
    let resumed = tokio::time::timeout(DEADLINE, async {
        while p.acked_count() < p.sent() || !queue_status(&env.root)["storageError"].is_null() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    if resumed.is_err() {
        panic!(
            "the queue did not resume within {DEADLINE:?} of freeing space: {} of {} publishes acknowledged; queue {}",
            p.acked_count(),
            p.sent(),
            queue_status(&env.root)
        );
    }
}

/// Guarantee: when the state directory is full, the core keeps running and
/// says so (`queue.storageError`); device publishes to the cloud are held
/// (not acknowledged) instead of acknowledged and lost; what was accepted
/// before stays intact; once space is freed the queue resumes, the held
/// publishes are acknowledged, and everything reaches the cloud in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_full_holds_device_publishes_and_loses_nothing() {
    let mut cloud = Cloud::start().await;
    let root = cloud.root(json!({}));
    let Some((state, _mount)) = state_on_tmpfs("storage_full_holds_device_publishes_and_loses_nothing", &root) else { return };
    let mut env = Env::start_on(root, &["dev"], &[("dev", "up/dev", "cloud")]);
    wait_connected(&env.root).await;
    cloud.down().await;
    publish_first_50(&env).await;

    let mut fault = break_storage(&env, &state, Fault::Full).await;
    let p = fault.publisher.clone();
    // The core may reopen its store and write into what that frees (the
    // filler takes the rest at once): a few more acknowledgements are
    // allowed, as long as they are written (checked at the end: every one
    // arrives); the rest is held.
    // Held: a publish waits for its PUBACK for a while at least once (the
    // store's reopen may free room for a moment, so not at every instant).
    let (mut held_for, mut last_acked, mut since) = (Duration::ZERO, p.acked_count(), tokio::time::Instant::now());
    let until = tokio::time::Instant::now() + SETTLE * 2;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let acked = p.acked_count();
        if acked != last_acked || p.sent() == acked {
            (last_acked, since) = (acked, tokio::time::Instant::now());
        }
        held_for = held_for.max(since.elapsed());
    }
    println!("{} of {} acknowledged {:?} after the error was reported; longest hold {held_for:?}", p.acked_count(), p.sent(), SETTLE * 2);
    assert!(held_for >= Duration::from_millis(300), "nothing was held while the state directory was full (or the test proved nothing)");
    assert!(p.closed().is_none(), "the core closed the publisher: {:?}", p.closed());
    assert!(env.core.is_running(), "the core died of a full state directory:\n{}", env.core.log_text());

    fault.repair();
    wait_resumed(&env, &fault).await;
    tokio::time::timeout(DEADLINE, fault.sender).await.expect("the sender did not end").expect("sender");
    let total = p.sent() as u64 + 50;
    cloud.up().await;
    cloud.observer.expect_all("up/dev", "dev", total, DEADLINE * 2).await;
    wait_drained(&env.root).await;
    drop(p);
    env.stop();
}

/// Guarantee: an SDK publish to the cloud made while the state directory is
/// full is not lost: it waits (reported) or is written; once space is freed
/// it has returned, and every publish that returned reaches the cloud, in
/// order; the core keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_full_sdk_publishes_are_held_or_written() {
    let mut cloud = Cloud::start().await;
    let root = cloud.root(json!({}));
    let Some((state, _mount)) = state_on_tmpfs("storage_full_sdk_publishes_are_held_or_written", &root) else { return };
    let record = cloud.dir.join("fn-returned.txt");
    let f = Function::python("numbered", NUMBERED_PY).pinned().timeout(120).run_as(0, 0).env("RECORD", &record.display().to_string());
    let f_arn = f.arn();
    let mut env = Env::start_group(root, &["dev", "tester"], |g| {
        g.function(f)
            .route("dev", "up/dev", "cloud")
            .route("tester", "fn/go", &f_arn)
            .route(&f_arn, "up/fn", "cloud")
            .route(&f_arn, "fn/done", "tester")
    });
    wait_connected(&env.root).await;
    cloud.down().await;
    let mut tester = env.connect("tester").await;
    tester.sub("fn/done", QoS::AtLeastOnce).await;
    tester.publish("fn/go", QoS::AtLeastOnce, json!({"start": 0, "count": 3}).to_string()).await;
    let done = tester.recv().await;
    assert_eq!(serde_json::from_slice::<Value>(&done.payload).unwrap()["done"], 3, "{}", text(&done));
    assert_eq!(recorded(&record), vec![0, 1, 2]);

    let mut fault = break_storage(&env, &state, Fault::Full).await;
    tester.publish("fn/go", QoS::AtLeastOnce, json!({"start": 3, "count": 1}).to_string()).await;
    tokio::time::sleep(SETTLE * 2).await;
    // The core may reopen its store and write into what that frees before
    // the filler takes it back, so the publish may legitimately have been
    // written and returned; whether it was held is reported, and what
    // returned must reach the cloud (checked below).
    println!(
        "SDK publish while the state directory is full: {} (queue {})",
        if recorded(&record).contains(&3) { "returned (written in space the store freed, or not held)" } else { "held" },
        queue_status(&env.root)
    );
    assert!(env.core.is_running(), "the core died of a full state directory:\n{}", env.core.log_text());

    fault.repair();
    wait_resumed(&env, &fault).await;
    let done = tester.recv().await;
    assert_eq!(serde_json::from_slice::<Value>(&done.payload).unwrap()["done"], 1, "{}", text(&done));
    assert_eq!(recorded(&record), vec![0, 1, 2, 3]);
    cloud.up().await;
    cloud.observer.wait_until("fn-0..fn-3", DEADLINE * 2, |m| m.iter().filter(|(t, _)| t == "up/fn").count() >= 4).await;
    check_source("fn", &numbers("fn", &cloud.observer.payloads("up/fn")), &[0, 1, 2, 3]);
    drop(fault.publisher);
    env.stop();
}

// ---------------------------------------------------------------------------
// The fixture itself.

/// The fixture: Mosquitto with TLS and client certificates takes a message
/// from mosquitto_pub and the observer gets it; a message published while the
/// observer is away is kept across a broker restart on the same port (the
/// persistence every outage test relies on).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_fixture_keeps_persistent_sessions_across_restarts() {
    let mut cloud = Cloud::start().await;
    cloud.publish("fixture/a", "one");
    cloud.observer.wait_for("fixture/a", b"one").await;
    cloud.disconnect_observer();
    // Mosquitto notices the closed connection before it takes the next
    // publish (a QoS 1 round trip of another client after the close).
    tokio::time::sleep(Duration::from_millis(300)).await;
    cloud.publish("fixture/b", "kept while away");
    let port = cloud.broker.port;
    cloud.down().await;
    cloud.up().await;
    assert_eq!(cloud.broker.port, port);
    cloud.reconnect_observer().await;
    cloud.observer.wait_for("fixture/b", b"kept while away").await;
    assert_eq!(cloud.observer.sessions_lost(), 0);
    // And the observer follows a restart by itself.
    cloud.down().await;
    cloud.up().await;
    cloud.publish("fixture/c", "after a restart");
    cloud.observer.wait_for("fixture/c", b"after a restart").await;
    assert!(cloud.broker.log().contains(crate::common::cloud::OBSERVER), "mosquitto's log names the observer");
}

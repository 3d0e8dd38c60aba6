//! Functions under load (docs/functions.md): a function flooding `publish` does not
//! starve the others; 500 queued invocations of an on-demand function all run
//! once on a bounded number of instances; a full work queue refuses the excess
//! with an error (invokes) or a counted drop (routed messages), never silently.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::common::functions::{function_arn, functions_root, with_driver, Driver, Function, CALC_PY, TEXT_RELAY_PY};
use crate::common::mqtt::text;
use crate::common::{eventually, Env, QoS, DEADLINE};

/// Pinned; its module-level code starts a thread that publishes on
/// `flood/data` as fast as it can until told to stop, printing its count every
/// 5,000 messages.
const FLOODER_PY: &str = r#"
import threading

import greengrasssdk

iot = greengrasssdk.client('iot-data')
state = {'sent': 0, 'errors': 0, 'stop': False}


def flood():
    while not state['stop']:
        try:
            iot.publish(topic='flood/data', payload=b'x' * 64)
            state['sent'] += 1
        except Exception:
            state['errors'] += 1
        if state['sent'] and state['sent'] % 5000 == 0:
            print('flooded', state['sent'])
    print('flood stopped after', state['sent'], 'errors', state['errors'])


threading.Thread(target=flood, daemon=True).start()


def handler(event, context):
    if event.get('stop'):
        state['stop'] = True
"#;

/// The highest count the flooder printed so far.
fn flooded(root: &crate::common::Root) -> u64 {
    root.function_log("flooder")
        .lines()
        .filter_map(|l| l.split_once("]-flooded ").and_then(|(_, n)| n.trim().parse().ok()))
        .max()
        .unwrap_or(0)
}

/// A pinned function publishing in a tight loop from a thread: meanwhile
/// another function answers invokes, a device keeps hearing a third function,
/// `ggcore status` answers, and the flood goes on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_flood_does_not_starve_other_functions() {
    let flooder = Function::python("flooder", FLOODER_PY).pinned();
    let relay = Function::python("relay", TEXT_RELAY_PY).pinned();
    let (flooder_arn, relay_arn) = (flooder.arn(), relay.arn());
    let env = Env::start_group(functions_root(json!({})), &["tester", "sink", "sensor", "display"], |g| {
        with_driver(g, "tester")
            .function(flooder)
            .function(relay)
            .function(Function::python("calc", CALC_PY))
            .route(&flooder_arn, "flood/#", "sink")
            .route("tester", "flood/stop", &flooder_arn)
            .route("sensor", "relay/in", &relay_arn)
            .route(&relay_arn, "relay/out", "display")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    let mut sink = env.connect("sink").await;
    sink.sub("flood/#", QoS::AtMostOnce).await;
    let mut sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("relay/out", QoS::AtLeastOnce).await;

    eventually("the flooder to publish 10,000 messages", DEADLINE, || (flooded(&env.root) >= 10_000).then_some(())).await;
    let p = sink.recv().await;
    assert_eq!((p.topic.as_str(), p.payload.len()), ("flood/data", 64));
    let before = flooded(&env.root);

    let calc = function_arn("calc");
    for n in 0..5u64 {
        assert_eq!(driver.invoke_ok(&calc, json!({"op": "add", "a": n, "b": 100})).await["sum"], n + 100);
        sensor.publish("relay/in", QoS::AtLeastOnce, json!({"text": format!("during the flood {n}")}).to_string()).await;
        display.expect("relay/out", &format!("during the flood {n}")).await;
        let status = env.root.status();
        let f = status["functions"].as_array().unwrap().iter().find(|f| f["arn"] == flooder_arn).unwrap().clone();
        assert_eq!((f["instances"].as_array().map(Vec::len), f["crashes"].as_u64()), (Some(1), Some(0)), "{f}");
    }
    // The flood went on meanwhile (it was not paused to let the others in).
    eventually("the flood to go on", DEADLINE, || (flooded(&env.root) > before).then_some(())).await;

    driver.dev.publish("flood/stop", QoS::AtLeastOnce, r#"{"stop": true}"#).await;
    let line = env.root.wait_function_log("flooder", &["flood stopped after"]).await;
    assert!(line.ends_with("errors 0"), "publishes failed during the flood: {line}");
    let s = env.root.status();
    assert!(s["router"]["received"].as_u64().unwrap() >= 10_000, "{}", s["router"]);
    display.expect_silence().await;
    env.stop();
}

/// On demand: sleeps a little, then reports `i` and its pid on `work/done`.
const WORKER_PY: &str = r#"
import json
import os
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    time.sleep(event.get('sleep', 0.05))
    iot.publish(topic='work/done', payload=json.dumps({'i': event['i'], 'pid': os.getpid()}))
"#;

/// Receives `n` `work/done` reports; panics on a duplicate. Returns the pid
/// of each `i`. Checks on the way that no more than `max` instances run.
async fn collect_done(root: &crate::common::Root, counter: &mut crate::common::Device, n: usize) -> BTreeMap<u64, u64> {
    let mut done = BTreeMap::new();
    while done.len() < n {
        let p = counter.recv().await;
        assert_eq!(p.topic, "work/done", "{}", text(&p));
        let v: Value = serde_json::from_slice(&p.payload).unwrap();
        let (i, pid) = (v["i"].as_u64().unwrap(), v["pid"].as_u64().unwrap());
        assert!(done.insert(i, pid).is_none(), "invocation {i} ran twice");
        if done.len() % 100 == 0 {
            let s = root.function_status("worker").unwrap();
            let running = s["instances"].as_array().unwrap().len() as u64;
            assert!(running <= s["maxInstances"].as_u64().unwrap(), "{s}");
        }
    }
    done
}

/// 500 QoS 1 messages routed to an on-demand function that sleeps a little:
/// every one runs exactly once, on more than one instance and never more
/// than the function's concurrency limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_queued_invocations_scale_out_and_run_once() {
    const N: usize = 500;
    let worker = Function::python("worker", WORKER_PY);
    let arn = worker.arn();
    let env = Env::start_group(functions_root(json!({})), &["feeder", "counter"], |g| {
        g.function(worker).route("feeder", "work/in", &arn).route(&arn, "work/done", "counter")
    });
    let mut feeder = env.connect("feeder").await;
    let mut counter = env.connect("counter").await;
    counter.sub("work/done", QoS::AtLeastOnce).await;
    for i in 0..N {
        feeder.publish_nowait("work/in", QoS::AtLeastOnce, false, json!({"i": i, "sleep": 0.05}).to_string()).await;
    }
    feeder.wait_acked().await;
    // Acknowledged means queued: the work is waiting (it takes seconds).
    let s = env.root.function_status("worker").unwrap();
    let waiting = s["queued"].as_u64().unwrap() + s["invocations"].as_u64().unwrap();
    assert!(s["queued"].as_u64().unwrap() > 0 && waiting == N as u64, "{s}");

    let done = collect_done(&env.root, &mut counter, N).await;
    assert_eq!(done.keys().copied().collect::<Vec<_>>(), (0..N as u64).collect::<Vec<_>>());
    counter.expect_silence().await;
    let pids: BTreeSet<u64> = done.values().copied().collect();
    let s = env.root.function_status("worker").unwrap();
    let (started, max) = (s["instancesStarted"].as_u64().unwrap(), s["maxInstances"].as_u64().unwrap());
    assert_eq!(max, 8, "{s}");
    assert!(started > 1 && started <= max, "instancesStarted {started} (max {max}): {s}");
    assert!(pids.len() > 1 && pids.len() as u64 <= started, "{} pids, {started} instances started", pids.len());
    assert_eq!((s["invocations"].as_u64(), s["succeeded"].as_u64()), (Some(N as u64), Some(N as u64)), "{s}");
    assert_eq!((s["rejectedQueueFull"].as_u64(), s["queued"].as_u64()), (Some(0), Some(0)), "{s}");
    env.stop();
}

/// With `runtime.maxWorkItemCount` 10, a caller firing 100 Event invokes at a
/// slow function gets an error for each one over the queue's bound; a device
/// routing messages to it is held back instead, at QoS 1 and QoS 0, and none
/// is lost. Everything accepted runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_work_queue_refuses_the_excess() {
    let worker = Function::python("worker", WORKER_PY);
    let arn = worker.arn();
    let env = Env::start_group(functions_root(json!({"runtime": {"maxWorkItemCount": 10}})), &["tester", "feeder", "counter"], |g| {
        with_driver(g, "tester").function(worker).route("feeder", "work/in", &arn).route(&arn, "work/done", "counter")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    let mut counter = env.connect("counter").await;
    counter.sub("work/done", QoS::AtLeastOnce).await;

    // Event invokes from a function: the excess raises.
    let r = driver.call(json!({"op": "events", "n": 100, "args": {"FunctionName": arn, "Payload": {"sleep": 1}}})).await;
    let (accepted, refused) = (r["accepted"].as_u64().unwrap(), r["refused"].as_u64().unwrap());
    assert_eq!(accepted + refused, 100, "{r}");
    assert!(refused > 0 && accepted >= 10, "{r}");
    for e in r["errors"].as_array().unwrap() {
        let e = e.as_str().unwrap();
        assert!(e.starts_with("InvocationException") && e.contains("full") && e.contains("maxWorkItemCount 10"), "{e}");
    }
    let done = collect_done(&env.root, &mut counter, accepted as usize).await;
    counter.expect_silence().await;
    assert_eq!(done.len() as u64, accepted);
    let s = env.root.function_status("worker").unwrap();
    assert_eq!((s["rejectedQueueFull"].as_u64(), s["queueCapacity"].as_u64()), (Some(refused), Some(10)), "{s}");

    // Routed QoS 1 messages: the device is held back (each is acknowledged
    // once the queue takes it), stays on, and every one of them runs.
    let mut feeder = env.connect("feeder").await;
    for i in 1000..1100 {
        feeder.publish_nowait("work/in", QoS::AtLeastOnce, false, json!({"i": i, "sleep": 1}).to_string()).await;
    }
    feeder.wait_acked().await;
    assert!(feeder.is_connected());
    let ran = eventually("every routed message to run", DEADLINE * 2, || {
        let s = env.root.function_status("worker").unwrap();
        let busy = s["instances"].as_array().unwrap().iter().any(|i| i["state"] != "idle");
        let invocations = s["invocations"].as_u64().unwrap();
        (s["queued"] == 0 && !busy && invocations == accepted + 100).then(|| invocations - accepted)
    })
    .await;
    let dropped = 100 - ran;
    assert_eq!(dropped, 0, "accepted QoS 1 messages were dropped");
    let more = collect_done(&env.root, &mut counter, ran as usize).await;
    assert!(more.keys().all(|i| (1000..1100).contains(i)), "{more:?}");
    counter.expect_silence().await;

    // QoS 0 too: a burst is slowed down (the device's packets wait in its
    // socket), not thinned out.
    for i in 2000..2100 {
        feeder.publish_nowait("work/in", QoS::AtMostOnce, false, json!({"i": i, "sleep": 1}).to_string()).await;
    }
    let zero = collect_done(&env.root, &mut counter, 100).await;
    assert_eq!(zero.keys().copied().collect::<Vec<_>>(), (2000..2100).collect::<Vec<_>>(), "QoS 0 messages were dropped");
    assert!(feeder.is_connected());
    counter.expect_silence().await;
    let s = env.root.status();
    let w = s["functions"].as_array().unwrap().iter().find(|f| f["arn"] == arn).unwrap();
    assert_eq!(w["rejectedQueueFull"].as_u64(), Some(refused), "{w}");
    env.stop();
}

/// QoS 1 messages a device had acknowledged, queued for a function that a
/// redeploy then changes: accepted messages are never lost (docs/mqtt.md, "Flow control"), so each
/// one still runs, once, on the old or the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_work_survives_a_redeploy_that_changes_the_function() {
    const N: usize = 40;
    let worker = Function::python("worker", WORKER_PY).env("V", "1");
    let group = |w: Function| {
        move |g: crate::common::Group| {
            g.function(w).route("feeder", "work/in", &function_arn("worker")).route(&function_arn("worker"), "work/done", "counter")
        }
    };
    let mut env = Env::start_group(functions_root(json!({})), &["feeder", "counter"], group(worker));
    let mut feeder = env.connect("feeder").await;
    let mut counter = env.connect("counter").await;
    counter.sub("work/done", QoS::AtLeastOnce).await;
    for i in 0..N {
        feeder.publish_nowait("work/in", QoS::AtLeastOnce, false, json!({"i": i, "sleep": 1}).to_string()).await;
    }
    feeder.wait_acked().await;
    let queued = env.root.function_status("worker").unwrap()["queued"].as_u64().unwrap();
    assert!(queued > 0, "nothing left in the queue to test with");
    let base = crate::common::Group::new("e2e").device(env.creds("feeder")).device(env.creds("counter"));
    env.redeploy(group(Function::python("worker", WORKER_PY).env("V", "2"))(base));
    let mut done = BTreeSet::new();
    while done.len() < N {
        let Some(p) = counter.recv_within(DEADLINE).await else { break };
        let v: Value = serde_json::from_slice(&p.payload).unwrap();
        assert!(done.insert(v["i"].as_u64().unwrap()), "{v} ran twice");
    }
    let lost: Vec<u64> = (0..N as u64).filter(|i| !done.contains(i)).collect();
    let s = env.root.function_status("worker").unwrap();
    assert!(lost.is_empty(), "{} of {N} acknowledged messages never ran ({queued} were queued at the redeploy): {lost:?}\n{s}", lost.len());
    counter.expect_silence().await;
    env.stop();
}

/// Says it started, works for 2 s, says it finished, with its version `V`.
const SLOW_STEP_PY: &str = r#"
import os
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='step/started', payload=os.environ['V'])
    time.sleep(2)
    iot.publish(topic='step/finished', payload=os.environ['V'])
"#;

/// A redeploy that changes a function while one of its invocations runs
/// lets that invocation finish (it was accepted; it runs once, on the old
/// version) before the old instance stops; the next message runs on the new
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invocation_running_at_a_redeploy_finishes() {
    let step = |v: &str| Function::python("step", SLOW_STEP_PY).env("V", v);
    let group = |f: Function| {
        move |g: crate::common::Group| {
            let arn = f.arn();
            g.function(f).route("ctl", "step/in", &arn).route(&arn, "step/#", "ctl")
        }
    };
    let mut env = Env::start_group(functions_root(json!({})), &["ctl"], group(step("1")));
    let mut ctl = env.connect("ctl").await;
    ctl.sub("step/#", QoS::AtLeastOnce).await;
    ctl.publish("step/in", QoS::AtLeastOnce, "{}").await;
    ctl.expect("step/started", "1").await;
    let base = crate::common::Group::new("e2e").device(env.creds("ctl"));
    env.redeploy(group(step("2"))(base));
    ctl.expect("step/finished", "1").await;
    ctl.publish("step/in", QoS::AtLeastOnce, "{}").await;
    ctl.expect("step/started", "2").await;
    ctl.expect("step/finished", "2").await;
    env.stop();
}

/// Publishes on `relay/<n>` whatever arrives, with the topic it came on.
const HOP_PY: &str = r#"
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic=os.environ['OUT'], payload=json.dumps({'event': event, 'subject': context.client_context.custom['subject']}))
"#;

/// Functions publish to functions through the table like devices do: a
/// device → A → B → device chain, B seeing A's topic as its subject. With
/// `queueFullPolicy: AllOrException` a publish that cannot reach a full
/// function queue raises; with the default policy the publish waits for room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_to_function_routes_and_queue_full_policy() {
    let a = Function::python("hopa", HOP_PY).env("OUT", "chain/b");
    let b = Function::python("hopb", HOP_PY).env("OUT", "chain/out");
    let worker = Function::python("worker", WORKER_PY);
    let (a_arn, b_arn, w_arn) = (a.arn(), b.arn(), worker.arn());
    let driver_arn = function_arn("driver");
    let env = Env::start_group(functions_root(json!({"runtime": {"maxWorkItemCount": 5}})), &["tester", "counter"], |g| {
        with_driver(g, "tester")
            .function(a)
            .function(b)
            .function(worker)
            .route("tester", "chain/a", &a_arn)
            .route(&a_arn, "chain/b", &b_arn)
            .route(&b_arn, "chain/out", "tester")
            .route(&driver_arn, "work/in", &w_arn)
            .route(&w_arn, "work/done", "counter")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    driver.dev.sub("chain/out", QoS::AtLeastOnce).await;
    driver.dev.publish("chain/a", QoS::AtLeastOnce, r#"{"k": 1}"#).await;
    let p = driver.next_other().await;
    assert_eq!(p.topic, "chain/out");
    let got: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(got, json!({"event": {"event": {"k": 1}, "subject": "chain/a"}, "subject": "chain/b"}));

    let mut counter = env.connect("counter").await;
    counter.sub("work/done", QoS::AtLeastOnce).await;
    // 30 publishes to a slow function with a queue of 5, all or error.
    let r = driver
        .call(json!({"op": "publishes", "n": 30, "topic": "work/in", "queueFullPolicy": "AllOrException", "payload": {"sleep": 1}}))
        .await;
    let (ok, failed) = (r["ok"].as_u64().unwrap(), r["failed"].as_u64().unwrap());
    assert_eq!(ok + failed, 30, "{r}");
    assert!(failed > 0 && ok >= 5, "{r}");
    let done = collect_done(&env.root, &mut counter, ok as usize).await;
    counter.expect_silence().await;
    assert_eq!(done.len() as u64, ok);
    // The default policy: no error; the publisher is held back while the queue
    // is full, so every accepted publish runs.
    let r = driver.call(json!({"op": "publishes", "n": 30, "topic": "work/in", "payload": {"sleep": 1, "base": 100}})).await;
    assert_eq!((r["ok"].as_u64(), r["failed"].as_u64()), (Some(30), Some(0)), "{r}");
    let s = eventually("every publish to run", DEADLINE * 2, || {
        let s = env.root.function_status("worker")?;
        let busy = s["instances"].as_array()?.iter().any(|i| i["state"] != "idle");
        (s["queued"] == 0 && !busy && s["invocations"].as_u64()? == ok + 30).then_some(s)
    })
    .await;
    let ran = s["invocations"].as_u64().unwrap() - ok;
    assert_eq!(ran, 30, "{s}");
    collect_done(&env.root, &mut counter, ran as usize).await;
    counter.expect_silence().await;
    env.stop();
}

/// Pinned and slow: takes 50 ms per message, then passes it on to `sink/out`.
const SLOW_SINK_PY: &str = r#"
import json
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    time.sleep(0.05)
    iot.publish(topic='sink/out', payload=json.dumps(event))
"#;

/// Publishes `n` messages `{"i": 0..n}` on `burst/out` as fast as it can,
/// then returns.
const BURST_PY: &str = r#"
import json

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    for i in range(event['n']):
        iot.publish(topic='burst/out', payload=json.dumps({'i': i}))
    return {'published': event['n']}
"#;

/// A function with a 1 s Timeout publishes 100 messages, in a burst, to a
/// slow function whose queue holds 4: the core holds the publisher back for
/// seconds (its publishes wait for room), and that time does not count
/// against its Timeout: the invocation succeeds, is not killed, and every
/// message arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_held_back_by_a_full_queue_is_not_the_functions_timeout() {
    let sink = Function::python("sink", SLOW_SINK_PY).pinned();
    let burst = Function::python("burst", BURST_PY).timeout(1);
    let (sink_arn, burst_arn) = (sink.arn(), burst.arn());
    let env = Env::start_group(functions_root(json!({"runtime": {"maxWorkItemCount": 4}})), &["tester"], |g| {
        g.function(sink)
            .function(burst)
            .route("tester", "burst/in", &burst_arn)
            .route(&burst_arn, "burst/out", &sink_arn)
            .route(&sink_arn, "sink/out", "tester")
    });
    let mut tester = env.connect("tester").await;
    tester.sub("sink/out", QoS::AtLeastOnce).await;
    let n = 100;
    tester.publish("burst/in", QoS::AtLeastOnce, json!({ "n": n }).to_string()).await;
    for i in 0..n {
        let p = tester.recv().await;
        assert_eq!(p.topic, "sink/out");
        let got: Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(got, json!({ "i": i }), "out of order or missing");
    }
    tester.expect_silence().await;
    let burst = env.root.function_status("burst").unwrap();
    assert_eq!(
        (burst["timeouts"].as_u64(), burst["succeeded"].as_u64(), burst["unhandledErrors"].as_u64()),
        (Some(0), Some(1), Some(0)),
        "{burst}"
    );
    env.stop();
}

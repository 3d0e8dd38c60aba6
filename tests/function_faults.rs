//! Functions that misbehave (SPEC §6, §8): a crash, a hang past its Timeout,
//! an allocation past its MemorySize, a publish claiming another source. The
//! caller gets the right error, the core and the other functions keep working.

use serde_json::{json, Value};

use crate::common::functions::{functions_root, process_ended, with_driver, Driver, Function, CALC_PY};
use crate::common::mqtt::text;
use crate::common::{eventually, Env, QoS, DEADLINE};

const CRASHER_PY: &str = r#"
import os


def handler(event, context):
    if event.get('crash'):
        os._exit(1)
    return {'pid': os.getpid()}
"#;

/// Relays `relay/in` to `relay/out` (pinned).
const RELAY_PY: &str = r#"
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='relay/out', payload=event['text'])
"#;

/// The error message of an Unhandled result.
fn unhandled_message(r: &Value) -> String {
    assert_eq!(r["FunctionError"], "Unhandled", "{r}");
    r["PayloadJson"]["errorMessage"].as_str().unwrap_or_else(|| panic!("no errorMessage: {r}")).to_string()
}

/// While the other functions and devices work: a device round trip through
/// the pinned relay, a device to device message and an invoke of `calc`.
async fn others_work(driver: &mut Driver, sensor: &mut crate::common::Device, display: &mut crate::common::Device, n: u32) {
    sensor.publish("relay/in", QoS::AtLeastOnce, json!({"text": format!("relayed {n}")}).to_string()).await;
    display.expect("relay/out", &format!("relayed {n}")).await;
    sensor.publish("dd/x", QoS::AtLeastOnce, format!("direct {n}")).await;
    display.expect("dd/x", &format!("direct {n}")).await;
    let calc = crate::common::functions::function_arn("calc");
    assert_eq!(driver.invoke_ok(&calc, json!({"op": "add", "a": n, "b": 1})).await["sum"], n + 1);
}

fn fault_env(f: Function) -> Env {
    let (arn, name) = (f.arn(), f.name.clone());
    let relay = Function::python("relay", RELAY_PY).pinned();
    let relay_arn = relay.arn();
    Env::start_group(functions_root(json!({})), &["tester", "sensor", "display"], |g| {
        with_driver(g, "tester")
            .function(f)
            .function(Function::python("calc", CALC_PY))
            .function(relay)
            .route("tester", &format!("{name}/in"), &arn)
            .route("sensor", "relay/in", &relay_arn)
            .route(&relay_arn, "relay/out", "display")
            .route("sensor", "dd/#", "display")
    })
}

async fn devices(env: &Env) -> (Driver, crate::common::Device, crate::common::Device) {
    let driver = Driver::new(env.connect("tester").await).await;
    let sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("relay/out", QoS::AtLeastOnce).await;
    display.sub("dd/#", QoS::AtLeastOnce).await;
    (driver, sensor, display)
}

/// A pinned function whose handler calls `os._exit(1)`: the caller gets
/// `Unhandled` naming the exit, the instance is restarted (a later invocation
/// runs in a new process), status counts the crash, and the other functions
/// and devices are unaffected. A crash during a routed Event is survived too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_is_unhandled_and_the_pinned_instance_restarts() {
    let crasher = Function::python("crasher", CRASHER_PY).pinned();
    let arn = crasher.arn();
    let mut env = fault_env(crasher);
    let (mut driver, mut sensor, mut display) = devices(&env).await;
    let pid1 = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();

    let r = driver.invoke(json!({"FunctionName": arn, "Payload": {"crash": true}})).await;
    let msg = unhandled_message(&r);
    assert!(msg.contains("exited with code 1"), "{msg}");
    others_work(&mut driver, &mut sensor, &mut display, 1).await;

    // Restarted: the next invocation runs in a new process.
    let pid2 = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    assert!(process_ended(pid1), "the crashed process {pid1} is still there");
    let s = env.root.function_status("crasher").unwrap();
    assert_eq!((s["crashes"].as_u64(), s["unhandledErrors"].as_u64(), s["instancesStarted"].as_u64()), (Some(1), Some(1), Some(2)), "{s}");
    assert_eq!(s["instances"][0]["pid"].as_u64(), Some(pid2), "{s}");
    env.root.wait_function_log("crasher", &["exited with code 1"]).await;

    // A crash while handling a routed message (no caller waiting).
    driver.dev.publish("crasher/in", QoS::AtLeastOnce, r#"{"crash": true}"#).await;
    eventually("the second crash to be counted", DEADLINE, || {
        (env.root.function_status("crasher").unwrap()["crashes"] == 2).then_some(())
    })
    .await;
    let pid3 = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
    assert!(pid3 != pid2 && process_ended(pid2));
    others_work(&mut driver, &mut sensor, &mut display, 2).await;
    assert!(env.core.is_running());
    let relay = env.root.function_status("relay").unwrap();
    assert_eq!((relay["crashes"].as_u64(), relay["instancesStarted"].as_u64()), (Some(0), Some(1)), "{relay}");
    display.expect_silence().await;
    env.stop();
}

const SLEEPER_PY: &str = r#"
import os
import time


def handler(event, context):
    time.sleep(event.get('sleep', 0))
    if event.get('spin'):
        end = time.time() + event['spin']
        while time.time() < end:
            pass
    return {'pid': os.getpid()}
"#;

/// An invocation that runs past the function's Timeout (sleeping, or
/// spinning with the GIL held) ends with `Unhandled` "Task timed out after
/// 2.00 seconds"; the instance is killed and replaced; the rest goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hang_past_timeout_is_unhandled_and_the_instance_replaced() {
    let sleeper = Function::python("sleeper", SLEEPER_PY).pinned().timeout(2);
    let arn = sleeper.arn();
    let mut env = fault_env(sleeper);
    let (mut driver, mut sensor, mut display) = devices(&env).await;
    let mut pid = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
    for (n, hang) in [json!({"sleep": 600}), json!({"spin": 600})].into_iter().enumerate() {
        let r = driver.invoke(json!({"FunctionName": arn, "Payload": hang})).await;
        let msg = unhandled_message(&r);
        assert!(msg.contains("Task timed out after 2.00 seconds"), "{msg}");
        others_work(&mut driver, &mut sensor, &mut display, n as u32).await;
        let next = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
        assert_ne!(next, pid, "the timed-out instance was not replaced");
        eventually("the timed-out instance to end", DEADLINE, || process_ended(pid).then_some(())).await;
        pid = next;
    }
    let s = env.root.function_status("sleeper").unwrap();
    assert_eq!((s["timeouts"].as_u64(), s["unhandledErrors"].as_u64(), s["crashes"].as_u64()), (Some(2), Some(2), Some(0)), "{s}");
    env.root.wait_function_log("sleeper", &["[ERROR]-", "Task timed out after 2.00 seconds"]).await;
    assert!(env.core.is_running());
    env.stop();
}

const HOG_PY: &str = r#"
import os


def handler(event, context):
    chunks = []
    for _ in range(event['mb']):
        chunks.append(b'\x01' * (1 << 20))
    return {'mb': len(chunks), 'pid': os.getpid()}
"#;

/// An invocation that allocates 400 MB in a function limited to 64 MB is
/// stopped: `Unhandled` saying out of memory, counted as outOfMemory (not as
/// a crash); small allocations work before and after; the core is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allocation_past_memory_size_is_out_of_memory() {
    let hog = Function::python("hog", HOG_PY).memory_kb(64 * 1024);
    let arn = hog.arn();
    let mut env = fault_env(hog);
    let (mut driver, mut sensor, mut display) = devices(&env).await;
    let mechanism = env.root.status()["memoryLimits"].as_str().unwrap_or_default().to_string();
    assert!(!mechanism.is_empty());
    assert_eq!(driver.invoke_ok(&arn, json!({"mb": 8})).await["mb"], 8);

    let r = driver.invoke(json!({"FunctionName": arn, "Payload": {"mb": 400}})).await;
    let msg = unhandled_message(&r);
    assert!(msg.contains("out of memory"), "memory limits by {mechanism}: {msg}");
    let s = env.root.function_status("hog").unwrap();
    assert_eq!((s["outOfMemory"].as_u64(), s["crashes"].as_u64()), (Some(1), Some(0)), "{s}");
    env.root.wait_function_log("hog", &["[ERROR]-", "out of memory"]).await;

    others_work(&mut driver, &mut sensor, &mut display, 1).await;
    assert_eq!(driver.invoke_ok(&arn, json!({"mb": 8})).await["mb"], 8);
    assert!(env.core.is_running());
    env.stop();
}

/// A function may publish only as itself: an IPC publish (as the published
/// SDK sends it) whose client context claims another function as `source` is
/// refused with an IPCException, delivers nothing, and is logged in the
/// function's log; claiming itself (qualified or not) or nothing works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_claiming_another_source_is_refused() {
    let calc = Function::python("calc", CALC_PY);
    let calc_arn = calc.arn();
    let driver_arn = crate::common::functions::function_arn("driver");
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g, "tester").function(calc).route(&calc_arn, "t", "tester").route(&driver_arn, "t", "tester")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    driver.dev.sub("t", QoS::AtLeastOnce).await;

    for claimed in [calc_arn.clone(), crate::common::functions::unqualified_arn("calc"), crate::common::thing_arn("tester"), "cloud".into()] {
        let r = driver.call(json!({"op": "ipc_publish", "topic": "t", "payload": "x", "source": claimed})).await;
        assert_eq!(r["exception"], "IPCException", "claiming {claimed}: {r}");
        assert!(r["message"].as_str().unwrap().contains("publish only as itself"), "{r}");
    }
    let line = env.root.wait_function_log("driver", &["publish refused", &calc_arn]).await;
    assert!(line.contains("[ERROR]-"), "{line}");

    // As itself: delivered.
    for (source, payload) in [(Some(driver_arn.clone()), "own-qualified"), (Some(crate::common::functions::unqualified_arn("driver")), "own-unqualified"), (None, "no-source")] {
        let mut req = json!({"op": "ipc_publish", "topic": "t", "payload": payload});
        if let Some(s) = source {
            req["source"] = s.into();
        }
        let r = driver.call(req).await;
        assert!(r.get("exception").is_none(), "{r}");
    }
    let mut got: Vec<String> = driver.others.drain(..).map(|p| text(&p)).collect();
    while got.len() < 3 {
        got.push(text(&driver.next_other().await));
    }
    assert_eq!(got, ["own-qualified", "own-unqualified", "no-source"]);
    driver.dev.expect_silence().await;
    assert_eq!(env.root.function_status("calc").unwrap()["invocations"], 0);
    env.stop();
}

//! Functions that misbehave (docs/functions.md): a crash, a hang past its Timeout,
//! an allocation past its MemorySize, a publish claiming another source. The
//! caller gets the right error, the core and the other functions keep working.

use serde_json::{json, Value};

use crate::common::functions::{functions_root, process_ended, with_driver, Driver, Function, CALC_PY, TEXT_RELAY_PY};
use crate::common::mqtt::text;
use crate::common::{eventually, Env, QoS, DEADLINE};

const CRASHER_PY: &str = r#"
import os


def handler(event, context):
    if event.get('crash'):
        os._exit(1)
    return {'pid': os.getpid()}
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
    let relay = Function::python("relay", TEXT_RELAY_PY).pinned();
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
    eventually("the crashed process to be gone", DEADLINE, || process_ended(pid1).then_some(())).await;
    let s = env.root.function_status("crasher").unwrap();
    assert_eq!((s["crashes"].as_u64(), s["unhandledErrors"].as_u64(), s["instancesStarted"].as_u64()), (Some(1), Some(1), Some(2)), "{s}");
    assert_eq!(s["instances"][0]["pid"].as_u64(), Some(pid2), "{s}");
    env.root.wait_function_log("crasher", &["exited with code 1"]).await;

    // A crash while handling a routed message (no caller waiting).
    driver.dev.publish("crasher/in", QoS::AtLeastOnce, r#"{"crash": true}"#).await;
    eventually("the second crash to be counted", DEADLINE, || (env.root.function_status("crasher").unwrap()["crashes"] == 2).then_some(()))
        .await;
    let pid3 = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
    assert_ne!(pid3, pid2);
    eventually("the second crashed process to be gone", DEADLINE, || process_ended(pid2).then_some(())).await;
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

    for claimed in [calc_arn.clone(), crate::common::functions::unqualified_arn("calc"), crate::common::thing_arn("tester"), "cloud".into()]
    {
        let r = driver.call(json!({"op": "ipc_publish", "topic": "t", "payload": "x", "source": claimed})).await;
        assert_eq!(r["exception"], "IPCException", "claiming {claimed}: {r}");
        assert!(r["message"].as_str().unwrap().contains("publish only as itself"), "{r}");
    }
    let line = env.root.wait_function_log("driver", &["publish refused", &calc_arn]).await;
    assert!(line.contains("[ERROR]-"), "{line}");

    // As itself: delivered.
    for (source, payload) in [
        (Some(driver_arn.clone()), "own-qualified"),
        (Some(crate::common::functions::unqualified_arn("driver")), "own-unqualified"),
        (None, "no-source"),
    ] {
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

/// A function whose module-level code raises, or whose handler does not
/// exist, does not start: the caller gets an error naming the reason, the log
/// has the traceback, status counts the failures, and a pinned one is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_that_fails_to_start() {
    let broken = Function::python("broken", "raise RuntimeError('init failed here')\n\ndef handler(e, c):\n    return 1\n");
    let pinned = Function::python("brokenpinned", "import nonexistent_module_xyz\n").pinned();
    let nohandler = Function::python("nohandler", "def other(e, c):\n    return 1\n");
    let arns = [broken.arn(), pinned.arn(), nohandler.arn()];
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g, "tester").function(broken).function(pinned).function(nohandler).function(Function::python("calc", CALC_PY)).route(
            "tester",
            "broken/in",
            &arns[0],
        )
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    for (arn, reason) in arns.iter().zip(["RuntimeError: init failed here", "ModuleNotFoundError", "has no function 'handler'"]) {
        let r = driver.invoke(json!({"FunctionName": arn, "Payload": {}})).await;
        let msg = if r["exception"].is_string() { r["message"].as_str().unwrap().to_string() } else { unhandled_message(&r) };
        assert!(msg.contains(reason), "{arn}: {msg}");
    }
    env.root.wait_function_log("broken", &["[ERROR]-", "RuntimeError: init failed here"]).await;
    env.root.wait_function_log("nohandler", &["[ERROR]-", "has no function 'handler'"]).await;
    // The pinned one is retried with back-off.
    eventually("the pinned function to be retried", DEADLINE, || {
        (env.root.function_status("brokenpinned").unwrap()["startFailures"].as_u64().unwrap() >= 2).then_some(())
    })
    .await;
    env.root.wait_function_log("brokenpinned", &["[ERROR]-", "restarting in"]).await;
    let s = env.root.function_status("broken").unwrap();
    assert!(s["startFailures"].as_u64().unwrap() >= 1 && s["instances"].as_array().unwrap().is_empty(), "{s}");
    // Messages routed to it cannot run: each is counted and logged, not lost silently.
    for i in 0..3 {
        driver.dev.publish("broken/in", QoS::AtLeastOnce, format!("{{\"i\": {i}}}")).await;
    }
    eventually("the routed messages to be counted as not run", DEADLINE, || {
        (env.root.function_status("broken").unwrap()["eventsNotRun"].as_u64().unwrap() == 3).then_some(())
    })
    .await;
    env.root.wait_function_log("broken", &["[ERROR]-", "queued messages were not run: the function failed to start"]).await;
    env.core.wait_log(&["queued messages for the function were not run"]).await;
    // The others are fine.
    assert_eq!(driver.invoke_ok(&crate::common::functions::function_arn("calc"), json!({"op": "add", "a": 1, "b": 2})).await["sum"], 3);
    env.stop();
}

/// The pids of every worker process of the core on `root` (instances and
/// zygotes: their command line names the root's IPC socket).
pub fn worker_pids(root: &crate::common::Root) -> Vec<u32> {
    let socket = root.path.join("ggc/socket/ipc.sock").display().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|a| a == socket.as_bytes()) && !process_ended(pid as u64) {
            pids.push(pid);
        }
    }
    pids
}

/// `pid (name) ppid=.. state=.. threads=[..] cwd=..`, for failure messages
/// (an instance's working directory is its function's code).
fn describe_process(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string()).unwrap_or_default();
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string())
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).map(|p| p.display().to_string()).unwrap_or_default();
    format!("{pid} ({}) ppid={} state={} threads={threads:?} cwd={cwd}", field("Name:"), field("PPid:"), field("State:"))
}

const BUSY_PY: &str = r#"
import threading
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def tick():
    while True:
        try:
            iot.publish(topic='tick', payload=b't')
        except Exception:
            pass
        time.sleep(0.01)


threading.Thread(target=tick, daemon=True).start()


def handler(event, context):
    time.sleep(event.get('sleep', 0))
"#;

/// Starts a pinned function publishing from a thread and an on-demand one
/// (in the middle of a 120 s invocation when `busy`, else idle after one),
/// then stops the core with SIGTERM, or kills it with SIGKILL when `kill`:
/// every worker process (zygote, instances) must end with it.
async fn workers_end_with_the_core(kill: bool, busy: bool) {
    let ticker = Function::python("ticker", BUSY_PY).pinned();
    let sleeper = Function::python("sleeper", BUSY_PY).timeout(300);
    let sleeper_arn = sleeper.arn();
    let mut env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(ticker).function(sleeper).route("tester", "sleep", &sleeper_arn)
    });
    let mut tester = env.connect("tester").await;
    let sleep = if busy { 120 } else { 0 };
    tester.publish("sleep", QoS::AtLeastOnce, format!(r#"{{"sleep": {sleep}}}"#)).await;
    eventually("both functions to run", DEADLINE, || {
        let sleeper = env.root.function_status("sleeper")?;
        let state_ok = sleeper["instances"].as_array()?.iter().any(|i| i["state"] == if busy { "busy" } else { "idle" });
        let ran = busy || sleeper["succeeded"] == 1;
        let ticking = env.root.function_status("ticker")?["instances"].as_array()?.len() == 1;
        (state_ok && ran && ticking).then_some(())
    })
    .await;
    let workers = worker_pids(&env.root);
    assert!(workers.len() >= 3, "a zygote and two instances: {workers:?}");
    if kill {
        let ok = std::process::Command::new("kill").args(["-KILL", &env.core.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    } else {
        env.core.stop_ok();
    }
    let deadline = std::time::Instant::now() + DEADLINE;
    while !workers.iter().all(|p| process_ended(*p as u64)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let left: Vec<u32> = workers.iter().copied().filter(|p| !process_ended(*p as u64)).collect();
    let described: Vec<String> = left.iter().map(|p| describe_process(*p)).collect();
    // Do not leave them behind (they are this test's processes).
    for p in &left {
        let _ = std::process::Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
    assert!(left.is_empty(), "{} the core, these workers still run:\n{}", if kill { "killed" } else { "stopped" }, described.join("\n"));
    assert!(worker_pids(&env.root).is_empty());
}

/// No function process outlives the core, whether it is stopped or killed,
/// when the instances are idle (a pinned one publishing from a thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_workers_end_with_the_core() {
    workers_end_with_the_core(false, false).await;
    workers_end_with_the_core(true, false).await;
}

/// A clean stop (SIGTERM) while an invocation runs: the core waits its grace
/// period, then ends the instance before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_worker_ends_with_a_stopped_core() {
    workers_end_with_the_core(false, true).await;
}

/// The core is killed (SIGKILL) while an invocation runs: the worker loses
/// its connection and ends, rather than run its handler on unwatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_worker_ends_with_a_killed_core() {
    workers_end_with_the_core(true, true).await;
}

/// Writes `mb` MB to stdout without a newline (then one newline), or logs
/// one record of `log_mb` MB.
const BABBLER_PY: &str = r#"
import logging
import sys


def handler(event, context):
    chunk = 'x' * (1 << 20)
    for _ in range(event.get('mb', 0)):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    if event.get('mb'):
        sys.stdout.write('\nend of the long line\n')
        sys.stdout.flush()
    if event.get('log_mb'):
        logging.warning('y' * (event['log_mb'] << 20))
        logging.warning('end of the long record')
    return 'done'
"#;

/// The peak resident memory (VmHWM) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// A function that writes 256 MB to stdout in one line does not make the
/// core hold it: the core's peak memory grows by far less than that, the
/// core goes on, and the function's log stays within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_output_line_does_not_grow_the_core() {
    let babbler = Function::python("babbler", BABBLER_PY).timeout(120);
    let arn = babbler.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(babbler));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let before = peak_rss(env.core.pid());
    let r = driver.invoke(json!({"FunctionName": arn, "Payload": {"mb": 256}})).await;
    assert_eq!(r["PayloadJson"], "done", "{r}");
    env.root.wait_function_log("babbler", &["end of the long line"]).await;
    let grown = peak_rss(env.core.pid()).saturating_sub(before);
    assert!(grown < 64 << 20, "the core's peak memory grew by {} MB for one 256 MB line", grown >> 20);
    let size = std::fs::metadata(env.root.function_log_path("babbler")).unwrap().len();
    assert!(size <= 1 << 20, "the function's log is {size} bytes; its bound is 1 MiB");
    env.stop();
}

/// One logging record of 8 MB: the function's log stays within its bound
/// (1 MiB by default), and the instance goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_log_record_keeps_the_log_bounded() {
    let babbler = Function::python("babbler", BABBLER_PY).pinned();
    let arn = babbler.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(babbler));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let r = driver.invoke(json!({"FunctionName": arn, "Payload": {"log_mb": 8}})).await;
    assert_eq!(r["PayloadJson"], "done", "{r}");
    env.root.wait_function_log("babbler", &["end of the long record"]).await;
    let dir = env.root.function_log_path("babbler").parent().unwrap().to_path_buf();
    let total: u64 = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("babbler.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(total <= 1 << 20, "the function's log files hold {total} bytes; the bound is 1 MiB");
    assert_eq!(env.root.function_status("babbler").unwrap()["instancesStarted"], 1);
    env.stop();
}

/// Records each event it handles on `tally/out`; `crash` exits mid-handler.
const TALLY_PY: &str = r#"
import json
import os
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    time.sleep(event.get('sleep', 0))
    if event.get('crash'):
        os._exit(1)
    iot.publish(topic='tally/out', payload=json.dumps({'i': event['i'], 'pid': os.getpid()}))
"#;

/// Work queued behind an invocation that crashes its pinned instance (some of
/// it already sent ahead to that instance) is not lost and not run twice: it
/// runs once each, in order, on the restarted instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_sent_ahead_to_a_crashing_instance_runs_once_on_the_next() {
    let tally = Function::python("tally", TALLY_PY).pinned();
    let arn = tally.arn();
    let env = Env::start_group(functions_root(json!({})), &["feeder", "counter"], |g| {
        g.function(tally).route("feeder", "tally/in", &arn).route(&arn, "tally/out", "counter")
    });
    let mut feeder = env.connect("feeder").await;
    let mut counter = env.connect("counter").await;
    counter.sub("tally/out", QoS::AtLeastOnce).await;
    // While the first event runs, the crash and twenty more queue up; when it
    // ends, the crash and the next three are sent to the instance together.
    feeder.publish("tally/in", QoS::AtLeastOnce, json!({"i": -1, "sleep": 1}).to_string()).await;
    feeder.publish("tally/in", QoS::AtLeastOnce, json!({"crash": true}).to_string()).await;
    for i in 0..20 {
        feeder.publish("tally/in", QoS::AtLeastOnce, json!({"i": i}).to_string()).await;
    }
    let first: Value = serde_json::from_slice(&counter.recv().await.payload).unwrap();
    assert_eq!(first["i"], -1, "{first}");
    let pid1 = first["pid"].as_u64().unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let v: Value = serde_json::from_slice(&counter.recv().await.payload).unwrap();
        assert_ne!(v["pid"].as_u64(), Some(pid1), "ran on the instance that crashed before it: {v}");
        seen.push(v["i"].as_i64().unwrap());
    }
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    counter.expect_silence().await;
    let s = env.root.function_status("tally").unwrap();
    assert_eq!((s["crashes"].as_u64(), s["succeeded"].as_u64(), s["invocations"].as_u64()), (Some(1), Some(21), Some(22)), "{s}");
    env.stop();
}

/// Returns a string of `n` characters and its pid; logs a line of `log` characters.
const BIG_RESULT_PY: &str = r#"
import logging
import os


def handler(event, context):
    if event.get('log'):
        logging.getLogger().warning('L' * event['log'])
    return {'text': 'x' * event.get('n', 0), 'pid': os.getpid()}
"#;

/// A result over `maxPayloadBytes` is an `Unhandled` error naming its size
/// (results are bounded like payloads, so that every frame between the core
/// and its workers has a limit); the instance lives on and a smaller result
/// arrives whole. A log line longer than a frame may carry
/// is cut, saying so, and the instance lives on too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_result_is_unhandled_and_long_log_lines_are_cut() {
    let big = Function::python("big", BIG_RESULT_PY).pinned();
    let arn = big.arn();
    let env = fault_env(big);
    let (mut driver, mut sensor, mut display) = devices(&env).await;
    let max = 128 * 1024;
    let pid = driver.invoke_ok(&arn, json!({"n": 10})).await["pid"].as_u64().unwrap();

    let r = driver.invoke(json!({"FunctionName": arn, "Payload": {"n": max}})).await;
    let msg = unhandled_message(&r);
    let len: usize = msg
        .strip_prefix("the function's result of ")
        .and_then(|rest| rest.strip_suffix(&format!(" bytes is over maxPayloadBytes ({max})")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(len > max, "{msg}");
    env.root.wait_function_log("big", &["[ERROR]-", "is over maxPayloadBytes"]).await;

    // Under the bound: whole (the driver's reply carries it three times).
    let r = driver.invoke_ok(&arn, json!({"n": max / 8})).await;
    assert_eq!(r["text"].as_str().map(str::len), Some(max / 8));
    assert_eq!(r["pid"].as_u64(), Some(pid), "the instance was replaced");

    // A 1 MiB log line: cut, the instance still the same.
    let r = driver.invoke_ok(&arn, json!({"n": 1, "log": 1 << 20})).await;
    assert_eq!(r["pid"].as_u64(), Some(pid), "the instance was replaced");
    let line = env.root.wait_function_log("big", &["[WARN]-", "LLLL", "[cut: "]).await;
    assert!(line.len() < 70 * 1024, "{}", line.len());
    others_work(&mut driver, &mut sensor, &mut display, 1).await;
    env.stop();
}

//! Lambda executables (docs/native.md): C programs compiled by the test with
//! `cc` against `ggcore sdk path c`, deployed with runtime `executable`:
//! routed binary messages in and out, C ↔ Python invokes, the C SDK's error
//! codes, `GG_RT_OPT_ASYNC` with the program publishing from its own thread,
//! a segfault, a hang past Timeout, a memory hog, a program linked with
//! RUNPATH to a stub library, and an installed ggcore (scripts/install).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::functions::{binary_probe, function_arn, functions_root, with_driver, Driver, Function, CALC_PY};
use crate::common::mqtt::text;
use crate::common::native::{compile, compile_against, fixture, sdk_path, tempdir};
use crate::common::process::{ggcore_bin, tests_dir, Core};
use crate::common::{Env, QoS};

/// The numbers of `gg_error` and `gg_request_status` the tests read back.
const GGE_SUCCESS: i64 = 0;
const GGE_INVALID_PARAMETER: i64 = 2;
const GGE_INVALID_STATE: i64 = 3;
const GG_REQUEST_SUCCESS: i64 = 0;
const GG_REQUEST_HANDLED: i64 = 1;
const GG_REQUEST_UNKNOWN: i64 = 3;

/// A device's messages reach a pinned C function byte for byte (zero bytes
/// and non-UTF-8 included), with the topic as the client context's
/// `custom.subject`, in order, in one instance; what it publishes reaches the
/// device; its response goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_device_to_function_to_device() {
    let relay = Function::native("crelay", &compile("relay.c")).pinned();
    let arn = relay.arn();
    let env = Env::start_group(functions_root(json!({})), &["sensor", "display"], |g| {
        g.function(relay).route("sensor", "c/in/#", &arn).route(&arn, "c/#", "display")
    });
    let mut sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("c/out", QoS::AtLeastOnce).await;
    display.sub("c/subject", QoS::AtLeastOnce).await;

    let mut payloads = vec![binary_probe(), vec![0, 0, 0], b"plain text".to_vec(), Vec::new()];
    payloads.push((0..=255u8).cycle().take(40_000).collect());
    for (i, p) in payloads.iter().enumerate() {
        sensor.publish(&format!("c/in/{i}"), QoS::AtLeastOnce, p.clone()).await;
    }
    for (i, p) in payloads.iter().enumerate() {
        let out = display.recv().await;
        assert_eq!((out.topic.as_str(), out.payload.len()), ("c/out", p.len()), "message {i}");
        assert_eq!(out.payload.to_vec(), *p, "message {i} changed");
        let subject = display.recv().await;
        assert_eq!(subject.topic, "c/subject");
        let context: Value = serde_json::from_slice(&subject.payload).unwrap_or_else(|_| panic!("not JSON: {}", text(&subject)));
        assert_eq!(context["custom"]["subject"], format!("c/in/{i}"), "{context}");
    }
    display.expect_silence().await;
    let s = env.root.function_status("crelay").expect("relay in status");
    let n = payloads.len() as u64;
    assert_eq!((s["invocations"].as_u64(), s["succeeded"].as_u64(), s["instancesStarted"].as_u64()), (Some(n), Some(n), Some(1)), "{s}");
    env.stop();
}

/// `status=S err=E body=B` of the calc program's invoke and publish commands.
fn outcome(r: &str) -> (i64, i64, String) {
    let err = r.split("err=").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or(-1);
    let status = r.split("status=").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or(-1);
    let body = r.split_once("body=").map(|(_, b)| b.to_string()).unwrap_or_default();
    (err, status, body)
}

/// A C function's text answer to `command` (which must not fail).
async fn ask(driver: &mut Driver, arn: &str, command: &str) -> String {
    let r = driver.invoke(json!({ "FunctionName": arn, "PayloadText": command })).await;
    assert_eq!(r["FunctionError"], "", "{command}: {r}");
    r["Payload"].as_str().unwrap_or_default().to_string()
}

/// Python invokes C (the context: the function's ARN and the caller's client
/// context), C invokes Python (a result, and a Python raise as
/// GG_REQUEST_HANDLED with the error document); `gg_lambda_handler_write_error`
/// reaches the caller as a Handled error; ExecArgs reach `argv`; calls before
/// `gg_global_init`, NULL and bad arguments, a publish the subscription table
/// does not allow and an invoke of an unknown function each give their
/// documented code; gg_log, stdout and stderr lines land in the function's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_and_python_invoke_each_other() {
    let calc_c = Function::native("ccalc", &compile("calc.c")).exec_args("--port  7 last");
    let c_arn = calc_c.arn();
    let py_arn = function_arn("calc");
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g, "tester").function(calc_c).function(Function::python("calc", CALC_PY)).route(&c_arn, "c/allowed", "tester")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;

    // Python → C: binary-safe echo, and the context.
    let r = driver.invoke(json!({ "FunctionName": c_arn, "PayloadB64": crate::common::functions::base64(b"echo:\x00a\xffb") })).await;
    assert_eq!((r["FunctionError"].as_str(), r["PayloadB64"].as_str()), (Some(""), Some("AGH/Yg==")), "{r}");
    let r = driver.invoke(json!({ "FunctionName": c_arn, "PayloadText": "ctx", "ClientContext": {"custom": {"k": "v"}} })).await;
    let ctx = r["Payload"].as_str().unwrap_or_default().to_string();
    let mut parts = ctx.splitn(3, '|');
    assert_eq!(parts.next(), Some(c_arn.as_str()), "{ctx}");
    let context: Value =
        serde_json::from_str(parts.next().unwrap_or_default()).unwrap_or_else(|_| panic!("client context not JSON: {ctx}"));
    assert_eq!(context["custom"], json!({"k": "v"}), "{ctx}");
    assert_eq!(ask(&mut driver, &c_arn, "args").await, "--port 7 last");

    // C → Python, with the C function's client context.
    let (err, status, body) =
        outcome(&ask(&mut driver, &c_arn, &format!("invoke:{py_arn}|{{\"op\": \"add\", \"a\": 40, \"b\": 2}}")).await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_SUCCESS), "{body}");
    let sum: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!((&sum["sum"], &sum["custom"]), (&json!(42), &json!({"from": "c"})), "{sum}");
    let (err, status, body) =
        outcome(&ask(&mut driver, &c_arn, &format!("invoke:{py_arn}|{{\"op\": \"raise\", \"message\": \"py says no\"}}")).await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_HANDLED), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap_or_default()["errorMessage"], "py says no", "{body}");
    // An unknown function: GG_REQUEST_UNKNOWN with the core's reason.
    let ghost = function_arn("ghost");
    let (err, status, body) = outcome(&ask(&mut driver, &c_arn, &format!("invoke:{ghost}|{{}}")).await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_UNKNOWN), "{body}");
    assert!(body.contains("ghost"), "the reason names the function: {body}");

    // Publishes: allowed by the table, and not.
    driver.dev.sub("c/#", QoS::AtLeastOnce).await;
    let (err, status, _) = outcome(&ask(&mut driver, &c_arn, "publish:c/allowed").await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_SUCCESS));
    let p = driver.next_other().await;
    assert_eq!((p.topic.as_str(), text(&p)), ("c/allowed", "from c".to_string()));
    // Not routed: accepted, delivered nowhere (the table decides where, as in
    // Greengrass).
    let (err, status, body) = outcome(&ask(&mut driver, &c_arn, "publish:c/not-routed").await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_SUCCESS), "{body}");

    // The shadow calls reach the shadow service: an update, then the stored document.
    let (err, status, body) = outcome(&ask(&mut driver, &c_arn, r#"shadow:lamp|{"state": {"reported": {"from": "c"}}}"#).await);
    assert_eq!((err, status), (GGE_SUCCESS, GG_REQUEST_SUCCESS), "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!((&doc["state"]["reported"], &doc["version"]), (&json!({"from": "c"}), &json!(1)), "{body}");

    // write_error: Handled, with the message.
    let r = driver.invoke(json!({ "FunctionName": c_arn, "PayloadText": "fail" })).await;
    assert_eq!((r["FunctionError"].as_str(), &r["PayloadJson"]["errorMessage"]), (Some("Handled"), &json!("failed on purpose")), "{r}");

    driver.dev.expect_silence().await;

    // Error codes: before gg_global_init, then bad arguments.
    assert_eq!(ask(&mut driver, &c_arn, "preinit").await, format!("{GGE_INVALID_STATE},{GGE_INVALID_STATE}"));
    let p = GGE_INVALID_PARAMETER;
    assert_eq!(ask(&mut driver, &c_arn, "errors").await, format!("{p},{p},{p},{p},{p},{p},{p},{GGE_INVALID_STATE},{GGE_SUCCESS}"));

    // A 3 MiB topic is refused and a 3 MiB log line cut; the program lives on.
    let pid = ask(&mut driver, &c_arn, "pid").await;
    assert_eq!(ask(&mut driver, &c_arn, "big").await, format!("{p},{pid}"));

    assert_eq!(ask(&mut driver, &c_arn, "log").await, "logged");
    env.root.wait_function_log("ccalc", &["stdout line"]).await;
    env.root.wait_function_log("ccalc", &["stderr line"]).await;
    let log = env.root.function_log("ccalc");
    for (level, line) in [("INFO", "info line 7"), ("WARN", "warn line"), ("ERROR", "error line"), ("INFO", "stdout line")] {
        assert!(log.lines().any(|l| l.contains(&format!("[{level}]-")) && l.contains(line)), "[{level}] {line} in:\n{log}");
    }
    let s = env.root.function_status("ccalc").unwrap();
    assert_eq!((s["handledErrors"].as_u64(), s["crashes"].as_u64()), (Some(1), Some(0)), "{s}");
    env.stop();
}

/// With `GG_RT_OPT_ASYNC` the runtime serves invocations on its own thread
/// while the program's main thread goes on: main waits for the first
/// invocation, then publishes 100 ticks, which all arrive, in order, after
/// what the handler published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_async_runtime_beside_the_programs_thread() {
    let ticker = Function::native("cticker", &compile("ticker.c")).pinned().exec_args("100");
    let arn = ticker.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(ticker).route(&arn, "ticker/#", "tester").route("tester", "ticker/poke", &arn)
    });
    let mut tester = env.connect("tester").await;
    tester.sub("ticker/#", QoS::AtLeastOnce).await;
    tester.publish("ticker/poke", QoS::AtLeastOnce, "poke").await;
    let first = tester.recv().await;
    assert_eq!((first.topic.as_str(), text(&first)), ("ticker/handled", "handled".to_string()));
    for i in 0..100 {
        let p = tester.recv().await;
        assert_eq!((p.topic.as_str(), text(&p)), ("ticker/tick", i.to_string()), "ticks in order, none missed");
    }
    tester.expect_silence().await;
    let s = env.root.function_status("cticker").unwrap();
    assert_eq!((s["succeeded"].as_u64(), s["instancesStarted"].as_u64()), (Some(1), Some(1)), "{s}");
    env.stop();
}

/// The Unhandled message of an invoke result.
fn unhandled_message(r: &Value) -> String {
    assert_eq!(r["FunctionError"], "Unhandled", "{r}");
    r["PayloadJson"]["errorMessage"].as_str().unwrap_or_else(|| panic!("no errorMessage: {r}")).to_string()
}

/// The instance's pid, from a new process (not `old`).
async fn next_pid(driver: &mut Driver, arn: &str, old: u64) -> u64 {
    let pid: u64 = ask(driver, arn, "pid").await.parse().unwrap();
    crate::common::functions::replaced(old, pid).await
}

/// C functions that misbehave end only their instance: a segfault and
/// `exit(3)` are Unhandled naming what happened, a spin past Timeout is
/// killed ("Task timed out"), allocating past MemorySize is out of memory;
/// each time the function answers again from a new process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_crash_timeout_and_memory() {
    let calc_c = Function::native("ccalc", &compile("calc.c")).pinned().timeout(2).memory_kb(32 * 1024);
    let arn = calc_c.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(calc_c));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let mut pid: u64 = ask(&mut driver, &arn, "pid").await.parse().unwrap();
    let mechanism = env.root.status()["memoryLimits"].as_str().unwrap_or_default().to_string();

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "PayloadText": "segv"})).await);
    assert!(msg.contains("signal 11") || msg.contains("SIGSEGV"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "PayloadText": "exit"})).await);
    assert!(msg.contains("exited with code 3"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "PayloadText": "spin"})).await);
    assert!(msg.contains("Task timed out after 2.00 seconds"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "PayloadText": "hog"})).await);
    assert!(msg.contains("out of memory"), "memory limits by {mechanism}: {msg}");
    next_pid(&mut driver, &arn, pid).await;

    let s = env.root.function_status("ccalc").unwrap();
    let counts = (s["crashes"].as_u64(), s["timeouts"].as_u64(), s["outOfMemory"].as_u64(), s["instancesStarted"].as_u64());
    assert_eq!(counts, (Some(2), Some(1), Some(1), Some(5)), "{s}");
    env.stop();
}

/// A program built the way AWS documents (linked against the SDK's stub
/// library with `--enable-new-dtags`, so the stub's directory is a RUNPATH)
/// loads the stub when run on its own, and ggcore's library when the core
/// runs it: the core puts its SDK first on LD_LIBRARY_PATH, which a RUNPATH
/// yields to. The stub ships in the function's own `lib/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_program_linked_with_a_stub_library_runs_on_ggcores() {
    let stub_dir = tempdir("stub");
    std::fs::create_dir_all(stub_dir.join("include")).unwrap();
    std::fs::create_dir_all(stub_dir.join("lib")).unwrap();
    std::fs::copy(crate::common::native::sdk_c().join("include/greengrasssdk.h"), stub_dir.join("include/greengrasssdk.h")).unwrap();
    let stub_lib = stub_dir.join("lib/libaws-greengrass-core-sdk-c.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-Wl,-soname,libaws-greengrass-core-sdk-c.so"])
        .arg(format!("-Wl,--version-script={}", fixture("stub.map").display()))
        .arg("-I")
        .arg(stub_dir.join("include"))
        .arg("-o")
        .arg(&stub_lib)
        .arg(fixture("stub.c"))
        .output()
        .unwrap();
    assert!(out.status.success(), "stub: {}", String::from_utf8_lossy(&out.stderr));
    let program = compile_against(&stub_dir, "calc.c", &["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/lib"]);

    // On its own, the program loads the stub next to it.
    let alone = tempdir("alone");
    std::fs::create_dir_all(alone.join("lib")).unwrap();
    std::fs::copy(&stub_lib, alone.join("lib/libaws-greengrass-core-sdk-c.so")).unwrap();
    std::fs::write(alone.join("fn"), &program).unwrap();
    std::fs::set_permissions(alone.join("fn"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dynamic = Command::new("readelf").arg("-d").arg(alone.join("fn")).output().unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(dynamic.contains("RUNPATH") && dynamic.contains("$ORIGIN/lib"), "{dynamic}");
    let run = Command::new(alone.join("fn")).env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("ERROR: Loaded stub instead of implementation library!"), "{run:?}");
    assert_eq!(run.status.code(), Some(1), "gg_global_init fails in the stub");

    // In the core it runs on ggcore's library.
    let stub_bytes = std::fs::read(&stub_lib).unwrap();
    let f = Function::native("cstubbed", &program).executable_file("lib/libaws-greengrass-core-sdk-c.so", &stub_bytes);
    let arn = f.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(f));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let ctx = ask(&mut driver, &arn, "ctx").await;
    assert!(ctx.starts_with(&format!("{arn}|")), "{ctx}");
    let log = env.root.function_log("cstubbed");
    assert!(!log.contains("Loaded stub"), "{log}");
    env.stop();
    let _ = std::fs::remove_dir_all(&stub_dir);
    let _ = std::fs::remove_dir_all(&alone);
}

/// `ggcore` installed by scripts/install into a fresh prefix finds its
/// worker, plugins and SDKs beside its executable (no GGCORE_SDK_ROOT, no
/// path of the build tree): `sdk path` names the prefix's SDKs, a C function
/// builds against them, and a core run from the prefix runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn installed_layout_finds_its_sdks_and_runs_a_c_function() {
    let prefix = tempdir("prefix");
    std::fs::set_permissions(&prefix, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = ggcore_bin().parent().and_then(Path::parent).unwrap().to_path_buf();
    let out = Command::new(tests_dir().join("../scripts/install")).arg(&prefix).env("CARGO_TARGET_DIR", &target).output().unwrap();
    assert!(out.status.success(), "scripts/install: {}", String::from_utf8_lossy(&out.stderr));
    let bin = prefix.join("bin/ggcore");
    let lib = prefix.join("lib/ggcore");
    let installed = || {
        let mut c = Command::new(&bin);
        c.env_remove("GGCORE_SDK_ROOT").env_remove("GGCORE_WORKER").env_remove("GGCORE_ROOT").env_remove("RUST_LOG");
        c
    };
    assert_eq!(sdk_path(&mut installed(), "python"), lib.join("sdk-python"));
    assert_eq!(sdk_path(&mut installed(), "node"), lib.join("sdk-node/node_modules"));
    // Authors can import the SDK outside a function (their unit tests); a
    // call that needs the core says there is none.
    let python = Command::new(std::env::var("GGCORE_TEST_PYTHON").unwrap_or_else(|_| "python3".into()))
        .env("PYTHONPATH", lib.join("sdk-python"))
        .args(["-c", "import greengrasssdk\ntry:\n    greengrasssdk.client('iot-data').publish(topic='t', payload='x')\nexcept Exception as e:\n    print(e)"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&python.stdout).contains("not running in a ggcore function"), "{python:?}");
    let c_prefix = sdk_path(&mut installed(), "c");
    assert_eq!(c_prefix, lib.join("sdk-c"));
    assert_eq!(sdk_path(&mut installed(), "java"), lib.join("sdk-java/aws-greengrass-core-sdk-java.jar"));

    let program = compile_against(&c_prefix, "calc.c", &[]);
    let root = functions_root(json!({}));
    let listing = installed().arg("--root").arg(&root.path).args(["plugins", "list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for plugin in ["native", "python", "node"] {
        let line =
            listing.lines().find(|l| l.starts_with(&format!("{plugin} "))).unwrap_or_else(|| panic!("{plugin} not listed:\n{listing}"));
        assert!(line.contains(&lib.display().to_string()) && line.ends_with(": ok"), "{line}");
    }

    let f = Function::native("cinstalled", &program);
    let arn = f.arn();
    let env =
        Env::start_group_with(root, &["tester"], |g| with_driver(g, "tester").function(f), |r| Core::start_command(&r.path, installed()));
    let mut driver = Driver::new(env.connect("tester").await).await;
    assert!(ask(&mut driver, &arn, "ctx").await.starts_with(&format!("{arn}|")));
    // The Python driver ran on the installed Python SDK too.
    env.stop();
    let _ = std::fs::remove_dir_all(&prefix);
}

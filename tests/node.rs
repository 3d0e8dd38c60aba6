//! Node.js functions (docs/node.md): routed messages in and out, async and
//! callback handlers, binary payloads, Node ↔ Python invokes, the published
//! npm `aws-greengrass-core-sdk` bundled by a function, errors, crashes,
//! timeouts, memory, and a machine without Node. The JavaScript runtime's own
//! tests (`sdk-node/test`, Node's test runner) run from here too.

use serde_json::{json, Value};

use crate::common::functions::{
    binary_probe, functions_root, next_pid, relay_events, unqualified_arn, with_driver, Driver, Function, CALC_PY,
};
use crate::common::mqtt::text;
use crate::common::process::ggcore_command;
use crate::common::{eventually, Env, QoS, DEADLINE};

/// Pinned, callback style, ggcore's SDK (found on NODE_PATH): publishes what
/// it received on `relay/out`; its result must go nowhere.
const RELAY_JS: &str = r#"
const ggSdk = require('aws-greengrass-core-sdk');
const iot = new ggSdk.IotData();
let count = 0;
exports.handler = function (event, context, callback) {
    count += 1;
    const out = {
        event,
        subject: context.clientContext.Custom.subject,
        count,
        sdk: require.resolve('aws-greengrass-core-sdk'),
    };
    iot.publish({ topic: 'relay/out', payload: JSON.stringify(out) }, (err) => callback(err, { returned: 'nowhere' }));
};
"#;

/// Binary encoding, async handler, ggcore's SDK in promise style: publishes
/// the bytes reversed, prefixed with what the event was.
const BINARY_JS: &str = r#"
const { IotData } = require('aws-greengrass-core-sdk');
const iot = new IotData();
exports.handler = async (event) => {
    const kind = Buffer.isBuffer(event) ? 'Buffer' : typeof event;
    await iot.publish({ topic: 'bin/out', payload: Buffer.concat([Buffer.from(kind + ':'), Buffer.from(event).reverse()]) });
    return Buffer.from([0, 1, 2, 0]);
};
"#;

/// A device's JSON messages reach a pinned Node function as decoded events
/// with the topic as `clientContext.Custom.subject`, in order, once, in one
/// instance; what it publishes reaches the device; its return value goes
/// nowhere. With `EncodingType: binary` an async handler gets a Buffer and
/// non-UTF-8 bytes go in and out unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_device_to_function_to_device() {
    let relay = Function::node("noderelay", RELAY_JS).pinned();
    let binary = Function::node("nodebin", BINARY_JS).binary();
    let relay_arn = relay.arn();
    let env = Env::start_group(functions_root(json!({})), &["sensor", "display"], |g| {
        g.function(relay)
            .function(binary)
            .route("sensor", "relay/in/#", &relay_arn)
            .route(&relay_arn, "relay/#", "display")
            .route("sensor", "bin/in", &unqualified_arn("nodebin"))
            .route(&unqualified_arn("nodebin"), "bin/#", "display")
    });
    let mut sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("relay/#", QoS::AtLeastOnce).await;
    display.sub("bin/#", QoS::AtLeastOnce).await;

    let events = relay_events();
    for (i, e) in events.iter().enumerate() {
        sensor.publish(&format!("relay/in/{i}"), QoS::AtLeastOnce, e.to_string()).await;
    }
    let sdk_dir = std::env::var("GGCORE_SDK_ROOT").map(|r| format!("{r}/sdk-node/")).unwrap_or_default();
    for (i, e) in events.iter().enumerate() {
        let p = display.recv().await;
        assert_eq!(p.topic, "relay/out");
        let got: Value = serde_json::from_slice(&p.payload).unwrap_or_else(|_| panic!("not JSON: {}", text(&p)));
        assert_eq!((&got["event"], &got["subject"], &got["count"]), (e, &json!(format!("relay/in/{i}")), &json!(i + 1)), "{got}");
        assert!(got["sdk"].as_str().unwrap_or_default().starts_with(&sdk_dir), "ggcore's SDK from {sdk_dir}: {got}");
    }

    let bytes = binary_probe();
    sensor.publish("bin/in", QoS::AtLeastOnce, bytes.clone()).await;
    let p = display.recv().await;
    assert_eq!(p.topic, "bin/out");
    let mut want = b"Buffer:".to_vec();
    want.extend(bytes.iter().rev());
    assert_eq!(p.payload.to_vec(), want);

    display.expect_silence().await;
    let relay = env.root.function_status("noderelay").expect("relay in status");
    assert_eq!((relay["invocations"].as_u64(), relay["succeeded"].as_u64()), (Some(3), Some(3)), "{relay}");
    assert_eq!(relay["instancesStarted"].as_u64(), Some(1), "{relay}");
    env.stop();
}

/// A Node function the Python driver invokes, and which invokes others.
const CALC_JS: &str = r#"
const { Lambda, IotData } = require('aws-greengrass-core-sdk');
const lambda = new Lambda();
const publisher = new IotData();
exports.handler = function (event, context, callback) {
    switch (event.op) {
    case 'add':
        return callback(null, {
            sum: event.a + event.b, custom: context.clientContext.Custom, arn: context.invokedFunctionArn,
            name: context.functionName, version: context.functionVersion, requestId: context.awsRequestId,
            remaining: context.getRemainingTimeInMillis(), pid: process.pid,
        });
    case 'fail': return callback(new Error('failed on purpose'));
    case 'throw': throw new TypeError('thrown on purpose');
    case 'reject': return Promise.reject(new RangeError('rejected on purpose'));
    case 'async': return (async () => { await new Promise((r) => setTimeout(r, 20)); return { waited: true }; })();
    case 'drain': setTimeout(() => {}, 20); return undefined;
    case 'log':
        console.log('log line %d', 7);
        console.warn('warn line');
        console.error('error line');
        process.stdout.write('stdout line\n');
        return callback(null, {});
    case 'invoke':
        return lambda.invoke({ FunctionName: event.target, Payload: JSON.stringify(event.payload),
                               ClientContext: Buffer.from(JSON.stringify({ custom: { from: 'node' } })).toString('base64') },
            (err, data) => {
                if (err) return callback(err);
                callback(null, { FunctionError: data.FunctionError, Payload: JSON.parse(data.Payload.toString()) });
            });
    case 'burst':
        // Publishes without yielding to the event loop: no reply is read
        // meanwhile, so the plugin must queue them, not block.
        for (let i = 0; i < event.n; i++) publisher.publish({ topic: 'burst/out', payload: String(i) }, () => {});
        return callback(null, { sent: event.n });
    case 'exit': process.exit(3);
    case 'later': setTimeout(() => { throw new Error('thrown from a timer'); }, 10); return callback(null, { pid: process.pid });
    case 'spin': for (;;) { /* past the timeout */ }
    case 'hog': { const chunks = []; for (;;) chunks.push(Buffer.alloc(1 << 20, 1)); }
    default: return callback(null, { echo: event, pid: process.pid, mode: process.argv[process.argv.length - 1], uid: process.getuid(), umask: process.umask(), env: process.env.FROM_GROUP || null });
    }
};
"#;

/// The error document of a function error, with its kind.
fn function_error(r: &Value) -> (String, Value) {
    (r["FunctionError"].as_str().unwrap_or_default().to_string(), r["PayloadJson"].clone())
}

/// Python invokes Node (RequestResponse with a client context; the context
/// fields as Greengrass gives them), Node invokes Python; callback, async,
/// promise and drained-loop completion; `callback(err)` is Handled, a throw
/// and a rejection are Unhandled and the instance lives on; console and
/// stdout lines land in the function's log with their levels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_and_python_invoke_each_other() {
    let calc_js = Function::node("nodecalc", CALC_JS).pinned();
    let (node_arn, py_arn) = (calc_js.arn(), crate::common::functions::function_arn("calc"));
    let on_demand = Function::node("nodeod", CALC_JS).env("FROM_GROUP", "yes");
    let with_options = Function::node("nodeopts", CALC_JS).env("NODE_OPTIONS", "--max-old-space-size=64");
    let (od_arn, opts_arn) = (on_demand.arn(), with_options.arn());
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g, "tester")
            .function(calc_js)
            .function(Function::python("calc", CALC_PY))
            .function(on_demand)
            .function(with_options)
            .route(&node_arn, "burst/out", "tester")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;

    // Instances start from a node started ahead of need (a spare), which
    // takes on the function's user, umask and environment; a function whose
    // environment sets NODE_* options gets a node started for it.
    let od = driver.invoke_ok(&od_arn, json!({})).await;
    assert_eq!((&od["mode"], &od["umask"], &od["env"]), (&json!("spare"), &json!(0o022), &json!("yes")), "{od}");
    assert_eq!(od["uid"], env.root.function_status("nodeod").unwrap()["runAs"]["uid"], "{od}");
    let opts = driver.invoke_ok(&opts_arn, json!({})).await;
    assert_eq!(opts["mode"], "direct", "{opts}");

    let r = driver
        .invoke(json!({"FunctionName": node_arn, "Payload": {"op": "add", "a": 40, "b": 2}, "ClientContext": {"custom": {"k": "v"}}}))
        .await;
    assert_eq!(r["FunctionError"], "", "{r}");
    let out = &r["PayloadJson"];
    assert_eq!(
        (&out["sum"], &out["custom"], &out["arn"], &out["name"], &out["version"]),
        (&json!(42), &json!({"k": "v"}), &json!(node_arn), &json!("nodecalc"), &json!("1")),
        "{out}"
    );
    assert!(out["requestId"].as_str().is_some_and(|s| s.len() >= 32), "{out}");
    assert!(out["remaining"].as_u64().is_some_and(|ms| ms > 0 && ms <= 30_000), "{out}");
    let pid = out["pid"].clone();

    // Node → Python, with a client context.
    let r = driver.invoke_ok(&node_arn, json!({"op": "invoke", "target": py_arn, "payload": {"op": "add", "a": 1, "b": 2}})).await;
    assert_eq!(r["FunctionError"], "", "{r}");
    assert_eq!((&r["Payload"]["sum"], &r["Payload"]["custom"]), (&json!(3), &json!({"from": "node"})), "{r}");
    // Node → Python raising: the callee's Handled error reaches Node as data.
    let r =
        driver.invoke_ok(&node_arn, json!({"op": "invoke", "target": py_arn, "payload": {"op": "raise", "message": "py says no"}})).await;
    assert_eq!((&r["FunctionError"], &r["Payload"]["errorMessage"]), (&json!("Handled"), &json!("py says no")), "{r}");

    // Completion styles.
    assert_eq!(driver.invoke_ok(&node_arn, json!({"op": "async"})).await, json!({"waited": true}));
    assert_eq!(driver.invoke_ok(&node_arn, json!({"op": "drain"})).await, Value::Null);

    // Errors: kind and document.
    let (kind, doc) = function_error(&driver.invoke(json!({"FunctionName": node_arn, "Payload": {"op": "fail"}})).await);
    assert_eq!(
        (kind.as_str(), &doc["errorMessage"], &doc["errorType"]),
        ("Handled", &json!("failed on purpose"), &json!("Error")),
        "{doc}"
    );
    assert!(doc["stackTrace"].as_array().is_some_and(|s| !s.is_empty()), "{doc}");
    let (kind, doc) = function_error(&driver.invoke(json!({"FunctionName": node_arn, "Payload": {"op": "throw"}})).await);
    assert_eq!(
        (kind.as_str(), &doc["errorMessage"], &doc["errorType"]),
        ("Unhandled", &json!("thrown on purpose"), &json!("TypeError")),
        "{doc}"
    );
    let (kind, doc) = function_error(&driver.invoke(json!({"FunctionName": node_arn, "Payload": {"op": "reject"}})).await);
    assert_eq!((kind.as_str(), &doc["errorType"]), ("Unhandled", &json!("RangeError")), "{doc}");
    // The same instance lives on.
    assert_eq!(driver.invoke_ok(&node_arn, json!({"op": "echo"})).await["pid"], pid);

    // 5,000 publishes in one synchronous loop all arrive, in order.
    driver.dev.sub("burst/out", QoS::AtLeastOnce).await;
    assert_eq!(driver.invoke_ok(&node_arn, json!({"op": "burst", "n": 5000})).await["sent"], 5000);
    for i in 0..5000 {
        let p = driver.next_other().await;
        assert_eq!((p.topic.as_str(), text(&p)), ("burst/out", i.to_string()));
    }

    driver.invoke_ok(&node_arn, json!({"op": "log"})).await;
    env.root.wait_function_log("nodecalc", &["stdout line"]).await;
    let log = env.root.function_log("nodecalc");
    for (level, line) in [("INFO", "log line 7"), ("WARN", "warn line"), ("ERROR", "error line"), ("INFO", "stdout line")] {
        assert!(log.lines().any(|l| l.contains(&format!("[{level}]-")) && l.contains(line)), "[{level}] {line} in:\n{log}");
    }
    let s = env.root.function_status("nodecalc").unwrap();
    assert_eq!((s["handledErrors"].as_u64(), s["unhandledErrors"].as_u64(), s["crashes"].as_u64()), (Some(1), Some(2), Some(0)), "{s}");
    env.stop();
}

/// Uses the published npm package bundled in its own node_modules: publish,
/// invoke (RequestResponse and Event), and a shadow call.
const BUNDLED_JS: &str = r#"
const ggSdk = require('aws-greengrass-core-sdk');
const iot = new ggSdk.IotData();
const lambda = new ggSdk.Lambda();
exports.handler = function (event, context, callback) {
    const out = { sdk: require.resolve('aws-greengrass-core-sdk'), version: ggSdk.GreengrassInterfaceVersion };
    iot.publish({ topic: 'bundled/text', payload: 'a string payload' }, (err, id) => {
        out.publishError = err ? String(err) : null;
        out.publishId = typeof id;
        lambda.invoke({ FunctionName: event.calc, Payload: JSON.stringify({ op: 'add', a: 40, b: 2 }) }, (err, data) => {
            out.invokeError = err ? String(err) : null;
            out.sum = data && JSON.parse(data.Payload.toString()).sum;
            out.statusCode = data && data.StatusCode;
            lambda.invoke({ FunctionName: event.calc, InvocationType: 'Event',
                            ClientContext: Buffer.from(JSON.stringify({ custom: { via: 'npm sdk' } })).toString('base64'),
                            Payload: JSON.stringify({ op: 'record', tag: 'bundled' }) }, (err, id) => {
                out.eventError = err ? String(err) : null;
                out.eventId = typeof id;
                lambda.invoke({ FunctionName: event.ghost, Payload: '{}' }, (err) => {
                    out.ghost = err ? String(err) : 'no error';
                    iot.getThingShadow({ thingName: 'lamp' }, (err, data) => {
                        out.shadow = err ? 'error: ' + err : (data ? JSON.parse(data.Payload.toString()) : 'nothing');
                        iot.publish({ topic: 'bundled/out', payload: JSON.stringify(out) }, (e) => callback(e, null));
                    });
                });
            });
        });
    });
};
"#;

/// A function bundling the published npm `aws-greengrass-core-sdk@1.7.0`
/// (with its dependencies) runs unchanged on ggcore's runtime modules: its
/// own copy is the one loaded; publish, RequestResponse and Event invokes,
/// an unknown function and a shadow call each come back through the
/// package's callbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_bundled_npm_sdk_runs_unchanged() {
    let bundled = Function::node("nodebundled", BUNDLED_JS).npm_sdk();
    let calc = Function::python("calc", CALC_PY);
    let (bundled_arn, calc_arn) = (bundled.arn(), calc.arn());
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(bundled).function(calc).route("tester", "bundled/in", &bundled_arn).route(&bundled_arn, "bundled/#", "tester").route(
            &calc_arn,
            "calc/events",
            "tester",
        )
    });
    let mut tester = env.connect("tester").await;
    tester.sub("bundled/#", QoS::AtLeastOnce).await;
    tester.sub("calc/events", QoS::AtLeastOnce).await;
    let ghost = crate::common::functions::function_arn("ghost");
    tester.publish("bundled/in", QoS::AtLeastOnce, json!({"calc": calc_arn, "ghost": ghost}).to_string()).await;

    let mut got = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let p = tester.recv().await;
        assert!(got.insert(p.topic.clone(), p.payload.to_vec()).is_none(), "twice on {}", p.topic);
    }
    assert_eq!(got["bundled/text"], b"a string payload");
    let out: Value = serde_json::from_slice(&got["bundled/out"]).unwrap();
    let code_dir = env.root.path.join("ggc/deployment/lambda/nodebundled/node_modules/aws-greengrass-core-sdk");
    assert!(out["sdk"].as_str().unwrap_or_default().starts_with(&code_dir.display().to_string()), "the bundled copy must load: {out}");
    assert_eq!(out["version"], "1.5", "{out}");
    assert_eq!((&out["publishError"], &out["publishId"]), (&Value::Null, &json!("string")), "{out}");
    assert_eq!((&out["invokeError"], &out["sum"], &out["statusCode"]), (&Value::Null, &json!(42), &json!(200)), "{out}");
    assert_eq!((&out["eventError"], &out["eventId"]), (&Value::Null, &json!("string")), "{out}");
    assert!(out["ghost"].as_str().is_some_and(|g| g.contains("ghost")), "an unknown function is an error naming it: {out}");
    // The shadow service answers (lamp has no shadow: AWS IoT's 404 document).
    assert_eq!((&out["shadow"]["code"], &out["shadow"]["message"]), (&json!(404), &json!("No shadow exists with name: 'lamp'")), "{out}");
    let event: Value = serde_json::from_slice(&got["calc/events"]).unwrap();
    assert_eq!(event, json!({"event": {"op": "record", "tag": "bundled"}, "custom": {"via": "npm sdk"}}));
    tester.expect_silence().await;
    env.stop();
}

/// The Unhandled message of an invoke result.
fn unhandled_message(r: &Value) -> String {
    assert_eq!(r["FunctionError"], "Unhandled", "{r}");
    r["PayloadJson"]["errorMessage"].as_str().unwrap_or_else(|| panic!("no errorMessage: {r}")).to_string()
}

/// Node functions that misbehave, as Python ones: `process.exit(3)` and an
/// exception thrown later from a timer end the instance (Unhandled naming the
/// exit, counted as crashes, restarted); a handler spinning past its Timeout
/// is killed ("Task timed out"); allocating past MemorySize is out of memory.
/// After each, the function answers again from a new node process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_crash_timeout_and_memory() {
    let calc_js = Function::node("nodecalc", CALC_JS).pinned().timeout(2).memory_kb(96 * 1024);
    let arn = calc_js.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(calc_js));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let mut pid = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();
    let mechanism = env.root.status()["memoryLimits"].as_str().unwrap_or_default().to_string();

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "exit"}})).await);
    assert!(msg.contains("exited with code 3"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    // Thrown from a timer after the invocation succeeded: the process ends.
    assert_eq!(driver.invoke_ok(&arn, json!({"op": "later"})).await["pid"].as_u64(), Some(pid));
    eventually("the timer's exception to end the instance", DEADLINE, || crate::common::functions::process_ended(pid).then_some(())).await;
    env.root.wait_function_log("nodecalc", &["[ERROR]-", "thrown from a timer"]).await;
    // Its worker ends the same way; the pinned function is restarted.
    eventually("the instance to be restarted", DEADLINE, || {
        (env.root.function_status("nodecalc").unwrap()["instancesStarted"] == 3).then_some(())
    })
    .await;
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "spin"}})).await);
    assert!(msg.contains("Task timed out after 2.00 seconds"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled_message(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "hog"}})).await);
    assert!(msg.contains("out of memory"), "memory limits by {mechanism}: {msg}");
    next_pid(&mut driver, &arn, pid).await;

    let s = env.root.function_status("nodecalc").unwrap();
    // The exception from the timer ended an idle instance: a restart, not a
    // crashed invocation.
    let counts = (s["crashes"].as_u64(), s["timeouts"].as_u64(), s["outOfMemory"].as_u64(), s["instancesStarted"].as_u64());
    assert_eq!(counts, (Some(1), Some(1), Some(1), Some(5)), "{s}");
    env.stop();
}

/// Without `node` on the core's PATH, `plugins list` shows the Node plugin
/// unavailable with the reason, and a deployment naming a Node runtime is
/// refused with it (the group stays as it was).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_missing_from_path_is_unavailable_and_refused() {
    let root = functions_root(json!({}));
    let no_node = root.scratch().join("bin");
    std::fs::create_dir_all(&no_node).unwrap();
    let out = ggcore_command()
        .env("PATH", &no_node)
        .env_remove("GGCORE_NODE")
        .arg("--root")
        .arg(&root.path)
        .args(["plugins", "list"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing.lines().find(|l| l.starts_with("node ")).unwrap_or_else(|| panic!("no node plugin listed:\n{listing}"));
    assert!(line.contains("unavailable: node not found on PATH"), "{line}");

    let tester = root.device("tester");
    let group = crate::common::Group::new("e2e").device(&tester).function(Function::node("n", RELAY_JS));
    let mut core = root.start_with_env(&[("PATH", no_node.to_str().unwrap())]);
    let out = root.deploy(&group);
    out.assert_code(2);
    assert!(out.stderr.contains("nodejs12.x") && out.stderr.contains("node not found on PATH"), "{out:?}");
    // With Node there, the same group deploys.
    core.stop();
    let _core = root.start();
    root.deploy_ok(&group);
}

/// The JavaScript runtime's own tests (framing, handler loading, context,
/// completion, the SDK shims' call shapes against a fake plugin), run with
/// Node's test runner.
#[test]
fn sdk_node_unit_tests() {
    let dir = crate::common::process::tests_dir().join("../sdk-node");
    let out = std::process::Command::new("node").arg("--test").arg("test").current_dir(&dir).output().expect("run node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "node --test failed in {}:\n{stdout}\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# fail 0"), "{stdout}");
}

/// `ggcore sdk path node|python` prints the directory to put on NODE_PATH /
/// PYTHONPATH (a function's author builds and tests against it): with it,
/// plain `node` loads ggcore's `aws-greengrass-core-sdk`; the Python one holds
/// `greengrasssdk`; Java's is the SDK jar.
#[test]
fn sdk_path_gives_node_and_python_their_sdk() {
    let path_of = |language: &str| {
        let out = ggcore_command().args(["sdk", "path", language]).output().unwrap();
        assert!(out.status.success(), "sdk path {language}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
    };
    let node_path = path_of("node");
    let out = std::process::Command::new("node")
        .args([
            "-e",
            "const s = require('aws-greengrass-core-sdk'); process.stdout.write(s.GreengrassInterfaceVersion + ' ' + typeof s.IotData)",
        ])
        .env("NODE_PATH", &node_path)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.5 function", "{}", String::from_utf8_lossy(&out.stderr));
    // (Importing the Python one outside a function: native::installed_layout_*.)
    let py_path = path_of("python");
    assert!(std::path::Path::new(&py_path).join("greengrasssdk/__init__.py").is_file(), "{py_path}");
    let java = path_of("java");
    assert!(java.ends_with("/sdk-java/aws-greengrass-core-sdk-java.jar") && std::path::Path::new(&java).is_file(), "{java}");
}

//! Python functions (docs/functions.md): routed messages in and out, function to
//! function invokes, the published SDK bundled by a function, logs, identity
//! and environment, live redeploy, and the demo's greeter.

use serde_json::{json, Value};

use crate::common::functions::{
    base64, binary_probe, function_arn, functions_root, process_ended, relay_events, unqualified_arn, with_driver, Driver, Function,
    CALC_PY,
};
use crate::common::mqtt::text;
use crate::common::{Env, QoS};

/// Publishes what it received (event, its Python type, the topic) on
/// `relay/out`; returns a value that must go nowhere.
const RELAY_PY: &str = r#"
import json
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='relay/out', payload=json.dumps({
        'event': event,
        'type': type(event).__name__,
        'subject': context.client_context.custom['subject'],
    }))
    return {'returned': 'must not be published anywhere'}
"#;

/// Binary encoding: answers the bytes reversed, prefixed with the type name.
const BINARY_PY: &str = r#"
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    kind = type(event).__name__.encode()
    iot.publish(topic='bin/out', payload=kind + b':' + bytes(reversed(event)))
"#;

/// A device's JSON message reaches a pinned Python function as a decoded
/// event with the topic as `subject`; what the function publishes reaches the
/// device, in order, once; the handler's return value of an Event invocation
/// goes nowhere. With `EncodingType: binary` non-UTF-8 bytes go in and out
/// unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_to_function_to_device() {
    let relay = Function::python("relay", RELAY_PY).pinned();
    let binary = Function::python("binary", BINARY_PY).binary();
    let relay_arn = relay.arn();
    let env = Env::start_group(functions_root(json!({})), &["sensor", "display"], |g| {
        g.function(relay)
            .function(binary)
            .route("sensor", "relay/in/#", &relay_arn)
            .route(&relay_arn, "relay/#", "display")
            // Unqualified ARNs in the table name the deployed version.
            .route("sensor", "bin/in", &unqualified_arn("binary"))
            .route(&unqualified_arn("binary"), "bin/#", "display")
    });
    let mut sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("relay/#", QoS::AtLeastOnce).await;
    display.sub("bin/#", QoS::AtLeastOnce).await;

    let events = relay_events();
    for (i, e) in events.iter().enumerate() {
        sensor.publish(&format!("relay/in/{i}"), QoS::AtLeastOnce, e.to_string()).await;
    }
    let types = ["dict", "list", "str"];
    for (i, e) in events.iter().enumerate() {
        let p = display.recv().await;
        assert_eq!(p.topic, "relay/out");
        let got: Value = serde_json::from_slice(&p.payload).unwrap_or_else(|_| panic!("not JSON: {}", text(&p)));
        assert_eq!(got, json!({"event": e, "type": types[i], "subject": format!("relay/in/{i}")}));
    }

    // Binary: every byte value, and sequences that are not UTF-8.
    let bytes = binary_probe();
    sensor.publish("bin/in", QoS::AtLeastOnce, bytes.clone()).await;
    let p = display.recv().await;
    assert_eq!(p.topic, "bin/out");
    let mut want = b"bytes:".to_vec();
    want.extend(bytes.iter().rev());
    assert_eq!(p.payload.to_vec(), want);

    // Nothing else: no return value published, no duplicate.
    display.expect_silence().await;
    let relay = env.root.function_status("relay").expect("relay in status");
    assert_eq!((relay["invocations"].as_u64(), relay["succeeded"].as_u64()), (Some(3), Some(3)), "{relay}");
    env.stop();
}

/// Binary encoding: returns the bytes reversed, prefixed with the type name.
const BINCALC_PY: &str = r#"
def handler(event, context):
    return type(event).__name__.encode() + b':' + bytes(reversed(event))
"#;

/// Function to function invokes through `client('lambda').invoke`:
/// RequestResponse returns the callee's result (a StreamingBody); an exception
/// in the callee is a `Handled` error with its message and type (and a
/// traceback in the callee's log); `Event` returns at once and the callee
/// runs; an unqualified ARN with `Qualifier` names the deployed version;
/// `ClientContext` reaches the callee as `client_context.custom`; a function
/// outside the group, or another version, is an error to the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_to_function_invoke() {
    let calc = Function::python("calc", CALC_PY);
    let calc_arn = calc.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g.function(calc), "tester").function(Function::python("bincalc", BINCALC_PY).binary()).route(
            &calc_arn,
            "calc/events",
            "tester",
        )
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    driver.dev.sub("calc/events", QoS::AtLeastOnce).await;

    // RequestResponse.
    let r = driver.invoke(json!({"FunctionName": calc_arn, "Payload": {"op": "add", "a": 2, "b": 40}})).await;
    assert_eq!(r["FunctionError"], "", "{r}");
    assert_eq!(r["streaming"], true, "a successful result is a StreamingBody: {r}");
    assert_eq!(r["PayloadJson"]["sum"], 42, "{r}");
    assert_eq!(r["PayloadJson"]["custom"], Value::Null, "no ClientContext was given: {r}");
    assert_eq!(r["PayloadJson"]["arn"], calc_arn);

    // The callee raises: Handled, with its message and type.
    let r = driver.invoke(json!({"FunctionName": calc_arn, "Payload": {"op": "raise", "message": "bad input 42"}})).await;
    assert_eq!(r["FunctionError"], "Handled", "{r}");
    assert_eq!(r["streaming"], false, "an error payload is bytes: {r}");
    assert_eq!(r["PayloadJson"]["errorMessage"], "bad input 42", "{r}");
    assert_eq!(r["PayloadJson"]["errorType"], "ValueError", "{r}");
    let log_line = env.root.wait_function_log("calc", &["ValueError: bad input 42"]).await;
    assert!(log_line.contains("[ERROR]-"), "{log_line}");
    assert!(env.root.function_log("calc").contains("Traceback (most recent call last):"), "{}", env.root.function_log("calc"));

    // Event: returns an empty payload at once; the callee runs.
    let r =
        driver.invoke(json!({"FunctionName": calc_arn, "InvocationType": "Event", "Payload": {"op": "record", "tag": "event-1"}})).await;
    assert_eq!((r["FunctionError"].as_str(), r["Payload"].as_str()), (Some(""), Some("")), "{r}");
    let p = driver.next_other().await;
    assert_eq!(p.topic, "calc/events");
    let got: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(got["event"], json!({"op": "record", "tag": "event-1"}));

    // Unqualified FunctionName with Qualifier; unqualified alone (the deployed
    // version); ClientContext.
    let r = driver
        .invoke(json!({
            "FunctionName": unqualified_arn("calc"), "Qualifier": "1",
            "Payload": {"op": "add", "a": 1, "b": 1},
            "ClientContext": {"custom": {"caller": "driver", "n": 7}},
        }))
        .await;
    assert_eq!(r["FunctionError"], "", "{r}");
    assert_eq!(r["PayloadJson"]["sum"], 2, "{r}");
    assert_eq!(r["PayloadJson"]["arn"], calc_arn, "{r}");
    assert_eq!(r["PayloadJson"]["custom"], json!({"caller": "driver", "n": 7}), "{r}");
    assert_eq!(driver.invoke_ok(&unqualified_arn("calc"), json!({"op": "add", "a": 3, "b": 4})).await["sum"], 7);

    // An Event with ClientContext: the callee sees it too.
    driver
        .invoke(json!({
            "FunctionName": calc_arn, "InvocationType": "Event",
            "Payload": {"op": "record", "tag": "event-2"}, "ClientContext": {"custom": {"trace": "abc"}},
        }))
        .await;
    let p = driver.next_other().await;
    let got: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(got, json!({"event": {"op": "record", "tag": "event-2"}, "custom": {"trace": "abc"}}));

    // A binary function: bytes in, bytes out, not JSON.
    let bytes: Vec<u8> = vec![0xff, 0x00, 0xfe, 0x80, b'{'];
    let r = driver.invoke(json!({"FunctionName": function_arn("bincalc"), "PayloadB64": base64(&bytes)})).await;
    assert_eq!(r["FunctionError"], "", "{r}");
    let mut want = b"bytes:".to_vec();
    want.extend(bytes.iter().rev());
    assert_eq!(r["PayloadB64"], base64(&want), "{r}");

    // Errors to the caller: a function not in the group, a version not
    // deployed, a qualifier that contradicts the ARN's, a ClientContext that
    // is not base64 of a JSON object (the callee does not run).
    for (args, what) in [
        (json!({"FunctionName": function_arn("ghost"), "Payload": {}}), "not deployed"),
        (json!({"FunctionName": unqualified_arn("calc"), "Qualifier": "2", "Payload": {}}), "not deployed"),
        (json!({"FunctionName": function_arn("ghost"), "InvocationType": "Event", "Payload": {}}), "not deployed"),
        (json!({"FunctionName": calc_arn, "Payload": {}, "ClientContext": "a string"}), "not a JSON object"),
        (json!({"FunctionName": calc_arn, "InvocationType": "Event", "Payload": {}, "ClientContext": [1]}), "not a JSON object"),
        (json!({"FunctionName": calc_arn, "Payload": {}, "ClientContextRaw": "bm90IGpzb24="}), "not JSON"),
    ] {
        let r = driver.invoke(args.clone()).await;
        assert_eq!(r["exception"], "InvocationException", "{args}: {r}");
        assert!(r["message"].as_str().unwrap().contains(what), "{args}: {r}");
    }
    let r = driver.invoke(json!({"FunctionName": calc_arn, "Qualifier": "2", "Payload": {}})).await;
    assert_eq!(r["exception"], "ValueError", "{r}");

    // The callee ran exactly what was asked: nothing more on calc/events.
    assert!(driver.others.is_empty(), "{:?}", driver.others);
    driver.dev.expect_silence().await;
    let calc = env.root.function_status("calc").unwrap();
    assert_eq!(calc["invocations"], 6, "{calc}");
    assert_eq!(calc["handledErrors"], 1, "{calc}");
    env.stop();
}

/// Uses the published greengrasssdk it bundles: reports where it was imported
/// from, invokes `calc` (RequestResponse, a Handled error, Event with a
/// ClientContext) and publishes, all through the published package's code.
const BUNDLED_PY: &str = r#"
import base64
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')
lam = greengrasssdk.client('lambda')


def handler(event, context):
    calc = event['calc']
    ok = lam.invoke(FunctionName=calc, Payload=json.dumps({'op': 'add', 'a': 20, 'b': 22}).encode())
    failed = lam.invoke(FunctionName=calc, Payload=json.dumps({'op': 'raise', 'message': 'from bundled'}))
    ev = lam.invoke(FunctionName=calc, InvocationType='Event',
                    Payload=json.dumps({'op': 'record', 'tag': 'bundled'}).encode(),
                    ClientContext=base64.b64encode(json.dumps({'custom': {'via': 'published sdk'}}).encode()))
    try:
        lam.invoke(FunctionName=event['ghost'], Payload=b'{}')
        ghost = 'no exception'
    except Exception as e:
        ghost = type(e).__name__
    iot.publish(topic='bundled/out', payload=json.dumps({
        'file': greengrasssdk.__file__,
        'version': greengrasssdk.__version__,
        'stream_manager': os.path.isdir(os.path.join(os.path.dirname(greengrasssdk.__file__), 'stream_manager')),
        'sum': json.loads(ok['Payload'].read())['sum'],
        'ok_error': ok['FunctionError'],
        'failed': [failed['FunctionError'], json.loads(failed['Payload'])['errorMessage']],
        'event': [ev['Payload'].decode(), ev['FunctionError']],
        'ghost': ghost,
    }))
    iot.publish(topic='bundled/text', payload='a str payload')
"#;

/// A function that bundles the published greengrasssdk 1.6.1 (unpacked from
/// the PyPI wheel into its code directory, as users ship it) imports that
/// copy, and its publish and invoke work unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bundled_pypi_greengrasssdk_runs_unchanged() {
    let wheel = crate::common::functions::greengrasssdk_wheel();
    let bundled = Function::python("bundled", BUNDLED_PY).wheel(&wheel);
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
    tester.publish("bundled/in", QoS::AtLeastOnce, json!({"calc": calc_arn, "ghost": function_arn("ghost")}).to_string()).await;

    let mut got = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let p = tester.recv().await;
        assert!(got.insert(p.topic.clone(), p.payload.to_vec()).is_none(), "twice on {}", p.topic);
    }
    let out: Value = serde_json::from_slice(&got["bundled/out"]).unwrap();
    let code_dir = env.root.path.join("ggc/deployment/lambda/bundled");
    assert!(
        out["file"].as_str().unwrap().starts_with(&code_dir.display().to_string()),
        "greengrasssdk must be the bundled copy in {}: {out}",
        code_dir.display()
    );
    assert_eq!(out["version"], "1.6.1");
    assert_eq!(out["stream_manager"], true, "the published package has stream_manager: {out}");
    assert_eq!(out["sum"], 42, "{out}");
    assert_eq!(out["ok_error"], "", "{out}");
    assert_eq!(out["failed"], json!(["Handled", "from bundled"]), "{out}");
    assert_eq!(out["event"], json!(["", ""]), "{out}");
    assert_eq!(out["ghost"], "InvocationException", "{out}");
    assert_eq!(got["bundled/text"], b"a str payload");
    let event: Value = serde_json::from_slice(&got["calc/events"]).unwrap();
    assert_eq!(event, json!({"event": {"op": "record", "tag": "bundled"}, "custom": {"via": "published sdk"}}));
    tester.expect_silence().await;
    env.stop();
}

const LOGGER_PY: &str = r#"
import logging
import sys

app = logging.getLogger('app')


def handler(event, context):
    print('printed line', event['n'])
    logging.warning('careful: %d left', 7)
    app.info('info from app %s', event['n'])
    app.error('error from app')
    sys.stderr.write('written to stderr\n')
    raise RuntimeError('boom {}'.format(event['n']))
"#;

/// `[2026-01-01T00:00:00.000Z][LEVEL]-message`: the level, or None when the
/// line is not in that shape.
fn log_level(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (ts, rest) = rest.split_once("][")?;
    let b = ts.as_bytes();
    let shape_ok = ts.len() == 24
        && ts.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && ts.bytes().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit());
    let (level, _) = rest.split_once("]-")?;
    (shape_ok && ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&level)).then_some(level)
}

/// A function's stdout, stderr, `logging` records and the traceback of an
/// exception in its handler go to its log file, one line per record with a
/// GGC time stamp and the right level.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_output_goes_to_its_log_with_levels() {
    let logger = Function::python("logger", LOGGER_PY);
    let arn = logger.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| g.function(logger).route("tester", "log/in", &arn));
    let mut tester = env.connect("tester").await;
    tester.publish("log/in", QoS::AtLeastOnce, r#"{"n": 41}"#).await;
    let root = &env.root;
    for needle in ["RuntimeError: boom 41", "printed line 41", "written to stderr", "careful: 7 left", "info from app 41", "error from app"]
    {
        root.wait_function_log("logger", &[needle]).await;
    }
    let text = root.function_log("logger");
    let level_of = |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).filter_map(log_level).collect() };
    assert_eq!(level_of("printed line 41"), ["INFO"], "{text}");
    assert_eq!(level_of("careful: 7 left"), ["WARN"], "{text}");
    assert_eq!(level_of("info from app 41"), ["INFO"], "{text}");
    assert_eq!(level_of("error from app"), ["ERROR"], "{text}");
    assert_eq!(level_of("written to stderr"), ["ERROR"], "{text}");
    assert_eq!(level_of("Traceback (most recent call last):"), ["ERROR"], "{text}");
    assert_eq!(level_of("RuntimeError: boom 41"), ["ERROR"], "{text}");
    // The traceback names the handler's line.
    assert!(text.lines().any(|l| l.contains("main.py") && l.contains("in handler") && log_level(l) == Some("ERROR")), "{text}");
    for l in text.lines() {
        assert!(log_level(l).is_some(), "a log line not in GGC's format: {l:?}\n{text}");
    }
    let s = root.function_status("logger").unwrap();
    assert_eq!((s["invocations"].as_u64(), s["handledErrors"].as_u64()), (Some(1), Some(1)), "{s}");
    env.stop();
}

/// Reports who it runs as, its environment and its context on `who/<name>`.
const WHO_PY: &str = r#"
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='who/' + context.function_name, payload=json.dumps({
        'uid': os.getuid(), 'gid': os.getgid(), 'euid': os.geteuid(), 'groups': os.getgroups(),
        'env': dict(os.environ),
        'cwd': os.getcwd(),
        'function_name': context.function_name,
        'function_version': context.function_version,
        'invoked_function_arn': context.invoked_function_arn,
        'aws_request_id': context.aws_request_id,
        'memory_limit_in_mb': context.memory_limit_in_mb,
        'remaining_ms': context.get_remaining_time_in_millis(),
        'identity': context.identity,
        'subject': context.client_context.custom.get('subject'),
    }))
"#;

/// Asks the `who` function `fname` (routed `ask/<fname>`) for its report.
async fn ask(tester: &mut crate::common::Device, fname: &str) -> Value {
    tester.publish(&format!("ask/{fname}"), QoS::AtLeastOnce, "{}").await;
    let p = tester.recv().await;
    assert_eq!(p.topic, format!("who/{fname}"));
    serde_json::from_slice(&p.payload).unwrap()
}

/// With the core running as root and no RunAs, a function runs as the
/// unprivileged default (nobody, 65534), or as the RunAs it names; its
/// environment is the Greengrass one plus its Variables, none of the core's;
/// its context carries its name, version, ARN, a fresh request id, its memory
/// and the time left. RunAs root is refused at deploy without
/// `allowFunctionsToRunAsRoot`, and the running group stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_environment_and_context() {
    use std::os::unix::fs::PermissionsExt;
    let root = crate::common::Root::new();
    // The temporary directory is private to root: open it so that other users
    // reach the deployed code under it.
    std::fs::set_permissions(root.base_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let who = Function::python("who", WHO_PY).memory_kb(65536).timeout(7).env("COLOR", "blue").env("AWS_REGION", "eu-west-3");
    let who_1234 = Function::python("who1234", WHO_PY).run_as(1234, 4321);
    let (who_arn, who_1234_arn) = (who.arn(), who_1234.arn());
    let creds = root.device("tester");
    let group = crate::common::Group::new("e2e")
        .device(&creds)
        .function(who)
        .function(who_1234)
        .route("tester", "ask/who", &who_arn)
        .route("tester", "ask/who1234", &who_1234_arn)
        .route(&who_arn, "who/#", "tester")
        .route(&who_1234_arn, "who/#", "tester");
    let core = root.start_with_env(&[("GGCORE_E2E_LEAK", "core-secret")]);
    root.deploy_ok(&group);
    let mut tester = crate::common::connect(core.port, &creds).await;
    tester.sub("who/#", QoS::AtLeastOnce).await;

    let first = ask(&mut tester, "who").await;
    assert_eq!((first["uid"].as_u64(), first["euid"].as_u64(), first["gid"].as_u64()), (Some(65534), Some(65534), Some(65534)), "{first}");
    assert_eq!(first["groups"], json!([65534]), "no supplementary groups of the core: {first}");
    let env = &first["env"];
    assert_eq!(env["MY_FUNCTION_ARN"], who_arn, "{env}");
    assert_eq!(env["AWS_IOT_THING_NAME"], crate::common::group::CORE_THING, "{env}");
    assert_eq!(env["AWS_IOT_THING_ARN"], crate::common::thing_arn(crate::common::group::CORE_THING), "{env}");
    assert_eq!(env["AWS_GREENGRASS_GROUP_NAME"], "e2e", "{env}");
    assert_eq!(env["COLOR"], "blue", "{env}");
    assert_eq!(env["AWS_REGION"], "eu-west-3", "Variables override the defaults: {env}");
    assert_eq!(env["ROUTER_FUNCTION_ARN"], "arn:aws:lambda:::function:GGRouter", "{env}");
    assert_eq!(env["SHADOW_FUNCTION_ARN"], "arn:aws:lambda:::function:GGShadowService", "{env}");
    assert_eq!(env["ENCODING_TYPE"], "json", "{env}");
    assert!(env["AWS_CONTAINER_AUTHORIZATION_TOKEN"].as_str().is_some_and(|t| !t.is_empty()), "{env}");
    for leak in ["GGCORE_E2E_LEAK", "CARGO_TARGET_DIR", "GGCORE_TEST_PYTHON", "RUST_LOG"] {
        assert!(env.get(leak).is_none(), "the core's environment leaked into the function ({leak}): {env}");
    }
    assert_eq!(first["cwd"], root.path.join("ggc/deployment/lambda/who").display().to_string(), "{first}");
    assert_eq!(first["function_name"], "who");
    assert_eq!(first["function_version"], "1");
    assert_eq!(first["invoked_function_arn"], who_arn);
    assert_eq!(first["memory_limit_in_mb"], 64);
    assert_eq!(first["identity"], Value::Null);
    assert_eq!(first["subject"], "ask/who");
    let left = first["remaining_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 7000, "get_remaining_time_in_millis() = {left} with Timeout 7 s");
    let second = ask(&mut tester, "who").await;
    let (id1, id2) = (first["aws_request_id"].as_str().unwrap(), second["aws_request_id"].as_str().unwrap());
    assert!(!id1.is_empty() && id1 != id2, "request ids {id1:?} and {id2:?}");

    let other = ask(&mut tester, "who1234").await;
    assert_eq!((other["uid"].as_u64(), other["gid"].as_u64()), (Some(1234), Some(4321)), "{other}");

    // RunAs root without allowFunctionsToRunAsRoot: refused, by the
    // function's Execution or by the DefaultConfig.
    for g in [
        group.clone().function(Function::python("rooted", WHO_PY).run_as(0, 0)),
        group.clone().function(Function::python("rooted", WHO_PY)).default_run_as(0, 1000),
    ] {
        let out = root.deploy(&g);
        out.assert_code(2);
        assert!(out.stderr.contains("RunAs") && out.stderr.contains("allowFunctionsToRunAsRoot"), "{out:?}");
    }
    let again = ask(&mut tester, "who").await;
    assert_eq!(again["uid"], 65534);
    assert!(root.function_status("rooted").is_none());
    tester.expect_silence().await;
}

/// Pinned; answers `ask/<NAME>` on `pid/<NAME>` with its pid, how many
/// invocations this instance served, and its variable V.
const STEADY_PY: &str = r#"
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')
served = {'n': 0}


def handler(event, context):
    served['n'] += 1
    iot.publish(topic='pid/' + os.environ['NAME'], payload=json.dumps({
        'pid': os.getpid(), 'served': served['n'], 'v': os.environ.get('V'),
    }))
"#;

fn pinned_reporter(name: &str, v: &str) -> Function {
    Function::python(name, STEADY_PY).pinned().env("NAME", name).env("V", v)
}

fn reporters_group(g: crate::common::Group, fs: Vec<Function>) -> crate::common::Group {
    fs.into_iter().fold(g, |g, f| {
        let arn = f.arn();
        let name = f.name.clone();
        g.function(f).route("ctl", &format!("ask/{name}"), &arn).route(&arn, &format!("pid/{name}"), "ctl")
    })
}

async fn report(ctl: &mut crate::common::Device, name: &str) -> (u64, u64, String) {
    ctl.publish(&format!("ask/{name}"), QoS::AtLeastOnce, "{}").await;
    let p = ctl.recv().await;
    assert_eq!(p.topic, format!("pid/{name}"), "{}", text(&p));
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    (v["pid"].as_u64().unwrap(), v["served"].as_u64().unwrap(), v["v"].as_str().unwrap_or_default().to_string())
}

/// A live redeploy leaves an unchanged pinned function running (same
/// process, its module state kept), replaces a function whose configuration
/// or code changed, and ends the instances of a removed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_redeploy_keeps_unchanged_functions_running() {
    let v1 = |g| reporters_group(g, vec![pinned_reporter("steady", "1"), pinned_reporter("changing", "1"), pinned_reporter("doomed", "1")]);
    let mut env = Env::start_group(functions_root(json!({})), &["ctl"], v1);
    let mut ctl = env.connect("ctl").await;
    ctl.sub("pid/#", QoS::AtLeastOnce).await;
    let (steady_pid, served, _) = report(&mut ctl, "steady").await;
    assert_eq!(served, 1);
    let (changing_pid, _, v) = report(&mut ctl, "changing").await;
    assert_eq!(v, "1");
    let (doomed_pid, _, _) = report(&mut ctl, "doomed").await;
    let status_pid = |env: &Env, name: &str| env.root.function_status(name).unwrap()["instances"][0]["pid"].as_u64();
    assert_eq!(status_pid(&env, "steady"), Some(steady_pid));

    // v2: `changing` gets another variable, `doomed` leaves the group.
    let base = crate::common::Group::new("e2e").device(env.creds("ctl"));
    env.redeploy(reporters_group(base.clone(), vec![pinned_reporter("steady", "1"), pinned_reporter("changing", "2")]));
    assert_eq!(report(&mut ctl, "steady").await, (steady_pid, 2, "1".into()), "steady was restarted by the redeploy");
    let (changing_pid2, served, v) = report(&mut ctl, "changing").await;
    assert_ne!(changing_pid2, changing_pid, "a changed function gets a new instance");
    assert_eq!((served, v.as_str()), (1, "2"));
    crate::common::eventually("the removed function's instance to end", crate::common::DEADLINE, || {
        process_ended(doomed_pid).then_some(())
    })
    .await;
    assert!(env.root.function_status("doomed").is_none());
    crate::common::eventually("the replaced instance of `changing` to end", crate::common::DEADLINE, || {
        process_ended(changing_pid).then_some(())
    })
    .await;

    // v3: the code of `changing` changes (its configuration does not).
    let changed_code = pinned_reporter("changing", "2").file("main.py", &format!("{STEADY_PY}\n# version 3\n"));
    env.redeploy(reporters_group(base, vec![pinned_reporter("steady", "1"), changed_code]));
    assert_eq!(report(&mut ctl, "steady").await, (steady_pid, 3, "1".into()));
    let (changing_pid3, served, _) = report(&mut ctl, "changing").await;
    assert_ne!(changing_pid3, changing_pid2);
    assert_eq!(served, 1);
    assert_eq!(status_pid(&env, "steady"), Some(steady_pid));
    // `doomed` is no target any more: asking it reaches nobody.
    ctl.publish("ask/doomed", QoS::AtLeastOnce, "{}").await;
    ctl.expect_silence().await;
    env.stop();
}

/// The empty-root demo, driven by the commands it prints: the pinned greeter
/// greets demo-device-2 on `hello/world`, and answers `{"command": "ping"}`
/// on `demo/command` with "pong" on `hello/reply` (to both devices); the
/// greeting reaches only demo-device-2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_greeter_greets_and_answers_ping() {
    use crate::common::external::{option, shell_words};
    let root = crate::common::Root::empty();
    let core = root.start_with_env(&[("GGCORE_MQTT_PORT", "0")]);
    let sub = shell_words(core.wait_log(&["mosquitto_sub "]).await.trim());
    let publish = shell_words(core.wait_log(&["mosquitto_pub "]).await.trim());
    let creds = |words: &[String]| crate::common::Creds {
        thing: option(words, "-i").unwrap().to_string(),
        cert: option(words, "--cert").unwrap().into(),
        key: option(words, "--key").unwrap().into(),
        ca: option(words, "--cafile").unwrap().into(),
        cert_arn: String::new(),
    };
    let (listener, sender) = (creds(&sub), creds(&publish));
    assert_eq!((listener.thing.as_str(), sender.thing.as_str()), ("demo-device-2", "demo-device-1"));
    assert_eq!(option(&publish, "-t"), Some("demo/command"));
    let command = option(&publish, "-m").unwrap().to_string();
    assert_eq!(serde_json::from_str::<Value>(&command).unwrap(), json!({"command": "ping"}));

    let mut d2 = crate::common::connect(core.port, &listener).await;
    let mut d1 = crate::common::connect(core.port, &sender).await;
    for f in sub.windows(2).filter(|w| w[0] == "-t").map(|w| w[1].clone()) {
        d2.sub(&f, QoS::AtLeastOnce).await;
    }
    d1.sub("hello/#", QoS::AtLeastOnce).await;

    // A greeting (every five seconds).
    let greeting = loop {
        let p = d2.recv().await;
        if p.topic == "hello/world" {
            break p;
        }
    };
    let g: Value = serde_json::from_slice(&greeting.payload).unwrap();
    assert!(g["message"].as_str().is_some_and(|m| m.contains("Hello")), "{g}");

    d1.publish("demo/command", QoS::AtLeastOnce, command.clone()).await;
    let mut heard = Vec::new();
    while !(heard.iter().any(|t: &String| t == "reply") && heard.iter().any(|t| t == "command")) {
        let p = d2.recv().await;
        match p.topic.as_str() {
            "hello/world" => continue,
            "demo/command" => {
                assert_eq!(text(&p), command);
                heard.push("command".to_string());
            }
            "hello/reply" => {
                let r: Value = serde_json::from_slice(&p.payload).unwrap();
                assert_eq!(r["answer"], "pong", "{r}");
                heard.push("reply".to_string());
            }
            other => panic!("demo-device-2: unexpected message on {other}: {}", text(&p)),
        }
    }
    let p = d1.recv().await;
    assert_eq!(p.topic, "hello/reply", "demo-device-1 hears the reply, never the greeting: {}", text(&p));
    assert!(text(&p).contains("pong"));
    // demo-device-1 hears no greeting even across one greeting period.
    if let Some(p) = d1.recv_within(std::time::Duration::from_secs(6)).await {
        panic!("demo-device-1: unexpected message on {}: {}", p.topic, text(&p));
    }
    let status = root.status();
    let greeter = status["functions"].as_array().unwrap().iter().find(|f| f["arn"].as_str().unwrap().contains(":function:demo-greeter"));
    let greeter = greeter.unwrap_or_else(|| panic!("no demo-greeter in status: {status}"));
    assert_eq!(greeter["lifecycle"], "pinned");
    assert_eq!(greeter["succeeded"], 1, "{greeter}");
}

/// SDK calls the core refuses reach the function as exceptions, and deliver
/// nothing: a publish over `maxPayloadBytes` (one at the limit goes through),
/// a publish on a topic with wildcards, an invoke payload over the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_sdk_calls_raise_in_the_function() {
    let calc = Function::python("calc", CALC_PY);
    let calc_arn = calc.arn();
    let driver_arn = function_arn("driver");
    let env = Env::start_group(functions_root(json!({"ggcore": {"mqtt": {"maxPayloadBytes": 4096}}})), &["tester"], |g| {
        with_driver(g.function(calc), "tester").route(&driver_arn, "out/#", "tester")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    driver.dev.sub("out/#", QoS::AtLeastOnce).await;

    let r = driver.call(json!({"op": "publish", "topic": "out/big", "size": 4097})).await;
    assert!(r["exception"].is_string() && r["message"].as_str().unwrap().contains("maxPayloadBytes"), "{r}");
    for topic in ["out/+/x", "out/#", ""] {
        let r = driver.call(json!({"op": "publish", "topic": topic, "payload": "wild"})).await;
        assert!(r["exception"].is_string(), "publish on {topic:?} was accepted: {r}");
    }
    let r = driver.invoke(json!({"FunctionName": calc_arn, "PayloadSize": 4097})).await;
    assert_eq!(r["exception"], "InvocationException", "{r}");
    assert!(r["message"].as_str().unwrap().contains("maxPayloadBytes"), "{r}");

    // At the limit: delivered whole.
    let r = driver.call(json!({"op": "publish", "topic": "out/exact", "size": 4096})).await;
    assert!(r.get("exception").is_none(), "{r}");
    // An invoke payload at the limit is accepted.
    let r = driver.invoke(json!({"FunctionName": calc_arn, "PayloadSize": 4096})).await;
    assert_eq!((&r["FunctionError"], &r["PayloadJson"]["padded"]), (&json!(""), &json!(4096 - 24)), "{r}");
    let p = driver.next_other().await;
    assert_eq!((p.topic.as_str(), p.payload.len()), ("out/exact", 4096));
    assert!(driver.others.is_empty(), "{:?}", driver.others);
    driver.dev.expect_silence().await;
    assert_eq!(env.root.function_status("calc").unwrap()["invocations"], 1);
    env.stop();
}

/// Prints `n` lines of about 100 bytes, then warns once.
const CHATTY_PY: &str = r#"
import logging


def handler(event, context):
    for i in range(event['n']):
        print('line {:06d} '.format(i) + 'x' * 88)
    print('last line printed')
    logging.warning('a warning')
"#;

fn lambda_logger(level: &str, space_kb: u64) -> Value {
    json!({ "Loggers": [ { "Id": "lambda-logs", "Component": "Lambda", "Level": level, "Type": "FileSystem", "Space": space_kb } ] })
}

/// The log files of function `name`: `<name>.log` and its rotated copies.
fn log_files(root: &crate::common::Root, name: &str) -> Vec<(String, u64)> {
    let dir = root.function_log_path(name).parent().unwrap().to_path_buf();
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.log")))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

/// With a Lambda logger of `Space` 64 KB, a function that prints 300 KB
/// keeps at most 64 KB of log on disk, rotated, the newest lines kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_log_is_bounded_by_the_lambda_logger_space() {
    let chatty = Function::python("chatty", CHATTY_PY);
    let arn = chatty.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(chatty).route("tester", "talk", &arn).logger_definition(lambda_logger("INFO", 64))
    });
    let mut tester = env.connect("tester").await;
    tester.publish("talk", QoS::AtLeastOnce, r#"{"n": 3000}"#).await;
    env.root.wait_function_log("chatty", &["a warning"]).await;
    env.root.wait_function_log("chatty", &["last line printed"]).await;
    let files = log_files(&env.root, "chatty");
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    assert!(total <= 64 * 1024, "{total} bytes of log with Space 64 KB: {files:?}");
    assert!(files.len() >= 2, "the log was never rotated: {files:?}");
    assert!(env.root.function_log("chatty").contains("line 002999 "), "the newest lines are kept");
    env.stop();
}

/// The Lambda logger's `Level` sets the level of function logs: with WARN,
/// printed (INFO) lines are left out, warnings and errors kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_logger_level_filters_function_logs() {
    let chatty = Function::python("chatty", CHATTY_PY);
    let arn = chatty.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(chatty).route("tester", "talk", &arn).logger_definition(lambda_logger("WARN", 1024))
    });
    let mut tester = env.connect("tester").await;
    tester.publish("talk", QoS::AtLeastOnce, r#"{"n": 3}"#).await;
    env.root.wait_function_log("chatty", &["[WARN]-", "a warning"]).await;
    let text = env.root.function_log("chatty");
    assert!(!text.contains("[INFO]-"), "INFO lines in a log at level WARN:\n{text}");
    env.stop();
}

/// `ggcore status` (text) shows each function with its instances,
/// invocations and errors, and the memory limit mechanism (docs/cli.md, docs/functions.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_status_shows_functions() {
    let calc = Function::python("calc", CALC_PY).pinned();
    let arn = calc.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| g.function(calc).route("tester", "c", &arn));
    let mut tester = env.connect("tester").await;
    tester.publish("c", QoS::AtLeastOnce, r#"{"op": "raise"}"#).await;
    crate::common::eventually("the invocation to be counted", crate::common::DEADLINE, || {
        (env.root.function_status("calc")?["handledErrors"] == 1).then_some(())
    })
    .await;
    let pid = env.root.function_status("calc").unwrap()["instances"][0]["pid"].as_u64().unwrap();
    let out = env.root.run(&["status"]);
    out.assert_code(0);
    let line =
        out.stdout.lines().find(|l| l.contains(&arn) || l.contains("calc")).unwrap_or_else(|| panic!("no line for calc:\n{}", out.stdout));
    assert!(line.contains('1'), "{line}");
    assert!(out.stdout.contains(&pid.to_string()), "the instance's pid is not shown:\n{}", out.stdout);
    let mechanism = env.root.status()["memoryLimits"].as_str().unwrap().to_string();
    assert!(out.stdout.contains(mechanism.split(' ').next().unwrap()), "no memory limit mechanism:\n{}", out.stdout);
    env.stop();
}

/// On-demand instances stop after a while without work (the core's idle
/// timeout, 60 s) and start again on the next message; a pinned instance is
/// kept running all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_on_demand_instances_stop_and_pinned_ones_stay() {
    let transient = pinned_reporter("transient", "1");
    let mut transient_config = transient.clone();
    transient_config.config["Pinned"] = false.into();
    let env = Env::start_group(functions_root(json!({})), &["ctl"], |g| {
        reporters_group(g, vec![transient_config, pinned_reporter("steady", "1")])
    });
    let mut ctl = env.connect("ctl").await;
    ctl.sub("pid/#", QoS::AtLeastOnce).await;
    let (t1, _, _) = report(&mut ctl, "transient").await;
    let (s1, _, _) = report(&mut ctl, "steady").await;
    crate::common::eventually("the idle on-demand instance to stop", std::time::Duration::from_secs(150), || {
        let s = env.root.function_status("transient")?;
        (s["instances"].as_array()?.is_empty() && process_ended(t1)).then_some(())
    })
    .await;
    let (t2, served, _) = report(&mut ctl, "transient").await;
    assert!(t2 != t1 && served == 1, "a new instance serves the next message");
    assert_eq!(report(&mut ctl, "steady").await, (s1, 2, "1".to_string()), "the pinned instance was stopped");
    let s = env.root.function_status("transient").unwrap();
    assert_eq!((s["instancesStarted"].as_u64(), s["crashes"].as_u64()), (Some(2), Some(0)), "{s}");
    env.stop();
}

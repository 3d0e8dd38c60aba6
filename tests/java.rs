//! Java functions (docs/java.md): the classes of `tests/fixtures/java` compiled
//! by the test with `javac` against `ggcore sdk path java` and packed as a
//! jar, run in a JVM inside each instance's worker: routed messages in and
//! out, Java ↔ Python invokes, POJO and stream handlers, a thread of the
//! function's own, an exception, a timeout, running out of memory, and a
//! JAVA_HOME pointing nowhere. The Java runtime's own tests
//! (`sdk-java/test.sh`) run from here too.

use serde_json::{json, Value};

use crate::common::functions::{base64, function_arn, functions_root, next_pid, with_driver, Driver, Function, CALC_PY};
use crate::common::java::functions_jar;
use crate::common::mqtt::text;
use crate::common::process::ggcore_command;
use crate::common::{Env, QoS};

/// A device's JSON messages reach a pinned `RequestHandler<Map, String>`
/// with the topic as its client context's custom `subject`, in order, in one
/// instance; what it publishes reaches the device; its result goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_device_to_function_to_device() {
    let relay = Function::java("jrelay", &functions_jar(), "e2e.Relay").pinned();
    let arn = relay.arn();
    let env = Env::start_group(functions_root(json!({})), &["sensor", "display"], |g| {
        g.function(relay).route("sensor", "java/in/#", &arn).route(&arn, "java/#", "display")
    });
    let mut sensor = env.connect("sensor").await;
    let mut display = env.connect("display").await;
    display.sub("java/out", QoS::AtLeastOnce).await;
    for i in 0..3 {
        sensor.publish(&format!("java/in/{i}"), QoS::AtLeastOnce, json!({"n": i, "text": "héllo"}).to_string()).await;
    }
    for i in 0..3 {
        let p = display.recv().await;
        let got: Value = serde_json::from_slice(&p.payload).unwrap_or_else(|_| panic!("not JSON: {}", text(&p)));
        assert_eq!(got, json!({"n": i, "text": "héllo", "subject": format!("java/in/{i}"), "count": i + 1}));
    }
    display.expect_silence().await;
    let s = env.root.function_status("jrelay").unwrap();
    assert_eq!((s["invocations"].as_u64(), s["succeeded"].as_u64(), s["instancesStarted"].as_u64()), (Some(3), Some(3), Some(1)), "{s}");
    env.stop();
}

/// Python invokes a POJO handler (JSON bound to setters, fields and a
/// list; the answer a POJO by getters and fields) with every context field;
/// Java invokes Python through `LambdaClient` with a client context; a
/// `RequestStreamHandler` and a stream method get binary bytes unchanged; an
/// exception is Unhandled with its type and stack; System.out, System.err and
/// the LambdaLogger land in the function's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_and_python_invoke_each_other() {
    let jar = functions_jar();
    let calc = Function::java("jcalc", &jar, "e2e.Calc::handle");
    let stream = Function::java("jstream", &jar, "e2e.Reverse").binary();
    let method = Function::java("jmethod", &jar, "e2e.Calc::stream").binary();
    let (calc_arn, stream_arn, method_arn, py_arn) = (calc.arn(), stream.arn(), method.arn(), function_arn("calc"));
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        with_driver(g, "tester").function(calc).function(stream).function(method).function(Function::python("calc", CALC_PY))
    });
    let mut driver = Driver::new(env.connect("tester").await).await;

    let r = driver
        .invoke(json!({"FunctionName": calc_arn, "Payload": {"op": "add", "a": 40, "b": 2, "list": [1, 2, 3]}, "ClientContext": {"custom": {"k": "v"}}}))
        .await;
    assert_eq!(r["FunctionError"], "", "{r}");
    let out = &r["PayloadJson"];
    assert_eq!(
        (&out["sum"], &out["arn"], &out["name"], &out["version"], &out["custom"], &out["listSize"]),
        (&json!(42), &json!(calc_arn), &json!("jcalc"), &json!("1"), &json!({"k": "v"}), &json!(3)),
        "{out}"
    );
    assert!(out["requestId"].as_str().is_some_and(|s| s.len() >= 32), "{out}");
    assert!(out["remaining"].as_u64().is_some_and(|ms| ms > 0 && ms <= 30_000), "{out}");

    // Java → Python.
    let out = driver.invoke_ok(&calc_arn, json!({"op": "invoke", "target": py_arn})).await;
    assert_eq!(out["functionError"], "", "{out}");
    let invoked: Value = serde_json::from_str(out["invoked"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!((&invoked["sum"], &invoked["custom"]), (&json!(3), &json!({"from": "java"})), "{out}");

    // The core refuses an unknown function: the SDK's exception, from the
    // plugin's HostException.
    let ghost = function_arn("ghost");
    let out = driver.invoke_ok(&calc_arn, json!({"op": "ghost", "target": ghost})).await;
    let said = out["invoked"].as_str().unwrap_or_default();
    assert!(said.contains("GGLambdaException") && said.contains("NotFound") && said.contains("ghost"), "{out}");
    // The shadow calls reach the shadow service: an update, then the stored document.
    let out = driver.invoke_ok(&calc_arn, json!({"op": "shadow"})).await;
    let doc: Value = serde_json::from_str(out["invoked"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!((&doc["state"]["reported"]["from"], &doc["version"]), (&json!("java"), &json!(1)), "{out}");

    // Binary through a RequestStreamHandler class and a stream method.
    for arn in [&stream_arn, &method_arn] {
        let r = driver.invoke(json!({"FunctionName": arn, "PayloadB64": base64(&[0, 1, 0xff, 0])})).await;
        assert_eq!(
            (r["FunctionError"].as_str(), r["PayloadB64"].as_str()),
            (Some(""), Some(base64(b"rev:\x00\xff\x01\x00").as_str())),
            "{arn}: {r}"
        );
    }

    // An exception: Unhandled, with its type and stack; the instance lives on.
    let r = driver.invoke(json!({"FunctionName": calc_arn, "Payload": {"op": "throw"}})).await;
    assert_eq!(r["FunctionError"], "Unhandled", "{r}");
    let doc = &r["PayloadJson"];
    assert_eq!(
        (&doc["errorMessage"], &doc["errorType"]),
        (&json!("thrown on purpose"), &json!("java.lang.IllegalStateException")),
        "{doc}"
    );
    assert!(doc["stackTrace"].as_array().is_some_and(|s| s.iter().any(|f| f.as_str().is_some_and(|f| f.contains("e2e.Calc")))), "{doc}");

    driver.invoke_ok(&calc_arn, json!({"op": "log"})).await;
    env.root.wait_function_log("jcalc", &["stderr line"]).await;
    env.root.wait_function_log("jcalc", &["logger line"]).await;
    let log = env.root.function_log("jcalc");
    for (level, line) in [("INFO", "stdout line"), ("ERROR", "stderr line"), ("INFO", "logger line")] {
        assert!(log.lines().any(|l| l.contains(&format!("[{level}]-")) && l.contains(line)), "[{level}] {line} in:\n{log}");
    }
    env.stop();
}

/// A pinned Java function's own thread publishes while the runtime serves:
/// every tick arrives, in order, after what the first invocation published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_pinned_thread_publishes() {
    let ticker = Function::java("jticker", &functions_jar(), "e2e.Ticker::handle").pinned();
    let arn = ticker.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| {
        g.function(ticker).route(&arn, "java/#", "tester").route("tester", "java/poke", &arn)
    });
    let mut tester = env.connect("tester").await;
    tester.sub("java/#", QoS::AtLeastOnce).await;
    tester.publish("java/poke", QoS::AtLeastOnce, "poke").await;
    let first = tester.recv().await;
    assert_eq!((first.topic.as_str(), text(&first)), ("java/handled", "poke".to_string()));
    for i in 0..100 {
        let p = tester.recv().await;
        assert_eq!((p.topic.as_str(), text(&p)), ("java/tick", i.to_string()), "ticks in order, none missed");
    }
    tester.expect_silence().await;
    env.stop();
}

/// The Unhandled message of an invoke result.
fn unhandled(r: &Value) -> String {
    assert_eq!(r["FunctionError"], "Unhandled", "{r}");
    format!(
        "{} {}",
        r["PayloadJson"]["errorType"].as_str().unwrap_or_default(),
        r["PayloadJson"]["errorMessage"].as_str().unwrap_or_default()
    )
}

/// `System.exit(3)` ends only the instance; a spin past Timeout is killed;
/// each time the function answers again from a new JVM. Allocating past the
/// heap (three quarters of MemorySize) is an Unhandled OutOfMemoryError
/// within the memory limit, and the instance lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_exit_timeout_and_memory() {
    let calc = Function::java("jcalc", &functions_jar(), "e2e.Calc::handle").pinned().timeout(5).memory_kb(320 * 1024);
    let arn = calc.arn();
    let env = Env::start_group(functions_root(json!({})), &["tester"], |g| with_driver(g, "tester").function(calc));
    let mut driver = Driver::new(env.connect("tester").await).await;
    let mut pid = driver.invoke_ok(&arn, json!({})).await["pid"].as_u64().unwrap();

    let msg = unhandled(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "exit"}})).await);
    assert!(msg.contains("exited with code 3"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "spin"}})).await);
    assert!(msg.contains("Task timed out after 5.00 seconds"), "{msg}");
    pid = next_pid(&mut driver, &arn, pid).await;

    let msg = unhandled(&driver.invoke(json!({"FunctionName": arn, "Payload": {"op": "hog"}})).await);
    assert!(msg.starts_with("java.lang.OutOfMemoryError"), "{msg}");
    assert_eq!(driver.invoke_ok(&arn, json!({})).await["pid"].as_u64(), Some(pid), "the same JVM goes on");
    env.stop();
}

/// With JAVA_HOME pointing nowhere, `plugins list` shows the Java plugin
/// unavailable with the reason, and a deployment naming a Java runtime is
/// refused with it; with the JDK there, the same group deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_home_pointing_nowhere_is_unavailable_and_refused() {
    let root = functions_root(json!({}));
    let nowhere = root.scratch().join("no-jdk");
    let out = ggcore_command().env("JAVA_HOME", &nowhere).arg("--root").arg(&root.path).args(["plugins", "list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing.lines().find(|l| l.starts_with("java ")).unwrap_or_else(|| panic!("no java plugin listed:\n{listing}"));
    assert!(line.contains("unavailable: JAVA_HOME=") && line.contains("holds no JVM"), "{line}");

    let tester = root.device("tester");
    let group = crate::common::Group::new("e2e").device(&tester).function(Function::java("j", &functions_jar(), "e2e.Calc::handle"));
    let mut core = root.start_with_env(&[("JAVA_HOME", nowhere.to_str().unwrap())]);
    let out = root.deploy(&group);
    out.assert_code(2);
    assert!(out.stderr.contains("java11") && out.stderr.contains("holds no JVM"), "{out:?}");
    core.stop();
    let _core = root.start();
    root.deploy_ok(&group);
}

/// The JDK instances run on is the one the core's JAVA_HOME names, even
/// when another one is first on the PATH (the worker finds it before it takes
/// the function's environment). Needs a second JDK on the machine (one under
/// /usr/lib/jvm that is not the PATH's); without one, says so and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_home_chooses_the_jdk() {
    let on_path = std::process::Command::new("sh").args(["-c", "readlink -f \"$(command -v java)\""]).output().unwrap();
    let on_path = String::from_utf8_lossy(&on_path.stdout).trim().to_string();
    let other = std::fs::read_dir("/usr/lib/jvm").into_iter().flatten().flatten().map(|e| e.path()).find(|home| {
        let real = std::fs::canonicalize(home).unwrap_or_default();
        home.join("lib/server/libjvm.so").is_file() && !on_path.starts_with(&real.display().to_string())
    });
    let Some(other) = other else {
        eprintln!("no second JDK under /usr/lib/jvm: nothing to choose between");
        return;
    };
    let calc = Function::java("jcalc", &functions_jar(), "e2e.Calc::handle");
    let arn = calc.arn();
    let java_home = other.display().to_string();
    let env = Env::start_group_with(
        functions_root(json!({})),
        &["tester"],
        |g| with_driver(g, "tester").function(calc),
        |root| root.start_with_env(&[("JAVA_HOME", java_home.as_str())]),
    );
    let mut driver = Driver::new(env.connect("tester").await).await;
    let out = driver.invoke_ok(&arn, json!({"op": "home"})).await;
    let home = std::fs::canonicalize(out["invoked"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(home, std::fs::canonicalize(&other).unwrap(), "{out}");
    env.stop();
}

/// The Java runtime's own tests (JSON, handler binding, context, the SDK's
/// calls against a fake host), run by `sdk-java/test.sh`.
#[test]
fn sdk_java_unit_tests() {
    let dir = crate::common::process::tests_dir().join("../sdk-java");
    let out = std::process::Command::new("bash").arg("test.sh").current_dir(&dir).output().expect("run sdk-java/test.sh");
    assert!(
        out.status.success(),
        "sdk-java/test.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

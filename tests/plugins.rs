//! Runtime plugins (docs/functions.md, docs/cli.md): what `ggcore plugins list` says of good and
//! bad plugin files, an out-of-tree plugin running a function, and groups
//! whose runtime no available plugin serves.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::functions::{fixture_plugin, functions_root, with_driver, Driver, Function, TEXT_RELAY_PY};
use crate::common::mqtt::text;
use crate::common::{connect, Env, Group, QoS, Root};

/// The ABI version of `plugins/abi` (what plugins built in this repository
/// report, and what the core provides).
const ABI: &str = "1.3.0";

/// A shared library that is no plugin (zlib).
fn plain_shared_library() -> &'static Path {
    [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.is_file())
    .expect("libz.so.1 to copy as a non-plugin shared library")
}

/// Puts the fixture plugins, a plain shared library and a corrupt file into
/// `dir` as `libggcore_plugin_*.so`.
fn fill_plugin_dir(dir: &Path) {
    for name in ["echo", "panicky", "wrongabi"] {
        std::fs::copy(fixture_plugin(name), dir.join(format!("libggcore_plugin_{name}.so"))).unwrap();
    }
    std::fs::copy(plain_shared_library(), dir.join("libggcore_plugin_notaplugin.so")).unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("libggcore_plugin_corrupt.so"), garbage).unwrap();
    // Not named like a plugin: never probed.
    std::fs::write(dir.join("libsomething_else.so"), b"not looked at").unwrap();
}

/// `ggcore plugins list --json`, by file name.
fn list(root: &Root) -> (Value, std::collections::BTreeMap<String, Value>) {
    let out = root.run(&["plugins", "list", "--json"]);
    out.assert_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
    let by_file = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (Path::new(p["file"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned(), p.clone()))
        .collect();
    (v, by_file)
}

/// The plugin path holds the out-of-tree echo plugin, one that panics in
/// every entry point, one built against ABI 2.0.0, a plain shared library
/// and a corrupt file: `plugins list` (JSON and text) lists each with its
/// reason, the core starts and serves, a function on the echo plugin runs
/// (its publishes follow the table), and groups whose runtime no available
/// plugin serves are refused with exit 2 naming the runtime and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_are_listed_and_the_out_of_tree_one_runs() {
    let root = functions_root(json!({}));
    fill_plugin_dir(&root.plugins_dir());

    let (listing, plugins) = list(&root);
    assert_eq!(listing["path"][0], root.path.join("plugins").display().to_string(), "{listing}");
    let names: Vec<&String> = plugins.keys().collect();
    assert_eq!(
        names,
        [
            "libggcore_plugin_corrupt.so",
            "libggcore_plugin_echo.so",
            "libggcore_plugin_java.so",
            "libggcore_plugin_native.so",
            "libggcore_plugin_node.so",
            "libggcore_plugin_notaplugin.so",
            "libggcore_plugin_panicky.so",
            "libggcore_plugin_python.so",
            "libggcore_plugin_wrongabi.so"
        ],
        "{listing}"
    );
    let echo = &plugins["libggcore_plugin_echo.so"];
    assert_eq!(
        (&echo["name"], &echo["version"], &echo["abiVersion"], &echo["runtimes"], &echo["available"], &echo["status"]),
        (&json!("echo"), &json!("0.3.0"), &json!(ABI), &json!(["echo1"]), &json!(true), &json!("ok")),
        "{echo}"
    );
    assert_eq!(plugins["libggcore_plugin_python.so"]["status"], "ok");
    let node = &plugins["libggcore_plugin_node.so"];
    assert_eq!((&node["runtimes"], &node["sdkDirs"], &node["status"]), (&json!(["nodejs*"]), &json!(["sdk-node"]), &json!("ok")), "{node}");
    assert!(node["detail"].as_str().is_some_and(|d| d.starts_with("Node.js v")), "{node}");
    let java = &plugins["libggcore_plugin_java.so"];
    assert_eq!((&java["runtimes"], &java["sdkDirs"], &java["status"]), (&json!(["java*"]), &json!(["sdk-java"]), &json!("ok")), "{java}");
    assert!(java["detail"].as_str().is_some_and(|d| d.starts_with("Java ")), "{java}");
    let native = &plugins["libggcore_plugin_native.so"];
    assert_eq!(
        (&native["runtimes"], &native["sdkDirs"], &native["status"]),
        (&json!(["executable", "arn:aws:greengrass:::runtime/function/executable"]), &json!(["sdk-c/lib"]), &json!("ok")),
        "{native}"
    );
    let reasons = [
        ("libggcore_plugin_panicky.so", "plugin panicked in info: panicky plugin: info"),
        ("libggcore_plugin_wrongabi.so", "built against ggcore-plugin-abi 2.0.0, this core provides 1.3.0"),
        ("libggcore_plugin_notaplugin.so", "not a ggcore runtime plugin"),
        ("libggcore_plugin_corrupt.so", "cannot load"),
    ];
    for (file, reason) in reasons {
        let p = &plugins[file];
        assert_eq!(p["available"], false, "{p}");
        let status = p["status"].as_str().unwrap();
        assert!(status.starts_with("unavailable: ") && status.contains(reason), "{file}: {status}");
    }
    let out = root.run(&["plugins", "list"]);
    out.assert_code(0);
    for (file, reason) in reasons.iter().chain(&[("libggcore_plugin_echo.so", ": ok")]) {
        assert!(out.stdout.lines().any(|l| l.contains(file) && l.contains(reason)), "no line for {file} with {reason:?}:\n{}", out.stdout);
    }
    assert!(out.stdout.lines().any(|l| l.starts_with(&format!("echo 0.3.0 (ABI {ABI}) runtimes echo1 "))), "{}", out.stdout);

    // The core starts with them all, and serves a function on echo.
    // Its topic comes from the environment the plugin declares (ABI 1.2);
    // the stray one's own variable wins over it.
    let echo_fn = Function::other("shout", "echo1", "shout.handler");
    let stray_fn = Function::other("stray", "echo1", "stray.handler").env("ECHO_TOPIC", "elsewhere/x");
    let (echo_arn, stray_arn) = (echo_fn.arn(), stray_fn.arn());
    let mut env = Env::start_group(root, &["tester"], |g| {
        g.function(echo_fn)
            .function(stray_fn)
            .route("tester", "echo/in", &echo_arn)
            .route("tester", "stray/in", &stray_arn)
            .route(&echo_arn, "echo/#", "tester")
    });
    let status = env.root.status();
    let in_status: Vec<(String, String)> = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                Path::new(p["file"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(in_status.contains(&("libggcore_plugin_echo.so".into(), "ok".into())), "{in_status:?}");
    assert!(in_status.iter().any(|(f, s)| f == "libggcore_plugin_panicky.so" && s.contains("panicked")), "{in_status:?}");
    let shout = env.root.function_status("shout").unwrap();
    assert!(shout["plugin"].as_str().unwrap().ends_with("libggcore_plugin_echo.so"), "{shout}");

    let mut tester = env.connect("tester").await;
    // `#` is granted (echo/# is routed here) but only routed messages come.
    tester.sub("#", QoS::AtLeastOnce).await;
    tester.publish("echo/in", QoS::AtLeastOnce, "hello").await;
    tester.expect("echo/out", "shout.handler:hello").await;
    env.root.wait_function_log("shout", &["[INFO]-", "echo 5 bytes", "echo/in"]).await;
    // stray publishes on a topic the table does not route to tester.
    tester.publish("stray/in", QoS::AtLeastOnce, "lost").await;
    crate::common::eventually("stray to publish", crate::common::DEADLINE, || {
        (env.root.function_status("stray").unwrap()["succeeded"] == 1).then_some(())
    })
    .await;
    env.root.wait_function_log("stray", &["echo 4 bytes"]).await;
    // A crash in the plugin's instance: the core goes on, a new instance runs.
    tester.publish("echo/in", QoS::AtLeastOnce, "crash").await;
    tester.publish("echo/in", QoS::AtLeastOnce, "fail").await;
    tester.publish("echo/in", QoS::AtLeastOnce, "again").await;
    tester.expect("echo/out", "shout.handler:again").await;
    tester.expect_silence().await;
    let shout = env.root.function_status("shout").unwrap();
    assert_eq!((shout["crashes"].as_u64(), shout["handledErrors"].as_u64()), (Some(1), Some(1)), "{shout}");

    // Runtimes no available plugin serves: refused, the group stays.
    let deployed = env.root.status()["deployment"]["id"].clone();
    for (runtime, reason) in [
        ("wrong1", "no runtime plugin serves runtime 'wrong1'"),
        ("ruby2.7", "no runtime plugin serves runtime 'ruby2.7'"),
        ("java", "give the Java version: java8, java11, java17"),
        ("python2.7", "python2.7 cannot be embedded"),
    ] {
        let g = env.group.clone().function(Function::python("other", "def handler(e, c):\n    pass\n").runtime(runtime));
        let out = env.root.deploy(&g);
        out.assert_code(2);
        assert!(out.stderr.contains("Functions[") && out.stderr.contains("Runtime") && out.stderr.contains(reason), "{runtime}: {out:?}");
    }
    assert_eq!(env.root.status()["deployment"]["id"], deployed);
    assert!(env.root.function_status("other").is_none());

    // Another python3.x runs on the installed Python, with a warning.
    let relay = Function::python(
        "older",
        "import greengrasssdk\n\ndef handler(e, c):\n    greengrasssdk.client('iot-data').publish(topic='echo/py', payload=b'py')\n",
    )
    .runtime("python3.7");
    let older_arn = relay.arn();
    let g = env.group.clone().function(relay).route("tester", "older/in", &older_arn).route(&older_arn, "echo/py", "tester");
    let out = env.root.deploy(&g);
    out.assert_code(0);
    assert!(out.stderr.contains("python3.7") && out.stderr.contains("runs on the installed python3."), "{out:?}");
    env.group = g;
    tester.publish("older/in", QoS::AtLeastOnce, "{}").await;
    let p = tester.recv().await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("echo/py", "py"));
    tester.publish("echo/in", QoS::AtLeastOnce, "still").await;
    tester.expect("echo/out", "shout.handler:still").await;
    assert!(env.core.is_running());
    env.stop();
}

/// `ggcore.plugins.path` in config.json replaces the default path: a plugin
/// there is listed and used; without the executable's directory on it, no
/// Python plugin is found and a Python function is refused at deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugin_path_from_config() {
    let dir = tempfile::Builder::new().prefix("ggcore-e2e-plugins-").tempdir().unwrap();
    std::fs::copy(fixture_plugin("echo"), dir.path().join("libggcore_plugin_echo.so")).unwrap();
    // A directory that does not exist is no error.
    let missing = dir.path().join("missing");
    let root = functions_root(json!({"ggcore": {"plugins": {"path": [missing.display().to_string(), dir.path().display().to_string()]}}}));
    let (listing, plugins) = list(&root);
    assert_eq!(listing["path"], json!([missing.display().to_string(), dir.path().display().to_string()]));
    assert_eq!(plugins.keys().collect::<Vec<_>>(), ["libggcore_plugin_echo.so"], "{listing}");

    let echo_fn = Function::other("shout", "echo1", "h.x").env("ECHO_TOPIC", "echo/out");
    let arn = echo_fn.arn();
    let env =
        Env::start_group(root, &["tester"], |g| g.function(echo_fn).route("tester", "echo/in", &arn).route(&arn, "echo/out", "tester"));
    let mut tester = env.connect("tester").await;
    tester.sub("echo/out", QoS::AtLeastOnce).await;
    tester.publish("echo/in", QoS::AtLeastOnce, "hi").await;
    tester.expect("echo/out", "h.x:hi").await;

    let g = env.group.clone().function(Function::python("py", "def handler(e, c):\n    pass\n"));
    let out = env.root.deploy(&g);
    out.assert_code(2);
    assert!(out.stderr.contains("no runtime plugin serves runtime 'python3.11'"), "{out:?}");
    env.stop();
}

/// A plugin whose zygote takes long to prepare (until the test opens a gate
/// file) holds up nothing else: meanwhile a Python function, on another
/// plugin's zygote, starts and answers. Once the gate opens, the slow
/// plugin's function runs too (its zygote declines to fork, so its instance
/// starts directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_zygote_does_not_hold_up_other_plugins() {
    let root = functions_root(json!({}));
    std::fs::copy(fixture_plugin("slowstart"), root.plugins_dir().join("libggcore_plugin_slowstart.so")).unwrap();
    let gate = root.scratch().join("gate");
    let tester = root.device("tester");
    let slow = Function::other("slow", "slow1", "slow.handler").env("ECHO_TOPIC", "slow/out");
    let quick = Function::python("quick", TEXT_RELAY_PY);
    let (slow_arn, quick_arn) = (slow.arn(), quick.arn());
    let group = Group::new("e2e")
        .device(&tester)
        .function(slow)
        .function(quick)
        .route("tester", "slow/in", &slow_arn)
        .route(&slow_arn, "slow/out", "tester")
        .route("tester", "quick/in", &quick_arn)
        .route(&quick_arn, "relay/out", "tester");
    let mut core = root.start_with_env(&[("GGCORE_TEST_GATE", gate.to_str().unwrap())]);
    root.deploy_ok(&group);
    let mut dev = connect(core.port, &tester).await;
    dev.sub("relay/out", QoS::AtLeastOnce).await;
    dev.sub("slow/out", QoS::AtLeastOnce).await;
    for i in 0..2 {
        dev.publish("quick/in", QoS::AtLeastOnce, json!({ "text": format!("quick {i}") }).to_string()).await;
        dev.expect("relay/out", &format!("quick {i}")).await;
    }
    // All the while, the slow plugin's zygote was still preparing.
    assert_eq!(core.count_log(&["no zygote for this plugin", "libggcore_plugin_slowstart.so"]), 0, "{}", core.log_text());
    std::fs::write(&gate, b"open").unwrap();
    core.wait_log(&["no zygote for this plugin", "libggcore_plugin_slowstart.so"]).await;
    dev.publish("slow/in", QoS::AtLeastOnce, "at last").await;
    dev.expect("slow/out", "slow:at last").await;
    core.stop_ok();
}

/// A plugin that prints 2 MiB on stdout and stderr while it is loaded and
/// probed is listed like any other (the probe drains both while it waits;
/// it used to stall on the full pipe until its time limit), the core starts
/// with it, and a function on it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_printing_while_it_loads_is_probed() {
    let root = functions_root(json!({}));
    std::fs::copy(fixture_plugin("chatty"), root.plugins_dir().join("libggcore_plugin_chatty.so")).unwrap();
    let (_, plugins) = list(&root);
    let chatty = &plugins["libggcore_plugin_chatty.so"];
    assert_eq!(
        (&chatty["name"], &chatty["runtimes"], &chatty["available"], &chatty["status"]),
        (&json!("chatty"), &json!(["chatty1"]), &json!(true), &json!("ok")),
        "{chatty}"
    );
    let talker = Function::other("talker", "chatty1", "talk.handler");
    let arn = talker.arn();
    let env = Env::start_group(root, &["tester"], |g| g.function(talker).route("tester", "talk/in", &arn));
    let mut tester = env.connect("tester").await;
    tester.publish("talk/in", QoS::AtLeastOnce, "hello").await;
    crate::common::eventually("the function to run", crate::common::DEADLINE, || {
        (env.root.function_status("talker")?["succeeded"] == 1).then_some(())
    })
    .await;
    env.stop();
}

/// A plugin built against the previous ABI version (ggcore-plugin-abi 1.0.0,
/// vendored in its fixture) is listed with the version it was built against
/// and runs functions on this core: routed events and RequestResponse invokes
/// reach it, its publishes and log lines reach the core, its results and
/// errors come back. What 1.1 added reads as absent (it declares no SDK
/// directories). A plugin that says 1.0.0 but whose shared types differ from
/// 1.0's is still refused, naming the layout. Plugins of this repository
/// declare their SDK (Python: `sdk-python`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_built_against_the_previous_abi_loads_and_runs() {
    let root = functions_root(json!({}));
    std::fs::copy(fixture_plugin("oldabi"), root.plugins_dir().join("libggcore_plugin_oldabi.so")).unwrap();
    std::fs::copy(fixture_plugin("altered"), root.plugins_dir().join("libggcore_plugin_altered.so")).unwrap();
    let (listing, plugins) = list(&root);
    let old = &plugins["libggcore_plugin_oldabi.so"];
    assert_eq!(
        (&old["name"], &old["abiVersion"], &old["runtimes"], &old["status"], &old["detail"], &old["sdkDirs"]),
        (
            &json!("oldabi"),
            &json!("1.0.0"),
            &json!(["oldabi1"]),
            &json!("ok"),
            &json!("built against ggcore-plugin-abi 1.0.0"),
            &Value::Null
        ),
        "{listing}"
    );
    let python = &plugins["libggcore_plugin_python.so"];
    assert_eq!((&python["abiVersion"], &python["sdkDirs"]), (&json!(ABI), &json!(["sdk-python"])), "{listing}");
    let altered = plugins["libggcore_plugin_altered.so"]["status"].as_str().unwrap();
    assert!(altered.starts_with(&format!("unavailable: ABI layout differs from this core's ggcore-plugin-abi {ABI}")), "{altered}");

    let elder = Function::other("elder", "oldabi1", "elder.handler").env("OLDABI_TOPIC", "elder/out");
    let arn = elder.arn();
    let env = Env::start_group(root, &["tester"], |g| {
        with_driver(g, "tester").function(elder).route("tester", "elder/in", &arn).route(&arn, "elder/#", "tester")
    });
    let mut driver = Driver::new(env.connect("tester").await).await;
    driver.dev.sub("elder/#", QoS::AtLeastOnce).await;
    driver.dev.publish("elder/in", QoS::AtLeastOnce, "hello").await;
    driver.dev.expect("elder/out", "elder.handler:hello").await;
    env.root.wait_function_log("elder", &["[INFO]-", "oldabi (ABI 1.0.0) got 5 bytes"]).await;

    assert_eq!(driver.invoke_ok(&arn, json!("abc")).await, json!("cba"), "the result crosses the old ABI");
    let p = driver.next_other().await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("elder/out", "elder.handler:\"abc\""));
    let failed = driver.invoke(json!({ "FunctionName": arn, "Payload": "fail" })).await;
    assert_eq!(failed["FunctionError"], "Handled", "{failed}");
    assert!(failed["PayloadJson"]["errorMessage"].as_str().is_some_and(|m| m.contains("asked to fail")), "{failed}");

    let status = env.root.function_status("elder").unwrap();
    assert!(status["plugin"].as_str().unwrap().ends_with("libggcore_plugin_oldabi.so"), "{status}");
    assert_eq!((status["succeeded"].as_u64(), status["handledErrors"].as_u64()), (Some(2), Some(1)), "{status}");
    env.stop();
}

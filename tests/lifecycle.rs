//! The process (docs/cli.md, docs/lifecycle.md): the embedded demo on an empty root, one core
//! per root, clean stops on SIGTERM and SIGINT, and `ggcore status`.

use crate::common::external::{option, shell_words, Background};
use crate::common::process::ggcore_command;
use crate::common::{eventually, Env, Opts, QoS, Root, DEADLINE};

/// `ggcore run` on `root`, in the background.
fn spawn_run(root: &std::path::Path) -> Background {
    let mut cmd = ggcore_command();
    cmd.args(["run", "--root"]).arg(root);
    Background::spawn(cmd)
}

/// `ggcore run` on an empty root makes the demo and prints a `mosquitto_sub`
/// and a `mosquitto_pub` line that work when pasted into a shell: the message
/// the printed `mosquitto_pub` line sends reaches the printed `mosquitto_sub`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_root_demo_commands_work() {
    let root = Root::empty();
    let mut core = root.start_with_env(&[("GGCORE_MQTT_PORT", "0")]);
    core.wait_log(&["empty root: making the embedded demo"]).await;
    let sub = core.wait_log(&["mosquitto_sub "]).await;
    let publish = core.wait_log(&["mosquitto_pub "]).await;
    let (sub, publish) = (sub.trim(), publish.trim());
    assert!(sub.starts_with("mosquitto_sub ") && publish.starts_with("mosquitto_pub "));
    let sub_words = shell_words(sub);
    let pub_words = shell_words(publish);
    assert_eq!(option(&sub_words, "-p"), Some(core.port.to_string().as_str()), "{sub}");
    assert_eq!(option(&sub_words, "-h"), Some("localhost"), "{sub}");
    assert_eq!(option(&sub_words, "-i"), Some("demo-device-2"), "{sub}");
    assert_eq!(option(&pub_words, "-i"), Some("demo-device-1"), "{publish}");
    assert!(sub_words.iter().any(|w| w == "-v"), "mosquitto_sub prints topics: {sub}");
    let topic = option(&pub_words, "-t").expect("mosquitto_pub -t").to_string();
    let message = option(&pub_words, "-m").expect("mosquitto_pub -m").to_string();
    let filters: Vec<&String> = sub_words.windows(2).filter(|w| w[0] == "-t").map(|w| &w[1]).collect();
    assert!(!filters.is_empty(), "{sub}");

    // As pasted (exec'd so that stopping the shell stops mosquitto_sub), with
    // a time limit of its own.
    let mut listening = Background::shell(&format!("exec {sub} -W 120"));
    eventually("mosquitto_sub to subscribe", DEADLINE, || filters.iter().all(|f| root.has_subscription("demo-device-2", f)).then_some(()))
        .await;
    let mut sending = Background::shell(publish);
    let sent = sending.finish().await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let heard = listening.wait_line(&format!("{topic} {message}")).await;
    assert_eq!(heard, format!("{topic} {message}"));
    drop(listening);

    let status = root.status();
    assert_eq!(status["group"]["groupId"], "ggcore-demo");
    assert_eq!(status["deployment"]["status"], "Success");
    core.stop_ok();

    // The root is no longer empty: a second start keeps the demo (nothing is
    // made again).
    let mut again = root.start_with_env(&[("GGCORE_MQTT_PORT", "0")]);
    assert_eq!(again.count_log(&["empty root: making the embedded demo"]), 0);
    assert_eq!(root.status()["group"]["groupId"], "ggcore-demo");
    again.stop_ok();
}

/// A SIGTERM that arrives as soon as `ggcore ready` is logged stops the core
/// cleanly too (a supervisor may stop a core at any time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_right_after_ready_exits_0() {
    let root = Root::new();
    for attempt in 0..30 {
        let mut run = spawn_run(&root.path);
        run.stderr.wait_blocking(DEADLINE, |l| l.contains("ggcore ready")).unwrap_or_else(|| panic!("attempt {attempt}: no ready line"));
        run.signal("-TERM");
        let done = run.finish().await;
        assert_eq!(done.code, Some(0), "attempt {attempt}: {done:?}");
    }
}

/// A second `ggcore run` on the same root exits 1 saying another ggcore is
/// running; the first one is unaffected. After a stop the root can run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_run_on_the_same_root_is_refused() {
    let env = Env::start(&["a", "b"], &[("a", "t/#", "b")]);
    let done = spawn_run(&env.root.path).finish().await;
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(done.stderr.iter().any(|l| l.contains("another ggcore is running")), "{done:?}");

    let mut a = env.connect("a").await;
    let mut b = env.connect("b").await;
    b.sub("t/#", QoS::AtLeastOnce).await;
    a.publish("t/1", QoS::AtLeastOnce, "still here").await;
    b.expect("t/1", "still here").await;
    drop((a, b));
    let Env { root, mut core, .. } = env;
    core.stop_ok();
    let mut third = root.start();
    assert_eq!(root.status()["group"]["groupId"], "e2e");
    third.stop_ok();
}

/// SIGTERM and SIGINT stop the core: connected devices are closed, the process
/// exits 0 and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_and_sigint_stop_the_core_with_exit_0() {
    let env = Env::start(&["a", "b"], &[("a", "t/#", "b")]);
    let a_creds = env.creds("a").clone();
    let mut a = env.connect("a").await;
    let mut b = env.connect_with("b", Opts::persistent()).await;
    b.sub("t/#", QoS::AtLeastOnce).await;
    a.publish("t/1", QoS::AtLeastOnce, "before").await;
    b.expect("t/1", "before").await;
    let Env { root, mut core, .. } = env;
    core.stop_ok();
    assert_eq!(core.count_log(&["SIGTERM received"]), 1);
    a.wait_closed().await;
    b.wait_closed().await;
    // No core now.
    assert_eq!(root.run(&["status"]).code, 1);

    let mut core = root.start();
    let mut a = crate::common::connect(core.port, &a_creds).await;
    let status = core.stop_with("-INT");
    assert_eq!(status.code(), Some(0), "exit after SIGINT: {status}");
    core.wait_log(&["SIGINT received"]).await;
    core.wait_log(&["ggcore stopped"]).await;
    a.wait_closed().await;
}

/// `ggcore status --json` reports the deployment, the group, connected devices
/// with their subscriptions, and the router's counters; with no core it exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_reports_deployment_devices_and_counters() {
    let root = Root::new();
    let out = root.run(&["status", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no ggcore is running"), "{out:?}");

    let a = root.device("a");
    let b = root.device("b");
    let group = crate::common::Group::new("status-group").device(&a).device(&b).route("a", "t/#", "b");
    let mut core = root.start();
    let id = root.deploy_ok(&group);
    let mut pa = crate::common::connect(core.port, &a).await;
    let mut pb = crate::common::connect(core.port, &b).await;
    pb.sub("t/#", QoS::AtLeastOnce).await;
    pa.publish("t/1", QoS::AtLeastOnce, "1").await;
    pa.publish("t/2", QoS::AtMostOnce, "2").await;
    pa.publish("elsewhere", QoS::AtLeastOnce, "3").await;
    pb.expect("t/1", "1").await;
    pb.expect("t/2", "2").await;

    let s = root.status();
    assert_eq!(s["pid"], core.pid());
    assert_eq!(s["mqtt"], format!("127.0.0.1:{}", core.port));
    assert_eq!(s["deployment"]["id"], id.as_str());
    assert_eq!(s["deployment"]["status"], "Success");
    assert_eq!(s["group"]["groupId"], "status-group");
    assert_eq!(s["group"]["devices"], 2);
    assert_eq!(s["group"]["subscriptions"], 1);
    assert_eq!(s["devices"]["connected"], 2);
    let list = s["devices"]["list"].as_array().unwrap();
    let things: Vec<&str> = list.iter().map(|d| d["thing"].as_str().unwrap()).collect();
    assert_eq!(things, ["a", "b"]);
    assert_eq!(list[1]["subscriptions"], serde_json::json!(["t/# (QoS 1)"]));
    assert_eq!(s["router"]["received"], 3, "{}", s["router"]);
    assert_eq!(s["router"]["delivered"], 2, "{}", s["router"]);
    assert_eq!(s["router"]["unrouted"], 1, "{}", s["router"]);
    assert_eq!(s["router"]["dropped"], 0, "{}", s["router"]);
    assert_eq!(s["broker"]["connectionsAccepted"], 2, "{}", s["broker"]);

    // The human form says the same.
    let out = root.run(&["status"]);
    out.assert_code(0);
    assert!(out.stdout.contains("devices connected: 2"), "{out:?}");
    assert!(out.stdout.contains("status-group"), "{out:?}");

    pb.disconnect().await;
    eventually("b to be gone from status", DEADLINE, || (root.status()["devices"]["connected"] == 1).then_some(())).await;
    core.stop_ok();
}

/// A config.json with a bad field stops `ggcore run` with exit code 2 and a
/// message naming the file and the field; unknown keys are only warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_config_stops_the_core_with_exit_2() {
    let root = Root::with_config_only(serde_json::json!({
        "ggcore": { "mqtt": { "host": "127.0.0.1", "port": "eighty-eight-eighty-three" } }
    }));
    let done = spawn_run(&root.path).finish().await;
    assert_eq!(done.code, Some(2), "{done:?}");
    assert!(done.stderr.iter().any(|l| l.contains("config/config.json") && l.contains("ggcore.mqtt.port")), "{done:?}");

    let root = Root::with_config_only(serde_json::json!({
        "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0 }, "threads": 100000 }
    }));
    let done = spawn_run(&root.path).finish().await;
    assert_eq!(done.code, Some(2), "{done:?}");
    assert!(done.stderr.iter().any(|l| l.contains("ggcore.threads: 100000 is outside 0-256")), "{done:?}");

    // The environment's override is bounded the same way.
    let root = Root::with_config_only(serde_json::json!({ "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0 } } }));
    let mut cmd = ggcore_command();
    cmd.args(["run", "--root"]).arg(&root.path).env("GGCORE_THREADS", "100000");
    let done = Background::spawn(cmd).finish().await;
    assert_eq!(done.code, Some(2), "{done:?}");
    assert!(done.stderr.iter().any(|l| l.contains("GGCORE_THREADS='100000' is not a thread count (0-256")), "{done:?}");

    // Unknown keys are warned about; `ggcore.threads` sizes the event loop.
    let root = Root::with_config(serde_json::json!({
        "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0 }, "threads": 3 },
        "noSuchKey": true
    }));
    let mut core = root.start();
    core.wait_log(&["noSuchKey", "unknown field"]).await;
    core.wait_log(&["ggcore ready", "threads=3"]).await;
    let system_log = std::fs::read_to_string(root.path.join("ggc/var/log/system/runtime.log")).unwrap_or_default();
    assert!(system_log.contains("noSuchKey: unknown field"), "config warnings belong in runtime.log too:\n{system_log}");
    assert_eq!(root.status()["group"]["devices"], 0);
    core.stop_ok();
}

/// Pinned: answers at once (its instance idles between events).
const KEEPER_PY: &str = r#"
def handler(event, context):
    return None
"#;

/// On demand: says it started on `busy/started`, then sleeps far past the
/// shutdown grace period.
const BUSY_PY: &str = r#"
import time
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='busy/started', payload='sleeping')
    time.sleep(600)
"#;

/// The worker processes of the core on `root`: every process whose command
/// line names the root's `ipc.sock` (zygotes, the instances and spares they
/// fork, and instances started directly).
fn worker_processes(root: &std::path::Path) -> Vec<u32> {
    let socket = root.join("ggc/socket/ipc.sock").display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.contains(&socket) && !crate::common::functions::process_ended(u64::from(pid)) {
            pids.push(pid);
        }
    }
    pids
}

/// The core's memory cgroup directory, from `memoryLimits` in status
/// (`cgroup v1 memory.limit_in_bytes (/sys/fs/cgroup/memory/ggcore-PID)`);
/// `None` under the memory watcher.
fn core_cgroup(status: &serde_json::Value) -> Option<std::path::PathBuf> {
    let text = status["memoryLimits"].as_str()?;
    if !text.starts_with("cgroup") {
        return None;
    }
    let inner = text.rsplit_once('(')?.1.strip_suffix(')')?;
    Some(std::path::PathBuf::from(inner))
}

/// SIGTERM while a pinned function idles, an on-demand one is warm and
/// another is in the middle of a long invocation: the core stops the
/// functions (the busy one after the grace period), exits 0, and leaves no
/// worker process, no memory cgroup and no socket behind. The time from
/// SIGTERM to exit is printed (a measurement, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_functions_running_cleans_up_and_exits_0() {
    use crate::common::functions::{functions_root, Function, TEXT_RELAY_PY};
    let keeper = Function::python("keeper", KEEPER_PY).pinned();
    let warm = Function::python("warm", TEXT_RELAY_PY);
    let busy = Function::python("busy", BUSY_PY).timeout(900);
    let (warm_arn, busy_arn) = (warm.arn(), busy.arn());
    let env = Env::start_group(functions_root(serde_json::json!({})), &["tester"], |g| {
        g.function(keeper)
            .function(warm)
            .function(busy)
            .route("tester", "warm/in", &warm_arn)
            .route(&warm_arn, "relay/out", "tester")
            .route("tester", "busy/in", &busy_arn)
            .route(&busy_arn, "busy/started", "tester")
    });
    let mut tester = env.connect("tester").await;
    tester.sub("relay/out", QoS::AtLeastOnce).await;
    tester.sub("busy/started", QoS::AtLeastOnce).await;
    tester.publish("warm/in", QoS::AtLeastOnce, r#"{"text": "warm up"}"#).await;
    tester.expect("relay/out", "warm up").await;
    tester.publish("busy/in", QoS::AtLeastOnce, "{}").await;
    tester.expect("busy/started", "sleeping").await;
    let root = env.root.path.clone();
    eventually("the pinned instance to idle", DEADLINE, || {
        let s = env.root.function_status("keeper")?;
        (s["instances"][0]["state"] == "idle").then_some(())
    })
    .await;
    let status = env.root.status();
    let cgroup = core_cgroup(&status);
    if let Some(dir) = &cgroup {
        assert!(dir.is_dir(), "{} does not exist: {}", dir.display(), status["memoryLimits"]);
    }
    let workers = worker_processes(&root);
    // The pinned, warm and busy instances (and a zygote and a spare, where
    // zygotes are used).
    assert!(workers.len() >= 3, "worker processes: {workers:?}");

    let Env { mut core, .. } = env;
    let sent = std::time::Instant::now();
    let exit = core.stop();
    let took = sent.elapsed();
    eprintln!("SIGTERM to exit with a pinned, a warm and a busy function: {} ms", took.as_millis());
    assert_eq!(exit.code(), Some(0), "exit after SIGTERM: {exit}\n{}", core.log_text());
    assert_eq!(core.count_log(&["ggcore stopped"]), 1, "{}", core.log_text());

    let left: Vec<u32> = workers.iter().copied().filter(|p| !crate::common::functions::process_ended(u64::from(*p))).collect();
    assert!(left.is_empty(), "worker processes still running after the core exited: {left:?}\n{}", core.log_text());
    assert!(worker_processes(&root).is_empty(), "{:?}", worker_processes(&root));
    if let Some(dir) = &cgroup {
        assert!(!dir.exists(), "memory cgroups left behind under {}: {:?}", dir.display(), std::fs::read_dir(dir).map(|d| d.count()));
    }
    let sockets: Vec<String> = std::fs::read_dir(root.join("ggc/socket"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(sockets.is_empty(), "sockets left in ggc/socket: {sockets:?}");
    // The busy invocation was ended by the shutdown, and says so.
    let log = std::fs::read_to_string(core.root.join("ggc/var/log/user/us-east-1/000000000000/busy.log")).unwrap_or_default();
    assert!(log.contains("the core is stopping"), "busy.log:\n{log}");
}

/// While the core stops, devices stay connected and are answered (pings,
/// acknowledgements), but what they publish is neither routed nor
/// acknowledged: a QoS 1 publish is not accepted by a core that could no
/// longer deliver it, so the device keeps it for the next core.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_during_a_stop_are_not_acknowledged() {
    use crate::common::functions::{functions_root, Function};
    use crate::common::raw::{self, publish_packet};
    use tokio::io::AsyncWriteExt;
    let busy = Function::python("busy", BUSY_PY).timeout(900);
    let busy_arn = busy.arn();
    let env = Env::start_group(functions_root(serde_json::json!({})), &["tester", "other"], |g| {
        g.function(busy).route("tester", "busy/in", &busy_arn).route(&busy_arn, "busy/started", "tester").route("other", "t/#", "tester")
    });
    let mut tester = env.connect("tester").await;
    tester.sub("busy/started", QoS::AtLeastOnce).await;
    tester.sub("t/#", QoS::AtLeastOnce).await;
    let (mut other, mut buf) = raw::session(env.core.port, env.creds("other")).await;
    // A running invocation keeps the core in its grace period.
    tester.publish("busy/in", QoS::AtLeastOnce, "{}").await;
    tester.expect("busy/started", "sleeping").await;

    let Env { mut core, .. } = env;
    let pid = core.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    core.wait_log(&["stopping: no new connections"]).await;
    // A QoS 1 publish, then a ping: the ping is answered, the publish is not
    // (the core answers a device's packets in order, so a PUBACK would come first).
    other.write_all(&publish_packet(b"t/late", 1, 7, b"late")).await.unwrap();
    other.write_all(&[0xc0, 0x00]).await.unwrap();
    match raw::read_packet(&mut other, &mut buf).await {
        Some(rumqttc::mqttbytes::v4::Packet::PingResp) => {}
        other => panic!("expected only a PINGRESP while stopping, got {other:?}"),
    }
    tester.expect_silence().await;
    let exit = core.stop();
    assert_eq!(exit.code(), Some(0), "{}", core.log_text());
    core.wait_log(&["publishes received while the core was stopping were not acknowledged", "thing=other"]).await;
}

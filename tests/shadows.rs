//! The local shadow service (docs/shadows.md), end to end: a device using the
//! AWS IoT Device SDK's shadow client (`AWSIoTPythonSDK`) over TLS with the
//! host name verified, a Python function using the published `greengrasssdk`,
//! `ggcore shadow`, and the cloud sync against Mosquitto with a responder that
//! answers shadow topics as AWS IoT does (tests/fixtures/shadow/cloud_shadow.py).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use serde_json::{json, Value};

use crate::common::cloud::{link_status, Cloud};
use crate::common::external::python;
use crate::common::functions::Function;
use crate::common::group::CORE_THING;
use crate::common::mqtt::text;
use crate::common::process::{tests_dir, Creds, Root};
use crate::common::{eventually, Env, QoS, DEADLINE};

fn fixture(name: &str) -> PathBuf {
    tests_dir().join("fixtures/shadow").join(name)
}

/// Routes that let `device` use the shadow of `thing`: requests to the
/// service, every answer back.
fn shadow_routes(g: crate::common::Group, device: &str, thing: &str) -> crate::common::Group {
    g.route(device, &format!("$aws/things/{thing}/shadow/+"), "GGShadowService").route(
        "GGShadowService",
        &format!("$aws/things/{thing}/shadow/#"),
        device,
    )
}

/// A device running the AWS IoT Device SDK's shadow client (device_shadow.py),
/// one command at a time.
struct ShadowDevice {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl ShadowDevice {
    fn start(port: u16, creds: &Creds, thing: &str, server_name: &str) -> Result<ShadowDevice, Value> {
        let cfg = json!({
            "host": "localhost", "port": port, "server_name": server_name,
            "ca": creds.ca, "cert": creds.cert, "key": creds.key,
            "client_id": creds.thing, "thing": thing,
        });
        let mut child = Command::new(python())
            .arg(fixture("device_shadow.py"))
            .arg(cfg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start device_shadow.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = ShadowDevice { child, stdin, lines };
        let first = d.line();
        if first == "READY" {
            Ok(d)
        } else {
            Err(serde_json::from_str(&first).unwrap_or(json!({"line": first})))
        }
    }

    fn line(&mut self) -> String {
        self.lines.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("device_shadow.py said nothing within {DEADLINE:?}"))
    }

    fn command(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("device_shadow.py: {e}: {line}"))
    }

    /// Runs a request; its (status, payload).
    fn request(&mut self, cmd: Value) -> (String, Value) {
        let r = self.command(cmd);
        (r["status"].as_str().unwrap_or("").to_string(), r["payload"].clone())
    }

    fn deltas(&mut self) -> Vec<Value> {
        self.command(json!({"op": "deltas"}))["deltas"].as_array().cloned().unwrap_or_default()
    }

    fn quit(mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.child.wait();
    }
}

impl Drop for ShadowDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ggcore shadow ARGS...` on `root`: (exit code, stdout as JSON or Null, stderr).
fn cli(root: &Root, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["shadow"];
    all.extend_from_slice(args);
    let out = root.run(&all);
    (out.code, serde_json::from_str(&out.stdout).unwrap_or(Value::Null), out.stderr.clone())
}

/// Guarantee: a device using the AWS IoT Device SDK's shadow client gets AWS
/// IoT's answers from the core, over TLS with the host name verified: an
/// absent shadow is 404, the first update version 1, a desired change made
/// elsewhere (the CLI) reaches its delta callback, a versioned update is
/// accepted and a stale one is 409, malformed JSON is 400 and a document
/// over 8 KiB 413 (nothing stored by either), the stored document and its
/// metadata are right and kept across a core restart, delete removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_sdk_shadow_client_gets_aws_answers() {
    let env = Env::start_group(Root::new(), &["lamp", "tool"], |g| shadow_routes(shadow_routes(g, "lamp", "lamp"), "tool", "lamp"));
    let mut env = env;
    // Host-name verification is on: a name the certificate does not hold is refused.
    let refused = ShadowDevice::start(env.core.port, env.creds("lamp"), "lamp", "not-the-core.example").err().expect("refused");
    assert!(refused["connect_error"].is_string(), "{refused}");

    let mut dev = ShadowDevice::start(env.core.port, env.creds("lamp"), "lamp", "localhost").expect("connect");
    let (status, doc) = dev.request(json!({"op": "get"}));
    assert_eq!((status.as_str(), doc["code"].as_u64()), ("rejected", Some(404)), "{doc}");
    assert_eq!(doc["message"], "No shadow exists with name: 'lamp'");

    let (status, doc) = dev.request(json!({"op": "update", "doc": {"state": {"reported": {"color": "blue", "on": false}}}}));
    assert_eq!((status.as_str(), doc["version"].as_u64()), ("accepted", Some(1)), "{doc}");
    assert!(doc["metadata"]["reported"]["color"]["timestamp"].is_u64(), "{doc}");

    // A desired change made elsewhere reaches the device's delta callback.
    let (code, doc, err) = cli(&env.root, &["update", "lamp", r#"{"state": {"desired": {"color": "red", "on": false}}}"#]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["version"], 2);
    let deltas = eventually("the delta to reach the device", DEADLINE, || {
        let d = dev.deltas();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(deltas.len(), 1, "{deltas:?}");
    assert_eq!(deltas[0]["state"], json!({"color": "red"}), "only what differs from reported");
    assert_eq!(deltas[0]["version"], 2);
    assert!(deltas[0]["metadata"]["color"]["timestamp"].is_u64(), "{deltas:?}");

    let (status, doc) = dev.request(json!({"op": "update", "doc": {"state": {"reported": {"color": "red"}}, "version": 2}}));
    assert_eq!((status.as_str(), doc["version"].as_u64()), ("accepted", Some(3)), "{doc}");
    let (status, doc) = dev.request(json!({"op": "update", "doc": {"state": {"reported": {"color": "green"}}, "version": 2}}));
    assert_eq!((status.as_str(), doc["code"].as_u64()), ("rejected", Some(409)), "{doc}");
    assert_eq!(doc["message"], "Version conflict");
    let big = "x".repeat(9000);
    let (status, doc) = dev.request(json!({"op": "update", "doc": {"state": {"reported": {"big": big}}}}));
    assert_eq!((status.as_str(), doc["code"].as_u64()), ("rejected", Some(413)), "{doc}");

    // Malformed JSON has no client token for the SDK to match: a plain client sends it.
    let mut tool = env.connect("tool").await;
    tool.sub("$aws/things/lamp/shadow/update/rejected", QoS::AtLeastOnce).await;
    tool.publish("$aws/things/lamp/shadow/update", QoS::AtLeastOnce, "{\"state\": {").await;
    let p = tool.recv().await;
    let rejected: Value = serde_json::from_str(&text(&p)).unwrap();
    assert_eq!((rejected["code"].as_u64(), rejected["message"].as_str()), (Some(400), Some("Payload contains invalid json")));
    tool.publish("$aws/things/lamp/shadow/update", QoS::AtLeastOnce, r#"{"state": {"reported": 5}, "clientToken": "t-5"}"#).await;
    let rejected: Value = serde_json::from_str(&text(&tool.recv().await)).unwrap();
    assert_eq!((rejected["code"].as_u64(), rejected["clientToken"].as_str()), (Some(400), Some("t-5")), "{rejected}");

    // The stored document: nothing of the refused requests, metadata per leaf.
    let (status, doc) = dev.request(json!({"op": "get"}));
    assert_eq!(status, "accepted");
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["state"]["reported"], json!({"color": "red", "on": false}));
    assert_eq!(doc["state"]["desired"], json!({"color": "red", "on": false}));
    assert!(doc["state"].get("delta").is_none(), "{doc}");
    let meta = &doc["metadata"];
    assert!(meta["reported"]["color"]["timestamp"].as_u64() >= meta["reported"]["on"]["timestamp"].as_u64(), "{doc}");
    dev.quit();

    // Kept across a restart of the core.
    env.core.stop_ok();
    env.core = env.root.start();
    let mut dev = ShadowDevice::start(env.core.port, env.creds("lamp"), "lamp", "localhost").expect("connect");
    let (status, after) = dev.request(json!({"op": "get"}));
    assert_eq!(status, "accepted");
    assert_eq!(
        (after["state"].clone(), after["metadata"].clone(), after["version"].clone()),
        (doc["state"].clone(), doc["metadata"].clone(), doc["version"].clone())
    );

    let (status, gone) = dev.request(json!({"op": "delete"}));
    assert_eq!((status.as_str(), gone["version"].as_u64()), ("accepted", Some(3)), "{gone}");
    let (status, doc) = dev.request(json!({"op": "get"}));
    assert_eq!((status.as_str(), doc["code"].as_u64()), ("rejected", Some(404)), "{doc}");
    dev.quit();
    // Since the restart: get, delete accepted; get rejected; one synced write.
    let services = env.root.status()["services"]["GGShadowService"].clone();
    assert_eq!(
        (&services["accepted"], &services["rejected"], &services["commits"], &services["storeErrors"]),
        (&json!(2), &json!(1), &json!(1), &json!(0)),
        "{services}"
    );
    env.stop();
}

/// Uses the shadow calls of the published greengrasssdk it bundles.
const SHADOW_PY: &str = r#"
import json
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def call(f, **kw):
    try:
        return {'ok': json.loads(f(**kw)['payload'])}
    except greengrasssdk.IoTDataPlane.ShadowError as e:
        return {'error': str(e)}


def handler(event, context):
    thing = event['thing']
    out = {
        'absent': call(iot.get_thing_shadow, thingName=thing),
        'update': call(iot.update_thing_shadow, thingName=thing,
                       payload=json.dumps({'state': {'desired': {'speed': 3}}, 'clientToken': 'fn-1'})),
        'stale': call(iot.update_thing_shadow, thingName=thing,
                      payload=json.dumps({'state': {'desired': {'speed': 4}}, 'version': 7})),
        'bad': call(iot.update_thing_shadow, thingName=thing, payload=b'{nope'),
        'get': call(iot.get_thing_shadow, thingName=thing),
    }
    iot.publish(topic='fn/out', payload=json.dumps(out))
"#;

/// Guarantee: a function's shadow calls through the published greengrasssdk
/// (bundled from PyPI) get the service's documents, and its errors are the
/// SDK's ShadowError with AWS's code and message; a desired change made by
/// the function reaches a device subscribed to the delta; `ggcore shadow`
/// reads what the function wrote and refuses bad input with a clear error;
/// a reset removes the shadows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_sdk_and_cli_use_the_same_shadows() {
    let wheel = crate::common::functions::greengrasssdk_wheel();
    let f = Function::python("shadower", SHADOW_PY).wheel(&wheel);
    let arn = f.arn();
    let env = Env::start_group(crate::common::functions::functions_root(json!({})), &["fan"], |g| {
        g.function(f).route("fan", "fn/in", &arn).route(&arn, "fn/out", "fan").route(
            "GGShadowService",
            "$aws/things/fan/shadow/update/delta",
            "fan",
        )
    });
    let mut fan = env.connect("fan").await;
    fan.sub("fn/out", QoS::AtLeastOnce).await;
    fan.sub("$aws/things/fan/shadow/update/delta", QoS::AtLeastOnce).await;
    fan.publish("fn/in", QoS::AtLeastOnce, json!({"thing": "fan"}).to_string()).await;
    let mut out = None;
    let mut delta = None;
    while out.is_none() || delta.is_none() {
        let p = fan.recv().await;
        let v: Value = serde_json::from_str(&text(&p)).unwrap();
        if p.topic == "fn/out" {
            out = Some(v);
        } else {
            delta = Some(v);
        }
    }
    let (out, delta) = (out.unwrap(), delta.unwrap());
    assert!(out["absent"]["error"].as_str().unwrap().contains("error code 404"), "{out}");
    assert_eq!(out["update"]["ok"]["version"], 1, "{out}");
    assert_eq!(out["update"]["ok"]["clientToken"], "fn-1", "{out}");
    assert!(out["stale"]["error"].as_str().unwrap().contains("409"), "{out}");
    assert!(out["bad"]["error"].as_str().unwrap().contains("400"), "{out}");
    assert_eq!(out["get"]["ok"]["state"]["delta"], json!({"speed": 3}), "{out}");
    assert_eq!(delta["state"], json!({"speed": 3}));
    assert_eq!(delta["clientToken"], "fn-1");

    let (code, doc, err) = cli(&env.root, &["get", "fan"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["state"]["desired"], json!({"speed": 3}));
    let (code, doc, err) = cli(&env.root, &["update", "fan", "{not json"]);
    assert_eq!(code, 2);
    assert_eq!(doc["code"], 400);
    assert!(err.contains("shadow update of fan rejected: 400 Payload contains invalid json"), "{err}");
    let (code, _, err) = cli(&env.root, &["get", "no/such"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("thing name"), "{err}");
    let (code, doc, err) = cli(&env.root, &["delete", "fan"]);
    assert_eq!((code, doc["version"].as_u64()), (0, Some(1)), "{err}");
    let (code, doc, _) = cli(&env.root, &["get", "fan"]);
    assert_eq!((code, doc["code"].as_u64()), (1, Some(404)));
    fan.expect_silence().await;

    // A reset removes the local shadows.
    let (code, _, err) = cli(&env.root, &["update", "kept", r#"{"state": {"reported": {"k": 1}}}"#]);
    assert_eq!(code, 0, "{err}");
    env.root.run(&["deploy", "--reset"]).assert_code(0);
    let (code, doc, _) = cli(&env.root, &["get", "kept"]);
    assert_eq!((code, doc["code"].as_u64()), (1, Some(404)), "{doc}");
    env.stop();
}

// ---------------------------------------------------------------------------
// Cloud sync.

/// The fake AWS IoT shadow service on the test's cloud broker.
struct Responder {
    child: Option<Child>,
    args: Vec<String>,
    state: PathBuf,
}

impl Responder {
    fn start(cloud: &Cloud) -> Responder {
        let id = cloud.pki.client("responder", "cloud-shadow");
        let state = cloud.dir.join("cloud-shadows.json");
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &cloud.broker.port.to_string(),
            "--ca",
            cloud.pki.ca.to_str().unwrap(),
            "--cert",
            id.cert.to_str().unwrap(),
            "--key",
            id.key.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ]
        .map(str::to_string)
        .to_vec();
        let mut r = Responder { child: None, args, state };
        r.run();
        r
    }

    fn run(&mut self) {
        let mut child = Command::new(python())
            .arg(fixture("cloud_shadow.py"))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cloud_shadow.py");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "cloud_shadow.py did not start");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The cloud's documents (the responder's state file).
    fn documents(&self) -> Value {
        std::fs::read(&self.state).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(json!({}))
    }

    /// The cloud's shadow of `thing` (`{state, metadata, version, exists}`),
    /// as the responder stores it.
    fn shadow(&self, thing: &str) -> Value {
        self.documents().pointer(&format!("/things/{thing}")).cloned().unwrap_or(Value::Null)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn desired(doc: &Value, key: &str) -> Value {
    doc.pointer(&format!("/state/desired/{key}")).cloned().unwrap_or(Value::Null)
}

/// Guarantee: for a thing with `SyncShadow`, a local change reaches the
/// cloud's shadow and a change made in the cloud reaches the local shadow
/// and a device's delta; across an outage, changes made on both sides meet
/// (neither side's accepted change is lost), and a field changed on both
/// sides takes the newer one (docs/shadows.md, "Conflicts").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn synced_shadows_meet_the_cloud_across_an_outage() {
    let mut cloud = Cloud::start().await;
    let mut responder = Responder::start(&cloud);
    let root = cloud.root(json!({}));
    let creds = root.device("lamp");
    let group = shadow_routes(crate::common::Group::new("e2e").device(&creds), "lamp", "lamp").sync_shadow("lamp").sync_shadow(CORE_THING);
    let mut core = root.start();
    root.deploy_ok(&group);
    eventually("the cloud link", DEADLINE, || (link_status(&root)["state"] == "connected").then_some(())).await;

    // Local → cloud.
    let (code, _, err) = cli(&root, &["update", "lamp", r#"{"state": {"desired": {"a": 1}, "reported": {"r": "x"}}}"#]);
    assert_eq!(code, 0, "{err}");
    eventually("the local change to reach the cloud", DEADLINE, || (desired(&responder.shadow("lamp"), "a") == 1).then_some(())).await;
    assert_eq!(responder.shadow("lamp").pointer("/state/reported/r"), Some(&json!("x")));

    // Cloud → local, and to the device as a delta.
    let mut dev = crate::common::mqtt::connect(core.port, &creds).await;
    dev.sub("$aws/things/lamp/shadow/update/delta", QoS::AtLeastOnce).await;
    cloud.publish("$aws/things/lamp/shadow/update", r#"{"state": {"desired": {"b": 2}}}"#);
    let p = dev.recv().await;
    let delta: Value = serde_json::from_str(&text(&p)).unwrap();
    assert_eq!(delta["state"]["b"], 2, "{delta}");
    let (_, local, _) = cli(&root, &["get", "lamp"]);
    assert_eq!((desired(&local, "a"), desired(&local, "b")), (json!(1), json!(2)), "{local}");
    let core_sync = root.status()["services"]["GGShadowService"]["sync"].clone();
    assert_eq!(core_sync["things"], json!([CORE_THING, "lamp"]), "{core_sync}");

    // An outage: both sides change; c on both, the cloud's later.
    cloud.down().await;
    responder.stop();
    eventually("the link to notice the outage", DEADLINE, || (link_status(&root)["state"] != "connected").then_some(())).await;
    let (code, _, err) = cli(&root, &["update", "lamp", r#"{"state": {"desired": {"local": true, "c": "core"}}}"#]);
    assert_eq!(code, 0, "{err}");
    {
        // The cloud's side, written as the responder keeps it: a new field and
        // c, both stamped later than the core's change.
        let mut docs = responder.documents();
        let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 100;
        let shadow = docs.pointer_mut("/things/lamp").expect("the cloud has lamp's shadow");
        shadow["state"]["desired"]["cloud"] = json!(true);
        shadow["state"]["desired"]["c"] = json!("cloud");
        shadow["metadata"]["desired"]["cloud"] = json!({"timestamp": later});
        shadow["metadata"]["desired"]["c"] = json!({"timestamp": later});
        let v = shadow["version"].as_u64().unwrap();
        shadow["version"] = json!(v + 1);
        std::fs::write(&responder.state, serde_json::to_vec(&docs).unwrap()).unwrap();
    }
    // The core restarts while the cloud is away: the sync resumes from what it stored.
    core.stop_ok();
    core = root.start();
    cloud.up().await;
    responder.run();
    eventually("both sides to meet", DEADLINE * 2, || {
        let (_, local, _) = cli(&root, &["get", "lamp"]);
        let remote = responder.shadow("lamp");
        let want = json!({"a": 1, "b": 2, "local": true, "cloud": true, "c": "cloud"});
        (local["state"]["desired"] == want && remote["state"]["desired"] == want).then_some(())
    })
    .await;
    let sync = root.status()["services"]["GGShadowService"]["sync"].clone();
    assert!(sync["conflicts"].as_u64() >= Some(1), "c changed on both sides: {sync}");
    drop(dev);
    core.stop_ok();
}

//! Functions (docs/group.md, docs/functions.md): group entries with their code, the Python
//! sources the tests deploy, a driver function that makes SDK calls when a
//! device asks and reports what they returned, and the fixture runtime plugins
//! in `tests/fixtures/plugins`, built out of tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::group::{Group, ACCOUNT, REGION};
use super::mqtt::{text, Device};

use super::process::Root;
use super::{QoS, DEADLINE};

/// The Node.js runtime the tests ask for (a Greengrass name, served on the
/// installed Node).
pub const NODE: &str = "nodejs12.x";

/// The npm packages a function bundling the published Node SDK ships.
const NPM_SDK_PACKAGES: [&str; 4] = ["aws-greengrass-core-sdk", "cbor", "bignumber.js", "nofilter"];

/// `$GGCORE_TEST_NPM/node_modules` (installed by scripts/test).
pub fn npm_modules() -> PathBuf {
    let dir = match std::env::var_os("GGCORE_TEST_NPM") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ggcore/npm"),
    };
    let modules = dir.join("node_modules");
    assert!(
        modules.join("aws-greengrass-core-sdk/package.json").is_file(),
        "the npm packages are not installed in {}: run scripts/test, which installs them",
        dir.display()
    );
    modules
}

/// The Python runtime the tests ask for (the installed CPython).
pub const PYTHON: &str = "python3.11";

/// `arn:aws:lambda:us-east-1:000000000000:function:NAME`
pub fn unqualified_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// `arn:aws:lambda:us-east-1:000000000000:function:NAME:1` (the version tests deploy).
pub fn function_arn(name: &str) -> String {
    format!("{}:1", unqualified_arn(name))
}

/// A function of a group: its `Functions[]` entry and the files of its code
/// directory.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub version: String,
    pub runtime: String,
    /// `FunctionConfiguration`.
    pub config: Value,
    files: Vec<(String, Vec<u8>)>,
    wheels: Vec<PathBuf>,
    npm: bool,
    /// Files of `files` written with mode 0755.
    executables: Vec<String>,
}

impl Function {
    /// A Python function whose code is `main.py` = `source`, handler
    /// `main.handler`; on demand, json, 30 s, 128 MB.
    pub fn python(name: &str, source: &str) -> Self {
        Self {
            name: name.to_string(),
            version: "1".to_string(),
            runtime: PYTHON.to_string(),
            config: json!({
                "Executable": "main.handler",
                "MemorySize": 131072,
                "Timeout": 30,
                "Pinned": false,
                "EncodingType": "json",
            }),
            files: vec![("main.py".to_string(), source.as_bytes().to_vec())],
            wheels: Vec::new(),
            npm: false,
            executables: Vec::new(),
        }
    }

    /// A Node.js function whose code is `index.js` = `source`, handler
    /// `index.handler`, runtime `nodejs12.x` (served on the installed Node);
    /// on demand, json, 30 s, 128 MB.
    pub fn node(name: &str, source: &str) -> Self {
        let mut f = Self::python(name, "");
        f.files = vec![("index.js".to_string(), source.as_bytes().to_vec())];
        f.runtime = NODE.to_string();
        f.config["Executable"] = "index.handler".into();
        f
    }

    /// A Lambda executable (runtime `executable`): `program` (a compiled
    /// binary) is the code directory's `fn`, its Executable; binary encoding
    /// (the only one Greengrass allows for executables); on demand, 30 s, 128 MB.
    pub fn native(name: &str, program: &[u8]) -> Self {
        let mut f = Self::python(name, "");
        f.files = vec![("fn".to_string(), program.to_vec())];
        f.executables = vec!["fn".to_string()];
        f.runtime = "executable".to_string();
        f.config["Executable"] = "fn".into();
        f.config["EncodingType"] = "binary".into();
        f
    }

    /// A Java function: `jar` (the compiled functions) is the code
    /// directory's `functions.jar`, `handler` its Executable
    /// (`package.Class::method` or `package.Class`); runtime `java11` (served
    /// by the installed JDK), on demand, json, 30 s, 128 MB.
    pub fn java(name: &str, jar: &[u8], handler: &str) -> Self {
        let mut f = Self::python(name, "");
        f.files = vec![("functions.jar".to_string(), jar.to_vec())];
        f.runtime = super::java::JAVA.to_string();
        f.config["Executable"] = handler.into();
        f
    }

    /// `ExecArgs`.
    pub fn exec_args(mut self, args: &str) -> Self {
        self.config["ExecArgs"] = args.into();
        self
    }

    /// Another executable file of the code directory (a library, a program).
    pub fn executable_file(mut self, path: &str, contents: &[u8]) -> Self {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.to_string(), contents.to_vec()));
        self.executables.push(path.to_string());
        self
    }

    /// The published npm `aws-greengrass-core-sdk@1.7.0` and its
    /// dependencies copied into the code's `node_modules`, as users ship it.
    pub fn npm_sdk(mut self) -> Self {
        self.npm = true;
        self
    }

    /// A function of another runtime (a fixture plugin's), with `handler` as
    /// its Executable and an empty code directory.
    pub fn other(name: &str, runtime: &str, handler: &str) -> Self {
        let mut f = Self::python(name, "");
        f.files.clear();
        f.files.push(("README".to_string(), b"no code: the runtime is the plugin\n".to_vec()));
        f.runtime = runtime.to_string();
        f.config["Executable"] = handler.into();
        f
    }

    /// The qualified ARN (`...:function:NAME:VERSION`).
    pub fn arn(&self) -> String {
        format!("{}:{}", unqualified_arn(&self.name), self.version)
    }

    pub fn pinned(mut self) -> Self {
        self.config["Pinned"] = true.into();
        self
    }

    pub fn timeout(mut self, seconds: u64) -> Self {
        self.config["Timeout"] = seconds.into();
        self
    }

    pub fn memory_kb(mut self, kb: u64) -> Self {
        self.config["MemorySize"] = kb.into();
        self
    }

    pub fn binary(mut self) -> Self {
        self.config["EncodingType"] = "binary".into();
        self
    }

    pub fn runtime(mut self, runtime: &str) -> Self {
        self.runtime = runtime.to_string();
        self
    }

    /// `Environment.Variables[key] = value`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.config["Environment"]["Variables"][key] = value.into();
        self
    }

    /// `Environment.Execution.RunAs`.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.config["Environment"]["Execution"]["RunAs"] = json!({ "Uid": uid, "Gid": gid });
        self
    }

    /// `Environment.Execution.IsolationMode` (`GreengrassContainer`, `NoContainer`).
    pub fn isolation(mut self, mode: &str) -> Self {
        self.config["Environment"]["Execution"]["IsolationMode"] = mode.into();
        self
    }

    /// Another file of the code directory.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.to_string(), contents.as_bytes().to_vec()));
        self
    }

    /// A wheel (zip) unpacked into the code directory, as users bundle packages.
    pub fn wheel(mut self, wheel: &Path) -> Self {
        self.wheels.push(wheel.to_path_buf());
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "Id": self.name,
            "FunctionArn": self.arn(),
            "Runtime": self.runtime,
            "Code": format!("functions/{}", self.name),
            "FunctionConfiguration": self.config,
        })
    }

    /// Writes the code directory (replacing `dir`).
    pub fn write_code(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for (path, contents) in &self.files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, contents).unwrap();
            if self.executables.contains(path) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        for wheel in &self.wheels {
            unzip(wheel, dir);
        }
        if self.npm {
            let from = npm_modules();
            std::fs::create_dir_all(dir.join("node_modules")).unwrap();
            for package in NPM_SDK_PACKAGES {
                let out = Command::new("cp").arg("-r").arg(from.join(package)).arg(dir.join("node_modules")).output().expect("run cp");
                assert!(out.status.success(), "copy {package}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// JSON events of every shape a relay test sends (object with nesting and
/// non-ASCII text, array, string).
pub fn relay_events() -> [Value; 3] {
    [json!({"n": 1, "text": "héllo ✓", "nested": {"list": [1, 2.5, null, true]}}), json!([1, "two"]), json!("just a string")]
}

/// A binary payload with every byte value and sequences that are not UTF-8.
pub fn binary_probe() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).rev().collect();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80]);
    bytes
}

/// Standard base64 with padding (the tests' own, to stay off extra crates).
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Unpacks a zip file into `dir` with the test Python's `zipfile`.
pub fn unzip(zip: &Path, dir: &Path) {
    let out = Command::new(super::external::python())
        .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])"])
        .arg(zip)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(out.status.success(), "unzip {}: {}", zip.display(), String::from_utf8_lossy(&out.stderr));
}

/// The published `greengrasssdk` 1.6.1 wheel that scripts/test downloads:
/// `$GGCORE_TEST_WHEELS/greengrasssdk-1.6.1-*.whl`.
pub fn greengrasssdk_wheel() -> PathBuf {
    let dir = match std::env::var_os("GGCORE_TEST_WHEELS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ggcore/wheels"),
    };
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("greengrasssdk-1.6.1-")))
        .unwrap_or_else(|| {
            panic!(
                "no greengrasssdk-1.6.1 wheel in {}: run scripts/test, or `pip download --no-deps -d {} greengrasssdk==1.6.1`",
                dir.display(),
                dir.display()
            )
        })
}

/// The config of a root whose functions may run as root (most tests: the
/// code under a temporary directory is private to root).
pub fn root_functions_config() -> Value {
    let mut c = super::process::test_config();
    c["runtime"] = json!({ "allowFunctionsToRunAsRoot": "yes" });
    c
}

/// A root with [`root_functions_config`] plus `extra` merged in (objects
/// merged key by key).
pub fn functions_root(extra: Value) -> Root {
    let mut c = root_functions_config();
    merge(&mut c, extra);
    Root::with_config(c)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Publishes the `text` of each event on `relay/out` (a device's round trip
/// through a function, beside other work).
pub const TEXT_RELAY_PY: &str = r#"
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='relay/out', payload=event['text'])
"#;

/// The callee of invoke tests: `add`, `raise`, `record` (publishes the event
/// and client context on `calc/events`), `pad`, `sleep`.
pub const CALC_PY: &str = r#"
import json
import os
import time

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    op = event.get('op') if isinstance(event, dict) else None
    custom = context.client_context.custom if context.client_context is not None else None
    if op == 'add':
        return {'sum': event['a'] + event['b'], 'custom': custom, 'arn': context.invoked_function_arn, 'pid': os.getpid()}
    if op == 'raise':
        raise ValueError(event.get('message', 'bad input'))
    if op == 'record':
        iot.publish(topic='calc/events', payload=json.dumps({'event': event, 'custom': custom}))
        return None
    if op == 'pad':
        return {'padded': len(event['pad'])}
    if op == 'sleep':
        time.sleep(event['s'])
        return {'slept': event['s'], 'pid': os.getpid()}
    return {'echo': event}
"#;

/// Whether process `pid` has ended (gone, or a zombie waiting to be reaped).
pub fn process_ended(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// The Python driver: on a request published by a device on `drive/req`
/// (`{"id", "op", ...}`) it makes SDK calls and publishes what they returned
/// on `driver/reply` (`{"id", ...}`; `{"exception", "message"}` when the call
/// raised). Ops:
/// - `invoke` `{args}`: `client('lambda').invoke(**args)`, with `Payload`
///   given as JSON (sent as its text), `PayloadText`, `PayloadB64`, and
///   `PayloadSize` (`{"op": "pad", "pad": "ppp..."}` of that many bytes), and `ClientContext` as
///   JSON (sent base64 as bytes) or `ClientContextRaw`;
///   answers `FunctionError`, `Payload` (text), `PayloadB64`, `PayloadJson`
///   and `streaming` (whether `Payload` was a StreamingBody).
/// - `events` `{n, args}`: `n` Event invokes with `Payload` = `args.Payload`
///   plus `"i"`; answers `accepted`, `refused` and the first `errors`.
/// - `ipc_publish` `{topic, payload, source?}`: `IPCClient().post_work` to the
///   router with that client context (how the published SDK publishes).
/// - `publishes` `{n, topic, payload, queueFullPolicy?}`: `n` publishes of
///   `payload` (an object) plus `"i"` (from `payload.base`); answers `ok` and
///   `failed`.
/// - `publish` `{topic, payload}` (or `size`: that many bytes):
///   `client('iot-data').publish`.
pub const DRIVER_PY: &str = r#"
import base64
import json

import greengrasssdk
from greengrass_ipc_python_sdk.ipc_client import IPCClient

iot = greengrasssdk.client('iot-data')
lam = greengrasssdk.client('lambda')


def invoke_args(spec):
    kw = {}
    for k, v in spec.items():
        if k == 'Payload':
            kw['Payload'] = json.dumps(v).encode()
        elif k == 'PayloadText':
            kw['Payload'] = v.encode()
        elif k == 'PayloadSize':
            prefix, suffix = b'{"op": "pad", "pad": "', b'"}'
            kw['Payload'] = prefix + b'p' * (v - len(prefix) - len(suffix)) + suffix

        elif k == 'PayloadB64':
            kw['Payload'] = base64.b64decode(v)
        elif k == 'ClientContext':
            kw['ClientContext'] = base64.b64encode(json.dumps(v).encode())
        elif k == 'ClientContextRaw':
            kw['ClientContext'] = v.encode()
        else:
            kw[k] = v
    return kw


def describe(result):
    payload = result['Payload']
    streaming = hasattr(payload, 'read')
    if streaming:
        payload = payload.read()
    out = {
        'FunctionError': result['FunctionError'],
        'streaming': streaming,
        'Payload': payload.decode('utf-8', 'replace'),
        'PayloadB64': base64.b64encode(payload).decode(),
        'PayloadJson': None,
    }
    try:
        out['PayloadJson'] = json.loads(payload.decode('utf-8'))
    except Exception:
        pass
    return out


def run(req):
    op = req['op']
    if op == 'invoke':
        return describe(lam.invoke(**invoke_args(req['args'])))
    if op == 'events':
        accepted, refused, errors = 0, 0, []
        for i in range(req['n']):
            args = dict(req['args'])
            payload = dict(args.get('Payload') or {})
            payload['i'] = i
            args['Payload'] = payload
            try:
                r = lam.invoke(InvocationType='Event', **invoke_args(args))
                assert r == {'Payload': b'', 'FunctionError': ''}, r
                accepted += 1
            except Exception as e:
                refused += 1
                if len(errors) < 3:
                    errors.append('{}: {}'.format(type(e).__name__, e))
        return {'accepted': accepted, 'refused': refused, 'errors': errors}
    if op == 'ipc_publish':
        custom = {'subject': req['topic']}
        if 'source' in req:
            custom['source'] = req['source']
        context = base64.b64encode(json.dumps({'custom': custom}).encode())
        invocation_id = IPCClient().post_work('arn:aws:lambda:::function:GGRouter', req['payload'].encode(), context, 'Event')
        return {'invocation_id': invocation_id}
    if op == 'publishes':
        ok, failed = 0, 0
        for i in range(req['n']):
            payload = dict(req['payload'])
            payload['i'] = payload.get('base', 0) + i
            try:
                iot.publish(topic=req['topic'], payload=json.dumps(payload), queueFullPolicy=req.get('queueFullPolicy', ''))
                ok += 1
            except Exception:
                failed += 1
        return {'ok': ok, 'failed': failed}
    if op == 'publish':
        payload = req['payload'] if 'size' not in req else 'p' * req['size']
        iot.publish(topic=req['topic'], payload=payload)
        return {}
    raise ValueError('unknown op {}'.format(op))


def handler(event, context):
    try:
        out = run(event)
    except Exception as e:
        out = {'exception': type(e).__name__, 'message': str(e)}
    out['id'] = event.get('id')
    iot.publish(topic='driver/reply', payload=json.dumps(out))
"#;

/// The driver function ([`DRIVER_PY`]): on demand, 120 s timeout.
pub fn driver() -> Function {
    Function::python("driver", DRIVER_PY).timeout(120)
}

/// Adds the driver and its routes with `tester` (a device of the group).
pub fn with_driver(group: Group, tester: &str) -> Group {
    let arn = function_arn("driver");
    group.function(driver()).route(tester, "drive/#", &arn).route(&arn, "driver/#", tester)
}

/// A device talking to the driver function.
pub struct Driver {
    pub dev: Device,
    next: u64,
    /// Messages other than replies that arrived while waiting for a reply.
    pub others: Vec<rumqttc::Publish>,
}

impl Driver {
    /// Wraps a connected device of a group made with [`with_driver`].
    pub async fn new(mut dev: Device) -> Self {
        dev.sub("driver/reply", QoS::AtLeastOnce).await;
        Self { dev, next: 0, others: Vec::new() }
    }

    /// Sends `request` and returns the driver's reply.
    pub async fn call(&mut self, mut request: Value) -> Value {
        self.next += 1;
        let id = self.next;
        request["id"] = id.into();
        self.dev.publish("drive/req", QoS::AtLeastOnce, request.to_string()).await;
        let deadline = tokio::time::Instant::now() + DEADLINE * 4;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let p = self.dev.recv_within(left).await.unwrap_or_else(|| panic!("no reply from the driver to {request}"));
            if p.topic != "driver/reply" {
                self.others.push(p);
                continue;
            }
            let v: Value = serde_json::from_slice(&p.payload).unwrap_or_else(|e| panic!("driver reply is not JSON ({e}): {}", text(&p)));
            assert_eq!(v["id"], id, "a reply to another request: {v} (asked {request})");
            return v;
        }
    }

    /// The next message that is not a reply (stashed while waiting for a
    /// reply, or the next to arrive).
    pub async fn next_other(&mut self) -> rumqttc::Publish {
        if !self.others.is_empty() {
            return self.others.remove(0);
        }
        let p = self.dev.recv().await;
        assert_ne!(p.topic, "driver/reply", "an unexpected reply from the driver: {}", text(&p));
        p
    }

    /// `client('lambda').invoke(**args)` in the driver.
    pub async fn invoke(&mut self, args: Value) -> Value {
        self.call(json!({ "op": "invoke", "args": args })).await
    }

    /// A RequestResponse invoke of `arn` with a JSON payload that must succeed;
    /// returns the result as JSON.
    pub async fn invoke_ok(&mut self, arn: &str, payload: Value) -> Value {
        let r = self.invoke(json!({ "FunctionName": arn, "Payload": payload })).await;
        assert_eq!(r["FunctionError"], "", "invoke of {arn} failed: {r}");
        assert!(r.get("exception").is_none(), "invoke of {arn} raised: {r}");
        r["PayloadJson"].clone()
    }
}

/// Asserts that `new` is another process than `old` and waits until `old`
/// is gone (an instance was replaced); `new`.
pub async fn replaced(old: u64, new: u64) -> u64 {
    assert_ne!(new, old, "the instance was not replaced");
    super::eventually("the old process to be gone", DEADLINE, || process_ended(old).then_some(())).await;
    new
}

/// The pid a function that answers `{"pid": PID}` to `{}` answers from: a new
/// process, not `old`.
pub async fn next_pid(driver: &mut Driver, arn: &str, old: u64) -> u64 {
    let pid = driver.invoke_ok(arn, json!({})).await["pid"].as_u64().expect("a pid");
    replaced(old, pid).await
}

/// Where the fixture plugins' Cargo projects are.
pub fn fixtures_dir() -> PathBuf {
    crate::common::process::tests_dir().join("fixtures/plugins")
}

/// The target directory the tests were built in (`target/` above
/// `target/debug/deps/e2e-*`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(3).expect("test executable is in target/<profile>/deps").to_path_buf()
}

/// Builds fixture plugin `name` (`echo`, `panicky`, `wrongabi`, `oldabi`,
/// `altered`, `slowstart`, `chatty`) once per test
/// run, into `target/fixtures`; returns its `.so`.
pub fn fixture_plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let target = target_dir().join("fixtures");
    let manifest = match name {
        "wrongabi" => wrongabi_project(&target),
        "altered" => altered_project(&target),
        _ => fixtures_dir().join(name).join("Cargo.toml"),
    };
    cargo_build(&manifest, &target);
    let so = target.join("debug").join(format!("libggcore_plugin_{name}.so"));
    assert!(so.is_file(), "building {} made no {}", manifest.display(), so.display());
    built.insert(name.to_string(), so.clone());
    so
}

fn cargo_build(manifest: &Path, target: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut last = String::new();
    // Every dependency is in the local registry already (the workspace uses
    // it): try offline first, so that a machine without network builds too.
    for offline in [true, false] {
        let mut cmd = Command::new(&cargo);
        cmd.arg("build").arg("--manifest-path").arg(manifest).arg("--target-dir").arg(target);
        if offline {
            cmd.arg("--offline");
        }
        cmd.env_remove("RUSTFLAGS").env_remove("CARGO_BUILD_TARGET").stdin(std::process::Stdio::null());
        let out = cmd.output().expect("run cargo");
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("cargo build --manifest-path {} failed:\n{last}", manifest.display());
}

/// Writes `contents` to `file` unless it already holds them (so that cargo
/// does not rebuild an unchanged copy), atomically (another test run may be
/// reading it).
fn write_if_changed(file: &Path, contents: &[u8]) {
    if std::fs::read(file).ok().as_deref() != Some(contents) {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            write_if_changed(&dest, &std::fs::read(&p).unwrap());
        }
    }
}

/// The wrongabi project: a copy of `plugins/abi` whose version is 2.0.0 (a
/// standalone crate: workspace keys made concrete), and the fixture pointing
/// at it. Returns its manifest.
fn wrongabi_project(target: &Path) -> PathBuf {
    let repo = crate::common::process::tests_dir().parent().unwrap().to_path_buf();
    let src = target.join("wrongabi-src");
    let abi = src.join("abi");
    let root_manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    let workspace_value = |key: &str| -> String {
        root_manifest
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no `{key} = ...` in the workspace Cargo.toml"))
    };
    let mut manifest = String::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(repo.join("plugins/abi/Cargo.toml")).unwrap().lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        if section == "[lints]" {
            continue;
        }
        if section == "[package]" && t.starts_with("version = ") {
            manifest.push_str("version = \"2.0.0\"\n");
        } else if let Some(key) = t.strip_suffix(".workspace = true") {
            manifest.push_str(&format!("{key} = {}\n", workspace_value(key)));
        } else {
            manifest.push_str(line);
            manifest.push('\n');
        }
    }
    manifest.push_str("\n[workspace]\n");
    write_if_changed(&abi.join("Cargo.toml"), manifest.as_bytes());
    copy_tree(&repo.join("plugins/abi/src"), &abi.join("src"));

    let fixture = fixtures_dir().join("wrongabi");
    let plugin = src.join("wrongabi");
    let text = std::fs::read_to_string(fixture.join("Cargo.toml")).unwrap().replace("ABI_DIR", &abi.display().to_string());
    write_if_changed(&plugin.join("Cargo.toml"), text.as_bytes());
    copy_tree(&fixture.join("src"), &plugin.join("src"));
    plugin.join("Cargo.toml")
}

/// The altered project: the oldabi fixture and its ABI 1.0.0 snapshot, with
/// one field of a shared type changed (`FunctionSpec.memory_limit_kb` a u32,
/// not a u64) and the plugin renamed `altered`: a plugin that claims ABI 1.0
/// but does not match it. Returns its manifest.
fn altered_project(target: &Path) -> PathBuf {
    let src = target.join("altered-src");
    // Not at `abi-1.0` as in oldabi: cargo names a path package's artifacts
    // by its path relative to the workspace, so the same path would share
    // (and overwrite) the unaltered snapshot's library in this target dir.
    let abi = src.join("abi-1.0-altered");
    copy_tree(&fixtures_dir().join("oldabi/abi-1.0"), &abi);
    copy_tree(&fixtures_dir().join("oldabi/src"), &src.join("src"));
    let manifest = std::fs::read_to_string(fixtures_dir().join("oldabi/Cargo.toml"))
        .unwrap()
        .replace("name = \"ggcore-plugin-oldabi\"", "name = \"ggcore-plugin-altered\"")
        .replace("path = \"abi-1.0\"", "path = \"abi-1.0-altered\"");
    assert!(manifest.contains("ggcore-plugin-altered") && manifest.contains("abi-1.0-altered"), "the oldabi fixture's Cargo.toml changed");
    write_if_changed(&src.join("Cargo.toml"), manifest.as_bytes());
    let lib = abi.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    assert!(text.contains("    pub memory_limit_kb: u64,"), "the ABI 1.0 snapshot changed");
    write_if_changed(&lib, text.replace("    pub memory_limit_kb: u64,", "    pub memory_limit_kb: u32,").as_bytes());
    src.join("Cargo.toml")
}

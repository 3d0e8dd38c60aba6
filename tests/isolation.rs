//! What a function's user may and may not reach: never the core's state,
//! logs, sockets or keys. The core runs as root in these tests; functions run
//! as the default user (`nobody`, uid 65534) unless they set RunAs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::functions::Function;
use crate::common::mqtt::text;
use crate::common::{connect, Group, QoS, Root};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Opens, lists or connects to what it is sent and reports, for each, `ok` or
/// the Python exception's name.
const PROBE_PY: &str = r#"
import json
import os
import socket

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def attempt(kind, path):
    try:
        if kind == 'file':
            with open(path, 'rb') as f:
                f.read(1)
        elif kind == 'dir':
            os.listdir(path)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            finally:
                s.close()
        return 'ok'
    except Exception as e:
        return type(e).__name__


def handler(event, context):
    results = {path: attempt(kind, path) for kind, path in event['try']}
    iot.publish(topic='probe/out', payload=json.dumps({'uid': os.getuid(), 'results': results}))
"#;

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_under(&p));
        } else if kind.is_file() {
            out.push(p);
        }
    }
    out
}

/// A function running as its default user tries to read the state store's
/// files, the server key, the CA keys, the deployed group, the system log,
/// and its own log, to list the state, log and socket
/// directories, and to connect to the admin and worker sockets: every attempt
/// is refused with a permission error, while it reads its own code and the
/// group CA's certificate (so the refusals are the modes', not wrong paths).
/// The modes are the documented ones: directories 0700, logs 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_users_cannot_read_state_logs_sockets_or_keys() {
    let root = Root::new();
    let probe = Function::python("probe", PROBE_PY);
    let arn = probe.arn();
    let creds = root.device("tester");
    let group = Group::new("e2e").device(&creds).function(probe).route("tester", "probe/in", &arn).route(&arn, "probe/out", "tester");
    let mut core = root.start();
    root.deploy_ok(&group);
    let mut tester = connect(core.port, &creds).await;
    tester.sub("probe/out", QoS::AtLeastOnce).await;
    // Something in the function's log and the state store first.
    tester.publish("probe/in", QoS::AtLeastOnce, json!({"try": []}).to_string()).await;
    tester.recv().await;

    let ggc = root.path.join("ggc");
    let var = ggc.join("var");
    let mut secret_files: Vec<PathBuf> = files_under(&var);
    secret_files.extend([
        root.path.join("certs/group-ca.key"),
        root.path.join("certs/device-ca.key"),
        ggc.join("deployment/group/group.json"),
    ]);
    for needed in [var.join("state/server/server.key"), var.join("log/system/runtime.log"), root.function_log_path("probe")] {
        assert!(secret_files.contains(&needed), "{} is missing from {secret_files:?}", needed.display());
    }
    assert!(secret_files.iter().filter(|f| f.starts_with(var.join("state/db"))).count() >= 4, "{secret_files:?}");
    let secret_dirs =
        [var.clone(), var.join("state"), var.join("state/db"), var.join("log/system"), ggc.join("socket"), ggc.join("deployment/lambda")];
    let sockets = [ggc.join("socket/admin.sock"), ggc.join("socket/ipc.sock")];
    let own_code = ggc.join("deployment/lambda/probe");
    let readable = [("file", own_code.join("main.py")), ("dir", own_code.clone()), ("file", root.path.join("certs/group-ca.pem"))];

    let mut attempts: Vec<(&str, &Path)> = secret_files.iter().map(|f| ("file", f.as_path())).collect();
    attempts.extend(secret_dirs.iter().map(|d| ("dir", d.as_path())));
    attempts.extend(sockets.iter().map(|s| ("socket", s.as_path())));
    attempts.extend(readable.iter().map(|(k, p)| (*k, p.as_path())));
    tester.publish("probe/in", QoS::AtLeastOnce, json!({"try": attempts}).to_string()).await;
    let p = tester.recv().await;
    let report: Value = serde_json::from_slice(&p.payload).unwrap_or_else(|_| panic!("not JSON: {}", text(&p)));
    assert_eq!(report["uid"], 65534, "{report}");
    let results = &report["results"];
    let mut readable_secrets = Vec::new();
    for (kind, path) in &attempts {
        let got = results[path.to_str().unwrap()].as_str().unwrap_or("(no result)");
        let want = if readable.iter().any(|(_, p)| p == path) { "ok" } else { "PermissionError" };
        if got != want {
            readable_secrets.push(format!("{kind} {}: {got} (expected {want})", path.display()));
        }
    }
    assert!(readable_secrets.is_empty(), "the function (uid 65534) got:\n{}", readable_secrets.join("\n"));

    // The modes behind it.
    for dir in [
        var.clone(),
        var.join("state"),
        var.join("state/db"),
        var.join("state/server"),
        var.join("log"),
        var.join("log/system"),
        ggc.join("socket"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in files_under(&var.join("log")) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for socket in &sockets {
        assert_eq!(mode(socket), 0o600, "{}", socket.display());
    }
    tester.disconnect().await;
    core.stop_ok();
}

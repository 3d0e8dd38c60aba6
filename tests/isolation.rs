//! What a function's user may and may not reach: its deployed code (a
//! deployment whose function could not reach it is refused, naming the
//! function, the user and the directory in the way), never the core's state,
//! logs, sockets or keys; and what `IsolationMode` gives until ggcore has
//! containers (a warning naming what is not isolated, the effective mode in
//! `ggcore status`). The core runs as root in these tests; functions run as
//! the default user (`nobody`, uid 65534) unless they set RunAs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::functions::Function;
use crate::common::mqtt::text;
use crate::common::{connect, Group, QoS, Root};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

const REACH_PY: &str = r#"
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='reach/out', payload='uid {} read {}'.format(os.getuid(), open('main.py').read().split()[0]))
"#;

/// A root under a directory private to root (as `mktemp -d` makes it): a
/// function running as `nobody`, or as an explicit RunAs, could not reach its
/// deployed code, so the deployment is refused with the function, the user
/// and the blocking directory named, and nothing changes. Search permission
/// alone (0711) is enough: the core makes the copy itself readable by the
/// function's user (and by no other) and the function runs. The core checks
/// too, not only the CLI: a deployment staged while the directory was open is
/// refused when the core starts after it was closed again, and the deployed
/// group is not started rather than restarting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_whose_user_cannot_reach_its_code_is_refused() {
    let root = Root::new();
    let base = root.base_dir().to_path_buf();
    chmod(&base, 0o700);
    let reach = Function::python("reach", REACH_PY);
    let arn = reach.arn();
    let creds = root.device("tester");
    let group = Group::new("e2e").device(&creds).function(reach).route("tester", "reach/in", &arn).route(&arn, "reach/out", "tester");
    let mut core = root.start();

    let out = root.deploy(&group);
    out.assert_code(2);
    let needles = [
        "FunctionDefinition.Functions[Id=reach].RunAs: function 'reach' runs as nobody (uid 65534, gid 65534), the default RunAs, \
         which cannot reach its deployed code at "
            .to_string(),
        format!(
            "{}: {} (mode 0700, owner root, group root) does not let that user search (x)",
            root.path.join("ggc/deployment/lambda/reach").display(),
            base.display()
        ),
        format!("`chmod o+x {}`", base.display()),
    ];
    for n in &needles {
        assert!(out.stderr.contains(n.as_str()), "no {n:?} in:\n{}", out.stderr);
    }
    // An explicit RunAs is named as such.
    let explicit = Group::new("e2e").device(&creds).function(Function::python("reach", REACH_PY).run_as(1234, 4321));
    let out = root.deploy(&explicit);
    out.assert_code(2);
    assert!(out.stderr.contains("function 'reach' runs as 1234 (uid 1234, gid 4321), which cannot reach its deployed code"), "{out:?}");
    let status = root.status();
    assert!(status["deployment"].is_null() && status["functions"] == json!([]), "nothing was deployed: {status}");

    // Search permission on the private directory is all the user needs.
    chmod(&base, 0o711);
    root.deploy_ok(&group);
    let code = root.path.join("ggc/deployment/lambda/reach");
    for (dir, want) in [
        (root.path.join("ggc"), 0o711),
        (root.path.join("ggc/deployment"), 0o711),
        (root.path.join("ggc/deployment/lambda"), 0o711),
        (code.clone(), 0o750),
    ] {
        assert_eq!(mode(&dir), want, "{}", dir.display());
    }
    let main = std::fs::metadata(code.join("main.py")).unwrap();
    assert_eq!((main.permissions().mode() & 0o777, std::os::unix::fs::MetadataExt::gid(&main)), (0o640, 65534), "readable by nogroup only");
    let mut tester = connect(core.port, &creds).await;
    tester.sub("reach/out", QoS::AtLeastOnce).await;
    tester.publish("reach/in", QoS::AtLeastOnce, "{}").await;
    tester.expect("reach/out", "uid 65534 read import").await;
    tester.disconnect().await;
    core.stop_ok();

    // Staged while the way was open; the way is closed before the next start.
    let staged = Group::new("e2e").device(&creds).function(Function::python("reach", REACH_PY).env("V", "2"));
    let out = root.deploy(&staged);
    out.assert_code(0);
    let (staged_id, state) = out.deployment().expect("a deployment line");
    assert_eq!(state, "Staged", "{out:?}");
    chmod(&base, 0o700);
    let mut core = root.start();
    let status = root.status();
    assert_eq!((&status["deployment"]["id"], &status["deployment"]["status"]), (&json!(staged_id), &json!("Failure")), "{status}");
    let error = status["deployment"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("function 'reach' runs as nobody (uid 65534, gid 65534)") && error.contains(&needles[1]), "{error}");
    assert_eq!(status["functions"], json!([]), "the deployed group no longer validates and is not started: {status}");
    core.wait_log(&["the deployed group no longer validates"]).await;
    core.stop_ok();
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
/// its own log and another function's code, to list the state, log and socket
/// directories, and to connect to the admin and worker sockets: every attempt
/// is refused with a permission error, while it reads its own code and the
/// group CA's certificate (so the refusals are the modes', not wrong paths).
/// The modes are the documented ones: directories 0700, files 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_users_cannot_read_state_logs_sockets_or_keys() {
    let root = Root::new();
    let probe = Function::python("probe", PROBE_PY);
    let other = Function::python("other", "def handler(e, c):\n    return e\n").run_as(1234, 4321);
    let arn = probe.arn();
    let creds = root.device("tester");
    let group = Group::new("e2e").device(&creds).function(probe).function(other).route("tester", "probe/in", &arn).route(
        &arn,
        "probe/out",
        "tester",
    );
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
        ggc.join("deployment/lambda/other/main.py"),
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
    for file in files_under(&var) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for socket in &sockets {
        assert_eq!(mode(socket), 0o600, "{}", socket.display());
    }
    tester.disconnect().await;
    core.stop_ok();
}

/// A function that asks for `GreengrassContainer` — by the default or
/// explicitly — deploys with a warning naming what is not isolated; one that
/// asks for `NoContainer` gets none. `ggcore status` shows each function's
/// effective mode and user, in JSON and in text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolation_mode_is_warned_about_and_shown() {
    let root = Root::new();
    let body = "def handler(e, c):\n    return e\n";
    let group = Group::new("e2e")
        .function(Function::python("bydefault", body))
        .function(Function::python("boxed", body).isolation("GreengrassContainer"))
        .function(Function::python("open", body).isolation("NoContainer").run_as(1234, 4321));
    let mut core = root.start();
    let out = root.deploy(&group);
    out.assert_code(0);
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("warning: ") && l.contains("IsolationMode")).collect();
    assert_eq!(warnings.len(), 2, "each warning once: {out:?}");
    let file = root.scratch().join("group-1.json");
    assert!(warnings.iter().all(|w| w.starts_with(&format!("warning: {}: FunctionDefinition.Functions[", file.display()))), "{warnings:?}");
    assert!(
        warnings[0]
            .contains("function 'bydefault' asks for IsolationMode GreengrassContainer (by default), which ggcore does not provide yet"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("function 'boxed' asks for IsolationMode GreengrassContainer (in its Environment.Execution)"),
        "{}",
        warnings[1]
    );
    for needle in
        ["host's filesystem", "devices and mounts", "no PID namespace", "IPC, host name and network", "Set IsolationMode to NoContainer"]
    {
        assert!(warnings[0].contains(needle), "{needle:?} in {}", warnings[0]);
    }
    core.wait_log(&["function 'boxed' asks for IsolationMode GreengrassContainer"]).await;

    let shown = |name: &str| root.function_status(name).unwrap_or_else(|| panic!("{name} in status"));
    let not_yet = "NoContainer (GreengrassContainer requested: not isolated yet)";
    assert_eq!(
        (shown("bydefault")["isolation"].as_str(), shown("bydefault")["runAs"].clone()),
        (Some(not_yet), json!({"uid": 65534, "gid": 65534}))
    );
    assert_eq!(shown("boxed")["isolation"], not_yet);
    assert_eq!(
        (shown("open")["isolation"].as_str(), shown("open")["runAs"].clone()),
        (Some("NoContainer"), json!({"uid": 1234, "gid": 4321}))
    );
    let text = root.run(&["status"]);
    text.assert_code(0);
    assert_eq!(text.stdout.matches(&format!("runs as uid 65534, gid 65534; isolation: {not_yet}")).count(), 2, "{}", text.stdout);
    assert!(text.stdout.contains("runs as uid 1234, gid 4321; isolation: NoContainer\n"), "{}", text.stdout);
    core.stop_ok();
}

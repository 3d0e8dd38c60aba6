//! The embedded default: what `ggcore run` makes in an empty root so that a
//! new user sees devices talking through the core with no other step.

use std::fs;
use std::path::{Path, PathBuf};

use crate::certs::{self, LocalCas};
use crate::layout::Layout;

pub const DEMO_GROUP_ID: &str = "ggcore-demo";
pub const DEMO_DEVICES: [&str; 2] = ["demo-device-1", "demo-device-2"];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// The demo's function: pinned, greets every five seconds from its own thread,
/// answers commands.
const GREETER_PY: &str = r#"# ggcore demo function: greets every five seconds, answers commands.
#
# demo-device-2 hears the greetings on hello/world; a command published by a
# demo device on demo/command ({"command": "ping"}, "time" or "count") is
# answered on hello/reply.
import json
import logging
import threading
import time

import greengrasssdk

client = greengrasssdk.client('iot-data')
log = logging.getLogger('greeter')
state = {'greetings': 0, 'commands': 0}


def greet_forever():
    while True:
        state['greetings'] += 1
        client.publish(topic='hello/world', payload=json.dumps({
            'message': 'Hello from a Python function on ggcore',
            'count': state['greetings'],
        }))
        time.sleep(5)


# Module-level code runs once when the pinned function starts.
threading.Thread(target=greet_forever, name='greeter', daemon=True).start()
log.info('greeter started')


def handler(event, context):
    command = event.get('command') if isinstance(event, dict) else event
    state['commands'] += 1
    if command == 'ping':
        answer = 'pong'
    elif command == 'time':
        answer = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    elif command == 'count':
        answer = 'greetings sent: {}'.format(state['greetings'])
    else:
        answer = 'unknown command {!r}: try ping, time or count'.format(command)
    topic = context.client_context.custom.get('subject')
    client.publish(topic='hello/reply', payload=json.dumps({'command': command, 'answer': answer, 'from_topic': topic}))
    return {'answer': answer}
"#;

pub const DEMO_FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:demo-greeter:1";

/// Whether every directory on the way to `path` can be searched by any user.
fn world_traversable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors().all(|p| fs::metadata(p).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}

/// Writes the demo's config, device certificates, function code and group into
/// an empty root. With `python` the runtime name the Python plugin serves, or
/// `None` when no Python plugin is available (the demo then routes between the
/// two devices only). Returns the group.json text to deploy.
pub fn bootstrap(layout: &Layout, cas: &LocalCas, python: Option<&str>) -> Result<String, DemoError> {
    let code_dir = layout.root.join("demo/greeter");
    // Functions run as an unprivileged user unless that user could not reach the
    // code (a root under a private home directory): then as the core's user.
    let as_core_user = python.is_some()
        && nix::unistd::geteuid().is_root()
        && !(world_traversable(&layout.root) && world_traversable(&crate::functions::sdk_root().join("sdk-python")));
    let mut config = serde_json::json!({
        "coreThing": { "thingArn": "arn:aws:iot:us-east-1:000000000000:thing/ggcore-demo-core" },
        "ggcore": { "mqtt": { "host": "0.0.0.0", "port": crate::config::DEFAULT_MQTT_PORT } }
    });
    if as_core_user {
        config["runtime"] = serde_json::json!({ "allowFunctionsToRunAsRoot": "yes" });
        tracing::warn!(root = %layout.root.display(), "the demo function runs as root: an unprivileged user could not reach its code under this root");
    }
    let config_file = layout.config_file();
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    certs::write_file(&config_file, text.as_bytes(), 0o644)?;
    let mut devices = Vec::new();
    for name in DEMO_DEVICES {
        let issued = certs::issue_device(&cas.device, name)?;
        let dir = layout.devices_certs_dir();
        certs::write_file(&dir.join(format!("{name}.cert.pem")), issued.cert_pem.as_bytes(), 0o644)?;
        certs::write_file(&dir.join(format!("{name}.private.key")), issued.key_pem.as_bytes(), 0o600)?;
        devices.push((name, issued.fingerprint));
    }
    let function = match python {
        Some(runtime) => {
            certs::write_file(&code_dir.join("greeter.py"), GREETER_PY.as_bytes(), 0o644)?;
            Some((runtime, code_dir, as_core_user))
        }
        None => None,
    };
    Ok(group_json(&devices, function))
}

fn thing_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:000000000000:thing/{name}")
}

fn subscription(id: &str, source: &str, subject: &str, target: &str) -> serde_json::Value {
    serde_json::json!({ "Id": id, "Source": source, "Subject": subject, "Target": target })
}

/// The demo group: the two devices talk on `demo/#`; with Python, the greeter
/// function greets demo-device-2 on `hello/world` and answers `demo/command`
/// from either device on `hello/reply`.
fn group_json(devices: &[(&str, String)], function: Option<(&str, PathBuf, bool)>) -> String {
    let device_entries: Vec<_> = devices
        .iter()
        .map(|(name, fp)| {
            serde_json::json!({
                "Id": name,
                "ThingArn": thing_arn(name),
                "CertificateArn": format!("arn:aws:iot:us-east-1:000000000000:cert/{fp}"),
                "SyncShadow": false
            })
        })
        .collect();
    let (d1, d2) = (thing_arn(DEMO_DEVICES[0]), thing_arn(DEMO_DEVICES[1]));
    let mut subscriptions =
        vec![subscription("device-1-to-device-2", &d1, "demo/#", &d2), subscription("device-2-to-device-1", &d2, "demo/#", &d1)];
    let mut group = serde_json::json!({
        "GroupId": DEMO_GROUP_ID,
        "CoreDefinition": { "Cores": [ { "Id": "core", "ThingArn": "arn:aws:iot:us-east-1:000000000000:thing/ggcore-demo-core", "SyncShadow": false } ] },
        "DeviceDefinition": { "Devices": device_entries },
    });
    if let Some((runtime, code_dir, as_core_user)) = function {
        let mut configuration = serde_json::json!({
            "Executable": "greeter.handler", "MemorySize": 32768, "Timeout": 3, "Pinned": true, "EncodingType": "json",
            "Environment": { "Variables": { "GREETING": "hello" } }
        });
        if as_core_user {
            configuration["Environment"]["Execution"] = serde_json::json!({ "RunAs": { "Uid": 0, "Gid": 0 } });
        }
        group["FunctionDefinition"] = serde_json::json!({ "Functions": [ {
            "Id": "demo-greeter", "FunctionArn": DEMO_FUNCTION_ARN, "Runtime": runtime,
            "Code": code_dir.display().to_string(), "FunctionConfiguration": configuration
        } ] });
        subscriptions.extend([
            subscription("greetings-to-device-2", DEMO_FUNCTION_ARN, "hello/#", &d2),
            subscription("replies-to-device-1", DEMO_FUNCTION_ARN, "hello/reply", &d1),
            subscription("commands-from-device-1", &d1, "demo/command", DEMO_FUNCTION_ARN),
            subscription("commands-from-device-2", &d2, "demo/command", DEMO_FUNCTION_ARN),
        ]);
    }
    group["SubscriptionDefinition"] = serde_json::json!({ "Subscriptions": subscriptions });
    serde_json::to_string_pretty(&group).unwrap_or_default()
}

/// The ready-to-paste commands that show the demo working, when the demo's
/// certificates are in this root.
pub fn commands(layout: &Layout, port: u16) -> Option<String> {
    let dir = layout.devices_certs_dir();
    let ca = layout.group_ca_cert();
    let files = |name: &str| (dir.join(format!("{name}.cert.pem")), dir.join(format!("{name}.private.key")));
    let (c1, k1) = files(DEMO_DEVICES[0]);
    let (c2, k2) = files(DEMO_DEVICES[1]);
    if ![&c1, &k1, &c2, &k2, &ca].iter().all(|p| fs::metadata(p).is_ok()) {
        return None;
    }
    let q = |p: &std::path::Path| shell_quote(&p.display().to_string());
    let with_function = layout.root.join("demo/greeter/greeter.py").exists();
    let (filters, topic, message, note) = if with_function {
        (
            "-t 'hello/#' -t 'demo/#'",
            "demo/command",
            "{\"command\": \"ping\"}",
            "It prints the greeter function's greeting every 5 s (hello/world); the command below is answered on hello/reply.",
        )
    } else {
        ("-t 'demo/#'", "demo/hello", "hello from demo-device-1", "The message published below is routed to it by the demo group.")
    };
    Some(format!(
        "Demo: in one terminal, listen as {d2}. {note}\n  mosquitto_sub --cafile {ca} --cert {c2} --key {k2} -h localhost -p {port} -i {d2} {filters} -v\n\
         In another, publish as {d1}:\n  mosquitto_pub --cafile {ca} --cert {c1} --key {k1} -h localhost -p {port} -i {d1} -t {topic} -m '{message}'",
        d1 = DEMO_DEVICES[0],
        d2 = DEMO_DEVICES[1],
        ca = q(&ca),
        c1 = q(&c1),
        k1 = q(&k1),
        c2 = q(&c2),
        k2 = q(&k2),
    ))
}

fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:=,@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

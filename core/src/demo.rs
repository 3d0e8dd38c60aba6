//! The embedded default: what `ggcore run` makes in an empty root so that a
//! new user sees devices talking through the core with no other step.

use std::fs;

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

/// Writes the demo's config, device certificates and group into an empty root.
/// Returns the group.json text to deploy.
pub fn bootstrap(layout: &Layout, cas: &LocalCas) -> Result<String, DemoError> {
    let config = serde_json::json!({
        "coreThing": { "thingArn": "arn:aws:iot:us-east-1:000000000000:thing/ggcore-demo-core" },
        "ggcore": { "mqtt": { "host": "0.0.0.0", "port": crate::config::DEFAULT_MQTT_PORT } }
    });
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
    Ok(group_json(&devices))
}

fn thing_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:000000000000:thing/{name}")
}

/// The demo group: the two demo devices talk to each other on `demo/#`.
fn group_json(devices: &[(&str, String)]) -> String {
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
    let group = serde_json::json!({
        "GroupId": DEMO_GROUP_ID,
        "CoreDefinition": { "Cores": [ { "Id": "core", "ThingArn": "arn:aws:iot:us-east-1:000000000000:thing/ggcore-demo-core", "SyncShadow": false } ] },
        "DeviceDefinition": { "Devices": device_entries },
        "SubscriptionDefinition": { "Subscriptions": [
            { "Id": "device-1-to-device-2", "Source": thing_arn(DEMO_DEVICES[0]), "Subject": "demo/#", "Target": thing_arn(DEMO_DEVICES[1]) },
            { "Id": "device-2-to-device-1", "Source": thing_arn(DEMO_DEVICES[1]), "Subject": "demo/#", "Target": thing_arn(DEMO_DEVICES[0]) }
        ] }
    });
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
    Some(format!(
        "Demo: in one terminal, listen as {d2}:\n  mosquitto_sub --cafile {ca} --cert {c2} --key {k2} -h localhost -p {port} -i {d2} -t 'demo/#' -v\n\
         In another, publish as {d1}:\n  mosquitto_pub --cafile {ca} --cert {c1} --key {k1} -h localhost -p {port} -i {d1} -t demo/hello -m 'hello from {d1}'",
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

//! group.json files (SPEC §5), built from device credentials and routes.

use serde_json::{json, Value};

use super::process::Creds;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "000000000000";

/// `arn:aws:iot:us-east-1:000000000000:thing/NAME`
pub fn thing_arn(name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}")
}

/// A subscription endpoint: `cloud`, `GGShadowService` and full ARNs as they
/// are; anything else is a thing name.
pub fn endpoint(name: &str) -> String {
    if name == "cloud" || name == "GGShadowService" || name.starts_with("arn:") {
        name.to_string()
    } else {
        thing_arn(name)
    }
}

/// A group: devices and subscriptions (the table that decides who hears what).
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    devices: Vec<Value>,
    subscriptions: Vec<Value>,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self { id: id.to_string(), devices: Vec::new(), subscriptions: Vec::new() }
    }

    /// A device admitted by its certificate's fingerprint (`CertificateArn`).
    pub fn device(mut self, c: &Creds) -> Self {
        self.devices.push(json!({
            "Id": format!("dev-{}", c.thing),
            "ThingArn": thing_arn(&c.thing),
            "CertificateArn": c.cert_arn,
            "SyncShadow": false,
        }));
        self
    }

    pub fn devices(self, cs: &[Creds]) -> Self {
        cs.iter().fold(self, |g, c| g.device(c))
    }

    /// A device without `CertificateArn`: admitted by certificate CN = thing name.
    pub fn device_by_cn(mut self, thing: &str) -> Self {
        self.devices.push(json!({
            "Id": format!("dev-{thing}"),
            "ThingArn": thing_arn(thing),
        }));
        self
    }

    /// A subscription: `source` publishes on topics matching `subject`, `target`
    /// hears them. Thing names become thing ARNs.
    pub fn route(mut self, source: &str, subject: &str, target: &str) -> Self {
        let n = self.subscriptions.len() + 1;
        self.subscriptions.push(json!({
            "Id": format!("sub-{n}"),
            "Source": endpoint(source),
            "Subject": subject,
            "Target": endpoint(target),
        }));
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "GroupId": self.id,
            "CoreDefinition": { "Cores": [ {
                "Id": "core",
                "ThingArn": thing_arn("ggcore-e2e-core"),
                "SyncShadow": false,
            } ] },
            "DeviceDefinition": { "Devices": self.devices },
            "SubscriptionDefinition": { "Subscriptions": self.subscriptions },
        })
    }
}

//! group.json files (docs/group.md), built from device credentials and routes.

use serde_json::{json, Value};

use super::functions::Function;
use super::process::Creds;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "000000000000";
/// The core's thing (`CoreDefinition`): what functions see as `AWS_IOT_THING_NAME`.
pub const CORE_THING: &str = "ggcore-e2e-core";

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
    /// Functions (docs/group.md); their code is written beside the group file.
    pub functions: Vec<Function>,
    /// `FunctionDefinition.DefaultConfig.Execution.RunAs` (uid, gid).
    default_run_as: Option<(u32, u32)>,
    /// `LoggerDefinition`, as given.
    loggers: Option<Value>,
    /// Things (devices or the core) whose shadow is synced with the cloud.
    synced: Vec<String>,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            devices: Vec::new(),
            subscriptions: Vec::new(),
            functions: Vec::new(),
            default_run_as: None,
            loggers: None,
            synced: Vec::new(),
        }
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

    /// A function; its code goes to `functions/<name>` beside the group file
    /// ([`super::Root::write_group`] writes it).
    pub fn function(mut self, f: Function) -> Self {
        self.functions.retain(|g| g.name != f.name);
        self.functions.push(f);
        self
    }

    /// Removes the function `name`.
    pub fn without_function(mut self, name: &str) -> Self {
        self.functions.retain(|f| f.name != name);
        self
    }

    /// `SyncShadow: true` for `thing` (a device of the group, or [`CORE_THING`]).
    pub fn sync_shadow(mut self, thing: &str) -> Self {
        self.synced.push(thing.to_string());
        self
    }

    /// `FunctionDefinition.DefaultConfig.Execution.RunAs`.
    pub fn default_run_as(mut self, uid: u32, gid: u32) -> Self {
        self.default_run_as = Some((uid, gid));
        self
    }

    /// `LoggerDefinition` (`{"Loggers": [...]}`).
    pub fn logger_definition(mut self, def: Value) -> Self {
        self.loggers = Some(def);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "GroupId": self.id,
            "CoreDefinition": { "Cores": [ {
                "Id": "core",
                "ThingArn": thing_arn(CORE_THING),
                "SyncShadow": self.synced.iter().any(|t| t == CORE_THING),
            } ] },
            "DeviceDefinition": { "Devices": self.devices.iter().map(|d| {
                let mut d = d.clone();
                if self.synced.iter().any(|t| d["ThingArn"] == thing_arn(t)) {
                    d["SyncShadow"] = json!(true);
                }
                d
            }).collect::<Vec<_>>() },
            "SubscriptionDefinition": { "Subscriptions": self.subscriptions },
        });
        if !self.functions.is_empty() || self.default_run_as.is_some() {
            let mut def = json!({ "Functions": self.functions.iter().map(Function::to_json).collect::<Vec<_>>() });
            if let Some((uid, gid)) = self.default_run_as {
                def["DefaultConfig"] = json!({ "Execution": { "RunAs": { "Uid": uid, "Gid": gid } } });
            }
            v["FunctionDefinition"] = def;
        }
        if let Some(l) = &self.loggers {
            v["LoggerDefinition"] = l.clone();
        }
        v
    }
}

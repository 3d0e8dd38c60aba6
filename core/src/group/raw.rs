//! group.json as written by users: the `Definition` objects of the Greengrass v1
//! `Create*DefinitionVersion` APIs, field names unchanged. Every object keeps the
//! keys it does not know in `extra`, so that `compile` can warn about them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub type Extra = BTreeMap<String, Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawGroup {
    pub group_id: Option<String>,
    pub core_definition: Option<RawCoreDefinition>,
    pub device_definition: Option<RawDeviceDefinition>,
    pub function_definition: Option<RawFunctionDefinition>,
    pub subscription_definition: Option<RawSubscriptionDefinition>,
    pub logger_definition: Option<RawLoggerDefinition>,
    pub resource_definition: Option<RawResourceDefinition>,
    pub connector_definition: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawCoreDefinition {
    #[serde(default)]
    pub cores: Vec<RawThingEntry>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawDeviceDefinition {
    #[serde(default)]
    pub devices: Vec<RawThingEntry>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A core or a device: `{Id, ThingArn, CertificateArn, SyncShadow}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawThingEntry {
    pub id: Option<String>,
    pub thing_arn: Option<String>,
    pub certificate_arn: Option<String>,
    pub sync_shadow: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawFunctionDefinition {
    pub default_config: Option<RawDefaultConfig>,
    #[serde(default)]
    pub functions: Vec<RawFunction>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawDefaultConfig {
    pub execution: Option<RawExecution>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawFunction {
    pub id: Option<String>,
    pub function_arn: Option<String>,
    pub function_configuration: Option<RawFunctionConfiguration>,
    /// ggcore extension: the runtime (`python3.11`, `nodejs12.x`, `java11`, `executable`).
    pub runtime: Option<String>,
    /// ggcore extension: the code directory or `.zip`, relative to the group file.
    pub code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawFunctionConfiguration {
    pub executable: Option<String>,
    pub exec_args: Option<String>,
    pub memory_size: Option<u64>,
    pub timeout: Option<u64>,
    pub pinned: Option<bool>,
    pub encoding_type: Option<String>,
    pub environment: Option<RawEnvironment>,
    pub function_runtime_override: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawEnvironment {
    pub variables: Option<BTreeMap<String, String>>,
    pub resource_access_policies: Option<Vec<Value>>,
    pub access_sysfs: Option<bool>,
    pub execution: Option<RawExecution>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawExecution {
    pub isolation_mode: Option<String>,
    pub run_as: Option<RawRunAs>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawRunAs {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawSubscriptionDefinition {
    #[serde(default)]
    pub subscriptions: Vec<RawSubscription>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawSubscription {
    pub id: Option<String>,
    pub source: Option<String>,
    pub subject: Option<String>,
    pub target: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawLoggerDefinition {
    #[serde(default)]
    pub loggers: Vec<RawLogger>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawLogger {
    pub id: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub component: Option<String>,
    pub level: Option<String>,
    pub space: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawResourceDefinition {
    #[serde(default)]
    pub resources: Vec<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The definition members of a group. A member copied whole from
/// `aws greengrass get-*-definition-version` output (`{"Definition": {...}, "Arn": ...}`)
/// is unwrapped to its `Definition`.
const DEFINITION_KEYS: [&str; 7] = [
    "CoreDefinition",
    "DeviceDefinition",
    "FunctionDefinition",
    "SubscriptionDefinition",
    "LoggerDefinition",
    "ResourceDefinition",
    "ConnectorDefinition",
];

/// Replaces each `XDefinition: {"Definition": {...}}` member (the form
/// `aws greengrass get-...-definition-version` prints) by its inner object,
/// so both forms read the same.
pub fn unwrap_definitions(obj: &mut serde_json::Map<String, Value>) {
    for key in DEFINITION_KEYS {
        let inner = match obj.get_mut(key) {
            Some(Value::Object(member)) => member.remove("Definition"),
            _ => None,
        };
        if let Some(inner) = inner {
            obj.insert(key.to_string(), inner);
        }
    }
}

/// Parses group.json text. Type errors name the JSON path of the bad value.
pub fn parse(text: &str) -> Result<RawGroup, (String, String)> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| (String::new(), format!("not valid JSON: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return Err((String::new(), "the group must be a JSON object".to_string()));
    };
    unwrap_definitions(obj);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

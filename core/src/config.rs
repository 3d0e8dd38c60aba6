//! `config/config.json`: the Greengrass v1 core file (GGC field names) plus
//! ggcore's own settings under the `ggcore` key. Every field has a default, so
//! `{}` is a valid file; a bad file is refused with the field's JSON path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::group::{ThingArn, MIN_SPOOL_BYTES};

type Extra = BTreeMap<String, Value>;

/// A GGC yes/no field: `"yes"`/`"no"` strings or JSON booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YesNo(pub bool);

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(YesNo(b)),
            Value::String(s) if s.eq_ignore_ascii_case("yes") || s == "true" => Ok(YesNo(true)),
            Value::String(s) if s.eq_ignore_ascii_case("no") || s == "false" => Ok(YesNo(false)),
            other => Err(serde::de::Error::custom(format!("expected \"yes\", \"no\", true or false, found {other}"))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    core_thing: Option<RawCoreThing>,
    runtime: Option<RawRuntime>,
    managed_respawn: Option<YesNo>,
    write_directory: Option<String>,
    mqtt_max_connection_retry_interval: Option<u64>,
    crypto: Option<Value>,
    ggcore: Option<RawGgcore>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCoreThing {
    ca_path: Option<String>,
    cert_path: Option<String>,
    key_path: Option<String>,
    thing_arn: Option<String>,
    iot_host: Option<String>,
    gg_host: Option<String>,
    iot_mqtt_port: Option<u16>,
    iot_http_port: Option<u16>,
    gg_http_port: Option<u16>,
    gg_mqtt_port: Option<u16>,
    keep_alive: Option<u64>,
    mqtt_max_connection_retry_interval: Option<u64>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntime {
    cgroup: Option<RawCgroup>,
    allow_functions_to_run_as_root: Option<YesNo>,
    max_work_item_count: Option<usize>,
    post_start_health_check_timeout: Option<u64>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCgroup {
    use_systemd: Option<YesNo>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGgcore {
    mqtt: Option<RawMqtt>,
    discovery: Option<RawDiscovery>,
    device_ca_path: Option<String>,
    plugins: Option<RawPlugins>,
    spooler: Option<RawSpooler>,
    cloud: Option<RawCloud>,
    threads: Option<usize>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMqtt {
    host: Option<String>,
    port: Option<u16>,
    max_payload_bytes: Option<usize>,
    max_queued_messages: Option<usize>,
    stall_timeout_seconds: Option<u64>,
    max_subscriptions: Option<usize>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDiscovery {
    port: Option<u16>,
    connectivity: Option<Vec<Connectivity>>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPlugins {
    path: Option<Vec<String>>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpooler {
    storage: Option<String>,
    max_size_bytes: Option<u64>,
    fsync: Option<String>,
    when_full: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCloud {
    enabled: Option<bool>,
    tls: Option<bool>,
    #[serde(flatten)]
    extra: Extra,
}

/// One address at which devices reach the core (discovery's `Connectivity`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Connectivity {
    pub id: String,
    pub host_address: String,
    pub port_number: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CoreThing {
    pub ca_path: Option<PathBuf>,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub thing_arn: Option<ThingArn>,
    pub iot_host: Option<String>,
    pub gg_host: Option<String>,
    pub iot_mqtt_port: u16,
    pub keep_alive: Duration,
    pub mqtt_max_connection_retry_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub use_systemd: bool,
    pub allow_functions_to_run_as_root: bool,
    pub max_work_item_count: usize,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub max_payload_bytes: usize,
    /// Messages queued and in flight per device session (docs/config.md).
    pub max_queued_messages: usize,
    /// A connected device whose queue is full and that makes no progress
    /// for this long is disconnected.
    pub stall_timeout: Duration,
    /// Subscriptions one device session may hold.
    pub max_subscriptions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    Batch,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    DropOldest,
    Backpressure,
}

#[derive(Debug, Clone)]
pub struct SpoolerConfig {
    pub file_system: bool,
    pub max_size_bytes: u64,
    pub fsync: Fsync,
    pub when_full: WhenFull,
}

/// The validated core configuration. Paths are absolute.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub core_thing: CoreThing,
    pub runtime: RuntimeConfig,
    pub managed_respawn: bool,
    pub write_directory: Option<PathBuf>,
    pub mqtt: MqttConfig,
    pub discovery_port: u16,
    pub connectivity: Vec<Connectivity>,
    pub device_ca_path: PathBuf,
    pub plugin_path: Vec<PathBuf>,
    pub spooler: SpoolerConfig,
    pub cloud_enabled: bool,
    pub cloud_tls: bool,
    /// Threads of the core's event loop (`ggcore.threads`; 0 = one per CPU).
    pub threads: usize,
    /// Unknown keys and deprecated spellings, with their JSON paths.
    pub warnings: Vec<String>,
}

pub const DEFAULT_MQTT_PORT: u16 = 8883;
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 128 * 1024;
pub const DEFAULT_SPOOL_BYTES: u64 = 2_621_440;

/// A config.json that cannot be used: the file, the JSON path and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.path, self.message)
        }
    }
}

fn warn_unknown(warnings: &mut Vec<String>, path: &str, extra: &Extra) {
    for k in extra.keys() {
        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        warnings.push(format!("{p}: unknown field, ignored"));
    }
}

impl CoreConfig {
    /// Reads `file`; a missing file is the empty configuration.
    pub fn load(file: &Path, root: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_string(),
            Err(e) => return Err(ConfigError { file: file.to_path_buf(), path: String::new(), message: e.to_string() }),
        };
        Self::parse(file, &text, root)
    }

    /// Parses config text. `root` anchors relative paths.
    pub fn parse(file: &Path, text: &str, root: &Path) -> Result<Self, ConfigError> {
        let err = |path: &str, message: String| ConfigError { file: file.to_path_buf(), path: path.to_string(), message };
        let value: Value = serde_json::from_str(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(err("", "the configuration must be a JSON object".to_string()));
        }
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let p = e.path().to_string();
            err(if p == "." { "" } else { &p }, e.into_inner().to_string())
        })?;
        let mut warnings = Vec::new();
        warn_unknown(&mut warnings, "", &raw.extra);
        if raw.crypto.is_some() {
            warnings.push("crypto: hardware security is not supported by ggcore; keys are read from files".to_string());
        }
        let certs = root.join("certs");
        let abs = |base: &Path, p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let ct = raw.core_thing.unwrap_or_default();
        warn_unknown(&mut warnings, "coreThing", &ct.extra);
        let thing_arn = match ct.thing_arn.as_deref() {
            None | Some("") => None,
            Some(a) => Some(ThingArn::parse(a).map_err(|e| err("coreThing.thingArn", e.to_string()))?),
        };
        let mut retry = ct.mqtt_max_connection_retry_interval;
        if let Some(top) = raw.mqtt_max_connection_retry_interval {
            warnings.push("mqttMaxConnectionRetryInterval: belongs under coreThing; read from the top level".to_string());
            retry = retry.or(Some(top));
        }
        for (name, v) in [("iotHttpPort", ct.iot_http_port), ("ggHttpPort", ct.gg_http_port)] {
            if v.is_some() {
                warnings.push(format!("coreThing.{name}: not used by ggcore"));
            }
        }
        let keep_alive = ct.keep_alive.unwrap_or(600);
        if !(30..=1200).contains(&keep_alive) {
            return Err(err("coreThing.keepAlive", format!("{keep_alive} is outside 30-1200 seconds")));
        }
        let core_thing = CoreThing {
            ca_path: ct.ca_path.as_deref().map(|p| abs(&certs, p)),
            cert_path: ct.cert_path.as_deref().map(|p| abs(&certs, p)),
            key_path: ct.key_path.as_deref().map(|p| abs(&certs, p)),
            thing_arn,
            iot_host: ct.iot_host.filter(|h| !h.is_empty()),
            gg_host: ct.gg_host,
            iot_mqtt_port: ct.iot_mqtt_port.unwrap_or(8883),
            keep_alive: Duration::from_secs(keep_alive),
            mqtt_max_connection_retry_interval: Duration::from_secs(retry.unwrap_or(60).max(1)),
        };

        let rt = raw.runtime.unwrap_or_default();
        warn_unknown(&mut warnings, "runtime", &rt.extra);
        if rt.post_start_health_check_timeout.is_some() {
            warnings.push("runtime.postStartHealthCheckTimeout: not used by ggcore".to_string());
        }
        let use_systemd = match rt.cgroup {
            Some(c) => {
                warn_unknown(&mut warnings, "runtime.cgroup", &c.extra);
                c.use_systemd.map(|y| y.0).unwrap_or(false)
            }
            None => false,
        };
        let max_work_item_count = rt.max_work_item_count.unwrap_or(1024);
        if max_work_item_count == 0 {
            return Err(err("runtime.maxWorkItemCount", "must be at least 1".to_string()));
        }
        let runtime = RuntimeConfig {
            use_systemd,
            allow_functions_to_run_as_root: rt.allow_functions_to_run_as_root.map(|y| y.0).unwrap_or(false),
            max_work_item_count,
        };

        let g = raw.ggcore.unwrap_or_default();
        warn_unknown(&mut warnings, "ggcore", &g.extra);
        let m = g.mqtt.unwrap_or_default();
        warn_unknown(&mut warnings, "ggcore.mqtt", &m.extra);
        let max_payload_bytes = m.max_payload_bytes.unwrap_or(DEFAULT_MAX_PAYLOAD_BYTES);
        if max_payload_bytes == 0 || max_payload_bytes > 256 * 1024 * 1024 {
            return Err(err("ggcore.mqtt.maxPayloadBytes", format!("{max_payload_bytes} is outside 1-268435456")));
        }
        let max_queued_messages = m.max_queued_messages.unwrap_or(crate::broker::session::DEFAULT_MAX_QUEUED);
        if !(1..=1_000_000).contains(&max_queued_messages) {
            return Err(err("ggcore.mqtt.maxQueuedMessages", format!("{max_queued_messages} is outside 1-1000000")));
        }
        let stall_timeout_seconds = m.stall_timeout_seconds.unwrap_or(crate::broker::session::DEFAULT_STALL_TIMEOUT.as_secs());
        if !(1..=86_400).contains(&stall_timeout_seconds) {
            return Err(err("ggcore.mqtt.stallTimeoutSeconds", format!("{stall_timeout_seconds} is outside 1-86400")));
        }
        let max_subscriptions = m.max_subscriptions.unwrap_or(crate::broker::session::DEFAULT_MAX_SUBSCRIPTIONS);
        if !(1..=100_000).contains(&max_subscriptions) {
            return Err(err("ggcore.mqtt.maxSubscriptions", format!("{max_subscriptions} is outside 1-100000")));
        }
        let mqtt = MqttConfig {
            host: m.host.unwrap_or_else(|| "0.0.0.0".to_string()),
            port: m.port.or(ct.gg_mqtt_port).unwrap_or(DEFAULT_MQTT_PORT),
            max_payload_bytes,
            max_queued_messages,
            stall_timeout: Duration::from_secs(stall_timeout_seconds),
            max_subscriptions,
        };
        if mqtt.host.parse::<std::net::IpAddr>().is_err() {
            return Err(err("ggcore.mqtt.host", format!("'{}' is not an IP address", mqtt.host)));
        }
        let d = g.discovery.unwrap_or_default();
        warn_unknown(&mut warnings, "ggcore.discovery", &d.extra);

        let plugin_path = match g.plugins {
            Some(p) => {
                warn_unknown(&mut warnings, "ggcore.plugins", &p.extra);
                p.path.map(|v| v.iter().map(|s| abs(root, s)).collect())
            }
            None => None,
        }
        .unwrap_or_else(|| default_plugin_path(root));

        let s = g.spooler.unwrap_or_default();
        warn_unknown(&mut warnings, "ggcore.spooler", &s.extra);
        let file_system = match s.storage.as_deref() {
            None | Some("FileSystem") => true,
            Some("Memory") => false,
            Some(o) => return Err(err("ggcore.spooler.storage", format!("'{o}' is not FileSystem or Memory"))),
        };
        let max_size_bytes = s.max_size_bytes.unwrap_or(DEFAULT_SPOOL_BYTES);
        if max_size_bytes < MIN_SPOOL_BYTES {
            return Err(err("ggcore.spooler.maxSizeBytes", "Spool size should be at least 262144 bytes.".to_string()));
        }
        let fsync = match s.fsync.as_deref() {
            None | Some("batch") => Fsync::Batch,
            Some("always") => Fsync::Always,
            Some("never") => Fsync::Never,
            Some(o) => return Err(err("ggcore.spooler.fsync", format!("'{o}' is not always, batch or never"))),
        };
        let when_full = match s.when_full.as_deref() {
            None | Some("dropOldest") => WhenFull::DropOldest,
            Some("backpressure") => WhenFull::Backpressure,
            Some(o) => return Err(err("ggcore.spooler.whenFull", format!("'{o}' is not dropOldest or backpressure"))),
        };
        let c = g.cloud.unwrap_or_default();
        warn_unknown(&mut warnings, "ggcore.cloud", &c.extra);
        let threads = g.threads.unwrap_or(DEFAULT_THREADS);
        if threads > MAX_THREADS {
            return Err(err("ggcore.threads", format!("{threads} is outside 0-{MAX_THREADS} (0: one per CPU)")));
        }

        Ok(CoreConfig {
            core_thing,
            runtime,
            managed_respawn: raw.managed_respawn.map(|y| y.0).unwrap_or(false),
            write_directory: raw.write_directory.as_deref().map(|p| abs(root, p)),
            mqtt,
            discovery_port: d.port.unwrap_or(8443),
            connectivity: d.connectivity.unwrap_or_default(),
            device_ca_path: abs(root, g.device_ca_path.as_deref().unwrap_or("certs/device-ca.pem")),
            plugin_path,
            spooler: SpoolerConfig { file_system, max_size_bytes, fsync, when_full },
            cloud_enabled: c.enabled.unwrap_or(true),
            cloud_tls: c.tls.unwrap_or(true),
            threads,
            warnings,
        })
    }

    /// Region and account that ARNs printed by this core use.
    pub fn region_account(&self) -> (String, String) {
        match &self.core_thing.thing_arn {
            Some(t) => {
                let (r, a) = t.region_account();
                (r.to_string(), a.to_string())
            }
            None => (crate::group::arn::DEFAULT_REGION.to_string(), crate::group::arn::DEFAULT_ACCOUNT.to_string()),
        }
    }

    /// The core's thing name, when `coreThing.thingArn` is set.
    pub fn core_thing_name(&self) -> Option<&str> {
        self.core_thing.thing_arn.as_ref().map(|t| t.name())
    }
}

/// Event-loop threads by default. One thread routes about 170k small
/// messages a second from devices that write each packet on its own
/// (BENCHMARKS.md), and at the low rates of most gateways it costs
/// half the CPU per message of two (no cross-thread wake-ups); more threads
/// help where TLS work on large payloads saturates a core (BENCHMARKS.md).
pub const DEFAULT_THREADS: usize = 1;
pub const MAX_THREADS: usize = 256;

impl CoreConfig {
    /// Event-loop threads to start: the configured count, 0 meaning one per CPU.
    pub fn event_loop_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }
}

/// `ROOT/plugins`, then the directory of the running executable.
pub fn default_plugin_path(root: &Path) -> Vec<PathBuf> {
    let mut v = vec![root.join("plugins")];
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        v.push(dir);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CoreConfig, ConfigError> {
        CoreConfig::parse(Path::new("/r/config/config.json"), text, Path::new("/r"))
    }

    #[test]
    fn empty_object_takes_every_default() {
        let c = parse("{}").unwrap();
        assert_eq!(c.mqtt.port, 8883);
        assert_eq!(c.mqtt.max_payload_bytes, 131072);
        assert_eq!(c.mqtt.max_queued_messages, 1000);
        assert_eq!(c.mqtt.stall_timeout, Duration::from_secs(30));
        assert_eq!(c.mqtt.max_subscriptions, 1000);
        assert_eq!(c.runtime.max_work_item_count, 1024);
        assert_eq!(c.event_loop_threads(), 1);
        assert_eq!(c.device_ca_path, PathBuf::from("/r/certs/device-ca.pem"));
        assert!(c.spooler.file_system);
        assert!(c.warnings.is_empty());
        assert_eq!(c.region_account(), ("us-east-1".to_string(), "000000000000".to_string()));
    }

    #[test]
    fn device_flow_control_settings_are_read_and_bounded() {
        let c = parse(r#"{"ggcore":{"mqtt":{"maxQueuedMessages":50,"stallTimeoutSeconds":3,"maxSubscriptions":7}}}"#).unwrap();
        assert_eq!((c.mqtt.max_queued_messages, c.mqtt.stall_timeout, c.mqtt.max_subscriptions), (50, Duration::from_secs(3), 7));
        for (text, path) in [
            (r#"{"ggcore":{"mqtt":{"maxQueuedMessages":0}}}"#, "ggcore.mqtt.maxQueuedMessages"),
            (r#"{"ggcore":{"mqtt":{"stallTimeoutSeconds":0}}}"#, "ggcore.mqtt.stallTimeoutSeconds"),
            (r#"{"ggcore":{"mqtt":{"maxSubscriptions":0}}}"#, "ggcore.mqtt.maxSubscriptions"),
            (r#"{"ggcore":{"mqtt":{"stallTimeoutSeconds":-1}}}"#, "ggcore.mqtt.stallTimeoutSeconds"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.path, path, "{text}");
        }
    }

    #[test]
    fn ggc_fields_are_read_as_written() {
        let c = parse(
            r#"{"coreThing":{"caPath":"root.ca.pem","certPath":"abc.cert.pem","keyPath":"/k.pem",
                "thingArn":"arn:aws:iot:eu-west-1:123456789012:thing/core","iotHost":"h","keepAlive":60,"ggMqttPort":9999},
                "runtime":{"cgroup":{"useSystemd":"yes"},"allowFunctionsToRunAsRoot":"no"},
                "managedRespawn":false,"mqttMaxConnectionRetryInterval":5}"#,
        )
        .unwrap();
        assert_eq!(c.core_thing.ca_path, Some(PathBuf::from("/r/certs/root.ca.pem")));
        assert_eq!(c.core_thing.key_path, Some(PathBuf::from("/k.pem")));
        assert_eq!(c.core_thing.mqtt_max_connection_retry_interval, Duration::from_secs(5));
        assert_eq!(c.mqtt.port, 9999);
        assert!(c.runtime.use_systemd);
        assert_eq!(c.core_thing_name(), Some("core"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = parse(r#"{"ggcore":{"mqtt":{"port":"x"}}}"#).unwrap_err();
        assert_eq!(e.path, "ggcore.mqtt.port");
        let e = parse(r#"{"runtime":{"allowFunctionsToRunAsRoot":"maybe"}}"#).unwrap_err();
        assert_eq!(e.path, "runtime.allowFunctionsToRunAsRoot");
        let e = parse(r#"{"ggcore":{"spooler":{"maxSizeBytes":1000}}}"#).unwrap_err();
        assert_eq!(e.message, "Spool size should be at least 262144 bytes.");
        assert!(e.to_string().starts_with("/r/config/config.json: ggcore.spooler.maxSizeBytes: "));
        let e = parse("[1]").unwrap_err();
        assert!(e.message.contains("JSON object"));
        let e = parse(r#"{"ggcore":{"threads":1000}}"#).unwrap_err();
        assert_eq!((e.path.as_str(), e.message.as_str()), ("ggcore.threads", "1000 is outside 0-256 (0: one per CPU)"));
        let e = parse(r#"{"ggcore":{"threads":-1}}"#).unwrap_err();
        assert_eq!(e.path, "ggcore.threads");
    }

    #[test]
    fn threads_zero_means_one_per_cpu() {
        let c = parse(r#"{"ggcore":{"threads":0}}"#).unwrap();
        assert_eq!(c.event_loop_threads(), std::thread::available_parallelism().unwrap().get());
        assert_eq!(parse(r#"{"ggcore":{"threads":3}}"#).unwrap().event_loop_threads(), 3);
    }

    #[test]
    fn unknown_keys_warn() {
        let c = parse(r#"{"foo":1,"ggcore":{"mqtt":{"bar":2}}}"#).unwrap();
        assert_eq!(c.warnings, vec!["foo: unknown field, ignored".to_string(), "ggcore.mqtt.bar: unknown field, ignored".to_string()]);
    }
}

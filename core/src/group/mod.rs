//! The deployed group: raw group.json → validated [`Group`] (`compile`).

pub mod arn;
mod compile;
pub mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use arn::{CertificateArn, FunctionArn, ThingArn};
pub use compile::{compile, compile_text, CompileContext, RuntimeCheck};

use crate::topic::TopicFilter;

/// Endpoint names that are not ARNs.
pub const CLOUD: &str = "cloud";
pub const SHADOW_SERVICE: &str = "GGShadowService";

/// A group after validation: every ARN parsed, every reference resolved.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub group_id: String,
    pub core: Option<CoreEntry>,
    pub devices: Vec<Device>,
    pub functions: Vec<Function>,
    pub subscriptions: Vec<Subscription>,
    pub loggers: Vec<Logger>,
    pub spooler: Option<SpoolerSettings>,
}

impl Group {
    pub fn device_by_name(&self, thing_name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.thing.name() == thing_name)
    }

    pub fn function(&self, arn: &FunctionArn) -> Option<&Function> {
        self.functions.iter().find(|f| &f.arn == arn)
    }
}

#[derive(Debug, Clone)]
pub struct CoreEntry {
    pub id: String,
    pub thing: ThingArn,
    pub certificate: Option<CertificateArn>,
    pub sync_shadow: bool,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub thing: ThingArn,
    /// `None` (a ggcore extension) admits the device by the certificate's CN.
    pub certificate: Option<CertificateArn>,
    pub sync_shadow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Started at deployment and kept running.
    Pinned,
    /// Started on demand, reused while warm, stopped when idle.
    OnDemand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Binary,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        }
    }
}

/// `Execution.IsolationMode` as the group asks for it (default:
/// `GreengrassContainer`, as in Greengrass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationMode {
    GreengrassContainer,
    NoContainer,
}

impl IsolationMode {
    /// How a function asking for this mode runs, as `ggcore status` shows it:
    /// every function runs without a container until ggcore has them.
    pub fn effective(self) -> &'static str {
        match self {
            IsolationMode::GreengrassContainer => "NoContainer (GreengrassContainer requested: not isolated yet)",
            IsolationMode::NoContainer => "NoContainer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub id: String,
    pub arn: FunctionArn,
    pub runtime: String,
    /// Where the code was found when the group was compiled (absolute).
    pub code: Option<PathBuf>,
    /// Handler (`module.function`, `package.Class::method`) or executable name.
    pub executable: String,
    pub exec_args: Option<String>,
    pub memory_kb: u64,
    pub timeout: Duration,
    pub lifecycle: Lifecycle,
    pub encoding: Encoding,
    pub environment: BTreeMap<String, String>,
    /// The mode asked for; see [`IsolationMode::effective`] for what runs.
    pub isolation: IsolationMode,
    pub run_as: Option<RunAs>,
    /// Subjects of the subscriptions from this function to `cloud`: its SDK
    /// publishes on them return only once the cloud queue has them durable
    /// (a change replaces the function's instances, like any other change).
    pub cloud_filters: Vec<String>,
}

/// Source or target of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Device(ThingArn),
    Function(FunctionArn),
    Cloud,
    Shadow,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Device(t) => f.write_str(t.as_str()),
            Endpoint::Function(a) => f.write_str(a.as_str()),
            Endpoint::Cloud => f.write_str(CLOUD),
            Endpoint::Shadow => f.write_str(SHADOW_SERVICE),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub source: Endpoint,
    pub subject: TopicFilter,
    pub target: Endpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggerComponent {
    GreengrassSystem,
    Lambda,
}

#[derive(Debug, Clone)]
pub struct Logger {
    pub id: String,
    pub component: LoggerComponent,
    pub level: ggcore_plugin_abi::LogLevel,
    pub space_kb: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolerStorage {
    Memory,
    FileSystem,
}

/// Queue settings from the `GGCloudSpooler` system function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolerSettings {
    pub storage: SpoolerStorage,
    pub max_size_bytes: u64,
}

/// Smallest spool the original accepts.
pub const MIN_SPOOL_BYTES: u64 = 262_144;

/// One problem found in a group: where (JSON path) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A group that failed validation: every problem, with the file it came from.
#[derive(Debug, Clone, thiserror::Error)]
pub struct GroupError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{}: the group is invalid ({n} problem{})", self.file, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {}: {p}", self.file)?;
        }
        Ok(())
    }
}

/// A valid group and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub group: Group,
    pub warnings: Vec<Problem>,
}

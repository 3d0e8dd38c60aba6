//! `ggcore-plugin-abi`: the stable ABI between the ggcore core and its runtime
//! plugins (docs/functions.md, docs/adr/0006-plugin-abi.md).
//!
//! A runtime plugin is a shared library named `libggcore_plugin_<name>.so` that
//! exports one root module, [`PluginMod`], through `abi_stable`. The core's
//! worker process loads it, checks its layout and ABI version, and asks it to
//! start function instances. The plugin calls back into the core through the
//! [`Host`] table it is given (publish, invoke, shadows, secrets, log).
//!
//! Plugin authors implement the plain Rust traits [`Runtime`] and
//! [`FunctionInstance`] and call [`export_plugin!`]; every entry point the macro
//! generates runs under `catch_unwind`, so no panic crosses the boundary.
//!
//! Versioning: this crate's version is the ABI version. A plugin built against
//! another major version (or another minor version before 1.0) is refused by
//! the core with a message naming both. Within a major version the ABI only
//! grows, so a plugin built against any 1.x loads in a core of any 1.y:
//!
//! - a new field of [`PluginMod`] is appended at the end (after the
//!   `last_prefix_field`, which never moves within a major version); its
//!   accessor returns `Option` (`None` for a plugin built before it existed),
//!   and the core falls back to the behaviour of the version without it;
//! - a new method of [`Host`] or [`Instance`] is appended with a default body,
//!   which abi_stable calls when the table comes from an older build;
//! - types and enums reachable from the root module never change.
//!
//! abi_stable alone would refuse a plugin built against an older minor
//! version (its root module has fewer fields than this one); loaders use
//! [`init_plugin`], which checks such a plugin the other way round. A test
//! loads a plugin built against a vendored copy of the previous version, and
//! `golden/abi-<major>.<minor>.txt` keeps the shape of each version.
//!
//! Changelog:
//! - 1.3.0 — [`PluginMod::warm`]: called in a spare instance process (already
//!   in its cgroup, not yet told which function it becomes) so that a plugin
//!   can start work ahead of need (the Node.js plugin starts node with its
//!   SDK loaded there).
//! - 1.2.0 — [`PluginMod::environment`]: the plugin declares the environment
//!   variables its instances need (the core no longer writes any language's);
//!   [`PluginMod::refused`]: runtimes of its language it knows and refuses,
//!   with the reason a deployment shows.
//! - 1.1.0 — [`PluginMod::sdk_dirs`]: the plugin declares the SDK directories
//!   its instances need. Added fields are optional (they panicked when
//!   missing before).
//! - 1.0.0 — first version.

// abi_stable's `sabi_trait` expands to impls of its own traits next to ours.
#![allow(non_local_definitions)]

pub use abi_stable;

use abi_stable::library::RootModule;
use abi_stable::sabi_trait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::StableAbi;

mod compat;
mod glue;
pub use compat::{check_for, init_plugin, Check};
pub use glue::{guard, host_box, instance_box, library_path_of, panic_message};

/// The ABI version this crate defines (its package version).
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Name, version and the runtimes a plugin serves.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    /// Runtime names or patterns with a trailing `*`, such as `python3.*`.
    pub runtimes: RVec<RString>,
}

/// What a plugin found on this machine.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ProbeReport {
    pub available: bool,
    /// When unavailable: why. When available: what was found (for `plugins list`).
    pub detail: RString,
    /// The runtime actually served, such as `python3.11` (requests for other
    /// matching runtimes run on it, with a warning at deployment).
    pub native_runtime: RString,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json = 0,
    Binary = 1,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse = 0,
    Event = 1,
}

/// Everything a plugin needs to start one instance of a function.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FunctionSpec {
    pub function_arn: RString,
    /// Runtime requested by the group, such as `python3.8`.
    pub runtime: RString,
    /// `FunctionConfiguration.Executable`: handler or executable name.
    pub handler: RString,
    pub exec_args: RString,
    /// The function's code directory (also the working directory).
    pub code_dir: RString,
    /// The environment the function sees (Greengrass variables included).
    pub environment: RVec<Tuple2<RString, RString>>,
    pub encoding: Encoding,
    pub memory_limit_kb: u64,
    pub timeout_ms: u64,
    pub pinned: bool,
    /// Directories holding the SDK for this runtime (ggcore's `sdk-*`).
    pub sdk_dirs: RVec<RString>,
}

/// Per-invocation data handed to the function with its event.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct InvocationContext {
    /// The invocation id (`context.aws_request_id`).
    pub invocation_id: RString,
    /// JSON object `{"custom": {...}, "client": ..., "env": ...}`; for a routed
    /// message, `custom.subject` is the topic. Empty when there is none.
    pub client_context: RString,
    /// When the invocation times out (milliseconds since the Unix epoch).
    pub deadline_unix_ms: u64,
    pub invocation_type: InvocationType,
}

/// Handled: the function reported an error. Unhandled: detected by the runtime
/// or the core (crash, timeout, out of memory).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Handled = 0,
    Unhandled = 1,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Handled => "Handled",
            ErrorKind::Unhandled => "Unhandled",
        }
    }
}

/// A function error: its kind and the error document (JSON, such as
/// `{"errorMessage": "...", "errorType": "...", "stackTrace": [...]}`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FunctionError {
    pub kind: ErrorKind,
    pub payload: RVec<u8>,
}

impl FunctionError {
    /// An error whose document is `{"errorMessage": message}`.
    pub fn new(kind: ErrorKind, message: &str) -> Self {
        let mut doc = String::from("{\"errorMessage\":");
        push_json_string(&mut doc, message);
        doc.push('}');
        Self { kind, payload: doc.into_bytes().into() }
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Result of one invocation: the result bytes or a function error.
pub type InvokeOutcome = RResult<RVec<u8>, FunctionError>;

/// An error from a plugin entry point, copied into the caller's memory.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginError {
    pub message: RString,
}

impl PluginError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: RString::from(message.into()) }
    }
}

/// Why a host call failed.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostErrorCode {
    /// The arguments were wrong (bad topic, bad ARN, ...).
    BadRequest = 0,
    /// The target function or resource does not exist.
    NotFound = 1,
    /// A queue was full.
    Full = 2,
    /// Not allowed (for example, a publish claiming another source).
    Refused = 3,
    /// A payload over the core's limit.
    TooLarge = 4,
    /// The service is not available in this core.
    Unavailable = 5,
    /// The core could not be reached or failed.
    Internal = 6,
}

impl HostErrorCode {
    /// The code's name (`BadRequest`, `NotFound`, ...), as runtimes hand it
    /// to functions.
    pub fn as_str(self) -> &'static str {
        match self {
            HostErrorCode::BadRequest => "BadRequest",
            HostErrorCode::NotFound => "NotFound",
            HostErrorCode::Full => "Full",
            HostErrorCode::Refused => "Refused",
            HostErrorCode::TooLarge => "TooLarge",
            HostErrorCode::Unavailable => "Unavailable",
            HostErrorCode::Internal => "Internal",
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct HostError {
    pub code: HostErrorCode,
    pub message: RString,
}

impl HostError {
    pub fn new(code: HostErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: RString::from(message.into()) }
    }
}

/// A publish from the function: routed by the group's subscription table with
/// the function as source.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct PublishArgs<'a> {
    pub topic: RStr<'a>,
    pub payload: RSlice<'a, u8>,
    /// `""`, `BestEffort` or `AllOrError`.
    pub queue_full_policy: RStr<'a>,
    /// The source the caller claims (the published SDKs send one); empty when
    /// none. The core refuses a publish claiming another source than the caller.
    pub claimed_source: RStr<'a>,
}

/// A function-to-function invoke.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct InvokeArgs<'a> {
    /// Qualified or unqualified function ARN.
    pub function_arn: RStr<'a>,
    /// Version or alias when not in the ARN; empty when none.
    pub qualifier: RStr<'a>,
    pub invocation_type: InvocationType,
    /// Base64 of the client context JSON, as the SDKs take it; may be empty.
    pub client_context: RStr<'a>,
    pub payload: RSlice<'a, u8>,
}

/// The answer to an invoke: for `RequestResponse`, the target's result bytes
/// and its function error (`""`, `Handled`, `Unhandled`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct InvokeReply {
    pub invocation_id: RString,
    pub payload: RVec<u8>,
    pub function_error: RString,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOp {
    Get = 0,
    Update = 1,
    Delete = 2,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
    Fatal = 4,
}

/// The one mapping of log levels to their numbers (as sent between
/// processes) and their GGC names: the core, the worker and the plugins all
/// use it.
impl LogLevel {
    /// The level numbered `n` (0 DEBUG .. 4 FATAL); anything higher is FATAL.
    pub fn from_u8(n: u8) -> Self {
        match n {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            3 => LogLevel::Error,
            _ => LogLevel::Fatal,
        }
    }

    /// The level named `name` (`DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`).
    pub fn from_name(name: &str) -> Option<Self> {
        [LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Fatal].into_iter().find(|l| l.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }
}

/// The host callback table a plugin is given with each instance. The core
/// knows which instance is calling; nothing here lets a function speak as
/// another. Methods may be called from any thread.
#[sabi_trait]
pub trait Host: Send + Sync {
    fn publish(&self, args: PublishArgs<'_>) -> RResult<(), HostError>;

    fn invoke(&self, args: InvokeArgs<'_>) -> RResult<InvokeReply, HostError>;

    /// A shadow request; the reply is the shadow service's response document.
    fn shadow(&self, op: ShadowOp, thing_name: RStr<'_>, payload: RSlice<'_, u8>) -> RResult<RVec<u8>, HostError>;

    /// `payload` is the SDK's request document (`{"SecretId": ..., ...}`).
    fn get_secret(&self, payload: RSlice<'_, u8>) -> RResult<RVec<u8>, HostError>;

    /// A line for the function's log.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// The host table as plugins receive it.
pub type HostBox = Host_TO<'static, abi_stable::std_types::RArc<()>>;

/// A running function instance. Invocations arrive one at a time.
#[sabi_trait]
pub trait Instance: Send {
    fn invoke(&mut self, event: RVec<u8>, context: InvocationContext) -> InvokeOutcome;

    /// Called once before the instance's process ends.
    #[sabi(last_prefix_field)]
    fn shutdown(&mut self);
}

/// An instance as the core's worker holds it.
pub type InstanceBox = Instance_TO<'static, RBox<()>>;

/// The root module every runtime plugin exports. Fields after `start_instance`
/// were added in later 1.x versions: their accessors on [`PluginModRef`]
/// return `None` for a plugin built before them.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
pub struct PluginMod {
    pub info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Whether the plugin's language runtime is present on this machine.
    pub probe: extern "C" fn() -> ProbeReport,
    /// Loads the language runtime for `runtime` ahead of time (a zygote process
    /// calls it once). `Ok(true)`: instances may then be made with `fork`.
    pub prepare: extern "C" fn(runtime: RStr<'_>, sdk_dirs: RSlice<'_, RString>) -> RResult<bool, PluginError>,
    /// Forks the prepared process following the language runtime's rules;
    /// returns like `fork(2)`: 0 in the child, the child's pid in the parent,
    /// -1 on failure or when not supported.
    pub fork: extern "C" fn() -> i32,
    /// Starts an instance of a function in this process.
    #[sabi(last_prefix_field)]
    pub start_instance: extern "C" fn(spec: FunctionSpec, host: HostBox) -> RResult<InstanceBox, PluginError>,
    /// (1.1) The SDK directories this plugin's instances need (given to
    /// `prepare` and in [`FunctionSpec::sdk_dirs`]): names under the core's
    /// SDK root, such as `sdk-python`, or absolute paths. A plugin built
    /// against 1.0 has none; the core then gives the SDK of the runtime's
    /// language, as 1.0 cores did.
    pub sdk_dirs: extern "C" fn() -> RVec<RString>,
    /// (1.2) Environment variables every instance of this plugin gets,
    /// before the function's own `Environment.Variables` (which win). A
    /// plugin built against 1.0 or 1.1 declares none; the core then sets what
    /// 1.1 cores set for the runtime's language.
    pub environment: extern "C" fn() -> RVec<Tuple2<RString, RString>>,
    /// (1.2) Runtime patterns this plugin recognises but does not serve, each
    /// with the reason, which reads after the runtime's name (`python2.*` →
    /// "cannot be embedded …; port the function to python3"): a deployment
    /// naming one is refused with it. Older plugins refuse none.
    pub refused: extern "C" fn() -> RVec<Tuple2<RString, RString>>,
    /// (1.3) Called once in a spare instance process: forked from the
    /// zygote, in its memory cgroup, still the core's user, before it learns
    /// which function it becomes (`start_instance` comes later, or never: a
    /// spare may be stopped unused, and must then leave nothing behind). A
    /// plugin may start work ahead of need here; an error is logged and the
    /// instance starts without it. Older plugins have nothing to warm.
    pub warm: extern "C" fn() -> RResult<(), PluginError>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "ggcore_plugin";
    const NAME: &'static str = "ggcore runtime plugin";
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

/// Name-value pairs across the boundary ([`PluginMod::environment`],
/// [`PluginMod::refused`]).
pub type Pairs = RVec<Tuple2<RString, RString>>;

/// Plain pairs as [`Pairs`] (used by [`export_plugin!`]).
#[doc(hidden)]
pub fn pairs(v: Vec<(String, String)>) -> Pairs {
    v.into_iter().map(|(k, v)| Tuple2(k.into(), v.into())).collect()
}

/// [`Pairs`] as plain pairs (the loader's side).
pub fn from_pairs(v: &Pairs) -> Vec<(String, String)> {
    v.iter().map(|kv| (kv.0.to_string(), kv.1.to_string())).collect()
}

/// What a plugin author implements (plain Rust; [`export_plugin!`] makes the
/// FFI entry points).
pub trait Runtime: Send + Sync + 'static {
    fn info(&self) -> PluginInfo;
    fn probe(&self) -> ProbeReport;
    /// See [`PluginMod::prepare`]. The default supports no zygote.
    fn prepare(&self, _runtime: &str, _sdk_dirs: &[String]) -> Result<bool, String> {
        Ok(false)
    }
    /// See [`PluginMod::fork`]. The default cannot fork.
    fn fork(&self) -> i32 {
        -1
    }
    /// See [`PluginMod::sdk_dirs`]. The default needs no SDK.
    fn sdk_dirs(&self) -> Vec<String> {
        Vec::new()
    }
    /// See [`PluginMod::environment`]. The default sets nothing.
    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// See [`PluginMod::refused`]: `(pattern, reason)` pairs. The default refuses none.
    fn refused(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// See [`PluginMod::warm`]. The default does nothing.
    fn warm(&self) -> Result<(), String> {
        Ok(())
    }
    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String>;
}

/// One instance of a function, as a plugin author writes it.
pub trait FunctionInstance: Send + 'static {
    fn invoke(&mut self, event: Vec<u8>, context: &InvocationContext) -> Result<Vec<u8>, FunctionError>;
    fn shutdown(&mut self) {}
}

/// What the host side (the core's worker) implements; wrapped by [`host_box`].
pub trait HostApi: Send + Sync + 'static {
    fn publish(&self, args: PublishArgs<'_>) -> Result<(), HostError>;
    fn invoke(&self, args: InvokeArgs<'_>) -> Result<InvokeReply, HostError>;
    fn shadow(&self, op: ShadowOp, thing_name: &str, payload: &[u8]) -> Result<Vec<u8>, HostError>;
    fn get_secret(&self, payload: &[u8]) -> Result<Vec<u8>, HostError>;
    fn log(&self, level: LogLevel, message: &str);
}

/// Whether `runtime` is served by a plugin declaring `pattern` (`python3.*`).
pub fn runtime_matches(pattern: &str, runtime: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => runtime.starts_with(prefix) && runtime.len() > prefix.len(),
        None => pattern == runtime,
    }
}

/// Exports a [`Runtime`] as this library's root module. Every generated entry
/// point catches panics and turns them into errors.
///
/// ```ignore
/// struct Echo;
/// impl ggcore_plugin_abi::Runtime for Echo { /* ... */ }
/// ggcore_plugin_abi::export_plugin!(Echo);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($runtime:expr) => {
        static __GGCORE_RUNTIME: ::std::sync::OnceLock<::std::boxed::Box<dyn $crate::Runtime>> = ::std::sync::OnceLock::new();

        fn __ggcore_runtime() -> &'static dyn $crate::Runtime {
            &**__GGCORE_RUNTIME.get_or_init(|| ::std::boxed::Box::new($runtime))
        }

        extern "C" fn __ggcore_info() -> $crate::abi_stable::std_types::RResult<$crate::PluginInfo, $crate::PluginError> {
            $crate::guard("info", || __ggcore_runtime().info()).into()
        }

        extern "C" fn __ggcore_probe() -> $crate::ProbeReport {
            match $crate::guard("probe", || __ggcore_runtime().probe()) {
                Ok(r) => r,
                Err(e) => $crate::ProbeReport { available: false, detail: e.message, native_runtime: ::std::default::Default::default() },
            }
        }

        extern "C" fn __ggcore_prepare(
            runtime: $crate::abi_stable::std_types::RStr<'_>,
            sdk_dirs: $crate::abi_stable::std_types::RSlice<'_, $crate::abi_stable::std_types::RString>,
        ) -> $crate::abi_stable::std_types::RResult<bool, $crate::PluginError> {
            let dirs: ::std::vec::Vec<::std::string::String> = sdk_dirs.iter().map(|s| s.to_string()).collect();
            match $crate::guard("prepare", || __ggcore_runtime().prepare(runtime.as_str(), &dirs)) {
                Ok(Ok(b)) => $crate::abi_stable::std_types::RResult::ROk(b),
                Ok(Err(m)) => $crate::abi_stable::std_types::RResult::RErr($crate::PluginError::new(m)),
                Err(e) => $crate::abi_stable::std_types::RResult::RErr(e),
            }
        }

        extern "C" fn __ggcore_fork() -> i32 {
            $crate::guard("fork", || __ggcore_runtime().fork()).unwrap_or(-1)
        }

        extern "C" fn __ggcore_start_instance(
            spec: $crate::FunctionSpec,
            host: $crate::HostBox,
        ) -> $crate::abi_stable::std_types::RResult<$crate::InstanceBox, $crate::PluginError> {
            match $crate::guard("start_instance", move || __ggcore_runtime().start(spec, host)) {
                Ok(Ok(instance)) => $crate::abi_stable::std_types::RResult::ROk($crate::instance_box(instance)),
                Ok(Err(m)) => $crate::abi_stable::std_types::RResult::RErr($crate::PluginError::new(m)),
                Err(e) => $crate::abi_stable::std_types::RResult::RErr(e),
            }
        }

        extern "C" fn __ggcore_sdk_dirs() -> $crate::abi_stable::std_types::RVec<$crate::abi_stable::std_types::RString> {
            $crate::guard("sdk_dirs", || __ggcore_runtime().sdk_dirs())
                .unwrap_or_default()
                .into_iter()
                .map($crate::abi_stable::std_types::RString::from)
                .collect()
        }

        extern "C" fn __ggcore_environment() -> $crate::Pairs {
            $crate::pairs($crate::guard("environment", || __ggcore_runtime().environment()).unwrap_or_default())
        }

        extern "C" fn __ggcore_refused() -> $crate::Pairs {
            $crate::pairs($crate::guard("refused", || __ggcore_runtime().refused()).unwrap_or_default())
        }

        extern "C" fn __ggcore_warm() -> $crate::abi_stable::std_types::RResult<(), $crate::PluginError> {
            match $crate::guard("warm", || __ggcore_runtime().warm()) {
                Ok(Ok(())) => $crate::abi_stable::std_types::RResult::ROk(()),
                Ok(Err(m)) => $crate::abi_stable::std_types::RResult::RErr($crate::PluginError::new(m)),
                Err(e) => $crate::abi_stable::std_types::RResult::RErr(e),
            }
        }

        fn __ggcore_plugin_root() -> $crate::PluginModRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::PluginMod {
                info: __ggcore_info,
                probe: __ggcore_probe,
                prepare: __ggcore_prepare,
                fork: __ggcore_fork,
                start_instance: __ggcore_start_instance,
                sdk_dirs: __ggcore_sdk_dirs,
                environment: __ggcore_environment,
                refused: __ggcore_refused,
                warm: __ggcore_warm,
            }
            .leak_into_prefix()
        }

        // What abi_stable's `#[export_root_module]` generates, spelled with
        // `$crate` paths so that plugins need no direct abi_stable dependency.
        // The symbol name is checked against abi_stable's in this crate's tests.
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __GGCORE_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            pub extern "C" fn erased_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__ggcore_plugin_root)
            }
            // SAFETY: `erased_module` returns the root module of type `PluginModRef`,
            // the type this header is made for.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                    erased_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_symbol_is_abi_stables() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn runtime_patterns() {
        assert!(runtime_matches("python3.*", "python3.8"));
        assert!(!runtime_matches("python3.*", "python3."));
        assert!(!runtime_matches("python3.*", "python2.7"));
        assert!(runtime_matches("executable", "executable"));
    }

    #[test]
    fn function_error_documents_are_json() {
        let e = FunctionError::new(ErrorKind::Unhandled, "bad \"thing\"\n");
        assert_eq!(String::from_utf8(e.payload.to_vec()).unwrap(), r#"{"errorMessage":"bad \"thing\"\n"}"#);
    }
}

/// The shape of the ABI (every type reachable from the root module and the two
/// tables: names, sizes, alignments, fields, variants) as text. A golden copy
/// lives in `golden/abi-<major>.txt`; a test fails when the shape changes
/// without the file (and, for an incompatible change, the version) changing.
pub fn abi_shape() -> String {
    use abi_stable::type_layout::{TLData, TypeLayout};
    use abi_stable::StableAbi;
    use std::collections::BTreeSet;
    use std::fmt::Write;

    fn walk(t: &'static TypeLayout, depth: usize, seen: &mut BTreeSet<usize>, out: &mut String) {
        let name = format!("{}", t.full_type());
        let pad = "  ".repeat(depth);
        let _ = write!(out, "{pad}{name} size={} align={}", t.size(), t.alignment());
        // One layout per type (generic instantiations included), so the address
        // identifies it; printed types do not depend on it.
        if !seen.insert(t as *const TypeLayout as usize) || depth > 16 {
            out.push_str(" (see above)\n");
            return;
        }
        let fields = match t.data() {
            TLData::Struct { fields } | TLData::Union { fields } => Some(fields),
            TLData::PrefixType(p) => {
                let _ = write!(out, " prefix(first_suffix_field={})", p.first_suffix_field);
                Some(p.fields)
            }
            TLData::Enum(e) => {
                let names: Vec<&str> = e.variant_names_iter().collect();
                let _ = write!(out, " enum[{}]", names.join(","));
                Some(e.fields)
            }
            TLData::Primitive(p) => {
                let _ = write!(out, " {p:?}");
                None
            }
            TLData::Opaque => None,
        };
        out.push('\n');
        let phantom = t.phantom_fields();
        for f in fields.into_iter().flat_map(|f| f.iter()).chain(phantom.iter()) {
            let _ = writeln!(out, "{pad}  .{}:", f.name());
            for func in f.function_range().iter() {
                let text = func.to_string();
                let _ = writeln!(out, "{pad}    {}", text.lines().next().unwrap_or(""));
                for param in func.param_type_layouts.iter() {
                    walk(param(), depth + 3, seen, out);
                }
                if let Some(ret) = func.return_type_layout() {
                    walk(ret(), depth + 3, seen, out);
                }
            }
            walk(f.layout(), depth + 2, seen, out);
        }
    }

    let mut out = format!("ggcore-plugin-abi {ABI_VERSION}\n");
    let mut seen = BTreeSet::new();
    for root in [<PluginModRef as StableAbi>::LAYOUT, <HostBox as StableAbi>::LAYOUT, <InstanceBox as StableAbi>::LAYOUT] {
        walk(root, 0, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod golden {
    /// `golden/abi-<major>.<minor>.txt` of this version.
    fn golden_path(version: &str) -> std::path::PathBuf {
        let major_minor: Vec<&str> = version.split('.').take(2).collect();
        // Cargo gives the package's directory at run time too; the compiled-in
        // one may name another checkout that shared the target directory.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        std::path::Path::new(&dir).join(format!("golden/abi-{}.txt", major_minor.join(".")))
    }

    /// Set `GGCORE_BLESS=1` to write the golden file after a deliberate
    /// change, once the version says what kind of change it is.
    #[test]
    fn abi_shape_matches_the_golden_file() {
        let path = golden_path(super::ABI_VERSION);
        let shape = super::abi_shape();
        if std::env::var("GGCORE_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &shape).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            golden == shape,
            "the ABI's shape changed ({}); if deliberate: bump the ABI version (minor for an addition at the end of a prefix \
             type, major otherwise), then GGCORE_BLESS=1 cargo test -p ggcore-plugin-abi",
            path.display()
        );
    }

    /// The shape of every earlier minor version of this major version is
    /// kept, and this version only adds to it: the lines of the older shape
    /// appear, in order, in this one (a field removed, renamed, retyped or
    /// moved breaks that).
    #[test]
    fn earlier_minor_versions_are_kept_and_only_extended() {
        let mut parts = super::ABI_VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        let current = super::abi_shape();
        for older in 0..minor {
            let path = golden_path(&format!("{major}.{older}"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}: the shape of each released version is kept", path.display()));
            let mut lines = current.lines().skip(1);
            for wanted in text.lines().skip(1) {
                // Sizes of prefix types and the count of their fields grow.
                let comparable = |l: &str| l.split(" size=").next().unwrap_or(l).to_string();
                assert!(
                    lines.any(|l| comparable(l) == comparable(wanted)),
                    "{}: `{wanted}` is not in ABI {} in that order: the change is not additive",
                    path.display(),
                    super::ABI_VERSION
                );
            }
        }
    }
}

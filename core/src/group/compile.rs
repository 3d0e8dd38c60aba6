//! Validation of a whole group: every problem is collected, with its JSON path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{self, Extra, RawExecution, RawGroup};
use super::{
    arn, CertificateArn, Compiled, CoreEntry, Device, Encoding, Endpoint, Function, FunctionArn, Group, GroupError, IsolationMode,
    Lifecycle, Logger, LoggerComponent, Problem, RunAs, SpoolerSettings, SpoolerStorage, Subscription, ThingArn, CLOUD, MIN_SPOOL_BYTES,
    SHADOW_SERVICE,
};
use crate::topic::TopicFilter;

/// Says whether a runtime (such as `python3.11`) can be served; `Err` holds the reason.
pub type RuntimeCheck<'a> = &'a dyn Fn(&str) -> Result<Option<String>, String>;

/// What validation needs to know about the machine.
pub struct CompileContext<'a> {
    /// Directory that `Functions[].Code` is relative to (the group file's directory).
    pub base_dir: Option<&'a Path>,
    /// Decides whether a runtime is served; `Ok(Some(w))` accepts with a warning.
    pub runtimes: RuntimeCheck<'a>,
    /// Parts that this build of ggcore does not serve yet (accepted with a warning).
    pub unserved: &'a [&'a str],
}

/// Default `Timeout` (seconds), `MemorySize` (KB), as in Greengrass.
const DEFAULT_TIMEOUT_S: u64 = 3;
const DEFAULT_MEMORY_KB: u64 = 16_384;
const DEFAULT_GROUP_ID: &str = "ggcore-group";

/// System functions of the original that ggcore takes settings from.
const SPOOLER_FUNCTION: &str = "GGCloudSpooler";

/// Parses and validates group.json text; `file` names it in messages.
pub fn compile_text(file: &str, text: &str, cx: &CompileContext<'_>) -> Result<Compiled, GroupError> {
    match raw::parse(text) {
        Ok(raw) => compile(file, raw, cx),
        Err((path, message)) => Err(GroupError { file: file.to_string(), problems: vec![Problem { path, message }] }),
    }
}

/// Validates a parsed group. Returns every problem at once.
pub fn compile(file: &str, raw: RawGroup, cx: &CompileContext<'_>) -> Result<Compiled, GroupError> {
    let mut c = Compiler { problems: Vec::new(), warnings: Vec::new() };
    let group = c.group(raw, cx);
    if c.problems.is_empty() {
        Ok(Compiled { group, warnings: c.warnings })
    } else {
        Err(GroupError { file: file.to_string(), problems: c.problems })
    }
}

struct Compiler {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a function asking for `GreengrassContainer` gets instead, until
/// ggcore has containers (docs/functions.md, "IsolationMode").
fn not_isolated_warning(name: &str, asked: &str) -> String {
    format!(
        "function '{name}' asks for IsolationMode GreengrassContainer ({asked}), which ggcore does not provide yet: it runs as \
         NoContainer, not isolated from the host: it sees the host's filesystem (not a root of its own holding only its code, \
         /tmp and its granted resources; /sys without AccessSysfs), the host's devices and mounts, every process (no PID \
         namespace), and the host's IPC, host name and network. Its RunAs user, memory limit and timeout still apply. Set \
         IsolationMode to NoContainer to run it so knowingly, without this warning"
    )
}

fn valid_id(id: &str) -> bool {
    arn::valid_thing_name(id)
}

impl Compiler {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem { path: path.into(), message: message.into() });
    }

    fn unknown(&mut self, path: &str, extra: &Extra) {
        for key in extra.keys() {
            self.warn(join(path, key), "unknown field, ignored");
        }
    }

    fn required<'s>(&mut self, path: &str, field: &str, value: &'s Option<String>) -> Option<&'s str> {
        match value.as_deref() {
            Some(v) => Some(v),
            None => {
                self.error(join(path, field), "is required");
                None
            }
        }
    }

    /// Checks `Id` and that it is unique among `seen`.
    fn id(&mut self, path: &str, id: &Option<String>, seen: &mut HashSet<String>) -> String {
        let Some(id) = self.required(path, "Id", id) else {
            return String::new();
        };
        let id = id.to_string();
        if !valid_id(&id) {
            self.error(join(path, "Id"), format!("'{id}' must be 1-128 characters of [a-zA-Z0-9:_-]"));
        } else if !seen.insert(id.clone()) {
            self.error(join(path, "Id"), format!("duplicate Id '{id}'"));
        }
        id
    }

    fn group(&mut self, raw: RawGroup, cx: &CompileContext<'_>) -> Group {
        self.unknown("", &raw.extra);
        let group_id = match raw.group_id {
            Some(id) if valid_id(&id) => id,
            Some(id) => {
                self.error("GroupId", format!("'{id}' must be 1-128 characters of [a-zA-Z0-9:_-]"));
                id
            }
            None => DEFAULT_GROUP_ID.to_string(),
        };
        if raw.connector_definition.is_some() {
            self.warn("ConnectorDefinition", "connectors are not supported by ggcore; ignored");
        }
        if let Some(res) = &raw.resource_definition {
            self.unknown("ResourceDefinition", &res.extra);
            if !res.resources.is_empty() {
                self.warn("ResourceDefinition.Resources", "local resources are not served yet; ignored");
            }
        }
        let core = self.core(raw.core_definition);
        let devices = self.devices(raw.device_definition, core.as_ref());
        let (functions, spooler) = self.functions(raw.function_definition, cx);
        let subscriptions = self.subscriptions(raw.subscription_definition, &devices, &functions, cx);
        let mut functions = functions;
        for f in &mut functions {
            let source = Endpoint::Function(f.arn.clone());
            f.cloud_filters = subscriptions
                .iter()
                .filter(|s| s.source == source && s.target == Endpoint::Cloud)
                .map(|s| s.subject.as_str().to_string())
                .collect();
            f.cloud_filters.sort();
            f.cloud_filters.dedup();
        }
        let loggers = self.loggers(raw.logger_definition);
        Group { group_id, core, devices, functions, subscriptions, loggers, spooler }
    }

    fn core(&mut self, def: Option<raw::RawCoreDefinition>) -> Option<CoreEntry> {
        let def = def?;
        self.unknown("CoreDefinition", &def.extra);
        if def.cores.len() > 1 {
            self.error("CoreDefinition.Cores", format!("a group has exactly one core; found {}", def.cores.len()));
        }
        let mut seen = HashSet::new();
        let mut out = None;
        for (i, c) in def.cores.into_iter().enumerate() {
            let path = format!("CoreDefinition.Cores[{i}]");
            self.unknown(&path, &c.extra);
            let id = self.id(&path, &c.id, &mut seen);
            let thing = self.thing_arn(&path, &c.thing_arn);
            let certificate = self.certificate_arn(&path, &c.certificate_arn);
            if let Some(thing) = thing {
                out.get_or_insert(CoreEntry { id, thing, certificate, sync_shadow: c.sync_shadow.unwrap_or(false) });
            }
        }
        out
    }

    fn thing_arn(&mut self, path: &str, value: &Option<String>) -> Option<ThingArn> {
        let v = self.required(path, "ThingArn", value)?;
        match ThingArn::parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(join(path, "ThingArn"), e.to_string());
                None
            }
        }
    }

    fn certificate_arn(&mut self, path: &str, value: &Option<String>) -> Option<CertificateArn> {
        let v = value.as_deref()?;
        match CertificateArn::parse(v) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(join(path, "CertificateArn"), e.to_string());
                None
            }
        }
    }

    fn devices(&mut self, def: Option<raw::RawDeviceDefinition>, core: Option<&CoreEntry>) -> Vec<Device> {
        let Some(def) = def else { return Vec::new() };
        self.unknown("DeviceDefinition", &def.extra);
        let mut seen = HashSet::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut certs: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, d) in def.devices.into_iter().enumerate() {
            let path = format!("DeviceDefinition.Devices[{i}]");
            self.unknown(&path, &d.extra);
            let id = self.id(&path, &d.id, &mut seen);
            let thing = self.thing_arn(&path, &d.thing_arn);
            let certificate = self.certificate_arn(&path, &d.certificate_arn);
            let Some(thing) = thing else { continue };
            if core.is_some_and(|c| c.thing.name() == thing.name()) {
                self.error(
                    join(&path, "ThingArn"),
                    format!("'{}' is the core's own thing; the core cannot be a device of its group", thing.name()),
                );
            }
            if let Some(prev) = names.insert(thing.name().to_string(), i) {
                self.error(join(&path, "ThingArn"), format!("thing '{}' is already DeviceDefinition.Devices[{prev}]", thing.name()));
            }
            if let Some(cert) = &certificate {
                if let Some(prev) = certs.insert(cert.fingerprint().to_string(), i) {
                    self.error(join(&path, "CertificateArn"), format!("the same certificate is already DeviceDefinition.Devices[{prev}]"));
                }
            }
            out.push(Device { id, thing, certificate, sync_shadow: d.sync_shadow.unwrap_or(false) });
        }
        out
    }

    fn functions(&mut self, def: Option<raw::RawFunctionDefinition>, cx: &CompileContext<'_>) -> (Vec<Function>, Option<SpoolerSettings>) {
        let Some(def) = def else {
            return (Vec::new(), None);
        };
        self.unknown("FunctionDefinition", &def.extra);
        let default_exec = def.default_config.map(|d| {
            self.unknown("FunctionDefinition.DefaultConfig", &d.extra);
            d.execution.unwrap_or_default()
        });
        let default_exec = match default_exec {
            Some(e) => self.execution("FunctionDefinition.DefaultConfig.Execution", e),
            None => (None, None),
        };
        let mut seen = HashSet::new();
        let mut arns: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut spooler = None;
        for (i, f) in def.functions.into_iter().enumerate() {
            let path = format!("FunctionDefinition.Functions[{i}]");
            self.unknown(&path, &f.extra);
            let id = self.id(&path, &f.id, &mut seen);
            let Some(arn_text) = self.required(&path, "FunctionArn", &f.function_arn) else {
                continue;
            };
            let arn = match FunctionArn::parse(arn_text) {
                Ok(a) => a,
                Err(e) => {
                    self.error(join(&path, "FunctionArn"), e.to_string());
                    continue;
                }
            };
            if arn.is_system() {
                if arn.name() == SPOOLER_FUNCTION {
                    spooler = self.spooler(&path, f.function_configuration.as_ref());
                } else {
                    self.warn(
                        join(&path, "FunctionArn"),
                        format!("system function '{}' is not implemented by ggcore; ignored", arn.name()),
                    );
                }
                continue;
            }
            if let Some(prev) = arns.insert(arn.unqualified().to_string(), i) {
                self.error(
                    join(&path, "FunctionArn"),
                    format!("function '{}' is already FunctionDefinition.Functions[{prev}]", arn.unqualified()),
                );
            }
            if arn.qualifier().is_none() {
                self.warn(join(&path, "FunctionArn"), "unqualified function ARN; Greengrass deploys a version or an alias");
            }
            if arn.qualifier() == Some("$LATEST") {
                self.error(join(&path, "FunctionArn"), "$LATEST is not supported by Greengrass; deploy a version or an alias");
            }
            if let Some(func) = self.function(&path, id, arn, f, default_exec, cx) {
                out.push(func);
            }
        }
        (out, spooler)
    }

    fn execution(&mut self, path: &str, e: RawExecution) -> (Option<IsolationMode>, Option<RunAs>) {
        self.unknown(path, &e.extra);
        let iso = match e.isolation_mode.as_deref() {
            None => None,
            Some("GreengrassContainer") => Some(IsolationMode::GreengrassContainer),
            Some("NoContainer") => Some(IsolationMode::NoContainer),
            Some(other) => {
                self.error(join(path, "IsolationMode"), format!("'{other}' is not GreengrassContainer or NoContainer"));
                None
            }
        };
        let run_as = e.run_as.map(|r| {
            let p = join(path, "RunAs");
            self.unknown(&p, &r.extra);
            let uid = r.uid.unwrap_or_else(|| {
                self.error(join(&p, "Uid"), "is required");
                0
            });
            let gid = r.gid.unwrap_or_else(|| {
                self.error(join(&p, "Gid"), "is required");
                0
            });
            RunAs { uid, gid }
        });
        (iso, run_as)
    }

    fn function(
        &mut self,
        path: &str,
        id: String,
        arn: FunctionArn,
        f: raw::RawFunction,
        default_exec: (Option<IsolationMode>, Option<RunAs>),
        cx: &CompileContext<'_>,
    ) -> Option<Function> {
        let cfg_path = join(path, "FunctionConfiguration");
        let Some(cfg) = f.function_configuration else {
            self.error(cfg_path, "is required");
            return None;
        };
        self.unknown(&cfg_path, &cfg.extra);
        // Problems with the runtime are reported where it was written.
        let (runtime, runtime_path) = match (f.runtime, cfg.function_runtime_override) {
            (Some(r), _) => (r, join(path, "Runtime")),
            (None, Some(r)) => (r, join(&cfg_path, "FunctionRuntimeOverride")),
            (None, None) => {
                self.error(
                    join(path, "Runtime"),
                    "is required (ggcore extension): a runtime that a plugin on the plugin path serves, such as python3.11 (`ggcore plugins list`)",
                );
                return None;
            }
        };
        match (cx.runtimes)(&runtime) {
            Ok(None) => {}
            Ok(Some(w)) => self.warn(runtime_path, w),
            Err(reason) => self.error(runtime_path, reason),
        }
        let code = match f.code {
            None => {
                self.error(join(path, "Code"), "is required (ggcore extension: a directory or .zip relative to the group file)");
                None
            }
            Some(code) => self.code(&join(path, "Code"), &code, cx.base_dir),
        };
        let executable = match cfg.executable {
            Some(e) if !e.trim().is_empty() => e,
            _ => {
                self.error(join(&cfg_path, "Executable"), "is required (the handler, such as 'module.function_handler')");
                String::new()
            }
        };
        let encoding = match cfg.encoding_type.as_deref() {
            None | Some("json") => Encoding::Json,
            Some("binary") => Encoding::Binary,
            Some(other) => {
                self.error(join(&cfg_path, "EncodingType"), format!("'{other}' is not json or binary"));
                Encoding::Json
            }
        };
        let timeout_s = cfg.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
        if timeout_s == 0 || timeout_s > 900 {
            self.error(join(&cfg_path, "Timeout"), format!("{timeout_s} is outside 1-900 seconds"));
        }
        let memory_kb = cfg.memory_size.unwrap_or(DEFAULT_MEMORY_KB);
        if !(2048..=4 * 1024 * 1024).contains(&memory_kb) {
            self.error(join(&cfg_path, "MemorySize"), format!("{memory_kb} KB is outside 2048-4194304 KB"));
        }
        let mut environment = BTreeMap::new();
        let (default_isolation, mut run_as) = default_exec;
        let mut isolation = default_isolation.map(|i| (i, "in FunctionDefinition.DefaultConfig"));
        if let Some(env) = cfg.environment {
            let env_path = join(&cfg_path, "Environment");
            self.unknown(&env_path, &env.extra);
            if let Some(vars) = env.variables {
                for (k, v) in vars {
                    if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                        self.error(join(&env_path, &format!("Variables.{k}")), "is not a valid environment variable");
                    }
                    environment.insert(k, v);
                }
            }
            if env.resource_access_policies.is_some_and(|p| !p.is_empty()) {
                self.warn(join(&env_path, "ResourceAccessPolicies"), "local resources are not served yet; ignored");
            }
            if env.access_sysfs == Some(true) {
                self.warn(
                    join(&env_path, "AccessSysfs"),
                    "read-only /sys is a GreengrassContainer setting, which ggcore does not provide yet; ignored (the function sees the host's /sys)",
                );
            }
            if let Some(e) = env.execution {
                let (i, r) = self.execution(&join(&env_path, "Execution"), e);
                isolation = i.map(|i| (i, "in its Environment.Execution")).or(isolation);
                run_as = r.or(run_as);
            }
        }
        let (isolation, asked) = isolation.unwrap_or((IsolationMode::GreengrassContainer, "by default"));
        if isolation == IsolationMode::GreengrassContainer {
            self.warn(path, not_isolated_warning(arn.name(), asked));
        }
        Some(Function {
            id,
            arn,
            runtime,
            code,
            executable,
            exec_args: cfg.exec_args,
            memory_kb,
            timeout: Duration::from_secs(timeout_s),
            lifecycle: if cfg.pinned.unwrap_or(false) { Lifecycle::Pinned } else { Lifecycle::OnDemand },
            encoding,
            environment,
            isolation,
            run_as,
            cloud_filters: Vec::new(),
        })
    }

    fn code(&mut self, path: &str, code: &str, base: Option<&Path>) -> Option<PathBuf> {
        let p = Path::new(code);
        let full = match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        match std::fs::metadata(&full) {
            Ok(m) if m.is_dir() => Some(full),
            Ok(m) if m.is_file() && code.ends_with(".zip") => match crate::bundle::check_zip(&full) {
                Ok(()) => Some(full),
                Err(e) => {
                    self.error(path, format!("{}: {e}", full.display()));
                    None
                }
            },
            Ok(_) => {
                self.error(path, format!("{} is neither a directory nor a .zip file", full.display()));
                None
            }
            Err(e) => {
                self.error(path, format!("{}: {e}", full.display()));
                None
            }
        }
    }

    fn spooler(&mut self, path: &str, cfg: Option<&raw::RawFunctionConfiguration>) -> Option<SpoolerSettings> {
        let vars = cfg.and_then(|c| c.environment.as_ref()).and_then(|e| e.variables.as_ref());
        let var_path = join(path, "FunctionConfiguration.Environment.Variables");
        let storage = match vars.and_then(|v| v.get("GG_CONFIG_STORAGE_TYPE")).map(String::as_str) {
            None | Some("Memory") => SpoolerStorage::Memory,
            Some("FileSystem") => SpoolerStorage::FileSystem,
            Some(other) => {
                self.error(join(&var_path, "GG_CONFIG_STORAGE_TYPE"), format!("'{other}' is not Memory or FileSystem"));
                return None;
            }
        };
        let max_size_bytes = match vars.and_then(|v| v.get("GG_CONFIG_MAX_SIZE_BYTES")) {
            None => 2_621_440,
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if n >= MIN_SPOOL_BYTES => n,
                Ok(_) => {
                    self.error(join(&var_path, "GG_CONFIG_MAX_SIZE_BYTES"), "Spool size should be at least 262144 bytes.");
                    return None;
                }
                Err(_) => {
                    self.error(join(&var_path, "GG_CONFIG_MAX_SIZE_BYTES"), format!("'{s}' is not a whole number of bytes"));
                    return None;
                }
            },
        };
        Some(SpoolerSettings { storage, max_size_bytes })
    }

    fn endpoint(
        &mut self,
        path: &str,
        text: &str,
        devices: &[Device],
        functions: &[Function],
        cx: &CompileContext<'_>,
    ) -> Option<Endpoint> {
        if text == CLOUD || text == SHADOW_SERVICE {
            if cx.unserved.contains(&text) {
                self.warn(path, format!("'{text}' is not served by this ggcore yet; messages to or from it are dropped"));
            }
            return Some(if text == CLOUD { Endpoint::Cloud } else { Endpoint::Shadow });
        }
        if text.starts_with("arn:aws:iot:") {
            return match ThingArn::parse(text) {
                Ok(t) => match devices.iter().find(|d| d.thing.name() == t.name()) {
                    Some(d) => Some(Endpoint::Device(d.thing.clone())),
                    None => {
                        self.error(path, format!("no device has ARN {text}; add it to DeviceDefinition or fix the ARN"));
                        None
                    }
                },
                Err(e) => {
                    self.error(path, e.to_string());
                    None
                }
            };
        }
        if text.starts_with("arn:aws:lambda:") {
            return match FunctionArn::parse(text) {
                Ok(a) => {
                    let found = functions.iter().find(|f| f.arn == a || (a.qualifier().is_none() && f.arn.unqualified() == a.as_str()));
                    match found {
                        Some(f) => Some(Endpoint::Function(f.arn.clone())),
                        None => {
                            self.error(path, format!("no function has ARN {text}; add it to FunctionDefinition or fix the ARN"));
                            None
                        }
                    }
                }
                Err(e) => {
                    self.error(path, e.to_string());
                    None
                }
            };
        }
        self.error(path, format!("'{text}' is not a thing ARN, a function ARN, 'cloud' or 'GGShadowService'"));
        None
    }

    fn subscriptions(
        &mut self,
        def: Option<raw::RawSubscriptionDefinition>,
        devices: &[Device],
        functions: &[Function],
        cx: &CompileContext<'_>,
    ) -> Vec<Subscription> {
        let Some(def) = def else { return Vec::new() };
        self.unknown("SubscriptionDefinition", &def.extra);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, s) in def.subscriptions.into_iter().enumerate() {
            let path = format!("SubscriptionDefinition.Subscriptions[{i}]");
            self.unknown(&path, &s.extra);
            let id = self.id(&path, &s.id, &mut seen);
            let source =
                self.required(&path, "Source", &s.source).and_then(|t| self.endpoint(&join(&path, "Source"), t, devices, functions, cx));
            let target =
                self.required(&path, "Target", &s.target).and_then(|t| self.endpoint(&join(&path, "Target"), t, devices, functions, cx));
            let subject = self.required(&path, "Subject", &s.subject).and_then(|t| match TopicFilter::new(t) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.error(join(&path, "Subject"), format!("'{t}' is not a valid topic filter: {e}"));
                    None
                }
            });
            if let (Some(source), Some(subject), Some(target)) = (source, subject, target) {
                if source == Endpoint::Cloud && target == Endpoint::Cloud {
                    self.error(&path, "a subscription from cloud to cloud routes nothing");
                    continue;
                }
                out.push(Subscription { id, source, subject, target });
            }
        }
        out
    }

    fn loggers(&mut self, def: Option<raw::RawLoggerDefinition>) -> Vec<Logger> {
        let Some(def) = def else { return Vec::new() };
        self.unknown("LoggerDefinition", &def.extra);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, l) in def.loggers.into_iter().enumerate() {
            let path = format!("LoggerDefinition.Loggers[{i}]");
            self.unknown(&path, &l.extra);
            let id = self.id(&path, &l.id, &mut seen);
            let component = match l.component.as_deref() {
                Some("GreengrassSystem") => Some(LoggerComponent::GreengrassSystem),
                Some("Lambda") => Some(LoggerComponent::Lambda),
                Some(other) => {
                    self.error(join(&path, "Component"), format!("'{other}' is not GreengrassSystem or Lambda"));
                    None
                }
                None => {
                    self.error(join(&path, "Component"), "is required");
                    None
                }
            };
            let level = match l.level.as_deref().map(|name| (name, ggcore_plugin_abi::LogLevel::from_name(name))) {
                Some((_, Some(level))) => Some(level),
                Some((other, None)) => {
                    self.error(join(&path, "Level"), format!("'{other}' is not DEBUG, INFO, WARN, ERROR or FATAL"));
                    None
                }
                None => {
                    self.error(join(&path, "Level"), "is required");
                    None
                }
            };
            match l.kind.as_deref() {
                Some("FileSystem") => {}
                Some("AWSCloudWatch") => {
                    self.warn(join(&path, "Type"), "AWSCloudWatch logging is not served by ggcore; ignored");
                    continue;
                }
                Some(other) => {
                    self.error(join(&path, "Type"), format!("'{other}' is not FileSystem or AWSCloudWatch"));
                    continue;
                }
                None => {
                    self.error(join(&path, "Type"), "is required");
                    continue;
                }
            }
            if let (Some(component), Some(level)) = (component, level) {
                out.push(Logger { id, component, level, space_kb: l.space });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_runtimes(r: &str) -> Result<Option<String>, String> {
        Err(format!("no runtime plugin serves runtime '{r}'"))
    }

    fn cx() -> CompileContext<'static> {
        CompileContext { base_dir: None, runtimes: &no_runtimes, unserved: &["cloud", "GGShadowService"] }
    }

    const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn device(name: &str) -> String {
        format!(
            r#"{{"Id":"{name}","ThingArn":"arn:aws:iot:us-east-1:000000000000:thing/{name}","CertificateArn":"arn:aws:iot:us-east-1:000000000000:cert/{FP}"}}"#
        )
    }

    #[test]
    fn valid_group_compiles() {
        let text = format!(
            r#"{{"GroupId":"g","DeviceDefinition":{{"Devices":[{}]}},
               "SubscriptionDefinition":{{"Subscriptions":[{{"Id":"s1","Source":"arn:aws:iot:us-east-1:000000000000:thing/d1","Subject":"a/#","Target":"cloud"}}]}}}}"#,
            device("d1")
        );
        let c = compile_text("group.json", &text, &cx()).unwrap();
        assert_eq!(c.group.devices.len(), 1);
        assert_eq!(c.group.subscriptions[0].target, Endpoint::Cloud);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].message.contains("not served"));
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let text = r#"{"DeviceDefinition":{"Devices":[{"Id":"d1","ThingArn":"arn:aws:iot:r:a:thing/d1"},{"Id":"d1","ThingArn":"nope"}]},
            "SubscriptionDefinition":{"Subscriptions":[
              {"Id":"s1","Source":"arn:aws:iot:r:a:thing/d9","Subject":"a","Target":"cloud"},
              {"Id":"s2","Source":"cloud","Subject":"a/#/b","Target":"arn:aws:iot:r:a:thing/d1"}]},
            "Bogus": 1}"#;
        let e = compile_text("group.json", text, &cx()).unwrap_err();
        let paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"DeviceDefinition.Devices[1].Id"), "{paths:?}");
        assert!(paths.contains(&"DeviceDefinition.Devices[1].ThingArn"), "{paths:?}");
        assert!(paths.contains(&"SubscriptionDefinition.Subscriptions[0].Source"), "{paths:?}");
        assert!(paths.contains(&"SubscriptionDefinition.Subscriptions[1].Subject"), "{paths:?}");
        let text = e.to_string();
        assert!(text.contains("no device has ARN arn:aws:iot:r:a:thing/d9"), "{text}");
        assert!(text.contains("'a/#/b' is not a valid topic filter"), "{text}");
    }

    #[test]
    fn type_errors_name_the_path() {
        let e = compile_text("g.json", r#"{"DeviceDefinition":{"Devices":[{"Id":5}]}}"#, &cx()).unwrap_err();
        assert_eq!(e.problems[0].path, "DeviceDefinition.Devices[0].Id");
    }

    #[test]
    fn unknown_fields_warn() {
        let c = compile_text("g.json", r#"{"DeviceDefinition":{"Devices":[],"Extra":1},"Foo":true}"#, &cx()).unwrap();
        let paths: Vec<&str> = c.warnings.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["Foo", "DeviceDefinition.Extra"]);
    }

    #[test]
    fn function_without_runtime_plugin_is_refused() {
        let text = r#"{"FunctionDefinition":{"Functions":[{"Id":"f","FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:f:1",
            "Runtime":"python3.11","Code":".","FunctionConfiguration":{"Executable":"m.h"}}]}}"#;
        let e = compile_text("g.json", text, &cx()).unwrap_err();
        assert_eq!(e.problems[0].path, "FunctionDefinition.Functions[0].Runtime");
        assert!(e.problems[0].message.contains("python3.11"));
    }

    #[test]
    fn a_runtime_override_is_named_where_it_is_written() {
        let text = r#"{"FunctionDefinition":{"Functions":[{"Id":"f","FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:f:1",
            "Code":".","FunctionConfiguration":{"Executable":"m.h","FunctionRuntimeOverride":"python3.11"}}]}}"#;
        let e = compile_text("g.json", text, &cx()).unwrap_err();
        assert_eq!(e.problems[0].path, "FunctionDefinition.Functions[0].FunctionConfiguration.FunctionRuntimeOverride");
    }

    #[test]
    fn spooler_size_is_checked() {
        let text = r#"{"FunctionDefinition":{"Functions":[{"Id":"sp","FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1",
            "FunctionConfiguration":{"Executable":"spooler","Environment":{"Variables":{"GG_CONFIG_STORAGE_TYPE":"FileSystem","GG_CONFIG_MAX_SIZE_BYTES":"1000"}}}}]}}"#;
        let e = compile_text("g.json", text, &cx()).unwrap_err();
        assert_eq!(e.problems[0].message, "Spool size should be at least 262144 bytes.");
    }

    fn python_function(id: &str, execution: &str) -> String {
        format!(
            r#"{{"Id":"{id}","FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:{id}:1","Runtime":"python3.11","Code":".",
                "FunctionConfiguration":{{"Executable":"m.h","Environment":{{{execution}}}}}}}"#
        )
    }

    #[test]
    fn greengrass_container_warns_what_is_not_isolated() {
        let python = |_: &str| -> Result<Option<String>, String> { Ok(None) };
        let cx = CompileContext { base_dir: Some(Path::new("/")), runtimes: &python, unserved: &[] };
        let functions = [
            python_function("plain", ""),
            python_function("boxed", r#""Execution":{"IsolationMode":"GreengrassContainer"}"#),
            python_function("open", r#""Execution":{"IsolationMode":"NoContainer"}"#),
        ]
        .join(",");
        let text = format!(r#"{{"FunctionDefinition":{{"Functions":[{functions}]}}}}"#);
        let c = compile_text("g.json", &text, &cx).unwrap();
        let warned: Vec<(&str, &str)> = c.warnings.iter().map(|w| (w.path.as_str(), w.message.as_str())).collect();
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert_eq!(warned[0].0, "FunctionDefinition.Functions[0]");
        assert!(warned[0].1.starts_with("function 'plain' asks for IsolationMode GreengrassContainer (by default)"), "{}", warned[0].1);
        assert!(
            warned[1].1.contains("'boxed' asks for IsolationMode GreengrassContainer (in its Environment.Execution)"),
            "{}",
            warned[1].1
        );
        for needle in ["filesystem", "mounts", "PID", "network", "NoContainer"] {
            assert!(warned[0].1.contains(needle), "{needle}: {}", warned[0].1);
        }
        let modes: Vec<IsolationMode> = c.group.functions.iter().map(|f| f.isolation).collect();
        assert_eq!(modes, [IsolationMode::GreengrassContainer, IsolationMode::GreengrassContainer, IsolationMode::NoContainer]);
        assert_eq!(c.group.functions[0].isolation.effective(), "NoContainer (GreengrassContainer requested: not isolated yet)");
        assert_eq!(c.group.functions[2].isolation.effective(), "NoContainer");

        // From DefaultConfig: said so; a function's own NoContainer wins.
        let functions = [python_function("a", ""), python_function("b", r#""Execution":{"IsolationMode":"NoContainer"}"#)].join(",");
        let text = format!(
            r#"{{"FunctionDefinition":{{"DefaultConfig":{{"Execution":{{"IsolationMode":"GreengrassContainer"}}}},"Functions":[{functions}]}}}}"#
        );
        let c = compile_text("g.json", &text, &cx).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].message.contains("'a' asks for IsolationMode GreengrassContainer (in FunctionDefinition.DefaultConfig)"));

        // AccessSysfs is a container setting: said so.
        let text = format!(
            r#"{{"FunctionDefinition":{{"Functions":[{}]}}}}"#,
            python_function("s", r#""AccessSysfs":true,"Execution":{"IsolationMode":"NoContainer"}"#)
        );
        let c = compile_text("g.json", &text, &cx).unwrap();
        let warned: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(warned, ["FunctionDefinition.Functions[0].FunctionConfiguration.Environment.AccessSysfs"]);
    }

    #[test]
    fn definition_wrapper_is_unwrapped() {
        let text = format!(r#"{{"DeviceDefinition":{{"Arn":"x","Definition":{{"Devices":[{}]}}}}}}"#, device("d1"));
        let c = compile_text("g.json", &text, &cx()).unwrap();
        assert_eq!(c.group.devices.len(), 1);
    }
}

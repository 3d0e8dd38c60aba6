//! What a worker needs to become a function: environment, identity, SDK dirs.

use std::path::{Path, PathBuf};

use ggcore_ipc::Spec;

use super::slot::FunctionSlot;
use super::{FunctionManager, ROUTER_ARN, SECRETS_ARN, SHADOW_ARN};
use crate::group::{Lifecycle, RunAs};
use crate::plugins::PluginEntry;

/// The SDK directories instances of `runtime` get: those its plugin declares
/// (`declared`, ABI 1.1: names under `sdk_root` or absolute paths), else — a
/// plugin built against ABI 1.0 declares none — ggcore's SDK for the
/// runtime's language.
pub fn sdk_dirs(sdk_root: &Path, declared: Option<&[String]>, runtime: &str) -> Vec<PathBuf> {
    if let Some(dirs) = declared {
        return dirs.iter().map(|d| sdk_root.join(d)).collect();
    }
    let lang = if runtime.starts_with("python") {
        "sdk-python"
    } else if runtime.starts_with("nodejs") {
        "sdk-node"
    } else if runtime.starts_with("java") {
        "sdk-java"
    } else {
        "sdk-c"
    };
    vec![sdk_root.join(lang)]
}

/// What cores before plugin ABI 1.2 set for a runtime's language, for
/// plugins built against 1.0 or 1.1 (they declare no environment).
pub fn legacy_environment(runtime: &str) -> Vec<(String, String)> {
    if runtime.starts_with("python") {
        vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into()), ("PYTHONUNBUFFERED".into(), "1".into())]
    } else {
        Vec::new()
    }
}

impl FunctionManager {
    pub(crate) fn sdk_dirs(&self, plugin: &PluginEntry, runtime: &str) -> Vec<String> {
        sdk_dirs(&self.cfg.sdk_root, plugin.sdk_dirs.as_deref(), runtime).iter().map(|d| d.display().to_string()).collect()
    }

    /// The user and group a function runs as (None: the core's own).
    pub(crate) fn run_as(&self, f: &crate::group::Function) -> Option<RunAs> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        f.run_as.or(self.default_run_as)
    }

    /// What the worker needs to become this function.
    pub(crate) fn spec_for(&self, slot: &FunctionSlot, cgroup_procs: Option<String>) -> Spec {
        let f = &slot.def;
        let info = self.info.read().unwrap_or_else(|p| p.into_inner()).clone();
        let code_dir = f.code.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("HOME".into(), code_dir.clone()),
            ("MY_FUNCTION_ARN".into(), f.arn.as_str().into()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), f.arn.name().into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), f.arn.qualifier().unwrap_or("$LATEST").into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), (f.memory_kb / 1024).max(1).to_string()),
            ("ROUTER_FUNCTION_ARN".into(), ROUTER_ARN.into()),
            ("SHADOW_FUNCTION_ARN".into(), SHADOW_ARN.into()),
            ("SECRETS_MANAGER_FUNCTION_ARN".into(), SECRETS_ARN.into()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN".into(), format!("ggcore-{}", f.arn.name())),
            ("GGC_MAX_INTERFACE_VERSION".into(), "1.5".into()),
            ("GG_DAEMON_PORT".into(), "8000".into()),
            ("ENCODING_TYPE".into(), f.encoding.as_str().into()),
            ("AWS_GREENGRASS_GROUP_NAME".into(), info.group_id.clone()),
        ];
        if !f.arn.region().is_empty() {
            env.push(("AWS_REGION".into(), f.arn.region().into()));
            env.push(("AWS_DEFAULT_REGION".into(), f.arn.region().into()));
        }
        if let Some(t) = &info.core_thing {
            env.push(("AWS_IOT_THING_NAME".into(), t.name().into()));
            env.push(("AWS_IOT_THING_ARN".into(), t.as_str().into()));
        }
        // What the plugin declares, then the function's own variables, each
        // replacing an earlier value of the same name.
        let declared = slot.plugin.environment.clone().unwrap_or_else(|| legacy_environment(&f.runtime));
        let own = f.environment.iter().map(|(k, v)| (k.clone(), v.clone()));
        for (k, v) in declared.into_iter().chain(own) {
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        let run_as = self.run_as(f);
        Spec {
            function_arn: f.arn.as_str().into(),
            runtime: f.runtime.clone(),
            handler: f.executable.clone(),
            exec_args: f.exec_args.clone().unwrap_or_default(),
            code_dir,
            environment: env,
            binary: f.encoding == crate::group::Encoding::Binary,
            memory_limit_kb: f.memory_kb,
            timeout_ms: f.timeout.as_millis() as u64,
            pinned: f.lifecycle == Lifecycle::Pinned,
            sdk_dirs: self.sdk_dirs(&slot.plugin, &f.runtime),
            uid: run_as.map(|r| r.uid),
            gid: run_as.map(|r| r.gid),
            cgroup_procs,
            max_payload: self.cfg.max_payload as u64,
            wait_for: f.cloud_filters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_sdk_dirs_win_and_older_plugins_get_their_language() {
        let root = Path::new("/opt/ggcore");
        let declared = vec!["sdk-python".to_string(), "/usr/share/extra".to_string()];
        assert_eq!(
            sdk_dirs(root, Some(&declared), "whatever1"),
            vec![PathBuf::from("/opt/ggcore/sdk-python"), PathBuf::from("/usr/share/extra")]
        );
        assert_eq!(sdk_dirs(root, Some(&[]), "python3.11"), Vec::<PathBuf>::new(), "a plugin may need none");
        assert_eq!(sdk_dirs(root, None, "python3.8"), vec![PathBuf::from("/opt/ggcore/sdk-python")]);
        assert_eq!(sdk_dirs(root, None, "nodejs18.x"), vec![PathBuf::from("/opt/ggcore/sdk-node")]);
    }
}

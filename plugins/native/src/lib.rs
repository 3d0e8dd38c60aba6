//! The `native` runtime plugin (`libggcore_plugin_native.so`).
//!
//! It serves Greengrass "Lambda executables": runtime `executable` (or its
//! ARN form `arn:aws:greengrass:::runtime/function/executable`), a program in
//! the function's code directory (`Executable`, with `ExecArgs`) linked with
//! the C Core SDK, `libaws-greengrass-core-sdk-c.so` (`sdk-c/`). Each
//! instance's worker starts the program as its child on two pipes, with the
//! SDK's directory first on `LD_LIBRARY_PATH`, so a program built against
//! AWS's stub library (RUNPATH) loads ggcore's; the SDK then speaks the frames
//! of `ggcore-frame` with [`ChildInstance`], as node does (docs/native.md).
//!
//! There is no spare process to start ahead of need: the process is the
//! function's own program, which only the function's start can run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use ggcore_plugin_abi::abi_stable::std_types::RVec;
use ggcore_plugin_abi::{export_plugin, FunctionInstance, FunctionSpec, HostBox, PluginInfo, ProbeReport, Runtime};
use ggcore_plugin_child::frame::Frame;
use ggcore_plugin_child::{spawn, ChildInstance};
use serde_json::json;

/// The SDK directory this plugin's instances need (under the core's SDK root).
const SDK_DIR: &str = "sdk-c/lib";
/// The C Core SDK library, by the name programs are linked with.
pub const SDK_LIBRARY: &str = "libaws-greengrass-core-sdk-c.so";
/// Tells the SDK which descriptors are its pipes (in, out).
const FDS_ENV: &str = "GGCORE_SDK_FDS";

/// The directory holding the SDK library, found once per process (by the
/// zygote's `prepare`, inherited by the instances it forks).
static SDK_LIB_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn sdk_lib_dir(sdk_dirs: &[String]) -> Result<&'static Path, String> {
    SDK_LIB_DIR
        .get_or_init(|| {
            sdk_dirs.iter().map(PathBuf::from).find(|d| d.join(SDK_LIBRARY).is_file()).ok_or_else(|| {
                format!("the C Core SDK ({SDK_DIR}/{SDK_LIBRARY}) is not in any of the SDK directories {sdk_dirs:?}; build it with `cargo build` or install ggcore")
            })
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

struct NativeRuntime;

impl Runtime for NativeRuntime {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "native".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            runtimes: RVec::from(vec!["executable".into(), "arn:aws:greengrass:::runtime/function/executable".into()]),
        }
    }

    fn sdk_dirs(&self) -> Vec<String> {
        vec![SDK_DIR.to_string()]
    }

    fn probe(&self) -> ProbeReport {
        ProbeReport {
            available: true,
            detail: format!("native executables linked with {SDK_LIBRARY}").into(),
            native_runtime: "executable".into(),
        }
    }

    /// Finds the SDK library once; nothing is loaded, so instances are
    /// plain forks of the zygote.
    fn prepare(&self, _runtime: &str, sdk_dirs: &[String]) -> Result<bool, String> {
        sdk_lib_dir(sdk_dirs).map(|_| true)
    }

    fn fork(&self) -> i32 {
        // SAFETY: the zygote is single-threaded (prepare starts no thread);
        // the child only returns into the worker's code.
        unsafe { libc::fork() }
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let sdk_dirs: Vec<String> = spec.sdk_dirs.iter().map(|d| d.to_string()).collect();
        let lib_dir = sdk_lib_dir(&sdk_dirs)?;
        let code_dir = Path::new(spec.code_dir.as_str());
        let program = executable(code_dir, spec.handler.as_str())?;
        let args = exec_args(spec.exec_args.as_str());
        let env: Vec<(String, String)> = spec.environment.iter().map(|kv| (kv.0.to_string(), kv.1.to_string())).collect();
        let env = environment(env, lib_dir);
        let name = format!("the executable {}", spec.handler.as_str());
        let spawned = spawn::spawn(&program, &args, &env, code_dir).map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let start = Frame::new(
            "start",
            json!({
                "functionArn": spec.function_arn.as_str(),
                "handler": spec.handler.as_str(),
                "codeDir": spec.code_dir.as_str(),
                "encoding": "binary",
                "memoryLimitMb": spec.memory_limit_kb / 1024,
                "timeoutMs": spec.timeout_ms,
                "pinned": spec.pinned,
                "runtime": spec.runtime.as_str(),
            }),
            Vec::new(),
        );
        let instance = ChildInstance::start(&name, spawned, start, host, spec.function_arn.as_str())?;
        Ok(Box::new(instance))
    }
}

/// The function's program: `Executable` names a file inside its code
/// directory (a relative path such as `hello`, `./hello` or `bin/hello`; no
/// `..`), which must be an executable file.
pub fn executable(code_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let rel = Path::new(name);
    let mut parts = rel.components().filter(|c| !matches!(c, Component::CurDir)).peekable();
    if parts.peek().is_none() || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("Executable '{name}' must name a file inside the function's code directory (a relative path without '..')"));
    }
    let path = code_dir.join(rel);
    let meta = std::fs::metadata(&path).map_err(|e| format!("Executable '{name}': {} cannot be read: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("Executable '{name}': {} is not a file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("Executable '{name}': {} is not executable (its mode has no x bit)", path.display()));
    }
    Ok(path)
}

/// `ExecArgs`, split at white space as Greengrass did (no shell quoting).
pub fn exec_args(args: &str) -> Vec<String> {
    args.split_whitespace().map(str::to_string).collect()
}

/// The function's environment with the SDK's directory first on
/// `LD_LIBRARY_PATH` (so that a program linked with RUNPATH to AWS's stub
/// library loads ggcore's) and the SDK's descriptors named.
pub fn environment(mut env: Vec<(String, String)>, lib_dir: &Path) -> Vec<(String, String)> {
    let dir = lib_dir.display().to_string();
    let path = match env.iter().position(|(k, _)| k == "LD_LIBRARY_PATH") {
        Some(i) => {
            let (_, old) = env.remove(i);
            if old.is_empty() {
                dir
            } else {
                format!("{dir}:{old}")
            }
        }
        None => dir,
    };
    env.retain(|(k, _)| k != FDS_ENV);
    env.push(("LD_LIBRARY_PATH".into(), path));
    env.push((FDS_ENV.into(), "3,4".into()));
    env
}

export_plugin!(NativeRuntime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_stays_in_the_code_directory() {
        let dir = std::env::temp_dir().join(format!("ggcore-native-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/run"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("data"), b"x").unwrap();
        assert_eq!(executable(&dir, "bin/run").unwrap(), dir.join("bin/run"));
        assert_eq!(executable(&dir, "./bin/run").unwrap(), dir.join("./bin/run"));
        for (name, says) in [
            ("../etc/passwd", "inside"),
            ("/bin/sh", "inside"),
            ("", "inside"),
            (".", "inside"),
            ("missing", "cannot be read"),
            ("bin", "not a file"),
            ("data", "not executable"),
        ] {
            let e = executable(&dir, name).unwrap_err();
            assert!(e.contains(says), "{name}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sdk_comes_first_on_the_library_path() {
        let env = vec![("LD_LIBRARY_PATH".to_string(), "/opt/lib".to_string()), ("A".into(), "1".into())];
        let got = environment(env, Path::new("/sdk/lib"));
        assert!(got.contains(&("LD_LIBRARY_PATH".into(), "/sdk/lib:/opt/lib".into())));
        assert!(got.contains(&("GGCORE_SDK_FDS".into(), "3,4".into())));
        assert!(got.contains(&("A".into(), "1".into())));
        let got = environment(Vec::new(), Path::new("/sdk/lib"));
        assert!(got.contains(&("LD_LIBRARY_PATH".into(), "/sdk/lib".into())));
        assert_eq!(exec_args("  -v  --port 7 "), ["-v", "--port", "7"]);
    }
}

//! The `node` runtime plugin (`libggcore_plugin_node.so`).
//!
//! It serves `nodejs*` runtimes (`nodejs6.10`, `nodejs8.10`, `nodejs12.x`,
//! any `nodejsN.x`) on the Node.js installed on the machine (18 or later).
//! V8 is not embedded: each instance's worker starts a `node` process running
//! `sdk-node/bootstrap.js` and talks to it over two pipes with the frames of
//! [`frame`] (the messages are in docs/node.md). That boundary stays inside
//! this plugin, so an in-process engine could replace it without the core
//! noticing.

pub mod discover;
pub mod frame;
mod instance;
mod spawn;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ggcore_plugin_abi::abi_stable::std_types::RVec;
use ggcore_plugin_abi::{export_plugin, Encoding, FunctionInstance, FunctionSpec, HostBox, PluginInfo, ProbeReport, Runtime};
use serde_json::json;

use discover::Node;
use frame::Frame;

/// The SDK directory this plugin's instances need (under the core's SDK root).
const SDK_DIR: &str = "sdk-node";
/// The runtime's entry point inside the SDK directory.
const BOOTSTRAP: &str = "bootstrap.js";

/// Node and the bootstrap, found once per process (by the zygote's
/// `prepare`, inherited by the instances it forks).
struct Prepared {
    node: Node,
    bootstrap: PathBuf,
    sdk_dir: PathBuf,
}

static PREPARED: OnceLock<Result<Prepared, String>> = OnceLock::new();

fn prepared(sdk_dirs: &[String]) -> Result<&'static Prepared, String> {
    PREPARED
        .get_or_init(|| {
            let node = discover::find()?;
            let sdk_dir =
                sdk_dirs.iter().map(PathBuf::from).find(|d| d.join(BOOTSTRAP).is_file()).ok_or_else(|| {
                    format!("the Node.js runtime ({SDK_DIR}/{BOOTSTRAP}) is not in any of the SDK directories {sdk_dirs:?}")
                })?;
            Ok(Prepared { bootstrap: sdk_dir.join(BOOTSTRAP), sdk_dir, node })
        })
        .as_ref()
        .map_err(Clone::clone)
}

struct NodeRuntime;

impl Runtime for NodeRuntime {
    fn info(&self) -> PluginInfo {
        PluginInfo { name: "node".into(), version: env!("CARGO_PKG_VERSION").into(), runtimes: RVec::from(vec!["nodejs*".into()]) }
    }

    fn sdk_dirs(&self) -> Vec<String> {
        vec![SDK_DIR.to_string()]
    }

    fn probe(&self) -> ProbeReport {
        match discover::find() {
            Ok(n) => ProbeReport {
                available: true,
                detail: format!("Node.js v{} ({})", n.version, n.path.display()).into(),
                native_runtime: n.native_runtime().into(),
            },
            Err(reason) => ProbeReport { available: false, detail: reason.into(), native_runtime: "".into() },
        }
    }

    /// Finds node and the bootstrap once; nothing is loaded in this process,
    /// so instances are plain forks of it.
    fn prepare(&self, _runtime: &str, sdk_dirs: &[String]) -> Result<bool, String> {
        prepared(sdk_dirs).map(|_| true)
    }

    fn fork(&self) -> i32 {
        // SAFETY: the zygote is single-threaded (prepare starts no thread);
        // the child only returns into the worker's code.
        unsafe { libc::fork() }
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let sdk_dirs: Vec<String> = spec.sdk_dirs.iter().map(|d| d.to_string()).collect();
        let p = prepared(&sdk_dirs)?;
        let env: Vec<(String, String)> = spec.environment.iter().map(|kv| (kv.0.to_string(), kv.1.to_string())).collect();
        let mut args = Vec::new();
        if discover::legacy_runtime(&spec.runtime) {
            // Node ≤ 14 only warned about an unhandled rejection.
            args.push("--unhandled-rejections=warn".to_string());
        }
        args.push(p.bootstrap.display().to_string());
        args.push("direct".to_string());
        let code_dir = Path::new(spec.code_dir.as_str());
        let spawned = spawn::spawn(&p.node.path, &args, &env, code_dir)
            .map_err(|e| format!("cannot start {} for the function: {e}", p.node.path.display()))?;
        let start = start_frame(&spec, &p.sdk_dir);
        let instance = instance::NodeInstance::start(spawned, start, host, spec.function_arn.as_str())?;
        Ok(Box::new(instance))
    }
}

/// The `start` message for `spec`.
fn start_frame(spec: &FunctionSpec, sdk_dir: &Path) -> Frame {
    Frame::new(
        "start",
        json!({
            "functionArn": spec.function_arn.as_str(),
            "handler": spec.handler.as_str(),
            "codeDir": spec.code_dir.as_str(),
            "encoding": if spec.encoding == Encoding::Binary { "binary" } else { "json" },
            "memoryLimitMb": spec.memory_limit_kb / 1024,
            "timeoutMs": spec.timeout_ms,
            "pinned": spec.pinned,
            "runtime": spec.runtime.as_str(),
            "sdkDir": sdk_dir.display().to_string(),
            "become": null,
        }),
        Vec::new(),
    )
}

export_plugin!(NodeRuntime);

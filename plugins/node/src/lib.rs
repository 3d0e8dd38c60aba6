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

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ggcore_plugin_abi::abi_stable::std_types::RVec;
use ggcore_plugin_abi::{export_plugin, Encoding, FunctionInstance, FunctionSpec, HostBox, PluginInfo, ProbeReport, Runtime};
use serde_json::json;

use discover::Node;
use ggcore_plugin_child::frame::Frame;
use ggcore_plugin_child::{spawn, ChildInstance};

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

/// A node started ahead of need in a spare instance process ([`warm`]),
/// with the user it was started as.
struct Spare {
    spawned: spawn::Spawned,
    uid: u32,
    gid: u32,
}

static SPARE: Mutex<Option<Spare>> = Mutex::new(None);

/// The environment a spare node starts with (replaced on `start`).
const SPARE_ENV: [(&str, &str); 2] = [("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ("LANG", "C.UTF-8")];

/// Whether a function's environment needs a node started for it: Node reads
/// `NODE_OPTIONS`, `NODE_EXTRA_CA_CERTS`, `UV_THREADPOOL_SIZE`, ... only when
/// it starts, so a spare started without them would ignore them.
fn needs_own_node(env: &[(String, String)]) -> bool {
    env.iter().any(|(k, _)| k.starts_with("NODE_") || k.starts_with("UV_"))
}

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

    /// In a spare instance process: start node now, with ggcore's SDK and
    /// the common builtins loaded, so that a cold start only sends `start`.
    fn warm(&self) -> Result<(), String> {
        let p = PREPARED.get().and_then(|p| p.as_ref().ok()).ok_or("the zygote did not prepare node")?;
        let env: Vec<(String, String)> = SPARE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args = [p.bootstrap.display().to_string(), "spare".to_string()];
        let spawned = spawn::spawn(&p.node.path, &args, &env, Path::new("/"))
            .map_err(|e| format!("cannot start {} ahead of need: {e}", p.node.path.display()))?;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        *SPARE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Spare { spawned, uid, gid });
        Ok(())
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let sdk_dirs: Vec<String> = spec.sdk_dirs.iter().map(|d| d.to_string()).collect();
        let p = prepared(&sdk_dirs)?;
        let env: Vec<(String, String)> = spec.environment.iter().map(|kv| (kv.0.to_string(), kv.1.to_string())).collect();
        let legacy = discover::legacy_runtime(&spec.runtime);
        let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).take();
        let arm = ggcore_plugin_abi::library_path_of(napi_register_module_v1 as *const () as usize).map(|p| p.display().to_string());
        let usable = spare.and_then(|mut spare| {
            let fits = !needs_own_node(&env) && spare.spawned.alive();
            let become_ = fits.then(|| become_fields(&env, spare.uid, spare.gid, arm.as_deref())).flatten();
            match become_ {
                Some(b) => Some((spare.spawned, b)),
                None => {
                    spare.spawned.end();
                    None
                }
            }
        });
        let (spawned, become_) = match usable {
            Some(s) => s,
            None => {
                let mut args = Vec::new();
                if legacy {
                    // Node ≤ 14 only warned about an unhandled rejection.
                    args.push("--unhandled-rejections=warn".to_string());
                }
                args.push(p.bootstrap.display().to_string());
                args.push("direct".to_string());
                let code_dir = Path::new(spec.code_dir.as_str());
                let spawned = spawn::spawn(&p.node.path, &args, &env, code_dir)
                    .map_err(|e| format!("cannot start {} for the function: {e}", p.node.path.display()))?;
                (spawned, serde_json::Value::Null)
            }
        };
        let mut start = start_frame(&spec, &p.sdk_dir);
        start.header.insert("become".into(), become_);
        start.header.insert("armPath".into(), arm.into());
        if legacy {
            start.header.insert("unhandledRejections".into(), "warn".into());
        }
        let instance = ChildInstance::start("node", spawned, start, host, spec.function_arn.as_str())?;
        Ok(Box::new(instance))
    }
}

/// What a spare node started as `uid`/`gid` applies to become the function
/// this worker has become: its environment, umask, and user — a change of
/// user clears "die with my parent", so node then loads this library as a
/// native module to arm it again ([`napi_register_module_v1`]).
fn become_fields(env: &[(String, String)], spare_uid: u32, spare_gid: u32, arm: Option<&str>) -> Option<serde_json::Value> {
    // SAFETY: these cannot fail.
    let (uid, gid, parent) = unsafe { (libc::getuid(), libc::getgid(), libc::getpid()) };
    let changes = uid != spare_uid || gid != spare_gid;
    if changes && arm.is_none() {
        // Nothing could arm "die with my parent" again after the change.
        return None;
    }
    let env: serde_json::Map<String, serde_json::Value> = env.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    Some(json!({
        "env": env,
        "umask": 0o022,
        "uid": changes.then_some(uid),
        "gid": changes.then_some(gid),
        "armPath": if changes { arm } else { None },
        "parentPid": parent,
    }))
}

/// Loaded by node as a native module (`process.dlopen`; Node calls this as
/// a Node-API module's init, and it exports nothing). It marks node's pipes
/// to the plugin (fds 3 and 4) close-on-exec, so that a process the function
/// starts does not hold them (the plugin would not see node end), and arms
/// the parent-death signal: a spare node loads it again after it changed its
/// user, which cleared that signal, so that nothing outlives a killed worker.
///
/// # Safety
/// Called by node with its own `env` and `exports`, neither of which is used.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(_env: *mut std::ffi::c_void, _exports: *mut std::ffi::c_void) -> *mut std::ffi::c_void {
    // SAFETY: prctl with these arguments only sets this process's
    // parent-death signal.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    for fd in [3, 4] {
        // SAFETY: fcntl on a descriptor number only reads or sets its flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    std::ptr::null_mut()
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
        }),
        Vec::new(),
    )
}

export_plugin!(NodeRuntime);

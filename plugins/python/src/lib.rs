//! The `python` runtime plugin (`libggcore_plugin_python.so`).
//!
//! It serves `python3.x` runtimes on the Python 3 installed on the machine.
//! This library does not link libpython: it looks for the shared library of
//! the Python it was built against, loads it with global symbols, and only then
//! loads the embedded-CPython host (`libggcore_python_host.so`, beside it) and
//! forwards every entry point to it. So `plugins list` can say exactly why
//! Python is unavailable instead of failing to load.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ggcore_plugin_abi::abi_stable::std_types::{RResult, RString, RVec};
use ggcore_plugin_abi::{
    export_plugin, FunctionError, FunctionInstance, FunctionSpec, HostBox, InstanceBox, InvocationContext, PluginInfo, PluginModRef,
    ProbeReport, Runtime,
};

/// The Python the host library was built against (from build.rs).
const PY_VERSION: &str = env!("GGCORE_PY_VERSION");
const PY_FULL_VERSION: &str = env!("GGCORE_PY_FULL_VERSION");
const PY_LIBDIR: &str = env!("GGCORE_PY_LIBDIR");
const PY_SONAME: &str = env!("GGCORE_PY_SONAME");
/// Environment variable naming the libpython to use instead.
const LIBPYTHON_ENV: &str = "GGCORE_LIBPYTHON";
const HOST_LIBRARY: &str = "libggcore_python_host.so";

struct Loaded {
    host: PluginModRef,
    libpython: PathBuf,
}

static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();

/// This library's own path (the host library sits beside it).
fn own_path() -> Option<PathBuf> {
    ggcore_plugin_abi::library_path_of(own_path as *const () as usize)
}

fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os(LIBPYTHON_ENV).filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    if !PY_SONAME.is_empty() {
        if !PY_LIBDIR.is_empty() {
            v.push(Path::new(PY_LIBDIR).join(PY_SONAME));
        }
        for dir in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib", "/usr/lib64"] {
            v.push(Path::new(dir).join(PY_SONAME));
        }
    }
    v
}

/// Finds and loads libpython (global symbols), then the host library.
fn load() -> Result<&'static Loaded, String> {
    let r = LOADED.get_or_init(|| {
        if PY_VERSION.is_empty() || PY_SONAME.is_empty() {
            return Err("this plugin was built without a Python 3 interpreter; rebuild it where python3 is installed".to_string());
        }
        let mut tried = Vec::new();
        let mut found = None;
        for c in candidates() {
            // SAFETY: loading libpython runs only its (trivial) ELF constructors.
            let lib = unsafe { libloading::os::unix::Library::open(Some(&c), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            match lib {
                Ok(l) => {
                    // Kept loaded for the life of the process.
                    std::mem::forget(l);
                    found = Some(c);
                    break;
                }
                Err(e) => tried.push(format!("{} ({e})", c.display())),
            }
        }
        let Some(libpython) = found else {
            return Err(format!(
                "libpython {PY_VERSION} not found: install Python {PY_VERSION} with its shared library, or set {LIBPYTHON_ENV}; tried {}",
                tried.join(", ")
            ));
        };
        let dir = own_path().and_then(|p| p.parent().map(Path::to_path_buf)).ok_or("cannot tell where the python plugin is installed")?;
        let host_path = dir.join(HOST_LIBRARY);
        // Not RootModule::load_from_file: inside a plugin, that returns the
        // plugin's own (already loaded) module of the same type.
        let host = ggcore_plugin_abi::abi_stable::library::lib_header_from_path(&host_path)
            .and_then(|h| h.init_root_module::<PluginModRef>())
            .map_err(|e| format!("cannot load {}: {}", host_path.display(), e.to_string().trim()))?;
        Ok(Loaded { host, libpython })
    });
    r.as_ref().map_err(Clone::clone)
}

/// An instance of the host library, driven through its ABI table.
struct Forward(InstanceBox);

impl FunctionInstance for Forward {
    fn invoke(&mut self, event: Vec<u8>, context: &InvocationContext) -> Result<Vec<u8>, FunctionError> {
        match self.0.invoke(RVec::from(event), context.clone()) {
            RResult::ROk(v) => Ok(v.into_vec()),
            RResult::RErr(e) => Err(e),
        }
    }

    fn shutdown(&mut self) {
        self.0.shutdown();
    }
}

struct Python;

impl Runtime for Python {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "python".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            runtimes: RVec::from(vec![RString::from("python3.*")]),
        }
    }

    fn sdk_dirs(&self) -> Vec<String> {
        vec!["sdk-python".to_string()]
    }

    fn refused(&self) -> Vec<(String, String)> {
        vec![("python2.*".into(), "cannot be embedded by ggcore (no Python 2 runtime is supported); port the function to python3".into())]
    }

    fn environment(&self) -> Vec<(String, String)> {
        vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into()), ("PYTHONUNBUFFERED".into(), "1".into())]
    }

    fn probe(&self) -> ProbeReport {
        match load() {
            Ok(l) => ProbeReport {
                available: true,
                detail: format!("Python {PY_FULL_VERSION} ({})", l.libpython.display()).into(),
                native_runtime: format!("python{PY_VERSION}").into(),
            },
            Err(reason) => ProbeReport { available: false, detail: reason.into(), native_runtime: format!("python{PY_VERSION}").into() },
        }
    }

    fn prepare(&self, runtime: &str, sdk_dirs: &[String]) -> Result<bool, String> {
        let l = load()?;
        let dirs: Vec<RString> = sdk_dirs.iter().map(|s| RString::from(s.as_str())).collect();
        match (l.host.prepare())(runtime.into(), dirs.as_slice().into()) {
            RResult::ROk(b) => Ok(b),
            RResult::RErr(e) => Err(e.message.to_string()),
        }
    }

    fn fork(&self) -> i32 {
        match load() {
            Ok(l) => (l.host.fork())(),
            Err(_) => -1,
        }
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let l = load()?;
        match (l.host.start_instance())(spec, host) {
            RResult::ROk(i) => Ok(Box::new(Forward(i))),
            RResult::RErr(e) => Err(e.message.to_string()),
        }
    }
}

export_plugin!(Python);

//! CPython embedded with pyo3: the host behind the `python` runtime plugin.
//!
//! Loaded by `libggcore_plugin_python.so` once libpython is loaded. It starts
//! the interpreter (`prepare`, once per process; a zygote does it before it
//! forks instances), forks with CPython's fork protocol, and runs instances
//! through `ggcore_runtime` (in `sdk-python/`). The Greengrass Core SDK reaches
//! the core through the native module `_ggcore` defined here, which calls the
//! host table of the instance (releasing the GIL while the core answers).

use std::sync::{Mutex, OnceLock};

use ggcore_plugin_abi::abi_stable::std_types::{RResult, RStr};
use ggcore_plugin_abi::{
    export_plugin, ErrorKind, FunctionError, FunctionInstance, FunctionSpec, HostBox, HostError, InvocationContext, InvocationType,
    InvokeArgs, LogLevel, PluginInfo, ProbeReport, PublishArgs, Runtime, ShadowOp,
};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

pyo3::create_exception!(_ggcore, HostError_, PyException);

/// The host table of this process's instance (one instance per process).
static HOST: OnceLock<HostBox> = OnceLock::new();
/// Whether the interpreter is prepared, or why it could not be.
static PREPARED: Mutex<Option<Result<(), String>>> = Mutex::new(None);

fn host() -> PyResult<&'static HostBox> {
    HOST.get().ok_or_else(|| HostError_::new_err(("Internal", "no function instance in this process")))
}

fn to_py(e: HostError) -> PyErr {
    let code = format!("{:?}", e.code);
    HostError_::new_err((code, e.message.to_string()))
}

/// Publishes through the router with this function as source.
#[pyfunction]
#[pyo3(signature = (topic, payload, queue_full_policy = "", source = ""))]
fn publish(py: Python<'_>, topic: &str, payload: &[u8], queue_full_policy: &str, source: &str) -> PyResult<()> {
    let h = host()?;
    let r = py.detach(|| {
        h.publish(PublishArgs {
            topic: topic.into(),
            payload: payload.into(),
            queue_full_policy: queue_full_policy.into(),
            claimed_source: source.into(),
        })
    });
    match r {
        RResult::ROk(()) => Ok(()),
        RResult::RErr(e) => Err(to_py(e)),
    }
}

/// Invokes a function; returns (invocation id, payload, function error).
#[pyfunction]
fn invoke<'py>(
    py: Python<'py>,
    function_arn: &str,
    qualifier: &str,
    invocation_type: &str,
    client_context: &str,
    payload: &[u8],
) -> PyResult<(String, Bound<'py, PyBytes>, String)> {
    let invocation_type = match invocation_type {
        "RequestResponse" | "" => InvocationType::RequestResponse,
        "Event" => InvocationType::Event,
        other => return Err(PyValueError::new_err(format!("InvocationType must be RequestResponse or Event, not {other}"))),
    };
    let h = host()?;
    let r = py.detach(|| {
        h.invoke(InvokeArgs {
            function_arn: function_arn.into(),
            qualifier: qualifier.into(),
            invocation_type,
            client_context: client_context.into(),
            payload: payload.into(),
        })
    });
    match r {
        RResult::ROk(reply) => Ok((reply.invocation_id.to_string(), PyBytes::new(py, &reply.payload), reply.function_error.to_string())),
        RResult::RErr(e) => Err(to_py(e)),
    }
}

/// A shadow request (`get`, `update`, `delete`); returns the response document.
#[pyfunction]
fn shadow<'py>(py: Python<'py>, op: &str, thing_name: &str, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let op = match op {
        "get" => ShadowOp::Get,
        "update" => ShadowOp::Update,
        "delete" => ShadowOp::Delete,
        other => return Err(PyValueError::new_err(format!("unknown shadow operation {other}"))),
    };
    let h = host()?;
    match py.detach(|| h.shadow(op, thing_name.into(), payload.into())) {
        RResult::ROk(v) => Ok(PyBytes::new(py, &v)),
        RResult::RErr(e) => Err(to_py(e)),
    }
}

#[pyfunction]
fn get_secret<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let h = host()?;
    match py.detach(|| h.get_secret(payload.into())) {
        RResult::ROk(v) => Ok(PyBytes::new(py, &v)),
        RResult::RErr(e) => Err(to_py(e)),
    }
}

/// A line for the function's log: level 0 DEBUG .. 4 FATAL.
#[pyfunction]
fn log(py: Python<'_>, level: u8, message: &str) -> PyResult<()> {
    let level = LogLevel::from_u8(level);
    if let Some(h) = HOST.get() {
        py.detach(|| h.log(level, RStr::from(message)));
    }
    Ok(())
}

/// Registers `_ggcore` in `sys.modules`.
fn register_native_module(py: Python<'_>) -> PyResult<()> {
    let m = PyModule::new(py, "_ggcore")?;
    m.add_function(wrap_pyfunction!(publish, &m)?)?;
    m.add_function(wrap_pyfunction!(invoke, &m)?)?;
    m.add_function(wrap_pyfunction!(shadow, &m)?)?;
    m.add_function(wrap_pyfunction!(get_secret, &m)?)?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add("HostError", py.get_type::<HostError_>())?;
    py.import("sys")?.getattr("modules")?.set_item("_ggcore", m)?;
    Ok(())
}

/// The Python traceback of `e`, as text.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (e.get_type(py), e.value(py), e.traceback(py)))?.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_string(),
        Err(_) => e.to_string(),
    }
}

fn prepare(sdk_dirs: &[String]) -> Result<(), String> {
    let mut state = PREPARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = state.as_ref() {
        return r.clone();
    }
    Python::initialize();
    let r = Python::attach(|py| -> PyResult<()> {
        register_native_module(py)?;
        let path = py.import("sys")?.getattr("path")?;
        for (i, d) in sdk_dirs.iter().enumerate() {
            path.call_method1("insert", (i, d))?;
        }
        py.import("ggcore_runtime")?.call_method0("prepare")?;
        Ok(())
    })
    .map_err(|e| Python::attach(|py| format!("preparing Python: {}", describe(py, &e))));
    *state = Some(r.clone());
    r
}

struct PyInstance {
    invoker: Py<PyAny>,
}

impl FunctionInstance for PyInstance {
    fn invoke(&mut self, event: Vec<u8>, context: &InvocationContext) -> Result<Vec<u8>, FunctionError> {
        let _ = context.invocation_type;
        Python::attach(|py| {
            let r = self.invoker.bind(py).call_method1(
                "invoke",
                (PyBytes::new(py, &event), context.invocation_id.as_str(), context.client_context.as_str(), context.deadline_unix_ms),
            );
            match r.and_then(|v| v.extract::<(i32, Vec<u8>)>()) {
                Ok((0, result)) => Ok(result),
                Ok((_, doc)) => Err(FunctionError { kind: ErrorKind::Handled, payload: doc.into() }),
                Err(e) => Err(FunctionError::new(ErrorKind::Unhandled, &format!("the Python runtime failed: {}", describe(py, &e)))),
            }
        })
    }
}

struct PythonHost;

impl Runtime for PythonHost {
    fn info(&self) -> PluginInfo {
        PluginInfo { name: "python-host".into(), version: env!("CARGO_PKG_VERSION").into(), runtimes: vec!["python3.*".into()].into() }
    }

    fn probe(&self) -> ProbeReport {
        ProbeReport { available: true, detail: "embedded CPython".into(), native_runtime: "".into() }
    }

    fn prepare(&self, _runtime: &str, sdk_dirs: &[String]) -> Result<bool, String> {
        prepare(sdk_dirs).map(|()| true)
    }

    fn fork(&self) -> i32 {
        // CPython's fork protocol, as os.fork does: with the GIL held, before
        // and after hooks on each side. The zygote is single-threaded here.
        Python::attach(|_py| {
            // SAFETY: called with the GIL held by this thread, as CPython requires.
            unsafe { pyo3::ffi::PyOS_BeforeFork() };
            // SAFETY: fork in a process whose only thread is this one.
            let pid = unsafe { libc::fork() };
            // SAFETY: the matching after-fork hook for each side, GIL held.
            unsafe {
                if pid == 0 {
                    pyo3::ffi::PyOS_AfterFork_Child();
                } else {
                    pyo3::ffi::PyOS_AfterFork_Parent();
                }
            }
            pid
        })
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let sdk_dirs: Vec<String> = spec.sdk_dirs.iter().map(|s| s.to_string()).collect();
        prepare(&sdk_dirs)?;
        if HOST.set(host).is_err() {
            return Err("this process already hosts an instance".to_string());
        }
        let invoker = Python::attach(|py| -> PyResult<Py<PyAny>> {
            let env = PyDict::new(py);
            for kv in spec.environment.iter() {
                env.set_item(kv.0.as_str(), kv.1.as_str())?;
            }
            let dirs = PyList::new(py, sdk_dirs.iter())?;
            let invoker = py.import("ggcore_runtime")?.call_method1(
                "start",
                (
                    spec.handler.as_str(),
                    spec.code_dir.as_str(),
                    dirs,
                    env,
                    spec.function_arn.as_str(),
                    spec.encoding == ggcore_plugin_abi::Encoding::Binary,
                    spec.memory_limit_kb,
                ),
            )?;
            Ok(invoker.unbind())
        })
        .map_err(|e| Python::attach(|py| format!("the function did not start: {}", describe(py, &e))))?;
        Ok(Box::new(PyInstance { invoker }))
    }
}

export_plugin!(PythonHost);

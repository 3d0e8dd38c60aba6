//! ggcore's C Core SDK: `libaws-greengrass-core-sdk-c.so`, the library that
//! Greengrass v1 "Lambda executables" (C programs using `greengrasssdk.h`)
//! link with. It talks to ggcore's native runtime plugin over two pipes
//! (frames of `ggcore-frame`): see `README.md` for the behaviour of each call.
//!
//! Every `gg_*` function is defined here as `ggcore_gg_*` and exported under
//! its AWS name and symbol version by a `.symver` directive (see `build.rs`),
//! except `gg_log`, which is C-variadic and so lives in `src/log.c`. No panic
//! crosses into C: each body runs under `catch_unwind`.

// The safety contract of each exported function is the C API's (the header
// says which pointers must be valid); it is not repeated per function.
#![allow(clippy::missing_safety_doc)]

mod pure;
mod runtime;

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Map, Value};

pub use pure::*;
use runtime::{connected, lock, runtime, Runtime};

/// Runs an exported function's body: `Ok` is `GGE_SUCCESS`, a panic is
/// `GGE_INTERNAL_FAILURE`.
fn guard(body: impl FnOnce() -> GgResult<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => GGE_SUCCESS,
        Ok(Err(e)) => e,
        Err(_) => GGE_INTERNAL_FAILURE,
    }
}

// The exported names and versions. Not in unit tests: a test executable
// has no version script defining the nodes.
#[cfg(not(test))]
std::arch::global_asm!(
    ".symver ggcore_gg_global_init, gg_global_init@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_request_init, gg_request_init@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_request_reuse, gg_request_reuse@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_request_close, gg_request_close@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_request_read, gg_request_read@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_runtime_start, gg_runtime_start@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_lambda_handler_read, gg_lambda_handler_read@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_lambda_handler_write_response, gg_lambda_handler_write_response@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_lambda_handler_write_error, gg_lambda_handler_write_error@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_invoke, gg_invoke@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_publish, gg_publish@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_get_thing_shadow, gg_get_thing_shadow@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_update_thing_shadow, gg_update_thing_shadow@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_delete_thing_shadow, gg_delete_thing_shadow@@aws_greengrass_core_sdk_c_1.0",
    ".symver ggcore_gg_get_secret_value, gg_get_secret_value@@aws_greengrass_core_sdk_c_1.1",
    ".symver ggcore_gg_publish_options_init, gg_publish_options_init@@aws_greengrass_core_sdk_c_1.2",
    ".symver ggcore_gg_publish_options_free, gg_publish_options_free@@aws_greengrass_core_sdk_c_1.2",
    ".symver ggcore_gg_publish_options_set_queue_full_policy, gg_publish_options_set_queue_full_policy@@aws_greengrass_core_sdk_c_1.2",
    ".symver ggcore_gg_publish_with_options, gg_publish_with_options@@aws_greengrass_core_sdk_c_1.2",
);

// gg_log (src/log.c): referenced so that the linker keeps its object in the
// shared library even though no Rust code calls it.
#[cfg(not(test))]
extern "C" {
    fn ggcore_gg_log(level: c_int, format: *const c_char, ...) -> c_int;
}
#[cfg(not(test))]
#[used]
static KEEP_GG_LOG: unsafe extern "C" fn(c_int, *const c_char, ...) -> c_int = ggcore_gg_log;

const LEVEL_NAMES: [&str; 5] = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Called by `gg_log` (src/log.c) with the formatted line.
#[no_mangle]
pub unsafe extern "C" fn ggcore_sdk_log_line(level: c_int, text: *const c_char, len: usize) -> c_int {
    guard(|| {
        let level = frame_level(level)?;
        if text.is_null() && len > 0 {
            return Err(GGE_INVALID_PARAMETER);
        }
        let bytes = if len == 0 {
            &[][..]
        } else {
            // SAFETY: log.c passes the buffer it formatted and its length.
            unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) }
        };
        let line = String::from_utf8_lossy(bytes);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        match connected() {
            Some(rt) if rt.log(level, line) => Ok(()),
            Some(_) => Err(GGE_INTERNAL_FAILURE),
            None => {
                runtime::stderr_line(&format!("[{}] {line}", LEVEL_NAMES[level as usize]));
                Ok(())
            }
        }
    })
}

#[no_mangle]
pub extern "C" fn ggcore_gg_global_init(opt: u32) -> c_int {
    guard(|| if opt != 0 { Err(GGE_INVALID_PARAMETER) } else { runtime::init() })
}

// ---- requests ----

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_request_init(request: *mut *mut GgRequest) -> c_int {
    guard(|| {
        if request.is_null() {
            return Err(GGE_INVALID_PARAMETER);
        }
        // SAFETY: the caller gives a place for the handle.
        unsafe { *request = Box::into_raw(Box::default()) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_request_close(request: *mut GgRequest) -> c_int {
    guard(|| {
        if request.is_null() {
            return Err(GGE_INVALID_PARAMETER);
        }
        // SAFETY: a handle from gg_request_init, closed once.
        drop(unsafe { Box::from_raw(request) });
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_request_reuse(request: *mut GgRequest) -> c_int {
    guard(|| {
        // SAFETY: NULL or a live handle from gg_request_init.
        let request = unsafe { request.as_mut() }.ok_or(GGE_INVALID_PARAMETER)?;
        request.set(Vec::new());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_request_read(request: *mut GgRequest, buffer: *mut c_void, size: usize, amount: *mut usize) -> c_int {
    guard(|| {
        check_read_args(buffer.cast(), size, amount)?;
        // SAFETY: NULL or a live handle from gg_request_init.
        let request = unsafe { request.as_mut() }.ok_or(GGE_INVALID_PARAMETER)?;
        // SAFETY: buffer has size writable bytes; amount is not NULL (checked).
        unsafe { *amount = read_into(&request.data, &mut request.pos, buffer.cast(), size) };
        Ok(())
    })
}

// ---- runtime ----

#[no_mangle]
pub extern "C" fn ggcore_gg_runtime_start(handler: Option<unsafe extern "C-unwind" fn(*const GgLambdaContext)>, opt: u32) -> c_int {
    guard(|| {
        let handler = handler.ok_or(GGE_INVALID_PARAMETER)?;
        if opt & !GG_RT_OPT_ASYNC != 0 {
            return Err(GGE_INVALID_PARAMETER);
        }
        let rt = runtime()?;
        if !rt.mark_started() {
            return Err(GGE_INVALID_STATE);
        }
        runtime::install_sigterm()?;
        if !rt.send(&ggcore_frame::Frame::new("ready", json!({}), Vec::new())) {
            return Err(GGE_INTERNAL_FAILURE);
        }
        if opt & GG_RT_OPT_ASYNC == 0 {
            rt.run(handler);
            return Err(GGE_TERMINATE);
        }
        std::thread::Builder::new()
            .name("ggcore-sdk-runtime".into())
            .spawn(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| rt.run(handler)));
                // Stopped: end the process (exit flushes C's stdio buffers).
                std::process::exit(0)
            })
            .map(drop)
            .map_err(|_| GGE_INTERNAL_FAILURE)
    })
}

/// Runs `f` on the current invocation, or `GGE_INVALID_STATE` outside one.
fn with_current(f: impl FnOnce(&mut runtime::Current) -> GgResult<()>) -> GgResult<()> {
    let rt = runtime()?;
    let mut current = lock(&rt.current);
    f(current.as_mut().ok_or(GGE_INVALID_STATE)?)
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_lambda_handler_read(buffer: *mut c_void, size: usize, amount: *mut usize) -> c_int {
    guard(|| {
        check_read_args(buffer.cast(), size, amount)?;
        with_current(|current| {
            // SAFETY: buffer has size writable bytes; amount is not NULL (checked).
            unsafe { *amount = read_into(&current.event, &mut current.pos, buffer.cast(), size) };
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_lambda_handler_write_response(response: *const c_void, size: usize) -> c_int {
    guard(|| {
        // SAFETY: response has size readable bytes (or is NULL: refused).
        let bytes = unsafe { bytes(response, size) }?;
        with_current(|current| {
            // The whole response travels in one frame.
            if current.response.len() + bytes.len() > ggcore_frame::MAX_PAYLOAD {
                return Err(GGE_INVALID_PARAMETER);
            }
            current.response.try_reserve(bytes.len()).map_err(|_| GGE_OUT_OF_MEMORY)?;
            current.response.extend_from_slice(&bytes);
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_lambda_handler_write_error(message: *const c_char) -> c_int {
    guard(|| {
        if message.is_null() {
            return Err(GGE_INVALID_PARAMETER);
        }
        // SAFETY: a NUL-terminated string (checked not NULL).
        let message = unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned();
        with_current(|current| {
            current.error = Some(message);
            Ok(())
        })
    })
}

// ---- host calls ----

/// The request and result of a host call, both required.
unsafe fn targets<'a>(request: *mut GgRequest, result: *mut GgRequestResult) -> GgResult<(&'a mut GgRequest, &'a mut GgRequestResult)> {
    // SAFETY: NULL or live objects of the caller's.
    match unsafe { (request.as_mut(), result.as_mut()) } {
        (Some(request), Some(result)) => Ok((request, result)),
        _ => Err(GGE_INVALID_PARAMETER),
    }
}

/// Makes a host call and puts the core's answer into the request and result;
/// a failure is logged as a warning naming `name`.
fn ask(rt: &Runtime, name: &str, request: &mut GgRequest, result: &mut GgRequestResult, fields: Value, payload: Vec<u8>) -> GgResult<()> {
    request.set(Vec::new());
    result.request_status = GG_REQUEST_UNKNOWN;
    let answer = interpret(rt.call(fields, payload)?);
    request.set(answer.data);
    result.request_status = answer.status;
    if let Some(failure) = answer.failure {
        rt.log(2, &format!("{name} failed: {failure}"));
    }
    if answer.error == GGE_SUCCESS {
        Ok(())
    } else {
        Err(answer.error)
    }
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_publish_options_init(options: *mut *mut GgPublishOptions) -> c_int {
    guard(|| {
        if options.is_null() {
            return Err(GGE_INVALID_PARAMETER);
        }
        // SAFETY: the caller gives a place for the handle.
        unsafe { *options = Box::into_raw(Box::default()) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_publish_options_free(options: *mut GgPublishOptions) -> c_int {
    guard(|| {
        if options.is_null() {
            return Err(GGE_INVALID_PARAMETER);
        }
        // SAFETY: a handle from gg_publish_options_init, freed once.
        drop(unsafe { Box::from_raw(options) });
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_publish_options_set_queue_full_policy(options: *mut GgPublishOptions, policy: c_int) -> c_int {
    guard(|| {
        // SAFETY: NULL or a live handle from gg_publish_options_init.
        let options = unsafe { options.as_mut() }.ok_or(GGE_INVALID_PARAMETER)?;
        options.policy = policy_name(policy)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_publish_with_options(
    request: *mut GgRequest,
    topic: *const c_char,
    payload: *const c_void,
    size: usize,
    options: *const GgPublishOptions,
    result: *mut GgRequestResult,
) -> c_int {
    guard(|| {
        // SAFETY (all below): the pointers are the caller's, as the header says.
        let (request, result) = unsafe { targets(request, result) }?;
        let topic = unsafe { text(topic) }?;
        let policy = unsafe { options.as_ref() }.map_or("", |o| o.policy);
        let payload = unsafe { bytes(payload, size) }?;
        let rt = runtime()?;
        let fields = json!({"op": "publish", "topic": topic, "queueFullPolicy": policy, "claimedSource": ""});
        ask(rt, "gg_publish", request, result, fields, payload)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_publish(
    request: *mut GgRequest,
    topic: *const c_char,
    payload: *const c_void,
    size: usize,
    result: *mut GgRequestResult,
) -> c_int {
    // SAFETY: the caller's pointers, passed on.
    unsafe { ggcore_gg_publish_with_options(request, topic, payload, size, std::ptr::null(), result) }
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_invoke(request: *mut GgRequest, options: *const GgInvokeOptions, result: *mut GgRequestResult) -> c_int {
    guard(|| {
        // SAFETY (all below): the pointers are the caller's, as the header says.
        let (request, result) = unsafe { targets(request, result) }?;
        let options = unsafe { options.as_ref() }.ok_or(GGE_INVALID_PARAMETER)?;
        let arn = unsafe { text(options.function_arn) }?;
        let context = unsafe { optional_text(options.customer_context) }?.unwrap_or("");
        let qualifier = unsafe { optional_text(options.qualifier) }?.unwrap_or("");
        let kind = invoke_type_name(options.kind)?;
        let payload = unsafe { bytes(options.payload, options.payload_size) }?;
        let rt = runtime()?;
        let fields = json!({"op": "invoke", "functionArn": arn, "qualifier": qualifier, "invocationType": kind, "clientContext": context});
        ask(rt, "gg_invoke", request, result, fields, payload)
    })
}

/// A shadow call.
unsafe fn shadow(
    name: &str,
    operation: &str,
    request: *mut GgRequest,
    thing: *const c_char,
    document: Option<*const c_char>,
    result: *mut GgRequestResult,
) -> GgResult<()> {
    // SAFETY (all below): the pointers are the caller's, as the header says.
    let (request, result) = unsafe { targets(request, result) }?;
    let thing = unsafe { text(thing) }?;
    let payload = match document {
        None => Vec::new(),
        Some(p) if p.is_null() => return Err(GGE_INVALID_PARAMETER),
        Some(p) => unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec(),
    };
    let rt = runtime()?;
    ask(rt, name, request, result, json!({"op": "shadow", "operation": operation, "thing": thing}), payload)
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_get_thing_shadow(request: *mut GgRequest, thing: *const c_char, result: *mut GgRequestResult) -> c_int {
    // SAFETY: the caller's pointers, passed on.
    guard(|| unsafe { shadow("gg_get_thing_shadow", "get", request, thing, None, result) })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_update_thing_shadow(
    request: *mut GgRequest,
    thing: *const c_char,
    document: *const c_char,
    result: *mut GgRequestResult,
) -> c_int {
    // SAFETY: the caller's pointers, passed on.
    guard(|| unsafe { shadow("gg_update_thing_shadow", "update", request, thing, Some(document), result) })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_delete_thing_shadow(
    request: *mut GgRequest,
    thing: *const c_char,
    result: *mut GgRequestResult,
) -> c_int {
    // SAFETY: the caller's pointers, passed on.
    guard(|| unsafe { shadow("gg_delete_thing_shadow", "delete", request, thing, None, result) })
}

#[no_mangle]
pub unsafe extern "C" fn ggcore_gg_get_secret_value(
    request: *mut GgRequest,
    secret_id: *const c_char,
    version_id: *const c_char,
    version_stage: *const c_char,
    result: *mut GgRequestResult,
) -> c_int {
    guard(|| {
        // SAFETY (all below): the pointers are the caller's, as the header says.
        let (request, result) = unsafe { targets(request, result) }?;
        let mut doc = Map::new();
        doc.insert("SecretId".into(), unsafe { text(secret_id) }?.into());
        if let Some(v) = unsafe { optional_text(version_id) }? {
            doc.insert("VersionId".into(), v.into());
        }
        if let Some(v) = unsafe { optional_text(version_stage) }? {
            doc.insert("VersionStage".into(), v.into());
        }
        let rt = runtime()?;
        let payload = Value::Object(doc).to_string().into_bytes();
        ask(rt, "gg_get_secret_value", request, result, json!({"op": "secret"}), payload)
    })
}
